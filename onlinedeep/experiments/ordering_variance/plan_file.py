"""The plan file of the ordering-variance experiment, ``plan.json`` in its folder: read, compared
with the plan a ``run`` asks for (and with the sampling version of the outputs already there), and
written."""
from __future__ import annotations

import json
import os
from pathlib import Path

from onlinedeep.config import ConfigError
from onlinedeep.experiments.ordering_variance.plan import (PLAN_FORMAT, PLAN_PRESETS,
                                                           SAMPLING_VERSION, OrderingPlan)
from onlinedeep.run_folder import JobFolder

__all__ = ["load_plan", "check_plan", "output_sampling_version", "save_or_check_plan"]


def load_plan(out: str | os.PathLike) -> OrderingPlan:
    """Read ``out/plan.json``.

    Raises
    ------
    FileNotFoundError
        If there is no plan (``run`` was never started on this folder).
    ConfigError
        If the file is not a valid plan.
    """
    path = JobFolder(out).plan_path
    inside = Path(out) / "figure13"   # a section-8 folder holds the experiment one level down
    hint = (f"; this is a section-8 folder, its Figure 13 experiment is --out {inside}"
            if (inside / path.name).is_file() else "")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no experiment plan here (run `onlinedeep ordering-variance "
                                f"run --out {out}` first){hint}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from None
    if isinstance(data, dict) and not str(data.get("format")).startswith(
            PLAN_FORMAT.rsplit("/", 1)[0]):  # an older plan format is a sampling-version matter
        other = data.get("experiment") or data.get("format")
        raise ConfigError(f"{path}: this folder holds another experiment ({other!r}), not an "
                          f"ordering-variance plan; use another --out{hint}")
    return OrderingPlan.from_dict(data, where=str(path))


def _preset_of(plan: OrderingPlan) -> str | None:
    """The preset ``plan`` is (with its own pre-training condition), or None."""
    pretrained = [c for c in plan.conditions if c != "none"]
    for name in PLAN_PRESETS:
        try:
            preset = OrderingPlan.preset(name, pretrain=pretrained[0] if pretrained else "dae")
        except ConfigError:
            continue
        if not plan.differences(preset):
            return name
    return None


def check_plan(plan: OrderingPlan, out: str | os.PathLike) -> None:
    """Check that ``out`` holds no experiment, or the same one as ``plan``; writes nothing.

    Execution-only fields (device, kernel, mnist_dir, logging and snapshot cadence) may differ.

    Raises
    ------
    ConfigError
        If the folder holds a different experiment (the message lists the differences), or a plan
        or job output made with another sampling version.
    """
    path = JobFolder(out).plan_path
    if path.exists():
        old = load_plan(out)
        diffs = old.differences(plan)
        if diffs:
            made_with = _preset_of(old)
            raise ConfigError(
                f"{path}: this folder holds a different experiment"
                + (f", made with --preset {made_with}" if made_with else "")
                + " (stored vs requested): " + "; ".join(diffs)
                + ". Use another --out, or the same options as before."
            )
    for job in plan.jobs():
        output = JobFolder(out).output(job.key)
        if not job.is_stage and output.is_file():
            try:
                version = output_sampling_version(output)
            except OSError:
                continue  # damaged: the job is not finished and runs again (jobs.output_ok)
            if version != SAMPLING_VERSION:
                raise ConfigError(
                    f"{output}: made with sampling version {version}, not {SAMPLING_VERSION}; "
                    f"results of two sampling versions are never mixed: use another --out"
                )


def output_sampling_version(path: str | os.PathLike) -> int | None:
    """The ``sampling_version`` attribute of a job output (None if absent).

    Raises
    ------
    OSError
        If the file cannot be read as HDF5 (damaged, truncated).
    """
    import h5py

    with h5py.File(path, "r") as f:
        value = f.attrs.get("sampling_version")
    return None if value is None else int(value)


def save_or_check_plan(plan: OrderingPlan, out: str | os.PathLike) -> None:
    """:func:`check_plan`, then write ``out/plan.json`` (with the new execution-only values).

    Raises
    ------
    ConfigError
        If the folder holds a different experiment (the message lists the differences).
    """
    check_plan(plan, out)
    folder = JobFolder(out)
    folder.write_json(folder.plan_path, plan.to_dict())
