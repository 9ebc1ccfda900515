"""How many CPU threads each part of a run uses: decided here, and only here.

A run has four kinds of CPU work, each with its own thread count (:func:`decide`):

``"kernel"``
    A kernel that runs its own threads (``Kernel.owns_threads``, the Numba kernel): the threads of
    each weight sweep. They never change the weights, only the speed.
``"torch"``
    PyTorch's process-wide intra-op threads, used by the PyTorch kernels and by evaluation
    (``model.predict_proba``). MKL's sgemm gives different bits for some row counts on 1 and 2
    threads, so this count is part of what a run computes: it is set only when asked for.
``"loop-torch"``
    PyTorch's threads *inside* the training loop of a kernel that owns its threads (the forward
    through the fixed layers below a pre-trained layer): one, so that the weights of a run do not
    depend on ``threads`` (a run may resume with another count) and a second thread pool does not
    compete with the kernel's for the cores.
``"generator"``
    Numba threads of the producer thread that generates the stream: one. Generation runs far ahead
    of training on one thread; a parallel generator would take cores from the kernel, whose threads
    wait for each other at every layer.
``"job"``
    Threads of one job of an experiment run by ``jobs`` local worker processes: the cores shared out.

A later change that adapts thread counts to the load of the machine changes this module alone.
"""
from __future__ import annotations

import contextlib
import os
from typing import Iterator

__all__ = ["AUTO_CAP", "ROLES", "available_cores", "decide", "torch_threads", "set_job_threads"]

AUTO_CAP = 2
"""Most threads ``"kernel"`` picks when none are asked for: more than two were never measured to
pay at batch size 1 (every sweep ends at a barrier)."""

ROLES = ("kernel", "torch", "loop-torch", "generator", "job")
ENV = "ONLINEDEEP_NUMBA_THREADS"
_KERNEL_MAX = 4  # the Numba kernel cuts every sweep into 4 row blocks: more threads would idle


def available_cores() -> int:
    """CPU cores this process may run on (``os.sched_getaffinity``; ``os.cpu_count`` elsewhere)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _env_threads() -> int | None:
    value = os.environ.get(ENV)
    if not value:
        return None
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"{ENV} must be an integer >= 1, found {value!r}")
    return n


def _fast_threading_layer() -> bool:
    """Whether a low-overhead Numba threading layer (TBB or OpenMP) can be loaded; the fallback
    "workqueue" layer costs more per parallel region than a whole sweep."""
    for module in ("numba.np.ufunc.tbbpool", "numba.np.ufunc.omppool"):
        try:
            __import__(module)
            return True
        except ImportError:
            continue
    return False


def decide(role: str, requested: int = 0, *, jobs: int = 1) -> int | None:
    """The thread count of one kind of CPU work.

    Parameters
    ----------
    role : {"kernel", "torch", "loop-torch", "generator", "job"}
        See the module docstring.
    requested : int
        What the user asked for (``--threads``, ``RunConfig.threads``), 0 = auto.
    jobs : int
        Local worker processes sharing the machine (role ``"job"``).

    Returns
    -------
    int or None
        ``"kernel"``: ``requested`` (at most 4), else ``$ONLINEDEEP_NUMBA_THREADS`` or the cores
        available capped at :data:`AUTO_CAP` and at the calling thread's Numba limit (at most 4 and
        Numba's thread limit; 1 without a TBB/OpenMP threading layer). ``"torch"``: ``requested``, or None (leave PyTorch's setting).
        ``"loop-torch"`` and ``"generator"``: 1. ``"job"``: ``requested``, else the cores divided
        by ``jobs`` (at least 1).

    Raises
    ------
    ValueError
        On an unknown role, a negative ``requested``, or an invalid ``$ONLINEDEEP_NUMBA_THREADS``.
    """
    if isinstance(requested, bool) or int(requested) != requested or requested < 0:
        raise ValueError(f"threads must be an integer >= 0 (0: auto), found {requested!r}")
    requested = int(requested)
    if role == "kernel":
        import numba

        if requested:
            return min(requested, _KERNEL_MAX)
        n = _env_threads()
        if n is None:
            n = min(available_cores(), AUTO_CAP, numba.get_num_threads())
        if not _fast_threading_layer():
            return 1
        return max(1, min(n, int(numba.config.NUMBA_NUM_THREADS), _KERNEL_MAX))
    if role == "torch":
        return requested or None
    if role in ("loop-torch", "generator"):
        return 1
    if role == "job":
        return requested or max(1, available_cores() // max(1, int(jobs)))
    raise ValueError(f"role: expected one of {ROLES}, found {role!r}")


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """PyTorch's intra-op threads set to ``n`` inside the block and restored after (None: unchanged)."""
    if n is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def set_job_threads(n: int | None) -> None:
    """Set PyTorch's and the calling thread's Numba threads for the rest of a job (None: unchanged)."""
    if n is None:
        return
    import numba
    import torch

    torch.set_num_threads(n)
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
