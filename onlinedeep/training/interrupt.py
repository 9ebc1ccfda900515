"""Stopping a run cleanly on SIGINT (Ctrl-C) or SIGTERM.

The first signal only sets a flag, which the loop checks between chunks: it then writes a snapshot
and raises :class:`TrainingInterrupted`. A second signal raises at once, without a snapshot.
"""
from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Callable

__all__ = ["TrainingInterrupted", "StopSignals"]


class TrainingInterrupted(KeyboardInterrupt):
    """The run was stopped by SIGINT (Ctrl-C) or SIGTERM: at the next chunk boundary after writing a
    snapshot, or, on a second signal, at once (the message says so; ``log.txt`` records it).

    Attributes
    ----------
    position : int
        Examples trained when it stopped (a chunk boundary; on a second signal, the last one
        completed).
    snapshot : Path or None
        The snapshot written on the way out, or on a second signal the last one written (None
        without a run folder).
    signum : int
    """

    def __init__(self, message: str, position: int, snapshot: Path | None, signum: int):
        super().__init__(message)
        self.position = position
        self.snapshot = snapshot
        self.signum = signum

    @classmethod
    def at_boundary(cls, signum: int, position: int, snapshot: Path | None) -> "TrainingInterrupted":
        """The first signal, acted on at a chunk boundary after writing ``snapshot``."""
        where = f"; snapshot {snapshot}" if snapshot else ""
        return cls(f"{signal.Signals(signum).name} received: stopped at position {position}{where}",
                   position, snapshot, signum)

    @classmethod
    def at_once(cls, signum: int, position: int, last: Path | None) -> "TrainingInterrupted":
        """A second signal: stopped at once; the updates after the ``last`` snapshot are lost."""
        return cls(f"{signal.Signals(signum).name} received again: stopped at once, without a "
                   f"final snapshot; the updates after the last snapshot ({last or 'none written'}) "
                   f"are lost", position, last, signum)


class StopSignals:
    """Context manager: SIGINT/SIGTERM set :attr:`received` (main thread only; elsewhere signals
    are left alone); a second one raises what ``at_once(signum)`` returns. The previous handlers
    are restored on exit.

    Parameters
    ----------
    at_once : callable ``(signum) -> TrainingInterrupted``
        Builds the exception of a second signal (and may log it).
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, at_once: Callable[[int], TrainingInterrupted]):
        self._at_once = at_once
        self._previous: dict = {}
        self.received: int | None = None

    def _handler(self, signum, frame):
        if self.received is not None:
            self._restore()
            raise self._at_once(signum)
        self.received = signum

    def _restore(self) -> None:
        for s, h in self._previous.items():
            signal.signal(s, h)
        self._previous = {}

    def __enter__(self) -> "StopSignals":
        self.received = None
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self._previous[s] = signal.signal(s, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        self._restore()
