"""R independent models trained side by side on the CPU, each still one example per update.

Use case: the D draws of one ordering-variance segment, or several seeds, each model with
its own stream of examples. Each model is updated by the serial compiled loop of
:mod:`onlinedeep.kernels.numba_cpu` (``NumbaKernel(n_threads=1)``) in a worker thread; that loop
releases the GIL (``nogil``), so the workers run on different cores at once. Each model's weights are
therefore *bit-identical* to those of a separate run of ``NumbaKernel(n_threads=1)`` on the same
chunks (tested), and equal to the reference loop to float tolerance.

Why whole models per thread rather than one lockstep batch: a batch-1 update is bound by weight
traffic, so R models cost R times the traffic whatever the layout; giving each core whole models
avoids any synchronisation inside an update (``benchmarks/bench_train.py`` compares the two).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

import torch

from onlinedeep.kernels.numba_cpu import NumbaKernel

__all__ = ["Replicas"]


class Replicas:
    """Train R independent networks in lockstep chunks, one model per worker thread at a time.

    Parameters
    ----------
    params_list : sequence of dict[str, torch.Tensor]
        The R parameter dicts (contiguous float32 CPU tensors, layout of docs/architecture.md),
        updated in place. They must not share storage.
    n_workers : int, optional
        Worker threads (default: the number of CPU cores, at most R).

    Notes
    -----
    Every method takes one chunk per model (lists of length R, chunk r for model r; chunk lengths
    may differ) and returns one result per model, in order; the maths is that of
    :class:`onlinedeep.kernels.numba_cpu.NumbaKernel` (Erhan et al. 2010, sections 5.1.1, 5.1.2,
    5.3). Use as a context manager, or call :meth:`close`, to stop the workers.

    Raises
    ------
    ValueError
        If ``params_list`` is empty, two models share a tensor, or a chunk list has the wrong length.
    """

    def __init__(self, params_list: Sequence[dict], *, n_workers: int | None = None):
        self.params_list = list(params_list)
        if not self.params_list:
            raise ValueError("params_list must hold at least one parameter dict, found none")
        seen: dict[int, tuple[int, str]] = {}
        for r, params in enumerate(self.params_list):
            for key, t in params.items():
                ptr = t.untyped_storage().data_ptr() if isinstance(t, torch.Tensor) else id(t)
                if ptr in seen:
                    other = seen[ptr]
                    raise ValueError(f"replica {r} ({key}) shares storage with replica {other[0]} "
                                     f"({other[1]}); replicas must be independent copies")
                seen[ptr] = (r, key)
        if n_workers is None:
            n_workers = min(len(self.params_list), os.cpu_count() or 1)
        if int(n_workers) != n_workers or n_workers < 1:
            raise ValueError(f"n_workers must be an integer >= 1, found {n_workers!r}")
        self.n_workers = int(n_workers)
        self._kernel = NumbaKernel(n_threads=1)
        self._pool = ThreadPoolExecutor(max_workers=self.n_workers,
                                        thread_name_prefix="onlinedeep-replica")

    @property
    def n_replicas(self) -> int:
        """R, the number of models."""
        return len(self.params_list)

    def _check(self, name: str, items: Sequence) -> list:
        items = list(items)
        if len(items) != self.n_replicas:
            raise ValueError(f"{name} must hold one chunk per replica ({self.n_replicas}), "
                             f"found {len(items)}")
        return items

    def _map(self, fn, *columns):
        futures = [self._pool.submit(fn, self.params_list[r], *(col[r] for col in columns))
                   for r in range(self.n_replicas)]
        return [f.result() for f in futures]

    def supervised(self, xs, ys, *, learning_rate, l1=0.0, l2=0.0):
        """One prequential supervised chunk per model.

        Parameters
        ----------
        xs : list of R (n_r, fan_in) float32 tensors
        ys : list of R (n_r,) int64 tensors
        learning_rate, l1, l2 : float
            Shared by all models.

        Returns
        -------
        list of R tuples ``(errors (n_r,) uint8, nll (n_r,) float32)``
        """
        xs, ys = self._check("xs", xs), self._check("ys", ys)
        return self._map(lambda p, x, y: self._kernel.supervised(
            p, x, y, learning_rate=learning_rate, l1=l1, l2=l2), xs, ys)

    def dae(self, layer, xs, keeps, values, *, learning_rate):
        """One denoising auto-encoder chunk per model on hidden layer ``layer``.

        Parameters
        ----------
        layer : int
        xs, keeps : lists of R (n_r, fan_in) float32 / bool tensors
        values : list of R (n_r, fan_in) float32 tensors or None, or None (masking noise for all)
        learning_rate : float

        Returns
        -------
        list of R (n_r,) float32 tensors (reconstruction cross-entropy)
        """
        xs, keeps = self._check("xs", xs), self._check("keeps", keeps)
        values = [None] * self.n_replicas if values is None else self._check("values", values)
        return self._map(lambda p, x, k, v: self._kernel.dae(
            p, layer, x, k, v, learning_rate=learning_rate), xs, keeps, values)

    def rbm(self, layer, xs, u_hiddens, u_visibles, *, learning_rate, cd_k=1):
        """One CD-k chunk per model on hidden layer ``layer``.

        Parameters
        ----------
        layer : int
        xs : list of R (n_r, fan_in) float32 tensors
        u_hiddens : list of R (n_r, cd_k, n_hidden) float32 tensors
        u_visibles : list of R (n_r, cd_k, fan_in) float32 tensors or None, or None
        learning_rate : float
        cd_k : int

        Returns
        -------
        list of R (n_r,) float32 tensors (cross-entropy of the first reconstruction)
        """
        xs, u_hiddens = self._check("xs", xs), self._check("u_hiddens", u_hiddens)
        u_visibles = ([None] * self.n_replicas if u_visibles is None
                      else self._check("u_visibles", u_visibles))
        return self._map(lambda p, x, uh, uv: self._kernel.rbm(
            p, layer, x, uh, uv, learning_rate=learning_rate, cd_k=cd_k), xs, u_hiddens, u_visibles)

    def close(self) -> None:
        """Stop the worker threads (idempotent)."""
        self._pool.shutdown(wait=True)

    def __enter__(self) -> "Replicas":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
