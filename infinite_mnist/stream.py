"""InfiniteMNIST: a reproducible, quasi-infinite stream of deformed MNIST digits."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from infinite_mnist import kernels
from infinite_mnist.fields import DEFAULT_N_FIELDS, DEFAULT_SIGMA, field_bank
from infinite_mnist.mnist import MnistData, MnistFormatError, load_mnist

__all__ = ["InfiniteMNIST", "to_float", "MODES", "DEFAULT_ALPHA", "N_TEST", "N_TRAIN", "FIRST_DEFORMED"]

#: Stream layout with the full MNIST (Bottou & Loosli's infimnist).
N_TEST = 10_000
N_TRAIN = 60_000
FIRST_DEFORMED = N_TEST + N_TRAIN

MODES = ("first-order", "elastic", "infimnist")

#: Default displacement scale per mode (fields have sigma = 4 pixels; see the README for the
#: calibration of the first-order value).
DEFAULT_ALPHA = {"first-order": 34.0, "elastic": 34.0, "infimnist": 1.0}

_INFIMNIST_FIELDS = "fields_float_1522x28x28.bin"
_INFIMNIST_TANGENTS = "tangVec_float_60000x28x28.bin"
_INFIMNIST_N_FIELDS = 1522

_TO_FLOAT = (np.arange(256, dtype=np.float32) / np.float32(255.0)).astype(np.float32)


def to_float(images) -> np.ndarray:
    """Convert uint8 images to floats in [0, 1].

    Parameters
    ----------
    images : (n, 28, 28) or (n, 784) uint8 array_like

    Returns
    -------
    (n, 784) float32 ndarray
        ``float32(x) / float32(255)``, correctly rounded (a lookup table of those 256 values).

    Raises
    ------
    TypeError
        If ``images`` is not uint8.
    """
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise TypeError(f"images: expected uint8, found {images.dtype}")
    if images.ndim < 1:
        raise ValueError(f"images: expected an (n, 28, 28) or (n, 784) array, found shape {images.shape}")
    # not reshape(n, -1): with n = 0 the -1 is ambiguous and NumPy refuses it
    flat = images.reshape(images.shape[0], int(np.prod(images.shape[1:], dtype=np.int64)))
    # The float32 division itself, the operation _TO_FLOAT holds the 256 results of (IEEE
    # division is correctly rounded, so the same bits): ~7x faster than a table look-up, and the
    # training loop's producer converts every example.
    out = np.empty(flat.shape, dtype=np.float32)
    return np.divide(flat, np.float32(255.0), out=out, dtype=np.float32)


def _as_indices(indices) -> np.ndarray:
    arr = np.asarray(indices)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise ValueError(f"indices: expected a 1-d array, found shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"indices: expected integers, found {arr.dtype}")
    if arr.dtype == np.uint64 and arr.size and arr.max() > np.iinfo(np.int64).max:
        raise ValueError("indices: values beyond 2^63 - 1 are not stream indices")
    arr = np.ascontiguousarray(arr, dtype=np.int64)
    if arr.size and arr.min() < 0:
        k = int(np.argmin(arr))
        raise ValueError(f"indices: expected indices >= 0, found {arr[k]} at position {k}")
    return arr


class InfiniteMNIST:
    """The InfiniteMNIST stream: example ``i`` is a pure function of ``i`` (and the settings).

    Index layout (Bottou & Loosli's infimnist): 0-9,999 are the MNIST test digits; 10,000-69,999
    the training digits, unchanged; every ``i >= 70,000`` is a deformation of training digit
    ``(i - 10,000) mod 60,000`` and carries its label. (With other base-set sizes the same rule holds
    with ``n_test`` and ``n_train`` in place of 10,000 and 60,000.)

    Parameters
    ----------
    mnist : MnistData or path-like, optional
        Base digits, or the directory of the four MNIST IDX files (then read as ``mnist_dir``);
        default ``load_mnist(mnist_dir)``.
    mnist_dir : path-like, optional
        Passed to :func:`load_mnist` when ``mnist`` is not given.
    mode : {"first-order", "elastic"}
        ``"first-order"`` (default): ``x + alpha·(u_x·dx - u_y·dy)`` with the x and y derivatives
        (Sobel) of the base digit computed on the fly and two fields of the bank picked by the index
        (tangent-vector deformation of Loosli, Canu & Bottou 2007). ``"elastic"``: the full bilinear
        warp of Simard, Steinkraus & Platt (2003) with the same fields. The infimnist-compatible mode
        is built by :meth:`from_infimnist_dir`.
    alpha : float, optional
        Displacement scale in pixels per unit field (default :data:`DEFAULT_ALPHA` of the mode).
    translate : bool
        Also shift each deformation by at most one pixel in each direction (9 cases, by index).
    seed : int
        Seed of the field bank and of the per-index choice of fields and shift, in [0, 2**64 - 1].
        Any number of streams with any seeds may be used in one process, in any order.
    n_fields : int
        Size of the field bank (default 256: 784 KiB, stays in L2 cache).
    sigma : float
        Gaussian smoothing of the fields in pixels (default 4, Simard et al.).

    Raises
    ------
    TypeError
        ``mnist`` neither MnistData nor a path, or both ``mnist`` and ``mnist_dir`` given.
    ValueError
        Unknown ``mode``, non-finite ``alpha``, or a seed outside [0, 2**64 - 1] (checked before
        MNIST is read).
    MnistNotFoundError, MnistFormatError
        From :func:`load_mnist` when ``mnist`` is not given.

    Notes
    -----
    Generation runs in Numba kernels, parallel over examples, without the GIL; the number of
    threads is Numba's (``numba.set_num_threads``). No state is shared between examples, so the same
    index gives the same bytes whatever the batch split, thread count or process.
    """

    def __init__(
        self,
        mnist: MnistData | str | os.PathLike | None = None,
        *,
        mnist_dir: str | os.PathLike | None = None,
        mode: str = "first-order",
        alpha: float | None = None,
        translate: bool = True,
        seed: int = 0,
        n_fields: int = DEFAULT_N_FIELDS,
        sigma: float = DEFAULT_SIGMA,
    ):
        if isinstance(mnist, (str, os.PathLike)):
            if mnist_dir is not None:
                raise TypeError(
                    f"InfiniteMNIST: got a directory twice ({mnist!r} and mnist_dir={mnist_dir!r}); "
                    "pass one"
                )
            mnist, mnist_dir = None, mnist
        elif mnist is not None and not isinstance(mnist, MnistData):
            raise TypeError(
                f"mnist: expected MnistData (from load_mnist) or the path of the MNIST directory, "
                f"found {type(mnist).__name__}"
            )
        if mode not in ("first-order", "elastic"):
            raise ValueError(
                f"mode: expected 'first-order' or 'elastic' (the infimnist mode is built by "
                f"InfiniteMNIST.from_infimnist_dir), found {mode!r}"
            )
        key = kernels.index_key(seed)  # validates the seed before any file is read; numpy.uint64
        alpha = float(DEFAULT_ALPHA[mode] if alpha is None else alpha)
        if not np.isfinite(alpha):
            raise ValueError(f"alpha: expected a finite number, found {alpha}")
        if mnist is None:
            mnist = load_mnist(mnist_dir)
        self.mnist = mnist
        self.mode = mode
        self.alpha = alpha
        self.translate = bool(translate)
        self._key = key
        self.seed = int(seed)
        self.n_fields = int(n_fields)
        self.sigma = float(sigma)
        self._fields = field_bank(self.seed, self.n_fields, self.sigma)
        self._tangents = None
        self._init_arrays()

    def _init_arrays(self):
        m = self.mnist
        self._train = np.ascontiguousarray(m.train_images.reshape(-1, 784))
        self._test = np.ascontiguousarray(m.test_images.reshape(-1, 784))
        self._train_labels = np.ascontiguousarray(m.train_labels)
        self._test_labels = np.ascontiguousarray(m.test_labels)

    # -------------------------------------------------------------------------------------------
    @classmethod
    def from_infimnist_dir(cls, path: str | os.PathLike, alpha: float = 1.0, translate: bool = True):
        """The infimnist-compatible stream, reproducing Bottou's ``infimnist`` bytes exactly.

        Parameters
        ----------
        path : path-like
            infimnist's data directory: the four MNIST files (raw or ``.gz``),
            ``fields_float_1522x28x28.bin`` (1,522 x 784 float32, raw, no header) and
            ``tangVec_float_60000x28x28.bin`` (n_train x 2 x 784 float32, raw, no header; memory-mapped).
        alpha : float
            Deformation strength (rounded to float32; infimnist's default 1.0).
        translate : bool

        Returns
        -------
        InfiniteMNIST with ``mode == "infimnist"``

        Raises
        ------
        FileNotFoundError, MnistFormatError
            Missing file, or a size that does not match 1,522 fields / the number of training digits.

        Notes
        -----
        For ``i >= n_test + n_train``: ``k1 = ((i mod 2^32)·131071 mod 2^32) mod 1521``,
        ``k2 = (k1 + 1 + 2i) mod 1522``, ``a = (i - n_test) mod n_train``, alpha negated when
        ``k1 + k2`` is odd; pixel ``j = X[a][j] + alpha·(F[k1][j]·T[a][0][j] - F[k2][j]·T[a][1][j])``
        with every intermediate rounded to float32, clipped to [0, 255], truncated toward zero; then,
        with ``translate``, infimnist's in-place one-pixel shift number ``k1 mod 9``.
        Loosli, Canu & Bottou (2007), "Training invariant support vector machines using selective
        sampling".
        """
        from infinite_mnist.mnist import read_mnist_dir

        path = Path(path)
        mnist = read_mnist_dir(path, source="infimnist-dir")
        n_train = mnist.train_images.shape[0]
        fields = _read_raw_float32(path / _INFIMNIST_FIELDS, (_INFIMNIST_N_FIELDS, 784), "1,522 fields")
        tangents = _read_raw_float32(path / _INFIMNIST_TANGENTS, (n_train, 2, 784),
                                     f"{n_train} training digits x 2 tangent vectors")
        self = cls.__new__(cls)
        self.mnist = mnist
        self.mode = "infimnist"
        self.alpha = float(np.float32(alpha))
        self.translate = bool(translate)
        self.seed = 0
        self.n_fields = _INFIMNIST_N_FIELDS
        self.sigma = float("nan")
        self._fields = fields
        self._tangents = tangents
        self._key = np.uint64(0)
        self._init_arrays()
        return self

    # -------------------------------------------------------------------------------------------
    @property
    def n_test(self) -> int:
        """Number of test digits at the start of the stream (10,000 for MNIST)."""
        return self._test.shape[0]

    @property
    def n_train(self) -> int:
        """Number of training digits (60,000 for MNIST)."""
        return self._train.shape[0]

    @property
    def first_deformed(self) -> int:
        """The first deformed index, ``n_test + n_train`` (70,000 for MNIST)."""
        return self.n_test + self.n_train

    def images(self, indices, out: np.ndarray | None = None, *, parallel: bool = True) -> np.ndarray:
        """Generate the digits at the given stream indices.

        Parameters
        ----------
        indices : (n,) int64 array_like
            Stream indices >= 0 (0-9,999 test digits, 10,000-69,999 training digits, larger:
            deformations).
        out : (n, 28, 28) or (n, 784) uint8 C-contiguous ndarray, optional
            Written in place and returned (e.g. a slot of a queue), saving an allocation and a copy.
        parallel : bool
            True (default): on Numba's thread pool (``numba.set_num_threads``). False: on the
            calling thread alone, e.g. in worker processes that are themselves the parallelism.
            The bytes are the same either way. In a process forked after its parent had started
            the thread pool (which GNU OpenMP does not survive) generation is always serial.

        Returns
        -------
        (n, 28, 28) uint8 ndarray (or ``out``)

        Raises
        ------
        ValueError
            Negative index, or ``out`` of the wrong shape or dtype.
        """
        idx = _as_indices(indices)
        n = idx.shape[0]
        if out is None:
            out = np.empty((n, 28, 28), dtype=np.uint8)
        elif (out.dtype != np.uint8 or out.shape not in ((n, 28, 28), (n, 784))
              or not out.flags.c_contiguous):
            raise ValueError(
                f"out: expected a C-contiguous ({n}, 28, 28) or ({n}, 784) uint8 array, found "
                f"{out.shape} {out.dtype}"
            )
        if n == 0:
            return out
        flat = out.reshape(n, 784)
        pool = parallel and kernels.thread_pool_usable()
        if self.mode == "first-order":
            fn = kernels.first_order_batch if pool else kernels.first_order_serial
            fn(idx, self._train, self._test, self._fields, self.alpha, self.translate, self._key,
               kernels.MASK_LEFT, kernels.MASK_RIGHT, kernels.MASK_KEEP, flat)
        elif self.mode == "elastic":
            fn = kernels.elastic_batch if pool else kernels.elastic_serial
            fn(idx, self._train, self._test, self._fields, self.alpha, self.translate, self._key,
               kernels.MASK_KEEP, flat)
        else:
            fn = kernels.infimnist_batch if pool else kernels.infimnist_serial
            fn(idx, self._train, self._test, self._fields, self._tangents, self.alpha,
               self.translate, flat)
        return out

    def labels(self, indices, *, parallel: bool = True) -> np.ndarray:
        """Labels of the given stream indices (``parallel`` as in :meth:`images`).

        Returns
        -------
        (n,) uint8 ndarray, values 0-9

        Raises
        ------
        ValueError
            If an index is negative.
        """
        idx = _as_indices(indices)
        out = np.empty(idx.shape[0], dtype=np.uint8)
        if idx.shape[0]:
            pool = parallel and kernels.thread_pool_usable()
            fn = kernels.labels_batch if pool else kernels.labels_serial
            fn(idx, self._train_labels, self._test_labels, out)
        return out

    def examples(self, indices, out: np.ndarray | None = None, *,
                 parallel: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Images and labels in one call: ``(images(indices, out), labels(indices))``."""
        idx = _as_indices(indices)
        return self.images(idx, out, parallel=parallel), self.labels(idx, parallel=parallel)

    def batch(self, start: int, count: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``count`` consecutive examples from stream index ``start``.

        Returns
        -------
        images : (count, 28, 28) uint8 ndarray
        labels : (count,) uint8 ndarray

        Raises
        ------
        ValueError
            If ``start < 0`` or ``count < 0``.
        """
        start, count = int(start), int(count)
        if start < 0 or count < 0:
            raise ValueError(f"batch: expected start >= 0 and count >= 0, found {start}, {count}")
        if count and start + count - 1 > np.iinfo(np.int64).max:  # the last index is start+count-1
            raise ValueError(f"batch: indices beyond 2^63 - 1 ({start} + {count} - 1)")
        idx = start + np.arange(count, dtype=np.int64)
        return self.examples(idx)

    def floats(self, indices) -> np.ndarray:
        """Images as floats in [0, 1]: ``to_float(images(indices))``, (n, 784) float32."""
        return to_float(self.images(indices))

    def provenance(self) -> dict[str, str]:
        """JSON-able description of the stream and its MNIST source, for run records."""
        out = {f"mnist.{k}": v for k, v in self.mnist.provenance().items()}
        out.update({
            "mode": self.mode,
            "alpha": repr(self.alpha),
            "translate": str(self.translate).lower(),
            "seed": str(self.seed),
            "n_fields": str(self.n_fields),
            "sigma": repr(self.sigma),
        })
        return out

    def __repr__(self) -> str:
        return (f"InfiniteMNIST(mode={self.mode!r}, alpha={self.alpha}, translate={self.translate}, "
                f"seed={self.seed}, source={self.mnist.source!r})")


def _read_raw_float32(path: Path, shape: tuple[int, ...], what: str) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing (expected raw float32 data, {what})")
    expected = int(np.prod(shape)) * 4
    size = path.stat().st_size
    if size != expected:
        raise MnistFormatError(
            f"{path}: wrong size: expected {expected} bytes ({what}, shape {shape} float32), "
            f"found {size} bytes"
        )
    return np.asarray(np.memmap(path, dtype=np.float32, mode="r", shape=shape))
