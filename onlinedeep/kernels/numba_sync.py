"""A spinning barrier for the threads of one chunk driver of the Numba kernel.

The threads of a multi-threaded chunk (:meth:`onlinedeep.kernels.numba_cpu.NumbaKernel._run`) each
run the same compiled driver from start to end, on their own row blocks, and meet at a barrier
between a sweep and the serial step that reads its partial sums (several times per update). An
update lasts 20-400 µs, so the meeting must cost well under a microsecond: Numba's ``prange``
starts a parallel region per sweep (its scheduling alone made two threads 0.6× as fast as one on
a quiet 2-core machine); here the threads start once per chunk and wait for each other by spinning
on an atomic counter (``pause`` between reads), yielding the core to the scheduler after
:data:`SPINS_BEFORE_YIELD` reads so that a waiting thread does not starve a busy one of a shared
core.

Not cached on disk on its own: compiled into the drivers of
:mod:`onlinedeep.kernels.numba_chunks` (see there).
"""
from __future__ import annotations

import platform
import sys

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.core.extending import intrinsic

__all__ = ["new_sync", "ABORT", "SPINS_BEFORE_YIELD"]

_COUNT, _SENSE = 0, 8          # on separate cache lines (8 int64 = 64 bytes)
ABORT = 16
"""Index of the abort flag in a sync array: non-zero makes every waiting thread leave."""

SPINS_BEFORE_YIELD = 4000
"""Reads of the barrier flag (each followed by ``pause``, ~15-40 ns on current x86) before the
waiting thread calls ``sched_yield``: about 100 µs, longer than the serial step between two
sweeps of an update."""


def new_sync() -> np.ndarray:
    """A fresh barrier state for the threads of one chunk: (24,) int64 zeros (count, sense and
    the abort flag, each on its own cache line)."""
    return np.zeros(24, dtype=np.int64)


def _item_pointer(context, builder, arr_type, arr, idx):
    ary = context.make_array(arr_type)(context, builder, arr)
    return cgutils.get_item_pointer(context, builder, arr_type, ary, [idx])


def _pointer_and_value(context, builder, sig, args):
    """The address of arr[idx] and the value as int64, for an (arr, idx, value) intrinsic."""
    ptr = _item_pointer(context, builder, sig.args[0], args[0], args[1])
    return ptr, context.cast(builder, args[2], sig.args[2], types.int64)


@intrinsic
def _load_acquire(typingctx, arr, idx):
    """arr[idx], an atomic load with acquire ordering (int64 array)."""
    sig = types.int64(arr, idx)

    def codegen(context, builder, sig, args):
        ptr = _item_pointer(context, builder, sig.args[0], args[0], args[1])
        return builder.load_atomic(ptr, "acquire", 8)
    return sig, codegen


@intrinsic
def _store_release(typingctx, arr, idx, value):
    """arr[idx] = value, an atomic store with release ordering (int64 array)."""
    sig = types.void(arr, idx, value)

    def codegen(context, builder, sig, args):
        ptr, v = _pointer_and_value(context, builder, sig, args)
        builder.store_atomic(v, ptr, "release", 8)
        return context.get_dummy_value()
    return sig, codegen


@intrinsic
def _fetch_add(typingctx, arr, idx, value):
    """arr[idx] += value atomically (acquire-release); returns the value before."""
    sig = types.int64(arr, idx, value)

    def codegen(context, builder, sig, args):
        ptr, v = _pointer_and_value(context, builder, sig, args)
        return builder.atomic_rmw("add", ptr, v, "acq_rel")
    return sig, codegen


_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86")
_YIELD = "SwitchToThread" if sys.platform == "win32" else "sched_yield"


@intrinsic
def _pause(typingctx):
    """The x86 ``pause`` hint of a spin loop (saves power, frees the core's pipeline); nothing
    on other processors (the loop stays correct, only hotter)."""
    sig = types.void()

    def codegen(context, builder, sig, args):
        if _X86:
            fn = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), []), "llvm.x86.sse2.pause")
            builder.call(fn, [])
        return context.get_dummy_value()
    return sig, codegen


@intrinsic
def _sched_yield(typingctx):
    """The C library's ``sched_yield()`` (``SwitchToThread()`` on Windows), called by name:
    resolved when the code is loaded, so the drivers stay cacheable, unlike a ctypes function
    pointer."""
    sig = types.int32()

    def codegen(context, builder, sig, args):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.IntType(32), []),
                                            _YIELD)
        return builder.call(fn, [])
    return sig, codegen


@njit(nogil=True)
def barrier(sync, T, sense):
    """Wait until all ``T`` threads of a chunk have called it (a sense-reversing barrier).

    Parameters
    ----------
    sync : (24,) int64 array
        Shared by the chunk's threads (:func:`new_sync`).
    T : int
        Threads of the chunk; with 1 it returns at once.
    sense : int
        This thread's sense (0 at the start of the chunk; the value returned by its last call).

    Returns
    -------
    int
        The new sense, or -1 if the chunk was aborted (``sync[ABORT]`` set, e.g. a thread failed
        to start): the driver must then return.

    Everything a thread wrote before the barrier is visible to every thread after it (release on
    arrival, acquire on leaving).
    """
    sense = 1 - sense
    if T == 1:
        return sense
    if _fetch_add(sync, _COUNT, 1) == T - 1:
        _store_release(sync, _COUNT, 0)
        _store_release(sync, _SENSE, sense)
        return sense
    spins = 0
    while _load_acquire(sync, _SENSE) != sense:
        if _load_acquire(sync, ABORT) != 0:
            return -1
        _pause()
        spins += 1
        if spins >= SPINS_BEFORE_YIELD:
            _sched_yield()
            spins = 0
    return sense
