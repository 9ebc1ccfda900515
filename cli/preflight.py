"""Checks every command makes before it starts work: the data can be read, the disk has room.

A long command (``train``, ``ordering-variance run``) that fails on missing MNIST files or a full
disk should fail at once, with one line, before any job starts or any file is written.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

__all__ = ["check_data", "check_space_for_runs"]


def check_data(configs: Iterable) -> None:
    """Build the stream of each distinct data source of ``configs`` (``RunConfig``), so a missing
    or damaged MNIST file is one error now; a warning about the data (unofficial checksum,
    fallback sample) is shown once here.

    Raises
    ------
    infinite_mnist.MnistNotFoundError, infinite_mnist.MnistFormatError, ConfigError
    """
    from onlinedeep.training.data import shared_stream

    seen = set()
    for config in configs:
        key = (config.mnist_dir, config.deformation, config.stream_seed)
        if key not in seen:
            seen.add(key)
            shared_stream(config)


def check_space_for_runs(folder: str | Path, configs: Iterable, what: str) -> None:
    """Refuse to start runs of ``configs`` in ``folder`` without the room for their snapshots
    (start, end and the periodic ones kept, each :func:`onlinedeep.snapshot.estimated_size`; an
    estimate, from the configuration: a resumed run's snapshots already on disk are counted again).

    Raises
    ------
    onlinedeep.atomic.DiskFullError
    """
    from onlinedeep.atomic import check_free_space
    from onlinedeep.snapshot import estimated_size

    def kept(c) -> int:  # periodic snapshots kept at once (keep_snapshots 0 keeps them all)
        return c.keep_snapshots or c.total_updates // c.snapshot_every

    needed = sum(estimated_size(c) * (2 + kept(c)) for c in configs)
    check_free_space(folder, needed, what)

