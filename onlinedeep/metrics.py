"""Prequential (predict, score, then learn) metrics over an exact sliding window.

The online error of the paper (8.1, Figure 11) is the mean of the last 100,000 0/1 errors, each
recorded *before* the update on that example, as River's progressive validation does. This module
keeps that bookkeeping and nothing else:

* :class:`Rolling` — an exact sliding window over any per-example value (River's ``utils.Rolling``
  shape): a ring buffer plus a running sum, exactly serialisable, so a resumed run continues with
  bit-identical figures.
* :class:`Prequential` — online_error and NLL windows plus running totals.
* :class:`RunMetrics` — what a run logs: a record every ``log_every`` examples (position, online_error,
  NLL, and during pre-training the reconstruction cost of the layer being trained).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Rolling", "Prequential", "Series", "RunMetrics", "MetricsStateError"]


class MetricsStateError(ValueError):
    """A saved metrics state that cannot be restored (the message says which part and why)."""


class Rolling:
    """Exact sliding window over a stream of per-example values.

    Value number ``i`` (0-based, counting every value ever pushed) lives in ``buffer[i % window]``;
    the window holds the last ``min(n_seen, window)`` values.

    Parameters
    ----------
    window : int
        Number of most recent values the window covers (≥ 1).
    dtype : numpy dtype
        Storage type. Integer types keep an exact int64 sum (0/1 errors); float types keep a float64
        sum that is recomputed from the buffer every time the ring wraps, so rounding drift stays
        bounded by one pass of additions.
    """

    def __init__(self, window: int, dtype=np.float64):
        if not isinstance(window, (int, np.integer)) or window < 1:
            raise ValueError(f"window: expected an integer >= 1, found {window!r}")
        self.window = int(window)
        self.dtype = np.dtype(dtype)
        self._integer = np.issubdtype(self.dtype, np.integer) or self.dtype == np.bool_
        self.buffer = np.zeros(self.window, dtype=self.dtype)
        self.n_seen = 0
        self.total = 0 if self._integer else 0.0

    # -------------------------------------------------------------- updates
    def update(self, value) -> None:
        """Push one value."""
        self.update_many(np.asarray([value], dtype=self.dtype))

    def update_many(self, values) -> None:
        """Push values in order.

        Parameters
        ----------
        values : (n,) array_like
            Cast to the window's dtype.
        """
        v = np.asarray(values).astype(self.dtype, copy=False).reshape(-1)
        n = v.shape[0]
        if n == 0:
            return
        w = self.window
        if n >= w:
            last = v[n - w:]
            first = (self.n_seen + n - w) % w
            self.buffer[first:] = last[: w - first]
            self.buffer[:first] = last[w - first:]
            self.n_seen += n
            self._recompute()
            return
        head = self.n_seen % w
        # values leaving the window: those already stored in the slots being overwritten, if the
        # window was full there (global index j - w >= 0)
        n_valid_old = min(self.n_seen, w)
        end = head + n
        if end <= w:
            slots = [(head, end, 0)]
        else:
            slots = [(head, w, 0), (0, end - w, w - head)]
        add = self._sum(v)
        sub = 0 if self._integer else 0.0
        for a, b, off in slots:
            if n_valid_old >= w:
                sub += self._sum(self.buffer[a:b])
            else:
                # slots in [n_valid_old, w) are still empty (window not yet full)
                lo, hi = a, min(b, n_valid_old)
                if hi > lo:
                    sub += self._sum(self.buffer[lo:hi])
            self.buffer[a:b] = v[off: off + (b - a)]
        self.total = self.total + add - sub
        self.n_seen += n
        if not self._integer and (self.n_seen // w) != ((self.n_seen - n) // w):
            self._recompute()

    def _sum(self, a: np.ndarray):
        if self._integer:
            return int(a.sum(dtype=np.int64))
        return float(a.sum(dtype=np.float64))

    def _recompute(self) -> None:
        count = self.count
        if count == self.window:
            self.total = self._sum(self.buffer)
        else:
            self.total = self._sum(self.buffer[:count])

    def reset(self) -> None:
        """Empty the window."""
        self.buffer[:] = 0
        self.n_seen = 0
        self.total = 0 if self._integer else 0.0

    # -------------------------------------------------------------- reading
    @property
    def count(self) -> int:
        """Values currently in the window, ``min(n_seen, window)``."""
        return min(self.n_seen, self.window)

    def mean(self) -> float:
        """Mean of the values in the window; NaN when empty."""
        c = self.count
        return float(self.total) / c if c else math.nan

    def values(self) -> np.ndarray:
        """The values in the window, oldest first, ``(count,)`` of the window's dtype."""
        c = self.count
        if c < self.window:
            return self.buffer[:c].copy()
        head = self.n_seen % self.window
        return np.concatenate([self.buffer[head:], self.buffer[:head]])

    # -------------------------------------------------------------- state
    def state(self) -> dict:
        """Exact state: ``{"window", "n_seen", "total", "buffer"}`` (buffer ``(window,)`` array)."""
        return {
            "window": self.window,
            "n_seen": self.n_seen,
            "total": self.total,
            "buffer": self.buffer.copy(),
        }

    @classmethod
    def from_state(cls, state: dict, *, where: str = "window") -> "Rolling":
        """Rebuild from :meth:`state`.

        Raises
        ------
        MetricsStateError
            If the buffer length, dtype or running sum do not agree.
        """
        buf = np.asarray(state["buffer"])
        window = int(state["window"])
        if buf.shape != (window,):
            raise MetricsStateError(
                f"{where}: buffer has shape {buf.shape}, expected ({window},) for window={window}"
            )
        r = cls(window, buf.dtype)
        r.buffer[:] = buf
        r.n_seen = int(state["n_seen"])
        if r.n_seen < 0:
            raise MetricsStateError(f"{where}: n_seen is {r.n_seen}, expected >= 0")
        r.total = int(state["total"]) if r._integer else float(state["total"])
        check = r._sum(r.buffer[: r.count])
        ok = check == r.total if r._integer else math.isclose(
            check, r.total, rel_tol=1e-9, abs_tol=1e-9 * max(r.count, 1)
        )
        if not ok:
            raise MetricsStateError(
                f"{where}: stored running sum {r.total!r} disagrees with the buffer's sum {check!r}"
            )
        return r


class Prequential:
    """Online (prequential) classification error and NLL.

    For every supervised example the model predicts, the 0/1 error and the NLL are recorded, then the
    model is updated (paper 8.1; River's ``progressive_val_score``). The kernels produce the values;
    this class only accumulates them.

    Parameters
    ----------
    window : int
        Examples in the sliding window (paper: 100,000).
    """

    def __init__(self, window: int):
        self.errors = Rolling(window, np.uint8)
        self.nll = Rolling(window, np.float64)
        self.n_examples = 0
        self.n_errors = 0
        self.nll_sum = 0.0

    def update(self, errors, nll) -> None:
        """Add a block of consecutive examples.

        Parameters
        ----------
        errors : (n,) uint8/bool array_like
            1 where the prediction made before the update was wrong.
        nll : (n,) float array_like
            Negative log-likelihood of the true label before the update (nats).
        """
        e = np.asarray(errors).reshape(-1)
        v = np.asarray(nll, dtype=np.float64).reshape(-1)
        if e.shape != v.shape:
            raise ValueError(f"errors and nll: expected equal lengths, found {e.shape} and {v.shape}")
        if e.size and (e.min() < 0 or e.max() > 1):
            raise ValueError(f"errors: expected 0/1 values, found range [{e.min()}, {e.max()}]")
        self.errors.update_many(e.astype(np.uint8))
        self.nll.update_many(v)
        self.n_examples += int(e.size)
        self.n_errors += int(e.sum(dtype=np.int64))
        self.nll_sum += float(v.sum())

    @property
    def online_error(self) -> float:
        """Mean 0/1 error over the window (NaN before the first example)."""
        return self.errors.mean()

    @property
    def online_nll(self) -> float:
        """Mean NLL over the window (nats; NaN before the first example)."""
        return self.nll.mean()

    @property
    def cumulative_error(self) -> float:
        """Mean 0/1 error over every supervised example so far."""
        return self.n_errors / self.n_examples if self.n_examples else math.nan


@dataclass
class Series:
    """The logged metrics of a run, one entry per record (all arrays the same length).

    Attributes
    ----------
    position : (m,) int64
        Examples seen when the record was taken (unsupervised included).
    layer : (m,) int8
        Layer being pre-trained, or -1 during supervised training.
    online_error : (m,) float64
        Windowed 0/1 error (NaN during pre-training).
    nll : (m,) float64
        Windowed NLL in nats (NaN during pre-training).
    reconstruction : (m,) float64
        Windowed reconstruction cost of the layer being pre-trained (NaN when supervised).
    """

    position: np.ndarray
    layer: np.ndarray
    online_error: np.ndarray
    nll: np.ndarray
    reconstruction: np.ndarray

    FIELDS = ("position", "layer", "online_error", "nll", "reconstruction")
    DTYPES = {"position": np.int64, "layer": np.int8, "online_error": np.float64,
              "nll": np.float64, "reconstruction": np.float64}

    @classmethod
    def empty(cls) -> "Series":
        return cls(**{f: np.zeros(0, dtype=cls.DTYPES[f]) for f in cls.FIELDS})

    def __len__(self) -> int:
        return int(self.position.shape[0])

    def supervised(self) -> "Series":
        """Only the records of the supervised phase."""
        m = self.layer < 0
        return Series(**{f: getattr(self, f)[m] for f in self.FIELDS})


class RunMetrics:
    """Everything a run measures, with the logging cadence.

    Records are taken when the number of examples seen reaches a multiple of ``log_every`` (exactly,
    even inside a chunk), and on request (:meth:`record`) at phase ends and at the end of a run.

    Parameters
    ----------
    window : int
        Sliding-window length (examples) of the online error, the NLL and the reconstruction cost.
    log_every : int
        Examples between records.
    """

    SCALARS = ("window", "log_every", "layer", "n_examples", "n_errors", "nll_sum")
    """Keys of :meth:`state` holding one number each."""
    WINDOWS = {"errors": np.uint8, "nll": np.float64, "reconstruction": np.float64}
    """Keys of :meth:`state` holding a :meth:`Rolling.state`, with their buffer's dtype."""

    def __init__(self, window: int, log_every: int):
        self.window = int(window)
        self.log_every = int(log_every)
        self.prequential = Prequential(window)
        self.reconstruction = Rolling(window, np.float64)
        self.layer = -1  # layer whose reconstruction cost the window holds; -1 none
        self._rows: list[tuple[int, int, float, float, float]] = []
        self._series_base = Series.empty()
        # Callables given each new record as a dict (position, layer, online_error, nll,
        # reconstruction): live views such as onlinedeep.live.TensorBoardSink. Not saved.
        self.sinks: list = []

    # -------------------------------------------------------------- feeding
    def _splits(self, start: int, n: int) -> list[int]:
        """Offsets k in (0, n] after which a record is due (start + k a multiple of log_every)."""
        first = (start // self.log_every + 1) * self.log_every - start
        return list(range(first, n + 1, self.log_every))

    def add_supervised(self, start: int, errors, nll) -> None:
        """Account for supervised examples at positions ``start .. start+n-1``.

        Parameters
        ----------
        start : int
            Stream position of the first example.
        errors : (n,) uint8 ndarray
        nll : (n,) float32/float64 ndarray
        """
        errors = np.asarray(errors).reshape(-1)
        nll = np.asarray(nll).reshape(-1)
        prev = 0
        for k in self._splits(start, errors.shape[0]):
            self.prequential.update(errors[prev:k], nll[prev:k])
            self.record(start + k, -1)
            prev = k
        self.prequential.update(errors[prev:], nll[prev:])

    def add_pretrain(self, start: int, layer: int, cost) -> None:
        """Account for pre-training examples of ``layer`` at positions ``start .. start+n-1``.

        Parameters
        ----------
        start : int
        layer : int
            The layer being trained; the reconstruction window restarts when it changes.
        cost : (n,) float ndarray
            Reconstruction cross-entropy of each example (nats, summed over inputs).
        """
        if layer != self.layer:
            self.reconstruction.reset()
            self.layer = layer
        cost = np.asarray(cost, dtype=np.float64).reshape(-1)
        prev = 0
        for k in self._splits(start, cost.shape[0]):
            self.reconstruction.update_many(cost[prev:k])
            self.record(start + k, layer)
            prev = k
        self.reconstruction.update_many(cost[prev:])

    def record(self, position: int, layer: int) -> None:
        """Append a record at ``position`` (no-op if the last record is already there)."""
        if self._rows and self._rows[-1][0] == position:
            return
        if not self._rows and len(self._series_base) and self._series_base.position[-1] == position:
            return
        if layer >= 0:
            row = (position, layer, math.nan, math.nan, self.reconstruction.mean())
        else:
            row = (position, -1, self.prequential.online_error, self.prequential.online_nll,
                   math.nan)
        self._rows.append(row)
        for sink in self.sinks:
            sink(dict(zip(Series.FIELDS, row)))

    # -------------------------------------------------------------- reading
    @property
    def online_error(self) -> float:
        return self.prequential.online_error

    @property
    def online_nll(self) -> float:
        return self.prequential.online_nll

    @property
    def n_records(self) -> int:
        """Records so far, ``len(self.series())`` without building the series."""
        return len(self._series_base) + len(self._rows)

    def series(self) -> Series:
        """All records so far."""
        if not self._rows:
            return Series(**{f: getattr(self._series_base, f).copy() for f in Series.FIELDS})
        cols = list(zip(*self._rows))
        new = {f: np.asarray(cols[i], dtype=Series.DTYPES[f]) for i, f in enumerate(Series.FIELDS)}
        return Series(**{f: np.concatenate([getattr(self._series_base, f), new[f]])
                         for f in Series.FIELDS})

    # -------------------------------------------------------------- state
    def state(self) -> dict:
        """Exact state as plain values and arrays (what the snapshot stores): the :attr:`SCALARS`,
        the :attr:`WINDOWS` and ``series`` (a :class:`Series`)."""
        p = self.prequential
        return {
            "window": self.window,
            "log_every": self.log_every,
            "layer": self.layer,
            "n_examples": p.n_examples,
            "n_errors": p.n_errors,
            "nll_sum": p.nll_sum,
            "errors": p.errors.state(),
            "nll": p.nll.state(),
            "reconstruction": self.reconstruction.state(),
            "series": self.series(),
        }

    @classmethod
    def from_state(cls, state: dict, *, log_every: int | None = None) -> "RunMetrics":
        """Rebuild from :meth:`state`; ``log_every`` may change on resume (later records only).

        Raises
        ------
        MetricsStateError
            If a window does not agree with ``window``.
        """
        window = int(state["window"])
        m = cls(window, int(log_every if log_every is not None else state["log_every"]))
        p = m.prequential
        p.errors = Rolling.from_state(state["errors"], where="metrics/errors")
        p.nll = Rolling.from_state(state["nll"], where="metrics/nll")
        m.reconstruction = Rolling.from_state(state["reconstruction"],
                                              where="metrics/reconstruction")
        for name, r in (("errors", p.errors), ("nll", p.nll), ("reconstruction", m.reconstruction)):
            if r.window != window:
                raise MetricsStateError(
                    f"metrics/{name}: window is {r.window}, expected {window}"
                )
        if p.errors.dtype != np.uint8:
            raise MetricsStateError(f"metrics/errors: dtype {p.errors.dtype}, expected uint8")
        p.n_examples = int(state["n_examples"])
        p.n_errors = int(state["n_errors"])
        p.nll_sum = float(state["nll_sum"])
        m.layer = int(state["layer"])
        m._series_base = state["series"]
        return m
