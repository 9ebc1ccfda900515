"""Hyper-parameter sweep at reduced scale, judged on the online error (paper 5.3).

Each grid point is one ``onlinedeep`` run (``runs/OUT/NAME``), trained with the same code as
``onlinedeep train``; the table printed at the end (Markdown) gives the final online error, i.e. the
0/1 error over the last ``window`` supervised examples, which is the paper's selection criterion
for InfiniteMNIST ("the average online error over the last million examples", 5.3) at reduced scale.
Finished runs are skipped on a rerun (their snapshot holds the result).

Example (the sweep behind the README's defaults)::

    python scripts/sweep.py --out runs/sweep-sup --jobs 2 \\
        --base layers=1,pretrain=none,sup_updates=500k --grid learning_rate=0.1,0.05,0.02,0.01,0.005
"""
from __future__ import annotations

import concurrent.futures as cf
import itertools
import multiprocessing
import time
from pathlib import Path

import typer

app = typer.Typer(add_completion=False, pretty_exceptions_show_locals=False)


def _parse_assignments(text: str) -> dict[str, str]:
    out = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"expected FIELD=VALUE, found {item!r}")
        out[key.strip()] = value.strip()
    return out


def _typed(field: str, value: str):
    """Convert a text value to the type of the RunConfig field of that name."""
    from onlinedeep.config import RunConfig, parse_count

    if field in ("unsup_updates", "sup_updates", "n_hidden", "window"):
        return parse_count(value, name=field)
    default = getattr(RunConfig(), field)
    if isinstance(default, bool):
        return value.lower() in ("1", "true", "yes")
    if isinstance(default, int):
        return int(value)
    if isinstance(default, float):
        return float(value)
    return value


def _run_one(run_dir: str, fields: dict) -> tuple[str, float, float, float, int]:
    """Train (or resume) one grid point; returns (run_dir, online_error, online_nll, seconds, updates)."""
    from onlinedeep.config import RunConfig
    from onlinedeep.run_folder import RunFolder
    from onlinedeep.training import Trainer, resume

    path = Path(run_dir)
    cfg = RunConfig.preset("paper", **fields)
    if RunFolder(path).has_snapshot():
        trainer = resume(path)
    else:
        trainer = Trainer(cfg, run_dir=path)
    t0 = time.perf_counter()
    result = trainer.run(progress=False)
    return run_dir, result.online_error, result.online_nll, time.perf_counter() - t0, cfg.total_updates


@app.command()
def main(
    out: Path = typer.Option(..., help="Folder of the sweep's runs (one sub-folder per grid point)."),
    base: str = typer.Option("", help="FIELD=VALUE,... common to every run (RunConfig field names)."),
    grid: list[str] = typer.Option(..., help="FIELD=V1,V2,...; several --grid options form a product."),
    jobs: int = typer.Option(2, help="Runs trained at the same time (processes, 1 thread each)."),
) -> None:
    """Train every grid point and print a Markdown table of the final online errors."""
    common = {k: _typed(k, v) for k, v in _parse_assignments(base).items()}
    common.setdefault("threads", 1)
    axes = []
    for g in grid:
        field, sep, values = g.partition("=")
        if not sep:
            raise typer.BadParameter(f"--grid expects FIELD=V1,V2,..., found {g!r}")
        axes.append([(field.strip(), _typed(field.strip(), v)) for v in values.split(",") if v.strip()])
    points = [dict(common, **dict(combo)) for combo in itertools.product(*axes)]
    names = ["-".join(f"{k}={v}" for k, v in combo) for combo in itertools.product(*axes)]
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    ctx = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
        futures = {pool.submit(_run_one, str(out / name), fields): name for name, fields in zip(names, points)}
        for fut in cf.as_completed(futures):
            name = futures[fut]
            try:
                results[name] = fut.result()
                print(f"done {name}: online_error {results[name][1]:.4f}", flush=True)
            except Exception as exc:  # one failed point must not lose the others
                results[name] = None
                print(f"FAILED {name}: {type(exc).__name__}: {exc}", flush=True)
    print(f"\nbase: {base}")
    print("| " + " | ".join(f for f, _ in (axes_i[0] for axes_i in axes)) + " | online_error | online NLL | updates/s |")
    print("|" + "---|" * (len(axes) + 3))
    for name, combo in zip(names, itertools.product(*axes)):
        r = results.get(name)
        cells = [str(v) for _, v in combo]
        if r is None:
            print("| " + " | ".join(cells) + " | failed | | |")
        else:
            _, err, nll, secs, updates = r
            rate = f"{updates / secs:,.0f}" if secs > 1 else "(resumed)"
            print("| " + " | ".join(cells) + f" | {err:.4f} | {nll:.4f} | {rate} |")


if __name__ == "__main__":
    app()
