"""Atomic file writes: every file the engine writes (run folders, snapshots, plots, experiment
outputs) goes through :func:`atomic_file`: a temporary file in the destination folder, flushed to
disk, then renamed over the destination. A kill at any moment leaves the old file or the new one,
never a mix.

``infinite_mnist`` keeps its own copy (``infinite_mnist.atomic``) so that the generator stays usable
without the engine; the engine imports nothing of the generator but its stream and schedule.
"""
from __future__ import annotations

import contextlib
import errno
import os
import secrets
from pathlib import Path
from typing import Iterator

__all__ = ["atomic_file", "write_bytes", "make_folder", "free_bytes", "check_free_space",
           "DiskFullError", "TMP_MARKER"]

#: Free space kept on top of a file's size when checking before a write (file-system metadata).
SPACE_MARGIN = 64 * 1024

#: Temporary names are ``<name>.tmp<random hex>`` (git-ignored; stale ones are recognised by it).
TMP_MARKER = ".tmp"


def _create_temporary(path: Path) -> Path:
    # Not tempfile.mkstemp: it creates mode 0600 whatever the umask, so results on a shared
    # filesystem were unreadable by the group. os.open with 0o666 lets the kernel apply the umask
    # (and any default ACL of the folder), exactly as open(path, "w") would.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = path.with_name(f"{path.name}{TMP_MARKER}{secrets.token_hex(4)}")
        try:
            fd = os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(f"{path.parent}: could not create a temporary file for {path.name}")


def _where(exc: OSError, path: Path, what: str) -> OSError:
    """The error of creating ``path``, naming the folder at fault (not a temporary file)."""
    if isinstance(exc, (FileExistsError, NotADirectoryError)):  # a file where a folder should be
        blocker = next((p for p in [*reversed(path.parents), path] if p.exists() and not p.is_dir()),
                       path.parent)
        return NotADirectoryError(errno.ENOTDIR, f"not a folder, cannot create {what} {path}",
                                  str(blocker))
    return OSError(exc.errno, f"{exc.strerror}, cannot create {what} {path}", str(path.parent))


def make_folder(path: str | os.PathLike, what: str = "the folder") -> Path:
    """Create the folder ``path`` and its parents if missing.

    Raises
    ------
    OSError
        Whose ``filename`` is the folder at fault (a file in the way, a read-only parent) and whose
        ``strerror`` says what could not be created (``what``, e.g. ``"the run folder"``).
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _where(exc, path, what) from None
    return path


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[str]:
    """Write ``path`` atomically: yield a temporary path in the same folder, then publish it.

    The caller writes the temporary file (any writer that truncates an existing file: ``open(...,
    "w")``, ``h5py.File(..., "w")``, ``gzip.open``, ``savefig``). On normal exit it is fsync'ed and
    renamed over ``path`` (atomic on POSIX), and the folder is fsync'ed; on an exception it is
    removed and ``path`` is untouched. The file gets the permissions of any newly created file,
    ``0o666 & ~umask`` (never tighter, e.g. not ``tempfile``'s 0600).

    Parameters
    ----------
    path : path-like
        The destination; missing parent folders are created.

    Yields
    ------
    str
        The temporary path to write (``<name>.tmp<random hex>``, next to ``path``).

    Raises
    ------
    OSError
        If the folder cannot be created or written (e.g. ``PermissionError``,
        ``NotADirectoryError``); nothing is left behind.
    """
    path = Path(path)
    make_folder(path.parent)
    try:
        tmp = _create_temporary(path)
    except OSError as exc:
        raise _where(exc, path, "the file") from None
    try:
        yield str(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


class DiskFullError(OSError):
    """A file could not be written for lack of space (``errno`` ENOSPC or EDQUOT); ``filename`` is
    the destination, which is untouched (the previous version, if any, is intact)."""


def free_bytes(folder: str | os.PathLike) -> int | None:
    """Bytes available to this user in the file system of ``folder`` (None if unknown)."""
    try:
        st = os.statvfs(folder)
    except (OSError, AttributeError):
        return None
    return st.f_bavail * st.f_frsize


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
        raise DiskFullError(errno.ENOSPC, f"not enough free space: {what} needs about "
                            f"{_megabytes(needed)}, {_megabytes(free)} free; nothing was "
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
