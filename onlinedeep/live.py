"""Live views of a long run: metrics sinks fed every record of :class:`onlinedeep.metrics.RunMetrics`.

A sink is a callable given each new record as a dict ``{"position", "layer", "online_error",
"nll", "reconstruction"}`` (the fields of :class:`onlinedeep.metrics.Series`); a run or a learner
calls it by appending it to ``metrics.sinks``. :class:`TensorBoardSink` writes the records as
TensorBoard scalars (``onlinedeep train --tensorboard DIR``; ``tensorboard --logdir DIR``):

=========================  ================================================================
tag                        value, at step = stream position (examples seen)
=========================  ================================================================
``online_error``           windowed 0/1 error of the supervised phase
``online_nll``             windowed NLL of the supervised phase (nats)
``reconstruction/layerK``  windowed reconstruction cost of pre-trained layer K (nats)
=========================  ================================================================

It needs the ``tensorboard`` package, an optional extra: ``pip install 'onlinedeep[tensorboard]'``.
"""
from __future__ import annotations

import importlib.util
import math
import os

from onlinedeep.config import ConfigError

__all__ = ["MissingExtraError", "TensorBoardSink"]


class MissingExtraError(ConfigError):
    """An option needs an optional package that is not installed (the message names the extra)."""


class TensorBoardSink:
    """Write metrics records as TensorBoard scalars (``torch.utils.tensorboard.SummaryWriter``).

    Parameters
    ----------
    log_dir : path-like
        Folder of the event files (created if missing).

    Raises
    ------
    MissingExtraError
        If the ``tensorboard`` package is not installed.
    """

    def __init__(self, log_dir: str | os.PathLike):
        if importlib.util.find_spec("tensorboard") is None:
            raise MissingExtraError(
                "--tensorboard: needs the tensorboard package, which is not installed; install "
                "it with: pip install 'onlinedeep[tensorboard]'"
            )
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = str(log_dir)
        self._writer = SummaryWriter(log_dir=self.log_dir)

    def __call__(self, record: dict) -> None:
        """Write one record (see the module docstring); NaN fields are skipped."""
        step = int(record["position"])
        values = {"online_error": record.get("online_error"), "online_nll": record.get("nll")}
        if record.get("layer", -1) >= 0:
            values = {f"reconstruction/layer{int(record['layer'])}": record.get("reconstruction")}
        for tag, value in values.items():
            if value is not None and not math.isnan(value):
                self._writer.add_scalar(tag, float(value), global_step=step)

    def flush(self) -> None:
        """Write pending events to disk."""
        self._writer.flush()

    def close(self) -> None:
        """Flush and close the event file."""
        self._writer.close()

    def __enter__(self) -> "TensorBoardSink":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
