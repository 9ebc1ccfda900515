"""Issue 13: test/validation error of a trained network (`onlinedeep evaluate`, the end of
`onlinedeep train`), export to a plain PyTorch module, TensorBoard scalars."""
from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from onlinedeep_cli.main import app
from onlinedeep import run_folder
from onlinedeep import evaluate as ev
from onlinedeep import model, snapshot
from onlinedeep.export import load_module, to_module

pytestmark = [pytest.mark.usefixtures("single_thread"),
              pytest.mark.filterwarnings("ignore::infinite_mnist.MnistSourceWarning")]

HAS_TENSORBOARD = importlib.util.find_spec("tensorboard") is not None


def _invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def run(tmp_path_factory, mnist_dir):
    out = tmp_path_factory.mktemp("runs")
    tb = out / "tb"
    extra = ["--tensorboard", tb] if HAS_TENSORBOARD else []
    r = _invoke("train", "--pretrain", "none", "--n-hidden", "32", "--sup-updates", "2000",
                "--chunk-size", "500", "--window", "1000", "--log-every", "500",
                "--snapshot-every", "1000", "--threads", "1", "--device", "cpu", "--no-progress",
                "--mnist-dir", mnist_dir, "--out", out, "--name", "none", *extra)
    assert r.exit_code == 0, r.output
    return out / "none", r.output, tb


def test_evaluate_matches_a_direct_computation():
    params = model.init_params(20, 8, 2, seed=3, n_outputs=4)
    rng = np.random.default_rng(0)
    x = rng.random((300, 20)).astype(np.float32)
    y = rng.integers(0, 4, 300)
    result = ev.evaluate(params, x, y, batch_size=64)
    logits = torch.log(model.predict_proba(params, x)).double()
    pred = logits.argmax(1).numpy()
    assert result.error == np.mean(pred != y)
    assert result.nll == pytest.approx(float(-logits[np.arange(300), y].mean()), rel=1e-5)
    expected = np.zeros((4, 4), dtype=np.int64)
    np.add.at(expected, (y, pred), 1)
    np.testing.assert_array_equal(result.confusion, expected)
    with pytest.raises(ValueError, match=r"expected inputs in \[0, 1\]"):
        ev.evaluate(params, x * 2, y)
    with pytest.raises(ValueError, match=r"y\[0\] = 9 is not a class index in \[0, 4\)"):
        ev.evaluate(params, x[:1], [9])


def test_splits_are_the_test_digits_and_the_held_out_training_digits(mnist):
    from infinite_mnist import InfiniteMNIST

    stream = InfiniteMNIST(mnist)
    test, val = ev.split_indices("test", stream), ev.split_indices("validation", stream)
    assert (test[0], test[-1], len(test)) == (0, 9_999, 10_000)
    assert (val[0], val[-1], len(val)) == (60_000, 69_999, 10_000)
    np.testing.assert_array_equal(stream.labels(val), mnist.train_labels[50_000:])
    np.testing.assert_array_equal(stream.labels(test), mnist.test_labels)
    with pytest.raises(ev.EvaluationError, match="split: expected one of"):
        ev.split_indices("train", stream)


def test_train_records_the_test_error(run):
    run_dir, output, _ = run
    entry = ev.recorded(run_dir, "test")
    assert entry is not None and entry["position"] == 2000 and entry["n_examples"] == 10_000
    assert f"test_error   {entry['error_percent']:.2f}% on the 10,000 MNIST test digits" in output
    assert np.sum(entry["confusion"]) == 10_000
    assert entry["error_percent"] < 50  # 2,000 updates learn something; chance is 90%
    again, _ = ev.evaluate_snapshot(run_dir, "test")
    assert again.error_percent == entry["error_percent"]
    assert again.nll == pytest.approx(entry["nll"], rel=1e-12)


def test_evaluate_falls_back_past_a_truncated_newest_snapshot(run, tmp_path):
    import shutil

    run_dir, _, _ = run
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    held = run_folder.RunFolder(copy).snapshots()
    assert len(held) >= 2
    newest = held[-1][2]
    newest.write_bytes(newest.read_bytes()[:200])  # a copy cut short
    with pytest.warns(snapshot.SnapshotFallbackWarning, match=newest.name):
        result, _ = ev.evaluate_snapshot(copy, "test")
    assert result.snapshot == str(held[-2][2]) and result.position == held[-2][0]
    # a snapshot file named directly is used as given: a damaged one is an error
    with pytest.raises(snapshot.SnapshotError):
        ev.evaluate_snapshot(newest, "test")


def test_evaluate_command(run, tmp_path):
    run_dir, _, _ = run
    r = _invoke("evaluate", run_dir, "--split", "validation", "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["split"] == "validation" and data["indices"] == [60_000, 70_000]
    assert data["recorded"] == str(run_dir / "evaluation-validation.json")
    assert ev.recorded(run_dir, "validation")["error_percent"] == data["error_percent"]
    r = _invoke("evaluate", run_folder.latest(run_dir / "snapshots"))
    assert r.exit_code == 0, r.output
    assert "error        " in r.output and "true\\pred" in r.output
    # the plot's legend shows the test error beside the online error
    from onlinedeep.plots import _test_error, load_curve

    _, series, path = load_curve(run_dir)
    assert _test_error(path, series) == ev.recorded(run_dir, "test")["error_percent"]
    for args, message in (((tmp_path / "nothing",), "no such run folder or snapshot file"),
                          ((run_dir, "--split", "train"), "expected one of test, validation")):
        r = _invoke("evaluate", *args)
        assert r.exit_code == 2 and message in r.output


def test_concurrent_records_keep_every_entry(tmp_path):
    """A training run's own evaluation and an `onlinedeep evaluate` beside it: neither entry lost."""
    import threading

    from onlinedeep.evaluate import Evaluation, record, recorded

    def writer(first: int) -> None:
        for p in range(first, 60, 2):
            record(tmp_path / "run", Evaluation(split="test", n_examples=10, error=0.1, nll=0.2,
                                                confusion=np.eye(10, dtype=np.int64), position=p))

    threads = [threading.Thread(target=writer, args=(k,)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    data = json.loads((tmp_path / "run" / "evaluation-test.json").read_text())
    assert [e["position"] for e in data["evaluations"]] == list(range(60))
    assert recorded(tmp_path / "run")["position"] == 59


def test_load_module_gives_predict_proba(run, mnist):
    run_dir, _, _ = run
    net = load_module(run_dir)
    kinds = [type(m).__name__ for m in net]
    assert kinds == ["Linear", "Sigmoid", "Linear", "Softmax"]
    from infinite_mnist import to_float

    x = torch.from_numpy(to_float(mnist.test_images[:500]))
    params = {k: torch.from_numpy(v) for k, v in
              snapshot.load(run_folder.latest(run_dir / "snapshots")).params.items()}
    with torch.no_grad():
        torch.testing.assert_close(net(x), model.predict_proba(params, x), rtol=1e-5, atol=1e-6)
    deep = model.init_params(30, 12, 3, seed=1, n_outputs=5)
    xs = torch.rand(64, 30)
    with torch.no_grad():
        torch.testing.assert_close(to_module(deep)(xs), model.predict_proba(deep, xs),
                                   rtol=1e-5, atol=1e-6)
    assert [type(m).__name__ for m in to_module(deep)].count("Sigmoid") == 3


@pytest.mark.skipif(not HAS_TENSORBOARD, reason="the tensorboard extra is not installed")
def test_tensorboard_scalars(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, _, tb = run
    acc = EventAccumulator(str(tb))
    acc.Reload()
    steps = [e.step for e in acc.Scalars("online_error")]
    assert steps == [500, 1000, 1500, 2000]
    assert "online_nll" in acc.Tags()["scalars"]


def test_tensorboard_without_the_package_is_one_line(monkeypatch, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "tensorboard" else real(name, *a))
    r = _invoke("train", "--preset", "smoke", "--tensorboard", tmp_path / "tb", "--out", tmp_path,
                "--name", "x", "--no-progress")
    assert r.exit_code == 2
    assert r.output.strip().splitlines() == [
        "error: --tensorboard: needs the tensorboard package, which is not installed; install it "
        "with: pip install 'onlinedeep[tensorboard]'"]
    assert not (tmp_path / "x").exists()
