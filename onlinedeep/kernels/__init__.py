"""Training kernels: run a chunk of consecutive batch-size-1 updates in place on a parameter dict.

Every kernel computes the maths of docs/architecture.md ("The maths every kernel computes") and
gives the same weights as :mod:`onlinedeep.kernels.reference`, the plain per-example PyTorch loop,
to float tolerance. :func:`get` picks one by name:

================  =========  ===========================================  ============================
name              devices    module                                       note
================  =========  ===========================================  ============================
``reference``     cpu, cuda  ``onlinedeep.kernels.reference``             hand-written PyTorch loop
``numba``         cpu        ``onlinedeep.kernels.numba_cpu``             compiled loop
``cuda-graph``    cuda       ``onlinedeep.kernels.cuda``                  CUDA-graph replay
``auto``          any        the fastest of the above available for the device, else ``reference``
================  =========  ===========================================  ============================

Each kernel module exposes ``make_kernel(device) -> Kernel``; modules are imported lazily, on first
use. CPU threads: a kernel that runs its own threads (``Kernel.owns_threads``, the numba kernel)
takes them as ``make_kernel(device, threads=n)``; for the others, which compute with PyTorch, ``n``
is PyTorch's process-wide intra-op thread count (CPU devices only). ``0`` means auto; what auto
means is decided in :func:`onlinedeep.threads.decide`.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch

from onlinedeep import threads as thread_policy

__all__ = ["Kernel", "KERNEL_NAMES", "get", "available", "pretrain_chunk"]


@runtime_checkable
class Kernel(Protocol):
    """What the trainer calls. Shapes: see docs/architecture.md, section Kernels.

    All methods update ``params`` in place, one example after the other, and return monitoring
    values as tensors on the parameters' device without synchronising with it.
    """

    name: str
    owns_threads: bool
    """True: the kernel runs its own CPU threads (``make_kernel(device, threads=n)``) and its weights
    do not depend on their count; False: it computes with PyTorch's process-wide threads."""

    def supervised(self, params, x, y, *, learning_rate, l1, l2):
        """``x (n, fan_in) float32``, ``y (n,) int64`` → ``(errors (n,) uint8, nll (n,) float32)``."""
        ...

    def dae(self, params, layer, x, keep, values, *, learning_rate):
        """``x, keep, values (n, fan_in)`` → reconstruction cross-entropy ``(n,) float32``."""
        ...

    def rbm(self, params, layer, x, u_hidden, u_visible, *, learning_rate, cd_k):
        """``x (n, fan_in)``, ``u_hidden (n, cd_k, n_hidden)`` → cross-entropy ``(n,) float32``."""
        ...


@dataclass(frozen=True)
class _Entry:
    module: str
    devices: tuple[str, ...]


_REGISTRY: dict[str, _Entry] = {
    "reference": _Entry("onlinedeep.kernels.reference", ("cpu", "cuda")),
    "numba": _Entry("onlinedeep.kernels.numba_cpu", ("cpu",)),
    "cuda-graph": _Entry("onlinedeep.kernels.cuda", ("cuda",)),
}
# Preference order of "auto", fastest first, per device type.
_AUTO_ORDER: dict[str, tuple[str, ...]] = {
    "cpu": ("numba", "reference"),
    "cuda": ("cuda-graph", "reference"),
}

KERNEL_NAMES: tuple[str, ...] = ("auto", *_REGISTRY)


def _import(name: str):
    """The kernel's module, or None if that module does not exist (yet)."""
    module = _REGISTRY[name].module
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        # Only a missing kernel module means "not available"; a missing dependency inside an
        # existing module is a real error and propagates.
        if exc.name == module:
            return None
        raise


def available(device: str | torch.device = "cpu") -> list[str]:
    """Names of the kernels that can run on ``device`` in this installation (``auto`` excluded)."""
    dev = torch.device(device)
    return [name for name, entry in _REGISTRY.items()
            if dev.type in entry.devices and _import(name) is not None]


def _make(module, dev: torch.device, threads: int) -> Kernel:
    # What a kernel can do decides how it is built: one that runs its own threads takes the count;
    # one that computes with PyTorch gets PyTorch's process-wide count (CPU only).
    if "threads" in inspect.signature(module.make_kernel).parameters:
        kernel = module.make_kernel(dev, threads=threads)
    else:
        kernel = module.make_kernel(dev)
    if not kernel.owns_threads and dev.type == "cpu":
        n = thread_policy.decide("torch", threads)
        if n is not None:
            torch.set_num_threads(n)
    return kernel


def get(name: str, device: str | torch.device = "cpu", threads: int = 0) -> Kernel:
    """Build the kernel called ``name`` for ``device``.

    Parameters
    ----------
    name : str
        ``"auto"``, ``"reference"``, ``"numba"`` or ``"cuda-graph"``. ``"auto"`` takes the numba kernel
        on CPU and the cuda-graph kernel on CUDA when their modules are installed, else the reference.
    device : str or torch.device
        Device of the parameters the kernel will update.
    threads : int
        CPU threads, >= 0. numba: the kernel's own threads (0 = auto,
        ``onlinedeep.threads.decide("kernel")``; results do not depend on it).
        reference / cuda-graph on a CPU device: ``torch.set_num_threads(threads)`` (process-wide;
        0 leaves PyTorch's setting).

    Returns
    -------
    Kernel

    Raises
    ------
    ValueError
        If the name is unknown, the kernel does not run on that device type, its module is missing,
        or ``threads`` is not an integer >= 0.
    """
    dev = torch.device(device)
    if isinstance(threads, bool) or int(threads) != threads or threads < 0:
        raise ValueError(f"threads must be an integer >= 0 (0: auto), found {threads!r}")
    threads = int(threads)
    if name == "auto":
        for candidate in _AUTO_ORDER.get(dev.type, ("reference",)):
            module = _import(candidate)
            if module is not None and dev.type in _REGISTRY[candidate].devices:
                return _make(module, dev, threads)
        raise ValueError(f"no kernel runs on device {dev} (kernels support cpu and cuda)")
    if name not in _REGISTRY:
        raise ValueError(f"unknown kernel {name!r}; expected one of {', '.join(KERNEL_NAMES)}")
    entry = _REGISTRY[name]
    if dev.type not in entry.devices:
        raise ValueError(
            f"kernel {name!r} does not run on device {dev}; it runs on {', '.join(entry.devices)} "
            f"(available for {dev.type}: {', '.join(available(dev)) or 'none'})"
        )
    module = _import(name)
    if module is None:
        raise ValueError(f"kernel {name!r} is not available: module {entry.module} is not installed")
    return _make(module, dev, threads)


def pretrain_chunk(kernel, params, layer: int, x, drawn: dict, *, pretrain: str,
                   learning_rate: float, cd_k: int, device):
    """One chunk of pre-training updates of hidden layer ``layer``, one example each: a DAE
    (paper 5.1.2) or an RBM by CD-k (5.1.1) on ``x (n, fan_in)``, the output of the layers below.

    ``drawn`` holds the chunk's random draws as numpy arrays (``keep``, ``values`` or
    ``u_hidden``, ``u_visible``; None where unused, see :mod:`onlinedeep.training.draws`); they are
    moved to ``device`` here. Returns the reconstruction cost ``(n,) float32`` as a numpy array.
    """
    dev = {k: None if v is None else torch.from_numpy(v).to(device) for k, v in drawn.items()}
    if pretrain == "dae":
        cost = kernel.dae(params, layer, x, dev["keep"], dev["values"], learning_rate=learning_rate)
    else:
        cost = kernel.rbm(params, layer, x, dev["u_hidden"], dev["u_visible"],
                          learning_rate=learning_rate, cd_k=cd_k)
    return cost.cpu().numpy()
