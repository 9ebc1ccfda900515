"""Where the threads of a multi-threaded Numba chunk run (onlinedeep.kernels.numba_cpu): no more
threads than the cores the caller may use, pinned one to a core when they have exactly those
cores, one chunk at a time per kernel, and a process that ends cleanly after using them. These
tests see the machine's real affinity (unlike tests/test_kernel_barrier.py)."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from onlinedeep.kernels.numba_cpu import NumbaKernel

from test_kernel_barrier import ROUNDS, _relay


def _record(out, t, T, sync):
    """A Python stand-in for a driver: what each thread of a chunk saw."""
    import os

    out[t] = (T, frozenset(os.sched_getaffinity(0)))


def test_threads_beyond_the_usable_cores_are_not_started(monkeypatch):
    from onlinedeep.kernels import numba_cpu

    monkeypatch.setattr(numba_cpu, "_affinity", lambda: {0})
    seen = {}
    NumbaKernel(n_threads=2)._run(_record, seen)
    assert list(seen) == [0] and seen[0][0] == 1


def test_threads_with_exactly_the_process_cores_are_pinned_one_to_a_core():
    import os

    allowed = os.sched_getaffinity(0)
    if not 2 <= len(allowed) <= 4:
        pytest.skip("pinning needs 2-4 usable cores")
    seen = {}
    NumbaKernel(n_threads=len(allowed))._run(_record, seen)
    cores = sorted(allowed)
    assert {t: s for t, (_, s) in seen.items()} == {t: {cores[t]} for t in range(len(cores))}
    assert os.sched_getaffinity(0) == allowed      # the caller's cores are given back


def test_n_threads_assigned_between_chunks_is_checked():
    kernel = NumbaKernel(n_threads=1)
    for bad in (-1, 0, None, 2.5, "2", True):
        with pytest.raises(ValueError, match="n_threads must be an integer >= 1"):
            kernel.n_threads = bad
    kernel.n_threads = 2.0
    assert kernel.n_threads == 2 and isinstance(kernel.n_threads, int)
    kernel.n_threads = 9
    assert kernel.n_threads == 4


def test_one_kernel_called_from_two_python_threads_at_once():
    """Its chunks share the kernel's helper threads: they run one after the other."""
    kernel = NumbaKernel(n_threads=2)             # no chunk yet: the helpers start in the race
    chains = [np.zeros(ROUNDS, dtype=np.int64) for _ in range(4)]
    callers = [threading.Thread(target=kernel._run, args=(_relay, chain), daemon=True)
               for chain in chains]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(60)
    assert not any(caller.is_alive() for caller in callers), "a caller hangs"
    for chain in chains:
        np.testing.assert_array_equal(chain, np.arange(ROUNDS))


def test_a_process_that_used_kernel_threads_exits_cleanly(tmp_path):
    """The helpers end before Python finalizes: a helper still ending while it did aborted the
    process ("terminate called without an active exception", exit status 134) in 4 of 10 runs."""
    import subprocess
    import sys

    script = tmp_path / "exit.py"
    script.write_text(
        "import numpy as np\n"
        "from onlinedeep.kernels.numba_cpu import NumbaKernel\n"
        "from onlinedeep.model import init_params\n"
        "p = init_params(784, 50, 1, seed=0)\n"
        "x = np.random.default_rng(0).random((200, 784), dtype=np.float32)\n"
        "y = np.arange(200) % 10\n"
        "kept = [NumbaKernel(n_threads=T) for T in (2, 3, 4, 4, 4)]\n"
        "from onlinedeep.kernels import numba_cpu\n"
        "numba_cpu._affinity = lambda: None\n"
        "for k in kept:\n"
        "    k.supervised(p, x, y, learning_rate=0.1)\n")
    for _ in range(6):
        done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
