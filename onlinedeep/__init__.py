"""onlinedeep: online (prequential) training of deep networks at batch size 1 on InfiniteMNIST.

Re-runs the online experiments of Erhan, Bengio, Courville, Manzagol, Vincent & Bengio, "Why Does
Unsupervised Pre-training Help Deep Learning?" (JMLR 2010, sections 5 and 8). Modules, one concept
each (see docs/architecture.md):

- :mod:`onlinedeep.config` — :class:`RunConfig`, one field per ``onlinedeep train`` flag;
- :mod:`onlinedeep.model` — parameters and batched inference;
- :mod:`onlinedeep.noise` — random draws as pure functions of (seed, stream position);
- :mod:`onlinedeep.kernels` — the per-example update loops (reference PyTorch, Numba, CUDA graphs);
- :mod:`onlinedeep.producer`, :mod:`onlinedeep.metrics`, :mod:`onlinedeep.snapshot`,
  :mod:`onlinedeep.trainer` — the run loop;
- :mod:`onlinedeep.ordering_variance`, :mod:`onlinedeep.executors` — the Figure 13 experiment;
- :mod:`onlinedeep.learner` (:class:`OnlineMLP`), :mod:`onlinedeep.progressive`,
  :mod:`onlinedeep.evaluate`, :mod:`onlinedeep.export` (:func:`load_module`),
  :mod:`onlinedeep.live` — library use: a learner object, progressive validation, test error,
  PyTorch export, TensorBoard.
"""
from onlinedeep.config import RunConfig
from onlinedeep.export import load_module
from onlinedeep.learner import OnlineMLP
from onlinedeep.progressive import progressive_val_score
from onlinedeep.trainer import Trainer, resume

__version__ = "0.1.0"
__all__ = ["RunConfig", "Trainer", "resume", "OnlineMLP", "load_module", "progressive_val_score",
           "__version__"]
