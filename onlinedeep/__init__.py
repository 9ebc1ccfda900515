"""onlinedeep: online (prequential) training of deep networks at batch size 1 on InfiniteMNIST.

Re-runs the online experiments of Erhan, Bengio, Courville, Manzagol, Vincent & Bengio, "Why Does
Unsupervised Pre-training Help Deep Learning?" (JMLR 2010, sections 5 and 8). Modules, one concept
each (see docs/architecture.md):

- :mod:`onlinedeep.config` — :class:`RunConfig`, one field per ``onlinedeep train`` flag;
- :mod:`onlinedeep.model` — parameters and batched inference;
- :mod:`onlinedeep.noise` — random draws as pure functions of (seed, stream position);
- :mod:`onlinedeep.kernels` — the per-example update loops (reference PyTorch, Numba, CUDA graphs);
- :mod:`onlinedeep.training.producer`, :mod:`onlinedeep.metrics`, :mod:`onlinedeep.snapshot`,
  :mod:`onlinedeep.training.loop` — the run loop;
- :mod:`onlinedeep.experiments.ordering_variance`, :mod:`onlinedeep.experiments.executors` — the Figure 13 experiment.
"""
from onlinedeep.config import RunConfig
from onlinedeep.training.loop import Trainer, resume

__version__ = "0.1.0"
__all__ = ["RunConfig", "Trainer", "resume", "__version__"]
