"""The threads of a multi-threaded Numba chunk: a spinning barrier (onlinedeep.kernels.numba_sync)
that orders every sweep, a failure in any thread that ends the chunk instead of hanging it, and
a forked child that starts its own helper threads. (That their weights equal one thread's, bit
for bit, is tests/test_kernels_numba.py.)"""
from __future__ import annotations

import multiprocessing
import threading

import numpy as np
import pytest
from numba import njit

from onlinedeep.kernels.numba_cpu import NumbaKernel
from onlinedeep.kernels.numba_sync import ABORT, barrier, new_sync
from onlinedeep.model import clone_params, init_params

pytestmark = pytest.mark.usefixtures("all_thread_counts")  # 3-4 threads on 2 cores too

ROUNDS = 300


@njit(nogil=True)
def _relay(out, t, T, sync):
    # Round r: thread r % T writes out[r] from out[r - 1]; the others wait at the barrier. Any
    # read before the previous round's write was visible would break the chain.
    sense = 0
    for r in range(1, out.shape[0]):
        if r % T == t:
            out[r] = out[r - 1] + 1
        sense = barrier(sync, T, sense)
        if sense < 0:
            return


@njit(nogil=True)
def _fail_in_thread_1(out, t, T, sync):
    if t == 1:
        raise ValueError("thread 1 failed")
    sense = barrier(sync, T, 0)
    out[0] = sense          # -1: the chunk was aborted


def _within(seconds, fn):
    """fn() on a daemon thread; its exception, or a failure if it does not return in time."""
    box = {}

    def run():
        try:
            fn()
        except BaseException as exc:
            box["exc"] = exc
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"no return within {seconds} s (a thread hangs at the barrier)"
    return box.get("exc")


@pytest.mark.parametrize("T", [2, 3, 4])
def test_barrier_orders_every_round(T):
    out = np.zeros(ROUNDS, dtype=np.int64)
    kernel = NumbaKernel(n_threads=T)
    assert _within(60, lambda: kernel._run(_relay, out)) is None
    np.testing.assert_array_equal(out, np.arange(ROUNDS))


def test_one_thread_never_waits():
    out = np.zeros(ROUNDS, dtype=np.int64)
    _relay(out, 0, 1, new_sync())
    np.testing.assert_array_equal(out, np.arange(ROUNDS))


def test_a_failing_thread_aborts_the_chunk_and_its_error_is_raised():
    out = np.zeros(1, dtype=np.int64)
    kernel = NumbaKernel(n_threads=2)
    exc = _within(60, lambda: kernel._run(_fail_in_thread_1, out))
    assert isinstance(exc, ValueError) and "thread 1 failed" in str(exc)
    assert out[0] == -1
    # the kernel's threads are still usable
    chain = np.zeros(ROUNDS, dtype=np.int64)
    assert _within(60, lambda: kernel._run(_relay, chain)) is None
    np.testing.assert_array_equal(chain, np.arange(ROUNDS))


def test_an_aborted_barrier_returns_minus_one():
    sync = new_sync()
    sync[ABORT] = 1
    out = np.zeros(1, dtype=np.int64)
    _fail_in_thread_1(out, 0, 2, sync)
    assert out[0] == -1


def test_a_forked_child_runs_a_two_thread_kernel_its_parent_used():
    params = init_params(784, 16, 1, seed=3)
    before = clone_params(params)
    x = np.random.default_rng(0).random((40, 784), dtype=np.float32)
    y = np.arange(40) % 10
    kernel = NumbaKernel(n_threads=2)
    kernel.supervised(params, x, y, learning_rate=0.1)   # the parent's helper threads exist now
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()

    def child(q):
        kernel.supervised(before, x, y, learning_rate=0.1)   # the inherited kernel object
        q.put(before["W0"].numpy().copy())
    proc = ctx.Process(target=child, args=(queue,))
    proc.start()
    proc.join(120)
    if proc.is_alive():
        proc.kill()
        pytest.fail("the forked child hung in a two-thread chunk")
    assert proc.exitcode == 0
    np.testing.assert_array_equal(queue.get(timeout=10), params["W0"].numpy())


def test_a_kernel_with_helper_threads_pickles_and_copies():
    """A learner holding a two-thread kernel must still pickle (threads and queues do not): the
    copy starts its own helpers and trains to the same bits."""
    import copy
    import pickle

    params = init_params(784, 16, 1, seed=3)
    x = np.random.default_rng(0).random((40, 784), dtype=np.float32)
    y = np.arange(40) % 10
    kernel = NumbaKernel(n_threads=2)
    kernel.supervised(params, x, y, learning_rate=0.1)
    for twin in (pickle.loads(pickle.dumps(kernel)), copy.deepcopy(kernel)):
        assert twin.n_threads == 2
        a, b = clone_params(params), clone_params(params)
        kernel.supervised(a, x, y, learning_rate=0.1)
        twin.supervised(b, x, y, learning_rate=0.1)
        np.testing.assert_array_equal(a["W0"].numpy(), b["W0"].numpy())


def _spin_once():
    from onlinedeep.kernels import numba_sync

    @njit(nogil=True)
    def spin_once():
        numba_sync._pause()
        return numba_sync._sched_yield()
    return spin_once


def test_the_spin_hint_compiles_away_on_other_processors(monkeypatch):
    """``pause`` is an x86 instruction: elsewhere (aarch64) the spin loop has no hint, and the
    barrier's helpers must still compile."""
    import platform

    from onlinedeep.kernels import numba_sync

    for x86 in (True, False):
        if x86 and not numba_sync._X86:
            continue                       # this machine cannot emit it
        monkeypatch.setattr(numba_sync, "_X86", x86)
        spin_once = _spin_once()
        assert spin_once() == 0            # sched_yield() succeeded
        asm = spin_once.inspect_asm(spin_once.signatures[0])
        assert ("pause" in asm) == x86, platform.machine()

