"""The run loop: prequential bookkeeping, resume and branch bit-identity, Ctrl-C, failures.

A synthetic stream (``FakeStream`` in conftest) keeps these fast and independent of MNIST; the
real-MNIST runs are in test_train_cli.py.
"""
from __future__ import annotations

import json
import os
import signal

import h5py
import numpy as np
import pytest
import torch

from infinite_mnist import Schedule
from onlinedeep import phases
from onlinedeep import kernels, model, run_folder, snapshot
from onlinedeep.config import ConfigError, RunConfig
from onlinedeep.experiments import figure12
from onlinedeep.run_folder import RunDirError, RunFolder
from onlinedeep.training import NonFiniteLossError, Trainer, TrainingInterrupted, branch, resume
from onlinedeep.training.interrupt import StopSignals
from onlinedeep.training.producer import ProducerError

pytestmark = pytest.mark.usefixtures("single_thread")

KERNELS = [k for k in ("reference", "numba") if k in kernels.available("cpu")]


def _config(pretrain="dae", **kw):
    base = dict(layers=2, n_hidden=16, pretrain=pretrain, unsup_updates=400, sup_updates=600,
                chunk_size=100, snapshot_every=200, window=100, log_every=50, learning_rate=0.1,
                unsup_learning_rate=0.01, kernel="reference", device="cpu", keep_snapshots=2)
    if pretrain == "none":
        base["unsup_updates"] = 0
    base.update(kw)
    return RunConfig(**base)


def _assert_same_run(a: Trainer, b: Trainer):
    assert a.position == b.position
    for k in a.params:
        assert torch.equal(a.params[k], b.params[k]), f"{k} differs"
    sa, sb = a.metrics.series(), b.metrics.series()
    for f in ("position", "layer", "online_error", "nll", "reconstruction"):
        np.testing.assert_array_equal(getattr(sa, f), getattr(sb, f), err_msg=f)
    assert a.metrics.prequential.n_errors == b.metrics.prequential.n_errors


# ------------------------------------------------------------------------------------ prequential
def test_prequential_error_is_recorded_before_each_update(fake_stream):
    cfg = _config("none", layers=1, sup_updates=300, window=64, log_every=50, chunk_size=100)
    stream = fake_stream()
    trainer = Trainer(cfg, stream=stream)
    result = trainer.run(progress=False)

    # the same thing by hand: predict with the weights before the example, then update on it
    params = model.init_params(784, cfg.n_hidden, 1, cfg.seed)
    kernel = kernels.get("reference", "cpu")
    schedule = Schedule.contiguous(cfg.total_updates)
    errors, nll = [], []
    for p in range(cfg.total_updates):
        idx = schedule.indices(p, 1)
        x = torch.from_numpy(stream.floats(idx))
        y = torch.from_numpy(stream.labels(idx).astype(np.int64))
        logits = model.predict_proba(params, x).log()
        errors.append(int(logits.argmax(1).item() != y.item()))
        nll.append(float(-logits[0, y.item()]))
        kernel.supervised(params, x, y, learning_rate=cfg.learning_rate, l1=0.0, l2=0.0)
    errors = np.array(errors)
    series = result.series
    assert list(series.position) == list(range(50, 301, 50))
    for pos, err, v in zip(series.position, series.online_error, series.nll):
        assert err == errors[max(0, pos - 64):pos].mean()  # exact window of 0/1 errors
        assert v == pytest.approx(np.mean(nll[max(0, pos - 64):pos]), rel=1e-4)
    assert result.online_error == errors[-64:].mean()
    assert trainer.metrics.prequential.n_errors == errors.sum()
    for k in params:
        torch.testing.assert_close(trainer.params[k], params[k], rtol=0, atol=1e-6)
    assert 0 < errors[:64].mean() and errors[-64:].mean() < errors[:64].mean()  # it learns


# ------------------------------------------------------------------------------------ pre-training
@pytest.mark.parametrize("pretrain, extra", [
    ("dae", {}),
    ("dae", {"noise": "salt-pepper", "corruption_level": 0.4}),
    ("rbm", {"cd_k": 2, "sample_reconstruction": True}),
])
def test_pretraining_is_greedy_and_uses_the_draws_of_each_position(fake_stream, pretrain, extra):
    """Layer k is trained on the deterministic output of the fixed layers below, with the noise
    of (seed, absolute stream position), one layer after the other."""
    cfg = _config(pretrain, seed=7, **extra)
    stream = fake_stream()
    trainer = Trainer(cfg, stream=stream)
    trainer.run(stop=cfg.unsup_updates, progress=False)

    from onlinedeep import noise

    params = model.init_params(784, cfg.n_hidden, cfg.layers, cfg.seed)
    kernel = kernels.get("reference", "cpu")
    schedule = Schedule.contiguous(cfg.total_updates)
    for a, b in phases.chunk_ranges(cfg, 0, cfg.unsup_updates):
        k = phases.phase_at(cfg, a).layer
        x = torch.from_numpy(stream.floats(schedule.indices(a, b - a)))
        h = model.hidden_forward(params, x, k)
        pos = np.arange(a, b, dtype=np.int64)
        fan_in = h.shape[1]
        if pretrain == "dae":
            n_corrupt = noise.corruption_count(cfg.corruption_level, fan_in)
            if cfg.noise == "masking":
                keep, values = noise.masking_keep(cfg.seed, pos, k, fan_in, n_corrupt), None
            else:
                keep, values = noise.salt_pepper(cfg.seed, pos, k, fan_in, n_corrupt)
                values = torch.from_numpy(values)
            kernel.dae(params, k, h, torch.from_numpy(keep), values,
                       learning_rate=cfg.unsup_learning_rate)
        else:
            n = b - a
            u_h = noise.uniforms(cfg.seed, pos, noise.PURPOSE_RBM_HIDDEN, k,
                                 cfg.cd_k * cfg.n_hidden).reshape(n, cfg.cd_k, cfg.n_hidden)
            u_v = noise.uniforms(cfg.seed, pos, noise.PURPOSE_RBM_VISIBLE, k,
                                 cfg.cd_k * fan_in).reshape(n, cfg.cd_k, fan_in)
            kernel.rbm(params, k, h, torch.from_numpy(u_h), torch.from_numpy(u_v),
                       learning_rate=cfg.unsup_learning_rate, cd_k=cfg.cd_k)
    for key in params:
        assert torch.equal(trainer.params[key], params[key]), key
    init = model.init_params(784, cfg.n_hidden, cfg.layers, cfg.seed)
    for key in ("W0", "W1", "c0", "c1"):
        assert not torch.equal(params[key], init[key]), f"{key} was not pre-trained"
    for key in ("W_out", "b_out"):
        assert torch.equal(params[key], init[key]), f"{key} changed during pre-training"
    series = trainer.metrics.series()
    assert list(series.layer[series.position <= 200]) == [0] * 4
    assert list(series.layer[(series.position > 200) & (series.position <= 400)]) == [1] * 4


# ------------------------------------------------------------------------------------ resume
@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("pretrain, extra", [
    ("dae", {}),
    ("dae", {"noise": "salt-pepper", "unsup_split": "1,3"}),
    ("rbm", {"cd_k": 2, "sample_reconstruction": True}),
    ("none", {}),
])
def test_interrupted_and_resumed_equals_uninterrupted(tmp_path, fake_stream, kernel, pretrain,
                                                      extra):
    cfg = _config(pretrain, kernel=kernel, **extra)
    whole = Trainer(cfg, stream=fake_stream(), run_dir=tmp_path / "whole")
    whole.run(progress=False)

    part = Trainer(cfg, stream=fake_stream(), run_dir=tmp_path / "part")
    # stop inside the pre-training of layer 1 (phases [0,200) [200,400) with the equal split)
    part.run(stop=300, progress=False)
    assert RunFolder(tmp_path / "part").has_snapshot()
    del part
    resumed = resume(tmp_path / "part", stream=fake_stream())
    assert resumed.position == 300
    resumed.run(progress=False)
    _assert_same_run(whole, resumed)
    last = run_folder.latest(tmp_path / "part" / "snapshots")
    assert last.name == f"snapshot-{cfg.total_updates:012d}.pinned.h5"


def _sigint_at(cfg, position: int):
    """A stream fetch hook that sends this process one SIGINT when the chunk holding update
    ``position`` is fetched (as a Ctrl-C during training would)."""
    trigger = Schedule.contiguous(cfg.total_updates).indices(position, 1)[0]
    sent = []

    def on_fetch(indices):
        if trigger in indices and not sent:
            sent.append(True)
            os.kill(os.getpid(), signal.SIGINT)

    return on_fetch


def test_ctrl_c_snapshots_then_resume_is_bit_identical(tmp_path, fake_stream):
    cfg = _config("dae")
    whole = Trainer(cfg, stream=fake_stream())
    whole.run(progress=False)
    # Whatever the process had (default_int_handler, or SIG_IGN when started in the background).
    before = signal.getsignal(signal.SIGINT)

    run_dir = tmp_path / "run"
    trainer = Trainer(cfg, stream=fake_stream(on_fetch=_sigint_at(cfg, 550)), run_dir=run_dir)
    with pytest.raises(TrainingInterrupted) as err:
        trainer.run(progress=False)
    stop = err.value.position
    assert 0 < stop < cfg.total_updates and stop % cfg.chunk_size == 0
    assert err.value.snapshot.name == f"snapshot-{stop:012d}.h5"
    assert snapshot.load(err.value.snapshot).position == stop
    assert "SIGINT received" in str(err.value)
    assert signal.getsignal(signal.SIGINT) is before  # handlers restored

    resumed = resume(run_dir, stream=fake_stream())
    resumed.run(progress=False)
    _assert_same_run(whole, resumed)


def test_ctrl_c_at_a_snapshot_position_logs_that_snapshot_once(tmp_path, fake_stream):
    # a snapshot at every chunk boundary: the loop has just written the one the stop needs
    cfg = _config("dae", snapshot_every=100, keep_snapshots=0)
    run_dir = tmp_path / "run"
    with pytest.raises(TrainingInterrupted) as err:
        Trainer(cfg, stream=fake_stream(on_fetch=_sigint_at(cfg, 550)),
                run_dir=run_dir).run(progress=False)
    stop = err.value.position
    assert err.value.snapshot.name == f"snapshot-{stop:012d}.h5"
    lines = [line.split(" ", 1)[1] for line in (run_dir / "log.txt").read_text().splitlines()]
    snapshot_lines = [line for line in lines if line.startswith("snapshot ")]
    assert snapshot_lines.count(f"snapshot {err.value.snapshot.name}") == 1
    assert len(snapshot_lines) == len(set(snapshot_lines)) == stop // 100 + 1  # 0 (pinned) .. stop
    assert lines[-1] == f"interrupted by signal {signal.SIGINT.value} at position {stop}"


def test_second_signal_stops_at_once_and_says_so_in_the_log(tmp_path, fake_stream):
    run_dir = tmp_path / "run"
    trainer = Trainer(_config("none"), stream=fake_stream(), run_dir=run_dir)
    trainer.run(stop=200, progress=False)
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(TrainingInterrupted, match=r"SIGINT received again: stopped at once, "
                                                  r"without a final snapshot.*snapshot-000000000200\.h5\) are lost"):
        with StopSignals(trainer._interrupted_at_once):
            signal.raise_signal(signal.SIGINT)  # the first one only asks to stop at a boundary
            signal.raise_signal(signal.SIGINT)
    log = (run_dir / "log.txt").read_text()
    assert "interrupted again by signal 2 after position 200: SIGINT received again" in log
    assert signal.getsignal(signal.SIGINT) is before


def test_a_failed_start_leaves_no_run_folder(tmp_path, fake_stream, monkeypatch):
    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(snapshot, "save", full_disk)
    for run_dir, existed in ((tmp_path / "new" / "run", False), (tmp_path / "empty", True)):
        if existed:
            run_dir.mkdir()
        with pytest.raises(OSError, match="No space left"):
            Trainer(_config("none"), stream=fake_stream(), run_dir=run_dir).run(progress=False)
        # a folder holding config.json but no snapshot would only mislead --resume
        assert not run_dir.exists() if not existed else list(run_dir.iterdir()) == []
    assert (tmp_path / "new").is_dir()  # only what the start created is removed


def test_extending_sup_updates_on_resume(tmp_path, fake_stream):
    longer = Trainer(_config("rbm", sup_updates=800), stream=fake_stream())
    longer.run(progress=False)
    short = Trainer(_config("rbm"), stream=fake_stream(), run_dir=tmp_path / "r")
    short.run(progress=False)
    extended = resume(tmp_path / "r", stream=fake_stream(), sup_updates=800)
    assert extended.position == 1000
    extended.run(progress=False)
    _assert_same_run(longer, extended)
    with pytest.raises(snapshot.SnapshotError, match=r"cannot change \['learning_rate'\]"):
        resume(tmp_path / "r", stream=fake_stream(), learning_rate=0.5)


def test_weights_read_from_a_snapshot_are_64_byte_aligned(tmp_path, fake_stream):
    """numpy places large buffers 16 or 48 bytes past a 64-byte boundary, which slows the numba
    kernel's 512-bit loads (benchmarks/bench_alignment.py): a resumed run's weights are copied
    into buffers torch aligned."""
    from onlinedeep.learner import OnlineMLP

    Trainer(_config("none", n_hidden=300), stream=fake_stream(), run_dir=tmp_path / "r").run(
        progress=False)
    resumed = resume(tmp_path / "r", stream=fake_stream(), sup_updates=800)
    assert {k: t.data_ptr() % 64 for k, t in resumed.params.items()} == {
        k: 0 for k in resumed.params}
    net = OnlineMLP.load(run_folder.latest(tmp_path / "r" / "snapshots"))
    assert all(t.data_ptr() % 64 == 0 for t in net.params_.values())


def test_resume_refuses_a_new_location(tmp_path, fake_stream):
    Trainer(_config("none"), stream=fake_stream(), run_dir=tmp_path / "r").run(stop=200,
                                                                              progress=False)
    for field in ("name", "out"):
        with pytest.raises(snapshot.SnapshotError,
                           match=rf"cannot change \['{field}'\] when resuming \(the run continues "
                                 r"in its own folder"):
            resume(tmp_path / "r", stream=fake_stream(), **{field: "elsewhere"})
    assert not (tmp_path / "elsewhere").exists()


def test_resume_falls_back_to_the_newest_readable_snapshot(tmp_path, fake_stream):
    cfg = _config("dae", keep_snapshots=0)
    whole = Trainer(cfg, stream=fake_stream())
    whole.run(progress=False)
    run_dir = tmp_path / "r"
    Trainer(cfg, stream=fake_stream(), run_dir=run_dir).run(stop=600, progress=False)
    snaps = run_dir / "snapshots"
    newest = snaps / "snapshot-000000000600.h5"
    data = newest.read_bytes()
    newest.write_bytes(data[: len(data) // 2])  # truncated by a full disk, say
    # and an edited one (the end of pre-training, pinned)
    with h5py.File(snaps / "snapshot-000000000400.pinned.h5", "r+") as f:
        f.attrs["position"] = np.int64(450)
    with pytest.warns(snapshot.SnapshotFallbackWarning,
                      match=r"resuming from the older snapshot snapshot-000000000200\.h5 \(position "
                            r"200\): 2 newer snapshot\(s\) cannot be read: .*000600\.h5: cannot open"
                            r".*000400\.pinned\.h5: attribute 'position' is 450"):
        resumed = resume(run_dir, stream=fake_stream())
    assert resumed.position == 200
    assert "warning: resuming from the older snapshot snapshot-000000000200.h5" in (
        run_dir / "log.txt").read_text()
    resumed.run(progress=False)
    _assert_same_run(whole, resumed)
    assert snapshot.load(newest).position == 600  # the damaged files were overwritten on the way

    for _, _, path in run_folder.list_snapshots(snaps):  # nothing readable: every failure listed
        path.write_bytes(b"")
    with pytest.raises(snapshot.SnapshotError,
                       match=r"none of its \d+ snapshot\(s\) can be read; tried, newest first: "
                             r".*001000\.pinned\.h5: cannot open.*000000\.pinned\.h5: cannot open"):
        resume(run_dir, stream=fake_stream())


# ------------------------------------------------------------------------------------ branching
def test_branch_from_snapshot_equals_training_from_scratch(tmp_path, fake_stream):
    cfg = _config("dae")
    base = Schedule.contiguous(cfg.total_updates)
    trainer = Trainer(cfg, schedule=base, stream=fake_stream(), run_dir=tmp_path / "base")
    trainer.run(snapshot_at=(600,), progress=False)
    point = tmp_path / "base" / "snapshots" / "snapshot-000000000600.pinned.h5"
    assert point.is_file()

    other = base.replace(600, 200, new_start=50_000)
    scratch = Trainer(cfg, schedule=other, stream=fake_stream())
    scratch.run(progress=False)
    branched = branch(point, schedule=other, stream=fake_stream(), run_dir=tmp_path / "branch")
    assert branched.position == 600
    branched.run(progress=False)
    _assert_same_run(scratch, branched)
    assert not all(torch.equal(trainer.params[k], scratch.params[k]) for k in trainer.params)

    # the ordering-variance usage: run to a boundary, save, continue
    t = Trainer(cfg, schedule=base, stream=fake_stream())
    t.run(stop=600, progress=False)
    t.save_snapshot(tmp_path / "point.h5")
    t.run(progress=False)
    _assert_same_run(trainer, t)

    with pytest.raises(ConfigError, match="differs from the snapshot's .* before its position 600"):
        branch(point, schedule=base.replace(100, 100, new_start=50_000), stream=fake_stream())


# ------------------------------------------------------------------------------------ failures
@pytest.mark.parametrize("position, phase", [(250, "pretrain L1"), (530, "supervised")])
def test_non_finite_loss_names_the_update_and_keeps_last_good_snapshot(tmp_path, fake_stream,
                                                                       position, phase):
    cfg = _config("dae")
    bad_index = Schedule.contiguous(cfg.total_updates).indices(position, 1)[0]
    run_dir = tmp_path / "run"
    trainer = Trainer(cfg, stream=fake_stream(nan_at=[bad_index]), run_dir=run_dir)
    with pytest.raises(NonFiniteLossError) as err:
        trainer.run(progress=False)
    assert err.value.position == position
    msg = str(err.value)
    assert f"at update {position}" in msg and phase in msg and "last good snapshot" in msg
    last = run_folder.latest(run_dir / "snapshots")
    assert snapshot.load(last).position == (position // 200) * 200
    assert all(p <= position for p, _, _ in run_folder.list_snapshots(run_dir / "snapshots"))
    with pytest.raises(RuntimeError, match="failed"):
        trainer.save_snapshot(tmp_path / "x.h5")
    with pytest.raises(RuntimeError, match="cannot continue"):
        trainer.run(progress=False)
    assert "stopped: the" in (run_dir / "log.txt").read_text()


def test_producer_failure_stops_the_trainer(tmp_path, fake_stream):
    cfg = _config("none")
    trigger = Schedule.contiguous(cfg.total_updates).indices(450, 1)[0]

    def on_fetch(indices):
        if trigger in indices:
            raise OSError("stream source vanished")

    trainer = Trainer(cfg, stream=fake_stream(on_fetch=on_fetch), run_dir=tmp_path / "run")
    with pytest.raises(ProducerError, match=r"\[400, 500\).*stream source vanished") as err:
        trainer.run(progress=False)
    assert isinstance(err.value.__cause__, OSError)
    assert trainer.position <= 400
    assert snapshot.load(run_folder.latest(tmp_path / "run" / "snapshots")).position <= 400


def test_bad_arguments(tmp_path, fake_stream):
    cfg = _config("dae")
    t = Trainer(cfg, stream=fake_stream())
    with pytest.raises(ConfigError, match="stop: expected a chunk boundary"):
        t.run(stop=150, progress=False)
    with pytest.raises(ConfigError, match="snapshot_at"):
        t.run(snapshot_at=(250,), progress=False)
    with pytest.raises(ConfigError, match="needs a run folder"):
        t.run(snapshot_at=(200,), progress=False)
    with pytest.raises(ConfigError, match="schedule: covers 10 positions"):
        Trainer(cfg, schedule=Schedule.contiguous(10), stream=fake_stream())
    with pytest.raises(ConfigError, match="split"):
        Trainer(cfg, schedule=Schedule.contiguous(2000, split="all"), stream=fake_stream())
    run_dir = tmp_path / "run"
    Trainer(cfg, stream=fake_stream(), run_dir=run_dir).run(stop=200, progress=False)
    with pytest.raises(RunDirError, match="already holds a run"):
        Trainer(cfg, stream=fake_stream(), run_dir=run_dir)
    with pytest.raises(RunDirError, match="no snapshot to resume from"):
        resume(tmp_path / "empty")
    with pytest.raises(ConfigError, match="data: the stream differs"):
        resume(run_dir, stream=fake_stream(seed=1)).run(progress=False)


# ------------------------------------------------------------------------------------ run folder
def test_run_folder_contents_and_training_sequence_error(tmp_path, fake_stream):
    cfg = _config("dae", train_error_blocks=3, sup_updates=600, snapshot_every=100)
    run_dir = tmp_path / "run"
    stream = fake_stream()
    trainer = Trainer(cfg, stream=stream, run_dir=run_dir)
    result = trainer.run(progress=False)
    assert trainer.train_error is None  # the loop leaves Figure 12 to its caller
    assert figure12.record(trainer) == run_dir / "snapshots" / "snapshot-000000001000.pinned.h5"
    assert json.loads((run_dir / "config.json").read_text()) == cfg.to_dict()
    assert json.loads((run_dir / "schedule.json").read_text())["segments"] == [[0, 1000]]
    prov = json.loads((run_dir / "provenance.json").read_text())
    assert prov["data"]["mnist.source"] == "FakeStream" and "torch" in prov["software"]
    log = (run_dir / "log.txt").read_text()
    assert "position 1000 supervised online_error" in log and "done: position 1000" in log
    names = sorted(p.name for p in (run_dir / "snapshots").iterdir())
    # initial, end of pre-training and final pinned, the 2 newest periodic ones kept
    assert names == ["snapshot-000000000000.pinned.h5", "snapshot-000000000400.pinned.h5",
                     "snapshot-000000000800.h5", "snapshot-000000000900.h5",
                     "snapshot-000000001000.pinned.h5"]
    pretrained = snapshot.load(run_dir / "snapshots" / "snapshot-000000000400.pinned.h5")
    assert pretrained.position == cfg.unsup_updates and pretrained.phase == "supervised"

    te = trainer.train_error
    assert list(te["block_start"]) == [400, 600, 800] and list(te["block_stop"]) == [600, 800, 1000]
    schedule = Schedule.contiguous(cfg.total_updates)
    idx = schedule.indices(400, 600)
    pred = model.predict(result.params, torch.from_numpy(stream.floats(idx))).numpy()
    wrong = pred != stream.labels(idx)
    np.testing.assert_allclose(te["error"], wrong.reshape(3, 200).mean(1))
    final = snapshot.load(run_dir / "snapshots" / "snapshot-000000001000.pinned.h5")
    np.testing.assert_array_equal(final.train_error["error"], te["error"])
    assert final.phase == "done" and final.counters["sup_done"] == 600


@pytest.mark.parametrize("kernel", KERNELS)
def test_other_widths_flow_from_the_configuration(tmp_path, kernel):
    """n_inputs and n_classes reach the weights, the draws, the kernels and the snapshots."""

    class Stream:
        def floats(self, idx):
            return np.stack([np.random.default_rng(int(i)).random(100, dtype=np.float32)
                             for i in idx]).reshape(len(idx), 100)

        def labels(self, idx):  # the largest of the first three inputs
            return self.floats(idx)[:, :3].argmax(1).astype(np.uint8)

        def provenance(self):
            return {"source": "three classes"}

    cfg = _config("dae", n_inputs=100, n_classes=3, kernel=kernel)
    trainer = Trainer(cfg, stream=Stream(), run_dir=tmp_path / "run")
    result = trainer.run(progress=False)
    assert result.params["W0"].shape == (100, 16) and result.params["W_out"].shape == (16, 3)
    assert result.series.supervised().online_error.shape[0] > 0
    snap = snapshot.load(result.snapshot)
    assert snap.params["b_out"].shape == (3,) and snap.config.n_inputs == 100
    assert resume(tmp_path / "run", stream=Stream()).position == cfg.total_updates


def test_the_same_digits_from_gzip_or_raw_files_are_the_same_data(make_mnist_dir):
    """A run trained on the .gz files resumes on raw copies of them (the digits' own checksum
    decides); other digits, or files of an older snapshot without that checksum, still differ."""
    import warnings

    from infinite_mnist.mnist import read_mnist_dir
    from onlinedeep.training.data import check_same_data

    def prov(directory):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # not the official checksums, by construction
            data = read_mnist_dir(directory)
        return {f"mnist.{k}": v for k, v in data.provenance().items()}

    gz, _ = make_mnist_dir(gz=True, name="gz")
    raw, _ = make_mnist_dir(gz=False, name="raw")
    other, _ = make_mnist_dir(seed=1, name="other")
    trained, now = prov(gz), prov(raw)
    assert trained["mnist.md5:train-images-idx3-ubyte.gz"] != now.get(
        "mnist.md5:train-images-idx3-ubyte")
    check_same_data(trained, now)
    with pytest.raises(ConfigError, match=r"digits_md5.* and \d+ more\); point --mnist-dir"):
        check_same_data(trained, prov(other))
    older = {k: v for k, v in trained.items() if not k.endswith("digits_md5")}
    check_same_data(older, prov(gz))
    with pytest.raises(ConfigError, match="md5:"):
        check_same_data(older, now)
