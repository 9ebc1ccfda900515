"""``OnlineMLP``: the engine as a learner object, in scikit-learn's and River's conventions.

- :mod:`onlinedeep.learner.mlp` — the learner (pre-training, fine-tuning, prediction);
- :mod:`onlinedeep.learner.river` — River's examples (dicts) and registration;
- :mod:`onlinedeep.learner.files` — save and load through the snapshot format.
"""
from onlinedeep.learner.mlp import OnlineMLP
from onlinedeep.learner.river import register_with_river

__all__ = ["OnlineMLP", "register_with_river"]
