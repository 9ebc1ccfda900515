"""The finite-data epoch trainer (issue 14): order, best-validation choice, files, batch size 1."""
from __future__ import annotations

import math

import numpy as np
import pytest

from onlinedeep.config import ConfigError
from onlinedeep.finite import records as rec
from onlinedeep.finite.config import FiniteConfig
from onlinedeep.finite.data import load_dataset
from onlinedeep.finite.order import SUPERVISED, epoch_order
from onlinedeep.finite.train import records_path, train

SMALL = dict(dataset="shapeset", n_hidden=12, layers=2, epochs=2, pretrain_epochs=1, n_train=120,
             n_valid=40, n_test=40, learning_rate=0.1, unsup_learning_rate=0.01, chunk_size=50)


def small(**changes) -> FiniteConfig:
    return FiniteConfig(**{**SMALL, **changes})


def test_epoch_order_is_a_seeded_permutation():
    a = epoch_order(3, SUPERVISED, 0, 1000)
    assert a.dtype == np.int64 and np.array_equal(np.sort(a), np.arange(1000))
    assert np.array_equal(a, epoch_order(3, SUPERVISED, 0, 1000))
    assert not np.array_equal(a, epoch_order(3, SUPERVISED, 1, 1000))   # each epoch its own
    assert not np.array_equal(a, epoch_order(4, SUPERVISED, 0, 1000))   # each seed its own
    assert not np.array_equal(a, epoch_order(3, 0, 0, 1000))            # pre-training apart


def _row(epoch, valid, test=0.5):
    return {**{c: math.nan for c in rec.COLUMNS}, "phase": rec.SUPERVISED, "layer": -1,
            "epoch": epoch, "valid_error": valid, "test_error": test}


def test_best_validation_picks_the_earliest_lowest():
    rows = [_row(1, 0.30, 0.31), _row(2, 0.20, 0.25), _row(3, math.nan, 0.01),
            _row(4, 0.20, 0.10), _row(5, 0.22, 0.05)]
    best = rec.best_row(rows)
    assert best["epoch"] == 2 and best["test_error"] == 0.25
    assert rec.best_row([_row(1, math.nan)]) is None
    records = rec.EpochRecords(rows)
    assert records.best()["epoch"] == 2 and records.last()["epoch"] == 5


class _Recording:
    """A kernel that records the inputs of each call and delegates to the reference kernel."""

    def __init__(self, inner):
        self.inner, self.calls = inner, []
        self.name, self.owns_threads = inner.name, False

    def supervised(self, params, x, y, **kw):
        self.calls.append(("supervised", x.numpy().copy(), y.numpy().copy()))
        return self.inner.supervised(params, x, y, **kw)

    def dae(self, params, layer, x, keep, values, **kw):
        self.calls.append(("dae", x.numpy().copy(), None))
        return self.inner.dae(params, layer, x, keep, values, **kw)


def test_each_example_once_per_epoch_in_the_seeded_order(monkeypatch):
    from onlinedeep import kernels

    made = []
    original = kernels.get

    def get(name, device, threads=0):
        made.append(_Recording(original("reference", device)))
        return made[-1]

    import onlinedeep.finite.train as T

    monkeypatch.setattr(T.kernels, "get", get)
    cfg = small(init="uniform", epochs=2, chunk_size=32)
    data = load_dataset("shapeset", sizes=cfg.sizes())
    train(cfg, data=data)
    calls = [c for c in made[0].calls if c[0] == "supervised"]
    assert all(c[1].shape[0] <= 32 for c in calls)
    x = np.concatenate([c[1] for c in calls])
    y = np.concatenate([c[2] for c in calls])
    n = len(data.train)
    assert x.shape[0] == 2 * n
    for epoch in range(2):
        order = epoch_order(cfg.seed, SUPERVISED, epoch, n)
        assert np.array_equal(x[epoch * n:(epoch + 1) * n], data.train.x[order])
        assert np.array_equal(y[epoch * n:(epoch + 1) * n], data.train.y[order])


def test_chunking_does_not_change_the_weights():
    """Batch size 1: cutting the epochs into other chunks gives the same network."""
    a = train(small(kernel="reference", chunk_size=50))
    b = train(small(kernel="reference", chunk_size=7))
    for k in a.params:
        assert np.array_equal(a.params[k].numpy(), b.params[k].numpy()), k


def test_run_folder_records_snapshots_and_rerun(tmp_path):
    from onlinedeep import snapshot

    cfg = small(snapshots="epochs")
    result = train(cfg, tmp_path / "run")
    rows = result.records.rows
    assert [r["phase"] for r in rows] == [0, 0, 1, 1]
    assert [r["layer"] for r in rows] == [0, 1, -1, -1]
    sup = result.records.supervised()
    assert all(0 <= r["test_error"] <= 1 and r["train_nll"] > 0 for r in sup)
    assert rows[-1]["position"] == 2 * 120 + 2 * 120
    config, again = rec.read_h5(records_path(tmp_path / "run"))
    assert FiniteConfig.from_dict(config) == cfg
    assert len(again.rows) == 4 and again.best()["epoch"] == result.best["epoch"]
    assert (tmp_path / "run" / "epochs.csv").read_text().count("\n") == 5
    snaps = sorted((tmp_path / "run" / "snapshots").iterdir())
    positions = [snapshot.load(p).position for p in snaps]
    assert positions == [0, 120, 240, 360, 480]
    last = snapshot.load(snaps[-1])
    assert np.array_equal(last.params["W0"], result.params["W0"].numpy())
    # a finished folder is not trained again
    mtime = records_path(tmp_path / "run").stat().st_mtime_ns
    second = train(cfg, tmp_path / "run")
    assert second.params is None and len(second.records.rows) == 4
    assert records_path(tmp_path / "run").stat().st_mtime_ns == mtime


def test_non_finite_loss_stops_with_a_clear_error(tmp_path):
    from onlinedeep.training.loop import NonFiniteLossError

    from onlinedeep.finite.data import FiniteData, Split

    cfg = small(init="uniform")
    d = load_dataset("shapeset", sizes=cfg.sizes())
    x = d.train.x.copy()
    x[7] = np.nan  # a diverging network, as the kernels see it: a NaN loss
    bad = FiniteData(d.name, Split(x, d.train.y), d.valid, d.test, d.n_inputs, d.n_classes)
    with pytest.raises(NonFiniteLossError, match="NLL became non-finite.*learning_rate"):
        train(cfg, tmp_path / "run", data=bad)
    assert not records_path(tmp_path / "run").exists()


def test_config_checks():
    with pytest.raises(ConfigError, match="init"):
        small(init="random")
    with pytest.raises(ConfigError, match="snapshots"):
        small(top_units=5, snapshots="ends")
    with pytest.raises(ConfigError, match="learning_rate"):
        small(learning_rate=-1.0)
    cfg = small()
    assert cfg.engine_config().unsup_updates == 2 * 120 and cfg.engine_config().n_inputs == 100
    assert FiniteConfig.from_dict(cfg.to_dict()) == cfg


def test_top_units_network_trains():
    result = train(small(top_units=5, snapshots="none", init="uniform"))
    assert tuple(result.params["W1"].shape) == (12, 5)
    assert tuple(result.params["W_out"].shape) == (5, 2)
