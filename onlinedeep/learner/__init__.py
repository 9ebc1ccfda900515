"""``OnlineMLP``: the engine as a learner object, in scikit-learn's and River's conventions.

- :mod:`onlinedeep.learner.mlp` — the learner's scikit-learn API (pre-training, fine-tuning,
  prediction, hyperparameters);
- :mod:`onlinedeep.learner.state` — its state (configuration, network, classes, kernel) and checks;
- :mod:`onlinedeep.learner.updates` — its rows cut into the trainer's chunks and given to the kernel;
- :mod:`onlinedeep.learner.river` — River's API, examples (dicts) and registration;
- :mod:`onlinedeep.learner.files` — save and load through the snapshot format, ``to_module``.
"""
from onlinedeep.learner.mlp import OnlineMLP
from onlinedeep.learner.river import register_with_river

__all__ = ["OnlineMLP", "register_with_river"]
