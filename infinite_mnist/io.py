"""Writing generated examples to HDF5 or IDX files, atomically and in chunks."""
from __future__ import annotations

import contextlib
import gzip
import json
import os
from pathlib import Path

import numpy as np

from infinite_mnist.atomic import atomic_file
from infinite_mnist.mnist import IMAGE_MAGIC, LABEL_MAGIC

__all__ = ["output_kind", "idx_label_path", "write_stream"]

_IMAGE_SUFFIXES = ("images-idx3-ubyte", "images-idx3-ubyte.gz")


def output_kind(path: str | os.PathLike) -> str:
    """``"hdf5"`` for ``*.h5``/``*.hdf5``, ``"idx"`` for ``*images-idx3-ubyte[.gz]``.

    Raises
    ------
    ValueError
        For any other name (the message lists the accepted forms).
    """
    name = Path(path).name
    if name.endswith((".h5", ".hdf5")):
        return "hdf5"
    if name.endswith(_IMAGE_SUFFIXES):
        return "idx"
    raise ValueError(
        f"{path}: unknown output format: expected a name ending in .h5 or .hdf5 (HDF5), or in "
        "images-idx3-ubyte or images-idx3-ubyte.gz (IDX; the labels go to the matching "
        "labels-idx1-ubyte file)"
    )


def idx_label_path(images_path: str | os.PathLike) -> Path:
    """The label file that goes with an IDX image file (``images-idx3`` -> ``labels-idx1``)."""
    p = Path(images_path)
    head, sep, tail = p.name.rpartition("images-idx3-ubyte")
    if not sep:
        raise ValueError(f"{p}: not an IDX image file name (expected ...images-idx3-ubyte[.gz])")
    return p.with_name(head + "labels-idx1-ubyte" + tail)


def write_stream(stream, indices_chunks, total: int, path: str | os.PathLike, *, progress=None) -> list[Path]:
    """Generate examples chunk by chunk and write them atomically.

    Parameters
    ----------
    stream : InfiniteMNIST
    indices_chunks : iterable of (m,) int64 ndarray
        Stream indices, in output order; ``total`` of them in all.
    total : int
        Number of examples.
    path : path-like
        ``*.h5``/``*.hdf5``: one HDF5 file with datasets ``images (n, 28, 28) uint8``,
        ``labels (n,) uint8``, ``indices (n,) int64`` and the attribute ``provenance`` (JSON).
        ``*images-idx3-ubyte[.gz]``: IDX image file and the matching ``labels-idx1-ubyte[.gz]``
        (gzip when the name ends in ``.gz``).
    progress : callable(int), optional
        Called with the number of examples written after each chunk.

    Returns
    -------
    list of Path
        The files written. Until the end, only temporary files in the same folder exist: an
        interruption never leaves a half-written output.

    Raises
    ------
    ValueError
        Unknown output format, or chunks that do not add up to ``total``.
    """
    path = Path(path)
    kind = output_kind(path)
    if kind == "hdf5":
        return [_write_hdf5(stream, indices_chunks, total, path, progress)]
    return _write_idx(stream, indices_chunks, total, path, progress)


def _write_hdf5(stream, chunks, total, path, progress):
    import h5py

    with atomic_file(path) as tmp, h5py.File(tmp, "w") as f:
        chunk_rows = max(1, min(total, 4096))
        images = f.create_dataset("images", (total, 28, 28), np.uint8, chunks=(chunk_rows, 28, 28)
                                  if total else None)
        labels = f.create_dataset("labels", (total,), np.uint8)
        indices = f.create_dataset("indices", (total,), np.int64)
        f.attrs["provenance"] = json.dumps(stream.provenance(), sort_keys=True)
        pos = 0
        for idx in chunks:
            m = idx.shape[0]
            if pos + m > total:
                raise ValueError(f"more than {total} indices given")
            x, y = stream.examples(idx)
            images[pos:pos + m] = x
            labels[pos:pos + m] = y
            indices[pos:pos + m] = idx
            pos += m
            if progress:
                progress(m)
        if pos != total:
            raise ValueError(f"expected {total} indices, got {pos}")
        f.flush()
    return path


def _write_idx(stream, chunks, total, path, progress):
    if total >= 2**32:
        raise ValueError(f"{path}: IDX counts are 32-bit: at most {2**32 - 1} examples, asked {total}")
    label_path = idx_label_path(path)
    opener = gzip.open if path.name.endswith(".gz") else open
    with contextlib.ExitStack() as files:
        # both temporaries are renamed only once both are complete
        tmp_images = files.enter_context(atomic_file(path))
        tmp_labels = files.enter_context(atomic_file(label_path))
        with opener(tmp_images, "wb") as fi, opener(tmp_labels, "wb") as fl:
            fi.write(IMAGE_MAGIC.to_bytes(4, "big") + b"".join(
                d.to_bytes(4, "big") for d in (total, 28, 28)))
            fl.write(LABEL_MAGIC.to_bytes(4, "big") + total.to_bytes(4, "big"))
            pos = 0
            for idx in chunks:
                m = idx.shape[0]
                if pos + m > total:
                    raise ValueError(f"more than {total} indices given")
                x, y = stream.examples(idx)
                fi.write(x.tobytes())
                fl.write(y.tobytes())
                pos += m
                if progress:
                    progress(m)
            if pos != total:
                raise ValueError(f"expected {total} indices, got {pos}")
    return [path, label_path]
