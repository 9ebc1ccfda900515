"""``onlinedeep train`` and ``onlinedeep plot`` end to end on the real MNIST ($ONLINEDEEP_MNIST_DIR)."""
from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from onlinedeep_cli.main import app
from onlinedeep import run_folder, snapshot

pytestmark = [pytest.mark.usefixtures("single_thread"),
              pytest.mark.filterwarnings("ignore::infinite_mnist.MnistSourceWarning")]

# A smoke-sized protocol: 64 units, 1,000 unsupervised + 3,000 supervised updates (4,000 without
# pre-training), online error over the last 1,000 examples.
SMOKE = ["--preset", "smoke", "--n-hidden", "64", "--window", "1000", "--log-every", "250",
         "--snapshot-every", "1000", "--no-progress"]
COUNTS = {"dae": ["--unsup-updates", "1000", "--sup-updates", "3000"],
          "rbm": ["--unsup-updates", "1000", "--sup-updates", "3000"],
          "none": ["--sup-updates", "4000"]}


def _invoke(*args):
    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    return result


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory, mnist_dir):
    out = tmp_path_factory.mktemp("runs")
    runs = {}
    for pretrain in ("dae", "rbm", "none"):
        r = _invoke("train", *SMOKE, *COUNTS[pretrain], "--pretrain", pretrain, "--mnist-dir", mnist_dir,
                    "--out", out, "--name", pretrain)
        runs[pretrain] = (out / pretrain, r)
    return runs


@pytest.mark.parametrize("pretrain", ["dae", "rbm", "none"])
def test_smoke_train_learns_on_real_mnist(smoke_runs, pretrain):
    run_dir, r = smoke_runs[pretrain]
    assert r.exit_code == 0, r.output
    snap = snapshot.load(run_folder.latest(run_dir / "snapshots"))
    assert snap.phase == "done" and snap.position == 4000
    window = snap.metrics["errors"]
    online_error = window["total"] / min(window["n_seen"], 1000)
    print(f"\n{pretrain}: online error over the last 1,000 of 4,000 examples = {online_error:.4f}")
    assert online_error < 0.5  # chance is 0.9
    assert f"online_error {online_error:.4f}" in r.output
    assert (run_dir / "online_error.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for name in ("config.json", "schedule.json", "provenance.json", "log.txt"):
        assert (run_dir / name).is_file()
    assert "mnist.md5:train-images-idx3-ubyte.gz" in snap.provenance["data"]
    if pretrain != "none":
        rec = snap.metrics["series"].reconstruction
        rec = rec[rec == rec]
        assert rec[-1] < rec[0]  # the reconstruction cost of the pre-trained layer went down


def test_resume_extends_a_finished_run(smoke_runs, mnist_dir):
    run_dir, r = smoke_runs["none"]
    assert r.exit_code == 0
    r = _invoke("train", "--resume", run_dir, "--sup-updates", "4500", "--no-progress",
                "--mnist-dir", mnist_dir)
    assert r.exit_code == 0, r.output
    assert "resuming" in r.output and "position     4,500 of 4,500" in r.output
    assert snapshot.load(run_folder.latest(run_dir / "snapshots")).position == 4500


def test_bad_options(tmp_path, smoke_runs):
    run_dir, _ = smoke_runs["dae"]
    cases = [
        (["train", "--unsup-updates", "2.5X"], "2.5X"),
        (["train", "--layers", "9", "--out", tmp_path], "layers: expected an integer in 1..5"),
        (["train", "--pretrain", "sdae", "--out", tmp_path], "pretrain: expected one of"),
        (["train", "--preset", "smoke", "--snapshot-every", "1234", "--out", tmp_path],
         "multiple of --chunk-size=500"),
        (["train", "--preset", "tiny", "--out", tmp_path], "preset: expected one of"),
        (["train", "--resume", tmp_path / "nothing"], "no snapshot to resume from"),
        (["train", "--resume", run_dir, "--lr", "0.5"], "--lr: cannot change when resuming"),
        (["train", "--resume", run_dir, "--preset", "smoke"], "--preset cannot be combined"),
        (["train", "--preset", "smoke", "--out", run_dir.parent, "--name", "dae"], "already holds a run"),
        (["plot", tmp_path / "missing.h5", "--out", tmp_path / "x.png"],
         "no such run folder or snapshot file"),
        (["train", "--pretrain", "none", "--unsup-updates", "5", "--out", tmp_path],
         "--unsup-updates: expected 0 with --pretrain='none'"),
    ]
    for args, message in cases:
        r = CliRunner().invoke(app, [str(a) for a in args])
        assert r.exit_code == 2, (args, r.output)
        assert message in " ".join(r.output.split()), (args, r.output)


def test_plot_several_runs(smoke_runs, tmp_path):
    dirs = [smoke_runs[k][0] for k in ("dae", "rbm", "none")]
    out = tmp_path / "fig11.png"
    r = _invoke("plot", *dirs, "--out", out, "--title", "smoke")
    assert r.exit_code == 0, r.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a snapshot file works as well as a run folder
    r = _invoke("plot", run_folder.latest(dirs[0] / "snapshots"), "--out", tmp_path / "one.png",
                "--label", "SDAE")
    assert r.exit_code == 0, r.output
    # an empty label: no legend, and no matplotlib warning about it
    r = _invoke("plot", dirs[0], "--out", tmp_path / "nolabel.png", "--label", "")
    assert r.exit_code == 0 and "warning" not in r.output.lower(), r.output


def test_ctrl_c_writes_a_snapshot_and_exits_non_zero(tmp_path, mnist_dir):
    cmd = [sys.executable, "-m", "onlinedeep_cli.main", "train", "--preset", "smoke", "--pretrain", "none",
           "--n-hidden", "32", "--sup-updates", "10M", "--snapshot-every", "1000", "--threads", "1",
           "--mnist-dir", str(mnist_dir), "--out", str(tmp_path), "--name", "r", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    snaps = tmp_path / "r" / "snapshots"
    try:
        deadline = time.monotonic() + 120
        while not any(p > 0 for p, _, _ in run_folder.list_snapshots(snaps)):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no periodic snapshot within 120 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 128 + signal.SIGINT, (out, err)
    assert "SIGINT received: stopped at position" in err and "resume with" in err
    last = snapshot.load(run_folder.latest(snaps))
    assert 0 < last.position < 10_000_000 and last.position % 500 == 0
