"""SHA-256 fingerprints of what training produces, to show a refactor changed no behaviour.

Runs, on one thread each, in a fresh folder:

(a) ``onlinedeep train``: 120k updates (40k DAE pre-training of a 784-200-200-10 net, 80k
    supervised), Figure 12 blocks at the end;
(b) the same run in two legs: 80k updates (``--sup-updates 40k``), then ``--resume`` with
    ``--sup-updates 80k``; and the same run interrupted through the Python API (``run(stop=60k)``)
    and resumed from its folder;
(c) a branch: the 60k snapshot of (a)'s configuration continued with a schedule whose examples at
    positions 60k-80k are replaced by a fresh range;
(d) ``onlinedeep ordering-variance run --preset smoke`` then ``report``.

and prints one line per parameter array of each final snapshot, per metrics series, per job output
and per report table: ``name sha256``. Run it before and after a change and ``diff`` the outputs;
(a) and both variants of (b) must also agree with each other.

Usage: ``ONLINEDEEP_MNIST_DIR=... python scripts/behaviour_hashes.py [WORKDIR]``
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np

TRAIN = ["--layers", "2", "--units", "200", "--pretrain", "dae", "--unsup-updates", "40k",
         "--window", "10k", "--log-every", "5k", "--snapshot-every", "20k", "--threads", "1",
         "--no-progress"]


def sha(a) -> str:
    a = np.ascontiguousarray(a)
    return hashlib.sha256(str(a.dtype).encode() + str(a.shape).encode() + a.tobytes()).hexdigest()


def onlinedeep(*args: str) -> str:
    exe = Path(sys.executable).with_name("onlinedeep")
    done = subprocess.run([str(exe), *args], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"onlinedeep {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
    return done.stdout


def final_snapshot(run_dir: Path) -> Path:
    return sorted((run_dir / "snapshots").glob("snapshot-*.h5"))[-1]


def print_snapshot(label: str, path: Path) -> None:
    with h5py.File(path, "r") as f:
        print(f"{label} position {int(f.attrs['position'])}")
        for name in f["params"]:
            print(f"{label} params/{name} {sha(f['params'][name][...])}")
        for name in f["series"]:
            print(f"{label} series/{name} {sha(f['series'][name][...])}")
        for name in ("errors", "nll", "reconstruction"):
            print(f"{label} metrics/{name} {sha(f['metrics'][name][...])}")
        if "train_error" in f:
            for name in f["train_error"]:
                print(f"{label} train_error/{name} {sha(f['train_error'][name][...])}")


def api():
    """(new run, resume a run folder, branch a snapshot) of the code under test."""
    try:
        from onlinedeep.training import Trainer, branch, resume  # after the split of the trainer
        return Trainer, resume, branch
    except ImportError:
        from onlinedeep.trainer import Trainer  # before

        return Trainer, Trainer.resume, Trainer.from_snapshot


def main(work: Path) -> None:
    from onlinedeep.config import RunConfig

    start, resume, branch = api()
    out = work / "runs"

    # (a) one uninterrupted run, with Figure 12 blocks
    onlinedeep("train", *TRAIN, "--sup-updates", "80k", "--train-error-blocks", "4",
               "--name", "a", "--out", str(out))
    print_snapshot("a", final_snapshot(out / "a"))

    # (b1) two CLI legs: a shorter run, resumed with more supervised updates
    onlinedeep("train", *TRAIN, "--sup-updates", "40k", "--name", "b1", "--out", str(out))
    onlinedeep("train", "--resume", str(out / "b1"), "--sup-updates", "80k", "--threads", "1",
               "--no-progress")
    print_snapshot("b1", final_snapshot(out / "b1"))

    # (b2) the Python API: stopped at 60k, resumed from the folder
    config = RunConfig(layers=2, n_hidden=200, pretrain="dae", unsup_updates=40_000,
                       sup_updates=80_000, window=10_000, log_every=5_000, snapshot_every=20_000,
                       keep_snapshots=0, threads=1, mnist_dir=os.environ["ONLINEDEEP_MNIST_DIR"])
    trainer = start(config, run_dir=out / "b2")
    trainer.run(stop=60_000, progress=False)
    trainer = resume(out / "b2")
    trainer.run(progress=False)
    print_snapshot("b2", final_snapshot(out / "b2"))

    # (c) a branch from the 60k snapshot: positions 60k-80k replaced by training ids 500k-520k
    point = out / "b2" / "snapshots" / "snapshot-000000060000.pinned.h5"
    if not point.exists():
        point = out / "b2" / "snapshots" / "snapshot-000000060000.h5"
    from infinite_mnist import Schedule

    schedule = Schedule.contiguous(120_000, start=0, split="protocol").replace(60_000, 20_000, 500_000)
    trainer = branch(point, schedule=schedule, run_dir=out / "c")
    trainer.run(progress=False)
    print_snapshot("c", final_snapshot(out / "c"))

    # (d) the ordering-variance smoke experiment and its report
    ov = work / "ordering"
    onlinedeep("ordering-variance", "run", "--preset", "smoke", "--out", str(ov), "--jobs", "1",
               "--threads", "1")
    text = onlinedeep("ordering-variance", "report", "--out", str(ov))
    table_lines = [line for line in text.splitlines() if not line.startswith(("table:", "figure:"))]
    print(f"d report-text {hashlib.sha256(chr(10).join(table_lines).encode()).hexdigest()}")
    with h5py.File(ov / "ordering_variance.h5", "r") as f:
        print(f"d table {sha(f['table'][...])}")
    for job in sorted(ov.glob("*/*.h5")):
        with h5py.File(job, "r") as f:
            print(f"d {job.parent.name}/{job.name} {sha(f['probabilities'][...])}")
    for cond in sorted(p for p in ov.iterdir() if p.is_dir()):
        for run_dir in sorted(p for p in cond.iterdir() if p.is_dir()):
            path = final_snapshot(run_dir)
            with h5py.File(path, "r") as f:
                digest = hashlib.sha256(b"".join(
                    np.ascontiguousarray(f["params"][k][...]).tobytes() for k in sorted(f["params"])
                )).hexdigest()
            print(f"d {cond.name}/{run_dir.name}/{path.name} params {digest}")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        work = Path(sys.argv[1])
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        main(work)
    else:
        with tempfile.TemporaryDirectory() as d:
            main(Path(d))
