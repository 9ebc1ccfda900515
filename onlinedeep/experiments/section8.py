"""Section 8 of Erhan et al. (2010) as jobs: the networks of Figures 11, 12 and 14 in one folder.

Every network is an ordinary run folder ``OUT/<key>/`` (what ``onlinedeep train --out OUT --name
<key>`` writes), so a run started by hand is adopted, never retrained:

========================  ======  ========  ==================  ==========================
key                       layers  pretrain  pre-trained layers  figures
========================  ======  ========  ==================  ==========================
``layers1-none``          1       none      0                   11, 12
``layers1-dae``           1       dae       1                   11
``layers1-rbm``           1       rbm       1                   11, 12
``layers3-none``          3       none      0                   11, 14 (k = 0)
``layers3-dae``           3       dae       3                   11, 14 (k = 3)
``layers3-rbm``           3       rbm       3                   11
``layers3-dae-k1``        3       dae       1                   14
``layers3-dae-k2``        3       dae       2                   14
========================  ======  ========  ==================  ==========================

The configuration of a key is ``RunConfig.preset(preset, layers=L, pretrain=P, pretrain_layers=k,
train_error_blocks=20 for one hidden layer, name=key, out=OUT)`` (paper 5.3 and 8.1: 2.5M
unsupervised + 7.5M supervised updates, 10M supervised without pre-training; 2,000 units for one
layer, 1,000 per layer for three, footnote 14). The job of a key (:func:`run_network`) is
finished when the run folder holds the complete run of that configuration (execution-only fields
aside, :meth:`RunFolder.is_complete`), its final snapshot holds the Figure 12 blocks when the
configuration asks for them, and its test error at the end is recorded (``evaluation-test.json``).
A folder holding part of the run is resumed; a complete one only gets the missing post-steps.

``OUT/plan.json`` records the preset; ``OUT/last_run.json`` the outcomes of the latest ``run``;
``OUT/reports/figureNN/`` what ``report`` writes. Figure 13 (:mod:`ordering_variance`) lives in
``OUT/figure13/``.
"""
from __future__ import annotations

import functools
import heapq
import json
import math
import os
import re
import time
from collections.abc import Callable
from contextlib import AbstractContextManager as ContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from onlinedeep.config import BRANCH_MUTABLE, RESUME_MUTABLE, ConfigError, RunConfig, format_count
from onlinedeep.experiments import runner
from onlinedeep.experiments.executors import Outcome
from onlinedeep.run_folder import JobFolder, RunFolder

__all__ = ["FIGURE_KEYS", "DEFAULT_OUT", "PRESETS", "Network", "network", "key_config",
           "run_network", "network_finished", "check_folder", "job_specs", "run_figure",
           "save_or_check_plan", "load_preset", "phase_updates", "pending_updates", "measure_seconds_per_update",
           "makespan", "NetworkStatus", "network_status", "online_error_last", "train_command",
           "figure13_folder"]

DEFAULT_OUT = "runs/section8"
PLAN_FORMAT = "onlinedeep.section8.plan/1"
TRAIN_ERROR_BLOCKS = 20
FIGURE_KEYS: dict[str, tuple[str, ...]] = {
    "figure11": ("layers1-none", "layers1-dae", "layers1-rbm", "layers3-none", "layers3-dae",
                 "layers3-rbm"),
    "figure12": ("layers1-rbm", "layers1-none"),
    "figure14": ("layers3-none", "layers3-dae-k1", "layers3-dae-k2", "layers3-dae"),
}
# Per preset: RunConfig preset, fields on top of it, and the span of the "last examples" error
# (paper footnote 14: hyper-parameters were chosen on the error of the last 1M examples).
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {"run_preset": "paper", "fields": {}, "last_examples": 1_000_000},
    # Tiny networks, a few thousand updates each, the reference kernel (compiling the Numba
    # kernels in every fresh worker process would cost more than a smoke job trains).
    "smoke": {"run_preset": "smoke", "last_examples": 2_000,
              "fields": {"n_hidden": 32, "unsup_updates": 1_000, "sup_updates": 3_000,
                         "chunk_size": 250, "window": 1_000, "log_every": 250,
                         "snapshot_every": 1_000, "keep_snapshots": 2, "kernel": "reference"}},
}
_KEY_RE = re.compile(r"layers([1-5])-(none|dae|rbm)(?:-k(\d))?")


@dataclass(frozen=True)
class Network:
    """The architecture a key names: ``layers``, ``pretrain`` and ``pretrain_layers`` (None: all)."""

    key: str
    layers: int
    pretrain: str
    pretrain_layers: int | None = None


def network(key: str) -> Network:
    """Parse a key ``layers<L>-<none|dae|rbm>[-k<K>]``.

    Raises
    ------
    ConfigError
        If ``key`` has another form, or K is not in 1..L-1 (K = 0 is ``-none``, K = L the plain key).
    """
    m = _KEY_RE.fullmatch(key)
    if m is None:
        raise ConfigError(f"network key: expected 'layers<L>-<none|dae|rbm>[-k<K>]' such as "
                          f"'layers3-dae-k1', found {key!r}")
    layers, pretrain, k = int(m.group(1)), m.group(2), m.group(3)
    if k is not None and (pretrain == "none" or not 1 <= int(k) < layers):
        raise ConfigError(f"network key {key!r}: -k<K> needs pre-training and K in 1..{layers - 1}")
    return Network(key, layers, pretrain, None if k is None else int(k))


def key_config(key: str, *, preset: str = "paper", out: str | os.PathLike = DEFAULT_OUT,
               threads: int = 0, **overrides: Any) -> RunConfig:
    """The configuration of network ``key`` in the folder ``out``.

    Parameters
    ----------
    key : str
        See :func:`network`.
    preset : {"paper", "smoke"}
        ``paper``: ``RunConfig.preset("paper")`` (2.5M + 7.5M updates, 10M without pre-training).
        ``smoke``: 32 units, 1,000 + 3,000 updates (4,000 without pre-training), chunks of 250.
    out : path-like
        The section-8 folder; the run folder is ``out/key``.
    threads : int
        Threads of the job (execution only; 0 = auto).
    **overrides
        Other :class:`RunConfig` fields (None = not given).

    Raises
    ------
    ConfigError
        On an unknown preset or key, or an invalid value.
    """
    if preset not in PRESETS:
        raise ConfigError(f"preset: expected one of {sorted(PRESETS)}, found {preset!r}")
    net = network(key)
    spec = PRESETS[preset]
    fields = dict(spec["fields"])
    if net.pretrain == "none" and "unsup_updates" in fields:
        # the same number of examples, all supervised (paper 5.3)
        fields["sup_updates"] = fields.pop("unsup_updates") + fields.get("sup_updates", 0)
        fields["unsup_updates"] = 0
    fields.update(layers=net.layers, pretrain=net.pretrain, pretrain_layers=net.pretrain_layers,
                  train_error_blocks=TRAIN_ERROR_BLOCKS if net.layers == 1 else None,
                  name=key, out=str(out), threads=threads)
    fields.update({k: v for k, v in overrides.items() if v is not None})
    return RunConfig.preset(spec["run_preset"], **fields)


# ---------------------------------------------------------------------------- one network
def _final_snapshot(config: RunConfig) -> Path:
    return RunFolder(Path(config.out) / config.name).snapshot_path(config.total_updates, pinned=True)


def _has_train_error(path: Path) -> bool:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return "train_error" in f
    except OSError:
        return False


def network_finished(config_data: dict, _output: Path | None = None) -> bool:
    """Whether the job of a network is finished (see the module docstring).

    Parameters
    ----------
    config_data : dict
        :meth:`RunConfig.to_dict` of the key's configuration.
    _output : Path, optional
        Ignored (the :class:`runner.JobSpec` check signature).
    """
    from onlinedeep.evaluate import EvaluationError, recorded

    config = RunConfig.from_dict(config_data)
    folder = RunFolder(Path(config.out) / config.name)
    if not folder.is_complete(config):
        return False
    if config.train_error_blocks and not _has_train_error(_final_snapshot(config)):
        return False
    try:
        return recorded(folder.path, "test", position=config.total_updates) is not None
    except (EvaluationError, OSError):
        return False


def check_folder(config: RunConfig) -> None:
    """Refuse a run folder that holds a run of another configuration (execution-only fields
    aside); writes nothing.

    Raises
    ------
    ConfigError
        Naming the folder and the fields that differ.
    """
    folder = RunFolder(Path(config.out) / config.name)
    path = folder.path / "config.json"
    if not folder.has_snapshot() or not path.is_file():
        return
    stored = RunConfig.from_json(path.read_text(), where=str(path))
    diffs = [f"{k}: {a!r} vs {b!r}" for k, (a, b) in stored.diff(config).items()
             if k not in BRANCH_MUTABLE]
    if diffs:
        raise ConfigError(f"{folder.path}: holds a run of another configuration (stored vs "
                          f"wanted): {'; '.join(diffs)}; use another --out or the same --preset")


def run_network(config_data: dict, threads: int | None = None) -> dict[str, Any]:
    """The job of one network: resume or start its run, run it to the end, then the post-steps.

    Parameters
    ----------
    config_data : dict
        :meth:`RunConfig.to_dict` of :func:`key_config` (plain data: it pickles to any worker).
    threads : int, optional
        Torch/Numba threads of this job (None: leave the process's setting).

    Returns
    -------
    dict
        ``key``, ``status`` (``"finished"`` or ``"already finished"``), and when it ran
        ``started_from`` (``"initial weights"`` or ``"resumed"``), ``start_position`` and
        ``position`` (updates), ``online_error``, ``test_error_percent``, ``train_error_blocks``
        (whether this call computed the Figure 12 blocks) and ``seconds``.

    Raises
    ------
    ConfigError
        If the run folder holds a run of another configuration.
    Exception
        Whatever training raises (a damaged snapshot, a non-finite loss, missing MNIST, another
        process training in the folder): the executor reports it for this job.
    """
    from onlinedeep import evaluate as ev
    from onlinedeep import threads as thread_policy
    from onlinedeep.experiments import figure12
    from onlinedeep.training import Trainer, resume
    from onlinedeep.training.data import shared_stream

    config = RunConfig.from_dict(config_data)
    key = config.name
    if network_finished(config_data):
        return {"key": key, "status": "already finished"}
    thread_policy.set_job_threads(threads)
    t0 = time.perf_counter()
    run_dir = Path(config.out) / config.name
    stream = shared_stream(config)
    if RunFolder(run_dir).has_snapshot():
        check_folder(config)
        mutable = {k: v for k, v in config.to_dict().items() if k in RESUME_MUTABLE}
        trainer = resume(run_dir, stream=stream, **mutable)
        started_from = "resumed"
    else:
        trainer = Trainer(config, run_dir=run_dir, stream=stream)
        started_from = "initial weights"
    start = trainer.position
    if trainer.position < config.total_updates:
        trainer.run(progress=False)
    with trainer.folder.session():  # the post-steps of a complete run, under the folder's lock
        blocks = figure12.record(trainer) is not None
        test = ev.recorded(run_dir, "test", position=config.total_updates)
        if test is None:
            evaluation = ev.evaluate_stream(trainer.params, trainer.stream, "test")
            evaluation.position, evaluation.snapshot = trainer.position, str(_final_snapshot(config))
            ev.record(run_dir, evaluation)
            test = evaluation.to_dict()
    return {"key": key, "status": "finished", "started_from": started_from,
            "start_position": int(start), "position": int(trainer.position),
            "online_error": float(trainer.metrics.online_error),
            "test_error_percent": float(test["error_percent"]), "train_error_blocks": blocks,
            "seconds": time.perf_counter() - t0}


# ---------------------------------------------------------------------------- the folder
def save_or_check_plan(out: str | os.PathLike, preset: str) -> None:
    """Write ``out/plan.json`` (the preset), or check it names the same preset.

    Raises
    ------
    ConfigError
        If the folder was used with another preset.
    """
    folder = JobFolder(out)
    stored = load_preset(out, default=None)
    if stored is not None and stored != preset:
        raise ConfigError(f"{folder.plan_path}: this folder holds the {stored!r} preset, not "
                          f"{preset!r}; use another --out")
    if stored is None:
        folder.write_json(folder.plan_path, {"format": PLAN_FORMAT, "preset": preset})


def load_preset(out: str | os.PathLike, default: str | None = "paper") -> str | None:
    """The preset ``out/plan.json`` records (``default`` when there is none: a folder of runs
    started by hand with ``onlinedeep train``).

    Raises
    ------
    ConfigError
        If the file is not a section-8 plan.
    """
    path = JobFolder(out).plan_path
    if not path.is_file():
        return default
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != PLAN_FORMAT or data.get("preset") not in PRESETS:
        raise ConfigError(f"{path}: not a section-8 plan (expected format {PLAN_FORMAT!r} and a "
                          f"preset in {sorted(PRESETS)}); is this folder another experiment's?")
    return data["preset"]


def figure13_folder(out: str | os.PathLike) -> Path:
    """The ordering-variance job folder of Figure 13 inside the section-8 folder."""
    return Path(out) / "figure13"


def job_specs(figure: str, out: str | os.PathLike, preset: str = "paper",
              threads: int | None = None) -> list[runner.JobSpec]:
    """The jobs of ``figure`` (one per network, no dependencies).

    Raises
    ------
    ConfigError
        On an unknown figure or preset.
    """
    if figure not in FIGURE_KEYS:
        raise ConfigError(f"figure: expected one of {sorted(FIGURE_KEYS)}, found {figure!r}")
    specs = []
    for key in FIGURE_KEYS[figure]:
        config = key_config(key, preset=preset, out=out, threads=threads or 0)
        data = config.to_dict()
        specs.append(runner.JobSpec(key, run_network, (data, threads), _final_snapshot(config),
                                    check=functools.partial(network_finished, data)))
    return specs


def run_figure(
    figure: str,
    out: str | os.PathLike,
    connect: Callable[[], ContextManager[Any]],
    *,
    preset: str = "paper",
    threads: int | None = None,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> dict[str, Outcome]:
    """Run the unfinished networks of ``figure`` (:func:`runner.run_jobs`).

    Raises
    ------
    ConfigError
        If the folder holds another preset, or a run folder another configuration (checked before
        anything is written).
    RunDirError
        If another process runs jobs in this folder.
    OSError
        If ``connect`` fails; then nothing is written.
    """
    specs = job_specs(figure, out, preset, threads)
    if load_preset(out, default=None) not in (None, preset):
        save_or_check_plan(out, preset)  # raises
    for spec in specs:
        check_folder(RunConfig.from_dict(spec.args[0]))
    return runner.run_jobs(JobFolder(out), specs, connect,
                           prepare=lambda: save_or_check_plan(out, preset), on_outcome=on_outcome)


# ---------------------------------------------------------------------------- cost and ETA
def phase_updates(config: RunConfig, lo: int, hi: int) -> dict[str, int]:
    """Updates at positions ``[lo, hi)`` of a run of ``config``, by phase kind: ``"pretrain<k>"``
    (layer k) and ``"supervised"`` (kinds without updates left out)."""
    from onlinedeep.phases import phases

    out: dict[str, int] = {}
    for phase in phases(config):
        n = max(0, min(phase.stop, hi) - max(phase.start, lo))
        if n:
            name = "supervised" if phase.kind != "pretrain" else f"pretrain{phase.layer}"
            out[name] = out.get(name, 0) + n
    return out


def pending_updates(config: RunConfig) -> tuple[int, dict[str, int]]:
    """Where a network's job would start (the newest snapshot's position, 0 without one) and the
    updates it has left, by phase kind (:func:`phase_updates`)."""
    held = RunFolder(Path(config.out) / config.name).snapshots()
    done = held[-1][0] if held else 0
    return done, phase_updates(config, done, config.total_updates)


def measure_seconds_per_update(config: RunConfig, threads: int, *, budget_s: float = 1.0,
                               max_updates: int = 2_000) -> dict[str, float]:
    """Seconds per update of each phase kind of a network's kernel, measured here and now.

    Runs the configuration's kernel (``threads`` threads) on chunks of MNIST training digits (the
    deterministic outputs of random layers below for the upper layers), for about ``budget_s``
    seconds in all or ``max_updates`` updates per phase, after one small warm-up call (which
    compiles the Numba kernels on a first run). The stream generation, which runs beside the
    kernel in the producer thread, is not measured.

    Returns
    -------
    dict of str to float
        ``"pretrain<k>"`` for each pre-trained layer, ``"supervised"``.
    """
    import torch

    from onlinedeep import kernels, model
    from onlinedeep import threads as thread_policy
    from onlinedeep.phases import phases
    from onlinedeep.training.draws import layer_draws
    from onlinedeep.training.loop import resolve_device

    device = resolve_device(config.device)
    kernel = kernels.get(config.kernel, device, threads=threads)
    n = 64
    try:
        from onlinedeep.training.data import shared_stream

        stream = shared_stream(config)
        idx = np.arange(10_000, 10_000 + n, dtype=np.int64)
        x_np, y_np = stream.floats(idx), stream.labels(idx).astype(np.int64)
    except Exception:  # no MNIST here: sparse inputs like digits' (about 19% of pixels lit)
        rng = np.random.default_rng(0)
        x_np = (rng.random((n, config.n_inputs)) * (rng.random((n, config.n_inputs)) < 0.19))
        x_np, y_np = x_np.astype(np.float32), rng.integers(0, config.n_classes, n)
    kinds = [f"pretrain{p.layer}" for p in phases(config) if p.kind == "pretrain"] + ["supervised"]
    kinds = list(dict.fromkeys(kinds))
    share = budget_s / len(kinds)
    out = {}
    params = model.init_params(config.n_inputs, config.n_hidden, config.layers, config.seed,
                               device, n_outputs=config.n_classes)
    x0 = torch.from_numpy(x_np).to(device)
    y = torch.from_numpy(y_np).to(device)
    torch_n = thread_policy.decide("loop-torch") if kernel.owns_threads else threads
    with thread_policy.torch_threads(torch_n):
        for kind in kinds:
            if kind == "supervised":
                def step(start):
                    kernel.supervised(params, x0, y, learning_rate=config.learning_rate,
                                      l1=config.l1, l2=config.l2)
            else:
                layer = int(kind[len("pretrain"):])
                x = model.hidden_forward(params, x0, layer).contiguous()

                def step(start, layer=layer, x=x):
                    d = layer_draws(config, layer, start, start + n)
                    if config.pretrain == "dae":
                        keep = torch.from_numpy(d["keep"]).to(device)
                        values = None if d["values"] is None else torch.from_numpy(d["values"]).to(device)
                        kernel.dae(params, layer, x, keep, values,
                                   learning_rate=config.unsup_learning_rate)
                    else:
                        u_v = None if d["u_visible"] is None else torch.from_numpy(d["u_visible"]).to(device)
                        kernel.rbm(params, layer, x, torch.from_numpy(d["u_hidden"]).to(device), u_v,
                                   learning_rate=config.unsup_learning_rate, cd_k=config.cd_k)
            step(0)  # warm-up (compilation, first-touch)
            if device.type == "cuda":
                torch.cuda.synchronize()
            done, t0 = 0, time.perf_counter()
            while done < max_updates and (done == 0 or time.perf_counter() - t0 < share):
                step(n + done)
                done += n
            if device.type == "cuda":
                torch.cuda.synchronize()
            out[kind] = (time.perf_counter() - t0) / done
    return out


def makespan(durations: list[tuple[str, float, tuple[str, ...]]], workers: int) -> float:
    """Wall time of jobs on ``workers`` parallel workers, each started (in the order given) as soon
    as a worker is free and its dependencies have finished.

    Parameters
    ----------
    durations : list of (key, seconds, depends_on)
    workers : int

    Returns
    -------
    float
        Seconds until the last job ends.
    """
    keys = {key for key, _, _ in durations}
    pending, running, ends, now = list(durations), [], {}, 0.0
    while pending or running:
        while len(running) < max(1, workers):
            ready = next((j for j in pending
                          if all(d in ends or d not in keys for d in j[2])), None)
            if ready is None:
                break
            pending.remove(ready)
            heapq.heappush(running, (now + ready[1], ready[0]))
        if not running:  # a dependency cycle: nothing can start
            break
        now, key = heapq.heappop(running)
        ends[key] = now
    return now


# ---------------------------------------------------------------------------- reports
@dataclass
class NetworkStatus:
    """What a report shows of one network (from its newest snapshot and run folder).

    Attributes
    ----------
    key : str
    config : RunConfig
        The stored configuration (the wanted one when nothing is trained yet).
    position, total : int
        Updates done (newest snapshot) and planned.
    series : onlinedeep.metrics.Series or None
        Metrics records up to ``position`` (None: no snapshot yet).
    snapshot : Path or None
    online_error_last : float
        Mean 0/1 online error over the last ``last_examples`` supervised examples before
        ``position`` (NaN when fewer were seen); ``last_exact`` whether it is exact (an average
        of non-overlapping windowed records that tile the span) or the mean of the windowed
        records inside the span.
    final_online_error : float
        The last record's windowed online error.
    test_error_percent : float
        Recorded test error (%) of the network at ``position`` (NaN if not evaluated).
    train_error : dict or None
        The Figure 12 blocks of the final snapshot.
    """

    key: str
    config: RunConfig
    position: int
    total: int
    series: Any
    snapshot: Path | None
    last_examples: int
    online_error_last: float
    last_exact: bool
    final_online_error: float
    test_error_percent: float
    train_error: dict | None = None

    @property
    def complete(self) -> bool:
        return self.position >= self.total

    @property
    def status(self) -> str:
        """``complete`` or ``partial, N of M`` (counts with suffixes)."""
        if self.complete:
            return "complete"
        return f"partial, {format_count(self.position)} of {format_count(self.total)}"


def online_error_last(series, *, window: int, span: int, start: int, end: int) -> tuple[float, bool]:
    """Mean 0/1 online error over the supervised examples ``[end - span, end)``, from records.

    A record at position p holds the mean error of the ``window`` examples before p. If records
    exist at ``end, end - window, ..., end - span + window`` (span a multiple of the window, all
    windows supervised) their average is the exact mean over the span; otherwise the mean of the
    records whose window lies inside the span is returned, marked inexact.

    Parameters
    ----------
    series : Series
        Supervised records (``series.supervised()``).
    window, span : int
        Examples.
    start : int
        First supervised position (``unsup_updates``).
    end : int
        Position the span ends at.

    Returns
    -------
    (float, bool)
        The mean (NaN if fewer than ``span`` supervised examples precede ``end`` or no record lies
        inside) and whether it is exact.
    """
    if end - span < start or not len(series):
        return float("nan"), False
    by_position = dict(zip(series.position.tolist(), series.online_error.tolist()))
    if span % window == 0:
        wanted = [end - j * window for j in range(span // window)]
        if all(p in by_position for p in wanted):
            return float(np.mean([by_position[p] for p in wanted])), True
    inside = (series.position - window >= end - span) & (series.position <= end)
    values = series.online_error[inside]
    values = values[np.isfinite(values)]
    return (float(values.mean()) if len(values) else float("nan")), False


def network_status(out: str | os.PathLike, key: str, preset: str = "paper") -> NetworkStatus:
    """The state of network ``key`` in ``out``, for reports (works on partial runs).

    Raises
    ------
    SnapshotError
        If the newest snapshot cannot be read.
    """
    from onlinedeep import snapshot as snapshots
    from onlinedeep.evaluate import EvaluationError, recorded

    wanted = key_config(key, preset=preset, out=out)
    folder = RunFolder(Path(out) / key)
    held = folder.snapshots()
    span = PRESETS[preset]["last_examples"]
    if not held:
        return NetworkStatus(key, wanted, 0, wanted.total_updates, None, None, span, float("nan"),
                             False, float("nan"), float("nan"))
    position, _, path = held[-1]
    config, series = snapshots.read_series(path)
    sup = series.supervised()
    last, exact = online_error_last(sup, window=config.window, span=span,
                                    start=config.unsup_updates, end=position)
    finals = sup.online_error[np.isfinite(sup.online_error)]
    try:
        entry = recorded(folder.path, "test", position=position)
    except (EvaluationError, OSError):
        entry = None
    train_error = None
    if position >= config.total_updates and _has_train_error(path):
        train_error = snapshots.load(path).train_error
    return NetworkStatus(key, config, position, config.total_updates, series, path, span, last,
                         exact, float(finals[-1]) if len(finals) else float("nan"),
                         float(entry["error_percent"]) if entry else float("nan"), train_error)


def train_command(config: RunConfig, preset: str) -> str:
    """The ``onlinedeep train`` command that trains the network of ``config`` alone (the same run
    folder, so the experiment adopts it)."""
    base = RunConfig.preset("paper", layers=config.layers, pretrain=config.pretrain)
    flags = [f"--out {config.out}", f"--name {config.name}", f"--layers {config.layers}",
             f"--pretrain {config.pretrain}"]
    for field, (value, default) in config.diff(base).items():
        if field in ("name", "out", "threads", "layers", "pretrain"):
            continue
        flag = "--" + field.replace("_", "-")
        if isinstance(value, bool):
            flags.append(flag if value else f"--no-{field.replace('_', '-')}")
        else:
            flags.append(f"{flag} {value}")
    return "onlinedeep train " + " ".join(flags) + " --threads 1"


def write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    """Write a CSV file atomically (floats with up to 6 significant digits, NaN as empty)."""
    import csv
    import io

    from onlinedeep.atomic import atomic_file

    def cell(v):
        if isinstance(v, float):
            return "" if math.isnan(v) else f"{v:.6g}"
        return "" if v is None else v

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([[cell(v) for v in row] for row in rows])
    with atomic_file(path) as tmp:
        Path(tmp).write_text(buf.getvalue())
    return path


def write_text(path: Path, text: str) -> Path:
    """Write a text file atomically."""
    from onlinedeep.atomic import atomic_file

    with atomic_file(path) as tmp:
        Path(tmp).write_text(text)
    return path


def report_folder(out: str | os.PathLike, figure: str, results: str | os.PathLike | None = None) -> Path:
    """``out/reports/<figure>/``, or ``<results>/<figure>/`` (created)."""
    from onlinedeep.atomic import make_folder

    path = (Path(results) if results is not None else Path(out) / "reports") / figure
    make_folder(path, "the report folder")
    return path


def subsample(n: int, limit: int = 2_000) -> np.ndarray:
    """Indices of at most ``limit`` evenly spaced records of ``n``, the first and last included."""
    if n <= limit:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, limit).round().astype(np.int64))


def series_rows(statuses: list[NetworkStatus], limit: int = 2_000) -> tuple[list[str], list[list]]:
    """The wide CSV of online-error curves: ``position`` and one column per network (empty where
    a network has no record), each curve subsampled to at most ``limit`` records."""
    curves = {}
    for st in statuses:
        if st.series is None:
            curves[st.key] = {}
            continue
        sup = st.series.supervised()
        keep = np.isfinite(sup.online_error)
        pos, err = sup.position[keep], sup.online_error[keep]
        pick = subsample(len(pos), limit)
        curves[st.key] = dict(zip(pos[pick].tolist(), err[pick].tolist()))
    positions = sorted(set().union(*[c.keys() for c in curves.values()]))
    rows = [[p] + [curves[k].get(p, float("nan")) for k in curves] for p in positions]
    return ["position"] + [f"online_error_{k}" for k in curves], rows
