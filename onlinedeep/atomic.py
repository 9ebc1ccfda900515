"""Atomic file writes of the engine: every file it writes (run folders, snapshots, plots,
experiment outputs) goes through :func:`atomic_file` (a temporary file in the destination folder,
flushed to disk, then renamed over the destination: a kill at any moment leaves the old file or the
new one, never a mix) or :func:`write_bytes` (the same for a file built in memory, after a check of
the free space, so a full disk is one clear error and never a half-written file).

:func:`atomic_file`, :func:`make_folder` and :data:`TMP_MARKER` are those of
:mod:`infinite_mnist.atomic` (the package below the engine, usable alone), re-exported here so that
the engine's modules import file writing from one place of their own.
"""
from __future__ import annotations

import errno
import os
from pathlib import Path

from infinite_mnist.atomic import TMP_MARKER, atomic_file, make_folder

__all__ = ["atomic_file", "write_bytes", "make_folder", "free_bytes", "in_memory",
           "check_free_space", "DiskFullError", "TMP_MARKER"]

#: Free space kept on top of a file's size when checking before a write (file-system metadata).
SPACE_MARGIN = 64 * 1024


class DiskFullError(OSError):
    """A file could not be written for lack of space (``errno`` ENOSPC or EDQUOT); ``filename`` is
    the destination, which is untouched (the previous version, if any, is intact)."""


def free_bytes(folder: str | os.PathLike) -> int | None:
    """Bytes available to this user in the file system of ``folder`` (None if unknown, e.g. a
    virtual file system such as ``/proc``, which reports no blocks at all)."""
    try:
        st = os.statvfs(folder)
    except (OSError, AttributeError):
        return None
    if st.f_blocks == 0:  # not storage: writing there fails with its own, clearer error
        return None
    free = st.f_bavail * st.f_frsize
    if in_memory(folder):  # tmpfs may be sized above the memory the machine has left
        import psutil

        free = min(free, psutil.virtual_memory().available)
    return free


def in_memory(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` is on a memory-backed file system (tmpfs, ramfs: ``/dev/shm``, often
    ``/tmp``), whose files take the machine's memory."""
    import psutil

    real = os.path.realpath(folder)
    try:
        mounts = psutil.disk_partitions(all=True)
    except OSError:
        return False
    inside = [m for m in mounts
              if real == m.mountpoint or real.startswith(m.mountpoint.rstrip("/") + "/")]
    if not inside:
        return False
    return max(inside, key=lambda m: len(m.mountpoint)).fstype in ("tmpfs", "ramfs")


def _megabytes(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n:,} bytes"


def check_free_space(folder: str | os.PathLike, needed: int, what: str) -> None:
    """Refuse to start work that will write about ``needed`` bytes under ``folder`` (or its
    nearest existing parent) when the file system has less free.

    Raises
    ------
    DiskFullError
        Naming the folder, what needs the space, and both amounts.
    """
    folder = Path(folder)
    existing = next((p for p in [folder, *folder.parents] if p.exists()), Path("."))
    free = free_bytes(existing)
    if free is not None and free < needed + SPACE_MARGIN:
        memory = " (a memory-backed file system: the memory available)" if in_memory(
            existing) else ""
        raise DiskFullError(errno.ENOSPC, f"not enough free space: {what} needs about "
                            f"{_megabytes(needed)}, {_megabytes(free)} free{memory}; nothing was "
                            f"started; free some space or choose another folder", str(existing))


def write_bytes(path: str | os.PathLike, data: bytes, *, what: str = "the file") -> Path:
    """Write ``data`` to ``path`` atomically (:func:`atomic_file`), after checking the free space.

    Formats whose libraries fail badly on a full disk (HDF5: a crash on the error path) build the
    file in memory and hand its bytes here, so a full disk is a plain ``write`` error.

    Parameters
    ----------
    path : path-like
    data : bytes
    what : str
        What the file is, for the error message (e.g. ``"the snapshot"``).

    Returns
    -------
    Path

    Raises
    ------
    DiskFullError
        If the file system lacks the space, before anything is written, or on ENOSPC/EDQUOT during
        the write; the temporary file is removed and ``path`` is untouched.
    OSError
        On any other failure to create or write the file (nothing is left behind).
    """
    path = Path(path)
    make_folder(path.parent)
    free = free_bytes(path.parent)
    if free is not None and free < len(data) + SPACE_MARGIN:
        raise DiskFullError(
            errno.ENOSPC, f"no space left on device: {what} needs {_megabytes(len(data))}, "
            f"{_megabytes(free)} free; nothing was written (the previous version, if any, is "
            f"intact); free some space and try again", str(path))
    try:
        with atomic_file(path) as tmp, open(tmp, "wb") as f:
            f.write(data)
            f.flush()
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
            raise DiskFullError(
                exc.errno, f"no space left on device while writing {what} "
                f"({_megabytes(len(data))}); the partial file was removed and the previous "
                f"version, if any, is intact; free some space and try again",
                str(path)) from None
        raise
    return path
