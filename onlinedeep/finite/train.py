"""Training on a finite data set by epochs, batch size 1 (paper 5.3, sections 6-7).

:func:`train` reads top to bottom: load the splits; initialise (uniform, paper 5.3); with
pre-training, for each of the bottom ``pretrain_layers`` layers, ``pretrain_epochs`` epochs of
denoising auto-encoder or RBM updates on the output of the fixed layers below (5.1); for
``init="histogram"``, redraw the pre-trained weights and biases from their marginal histograms
(7.1); then ``epochs`` supervised epochs, after each an evaluation on train, validation and test.
Every epoch presents the training set in its own seeded permutation (:mod:`.order`), one example
per update, through the engine's kernels in chunks of consecutive permuted examples
(:mod:`onlinedeep.kernels`); the noise of pre-training update ``p`` is the engine's draw at position
``p`` (:func:`onlinedeep.training.draws.layer_draws`), positions counting updates from 0.

A run folder (:class:`onlinedeep.run_folder.RunFolder`): ``finite.json`` (the
:class:`~onlinedeep.finite.config.FiniteConfig`), ``config.json`` / ``schedule.json`` /
``provenance.json`` (the engine's description, as the snapshots hold), ``log.txt``,
``epochs.csv`` after every epoch, snapshots as ``snapshots`` asks, and ``epochs.h5`` last. A
finished folder (``epochs.h5`` readable) is returned as it is; an unfinished one is started over
(resuming is per job: an experiment skips finished runs).
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from onlinedeep import kernels, model
from onlinedeep import snapshot as snapshots
from onlinedeep import threads as thread_policy
from onlinedeep.atomic import atomic_file
from onlinedeep.evaluate import evaluate
from onlinedeep.finite import records as rec
from onlinedeep.finite.config import FiniteConfig
from onlinedeep.finite.data import FiniteData, load_dataset
from onlinedeep.finite.init import histogram_params, uniform_params
from onlinedeep.finite.order import SUPERVISED, epoch_order
from onlinedeep.metrics import RunMetrics
from onlinedeep.run_folder import RunFolder
from onlinedeep.training.data import software_versions
from onlinedeep.training.draws import layer_draws
from onlinedeep.training.loop import NonFiniteLossError

__all__ = ["train", "FiniteResult", "RECORDS_FILE", "CSV_FILE", "CONFIG_FILE", "records_path"]

RECORDS_FILE = "epochs.h5"
CSV_FILE = "epochs.csv"
CONFIG_FILE = "finite.json"


def records_path(run_dir) -> Path:
    """The file a finished run writes last (its presence means "finished")."""
    return Path(run_dir) / RECORDS_FILE


@dataclass
class FiniteResult:
    """What :func:`train` returns: the records, the final network (None for a run found finished)
    and the run folder."""

    config: FiniteConfig
    records: rec.EpochRecords
    params: dict | None
    run_dir: Path | None

    @property
    def best(self) -> dict | None:
        """The supervised epoch of lowest validation error (:func:`records.best_row`)."""
        return self.records.best()


class _Run:
    """The state of one run while it trains (parameters, position, metrics, files)."""

    def __init__(self, config: FiniteConfig, data: FiniteData, folder: RunFolder | None):
        self.cfg, self.data, self.folder = config, data, folder
        self.engine = config.engine_config()
        self.device = torch.device(config.device)
        try:
            self.kernel = kernels.get(config.kernel, self.device, threads=config.threads)
        except ValueError as exc:
            from onlinedeep.config import ConfigError
            raise ConfigError(f"kernel: {exc}") from None
        # threads=0: the count is chosen between chunks, as in online training (issue 11)
        self.kernel_threads = thread_policy.kernel_controller(config.threads, self.kernel)
        self.params = uniform_params(data.n_inputs, config.n_hidden, config.layers, config.seed,
                                     n_classes=data.n_classes, top_units=config.top_units,
                                     device=self.device)
        n = len(data.train)
        self.metrics = RunMetrics(window=n, log_every=n)
        self.records = rec.EpochRecords()
        self.position = 0
        self.t0 = time.perf_counter()
        self.provenance = {"data": dict(data.provenance), "software": software_versions(),
                           "finite": {"init": config.init, "dataset": config.dataset}}

    # ------------------------------------------------------------------ updates
    def pretrain_epoch(self, layer: int, epoch: int, h: torch.Tensor) -> None:
        """One epoch of layer ``layer`` on its inputs ``h (n, fan_in)``, in the epoch's order."""
        cfg, e = self.cfg, self.engine
        order = epoch_order(cfg.seed, layer, epoch, h.shape[0])
        costs = []
        for a in range(0, len(order), cfg.chunk_size):
            idx = torch.from_numpy(order[a:a + cfg.chunk_size])
            start = self.position
            with thread_policy.chunk_threads(self.kernel_threads, self.kernel,
                                             ("pretrain", layer), len(idx)):
                cost = kernels.pretrain_chunk(self.kernel, self.params, layer,
                                              h[idx.to(h.device)],
                                              layer_draws(e, layer, start, start + len(idx)),
                                              pretrain=e.pretrain,
                                              learning_rate=cfg.unsup_learning_rate,
                                              cd_k=cfg.cd_k, device=self.device)
            self._check(cost, start, f"reconstruction cost (pre-training layer {layer})",
                        "unsup_learning_rate")
            self.metrics.add_pretrain(start, layer, cost)
            costs.append(cost)
            self.position += len(idx)
        self.records.add(phase=rec.PRETRAIN, layer=layer, epoch=epoch + 1, position=self.position,
                         reconstruction=float(np.mean(np.concatenate(costs), dtype=np.float64)),
                         elapsed_s=time.perf_counter() - self.t0)

    def supervised_epoch(self, epoch: int) -> dict:
        """One supervised epoch in the epoch's order, then the evaluations."""
        cfg, train = self.cfg, self.data.train
        order = epoch_order(cfg.seed, SUPERVISED, epoch, len(train))
        errors, nlls = [], []
        for a in range(0, len(order), cfg.chunk_size):
            idx = order[a:a + cfg.chunk_size]
            start = self.position
            x = torch.from_numpy(train.x[idx]).to(self.device)
            y = torch.from_numpy(train.y[idx]).to(self.device)
            with thread_policy.chunk_threads(self.kernel_threads, self.kernel,
                                             ("supervised", -1), len(idx)):
                err, nll = self.kernel.supervised(self.params, x, y,
                                                  learning_rate=cfg.learning_rate, l1=cfg.l1,
                                                  l2=cfg.l2)
            err, nll = err.cpu().numpy(), nll.cpu().numpy()
            self._check(nll, start, "NLL", "learning_rate")
            self.metrics.add_supervised(start, err, nll)
            errors.append(err)
            nlls.append(nll)
            self.position += len(idx)
        values = {"online_error": float(np.mean(np.concatenate(errors), dtype=np.float64)),
                  "online_nll": float(np.mean(np.concatenate(nlls), dtype=np.float64))}
        for split in ("train", "valid", "test"):
            part = self.data.split(split)
            ev = evaluate(self.params, part.x, part.y)
            values[f"{split}_error"], values[f"{split}_nll"] = ev.error, ev.nll
        return self.records.add(phase=rec.SUPERVISED, layer=-1, epoch=epoch + 1,
                                position=self.position, elapsed_s=time.perf_counter() - self.t0,
                                **values)

    def _check(self, values: np.ndarray, start: int, what: str, rate: str) -> None:
        bad = ~np.isfinite(values)
        if bad.any():
            i = int(np.argmax(bad))
            raise NonFiniteLossError(
                f"the {what} became non-finite ({values[i]}) at update {start + i} of the finite "
                f"run (seed {self.cfg.seed}, {rate} {getattr(self.cfg, rate)}); try a smaller "
                f"{rate}", start + i)

    # ------------------------------------------------------------------ files
    def snapshot(self, *, always: bool) -> None:
        """A pinned snapshot of the current position, if the configuration asks for one here."""
        mode = self.cfg.snapshots
        if self.folder is None or mode == "none" or (mode == "ends" and not always):
            return
        state = snapshots.expected_state(self.engine, self.position)

        def write(path):
            return snapshots.save(
                path, config=self.engine, schedule=self.schedule(), position=self.position,
                phase=state["phase"], layer=state["layer"], params=self.params,
                metrics=self.metrics.state(),
                counters={"unsup_done": state["unsup_done"], "sup_done": state["sup_done"],
                          "elapsed_s": time.perf_counter() - self.t0},
                provenance=self.provenance)

        self.folder.save_snapshot(self.position, write, pinned=True, keep=0)

    def schedule(self) -> dict:
        """What the snapshots store as the training sequence: not an InfiniteMNIST schedule."""
        return {"source": "finite", "dataset": self.cfg.dataset, "n_train": len(self.data.train),
                "order": "a seeded permutation per epoch (onlinedeep.finite.order)",
                "seed": self.cfg.seed}

    def log(self, text: str) -> None:
        if self.folder is not None:
            self.folder.log(text)


def _start_folder(folder: RunFolder, run: _Run) -> None:
    """Clear what an unfinished earlier attempt left, then write the run's description."""
    for name in (CSV_FILE, RECORDS_FILE):
        (folder.path / name).unlink(missing_ok=True)
    shutil.rmtree(folder.snapshots_dir, ignore_errors=True)
    folder.write_run_files(run.engine, run.schedule(), run.provenance)
    with atomic_file(folder.path / CONFIG_FILE) as tmp:
        Path(tmp).write_text(json.dumps(run.cfg.to_dict(), indent=2, sort_keys=True) + "\n")
    folder.log(f"start finite run: {run.cfg.to_json()}")


def train(config: FiniteConfig, run_dir=None, *, data: FiniteData | None = None) -> FiniteResult:
    """Train one network on a finite data set by epochs (see the module docstring).

    Parameters
    ----------
    config : FiniteConfig
    run_dir : path-like, optional
        The run folder; without one nothing is written.
    data : FiniteData, optional
        The splits (default :func:`onlinedeep.finite.data.load_dataset` of the configuration);
        their sizes must match the configuration's.

    Returns
    -------
    FiniteResult
        ``params`` None if ``run_dir`` held a finished run (nothing is trained or rewritten).

    Raises
    ------
    ConfigError
        On an invalid configuration, a kernel that does not run on the device, or data of another
        width or size.
    NonFiniteLossError
        When a loss becomes NaN or infinite (``epochs.h5`` is not written; nothing is kept from
        the bad parameters).
    RunDirError
        If another process trains in the run folder.
    """
    from onlinedeep.config import ConfigError

    config.validate()
    folder = RunFolder(run_dir) if run_dir is not None else None
    if folder is not None and rec.readable(records_path(folder.path)):
        _, records = rec.read_h5(records_path(folder.path))
        return FiniteResult(config, records, None, folder.path)
    if data is None:
        data = load_dataset(config.dataset, mnist_dir=config.mnist_dir, seed=config.data_seed,
                            sizes=config.sizes())
    want = {s: config.split_size(s) for s in ("train", "valid", "test")}
    found = {s: len(data.split(s)) for s in want}
    if (data.n_inputs, data.n_classes) != (config.n_inputs, config.n_classes) or found != want:
        raise ConfigError(f"data: expected {config.dataset} with {config.n_inputs} inputs, "
                          f"{config.n_classes} classes and splits {want}, found "
                          f"{data.n_inputs} inputs, {data.n_classes} classes, splits {found}")
    run = _Run(config, data, folder)
    if folder is None:
        return _train(run)
    with folder.session():
        _start_folder(folder, run)
        try:
            return _train(run)
        except Exception as exc:
            folder.log(f"stopped: {type(exc).__name__}: {exc}")
            raise


def _train(run: _Run) -> FiniteResult:
    cfg, folder = run.cfg, run.folder
    loop_torch = thread_policy.decide("loop-torch") if run.kernel.owns_threads else None
    with thread_policy.torch_threads(loop_torch), torch.no_grad():
        run.snapshot(always=False)
        x_train = torch.from_numpy(np.ascontiguousarray(run.data.train.x)).to(run.device)
        if cfg.pretrains_here:
            for layer in range(cfg.pretrain_layers):
                h = model.hidden_forward(run.params, x_train, layer).contiguous()
                for epoch in range(cfg.pretrain_epochs):
                    run.pretrain_epoch(layer, epoch, h)
                    run.log(f"pretrain layer {layer} epoch {epoch + 1}: reconstruction "
                            f"{run.records.rows[-1]['reconstruction']:.6g}")
                    if epoch + 1 < cfg.pretrain_epochs or layer + 1 < cfg.pretrain_layers:
                        run.snapshot(always=False)
                if folder is not None:
                    rec.write_csv(folder.path / CSV_FILE, run.records)
                del h
            run.snapshot(always=True)  # the pre-trained network (Table 1's histograms)
        if cfg.init == "histogram":
            source = run.params
            if cfg.histogram_source is not None:
                source = snapshots.load(cfg.histogram_source).params
            run.params = histogram_params(source, uniform_params(
                run.data.n_inputs, cfg.n_hidden, cfg.layers, cfg.seed,
                n_classes=run.data.n_classes, top_units=cfg.top_units, device=run.device),
                cfg.pretrain_layers, cfg.seed, bins=cfg.histogram_bins)
            run.log("initialised from the marginal histograms of "
                    + (cfg.histogram_source or "this run's pre-trained layers"))
        for epoch in range(cfg.epochs):
            row = run.supervised_epoch(epoch)
            run.log(f"epoch {epoch + 1}: train {row['train_error']:.4%} valid "
                    f"{row['valid_error']:.4%} test {row['test_error']:.4%} train_nll "
                    f"{row['train_nll']:.5g} test_nll {row['test_nll']:.5g}")
            if folder is not None:
                rec.write_csv(folder.path / CSV_FILE, run.records)
            run.snapshot(always=epoch + 1 == cfg.epochs)
    elapsed = time.perf_counter() - run.t0
    if folder is not None:
        rec.write_h5(records_path(folder.path), run.records, config=cfg.to_dict(),
                     provenance=run.provenance, elapsed_s=elapsed)
        best = run.records.best()
        folder.log(f"done in {elapsed:.1f} s: best validation at epoch {best['epoch']}, test "
                   f"error {best['test_error']:.4%}")
    return FiniteResult(cfg, run.records, run.params, folder.path if folder else None)
