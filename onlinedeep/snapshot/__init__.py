"""HDF5 snapshots of a run: atomic writes, validated reads, no pickle.

A snapshot holds everything a run needs to continue bit-identically: the parameters, the stream
position (hence the phase), the metrics windows and series so far, the configuration and schedule
(JSON), and the provenance of the data and software. Opening one runs no code (plain HDF5 datasets
and string attributes only).

Layout (format ``onlinedeep.snapshot``, version 1)::

    /                         attrs: format, format_version, position (int64), phase
                                     ("pretrain" | "supervised" | "done"), layer (int, -1 if none),
                                     config (RunConfig JSON), schedule (Schedule JSON),
                                     provenance (JSON), created (ISO 8601, UTC); data_caveat
                                     (only when trained on the fallback sample, not MNIST)
    /params/W{k}              (fan_in_k, n_hidden) float32     hidden layer k (fan_in_0 = n_inputs)
    /params/b{k}, /params/c{k} (n_hidden,), (fan_in_k,) float32 hidden and visible biases
    /params/W_out, /params/b_out (n_hidden, n_classes), (n_classes,) float32
    /counters                 attrs: unsup_done, sup_done (updates), elapsed_s (seconds of training)
    /metrics                  attrs: RunMetrics.SCALARS (window, log_every, layer, n_examples, ...)
    /metrics/{name}           (window,) ring buffer of each of RunMetrics.WINDOWS (errors uint8,
                              nll and reconstruction float64); attrs n_seen, total
    /series/{position,layer,online_error,nll,reconstruction}   (m,) records (see metrics.Series)
    /train_error/{block_start,block_stop,error}   (optional) Figure 12 blocks, positions and 0/1 rate

Datasets are chunked with the Fletcher-32 checksum filter, so a damaged file is reported, not read
as garbage.

The package: :mod:`.schema` (the format, :class:`Snapshot`, the shapes and state a configuration
implies), :mod:`.write` (:func:`save`) and :mod:`.read` (:func:`load`, validated).
"""
from __future__ import annotations

from onlinedeep.snapshot.read import load, read_series
from onlinedeep.snapshot.schema import (FORMAT, FORMAT_VERSION, SAMPLE_SOURCE, Snapshot,
                                        SnapshotError, SnapshotFallbackWarning, data_caveat,
                                        estimated_size, expected_state, param_shapes,
                                        read_data_caveat)
from onlinedeep.snapshot.write import h5_image, save

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "Snapshot",
    "SnapshotError",
    "SnapshotFallbackWarning",
    "save",
    "load",
    "param_shapes",
    "read_series",
    "expected_state",
    "estimated_size",
    "h5_image",
    "data_caveat",
    "read_data_caveat",
    "SAMPLE_SOURCE",
]
