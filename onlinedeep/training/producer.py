"""The producer: a thread that generates the training stream ahead of the trainer.

The producer walks a list of aligned position ranges (chunks), asks a fetch function for each one's
examples, and puts them in a bounded queue. The queue's bound is the back-pressure: the producer
blocks when the trainer falls behind, so memory stays at ``maxsize`` chunks. The generator's Numba
kernels release the GIL, so a thread is enough to overlap generation with training.

An exception in the producer is re-raised in the consumer at its next :meth:`Producer.get` (it does
not wait behind the chunks already queued); :meth:`Producer.close` stops the thread promptly, also
when it is blocked on a full queue.
"""
from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

__all__ = ["Chunk", "Producer", "ProducerError", "stream_fetcher"]

_POLL_S = 0.05


@dataclass
class Chunk:
    """Consecutive training examples at stream positions ``start .. stop-1``.

    Attributes
    ----------
    start, stop : int
        Stream positions (examples seen), half-open.
    indices : (n,) int64 ndarray
        InfiniteMNIST stream indices of the examples (from the :class:`infinite_mnist.Schedule`).
    x : (n, n_inputs) float32 ndarray
        Inputs in [0, 1] (MNIST: 784 pixels).
    labels : (n,) uint8 ndarray
        Digit classes 0-9.
    """

    start: int
    stop: int
    indices: np.ndarray
    x: np.ndarray
    labels: np.ndarray

    @property
    def positions(self) -> np.ndarray:
        """``(n,) int64`` stream positions of the examples."""
        return np.arange(self.start, self.stop, dtype=np.int64)

    def __len__(self) -> int:
        return self.stop - self.start


class ProducerError(RuntimeError):
    """The producer thread failed; ``__cause__`` is the original exception."""


def stream_fetcher(stream, schedule, *, n_inputs: int | None = None) -> Callable[[int, int], Chunk]:
    """Fetch function over an InfiniteMNIST stream and a Schedule.

    Parameters
    ----------
    stream : infinite_mnist.InfiniteMNIST
        Provides ``floats(indices) -> (n, n_inputs) float32`` and ``labels(indices) -> (n,) uint8``.
    schedule : infinite_mnist.Schedule
        Maps stream positions to stream indices (``indices(position, count)``).
    n_inputs : int, optional
        Inputs per example the stream must give (any width if None).

    Returns
    -------
    callable ``(start, stop) -> Chunk``

    Raises
    ------
    ValueError (from the returned function)
        If the stream returns arrays of the wrong shape or dtype.
    """

    def fetch(start: int, stop: int) -> Chunk:
        idx = np.asarray(schedule.indices(start, stop - start), dtype=np.int64)
        x = np.asarray(stream.floats(idx))
        y = np.asarray(stream.labels(idx))
        n = stop - start
        width = x.shape[1] if x.ndim == 2 and n_inputs is None else n_inputs
        if x.shape != (n, width) or x.dtype != np.float32:
            raise ValueError(
                f"stream.floats for positions [{start}, {stop}): expected ({n}, "
                f"{width or 'n_inputs'}) float32, found {x.shape} {x.dtype}"
            )
        if y.shape != (n,):
            raise ValueError(
                f"stream.labels for positions [{start}, {stop}): expected ({n},), found {y.shape}"
            )
        return Chunk(start, stop, idx, x, y.astype(np.uint8, copy=False))

    return fetch


class _Done:
    pass


_DONE = _Done()


class Producer:
    """Bounded-queue producer thread over aligned chunk ranges.

    Parameters
    ----------
    fetch : callable ``(start, stop) -> Chunk``
        Produces the examples of one range (e.g. :func:`stream_fetcher`).
    ranges : iterable of (int, int)
        Position ranges in training order (see ``RunConfig.chunk_ranges``).
    maxsize : int
        Chunks prepared ahead at most (≥ 1).

    Examples
    --------
    >>> with Producer(fetch, ranges, maxsize=4) as producer:   # doctest: +SKIP
    ...     for chunk in producer:
    ...         train(chunk)
    """

    def __init__(self, fetch: Callable[[int, int], Chunk], ranges: Iterable[tuple[int, int]],
                 *, maxsize: int = 4):
        if maxsize < 1:
            raise ValueError(f"maxsize: expected >= 1, found {maxsize}")
        self._fetch = fetch
        self._ranges: Sequence[tuple[int, int]] = list(ranges)
        self._queue: queue.Queue = queue.Queue(maxsize=maxsize)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._error_range: tuple[int, int] | None = None
        self._thread = threading.Thread(target=self._run, name="onlinedeep-producer", daemon=True)
        self._started = False

    # -------------------------------------------------------------- thread side
    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        current = None
        try:
            for start, stop in self._ranges:
                if self._stop.is_set():
                    return
                current = (start, stop)
                chunk = self._fetch(start, stop)
                if chunk.start != start or chunk.stop != stop:
                    raise ValueError(
                        f"fetch({start}, {stop}) returned a chunk for [{chunk.start}, {chunk.stop})"
                    )
                if not self._put(chunk):
                    return
            self._put(_DONE)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, re-raised there
            self._error = exc
            self._error_range = current

    # -------------------------------------------------------------- consumer side
    def start(self) -> "Producer":
        """Start the thread (idempotent)."""
        if not self._started:
            self._started = True
            self._thread.start()
        return self

    def _raise_error(self) -> None:
        exc = self._error
        where = (f" while producing positions [{self._error_range[0]}, {self._error_range[1]})"
                 if self._error_range else "")
        raise ProducerError(f"the data producer failed{where}: {type(exc).__name__}: {exc}") from exc

    def get(self) -> Chunk | None:
        """Next chunk, or ``None`` when every range has been delivered.

        Raises
        ------
        ProducerError
            As soon as the producer has failed (chained to its exception).
        """
        self.start()
        while True:
            if self._error is not None:
                self._raise_error()
            try:
                item = self._queue.get(timeout=_POLL_S)
            except queue.Empty:
                if not self._thread.is_alive() and self._queue.empty():
                    if self._error is not None:
                        self._raise_error()
                    if self._stop.is_set():
                        return None
                    raise ProducerError("the data producer stopped without delivering every chunk")
                continue
            if item is _DONE:
                return None
            return item

    @property
    def alive(self) -> bool:
        """Whether the producer thread is running."""
        return self._thread.is_alive()

    def __iter__(self) -> Iterator[Chunk]:
        while True:
            chunk = self.get()
            if chunk is None:
                return
            yield chunk

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread and drop queued chunks (safe to call twice)."""
        self._stop.set()
        # unblock a producer waiting on a full queue
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass
        if self._started:
            self._thread.join(timeout)

    def __enter__(self) -> "Producer":
        return self.start()

    def __exit__(self, exc_type, exc, tb) -> None:
        # A second Ctrl-C (``TrainingInterrupted.at_once``): do not wait for the chunk being
        # generated (a daemon thread; it stops after it). Otherwise wait, so that no generator
        # thread is still running native code when the interpreter exits.
        self.close(0.1 if getattr(exc, "at_once", False) else 5.0)
