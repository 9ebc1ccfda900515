"""onlinedeep: online (prequential) training of deep networks at batch size 1 on InfiniteMNIST.

Re-runs the online experiments of Erhan, Bengio, Courville, Manzagol, Vincent & Bengio, "Why Does
Unsupervised Pre-training Help Deep Learning?" (JMLR 2010, sections 5 and 8). Layout (imports point
down only; docs/architecture.md):

- :mod:`onlinedeep.experiments` — what the paper runs, composed of runs: the job runner and one
  module per experiment;
- :mod:`onlinedeep.training` — one run: the online loop, its producer, resume and branch;
- :mod:`onlinedeep.learner` (:class:`OnlineMLP`), :mod:`onlinedeep.progressive`,
  :mod:`onlinedeep.evaluate`, :mod:`onlinedeep.export` (:func:`load_module`), :mod:`onlinedeep.live`
  — library use: a learner object, progressive validation, test error, PyTorch export, TensorBoard;
- :mod:`onlinedeep.snapshot`, :mod:`onlinedeep.run_folder` — the snapshot format, the files of a run;
- :mod:`onlinedeep.config`, :mod:`onlinedeep.phases`, :mod:`onlinedeep.threads` — the user's options,
  the phases and chunks they imply, the thread counts;
- :mod:`onlinedeep.kernels`, :mod:`onlinedeep.model`, :mod:`onlinedeep.metrics`,
  :mod:`onlinedeep.noise` — the updates, the network, the prequential metrics, the random draws.

Every name below but ``RunConfig`` is imported on first use (they load torch).
"""
from onlinedeep.config import RunConfig

__version__ = "0.1.0"
__all__ = ["RunConfig", "Trainer", "resume", "OnlineMLP", "load_module", "progressive_val_score",
           "__version__"]

_LAZY = {
    "Trainer": "onlinedeep.training",
    "resume": "onlinedeep.training",
    "OnlineMLP": "onlinedeep.learner",
    "load_module": "onlinedeep.export",
    "progressive_val_score": "onlinedeep.progressive",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'onlinedeep' has no attribute {name!r}")
