"""HDF5 snapshots: round trip, atomicity under SIGKILL, and a clear error for each bad input."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import h5py
import numpy as np
import pytest

from onlinedeep import run_folder, snapshot
from onlinedeep.config import RunConfig
from onlinedeep.metrics import RunMetrics
from onlinedeep.model import init_params

SCHEDULE = {"split": "protocol", "segments": [[0, 100_000]]}


def _config(**kw):
    base = dict(layers=2, n_hidden=8, pretrain="dae", unsup_updates=400, sup_updates=600,
                window=50, log_every=100, chunk_size=100, snapshot_every=200)
    base.update(kw)
    return RunConfig(**base)


def _state(config, position=500):
    rng = np.random.default_rng(0)
    m = RunMetrics(config.window, config.log_every)
    m.add_pretrain(0, 0, rng.random(200) * 50)
    m.add_pretrain(200, 1, rng.random(200) * 40)
    m.add_supervised(400, rng.integers(0, 2, 100).astype(np.uint8), rng.random(100))
    return dict(
        config=config, schedule=SCHEDULE, position=position, phase="supervised", layer=-1,
        params=init_params(784, config.n_hidden, config.layers, config.seed),
        metrics=m.state(), counters={"unsup_done": 400, "sup_done": 100, "elapsed_s": 1.5},
        provenance={"data": {"mnist.md5:x": "abc"}, "software": {"torch": "x"}},
    )


def test_round_trip(tmp_path):
    cfg = _config()
    st = _state(cfg)
    path = snapshot.save(tmp_path / run_folder.snapshot_name(500), **st,
                         train_error={"block_start": np.array([400, 450]),
                                      "block_stop": np.array([450, 500]),
                                      "error": np.array([0.5, 0.25])})
    assert path.name == "snapshot-000000000500.h5"
    snap = snapshot.load(path)
    assert snap.config == cfg and snap.position == 500 and snap.phase == "supervised"
    assert snap.schedule == SCHEDULE and snap.provenance == st["provenance"]
    for k, t in st["params"].items():
        assert snap.params[k].dtype == np.float32
        np.testing.assert_array_equal(snap.params[k], t.numpy())
    for name in ("errors", "nll", "reconstruction"):
        np.testing.assert_array_equal(snap.metrics[name]["buffer"], st["metrics"][name]["buffer"])
        assert snap.metrics[name]["total"] == st["metrics"][name]["total"]
    np.testing.assert_array_equal(snap.metrics["series"].online_error,
                                  st["metrics"]["series"].online_error)
    assert snap.counters["elapsed_s"] == 1.5
    np.testing.assert_array_equal(snap.train_error["error"], [0.5, 0.25])
    # no pickle anywhere: only numeric datasets and string/number attributes
    with h5py.File(path) as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                assert obj.dtype.kind in "uif", name
        f.visititems(visit)


def test_save_refuses_non_finite_parameters(tmp_path):
    st = _state(_config())
    st["params"]["W1"][3, 4] = float("nan")
    target = tmp_path / "s.h5"
    with pytest.raises(snapshot.SnapshotError, match=r"/params/W1 holds 1 non-finite.*\(3, 4\)"):
        snapshot.save(target, **st)
    assert not target.exists() and list(tmp_path.iterdir()) == []


@pytest.fixture
def good(tmp_path):
    cfg = _config()
    return snapshot.save(tmp_path / "good.h5", **_state(cfg)), cfg


def test_truncated_file(good, tmp_path):
    path, _ = good
    bad = tmp_path / "truncated.h5"
    data = path.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(snapshot.SnapshotError) as err:
        snapshot.load(bad)
    assert str(bad) in str(err.value)
    assert "truncated" in str(err.value) or "cannot read" in str(err.value)


def test_not_hdf5(tmp_path):
    bad = tmp_path / "junk.h5"
    bad.write_bytes(b"definitely not hdf5" * 100)
    with pytest.raises(snapshot.SnapshotError, match=r"junk\.h5: cannot open as HDF5"):
        snapshot.load(bad)
    with pytest.raises(snapshot.SnapshotError, match="no such snapshot file"):
        snapshot.load(tmp_path / "missing.h5")


def test_damaged_parameter_bytes_are_detected(good, tmp_path):
    path, _ = good
    with h5py.File(path) as f:
        info = f["params/W0"].id.get_chunk_info(0)  # where the first stored chunk lies in the file
    data = bytearray(path.read_bytes())
    data[info.byte_offset + info.size // 2] ^= 0xFF
    bad = tmp_path / "flipped.h5"
    bad.write_bytes(bytes(data))
    with pytest.raises(snapshot.SnapshotError, match=r"flipped\.h5: cannot read dataset 'params/W0'"):
        snapshot.load(bad)


def _edit(path, fn):
    with h5py.File(path, "r+") as f:
        fn(f)
    return path


def test_nan_in_file(good):
    path, _ = good

    def poison(f):
        w = f["params/W_out"][()]
        w[2, 7] = np.inf
        del f["params/W_out"]
        f["params"].create_dataset("W_out", data=w)

    _edit(path, poison)
    with pytest.raises(snapshot.SnapshotError,
                       match=r"good\.h5: dataset /params/W_out holds 1 non-finite value.*\(2, 7\)"):
        snapshot.load(path)


def test_missing_dataset(good):
    path, _ = good
    _edit(path, lambda f: f.__delitem__("series/nll"))
    with pytest.raises(snapshot.SnapshotError, match=r"good\.h5: missing dataset 'series/nll'"):
        snapshot.load(path)


def test_missing_parameter(good):
    path, _ = good
    _edit(path, lambda f: f.__delitem__("params/c1"))
    with pytest.raises(snapshot.SnapshotError, match=r"missing parameter dataset.*/params/c1"):
        snapshot.load(path)


def test_shape_mismatch_with_configuration(good):
    path, cfg = good
    other = RunConfig.from_dict({**cfg.to_dict(), "n_hidden": 9})
    _edit(path, lambda f: f.attrs.__setitem__("config", other.to_json()))
    with pytest.raises(snapshot.SnapshotError,
                       match=r"/params/W0 has shape \(784, 8\), expected \(784, 9\)"):
        snapshot.load(path)


def test_bad_configuration_attribute(good):
    path, cfg = good
    _edit(path, lambda f: f.attrs.__setitem__("config", cfg.to_json().replace('"layers": 2',
                                                                               '"layers": 0')))
    with pytest.raises(snapshot.SnapshotError, match=r"attribute 'config': layers"):
        snapshot.load(path)


def test_wrong_format_and_metrics(good, tmp_path):
    path, _ = good
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.attrs["format"] = "something else"
    with pytest.raises(snapshot.SnapshotError, match="attribute 'format' is 'something else'"):
        snapshot.load(other)
    _edit(path, lambda f: f["metrics/errors"].attrs.__setitem__("total", 10**6))
    with pytest.raises(snapshot.SnapshotError, match="invalid metrics state.*metrics/errors"):
        snapshot.load(path)


@pytest.mark.parametrize("edit,match", [
    # the position moved without the counters (a resume would silently skip examples)
    (lambda f: f.attrs.__setitem__("position", np.int64(600)),
     r"'/counters' attribute sup_done is 100, expected 200 for position 600"),
    (lambda f: f["counters"].attrs.__setitem__("sup_done", 150), r"sup_done is 150, expected 100"),
    (lambda f: f.attrs.__setitem__("phase", "pretrain"),
     r"phase='pretrain', layer=-1 do not match .* phase='supervised', layer=-1"),
    (lambda f: f["metrics"].attrs.__setitem__("n_examples", 90),
     r"'/metrics' attribute n_examples is 90, expected 100"),
    (lambda f: f["metrics/nll"].attrs.__setitem__("n_seen", 101),
     r"'/metrics/nll' attribute n_seen is 101, expected 100"),
    (lambda f: f["metrics"].attrs.__setitem__("n_errors", f["metrics"].attrs["n_errors"] + 60),
     r"n_errors is \d+, expected \d+\.\.\d+"),
    (lambda f: f["counters"].attrs.__delitem__("unsup_done"), "missing attribute 'unsup_done'"),
])
def test_position_is_cross_checked(good, edit, match):
    path, _ = good
    _edit(path, edit)
    with pytest.raises(snapshot.SnapshotError, match=match):
        snapshot.load(path)


def test_position_must_match_the_file_name(tmp_path):
    st = _state(_config())
    path = snapshot.save(tmp_path / run_folder.snapshot_name(400), **st)
    with pytest.raises(snapshot.SnapshotError,
                       match="attribute 'position' is 500, but the file name says 400"):
        snapshot.load(path)


def test_parameters_must_be_float32(good):
    path, _ = good

    def as_float64(f):
        w = f["params/W0"][()]
        del f["params/W0"]
        f.create_dataset("params/W0", data=w.astype(np.float64), chunks=True, fletcher32=True)

    _edit(path, as_float64)
    with pytest.raises(snapshot.SnapshotError,
                       match=r"good\.h5: dataset /params/W0 has dtype float64, expected float32"):
        snapshot.load(path)


def test_listing_ignores_temporary_files(tmp_path):
    (tmp_path / "snapshot-000000001000.h5").write_bytes(b"x")
    (tmp_path / "snapshot-000000003000.pinned.h5").write_bytes(b"x")
    (tmp_path / "snapshot-000000005000.h5.tmpab12").write_bytes(b"x")
    assert [(p, pin) for p, pin, _ in run_folder.list_snapshots(tmp_path)] == [(1000, False),
                                                                            (3000, True)]
    assert run_folder.latest(tmp_path).name == "snapshot-000000003000.pinned.h5"
    with pytest.raises(run_folder.RunDirError, match="no snapshot files"):
        run_folder.latest(tmp_path / "empty")


_WRITER = textwrap.dedent("""
    import sys, numpy as np, torch
    from onlinedeep import run_folder, snapshot
    from onlinedeep.config import RunConfig
    from onlinedeep.metrics import RunMetrics
    cfg = RunConfig(layers=3, n_hidden=1000, pretrain="none", sup_updates=10**6, chunk_size=1,
                    snapshot_every=1, window=1000, log_every=10**6)
    shapes = snapshot.param_shapes(cfg)
    metrics = RunMetrics(cfg.window, cfg.log_every)
    k = 0
    while True:
        metrics.add_supervised(k, np.zeros(1, np.uint8), np.ones(1))
        k += 1
        params = {name: torch.full(shape, float(k)) for name, shape in shapes.items()}
        snapshot.save(sys.argv[1], config=cfg, schedule={"split": "all", "segments": [[0, 10]]},
                      position=k, phase="supervised", layer=-1, params=params,
                      metrics=metrics.state(), counters={"unsup_done": 0, "sup_done": k},
                      provenance={})
""")


def _writing(folder) -> bool:
    """Whether a temporary snapshot file holds some bytes (it may be renamed meanwhile)."""
    for p in folder.glob("snap.h5.tmp*"):
        try:
            if p.stat().st_size > 0:
                return True
        except FileNotFoundError:
            pass
    return False


def test_sigkill_mid_write_leaves_previous_snapshot_intact(tmp_path):
    target = tmp_path / "snap.h5"
    for attempt in range(20):
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(target)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 60
            while not target.exists():  # a first complete snapshot
                assert proc.poll() is None, proc.stderr.read().decode()
                assert time.monotonic() < deadline, "writer produced no snapshot"
                time.sleep(0.005)
            while not _writing(tmp_path):  # the next write has begun
                assert proc.poll() is None, proc.stderr.read().decode()
                time.sleep(0.0005)
            # at once: the file is built in memory and written in one call, so the temporary
            # file lives only milliseconds
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == -signal.SIGKILL
        leftovers = [p for p in tmp_path.glob("snap.h5.tmp*") if p.stat().st_size > 0]
        if leftovers:  # killed while the temporary file was being written: what we wanted to test
            break
        target.unlink()
    assert leftovers, "could not kill the writer mid-write in 20 attempts"
    snap = snapshot.load(target)  # the previous snapshot: complete and consistent
    assert snap.position >= 1
    for name, a in snap.params.items():
        assert np.all(a == snap.position), name
    # the half-written file is not taken for a snapshot
    assert [p.name for _, _, p in run_folder.list_snapshots(tmp_path)] == []  # name is not snapshot-*
    assert all(p.stat().st_size > 0 for p in leftovers)
