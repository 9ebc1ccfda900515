"""onlinedeep: online (prequential) training of deep networks at batch size 1 on InfiniteMNIST.

Re-runs the online experiments of Erhan, Bengio, Courville, Manzagol, Vincent & Bengio, "Why Does
Unsupervised Pre-training Help Deep Learning?" (JMLR 2010, sections 5 and 8). Layout (imports point
down only; docs/architecture.md):

- :mod:`onlinedeep.experiments` — what the paper runs, composed of runs: the job runner and one
  module per experiment;
- :mod:`onlinedeep.training` — one run: the online loop, its producer, resume and branch;
- :mod:`onlinedeep.snapshot`, :mod:`onlinedeep.run_folder` — the snapshot format, the files of a run;
- :mod:`onlinedeep.config`, :mod:`onlinedeep.phases`, :mod:`onlinedeep.threads` — the user's options,
  the phases and chunks they imply, the thread counts;
- :mod:`onlinedeep.kernels`, :mod:`onlinedeep.model`, :mod:`onlinedeep.metrics`,
  :mod:`onlinedeep.noise` — the updates, the network, the prequential metrics, the random draws.

``onlinedeep.Trainer`` and ``onlinedeep.resume`` are imported on first use (they load torch).
"""
from onlinedeep.config import RunConfig

__version__ = "0.1.0"
__all__ = ["RunConfig", "Trainer", "resume", "__version__"]


def __getattr__(name: str):
    if name in ("Trainer", "resume"):
        from onlinedeep import training

        return getattr(training, name)
    raise AttributeError(f"module 'onlinedeep' has no attribute {name!r}")
