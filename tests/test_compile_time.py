"""The summary's rate leaves out one-time Numba compilation (onlinedeep.training.compile_time)."""
from __future__ import annotations

import time

import numba

from onlinedeep.training.compile_time import CompileTime, counting
from onlinedeep_cli.train import _time_line


def test_compilation_is_counted_once_and_nothing_else():
    @numba.njit
    def inner(x):
        return x + 1

    @numba.njit
    def outer(x):
        return inner(x) * 2

    listener = CompileTime()
    with counting(listener):
        t0 = time.perf_counter()
        assert outer(1) == 4          # compiles outer and, nested in it, inner
        wall = time.perf_counter() - t0
        compiled = listener.seconds
        assert 0 < compiled <= wall   # nested compilations are not added twice
        outer(2)                      # compiled already
        time.sleep(0.05)
    assert listener.seconds == compiled
    outer(3.5)                        # a new signature, but the listener is gone
    assert listener.seconds == compiled
    stray = CompileTime()
    stray.on_end(None)                # the end of a compilation that started before it
    with counting(stray):
        outer(4j)
    assert stray.seconds > 0


def test_the_rate_leaves_out_compilation():
    assert _time_line(10.0, 0.0, 50_000) == ("time         10.0 s of training in total, "
                                             "5,000 updates/s")
    line = _time_line(10.0, 6.0, 50_000)
    assert "(6.0 s of it compiling the kernels, cached for later runs), 12,500 updates/s" in line
