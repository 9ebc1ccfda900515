"""Wall time spent compiling Numba functions, so a run's rate can leave it out.

A run on a machine whose Numba cache is empty compiles its kernels first (tens of seconds, once
per machine and code version); later runs load them from the cache. The time is measured with
Numba's event API (``numba:compile`` events), as the union of the intervals during which any
thread compiles: nested compilations (a kernel and the functions it calls) and compilations in
two threads at once (the trainer's and the producer's) count once.
"""
from __future__ import annotations

import contextlib
import threading
import time
from typing import Iterator

from numba.core import event


class CompileTime(event.Listener):
    """Accumulates ``seconds`` (float, wall seconds) of Numba compilation while installed."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._lock = threading.Lock()
        self._active = 0
        self._since = 0.0

    def on_start(self, ev) -> None:
        """A compilation starts (any thread; ``ev`` is Numba's event, unused)."""
        with self._lock:
            if self._active == 0:
                self._since = time.perf_counter()
            self._active += 1

    def on_end(self, ev) -> None:
        """A compilation ends; the time counts once no other one is still running."""
        with self._lock:
            if self._active == 0:  # installed while a compilation was under way: not ours
                return
            self._active -= 1
            if self._active == 0:
                self.seconds += time.perf_counter() - self._since


@contextlib.contextmanager
def counting(listener: CompileTime) -> Iterator[CompileTime]:
    """Add to ``listener.seconds`` the compilation time of every thread during the block."""
    with event.install_listener("numba:compile", listener):
        yield listener
