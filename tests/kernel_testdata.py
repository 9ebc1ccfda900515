"""Real MNIST digits for the kernel tests (read straight from the IDX files, no generator needed)."""

from __future__ import annotations

import functools
import gzip

import numpy as np
import torch

from conftest import real_mnist_dir


@functools.lru_cache(maxsize=1)
def _train_images(limit: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    root = real_mnist_dir()  # skips the test without $ONLINEDEEP_MNIST_DIR
    with gzip.open(root / "train-images-idx3-ubyte.gz", "rb") as f:
        raw = f.read(16 + 784 * limit)
    with gzip.open(root / "train-labels-idx1-ubyte.gz", "rb") as f:
        labels = f.read(8 + limit)
    images = np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(limit, 784)
    return images, np.frombuffer(labels, dtype=np.uint8, offset=8)


def mnist_inputs(n: int, offset: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` MNIST training digits: ``x (n, 784) float32`` in [0, 1], ``y (n,) int64``."""
    images, labels = _train_images()
    x = torch.from_numpy(images[offset:offset + n].astype(np.float32) / np.float32(255.0))
    return x, torch.from_numpy(labels[offset:offset + n].astype(np.int64))
