"""Atomic file writes: the one helper every output of the project goes through.

Generated streams (``onlinedeep generate``), the MNIST cache, previews, run folders (JSON files,
snapshots, plots) and ordering-variance outputs are all written by :func:`atomic_file`: a temporary
file in the destination folder, flushed to disk, then renamed over the destination. A kill at any
moment leaves the old file or the new one, never a mix.

It lives in ``infinite_mnist`` (usable alone) because ``onlinedeep`` depends on ``infinite_mnist``,
never the other way round; ``onlinedeep.snapshot.atomic_file`` is this same function.
"""
from __future__ import annotations

import contextlib
import errno
import os
import secrets
from pathlib import Path
from typing import Iterator

__all__ = ["atomic_file", "make_folder", "TMP_MARKER"]

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
    # the reason last: "/proc: No such file or directory, ..." read as if /proc were missing
    return OSError(exc.errno, f"cannot create {what} {path} in it ({exc.strerror})",
                   str(path.parent))


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
        ``NotADirectoryError``), or ``path`` is a folder (``IsADirectoryError``); nothing is left
        behind.
    ValueError
        If ``path`` is empty (``Path("")`` would be the current folder).
    """
    if os.fspath(path) == "":
        raise ValueError("expected a file path, found an empty one")
    path = Path(path)
    if path.is_dir():  # else the final rename fails, naming the temporary file
        raise IsADirectoryError(errno.EISDIR, "is a folder; cannot write a file in its place",
                                str(path))
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
