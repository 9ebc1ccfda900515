"""Stopping a run cleanly on SIGINT (Ctrl-C) or SIGTERM.

The first signal only sets a flag, which the loop checks between chunks: it then writes a snapshot
and raises :class:`TrainingInterrupted`. A second signal raises at once, without a snapshot: the
loop runs each chunk in a :class:`ChunkWorker` thread while the main thread waits, because Python
runs signal handlers in the main thread between bytecodes only, never during a long compiled call.
"""
from __future__ import annotations

import queue
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Callable

__all__ = ["TrainingInterrupted", "StopSignals", "ChunkWorker"]


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
    at_once : bool
        Stopped by a second signal: a chunk may still be running in a worker thread, so a
        command line should exit at once (``os._exit``) rather than wait for it; every file is
        consistent (snapshots are written atomically).
    """

    def __init__(self, message: str, position: int, snapshot: Path | None, signum: int,
                 at_once: bool = False):
        super().__init__(message)
        self.position = position
        self.snapshot = snapshot
        self.signum = signum
        self.at_once = at_once

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
                   f"are lost", position, last, signum, at_once=True)


class StopSignals:
    """Context manager: SIGINT/SIGTERM set :attr:`received` (main thread only; elsewhere signals
    are left alone); a second one raises what ``at_once(signum)`` returns. The previous handlers
    are restored on exit.

    Parameters
    ----------
    at_once : callable ``(signum) -> TrainingInterrupted``
        Builds the exception of a second signal (and may log it).
    announce : bool
        Print one line to stderr on the first signal (what happens next).
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, at_once: Callable[[int], TrainingInterrupted], *, announce: bool = False):
        self._at_once = at_once
        self.announce = announce
        self._previous: dict = {}
        self.received: int | None = None

    def _handler(self, signum, frame):
        if self.received is not None:
            self._restore()
            raise self._at_once(signum)
        self.received = signum
        if self.announce:
            print(f"\n{signal.Signals(signum).name} received: stopping after the current chunk, "
                  f"with a snapshot (press Ctrl-C again to stop at once, without one)",
                  file=sys.stderr, flush=True)

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


class ChunkWorker:
    """Runs calls on one daemon thread while the calling (main) thread waits in short, signal-
    interruptible waits; off the main thread, or with ``direct=True``, it calls directly.

    If the wait is interrupted (a second signal raises), the call goes on in the worker until it
    returns; its results are dropped and the process may exit meanwhile (a daemon thread).
    Use as a context manager; :meth:`close` lets the thread end.
    """

    POLL_S = 0.05

    def __init__(self, *, direct: bool = False):
        self.direct = direct
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._idle = True

    def _serve(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            fn, args, box, done = job
            try:
                box["value"] = fn(*args)
            except BaseException as exc:  # handed to the waiting thread
                box["error"] = exc
            finally:
                done.set()

    def __call__(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self.direct or threading.current_thread() is not threading.main_thread():
            return fn(*args)
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name="onlinedeep-chunk",
                                            daemon=True)
            self._thread.start()
        box: dict = {}
        done = threading.Event()
        self._idle = False
        self._jobs.put((fn, args, box, done))
        while not done.wait(self.POLL_S):
            pass
        self._idle = True
        if "error" in box:
            raise box["error"]
        return box.get("value")

    def close(self) -> None:
        """Let the thread end; wait for it unless a call is still running (interrupted)."""
        if self._thread is not None:
            self._jobs.put(None)
            if self._idle:
                self._thread.join(5.0)
            self._thread = None

    def __enter__(self) -> "ChunkWorker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
