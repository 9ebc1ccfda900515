"""User errors in every command: one ``error: ...`` line, exit status 2 (usage, input) or 1
(running), no traceback, and nothing left behind; genuine bugs keep their traceback (onlinedeep_cli.main)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from onlinedeep_cli.main import app

pytestmark = [pytest.mark.usefixtures("single_thread"),
              pytest.mark.filterwarnings("ignore::infinite_mnist.MnistSourceWarning")]

SMALL = ["--preset", "smoke", "--pretrain", "none", "--n-hidden", "8", "--sup-updates", "1000",
         "--threads", "1", "--no-progress"]


def _run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _one_error_line(r, status: int, message: str) -> str:
    assert r.exit_code == status, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert "Traceback" not in r.output
    errors = [line for line in r.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, r.output
    assert message in errors[0], errors[0]
    return errors[0]


@pytest.fixture
def corrupt_mnist_dir(make_mnist_dir):
    d, _ = make_mnist_dir()
    data = bytearray((d / "train-labels-idx1-ubyte.gz").read_bytes())
    import gzip

    raw = bytearray(gzip.decompress(bytes(data)))
    raw[3] = 0x99  # bad magic
    (d / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(bytes(raw)))
    return d


def test_train_input_errors_leave_no_run_folder(tmp_path, corrupt_mnist_dir, mnist_dir):
    out = tmp_path / "runs"
    (tmp_path / "afile").write_text("x")
    cases = [
        (["--mnist-dir", "/nonexistent"], 2, "/nonexistent: MNIST files missing"),
        (["--mnist-dir", corrupt_mnist_dir], 2, "wrong magic number"),
        (["--deformation", "foo"], 2, "deformation: expected one of ('first-order', 'elastic', "
                                      "'infimnist'), found 'foo'"),
        (["--deformation", "infimnist"], 2, "--mnist-dir: expected infimnist's data directory"),
        (["--kernel", "foo"], 2, "kernel: expected one of ('auto', 'reference', 'numba', "
                                 "'cuda-graph'), found 'foo'"),
        (["--lr", "1e300"], 2, "--lr: expected a number > 0, finite and non-zero in float32"),
        (["--l2", "1e30"], 2, "l2: expected learning_rate·l2 < 0.5"),
        (["--stream-seed", str(2**64)], 2, "--stream-seed: expected an integer in [0, 2**64)"),
    ]
    if not torch.cuda.is_available():
        cases.append((["--kernel", "cuda-graph"], 2, "kernel 'cuda-graph' does not run on device cpu"))
    for extra, status, message in cases:
        r = _run("train", *SMALL, "--out", out, "--name", "r", *extra)
        _one_error_line(r, status, message)
        assert not (out / "r").exists(), extra  # no stub folder with config.json only
    r = _run("train", *SMALL, "--out", tmp_path, "--name", "afile", "--mnist-dir", mnist_dir)
    _one_error_line(r, 2, f"{tmp_path / 'afile'}: exists and is not a folder")
    r = _run("train", *SMALL, "--out", tmp_path / "afile" / "sub", "--name", "r",
             "--mnist-dir", mnist_dir)
    _one_error_line(r, 1, f"{tmp_path / 'afile'}: not a folder, cannot create the run folder")
    if Path("/proc").is_dir():   # a folder that exists but refuses new entries
        r = _run("train", *SMALL, "--out", "/proc/onlinedeep-runs", "--mnist-dir", mnist_dir)
        _one_error_line(r, 1, "/proc: cannot create the folder of the run folders "
                              "/proc/onlinedeep-runs in it (")


def test_outputs_that_cannot_be_written(tmp_path, mnist_dir):
    (tmp_path / "afile").write_text("x")
    blocked = tmp_path / "afile" / "sub"
    for args in (["generate", "--count", "3", "--out", blocked / "x.h5", "--mnist-dir", mnist_dir],
                 ["preview", "--out", blocked / "x.png", "--mnist-dir", mnist_dir, "--columns", "1"]):
        _one_error_line(_run(*args), 1, f"{tmp_path / 'afile'}: not a folder")
    (tmp_path / "d.h5").mkdir()                  # a folder where the file should go
    for args in (["generate", "--count", "3", "--out", tmp_path / "d.h5", "--mnist-dir", mnist_dir],
                 ["preview", "--out", tmp_path / "d.h5", "--mnist-dir", mnist_dir, "--columns", "1"]):
        _one_error_line(_run(*args), 1, f"{tmp_path / 'd.h5'}: is a folder; cannot write a file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "d.h5"]
    assert not list((tmp_path / "d.h5").iterdir())
    if Path("/proc").is_dir():                   # no storage there: the folder error, not "0 free"
        _one_error_line(_run("generate", "--count", "3", "--out", "/proc/onlinedeep/x.h5",
                             "--mnist-dir", mnist_dir), 1, "/proc: cannot create the folder")


def test_generate_input_errors(tmp_path, corrupt_mnist_dir):
    out = tmp_path / "x.h5"
    _one_error_line(_run("generate", "--count", "3", "--out", out, "--mnist-dir", "/nonexistent"),
                    2, "/nonexistent: MNIST files missing")
    _one_error_line(_run("generate", "--count", "3", "--out", out, "--mnist-dir", corrupt_mnist_dir),
                    2, "wrong magic number")
    a_file = tmp_path / "train-images-idx3-ubyte.gz"
    a_file.write_bytes(b"")
    _one_error_line(_run("generate", "--count", "3", "--out", out, "--mnist-dir", a_file),
                    2, "train-images-idx3-ubyte.gz: not a directory (expected the folder")
    r = _run("generate", "--count", "5", "--start", str(2**63 - 1), "--out", out)
    assert r.exit_code == 2 and "start + count <= 2**63" in " ".join(r.output.split()), r.output
    assert "Traceback" not in r.output and not out.exists()


def test_generate_checks_the_space_and_leaves_nothing_when_stopped(tmp_path, monkeypatch,
                                                                   sample_mnist_dir):
    import signal
    import subprocess
    import sys
    import time

    from onlinedeep import atomic

    out = tmp_path / "big.h5"
    monkeypatch.setattr(atomic, "free_bytes", lambda folder: 10_000_000)
    _one_error_line(_run("generate", "--count", "100000", "--out", out, "--mnist-dir",
                         sample_mnist_dir), 1, "not enough free space: 100,000 examples in")
    assert not out.exists() and not list(tmp_path.iterdir())
    # SIGTERM while writing: no file, no temporary file (as Ctrl-C)
    proc = subprocess.Popen([sys.executable, "-m", "onlinedeep_cli.main", "generate", "--count",
                             "5000000", "--chunk-size", "2000", "--out", str(out), "--mnist-dir",
                             str(sample_mnist_dir)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob("big.h5.tmp*")):  # writing has started
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted: " in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())


def test_ordering_variance_refusals(tmp_path):
    r = _run("ordering-variance", "run", "--out", tmp_path / "ov", "--preset", "smoke",
             "--test-count", "20000", "--dry-run")
    _one_error_line(r, 2, "test_count: expected test_start + test_count <= 10,000")
    r = _run("ordering-variance", "run", "--out", tmp_path / "ov", "--preset", "smoke",
             "--kernel", "foo", "--dry-run")
    _one_error_line(r, 2, "kernel: expected one of")

    from onlinedeep.experiments.ordering_variance import OrderingPlan, save_or_check_plan

    save_or_check_plan(OrderingPlan.preset("smoke"), tmp_path / "ov")
    r = _run("ordering-variance", "run", "--out", tmp_path / "ov", "--preset", "smoke",
             "--draws", "4")
    _one_error_line(r, 2, "this folder holds a different experiment, made with --preset smoke "
                          "(stored vs requested): --draws: 3 vs 4")
    assert "already finished" not in r.output  # refused before anything ran
    assert sorted(p.name for p in (tmp_path / "ov").iterdir()) == ["plan.json"]


def test_local_jobs_and_a_scheduler_are_refused_together(tmp_path):
    r = _run("experiment", "run", "figure11", "--out", tmp_path / "s8", "--jobs", "2",
             "--scheduler", "tcp://127.0.0.1:1", "--dry-run")
    _one_error_line(r, 2, "--jobs: starts local worker processes; with --scheduler")
    assert not list(tmp_path.iterdir())


def test_reports_of_an_empty_folder_say_what_to_run(tmp_path):
    for figure in ("figure11", "figure13", "table1"):
        r = _run("experiment", "report", figure, "--out", tmp_path / "none")
        _one_error_line(r, 2, str(tmp_path / "none"))
    r = _run("experiment", "report", "figure13", "--out", tmp_path / "none")
    assert f"run it first: onlinedeep experiment run figure13 --out {tmp_path / 'none'}" in r.output
    r = _run("ordering-variance", "indices", "--segment", "1", "--draw", "0", "--out",
             tmp_path / "none")
    _one_error_line(r, 2, "no experiment plan here")
    assert not (tmp_path / "none").exists()


def test_an_interrupted_experiment_says_what_finished_and_how_to_go_on(capsys, monkeypatch):
    import typer

    from onlinedeep_cli.preflight import exit_interrupted

    monkeypatch.setattr("sys.argv", ["onlinedeep", "experiment", "run", "figure11", "--out", "a b"])
    with pytest.raises(typer.Exit) as stop:
        exit_interrupted(6, 2, now=3)
    assert stop.value.exit_code == 130
    assert capsys.readouterr().err.strip() == (
        "interrupted: 4 of 6 jobs finished (3 in this run); the 2 others resume from their last "
        "snapshot; continue with the same command: onlinedeep experiment run figure11 --out 'a b'")
    with pytest.raises(typer.Exit):
        exit_interrupted(10, 10, others="start over")
    assert capsys.readouterr().err.startswith("interrupted: 0 of 10 jobs finished; the 10 others "
                                              "start over; continue with")


def test_unreachable_scheduler_writes_nothing(tmp_path):
    from onlinedeep.experiments import executors
    from onlinedeep.experiments.ordering_variance import OrderingPlan, run_experiment

    with pytest.raises(OSError, match=r"cannot reach the Dask scheduler at tcp://127\.0\.0\.1:1 "
                                      r"within 2 s"):
        run_experiment(OrderingPlan.preset("smoke"), tmp_path / "ov",
                       lambda: executors.remote_client("tcp://127.0.0.1:1", timeout=2))
    assert not (tmp_path / "ov").exists()  # no plan.json: a rerun is not mistaken for a start


def test_os_errors_are_reported_as_runtime_errors(tmp_path, monkeypatch):
    import onlinedeep_cli.main

    assert onlinedeep_cli.main._exit_status(ConnectionRefusedError("x")) == 1
    assert onlinedeep_cli.main._exit_status(ZeroDivisionError()) is None
    assert onlinedeep_cli.main._message(PermissionError(13, "Permission denied", "/sys/x")) == \
        "/sys/x: Permission denied"


def test_genuine_bugs_keep_their_traceback(monkeypatch, tmp_path):
    from onlinedeep import config

    def broken(*args, **kwargs):
        raise ValueError("a bug, not a user error")  # a plain ValueError is not user-facing

    monkeypatch.setattr(config.RunConfig, "preset", broken)
    r = _run("train", "--out", tmp_path)
    assert isinstance(r.exception, ValueError) and r.exit_code == 1
    assert "error:" not in r.output


def test_resume_refuses_options_that_cannot_change(tmp_path, mnist_dir):
    r = _run("train", *SMALL, "--out", tmp_path, "--name", "r", "--mnist-dir", mnist_dir)
    assert r.exit_code == 0, r.output
    run_dir = tmp_path / "r"
    for extra, flags in ((["--out", tmp_path / "other"], "--out"), (["--name", "branch"], "--name"),
                         (["--out", tmp_path / "o", "--name", "b", "--lr", "0.1"],
                          "--lr, --name, --out")):
        line = _one_error_line(_run("train", "--resume", run_dir, *extra), 2,
                               f"{flags}: cannot change when resuming")
        allowed = re.search(r"allowed: (.*)$", line).group(1).split(", ")
        assert "--out" not in allowed and "--name" not in allowed and "--sup-updates" in allowed
    assert not (tmp_path / "other").exists() and not (tmp_path / "o").exists()
    # the run's own values repeated change nothing: accepted
    stored = json.loads((run_dir / "config.json").read_text())
    r = _run("train", "--resume", run_dir, "--seed", stored["seed"], "--n-hidden", stored["n_hidden"],
             "--out", tmp_path, "--name", "r")
    assert r.exit_code == 0 and "the run is complete" in r.output, r.output
    # ... however the folder is written ("dir/", "./dir", relative to the current folder)
    for out in (f"{tmp_path}/", f"{tmp_path}/./"):
        r = _run("train", "--resume", run_dir, "--out", out, "--name", "r")
        assert r.exit_code == 0 and "the run is complete" in r.output, r.output
    _one_error_line(_run("train", "--resume", run_dir, "--seed", stored["seed"] + 1), 2,
                    "--seed: cannot change when resuming")
    # a value checked by the configuration is named by its option, also after the snapshot's path
    line = _one_error_line(_run("train", "--resume", run_dir, "--snapshot-every", "777"), 2,
                           ": --snapshot-every: expected a multiple of --chunk-size=")
    assert "snapshot.h5" in line or ".h5: configuration" in line
    _one_error_line(_run("train", "--preset", "paper2", "--out", tmp_path), 2,
                    "error: --preset: expected one of ['paper', 'smoke']")
    _one_error_line(_run("train", "--preset", "", "--out", tmp_path), 2,  # not the default
                    "error: --preset: expected one of ['paper', 'smoke'], found ''")


def test_usage_errors_are_one_error_line(tmp_path):
    for args, message in ((["train", "--layers", "abc"], "Invalid value for '--layers'"),
                          (["train", "--bogus"], "No such option: --bogus"),
                          (["evaluate"], "Missing argument 'RUN_OR_SNAPSHOT'; see '"),
                          (["show", "filters"], "Missing argument"),
                          (["nosuch"], "No such command 'nosuch'"),
                          (["--bogus"], "No such option: --bogus; see '")):
        r = _run(*args)
        assert _one_error_line(r, 2, message).endswith(" --help'")
        assert len(r.output.splitlines()) == 1 and "Usage:" not in r.output, r.output
    r = _run()  # no command: the help, as before
    assert "[OPTIONS] COMMAND [ARGS]" in r.output and "error:" not in r.output
    assert not list(tmp_path.iterdir())


def test_resume_given_a_snapshot_file_names_the_run_folder(tmp_path):
    snapshot = tmp_path / "run" / "snapshots" / "snapshot-000001000.h5"
    snapshot.parent.mkdir(parents=True)
    snapshot.write_bytes(b"not read")
    line = _one_error_line(_run("train", "--resume", snapshot), 2, "--resume: ")
    assert line.endswith(f"takes the run folder (the one holding snapshots/): --resume {tmp_path / 'run'}")
    stray = tmp_path / "notes.txt"                      # a file in no run folder: no suggestion
    stray.write_text("x")
    line = _one_error_line(_run("train", "--resume", stray), 2, "is a file")
    assert line.endswith("holding snapshots/)")
    line = _one_error_line(_run("train", "--resume", snapshot.parent), 2, "--resume: ")
    assert line.endswith(f"is the snapshots/ folder of a run; --resume takes the run folder: "
                         f"--resume {tmp_path / 'run'}")
    assert snapshot.read_bytes() == b"not read" and stray.read_text() == "x"


def test_readme_lists_exactly_the_options_allowed_with_resume():
    from onlinedeep.config import RESUME_MUTABLE

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    m = re.search(r"only `(--[^`]*)` may be given", " ".join(readme.split()))
    assert m, "README: the sentence listing the options allowed with --resume is missing"
    assert sorted(m.group(1).split()) == sorted("--" + f.replace("_", "-") for f in RESUME_MUTABLE)


def test_summary_warns_at_chance_level_and_without_supervised_updates(tmp_path, mnist_dir):
    r = _run("train", "--preset", "smoke", "--pretrain", "none", "--n-hidden", "8", "--sup-updates",
             "1000", "--window", "500", "--lr", "1e6", "--threads", "1", "--no-progress",
             "--out", tmp_path, "--name", "diverged", "--mnist-dir", mnist_dir)
    assert r.exit_code == 0, r.output
    error = float(re.search(r"online_error (\d\.\d+)", r.output).group(1))
    assert error >= 0.85
    assert "warning: the final online_error" in r.output and "try a smaller --lr" in r.output

    r = _run("train", "--preset", "smoke", "--pretrain", "dae", "--n-hidden", "8", "--unsup-updates",
             "500", "--sup-updates", "0", "--threads", "1", "--no-progress", "--out", tmp_path,
             "--name", "unsup", "--mnist-dir", mnist_dir)
    assert r.exit_code == 0, r.output
    assert "no supervised updates, so no online error" in r.output
    assert "warning: the final online_error" not in r.output
    assert not (tmp_path / "unsup" / "online_error.png").exists()


def test_an_empty_path_is_refused_not_read_as_the_current_folder(tmp_path, monkeypatch):
    """``--out "$RUN"`` with ``RUN`` unset: click reads ``""`` as ``.``, so a run would write
    into, or resume, whatever folder the shell is in."""
    monkeypatch.chdir(tmp_path)
    cases = [
        (["train", *SMALL, "--out", ""], "--out"),
        (["train", *SMALL, "--out", "", "--out", str(tmp_path / "r")], "--out"),  # not the last
        (["train", *SMALL, "--out", str(tmp_path / "r"), "--mnist-dir", ""], "--mnist-dir"),
        (["train", "--resume", ""], "--resume"),
        (["generate", "--count", "3", "--out="], "--out"),
        (["experiment", "run", "figure13", "--preset", "smoke", "--out", "", "--dry-run"], "--out"),
        (["ordering-variance", "report", "--out", ""], "--out"),
        (["evaluate", ""], "RUN_OR_SNAPSHOT"),
        (["evaluate", str(tmp_path), "--mnist-dir", ""], "--mnist-dir"),
        (["show", "filters", str(tmp_path), ""], "RUNS"),
    ]
    for args, name in cases:
        r = _run(*args)
        _one_error_line(r, 2, f"Invalid value for {name}: expected a path, found an empty string")
    assert list(tmp_path.iterdir()) == []
    # a flag before an empty positional is not taken for an option's value; a non-empty path passes
    r = _run("evaluate", str(tmp_path / "missing"))
    assert "empty string" not in r.output and r.exit_code == 2
