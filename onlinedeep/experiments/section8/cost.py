"""What a section-8 job costs: updates left per phase kind, measured seconds per update, and the
wall time of jobs on parallel workers (``experiment run --dry-run``)."""
from __future__ import annotations

import heapq
import time
from pathlib import Path

import numpy as np

from onlinedeep.config import RunConfig
from onlinedeep.run_folder import RunFolder


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
                               max_updates: int = 2_000, examples=None) -> dict[str, float]:
    """Seconds per update of each phase kind of a network's kernel, measured here and now.

    Runs the configuration's kernel (``threads`` threads) on chunks of MNIST training digits (the
    deterministic outputs of random layers below for the upper layers), for about ``budget_s``
    seconds in all or ``max_updates`` updates per phase, after one small warm-up call (which
    compiles the Numba kernels on a first run). The stream generation, which runs beside the
    kernel in the producer thread, is not measured. ``examples``: ``(x (n, n_inputs) float32,
    y (n,) int64)`` to time on instead of MNIST digits (another data set's inputs).

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
    from onlinedeep.training.state import resolve_device

    device = resolve_device(config.device)
    kernel = kernels.get(config.kernel, device, threads=threads)
    x_np, y_np = examples if examples is not None else _digits(config, 64)
    x_np, y_np = np.ascontiguousarray(x_np[:64], np.float32), np.asarray(y_np[:64], np.int64)
    n = len(y_np)
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


def _digits(config: RunConfig, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` MNIST training digits of the configuration's stream; without MNIST here, sparse
    random inputs like digits' (about 19% of pixels lit)."""
    try:
        from onlinedeep.training.data import shared_stream

        stream = shared_stream(config)
        idx = np.arange(10_000, 10_000 + n, dtype=np.int64)
        return stream.floats(idx), stream.labels(idx).astype(np.int64)
    except Exception:
        rng = np.random.default_rng(0)
        x = rng.random((n, config.n_inputs)) * (rng.random((n, config.n_inputs)) < 0.19)
        return x.astype(np.float32), rng.integers(0, config.n_classes, n)


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
