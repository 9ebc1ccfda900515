"""Reading IDX files, the format of LeCun, Cortes & Burges' MNIST distribution: a big-endian header
(magic number ``0x0803`` for images, ``0x0801`` for labels, then one uint32 per dimension) followed
by the uint8 data, optionally gzip-compressed. Every malformed file is a :class:`MnistFormatError`
naming it and the problem.
"""
from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

__all__ = ["MnistFormatError", "read_idx_images", "read_idx_labels", "IMAGE_MAGIC", "LABEL_MAGIC",
           "N_CLASSES"]

IMAGE_MAGIC = 0x00000803
LABEL_MAGIC = 0x00000801
N_CLASSES = 10


class MnistFormatError(ValueError):
    """An IDX file that is not what it should be (the message names the file and the problem)."""


def _read_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":  # gzip magic: decompress whatever the file is called
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise MnistFormatError(f"{path}: corrupt or truncated gzip stream ({exc})") from exc
    return raw


def _parse_idx(path: Path, data: bytes, magic: int, ndim: int) -> np.ndarray:
    if len(data) < 4:
        raise MnistFormatError(f"{path}: file too short for an IDX header ({len(data)} bytes)")
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise MnistFormatError(
            f"{path}: wrong magic number: expected 0x{magic:08x} "
            f"({'images' if magic == IMAGE_MAGIC else 'labels'}), found 0x{found:08x}"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise MnistFormatError(f"{path}: truncated header: expected {header} bytes, found {len(data)}")
    dims = tuple(int.from_bytes(data[4 + 4 * k: 8 + 4 * k], "big") for k in range(ndim))
    expected = header + int(np.prod(dims, dtype=np.int64))
    if len(data) < expected:
        raise MnistFormatError(
            f"{path}: truncated: the header announces {dims} ({expected} bytes in all), "
            f"the file holds {len(data)} bytes"
        )
    if len(data) > expected:
        raise MnistFormatError(
            f"{path}: {len(data) - expected} unexpected trailing bytes after the {dims} data "
            f"announced by the header"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def read_idx_images(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX image file (gzip-compressed or raw).

    Parameters
    ----------
    path : path-like
        An ``idx3-ubyte`` file, e.g. ``train-images-idx3-ubyte.gz``.

    Returns
    -------
    (n, 28, 28) uint8 ndarray (read-only view of the file's bytes)

    Raises
    ------
    MnistFormatError
        Wrong magic number, dimensions other than 28 x 28, truncated or over-long file, corrupt gzip.
    """
    path = Path(path)
    images = _parse_idx(path, _read_bytes(path), IMAGE_MAGIC, 3)
    if images.shape[1:] != (28, 28):
        raise MnistFormatError(
            f"{path}: wrong image dimensions: expected 28 x 28, found "
            f"{images.shape[1]} x {images.shape[2]}"
        )
    return images


def read_idx_labels(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX label file (gzip-compressed or raw).

    Returns
    -------
    (n,) uint8 ndarray, values 0-9

    Raises
    ------
    MnistFormatError
        Wrong magic number, truncated or over-long file, a label outside 0-9 (the message gives its
        index and value).
    """
    path = Path(path)
    labels = _parse_idx(path, _read_bytes(path), LABEL_MAGIC, 1)
    bad = np.flatnonzero(labels >= N_CLASSES)
    if bad.size:
        raise MnistFormatError(
            f"{path}: label out of range at index {bad[0]}: expected 0-9, found {labels[bad[0]]} "
            f"({bad.size} such labels)"
        )
    return labels
