"""Compiled CPU kernel (:class:`NumbaKernel`): a whole chunk of batch-size-1 updates inside one
Numba function.

This module is the Python side: it checks the arguments, takes zero-copy NumPy views of the
parameter tensors (updated in place), allocates the vectors a chunk's threads share, runs those
threads (the caller's and the kernel's helpers), and calls the compiled
chunk drivers of :mod:`onlinedeep.kernels.numba_chunks`, whose docstring says how they sweep the
weights (over the row blocks of :mod:`onlinedeep.kernels.numba_sweeps`); the maths is exactly that
of docs/architecture.md ("The maths every kernel computes").

Sources: the updates are those of Erhan et al. (2010), sections 5.1.1 (RBM, CD-k), 5.1.2 (denoising
auto-encoder) and 5.3 (supervised fine-tuning, L1/L2 penalties).
"""

from __future__ import annotations

import os
import queue
import threading
import weakref

import numpy as np
import torch

from onlinedeep import threads as thread_policy
from onlinedeep.kernels.numba_chunks import DAE as _DAE
from onlinedeep.kernels.numba_chunks import RBM as _RBM
from onlinedeep.kernels.numba_chunks import SUPERVISED as _SUPERVISED
from onlinedeep.kernels.numba_sweeps import N_BLOCKS
from onlinedeep.kernels.numba_sync import ABORT, new_sync
from onlinedeep.kernels.weight_decay import decay_factor

__all__ = ["NumbaKernel", "make_kernel", "N_BLOCKS"]

_F32 = np.float32


# ---------------------------------------------------------------------------------------------
# Python side: checks and zero-copy views.

def _param(params: dict, key: str) -> np.ndarray:
    """The numpy view (shared memory) of one parameter, which the kernel updates in place."""
    if key not in params:
        raise KeyError(f"parameter {key!r} missing from params (keys: {', '.join(params)})")
    t = params[key]
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"params[{key!r}] must be a torch.Tensor, found {type(t).__name__}")
    if t.device.type != "cpu" or t.dtype != torch.float32 or not t.is_contiguous():
        raise ValueError(
            f"params[{key!r}] must be a contiguous float32 CPU tensor for the numba kernel; found "
            f"dtype {t.dtype}, device {t.device}, contiguous={t.is_contiguous()}"
        )
    return t.detach().numpy()


def _wrong_shape(key: str, arr: np.ndarray, expected: str):
    raise ValueError(f"params[{key!r}] must have shape {expected}, found {arr.shape}")


def _check_shape(key: str, arr: np.ndarray, shape: tuple) -> None:
    """A wrong shape would make the compiled kernel read or write past the array."""
    if arr.shape != shape:
        _wrong_shape(key, arr, str(shape))


def _layer_params(params: dict, layer: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``W{layer} (fan_in, n_hidden)``, ``b{layer} (n_hidden,)``, ``c{layer} (fan_in,)``, checked."""
    W, b, c = (_param(params, f"{p}{layer}") for p in ("W", "b", "c"))
    if W.ndim != 2:
        _wrong_shape(f"W{layer}", W, "(fan_in, n_hidden)")
    _check_shape(f"b{layer}", b, (W.shape[1],))
    _check_shape(f"c{layer}", c, (W.shape[0],))
    return W, b, c


def _input(name: str, a, shape: tuple, dtype) -> np.ndarray:
    """A C-contiguous numpy copy/view of an input array, checked against the expected shape."""
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    arr = np.ascontiguousarray(np.asarray(a), dtype=dtype)
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, found {arr.shape}")
    return arr


class _Helpers:
    """Threads 1..n of a multi-threaded kernel: each waits for a chunk, runs its part of the
    driver, reports back. A failure in one sets the chunk's abort flag (the others leave their
    barrier) and is re-raised in the caller by :meth:`wait`."""

    def __init__(self, n: int):
        self.count = n
        self.pid = os.getpid()
        self._jobs = [queue.SimpleQueue() for _ in range(n)]
        self._done: queue.SimpleQueue = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._serve, args=(t + 1, jobs), daemon=True,
                                          name=f"numba-kernel-{t + 1}")
                         for t, jobs in enumerate(self._jobs)]
        for thread in self._threads:
            thread.start()

    def _serve(self, t, jobs):
        while True:
            job = jobs.get()
            if job is None:
                return
            driver, args, T, sync, cpus = job
            # (the chunk's arrays must not outlive it here: freeing a tensor late, at interpreter
            # exit, aborted the process)
            del job
            try:
                _pin({cpus[t]} if cpus is not None else None)
                driver(*args, t, T, sync)
                outcome = None
            except BaseException as exc:  # re-raised by wait() in the caller's thread
                sync[ABORT] = 1
                outcome = exc
            del driver, args, sync
            self._done.put(outcome)
            del outcome

    def submit(self, driver, args, T, sync, cpus) -> None:
        """Start a chunk: ``driver(*args, t, T, sync)`` on each helper t, pinned to core
        ``cpus[t]`` (None: not pinned)."""
        for jobs in self._jobs:
            jobs.put((driver, args, T, sync, cpus))

    def wait(self, raise_failure: bool = True) -> None:
        """Wait for every helper to finish its part; raise the first failure (if asked)."""
        failures = [self._done.get() for _ in self._jobs]
        failure = next((f for f in failures if f is not None), None)
        if failure is not None and raise_failure:
            raise failure

    def stop(self) -> None:
        """End the helper threads and wait for them (at most a second each). Also called at
        interpreter exit (``weakref.finalize``), before Python finalizes: a daemon thread still
        ending while it does was seen to abort the process ("terminate called without an active
        exception", exit status 134)."""
        for jobs in self._jobs:
            jobs.put(None)
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=1.0)


def _affinity() -> set | None:
    """The cores the calling thread may run on (None where the platform does not say)."""
    try:
        return os.sched_getaffinity(0)
    except (AttributeError, OSError):
        return None


def _pin(cpus: set | None) -> None:
    """Let the calling thread run on ``cpus`` only (None: leave it). Best effort: pinning only
    speeds a chunk up, so a refusal (a core gone from the process's set) is ignored."""
    if cpus is None:
        return
    try:
        os.sched_setaffinity(0, cpus)
    except OSError:
        pass


def _shared(shape) -> np.ndarray:
    """Zeros of ``shape``, float32, starting on a 64-byte boundary (a vector the kernel streams at
    every update: a misaligned one splits its 512-bit loads across cache lines)."""
    count = int(np.prod(shape))
    raw = np.zeros(count + 16, dtype=np.float32)
    start = (-raw.ctypes.data % 64) // 4
    return raw[start:start + count].reshape(shape)


def _rows_of(x, fan_in: int) -> int:
    shape = tuple(x.shape)
    if len(shape) != 2 or shape[1] != fan_in:
        raise ValueError(f"x must have shape (n, {fan_in}), found {shape}")
    return shape[0]


class NumbaKernel:
    """Batch-size-1 SGD, DAE and RBM updates compiled with Numba, for float32 CPU parameters.

    Implements the ``Kernel`` protocol of :mod:`onlinedeep.kernels` (docs/architecture.md): each
    method runs a whole chunk of consecutive updates, one example per update, in place on the numpy
    views of the parameter tensors, and returns per-example monitoring values.

    Parameters
    ----------
    n_threads : int, optional
        Threads running each chunk (default or 0: ``onlinedeep.threads.decide("kernel")``): the
        caller's and ``n_threads - 1`` helper threads this kernel starts at its first chunk and
        keeps; they meet at a spinning barrier after every sweep (:mod:`numba_sync`), and are
        pinned one to a core during a chunk when the caller may run on exactly ``n_threads``
        cores. At most :data:`N_BLOCKS` (4) threads work on a sweep, and no more than the cores
        the caller may run on (``os.sched_getaffinity``): a larger count is reduced for the
        chunk. With 1, the chunk runs on the caller's thread alone (as in
        :mod:`onlinedeep.kernels.replicas`, one model per thread). One multi-threaded chunk
        runs at a time per kernel (a lock), whichever Python threads call it.
        **Results are bit-identical for every thread count**: each sweep is cut into the same
        :data:`N_BLOCKS` row blocks whose partial sums are added in a fixed order, whichever thread
        runs which block (tests/test_kernels_numba.py). So a run may be resumed with another count.

    Attributes
    ----------
    n_threads : int
        The threads asked for (after the default and the :data:`N_BLOCKS` cap); assignable
        between chunks, checked as in the constructor.

    Raises
    ------
    ValueError
        If ``n_threads`` is not an integer >= 0 (or ``$ONLINEDEEP_NUMBA_THREADS`` is invalid).

    Notes
    -----
    Maths: Erhan et al. (2010), sections 5.1.1, 5.1.2 and 5.3, as written in docs/architecture.md.
    """

    name = "numba"
    owns_threads = True  # runs its own threads (n_threads); its weights do not depend on them

    def __init__(self, n_threads: int | None = None):
        if n_threads is None or (not isinstance(n_threads, bool) and n_threads == 0):
            n_threads = thread_policy.decide("kernel")
        if isinstance(n_threads, bool) or int(n_threads) != n_threads or n_threads < 1:
            raise ValueError(f"n_threads must be an integer >= 1 (0 or None: auto), found {n_threads!r}")
        self.n_threads = n_threads
        self._helpers = None
        self._lock = threading.Lock()   # one multi-threaded chunk at a time: they share helpers

    @property
    def n_threads(self) -> int:
        """Threads of each chunk, 1 to :data:`N_BLOCKS` (assigning checks and caps the value, as
        the constructor does; the trainer changes it between chunks)."""
        return self._n_threads

    @n_threads.setter
    def n_threads(self, value) -> None:
        try:
            valid = not isinstance(value, bool) and int(value) == value and value >= 1
        except (TypeError, ValueError, OverflowError):
            valid = False
        if not valid:
            raise ValueError(f"n_threads must be an integer >= 1, found {value!r}")
        self._n_threads = min(int(value), N_BLOCKS)

    def __getstate__(self) -> dict:
        # A copy or an unpickled kernel starts its own helper threads at its first chunk
        # (threads, queues and locks do not pickle; a learner holding this kernel must).
        return {**self.__dict__, "_helpers": None, "_lock": None}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _run(self, driver, *args):
        """Run ``driver(*args, t, T, sync)`` on ``T`` threads: thread 0 is the caller's, threads
        1..T-1 are this kernel's helpers (started at its first chunk, kept until it is
        garbage-collected, so the scheduler places them once).

        ``T`` is :attr:`n_threads`, but no more than the cores the caller may run on: threads
        beyond them would only wait for each other at every barrier (measured 0.1-0.15× one
        thread with 3-4 threads on 2 cores, and with 2 threads on one allowed core); the weights do not
        depend on it."""
        # (no affinity system call for one thread: the learner calls a kernel per example)
        allowed = _affinity() if self.n_threads > 1 else None
        T = self.n_threads if allowed is None else max(1, min(self.n_threads, len(allowed)))
        sync = new_sync()
        if T == 1:
            driver(*args, 0, 1, sync)
            return
        with self._lock:
            self._run_threads(driver, args, T, sync, allowed)

    def _run_threads(self, driver, args, T, sync, allowed):
        helpers = self._helpers
        # (the thread count may have changed since; a forked child inherits the object but not
        # the threads: it starts its own)
        if helpers is None or helpers.count != T - 1 or helpers.pid != os.getpid():
            if helpers is not None and helpers.pid == os.getpid():
                helpers.stop()
            self._helpers = helpers = _Helpers(T - 1)
            weakref.finalize(self, helpers.stop)
        # One thread per core, for the chunk, when the threads have exactly the cores the
        # process may use: two threads of a chunk that shared a core passed it to each other at
        # every barrier (seen on a 2-core machine: 47-50 ms per chunk against 27 ms; the
        # scheduler did not always separate them). With more cores than threads the scheduler
        # has room, and fixed cores would collide with other processes doing the same.
        cpus = sorted(allowed) if allowed is not None and len(allowed) == T else None
        helpers.submit(driver, args, T, sync, cpus)
        try:
            _pin({cpus[0]} if cpus is not None else None)
            driver(*args, 0, T, sync)
        except BaseException:
            sync[ABORT] = 1       # the helpers leave their barrier and return
            helpers.wait(raise_failure=False)
            raise
        finally:
            _pin(allowed if cpus is not None else None)
        helpers.wait()

    def supervised(self, params, x, y, *, learning_rate, l1=0.0, l2=0.0):
        """Prequential supervised SGD on a chunk: record the error and NLL, then update.

        Parameters
        ----------
        params : dict[str, torch.Tensor]
            ``W{k}, b{k}`` (k = 0..L-1), ``W_out, b_out``; contiguous float32 CPU; updated in place.
        x : (n, fan_in_0) float32 tensor or array
            Inputs, one example per update, in order.
        y : (n,) int64 tensor or array
            Labels in [0, n_outputs).
        learning_rate, l1, l2 : float
            Step size and weight penalties (l1·Σ|W| + l2·ΣW² over weight matrices, not biases).
            With ``l2 > 0`` every weight decays by ``1 - 2·learning_rate·l2`` per update exactly
            (scaled representation, :mod:`onlinedeep.kernels.weight_decay`), rounded to float32
            once at the end of the chunk.

        Returns
        -------
        errors : (n,) uint8 tensor
            1 where argmax of the pre-update output (first maximum on ties) differs from y.
        nll : (n,) float32 tensor
            logsumexp(o) - o[y] at the pre-update weights.

        Raises
        ------
        KeyError, TypeError, ValueError
            Missing parameter, wrong tensor kind, wrong shape, a label out of range, or
            ``learning_rate · l2 >= 0.5``.
        """
        n_layers = 0
        while f"W{n_layers}" in params:
            n_layers += 1
        if n_layers == 0:
            raise KeyError(f"params has no hidden layer W0 (keys: {', '.join(params)})")
        # Tuples, not numba.typed.List: a typed List built from Python compiles Numba's own
        # list functions in every process (uncached: ~0.5 s of CPU per process here, 4-15 s of
        # wall time with the cores busy).
        Ws = tuple(_param(params, f"W{k}") for k in range(n_layers))
        bs = tuple(_param(params, f"b{k}") for k in range(n_layers))
        W_out, b_out = _param(params, "W_out"), _param(params, "b_out")
        for k in range(n_layers):
            if Ws[k].ndim != 2 or (k and Ws[k].shape[0] != Ws[k - 1].shape[1]):
                _wrong_shape(f"W{k}", Ws[k], f"({Ws[k - 1].shape[1]}, n_hidden)" if k else
                             "(fan_in, n_hidden)")
            _check_shape(f"b{k}", bs[k], (Ws[k].shape[1],))
        if W_out.ndim != 2 or W_out.shape[0] != Ws[-1].shape[1]:
            _wrong_shape("W_out", W_out, f"({Ws[-1].shape[1]}, n_outputs)")
        _check_shape("b_out", b_out, (W_out.shape[1],))
        n = _rows_of(x, Ws[0].shape[0])
        X = _input("x", x, (n, Ws[0].shape[0]), np.float32)
        y_in = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
        if y_in.dtype.kind not in "iub":
            bad = np.flatnonzero(~np.isfinite(y_in) | (y_in != np.round(y_in))) \
                if y_in.dtype.kind == "f" else np.arange(y_in.size)
            if bad.size:
                raise ValueError(f"y must hold class indices (integers), found "
                                 f"{y_in.flat[bad[0]].item()!r} at y[{bad[0]}] (dtype {y_in.dtype})")
        Y = _input("y", y_in, (n,), np.int64)
        n_out = W_out.shape[1]
        if n and (Y.min() < 0 or Y.max() >= n_out):
            bad = int(np.flatnonzero((Y < 0) | (Y >= n_out))[0])
            raise ValueError(f"y[{bad}] = {Y[bad]} is not a class index in [0, {n_out})")
        errors = np.zeros(n, dtype=np.uint8)
        nll = np.zeros(n, dtype=np.float32)
        decay = decay_factor(learning_rate, l2)  # float64; raises for learning_rate·l2 >= 0.5
        if n:
            width = max(W.shape[1] for W in Ws)
            WoT = _shared((n_out, W_out.shape[0]))   # the softmax layer, transposed
            WoT[:] = W_out.T
            self._run(_SUPERVISED, Ws, bs, W_out, b_out, X, Y, _F32(learning_rate), _F32(l1),
                      _F32(l2), errors, nll, float(learning_rate), decay, float(l2) != 0.0,
                      _shared((n_layers, width)), _shared((n_layers, width)),
                      _shared((N_BLOCKS, width)), WoT)
            W_out[:] = WoT.T
        return torch.from_numpy(errors), torch.from_numpy(nll)

    def dae(self, params, layer, x, keep, values, *, learning_rate):
        """Denoising auto-encoder updates of hidden layer ``layer`` (tied weights) on a chunk.

        Parameters
        ----------
        params : dict[str, torch.Tensor]
            Uses ``W{layer} (fan_in, n_hidden)``, ``b{layer}``, ``c{layer}``; updated in place.
        layer : int
        x : (n, fan_in) float32
            Clean inputs of the layer (output of the fixed layers below), in [0, 1].
        keep : (n, fan_in) bool
            False where the input is corrupted.
        values : (n, fan_in) float32 or None
            Replacement values where ``keep`` is False (salt-and-pepper); None = masking noise (0).
        learning_rate : float

        Returns
        -------
        (n,) float32 tensor
            Reconstruction cross-entropy -Σ x log x̂ + (1-x) log(1-x̂) at the pre-update weights.
        """
        W, b, c = _layer_params(params, layer)
        fan_in = W.shape[0]
        n = _rows_of(x, fan_in)
        X = _input("x", x, (n, fan_in), np.float32)
        K = _input("keep", keep, (n, fan_in), np.bool_)
        has_values = values is not None
        V = (_input("values", values, (n, fan_in), np.float32) if has_values
             else np.zeros((1, fan_in), dtype=np.float32))
        cost = np.zeros(n, dtype=np.float32)
        if n:
            n_hid = W.shape[1]
            self._run(_DAE, W, b, c, X, K, V, has_values, _F32(learning_rate), cost,
                      _shared((N_BLOCKS, n_hid)), *(_shared(fan_in) for _ in range(2)),
                      *(_shared(n_hid) for _ in range(3)), *(_shared(fan_in) for _ in range(2)))
        return torch.from_numpy(cost)

    def rbm(self, params, layer, x, u_hidden, u_visible, *, learning_rate, cd_k=1):
        """RBM CD-k updates of hidden layer ``layer`` on a chunk.

        Parameters
        ----------
        params : dict[str, torch.Tensor]
            Uses ``W{layer} (fan_in, n_hidden)``, ``b{layer}``, ``c{layer}``; updated in place.
        layer : int
        x : (n, fan_in) float32
            Visible probabilities v0.
        u_hidden : (n, cd_k, n_hidden) float32
            Uniforms of the hidden samples h = [u < p].
        u_visible : (n, cd_k, fan_in) float32 or None
            Uniforms of sampled reconstructions; None = use the probabilities.
        learning_rate : float
        cd_k : int
            Gibbs steps, >= 1.

        Returns
        -------
        (n,) float32 tensor
            Cross-entropy of the first reconstruction against v0, at the pre-update weights.
        """
        if int(cd_k) != cd_k or cd_k < 1:
            raise ValueError(f"cd_k must be an integer >= 1, found {cd_k!r}")
        W, b, c = _layer_params(params, layer)
        fan_in, n_hid = W.shape
        n = _rows_of(x, fan_in)
        X = _input("x", x, (n, fan_in), np.float32)
        UH = _input("u_hidden", u_hidden, (n, int(cd_k), n_hid), np.float32)
        has_uv = u_visible is not None
        UV = (_input("u_visible", u_visible, (n, int(cd_k), fan_in), np.float32) if has_uv
              else np.zeros((1, 1, fan_in), dtype=np.float32))
        cost = np.zeros(n, dtype=np.float32)
        if n:
            self._run(_RBM, W, b, c, X, UH, UV, has_uv, _F32(learning_rate), int(cd_k), cost,
                      _shared((N_BLOCKS, n_hid)), *(_shared(n_hid) for _ in range(4)),
                      *(_shared(fan_in) for _ in range(4)))
        return torch.from_numpy(cost)


def make_kernel(device, threads: int = 0) -> NumbaKernel:
    """Entry point of :func:`onlinedeep.kernels.get` (CPU only).

    Parameters
    ----------
    device : str or torch.device
        Must be a CPU device.
    threads : int
        Threads of the kernel, 0 = auto (``onlinedeep.threads.decide("kernel")``).

    Raises
    ------
    ValueError
        On a non-CPU device or a bad thread count.
    """
    dev = torch.device(device)
    if dev.type != "cpu":
        raise ValueError(f"the numba kernel runs on cpu only, not on {dev}")
    return NumbaKernel(n_threads=threads)
