"""Continue a run from a snapshot: resume it in its own folder, or branch it into a new one.

A resumed or branched run feeds the kernels the chunks an uninterrupted run would (every chunk and
draw is a function of the stream position), so it ends with bit-identical weights. A branch (paper
section 8.2, ordering variance) may train on another schedule after the snapshot's position, but
must present the same examples before it.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from onlinedeep import snapshot as snapshots
from onlinedeep.config import BRANCH_MUTABLE, RESUME_MUTABLE, ConfigError, RunConfig
from onlinedeep.run_folder import RunDirError, RunFolder, position_in_name
from onlinedeep.training.data import default_schedule
from onlinedeep.training.loop import Trainer

__all__ = ["resume", "branch"]


def branch(path, *, schedule=None, run_dir=None, stream=None, **overrides: Any) -> Trainer:
    """Continue from a snapshot, possibly into another run folder with another schedule.

    Parameters
    ----------
    path : path-like
        Snapshot file.
    schedule : infinite_mnist.Schedule, optional
        Default: the snapshot's (extended to the configuration's length if it was the default
        contiguous one and ``sup_updates`` grew). Must present the snapshot's examples at every
        position before the snapshot's.
    run_dir : path-like, optional
        Where the continued run writes (a fresh folder, or None for nothing).
    stream : optional
        As in :class:`~onlinedeep.training.loop.Trainer`.
    **overrides
        New values of fields in ``config.BRANCH_MUTABLE`` (execution, reporting, ``sup_updates``,
        ``name``, ``out``).

    Raises
    ------
    SnapshotError
        If the snapshot is unreadable, damaged, holds NaN/Inf, or an override is not allowed.
    ConfigError
        If the schedule's prefix differs from the snapshot's or is too short.
    """
    snap = snapshots.load(path)
    return _continue(snap, schedule=schedule, run_dir=run_dir, stream=stream, overrides=overrides,
                     resuming=False)


def resume(run_dir, *, stream=None, **overrides: Any) -> Trainer:
    """Continue the run in ``run_dir`` from its latest readable snapshot (same folder and schedule).

    Parameters
    ----------
    run_dir : path-like
    stream : optional
    **overrides
        New values of fields in ``config.RESUME_MUTABLE`` (as :func:`branch`, but not ``name`` or
        ``out``: the run continues in ``run_dir``).

    Raises
    ------
    RunDirError
        If the folder holds no snapshot.
    SnapshotError
        If no snapshot of the folder can be read (the message lists each file tried and why it
        failed), or an override is not allowed.

    Warns
    -----
    snapshot.SnapshotFallbackWarning
        When the newest snapshot(s) cannot be read and the run resumes from an older one; the same
        line goes to ``log.txt``. The damaged files stay (the resumed run overwrites them when it
        reaches their positions). Also when ``log.txt`` records newer snapshots than the folder
        holds (deleted or moved): the warning names them.
    """
    folder = RunFolder(run_dir)
    held = folder.snapshots()
    if not held:
        raise RunDirError(_nothing_saved(folder))
    gone = _newer_logged(folder, held[-1][0])
    failed: list[str] = []
    snap = None
    for _, _, path in reversed(held):  # newest first
        try:
            snap = snapshots.load(path)
            break
        except snapshots.SnapshotError as exc:
            failed.append(str(exc))
    if snap is None:
        raise snapshots.SnapshotError(
            f"{folder.path}: none of its {len(held)} snapshot(s) can be read; tried, newest first: "
            + " | ".join(failed)
        )
    trainer = _continue(snap, schedule=None, run_dir=folder.path, stream=stream,
                        overrides=overrides, resuming=True)
    if failed:
        message = (f"resuming from the older snapshot {Path(snap.path).name} (position "
                   f"{snap.position}): {len(failed)} newer snapshot(s) cannot be read: "
                   + " | ".join(failed))
        folder.log(f"warning: {message}")
        warnings.warn(message, snapshots.SnapshotFallbackWarning, stacklevel=2)
    if gone:
        message = (f"resuming from {Path(snap.path).name} (position {snap.position}): log.txt "
                   f"records {len(gone)} newer snapshot(s) that {folder.snapshots_dir} no longer "
                   f"holds (deleted or moved?): {', '.join(gone)}")
        folder.log(f"warning: {message}")
        warnings.warn(message, snapshots.SnapshotFallbackWarning, stacklevel=2)
    return trainer


def _newer_logged(folder: RunFolder, newest: int) -> list[str]:
    """Snapshots ``log.txt`` records as written at positions after ``newest``, the newest held:
    gone since (pruning only ever removes older periodic ones)."""
    names = {name for name in folder.logged_snapshots() or []
             if (position_in_name(name) or -1) > newest}
    return sorted(names, key=lambda name: (position_in_name(name), name))


def _nothing_saved(folder: RunFolder) -> str:
    """Why a folder without a snapshot cannot be resumed, and how to start over."""
    path = folder.path
    if not path.exists():
        return f"{path}: no snapshot to resume from: no such run folder"
    if not path.is_dir() or not (path / "config.json").is_file():
        return (f"{path}: no snapshot to resume from (expected "
                f"{folder.snapshots_dir}/snapshot-<position>.h5): not a run folder (no "
                f"config.json)")
    again = (f"start it over with the same options and --out {path.parent} --name {path.name} "
             f"(the folder is reused)")
    if folder.snapshots_dir.exists() and not folder.snapshots_dir.is_dir():
        return (f"{path}: no snapshot to resume from: {folder.snapshots_dir} is a file, not the "
                f"folder of the run's snapshots")
    written = folder.logged_snapshots()
    later = folder.later_files()
    if written is None and later:  # no log to ask, but the run got past its start
        return (f"{path}: no snapshot to resume from: {folder.snapshots_dir} holds none and "
                f"log.txt is missing or empty, but the folder holds files a run writes after "
                f"its start ({', '.join(later[:3])}): were its snapshots deleted or moved? Put "
                f"them back to resume, or {again}")
    if written:  # the log saw snapshots written: they were deleted or moved since
        return (f"{path}: no snapshot to resume from: {folder.snapshots_dir} holds none, but "
                f"log.txt records {len(written)} written (the last {written[-1]}): deleted or "
                f"moved? Put them back to resume, or {again}")
    return (f"{path}: no snapshot to resume from: the run was stopped before its first snapshot, "
            f"so nothing was saved (its options are in config.json); {again}")


def _continue(snap: snapshots.Snapshot, *, schedule, run_dir, stream, overrides,
              resuming: bool) -> Trainer:
    from infinite_mnist import Schedule

    allowed = RESUME_MUTABLE if resuming else BRANCH_MUTABLE
    bad = sorted(set(overrides) - allowed)
    if bad:
        where = (f"when resuming (the run continues in its own folder {run_dir})" if resuming
                 else "when continuing a run")
        raise snapshots.SnapshotError(
            f"{snap.path}: cannot change {bad} {where}; only {sorted(allowed)} may change"
        )
    given = {k: v for k, v in overrides.items() if v is not None}
    config = RunConfig.from_dict({**snap.config.to_dict(), **given},
                                 where=f"{snap.path}: configuration with overrides {given}")
    if config.total_updates < snap.position:
        raise ConfigError(
            f"sup_updates: the run would end at {config.total_updates}, before the snapshot's "
            f"position {snap.position} ({snap.path})"
        )
    try:
        snap_schedule = Schedule.from_dict(snap.schedule)
    except ValueError as exc:
        raise snapshots.SnapshotError(f"{snap.path}: attribute 'schedule': {exc}") from None
    if schedule is None:
        schedule = snap_schedule
        if schedule.total < config.total_updates:
            extended = default_schedule(config)
            if extended.head(snap_schedule.total) != snap_schedule.head(snap_schedule.total):
                raise ConfigError(
                    f"sup_updates: the snapshot's schedule ({snap.path}) covers "
                    f"{snap_schedule.total} positions and is not the default contiguous one, so "
                    f"it cannot be extended to {config.total_updates}; pass a longer schedule"
                )
            schedule = extended
    if schedule.head(snap.position) != snap_schedule.head(snap.position):
        raise ConfigError(
            f"schedule: differs from the snapshot's ({snap.path}) before its position "
            f"{snap.position}; a branch must share the trained prefix"
        )
    return Trainer(config, schedule=schedule, stream=stream, run_dir=run_dir, snapshot=snap,
                   _resuming=resuming)
