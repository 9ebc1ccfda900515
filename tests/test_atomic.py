"""The atomic writers (infinite_mnist.atomic for the generator, onlinedeep.atomic for the engine):
permissions follow the umask, and every output of the project goes through one of them."""
from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

import numpy as np
import pytest

import infinite_mnist.atomic

WRITERS = [infinite_mnist.atomic.atomic_file]  # onlinedeep.atomic re-exports it

pytestmark = pytest.mark.filterwarnings("ignore::infinite_mnist.MnistSourceWarning")


@contextlib.contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("atomic_file", WRITERS)
@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002, 0o077])
def test_atomic_file_respects_the_umask(tmp_path, mask, atomic_file):
    with umask(mask):
        with atomic_file(tmp_path / "sub" / "a.txt") as tmp:
            assert Path(tmp).parent == tmp_path / "sub"
            Path(tmp).write_text("new")
    assert (tmp_path / "sub" / "a.txt").read_text() == "new"
    assert _mode(tmp_path / "sub" / "a.txt") == 0o666 & ~mask
    assert os.listdir(tmp_path / "sub") == ["a.txt"]


@pytest.mark.parametrize("atomic_file", WRITERS)
def test_atomic_file_leaves_the_old_file_on_error(tmp_path, atomic_file):
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_file(target) as tmp:
            Path(tmp).write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["a.txt"]


@pytest.mark.parametrize("atomic_file", WRITERS)
def test_atomic_file_refuses_an_empty_path(tmp_path, atomic_file, monkeypatch):
    monkeypatch.chdir(tmp_path)  # "" would be the current folder
    with pytest.raises(ValueError, match="expected a file path, found an empty one"):
        with atomic_file(""):
            pass
    assert os.listdir(tmp_path) == []


def test_every_writer_uses_the_one_helper():
    # infinite_mnist.atomic (the generator, usable alone) owns atomic_file; onlinedeep.atomic
    # re-exports it and adds write_bytes on top; no other module keeps a private mkstemp/rename copy.
    from onlinedeep import atomic, snapshot

    assert atomic.atomic_file is infinite_mnist.atomic.atomic_file
    assert snapshot.write.write_bytes is atomic.write_bytes
    root = Path(__file__).resolve().parents[1]
    offenders = []
    for package in ("infinite_mnist", "onlinedeep", "cli"):
        for py in (root / package).rglob("*.py"):
            text = py.read_text()
            if py.name != "atomic.py" and ("mkstemp" in text or "os.replace(" in text
                                           or ".replace(out)" in text):
                offenders.append(str(py.relative_to(root)))
    assert offenders == []


def test_generate_preview_plot_and_run_folder_outputs_respect_the_umask(tmp_path, mnist_dir):
    from typer.testing import CliRunner

    from onlinedeep_cli.main import app

    mask = 0o027
    expected = 0o666 & ~mask
    runner = CliRunner()
    with umask(mask):
        for args in (["generate", "--count", "3", "--out", str(tmp_path / "g.h5")],
                     ["generate", "--count", "3", "--out", str(tmp_path / "g-images-idx3-ubyte.gz")],
                     ["preview", "--columns", "2", "--digits", "1,2", "--out", str(tmp_path / "p.png")],
                     ["train", "--preset", "smoke", "--pretrain", "none", "--n-hidden", "8",
                      "--sup-updates", "1000", "--threads", "1", "--no-progress",
                      "--out", str(tmp_path / "runs"), "--name", "r"]):
            r = runner.invoke(app, [*args, "--mnist-dir", str(mnist_dir)])
            assert r.exit_code == 0, r.output
        r = runner.invoke(app, ["plot", str(tmp_path / "runs" / "r"), "--out", str(tmp_path / "f.png")])
        assert r.exit_code == 0, r.output
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"g.h5", "g-images-idx3-ubyte.gz", "g-labels-idx1-ubyte.gz", "p.png", "f.png",
            "config.json", "schedule.json", "provenance.json", "log.txt",
            "online_error.png"} <= names
    assert any(p.suffix == ".h5" and p.parent.name == "snapshots" for p in files)
    wrong = {str(p.relative_to(tmp_path)): oct(_mode(p)) for p in files if _mode(p) != expected}
    assert wrong == {}


def test_mnist_cache_files_respect_the_umask(tmp_path):
    from infinite_mnist import mnist

    with umask(0o002):
        mnist._atomic_write(tmp_path / "x.gz", b"data")
    assert _mode(tmp_path / "x.gz") == 0o664 and os.listdir(tmp_path) == ["x.gz"]
    np.testing.assert_array_equal(np.frombuffer((tmp_path / "x.gz").read_bytes(), np.uint8),
                                  np.frombuffer(b"data", np.uint8))


def test_a_memory_backed_folder_has_only_the_memory_left_free(tmp_path, monkeypatch):
    """A tmpfs may be sized above the memory the machine has left: filling it would take the
    memory of every process (seen: a 24 GB file in /dev/shm killed a training job)."""
    from collections import namedtuple

    import psutil

    from onlinedeep import atomic

    Mount = namedtuple("Mount", "device mountpoint fstype opts")
    Memory = namedtuple("Memory", "available")
    mounts = [Mount("/dev/vda", "/", "ext4", ""), Mount("tmpfs", str(tmp_path / "shm"), "tmpfs", "")]
    monkeypatch.setattr(psutil, "disk_partitions", lambda all=False: mounts)
    monkeypatch.setattr(psutil, "virtual_memory", lambda: Memory(5_000_000))
    (tmp_path / "shm" / "sub").mkdir(parents=True)
    assert atomic.in_memory(tmp_path / "shm" / "sub") and not atomic.in_memory(tmp_path)
    assert not atomic.in_memory(str(tmp_path / "shm") + "x")      # a prefix is not a mount
    assert atomic.free_bytes(tmp_path / "shm" / "sub") <= 5_000_000
    with pytest.raises(atomic.DiskFullError, match=r"5\.0 MB free \(a memory-backed file system"):
        atomic.check_free_space(tmp_path / "shm" / "sub" / "new", 4_990_000, "the file")
    atomic.check_free_space(tmp_path / "sub", 4_990_000, "the file")   # on disk: no memory cap
