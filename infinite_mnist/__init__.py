"""infinite_mnist: a reproducible, quasi-infinite stream of deformed MNIST digits (InfiniteMNIST).

Usable on its own::

    import infinite_mnist
    stream = infinite_mnist.InfiniteMNIST()          # MNIST from $ONLINEDEEP_MNIST_DIR, cache, ...
    images, labels = stream.batch(70_000, 1000)      # (1000, 28, 28) uint8, (1000,) uint8
"""
from infinite_mnist.mnist import (
    MnistData,
    MnistFormatError,
    MnistNotFoundError,
    MnistSourceWarning,
    load_mnist,
)
from infinite_mnist.schedule import SAMPLING_VERSION, Range, Sample, Schedule, draw_seed, sample_indices
from infinite_mnist.stream import InfiniteMNIST, to_float

__all__ = [
    "InfiniteMNIST",
    "MnistData",
    "MnistFormatError",
    "MnistNotFoundError",
    "MnistSourceWarning",
    "Range",
    "SAMPLING_VERSION",
    "Sample",
    "Schedule",
    "draw_seed",
    "sample_indices",
    "load_mnist",
    "to_float",
    "InfiniteMNISTDataset",
    "ScheduleIterable",
]


def __getattr__(name):
    # The PyTorch adapters load on first use, so that the generator alone never imports torch.
    if name in ("InfiniteMNISTDataset", "ScheduleIterable"):
        from infinite_mnist import torch_data

        return getattr(torch_data, name)
    raise AttributeError(f"module 'infinite_mnist' has no attribute {name!r}")
