"""``onlinedeep generate`` and ``onlinedeep preview``, on the embedded sample written as an MNIST
directory (``sample_mnist_dir``)."""
from __future__ import annotations

import json
import re

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from onlinedeep_cli.main import app
from infinite_mnist import InfiniteMNIST
from infinite_mnist.io import write_stream
from infinite_mnist.mnist import read_idx_images, read_idx_labels

pytestmark = pytest.mark.filterwarnings("ignore:.*checksum is not the official one")
runner = CliRunner()


@pytest.fixture(scope="module")
def stream(sample_mnist):
    return InfiniteMNIST(sample_mnist)


def test_generate_hdf5(tmp_path, sample_mnist_dir, stream):
    out = tmp_path / "chunk.h5"
    r = runner.invoke(app, ["generate", "--start", "69990", "--count", "3000", "--out", str(out),
                            "--mnist-dir", str(sample_mnist_dir), "--chunk-size", "1000"])
    assert r.exit_code == 0, r.output
    images, labels = stream.batch(69_990, 3000)
    with h5py.File(out, "r") as f:
        np.testing.assert_array_equal(f["images"][:], images)
        np.testing.assert_array_equal(f["labels"][:], labels)
        np.testing.assert_array_equal(f["indices"][:], np.arange(69_990, 72_990))
        prov = json.loads(f.attrs["provenance"])
    assert prov["mode"] == "first-order" and prov["mnist.source"] == "directory"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chunk.h5"]
    # --no-progress: only the result (for logs and scripts)
    r = runner.invoke(app, ["generate", "--start", "0", "--count", "10", "--out",
                            str(tmp_path / "quiet.h5"), "--mnist-dir", str(sample_mnist_dir),
                            "--no-progress"])
    assert r.exit_code == 0 and r.output.splitlines() == [f"wrote {tmp_path / 'quiet.h5'}"], r.output


@pytest.mark.parametrize("name", ["big-images-idx3-ubyte", "big-images-idx3-ubyte.gz"])
def test_generate_idx(tmp_path, sample_mnist_dir, stream, name):
    out = tmp_path / name
    r = runner.invoke(app, ["generate", "--start", str(2**33), "--count", "500", "--out", str(out),
                            "--mnist-dir", str(sample_mnist_dir), "--chunk-size", "128"])
    assert r.exit_code == 0, r.output
    images, labels = stream.batch(2**33, 500)
    np.testing.assert_array_equal(read_idx_images(out), images)
    np.testing.assert_array_equal(read_idx_labels(tmp_path / name.replace("images-idx3", "labels-idx1")),
                                  labels)


def test_generate_rejects_unknown_extension(tmp_path, sample_mnist_dir):
    r = runner.invoke(app, ["generate", "--count", "5", "--out", str(tmp_path / "x.npy"),
                            "--mnist-dir", str(sample_mnist_dir)])
    assert r.exit_code != 0
    assert "unknown output format" in re.sub(r"[\s│╭╮╰╯─]+", " ", r.output)
    assert not list(tmp_path.iterdir())


def test_generate_zero_examples_is_an_error_and_writes_nothing(tmp_path, sample_mnist_dir):
    r = runner.invoke(app, ["generate", "--count", "0", "--out", str(tmp_path / "x.h5"),
                            "--mnist-dir", str(sample_mnist_dir)])
    assert r.exit_code == 2
    assert "--count" in r.output and "greater than or equal to 1" in r.output
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("name", ["f.h5", "f-images-idx3-ubyte"])
def test_interrupted_write_leaves_no_file(tmp_path, stream, name):
    def chunks():
        yield np.arange(70_000, 70_100)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_stream(stream, chunks(), 200, tmp_path / name)
    assert not list(tmp_path.iterdir())


def test_preview(tmp_path, sample_mnist_dir):
    out = tmp_path / "grid.png"
    r = runner.invoke(app, ["preview", "--out", str(out), "--mnist-dir", str(sample_mnist_dir),
                            "--digits", "0,1", "--columns", "4"])
    assert r.exit_code == 0, r.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_generate_from_a_directory_without_digits_is_one_clear_error(tmp_path, make_mnist_dir):
    d, _ = make_mnist_dir(n_train=0)
    out = tmp_path / "x.h5"
    r = runner.invoke(app, ["generate", "--count", "3", "--out", str(out), "--mnist-dir", str(d)])
    assert r.exit_code == 2, r.output
    assert f"{d / 'train-images-idx3-ubyte.gz'}: holds no images" in r.output
    assert "Traceback" not in r.output and not out.exists()
