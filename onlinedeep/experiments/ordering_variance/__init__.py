"""The example-ordering experiment (Erhan et al. 2010, section 8.2, Figure 13) as resumable jobs.

Protocol
--------
A fixed training sequence of N examples (the base :class:`infinite_mnist.Schedule`) is cut into S
segments. For each segment s and draw d, a job trains the same network (same initial weights, same
configuration) on the base sequence with segment s resampled: positions ``s·L .. (s+1)·L - 1``
become a random sample of the stream (which base digits, in what order, which deformations) drawn
with the seed ``draw_seed(plan seed, s, d)`` (:meth:`OrderingPlan.schedule`; paper 8.2: "sampling a
different set of 1 million examples each time"). Two draws share a base digit at a position with
probability 1/50,000, the base sequence elsewhere is unchanged, and position → stream index stays a
pure function, so prefix sharing and resuming work as before. For each s, the
*output variance* is the variance across the D trained networks of their softmax outputs on a fixed
test set (the 10,000 MNIST test digits, stream indices 0-9,999), averaged over test examples and
classes. One curve per *condition* (with pre-training, without), plotted against s/S.

Cost
----
Job (s, d) shares its first s segments with the base sequence, so the base sequence is trained once
per condition with a snapshot (a *branch point*) at every segment boundary, and job (s, d) starts
from the branch point at s: Σ_s (S - s) segments per draw instead of S·S (:meth:`OrderingPlan.costs`).
The base run is cut into stages (one per boundary) so that the draws of segment s start as soon as
its branch point exists: on many workers the experiment takes about one base run of wall time, not
nearly two.

Files
-----
The experiment folder ``out`` is a job folder (:mod:`onlinedeep.run_folder`): ``plan.json``, for each
job ``COND/NAME`` a run folder and an output ``COND/NAME.h5`` (:func:`run_job`), the base run's
pinned snapshots at positions s·L (the branch points) in ``COND/base/snapshots/``, and the report:
``ordering_variance.h5`` (:func:`aggregate`) and ``figure13.png``.

A rerun skips finished jobs, resumes interrupted ones from the last snapshot in their run folder,
and starts the others; a job that fails is reported with its error and does not stop the others.
"""
from onlinedeep.experiments.ordering_variance.jobs import (branch_point, output_ok, output_path,
                                                           pending_jobs, run_dir, run_experiment,
                                                           run_job)
from onlinedeep.experiments.ordering_variance.plan import (PLAN_PRESETS, Job, OrderingPlan,
                                                           segment_ranges)
from onlinedeep.experiments.ordering_variance.plan_file import (check_plan, load_plan,
                                                                save_or_check_plan)
from onlinedeep.experiments.ordering_variance.report import (aggregate, load_table,
                                                             output_variance, plot_figure13,
                                                             report)

__all__ = ["Job", "OrderingPlan", "PLAN_PRESETS", "run_dir", "branch_point", "output_path",
           "output_ok", "run_job", "run_experiment", "pending_jobs", "load_plan", "save_or_check_plan",
           "check_plan", "report", "output_variance", "aggregate", "plot_figure13", "load_table",
           "segment_ranges"]
