"""Section 8 of Erhan et al. (2010) as jobs: the networks of Figures 11, 12 and 14 in one folder.

Every network is an ordinary run folder ``OUT/<key>/`` (what ``onlinedeep train --out OUT --name
<key>`` writes), so a run started by hand is adopted, never retrained:

========================  ======  ========  ==================  ==========================
key                       layers  pretrain  pre-trained layers  figures
========================  ======  ========  ==================  ==========================
``layers1-none``          1       none      0                   11, 12
``layers1-dae``           1       dae       1                   11
``layers1-rbm``           1       rbm       1                   11, 12
``layers3-none``          3       none      0                   11, 14 (k = 0)
``layers3-dae``           3       dae       3                   11, 14 (k = 3)
``layers3-rbm``           3       rbm       3                   11
``layers3-dae-k1``        3       dae       1                   14
``layers3-dae-k2``        3       dae       2                   14
========================  ======  ========  ==================  ==========================

The configuration of a key is ``RunConfig.preset(preset, layers=L, pretrain=P, pretrain_layers=k,
train_error_blocks=20 for one hidden layer, name=key, out=OUT)`` (paper 5.3 and 8.1: 2.5M
unsupervised + 7.5M supervised updates, 10M supervised without pre-training; 2,000 units for one
layer, 1,000 per layer for three, footnote 14). The job of a key (:func:`run_network`) is
finished when the run folder holds the complete run of that configuration (execution-only fields
aside, :meth:`RunFolder.is_complete`), its final snapshot holds the Figure 12 blocks when the
configuration asks for them, and its test error at the end is recorded (``evaluation-test.json``).
A folder holding part of the run is resumed; a complete one only gets the missing post-steps.

``OUT/plan.json`` records the preset; ``OUT/last_run.json`` the outcomes of the latest ``run``;
``OUT/reports/figureNN/`` what ``report`` writes. Figure 13 (:mod:`ordering_variance`) lives in
``OUT/figure13/``.

The package: :mod:`.networks` (keys, presets, the configuration of a key), :mod:`.jobs` (the job of
a network, the jobs of a figure, ``plan.json``), :mod:`.cost` (updates left, seconds per update,
makespan: ``--dry-run``) and :mod:`.report` (:class:`NetworkStatus`, CSV and report-folder
helpers of the figure reports).
"""
from __future__ import annotations

from onlinedeep.experiments.section8.cost import (makespan, measure_seconds_per_update,
                                                  pending_updates, phase_updates)
from onlinedeep.experiments.section8.jobs import (PLAN_FORMAT, check_folder, check_preset,
                                                  figure13_folder, job_specs, load_preset,
                                                  near_chance, network_finished, run_figure,
                                                  run_network,
                                                  save_or_check_plan)
from onlinedeep.experiments.section8.networks import (DEFAULT_OUT, FIGURE_KEYS, PRESETS,
                                                      TRAIN_ERROR_BLOCKS, Network, key_config,
                                                      network)
from onlinedeep.experiments.section8.report import (NetworkStatus, network_status,
                                                    online_error_last, report_folder, series_rows,
                                                    subsample, train_command, write_csv, write_text)

__all__ = ["FIGURE_KEYS", "DEFAULT_OUT", "PRESETS", "Network", "network", "key_config",
           "run_network", "near_chance", "network_finished", "check_folder", "job_specs", "run_figure",
           "save_or_check_plan", "check_preset", "load_preset", "phase_updates", "pending_updates",
           "measure_seconds_per_update", "makespan", "NetworkStatus", "network_status",
           "online_error_last", "train_command", "figure13_folder", "report_folder", "write_csv",
           "write_text", "series_rows", "subsample", "TRAIN_ERROR_BLOCKS", "PLAN_FORMAT"]
