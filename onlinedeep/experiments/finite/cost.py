"""What the jobs of a finite-data experiment cost (``experiment run NAME --dry-run``): each job's
updates by phase times the seconds per update of its network, measured here and now, plus
the evaluation after every epoch, and the wall time of the unfinished jobs on parallel workers."""
from __future__ import annotations

import time

from onlinedeep.experiments.section8.cost import makespan, measure_seconds_per_update, phase_updates
from onlinedeep.finite.config import FiniteConfig

__all__ = ["JobCost", "estimate"]


def _network_key(cfg: FiniteConfig) -> tuple:
    """What the seconds per update depend on (not the seed, the rates or the epochs)."""
    return (cfg.dataset, cfg.layers, cfg.n_hidden, cfg.top_units, cfg.pretrain,
            cfg.pretrain_layers if cfg.pretrains_here else 0, cfg.l1 > 0, cfg.l2 > 0, cfg.noise,
            cfg.cd_k, cfg.kernel, cfg.device)


class JobCost:
    """Seconds per update and per evaluated example of each distinct network, measured once.

    Parameters
    ----------
    data : onlinedeep.finite.data.FiniteData
        The experiment's data: a short real run of each network on its training examples
        (``section8.measure_seconds_per_update``: kernel, draws, metrics, at least one chunk per
        phase), and the evaluation timed on up to 2,000 of them.
    threads : int
        Kernel threads of one job.
    budget_s : float
        Measuring time per distinct network (seconds, split between its phases).
    """

    def __init__(self, data, threads: int, *, budget_s: float = 0.6):
        self.data, self.threads, self.budget_s = data, threads, budget_s
        self._rates: dict[tuple, tuple[dict[str, float], float]] = {}

    def rates(self, cfg: FiniteConfig) -> tuple[dict[str, float], float]:
        """``({phase kind: seconds per update}, seconds per evaluated example)`` of ``cfg``'s
        network, measured on its first request."""
        key = _network_key(cfg)
        if key not in self._rates:
            from onlinedeep import model
            from onlinedeep.evaluate import evaluate

            engine = cfg.engine_config()
            train = self.data.train
            per_update = measure_seconds_per_update(
                engine, self.threads, budget_s=self.budget_s, examples=(train.x, train.y))
            params = model.init_params(engine.n_inputs, engine.n_hidden, engine.layers,
                                       engine.seed, n_outputs=engine.n_classes)
            part = train.head(2_000)
            evaluate(params, part.x[:64], part.y[:64])  # warm-up
            t0 = time.perf_counter()
            evaluate(params, part.x, part.y)
            self._rates[key] = (per_update, (time.perf_counter() - t0) / len(part))
        return self._rates[key]

    def seconds(self, cfg: FiniteConfig) -> float:
        """Estimated seconds of one job of ``cfg`` from its start: every phase's updates, and the
        evaluation of the train, validation and test sets after every supervised epoch."""
        per_update, per_example = self.rates(cfg)
        engine = cfg.engine_config()
        kernel = sum(n * per_update[kind]
                     for kind, n in phase_updates(engine, 0, engine.total_updates).items())
        evaluated = cfg.epochs * sum(cfg.split_size(s) for s in ("train", "valid", "test"))
        return kernel + evaluated * per_example


def estimate(specs, configs: dict[str, FiniteConfig], pending: set[str], cost: JobCost,
             workers: int) -> tuple[float, dict[str, float]]:
    """Wall time of the pending jobs on ``workers`` parallel workers (dependencies respected).

    Parameters
    ----------
    specs : list of runner.JobSpec
        Every job of the experiment, in run order.
    configs : dict of str to FiniteConfig
        Each job's configuration, by job key.
    pending : set of str
        Keys of the unfinished jobs (finished ones cost nothing).
    cost : JobCost
    workers : int

    Returns
    -------
    (float, dict of str to float)
        Seconds until the last job ends, and each pending job's estimated seconds.
    """
    each = {s.key: cost.seconds(configs[s.key]) for s in specs if s.key in pending}
    total = makespan([(s.key, each[s.key], tuple(d for d in s.depends_on if d in pending))
                      for s in specs if s.key in pending], workers)
    return total, each

