"""Finite data sets (issue 14): MNIST's fixed splits and the generated Shapeset."""
from __future__ import annotations

import numpy as np
import pytest

from onlinedeep.finite import data, shapeset


def test_shapeset_deterministic_and_prefix_stable():
    x1, y1 = shapeset.generate(300, seed=5, split="train")
    x2, y2 = shapeset.generate(300, seed=5, split="train")
    x3, y3 = shapeset.generate(100, seed=5, split="train")
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2)
    assert np.array_equal(x1[:100], x3) and np.array_equal(y1[:100], y3)
    x4, _ = shapeset.generate(300, seed=6, split="train")
    x5, _ = shapeset.generate(300, seed=5, split="valid")
    assert not np.array_equal(x1, x4) and not np.array_equal(x1, x5)


def test_shapeset_shapes_dtypes_range_balance():
    x, y = shapeset.generate(4000, seed=0, split="test")
    assert x.shape == (4000, 100) and x.dtype == np.float32
    assert y.shape == (4000,) and y.dtype == np.int64
    assert x.min() >= 0.0 and x.max() <= 1.0
    assert set(np.unique(y)) == {0, 1}
    assert abs(y.mean() - 0.5) < 0.03
    # every image shows its shape: contrast between the two grey levels is at least 0.2
    assert np.all(x.max(axis=1) - x.min(axis=1) > 0.15)


def test_shapeset_geometry_differs_by_class():
    """Same area range for both classes, but a square fills 2/π of its circumscribed disc and an
    equilateral triangle 3√3/(4π): the rasterised coverage tells them apart, the area does not."""
    p = shapeset.shape_params(2000, seed=1)
    coverage = shapeset.rasterise(p["vertices"]).sum(axis=1)
    assert np.allclose(coverage, p["area"], atol=1.5)                # the area drawn is drawn
    square = p["label"] == 1
    radius = np.sqrt(np.sum((p["vertices"][:, 0] - np.stack([p["cx"], p["cy"]], 1)) ** 2, 1))
    fill = coverage / (np.pi * radius ** 2)
    assert abs(np.median(fill[square]) - 2 / np.pi) < 0.03
    assert abs(np.median(fill[~square]) - 3 * np.sqrt(3) / (4 * np.pi)) < 0.03
    assert abs(p["area"][square].mean() - p["area"][~square].mean()) < 1.0
    # every vertex inside the image
    assert p["vertices"].min() >= -1e-9 and p["vertices"].max() <= 10 + 1e-9


def test_shapeset_bad_arguments():
    with pytest.raises(ValueError, match="split"):
        shapeset.generate(3, split="training")
    with pytest.raises(ValueError, match="seed"):
        shapeset.generate(3, seed=-1)


def test_load_shapeset_splits_and_head():
    d = data.load_dataset("shapeset", seed=3, sizes={"train": 50, "valid": 20, "test": 10})
    assert (len(d.train), len(d.valid), len(d.test)) == (50, 20, 10)
    assert (d.n_inputs, d.n_classes) == (100, 2)
    assert d.train.x.dtype == np.float32 and d.train.y.dtype == np.int64
    assert not np.array_equal(d.train.x[:10], d.test.x[:10])


def test_load_dataset_unknown():
    with pytest.raises(ValueError, match="dataset"):
        data.load_dataset("cifar")


def test_mnist_splits_follow_the_paper(mnist):
    d = data.mnist_splits(mnist)
    assert (len(d.train), len(d.valid), len(d.test)) == (50_000, 10_000, 10_000)
    assert d.train.x.shape == (50_000, 784) and d.train.x.dtype == np.float32
    assert d.train.y.dtype == np.int64 and d.valid.y.dtype == np.int64
    assert d.train.x.min() >= 0 and d.train.x.max() <= 1
    assert np.array_equal(d.valid.x[0], mnist.train_images[50_000].reshape(-1) / np.float32(255))
    assert np.array_equal(d.test.y, mnist.test_labels)
    assert d.provenance["dataset"] == "mnist"


def test_mnist_splits_need_60000_digits(make_mnist_dir):
    from infinite_mnist import load_mnist

    folder, _ = make_mnist_dir(n_train=100, n_test=20)
    with pytest.raises(ValueError, match="60,000"):
        data.mnist_splits(load_mnist(folder))
