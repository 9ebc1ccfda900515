"""Finite data sets (paper sections 6-7): MNIST's fixed splits, a generated Shapeset, and training
by epochs (greedy pre-training, then fine-tuning, batch size 1) with per-epoch records.

Modules: :mod:`.data` (the three splits of a data set), :mod:`.shapeset` (the generator),
:mod:`.config` (:class:`FiniteConfig`), :mod:`.order` (the seeded order of an epoch),
:mod:`.init` (uniform and marginal-histogram initialisation), :mod:`.records` (per-epoch records,
best-validation selection), :mod:`.train` (the epoch trainer).
"""
