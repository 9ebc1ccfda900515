"""The job of one section-8 network, the jobs of a figure, and the folder's ``plan.json``.

The job of a key (:func:`run_network`) is finished when the run folder ``OUT/<key>/`` holds the
complete run of its configuration (execution-only fields aside, :meth:`RunFolder.is_complete`), its
final snapshot holds the Figure 12 blocks when the configuration asks for them, and its test error
at the end is recorded (``evaluation-test.json``). A folder holding part of the run is resumed; a
complete one only gets the missing post-steps.
"""
from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable
from contextlib import AbstractContextManager as ContextManager
from pathlib import Path
from typing import Any

from onlinedeep.config import BRANCH_MUTABLE, RESUME_MUTABLE, ConfigError, RunConfig
from onlinedeep.experiments import runner
from onlinedeep.experiments.executors import Outcome
from onlinedeep.experiments.section8.networks import FIGURE_KEYS, PRESETS, key_config
from onlinedeep.run_folder import JobFolder, RunFolder

PLAN_FORMAT = "onlinedeep.section8.plan/1"


def final_snapshot(config: RunConfig) -> Path:
    return RunFolder(Path(config.out) / config.name).snapshot_path(config.total_updates, pinned=True)


def has_train_error(path: Path) -> bool:
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
    if config.train_error_blocks and not has_train_error(final_snapshot(config)):
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
    import warnings

    from infinite_mnist import MnistSourceWarning

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
    with warnings.catch_warnings():  # the driver showed data warnings once, not once per worker
        warnings.simplefilter("ignore", MnistSourceWarning)
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
            evaluation.position, evaluation.snapshot = trainer.position, str(final_snapshot(config))
            ev.record(run_dir, evaluation)
            test = evaluation.to_dict()
    outcome = {"key": key, "status": "finished", "started_from": started_from,
               "start_position": int(start), "position": int(trainer.position),
               "online_error": float(trainer.metrics.online_error),
               "test_error_percent": float(test["error_percent"]), "train_error_blocks": blocks,
               "seconds": time.perf_counter() - t0}
    warning = near_chance(float(test["error_percent"]), config.n_classes)
    if warning:
        outcome["warning"] = f"{key}: {warning}"
    return outcome


def near_chance(test_error_percent: float, n_classes: int) -> str | None:
    """A warning when a finished network's test error (%) is at least 80% of chance's
    (``100·(1 - 1/n_classes)``): it diverged or learned nothing, and its curve would mislead a
    report; None otherwise."""
    chance = 100.0 * (1.0 - 1.0 / n_classes)
    if test_error_percent >= 0.8 * chance:
        # (no option to suggest: a figure's networks take their learning rates from the preset)
        return (f"test error {test_error_percent:.1f}% is near chance ({chance:.0f}%): the network "
                f"learned nothing or diverged (its learning rates are in its config.json; the "
                f"smoke preset's tiny, short networks may stay at chance)")
    return None


# ---------------------------------------------------------------------------- the folder
def check_preset(out: str | os.PathLike, preset: str) -> str | None:
    """The preset ``out/plan.json`` records (None: no plan yet), checked against ``preset``;
    reads only.

    Raises
    ------
    ConfigError
        If the folder was used with another preset.
    """
    stored = load_preset(out, default=None)
    if stored is not None and stored != preset:
        raise ConfigError(f"{JobFolder(out).plan_path}: this folder holds the {stored!r} preset, "
                          f"not {preset!r}; use another --out")
    return stored


def save_or_check_plan(out: str | os.PathLike, preset: str) -> None:
    """Write ``out/plan.json`` (the preset), or check it names the same preset.

    Raises
    ------
    ConfigError
        If the folder was used with another preset.
    """
    if check_preset(out, preset) is None:
        folder = JobFolder(out)
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
              threads: int | None = None, *, adaptive: bool = False) -> list[runner.JobSpec]:
    """The jobs of ``figure`` (one per network, no dependencies), each on ``threads`` threads; with
    ``adaptive``, ``threads`` is the most a job may use and its kernel chooses 1..``threads``
    between chunks from the measured speed and the machine's load (``RunConfig.threads`` 0, as
    ``onlinedeep train`` by default: a fixed row split collapses when another process holds a
    core; the weights do not depend on the count).

    Raises
    ------
    ConfigError
        On an unknown figure or preset.
    """
    if figure not in FIGURE_KEYS:
        raise ConfigError(f"figure: expected one of {sorted(FIGURE_KEYS)}, found {figure!r}")
    specs = []
    for key in FIGURE_KEYS[figure]:
        config = key_config(key, preset=preset, out=out, threads=0 if adaptive else threads or 0)
        data = config.to_dict()
        specs.append(runner.JobSpec(key, run_network, (data, threads), final_snapshot(config),
                                    check=functools.partial(network_finished, data)))
    return specs


def run_figure(
    figure: str,
    out: str | os.PathLike,
    connect: Callable[[], ContextManager[Any]],
    *,
    preset: str = "paper",
    threads: int | None = None,
    adaptive: bool = False,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> dict[str, Outcome]:
    """Run the unfinished networks of ``figure`` (:func:`runner.run_jobs`; ``threads`` and
    ``adaptive`` as :func:`job_specs`).

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
    specs = job_specs(figure, out, preset, threads, adaptive=adaptive)
    check_preset(out, preset)
    for spec in specs:
        check_folder(RunConfig.from_dict(spec.args[0]))
    return runner.run_jobs(JobFolder(out), specs, connect,
                           prepare=lambda: save_or_check_plan(out, preset), on_outcome=on_outcome)
