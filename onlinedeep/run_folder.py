"""Every path and file name inside a run folder and a job folder, and their locks.

A **run folder** holds one training run (``onlinedeep train``, or one job of an experiment)::

    config.json        the RunConfig (JSON), rewritten at every start and resume
    schedule.json      the training sequence (``infinite_mnist.Schedule.to_dict()``)
    provenance.json    data and software the run was trained with
    log.txt            one line per event (start, records, snapshots, resume, stop)
    online_error.png   the online-error curve (written by the command line)
    run.lock           held (``flock``) by the process training in the folder
    snapshots/snapshot-<position, 12 digits>.h5          periodic snapshots (the last few kept)
    snapshots/snapshot-<position, 12 digits>.pinned.h5   never pruned: start, end, branch points

A **job folder** holds an experiment made of runs (``onlinedeep ordering-variance``)::

    plan.json          the experiment's plan; a rerun must match it
    last_run.json      outcome of every job of the latest run
    experiment.lock    held by the process running the experiment
    <key>/             the run folder of job ``key`` (keys may contain '/')
    <key>.h5           job ``key``'s output, written last: its presence means "finished"

This module writes files through the writers it is given (a snapshot writer, JSON data); it knows
no file format beyond names and JSON.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any, Callable, Iterator

from onlinedeep.atomic import TMP_MARKER, atomic_file, make_folder
from onlinedeep.config import BRANCH_MUTABLE, RunConfig

__all__ = ["RunDirError", "RunFolder", "JobFolder", "reserved_folder", "snapshot_name",
           "position_in_name", "list_snapshots", "latest"]

SNAPSHOT_DIR = "snapshots"
CONFIG_FILE = "config.json"
SCHEDULE_FILE = "schedule.json"
PROVENANCE_FILE = "provenance.json"
LOG_FILE = "log.txt"
PLOT_FILE = "online_error.png"
RUN_LOCK = "run.lock"
PLAN_FILE = "plan.json"
LAST_RUN_FILE = "last_run.json"
EXPERIMENT_LOCK = "experiment.lock"
_NAME_RE = re.compile(r"^snapshot-(\d{12})(\.pinned)?\.h5$")


def _changes(stored: dict, config: RunConfig) -> list[str]:
    """``"field: old -> new"`` for each field of ``config`` a stored ``config.json`` gives another
    value, execution-only fields (``config.BRANCH_MUTABLE``) and fields it lacks aside."""
    return [f"{k}: {stored[k]!r} -> {v!r}" for k, v in config.to_dict().items()
            if k not in BRANCH_MUTABLE and k in stored and stored[k] != v]


class StartOverWarning(UserWarning):
    """A new run reuses a folder an earlier start with other options left without a snapshot."""


class RunDirError(RuntimeError):
    """A run or job folder that cannot be used as asked (already holds a run, holds no snapshot,
    is not a folder, or another process works in it)."""


# ---------------------------------------------------------------------------- snapshot names
def snapshot_name(position: int, *, pinned: bool = False) -> str:
    """File name of a snapshot: ``snapshot-000002500000.h5`` (``.pinned.h5`` if never pruned)."""
    return f"snapshot-{position:012d}{'.pinned' if pinned else ''}.h5"


def position_in_name(path: str | os.PathLike) -> int | None:
    """The position a snapshot's file name states, or None for another name."""
    m = _NAME_RE.match(Path(path).name)
    return int(m.group(1)) if m else None


def list_snapshots(folder: str | os.PathLike) -> list[tuple[int, bool, Path]]:
    """Snapshot files of a folder as ``(position, pinned, path)``, by position (pinned last on ties);
    temporary files left by a killed writer are ignored."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    out = []
    for p in folder.iterdir():
        m = _NAME_RE.match(p.name)
        if m:
            out.append((int(m.group(1)), m.group(2) is not None, p))
    out.sort(key=lambda t: (t[0], t[1]))
    return out


def latest(folder: str | os.PathLike) -> Path:
    """The snapshot with the highest position in ``folder`` (a snapshots folder).

    Raises
    ------
    RunDirError
        If the folder holds no snapshot.
    """
    snaps = list_snapshots(folder)
    if not snaps:
        raise RunDirError(f"{folder}: no snapshot files (expected snapshot-<position>.h5)")
    return snaps[-1][2]


def _write_json(path: Path, data: Any) -> None:
    with atomic_file(path) as tmp:
        Path(tmp).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def _holder(fd: int) -> str:
    """What the lock file says about the process holding it (written by that process)."""
    try:
        text = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return f" ({text})" if text else ""


def _take(fd: int, path: Path, what: str) -> None:
    """Take the exclusive ``flock`` on ``fd`` (the open lock file ``path``) or raise RunDirError."""
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise RunDirError(f"{path.parent}: {what} is in use by another process{_holder(fd)}, "
                          f"which holds {path.name}; wait for it to finish or stop it") from None


def _check_free(path: Path, what: str) -> None:
    """Raise RunDirError if another process holds the ``flock`` on ``path``; create nothing."""
    try:
        fd = os.open(path, os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return
    try:
        _take(fd, path, what)
    finally:
        os.close(fd)  # closing releases the lock just taken


@contextlib.contextmanager
def _flock(path: Path, what: str) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created) for the block, or fail at once.

    The kernel releases a ``flock`` when its holder exits, however it exits (``kill -9``
    included), so a lock is never left stuck. The holder writes its pid, host and start time into
    the file, for the error message of the process that finds it locked.
    """
    import socket

    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
    try:
        _take(fd, path, what)
        with contextlib.suppress(OSError):  # the lock holds even if this note cannot be written
            note = (f"pid {os.getpid()} on {socket.gethostname()} since "
                    f"{_dt.datetime.now().isoformat(timespec='seconds')}")
            os.ftruncate(fd, 0)
            os.pwrite(fd, note.encode() + b"\n", 0)
        yield
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------- a run folder
class RunFolder:
    """The files of one training run (see the module docstring for the layout).

    Parameters
    ----------
    path : path-like
        The folder (need not exist yet).

    Raises
    ------
    RunDirError
        If ``path`` exists and is not a folder.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise RunDirError(f"{self.path}: exists and is not a folder; choose another run "
                              f"folder (--name / --out)")

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    @property
    def snapshots_dir(self) -> Path:
        return self.path / SNAPSHOT_DIR

    @property
    def plot_path(self) -> Path:
        return self.path / PLOT_FILE

    def snapshot_path(self, position: int, *, pinned: bool) -> Path:
        return self.snapshots_dir / snapshot_name(position, pinned=pinned)

    def snapshots(self) -> list[tuple[int, bool, Path]]:
        """``(position, pinned, path)`` of every snapshot, oldest first."""
        return list_snapshots(self.snapshots_dir)

    def has_snapshot(self) -> bool:
        """Whether the folder holds a snapshot to resume from (a folder without one is no run)."""
        return bool(self.snapshots())

    def is_complete(self, config: RunConfig) -> bool:
        """Whether the folder holds a finished run of ``config``: its final pinned snapshot exists
        and ``config.json`` agrees with ``config`` except for execution-only fields
        (``config.BRANCH_MUTABLE``)."""
        if not self.snapshot_path(config.total_updates, pinned=True).is_file():
            return False
        stored = self._stored_config()
        return stored is not None and not _changes(stored, config)

    def _stored_config(self) -> dict | None:
        try:
            stored = json.loads((self.path / CONFIG_FILE).read_text())
        except (OSError, ValueError):
            return None
        return stored if isinstance(stored, dict) else None

    def check_fresh(self) -> None:
        """Raise :class:`RunDirError` if the folder already holds a run, an experiment's plan or a
        finite-data job (whose files a new run would mix with its own)."""
        if (self.path / PLAN_FILE).is_file() or (self.path / EXPERIMENT_LOCK).exists():
            raise RunDirError(f"{self.path}: holds an experiment (its {PLAN_FILE}); a run needs a "
                              "folder of its own: choose another --out / --name")
        if (self.path / "finite.json").is_file():
            raise RunDirError(f"{self.path}: holds a finite-data job of an experiment (its "
                              "finite.json; `onlinedeep experiment run` continues it); choose "
                              "another --out / --name")
        held = self.snapshots()
        if held:
            raise RunDirError(
                f"{self.path}: already holds a run (snapshots up to position {held[-1][0]}); "
                f"resume it (onlinedeep train --resume {self.path}) or choose another folder"
            )

    def earlier_options(self, config: RunConfig) -> list[str]:
        """How ``config`` differs from the ``config.json`` an earlier start left in the folder (a
        run stopped before its first snapshot, or whose snapshots were deleted), as
        ``"field: old -> new"``, execution-only fields (``config.BRANCH_MUTABLE``) aside; empty when
        there is no readable ``config.json`` or it agrees."""
        return _changes(self._stored_config() or {}, config)

    # ------------------------------------------------------------------ writing
    def write_run_files(self, config: RunConfig, schedule: dict, provenance: dict) -> None:
        """Write ``config.json``, ``schedule.json`` and ``provenance.json``; remove temporary files
        a writer killed mid-write left in ``snapshots/`` (the snapshot it was replacing is intact)."""
        make_folder(self.path, "the run folder")
        _write_json(self.path / CONFIG_FILE, config.to_dict())
        _write_json(self.path / SCHEDULE_FILE, schedule)
        _write_json(self.path / PROVENANCE_FILE, provenance)
        if self.snapshots_dir.is_dir():
            for stale in self.snapshots_dir.glob(f"*{TMP_MARKER}*"):
                with contextlib.suppress(OSError):
                    stale.unlink()

    def log(self, text: str) -> None:
        """Append a time-stamped line to ``log.txt``."""
        with open(self.path / LOG_FILE, "a") as f:
            f.write(f"{_dt.datetime.now().isoformat(timespec='seconds')} {text}\n")

    def logged_snapshots(self) -> list[str] | None:
        """Names of the snapshot files ``log.txt`` records as written, oldest first; ``None`` when
        there is no log or it is empty. What ``snapshots/`` held at some point: tells a run
        stopped before its first snapshot from one whose snapshots were deleted."""
        try:
            lines = (self.path / LOG_FILE).read_text(errors="replace").splitlines()
        except OSError:
            return None
        if not lines:
            return None
        records = [line.split(" ", 2)[1:] for line in lines]  # "<time> snapshot <name>"
        return [r[1].strip() for r in records if len(r) == 2 and r[0] == "snapshot"]

    def later_files(self) -> list[str]:
        """Names of the files in the folder beyond those a run writes before its first update
        (``config.json``, ``schedule.json``, ``provenance.json``, ``log.txt``, ``run.lock``,
        ``snapshots/``), sorted: e.g. ``online_error.png``, ``evaluation-test.json``."""
        start = {CONFIG_FILE, SCHEDULE_FILE, PROVENANCE_FILE, LOG_FILE, RUN_LOCK, SNAPSHOT_DIR}
        try:
            return sorted(p.name for p in self.path.iterdir() if p.name not in start)
        except OSError:
            return []

    def save_snapshot(self, position: int, write: Callable[[Path], Path], *, pinned: bool,
                      keep: int) -> Path:
        """Write the snapshot at ``position`` through ``write(path)``, then prune.

        A pinned snapshot already at ``position`` is rewritten in place (e.g. with Figure 12 blocks
        added); a pinned one replaces a periodic one at the same position. Of the periodic
        snapshots only the newest ``keep`` are kept (0: all).
        """
        existing = {(p, pin): path for p, pin, path in self.snapshots()}
        if (position, True) in existing:
            path = existing[(position, True)]
            write(path)
        else:
            path = write(self.snapshot_path(position, pinned=pinned))
            if pinned and (position, False) in existing:
                existing[(position, False)].unlink(missing_ok=True)
        if keep > 0:
            periodic = [old for _, pin, old in self.snapshots() if not pin]
            for old in periodic[:-keep]:
                old.unlink(missing_ok=True)
        self.log(f"snapshot {path.name}")
        return path

    @contextlib.contextmanager
    def session(self, start: Callable[[], None] | None = None) -> Iterator["RunFolder"]:
        """Hold the folder's lock for the block; with ``start``, the block's run is new.

        ``start`` writes the run's first files (up to its first snapshot). A folder without a
        snapshot is not a run, so if ``start`` fails, the files it wrote are removed again, and the
        folder too if this call created it.

        Raises
        ------
        RunDirError
            If another process holds the folder's lock.
        """
        created = [f for f in [self.path, *self.path.parents] if not f.exists()]
        before = set(self.path.iterdir()) if self.path.is_dir() else set()
        make_folder(self.path, "the run folder")
        # Only the holder of the lock may clean up: a process that finds the folder locked leaves
        # the other's files alone. A new run checks the folder is fresh under the lock, so of two
        # runs started at once on one folder the second gets a one-line error.
        with _flock(self.path / RUN_LOCK, "the run folder"):
            try:
                if start is not None:
                    self.check_fresh()
                    start()
                yield self
            except BaseException:
                if start is not None and not self.has_snapshot():
                    if self.path in created:
                        shutil.rmtree(self.path, ignore_errors=True)
                    elif self.path.is_dir():
                        for path in set(self.path.iterdir()) - before:
                            with contextlib.suppress(OSError):
                                shutil.rmtree(path) if path.is_dir() else path.unlink()
                raise


@contextlib.contextmanager
def reserved_folder(parent: str | os.PathLike, name: str) -> Iterator[Path]:
    """Create a new, empty folder ``parent/name`` (``name-2``, ``name-3``, ... if taken) and yield
    its path; if the block raises and the folder is still empty, remove it again, and the parents
    this call created.

    ``mkdir`` either creates the folder or fails, so two runs that chose the same default name at
    the same moment (a sweep started in a loop) get two folders instead of one lock error.

    Raises
    ------
    OSError
        If ``parent`` or the folder cannot be created (``filename`` says which).
    """
    parent = Path(parent)
    made = [f for f in [parent, *parent.parents] if not f.exists()]
    path = None
    try:
        k = 1
        while path is None:
            if k > 10_000:
                raise RunDirError(f"{parent}: {name} and its 10,000 numbered variants are taken; "
                                  "choose a --name")
            candidate = parent / (name if k == 1 else f"{name}-{k}")
            make_folder(parent, "the folder of the run folders")
            try:
                candidate.mkdir()
                path = candidate
            except FileExistsError:
                k += 1
            except FileNotFoundError:   # a parent another failed start just removed: again
                continue
            except OSError as exc:
                exc.filename = str(candidate)
                raise
        yield path
    except BaseException:
        for folder in ([path] if path is not None else []) + made:
            with contextlib.suppress(OSError):
                folder.rmdir()          # only if still empty
        raise


# ---------------------------------------------------------------------------- a job folder
class JobFolder:
    """The files of an experiment made of jobs (see the module docstring for the layout).

    Parameters
    ----------
    path : path-like
        The experiment folder (need not exist yet), on a filesystem every worker sees.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"JobFolder({str(self.path)!r})"

    @property
    def plan_path(self) -> Path:
        return self.path / PLAN_FILE

    @property
    def last_run_path(self) -> Path:
        return self.path / LAST_RUN_FILE

    def run_folder(self, key: str) -> RunFolder:
        """The run folder of job ``key``."""
        return RunFolder(self.path / key)

    def output(self, key: str) -> Path:
        """Job ``key``'s output file, written last (it exists iff the job has finished)."""
        return self.path / f"{key}.h5"

    def file(self, name: str) -> Path:
        """A report file of the experiment (a table, a figure) at the top of the folder."""
        return self.path / name

    def write_json(self, path: Path, data: Any) -> None:
        """Write ``data`` as JSON to ``path`` (inside this folder), atomically."""
        _write_json(path, data)

    @contextlib.contextmanager
    def session(self) -> Iterator["JobFolder"]:
        """Hold the experiment's lock for the block (one ``run`` per folder at a time).

        Raises
        ------
        RunDirError
            If another process runs the experiment in this folder.
        """
        make_folder(self.path, "the experiment folder")
        with _flock(self.path / EXPERIMENT_LOCK, "the experiment folder"):
            yield self

    def check_free(self) -> None:
        """Fail now, as :meth:`session` would, if another process runs the experiment here.

        Creates nothing; lets a command refuse before it prints what it is about to do (the
        lock is taken for good by :meth:`session`).

        Raises
        ------
        RunDirError
            If another process holds the experiment's lock.
        """
        _check_free(self.path / EXPERIMENT_LOCK, "the experiment folder")
