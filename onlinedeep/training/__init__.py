"""Training one network on the stream: the online loop, its producer and draws, resume and branch.

- :mod:`~onlinedeep.training.loop` — :class:`Trainer`, the online loop;
- :mod:`~onlinedeep.training.state` — the run around it: start, snapshots, log, result;
- :mod:`~onlinedeep.training.resume` — :func:`resume` a run folder, :func:`branch` a snapshot;
- :mod:`~onlinedeep.training.producer` — the bounded queue and its thread;
- :mod:`~onlinedeep.training.draws` — the per-chunk random draws of pre-training;
- :mod:`~onlinedeep.training.data` — the stream and schedule a configuration describes;
- :mod:`~onlinedeep.training.interrupt` — stopping cleanly on SIGINT/SIGTERM.
"""
from onlinedeep.training.interrupt import TrainingInterrupted
from onlinedeep.training.loop import NonFiniteLossError, RunResult, Trainer
from onlinedeep.training.resume import branch, resume

__all__ = ["Trainer", "RunResult", "NonFiniteLossError", "TrainingInterrupted", "resume", "branch"]
