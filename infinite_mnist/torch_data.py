"""PyTorch adapters: a map-style ``Dataset`` over stream indices and an ``IterableDataset`` over a
:class:`~infinite_mnist.Schedule`, both giving float images in [0, 1] and int64 labels.

Both work with any ``DataLoader``, with or without worker processes (``num_workers``), and give the
same examples either way. In a worker process they generate on the worker's thread alone
(``parallel=False`` of :meth:`InfiniteMNIST.images`): the workers are the parallelism, and a worker
forked from a parent that had already generated on Numba's thread pool could not use that pool.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from infinite_mnist.schedule import Schedule
from infinite_mnist.stream import InfiniteMNIST, to_float

__all__ = ["InfiniteMNISTDataset", "ScheduleIterable"]


def _in_main_process() -> bool:
    return get_worker_info() is None


class InfiniteMNISTDataset(Dataset):
    """Map-style dataset: item ``k`` is stream index ``indices[k]``.

    Parameters
    ----------
    stream : InfiniteMNIST
    indices : (n,) int64 array_like
        Stream indices, e.g. ``np.arange(0, 10_000)`` for the test digits or ``schedule.indices(0, n)``.

    Items are ``(x, y)``: ``x (784,) float32`` tensor in [0, 1], ``y`` int64 tensor. Use with any
    ``DataLoader``; the bytes of an item never depend on the worker that made it.
    """

    def __init__(self, stream: InfiniteMNIST, indices):
        self.stream = stream
        self.indices = np.ascontiguousarray(np.asarray(indices, dtype=np.int64))
        if self.indices.ndim != 1:
            raise ValueError(f"indices: expected a 1-d array, found shape {self.indices.shape}")

    def __len__(self) -> int:
        return self.indices.shape[0]

    def __getitem__(self, k):
        k = int(k)
        if not -len(self) <= k < len(self):
            raise IndexError(f"index {k} out of range for {len(self)} items")
        i = self.indices[[k]]
        images, labels = self.stream.examples(i, parallel=_in_main_process())
        return torch.from_numpy(to_float(images)[0]), torch.tensor(int(labels[0]), dtype=torch.int64)

    def __getitems__(self, ks):  # batched fetch: one kernel call per DataLoader batch
        i = self.indices[np.asarray(ks, dtype=np.int64)]
        images, labels = self.stream.examples(i, parallel=_in_main_process())
        x = torch.from_numpy(to_float(images))
        y = torch.from_numpy(labels.astype(np.int64))
        return [(x[k], y[k]) for k in range(len(ks))]


class ScheduleIterable(IterableDataset):
    """Iterable dataset over positions ``[start, start + count)`` of a schedule, in chunks.

    Yields ``(x, y)`` with ``x (m, 784) float32`` in [0, 1] and ``y (m,) int64``, ``m <= chunk_size``;
    chunk ``c`` covers positions ``start + c·chunk_size ...``. Use ``DataLoader(ds, batch_size=None,
    num_workers=W)``: worker ``w`` makes chunks ``w, w + W, ...`` and the loader's round-robin gives
    them back in sequence order, so the examples arrive in schedule order for any ``W``.

    Parameters
    ----------
    stream : InfiniteMNIST
    schedule : Schedule
    start : int
        First position (examples).
    count : int, optional
        Number of positions (default: to the end of the schedule).
    chunk_size : int
    """

    def __init__(self, stream: InfiniteMNIST, schedule: Schedule, start: int = 0,
                 count: int | None = None, chunk_size: int = 1024):
        self.stream = stream
        self.schedule = schedule
        self.start = int(start)
        self.count = schedule.total - self.start if count is None else int(count)
        if self.start < 0 or self.count < 0 or self.start + self.count > schedule.total:
            raise ValueError(
                f"positions [{self.start}, {self.start + self.count}) outside the schedule "
                f"[0, {schedule.total})"
            )
        if chunk_size < 1:
            raise ValueError(f"chunk_size: expected >= 1, found {chunk_size}")
        self.chunk_size = int(chunk_size)

    def __len__(self) -> int:
        return -(-self.count // self.chunk_size)

    def __iter__(self):
        info = get_worker_info()
        worker, n_workers = (0, 1) if info is None else (info.id, info.num_workers)
        for c in range(worker, len(self), n_workers):
            lo = self.start + c * self.chunk_size
            n = min(self.chunk_size, self.start + self.count - lo)
            idx = self.schedule.indices(lo, n)
            images, labels = self.stream.examples(idx, parallel=info is None)
            yield torch.from_numpy(to_float(images)), torch.from_numpy(labels.astype(np.int64))
