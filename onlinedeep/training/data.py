"""What a run trains on: the stream and the schedule a configuration describes, and their provenance.

The stream (``infinite_mnist.InfiniteMNIST``) gives the examples at stream indices; the schedule
(``infinite_mnist.Schedule``) says which stream index is trained at each stream position.
"""
from __future__ import annotations

import platform
from importlib import metadata
from typing import Any

from onlinedeep.config import ConfigError, RunConfig

__all__ = ["make_stream", "shared_stream", "default_schedule",
           "software_versions", "check_same_data"]

# Data provenance keys that may differ between machines without changing a single example.
_PROVENANCE_FREE = ("path", "source", "note")
# The digits' own checksum (infinite_mnist.MnistData.digits_md5), and the keys that describe the
# files that held them, which may differ for the same digits (gzip-compressed or raw).
_CONTENT_KEY = "digits_md5"
_FILE_KEYS = ("md5:", "official")
_SHARED: dict[tuple, Any] = {}


def make_stream(config: RunConfig):
    """The InfiniteMNIST stream a configuration describes (``deformation``, ``stream_seed``,
    ``mnist_dir``); ``deformation="infimnist"`` reads infimnist's data directory ``mnist_dir``.

    Raises
    ------
    ConfigError
        If ``deformation`` is ``"infimnist"`` without ``mnist_dir``.
    infinite_mnist.MnistNotFoundError, infinite_mnist.MnistFormatError
        If the MNIST files are missing or damaged.
    """
    from infinite_mnist import InfiniteMNIST

    if config.deformation == "infimnist":
        if not config.mnist_dir:
            raise ConfigError("deformation 'infimnist' needs mnist_dir = infimnist's data directory")
        return InfiniteMNIST.from_infimnist_dir(config.mnist_dir)
    return InfiniteMNIST(mnist_dir=config.mnist_dir, mode=config.deformation, seed=config.stream_seed)


def shared_stream(config: RunConfig):
    """:func:`make_stream`, built once per process and data source.

    For worker processes that run many jobs: loading and checking MNIST takes a moment, and the
    generator is stateless (safe to share between the threads of a Dask worker).
    """
    key = (config.mnist_dir, config.deformation, config.stream_seed)
    if key not in _SHARED:
        _SHARED[key] = make_stream(config)
    return _SHARED[key]


def default_schedule(config: RunConfig):
    """The contiguous training sequence of a configuration: training ids ``stream_start ...``.

    Raises
    ------
    ConfigError
        If the sequence would run past the last training id of the split.
    """
    from infinite_mnist import Schedule
    from infinite_mnist.schedule import MAX_ID

    last = MAX_ID[config.split] - config.total_updates + 1
    if not 0 <= config.stream_start <= last:
        raise ConfigError(
            f"stream_start: expected a training id in 0..{last:,} (the run's "
            f"{config.total_updates:,} examples must end at or before training id "
            f"{MAX_ID[config.split]:,} of split {config.split!r}), found {config.stream_start:,}")
    return Schedule.contiguous(config.total_updates, start=config.stream_start, split=config.split)


def software_versions() -> dict[str, str]:
    """Versions of Python, the platform and the packages a run depends on."""
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("onlinedeep", "torch", "numpy", "numba", "h5py"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "unknown"
    return out


def check_same_data(old: dict, new: dict) -> None:
    """Check that a stream's provenance (``stream.provenance()``) describes the same examples as a
    snapshot's; file locations and notes may differ.

    Raises
    ------
    ConfigError
        Naming each key that differs, with both values.
    """
    keys = set(old) | set(new)
    content = {k for k in keys if k.endswith(_CONTENT_KEY)}
    # A snapshot written before the digits' own checksum was recorded lacks it: the files decide.
    free = {k for k in content if k not in old or k not in new}
    if content and not free and all(old[k] == new[k] for k in content):
        # the same digits, whatever files held them (gzip or raw): the files' checksums may differ
        free |= {k for k in keys if any(part in k for part in _FILE_KEYS)}
    diff = sorted(
        k for k in keys - free
        if not any(k.endswith(s) for s in _PROVENANCE_FREE) and old.get(k) != new.get(k)
    )
    if diff:
        shown = [f"{k}: snapshot {old.get(k)!r} vs now {new.get(k)!r}" for k in diff[:3]]
        more = f" and {len(diff) - 3} more" if len(diff) > 3 else ""
        raise ConfigError(
            f"data: the stream differs from the one the snapshot was trained on "
            f"({', '.join(shown)}{more}); point --mnist-dir at the same MNIST files"
        )
