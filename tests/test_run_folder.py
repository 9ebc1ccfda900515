"""The files of a run folder and of a job folder (onlinedeep.run_folder)."""
from __future__ import annotations

import json

import pytest

from onlinedeep import threads
from onlinedeep.config import RunConfig
from onlinedeep.run_folder import JobFolder, RunDirError, RunFolder, reserved_folder


def _config(**kw):
    return RunConfig(**{"pretrain": "none", "sup_updates": 1000, "chunk_size": 100,
                        "snapshot_every": 100, **kw})


def test_a_second_process_cannot_work_in_a_locked_folder(tmp_path):
    run, experiment = RunFolder(tmp_path / "run"), JobFolder(tmp_path / "ov")
    with run.session():
        with pytest.raises(RunDirError, match="run folder is in use by another process"):
            with RunFolder(tmp_path / "run").session():
                pass
    with run.session():  # released on exit
        pass
    with experiment.session():
        with pytest.raises(RunDirError, match="experiment folder is in use"):
            with JobFolder(tmp_path / "ov").session():
                pass


def test_check_free_refuses_a_held_folder_and_creates_nothing(tmp_path):
    experiment = JobFolder(tmp_path / "ov")
    experiment.check_free()  # no folder yet: nothing to refuse, nothing created
    assert not experiment.path.exists()
    with experiment.session():
        with pytest.raises(RunDirError, match="experiment folder is in use"):
            JobFolder(tmp_path / "ov").check_free()
    JobFolder(tmp_path / "ov").check_free()  # released
    with experiment.session():  # and check_free left no lock behind
        pass


def test_a_failed_start_removes_what_it_wrote(tmp_path):
    run = RunFolder(tmp_path / "new" / "run")

    def start():
        (run.path / "config.json").write_text("{}")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        with run.session(start=start):
            pass
    assert not run.path.exists() and (tmp_path / "new").is_dir()


def test_is_complete_needs_the_final_snapshot_and_the_same_configuration(tmp_path):
    cfg = _config()
    run = RunFolder(tmp_path / "run")
    assert not run.is_complete(cfg)
    run.write_run_files(cfg, {}, {})
    run.snapshot_path(cfg.total_updates, pinned=True).parent.mkdir()
    run.snapshot_path(cfg.total_updates, pinned=True).write_bytes(b"")
    assert run.is_complete(cfg)
    assert run.is_complete(_config(threads=2, kernel="reference"))  # execution-only fields
    assert not run.is_complete(_config(learning_rate=0.01))
    stored = json.loads((run.path / "config.json").read_text())
    del stored["n_inputs"]  # written before the field existed: MNIST
    (run.path / "config.json").write_text(json.dumps(stored))
    assert run.is_complete(cfg)


def test_a_file_is_not_a_run_folder(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(RunDirError, match="exists and is not a folder"):
        RunFolder(tmp_path / "f")


def test_thread_decisions():
    assert threads.decide("kernel", 3) == 3 and threads.decide("kernel", 9) == 4
    assert threads.decide("torch", 0) is None and threads.decide("torch", 2) == 2
    assert threads.decide("loop-torch") == 1 and threads.decide("generator") == 1
    assert threads.decide("job", 0, jobs=threads.available_cores() * 2) == 1
    assert threads.decide("job", 3, jobs=8) == 3
    with pytest.raises(ValueError, match="role"):
        threads.decide("gpu")
    with pytest.raises(ValueError, match="threads must be an integer >= 0"):
        threads.decide("kernel", -1)


def test_a_default_name_taken_at_the_same_moment_gets_a_folder_of_its_own(tmp_path):
    parent = tmp_path / "a" / "runs"
    with reserved_folder(parent, "none-1x8-s0-20261203-120000") as first:
        with reserved_folder(parent, "none-1x8-s0-20261203-120000") as second:
            assert (first.name, second.name) == ("none-1x8-s0-20261203-120000",
                                                 "none-1x8-s0-20261203-120000-2")
            assert first.is_dir() and second.is_dir()
            (second / "config.json").write_text("{}")
    # a failed start removes its empty folder and the parents it made, not a folder in use
    with pytest.raises(KeyboardInterrupt):
        with reserved_folder(tmp_path / "b" / "runs", "run") as path:
            raise KeyboardInterrupt
    assert not path.exists() and not (tmp_path / "b").exists()
    with pytest.raises(ValueError):
        with reserved_folder(parent, "run") as path:
            (path / "snapshots").mkdir()
            raise ValueError
    assert path.is_dir()
