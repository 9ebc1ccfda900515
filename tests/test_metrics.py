"""Sliding window vs a naive recomputation, exact state, prequential bookkeeping and log cadence."""
from __future__ import annotations

import math

import numpy as np
import pytest

from onlinedeep.metrics import MetricsStateError, Prequential, Rolling, RunMetrics


def _blocks(rng, n, max_block):
    out, i = [], 0
    while i < n:
        k = int(rng.integers(1, max_block + 1))
        out.append((i, min(n, i + k)))
        i += k
    return out


@pytest.mark.parametrize("window", [1, 7, 100])
def test_rolling_integer_window_matches_naive_exactly(window):
    rng = np.random.default_rng(window)
    values = rng.integers(0, 2, 2000).astype(np.uint8)
    r = Rolling(window, np.uint8)
    assert math.isnan(r.mean())
    for a, b in _blocks(rng, values.size, 3 * window):  # blocks shorter and longer than the window
        r.update_many(values[a:b])
        last = values[max(0, b - window):b].astype(np.int64)
        assert r.total == int(last.sum())
        assert r.mean() == last.sum() / last.size
        assert np.array_equal(r.values(), values[max(0, b - window):b])


def test_rolling_float_window_matches_naive():
    rng = np.random.default_rng(1)
    values = rng.exponential(2.0, 5000)
    r = Rolling(333, np.float64)
    for a, b in _blocks(rng, values.size, 500):
        r.update_many(values[a:b])
        naive = values[max(0, b - 333):b].mean()
        assert r.mean() == pytest.approx(naive, rel=1e-12)
    for v in values[:10]:
        r.update(v)
    assert r.mean() == pytest.approx(np.concatenate([values, values[:10]])[-333:].mean(), rel=1e-12)


def test_rolling_state_round_trip_is_exact():
    rng = np.random.default_rng(2)
    values = rng.random(3000)
    a = Rolling(250, np.float64)
    a.update_many(values[:1234])
    b = Rolling.from_state(a.state())
    for lo, hi in _blocks(rng, 3000 - 1234, 90):
        chunk = values[1234 + lo:1234 + hi]
        a.update_many(chunk)
        b.update_many(chunk)
        assert a.total == b.total  # bit-identical continuation
    assert np.array_equal(a.buffer, b.buffer) and a.n_seen == b.n_seen


def test_rolling_bad_state():
    r = Rolling(10, np.uint8)
    r.update_many([1, 0, 1])
    st = r.state()
    with pytest.raises(MetricsStateError, match="shape"):
        Rolling.from_state({**st, "buffer": st["buffer"][:5]}, where="metrics/errors")
    with pytest.raises(MetricsStateError, match="disagrees"):
        Rolling.from_state({**st, "total": 3}, where="metrics/errors")
    with pytest.raises(ValueError, match="window"):
        Rolling(0)


def test_prequential_totals_and_window():
    p = Prequential(window=4)
    p.update(np.array([1, 0, 0, 1, 1, 1], np.uint8), np.array([2.0, 0.1, 0.2, 3.0, 1.0, 1.0]))
    assert p.online_error == 0.75  # last four: 0, 1, 1, 1
    assert p.online_nll == pytest.approx((0.2 + 3.0 + 1.0 + 1.0) / 4)
    assert p.cumulative_error == 4 / 6 and p.n_examples == 6
    with pytest.raises(ValueError, match="0/1"):
        p.update(np.array([2], np.uint8), np.array([0.0]))
    with pytest.raises(ValueError, match="equal lengths"):
        p.update(np.array([1, 0], np.uint8), np.array([0.0]))


def test_run_metrics_records_at_exact_positions_whatever_the_chunking():
    rng = np.random.default_rng(3)
    n_pre, n_sup = 700, 1300
    cost = rng.random(n_pre) * 100
    errors = rng.integers(0, 2, n_sup).astype(np.uint8)
    nll = rng.random(n_sup).astype(np.float32)

    def feed(max_block):
        m = RunMetrics(window=128, log_every=100)
        for a, b in _blocks(np.random.default_rng(max_block), n_pre, max_block):
            # layer 0 is trained on positions [0, 400), layer 1 on [400, 700)
            for lo, hi, layer in ((a, min(b, 400), 0), (max(a, 400), b, 1)):
                if lo < hi:
                    m.add_pretrain(lo, layer, cost[lo:hi])
        for a, b in _blocks(np.random.default_rng(max_block + 1), n_sup, max_block):
            m.add_supervised(n_pre + a, errors[a:b], nll[a:b])
        return m

    one, many = feed(1), feed(333)
    s1, s2 = one.series(), many.series()
    assert list(s1.position) == list(range(100, n_pre + n_sup + 1, 100))
    for f in ("position", "layer", "online_error"):  # integer sums: exact
        np.testing.assert_array_equal(getattr(s1, f), getattr(s2, f))
    for f in ("nll", "reconstruction"):  # float sums: block-wise rounding differs
        np.testing.assert_allclose(getattr(s1, f), getattr(s2, f), rtol=1e-12)
    # a supervised record is the mean of the window at that position
    k = list(s1.position).index(1500)
    assert s1.online_error[k] == errors[1500 - n_pre - 128:1500 - n_pre].mean()
    assert s1.layer[k] == -1 and math.isnan(s1.reconstruction[k])
    # the reconstruction window restarts with each layer: at 600 it covers layer 1 only (400..599)
    k = list(s1.position).index(600)
    assert s1.layer[k] == 1
    assert s1.reconstruction[k] == pytest.approx(cost[472:600].mean())
    k = list(s1.position).index(500)
    assert s1.reconstruction[k] == pytest.approx(cost[400:500].mean())
    assert math.isnan(s1.online_error[k])


def test_run_metrics_state_round_trip():
    rng = np.random.default_rng(4)
    m = RunMetrics(window=50, log_every=30)
    m.add_pretrain(0, 0, rng.random(100))
    m.add_supervised(100, rng.integers(0, 2, 77).astype(np.uint8), rng.random(77))
    st = m.state()
    r = RunMetrics.from_state(st)
    e, v = rng.integers(0, 2, 200).astype(np.uint8), rng.random(200)
    m.add_supervised(177, e, v)
    r.add_supervised(177, e, v)
    s1, s2 = m.series(), r.series()
    assert m.n_records == r.n_records == len(s1) == len(s2) > len(st["series"]) > 0
    np.testing.assert_array_equal(s1.position, s2.position)
    np.testing.assert_array_equal(s1.online_error, s2.online_error)
    np.testing.assert_array_equal(s1.nll, s2.nll)
    assert m.online_error == r.online_error and m.prequential.n_errors == r.prequential.n_errors
    m.record(377, -1)
    m.record(377, -1)  # idempotent at one position
    assert list(m.series().position).count(377) == 1
