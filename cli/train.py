"""``onlinedeep train`` (the main job: pre-train, fine-tune, track the online error) and
``onlinedeep plot`` (Figure 11-style curves from run folders)."""
from __future__ import annotations

import contextlib
import datetime as _dt
import math
import os
import sys
from pathlib import Path
from typing import List, Optional

import typer

from onlinedeep_cli.options import option_name

COUNT_HELP = "Accepts suffixes: 2.5M, 100k."
# An online error at or above this (chance is 0.9 for ten classes) means the run did not learn.
CHANCE_WARNING = 0.85
# CLI option → RunConfig field, for the options that map onto the configuration.
_FIELDS = (
    "layers", "n_hidden", "pretrain", "pretrain_layers", "unsup_updates", "sup_updates",
    "unsup_split", "learning_rate", "unsup_learning_rate", "corruption_level", "noise", "cd_k",
    "sample_reconstruction", "l1", "l2", "seed", "split", "stream_start", "deformation",
    "stream_seed", "window", "log_every", "snapshot_every", "keep_snapshots", "chunk_size",
    "queue_size", "train_error_blocks", "device", "kernel", "threads", "mnist_dir", "name", "out",
)


def _count(text: str) -> int:
    from onlinedeep.config import ConfigError, parse_count

    try:
        return parse_count(text, name="count")
    except ConfigError as exc:
        raise typer.BadParameter(str(exc).replace("count: ", "")) from None


def _fail(message: str, code: int) -> None:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


def _pretrain_text(cfg) -> str:
    if not cfg.pretrain_layers:
        return "no pre-training"
    return f"pretrain {cfg.pretrain} ({cfg.pretrain_layers} of {cfg.layers} layers)"


def _shape(cfg) -> str:
    return "-".join(str(n) for n in [cfg.n_inputs, *[cfg.n_hidden] * cfg.layers, cfg.n_classes])


def _same_as_run(run_dir: Path, field: str, value) -> bool:
    """Whether ``value`` is what the run in ``run_dir`` already has for ``field`` (its
    ``config.json``; ``--out`` and ``--name`` as the folder's place, however written); False when
    that cannot be read (the usual refusal follows)."""
    import json

    from onlinedeep.config import RunConfig

    try:
        if field == "out":  # "runs", "runs/", "./runs", an absolute path: one folder
            return Path(value).resolve() == run_dir.resolve().parent
        if field == "name":
            return value == run_dir.resolve().name
        stored = json.loads((run_dir / "config.json").read_text())
        return getattr(RunConfig.from_dict({**stored, field: value}), field) == stored[field]
    except Exception:  # any unreadable or invalid value: not the same
        return False


def _time_line(seconds: float, compile_s: float, updates: int) -> str:
    """The summary's time line; the rate leaves out this process's one-time Numba compilation,
    which a first run on an empty cache spends before its first update."""
    line = f"time         {seconds:,.1f} s of training in total"
    training = seconds - compile_s
    if compile_s >= 0.05 and training > 0:
        return (f"{line} ({compile_s:,.1f} s of it compiling the kernels, cached for later "
                f"runs), {updates / training:,.0f} updates/s")
    return line + (f", {updates / seconds:,.0f} updates/s" if seconds > 0 else "")


def _summary(trainer, result, run_dir: Optional[Path], png: Optional[Path], test=None) -> None:
    cfg = trainer.config
    seconds = trainer.elapsed_s
    from onlinedeep.snapshot import data_caveat

    caveat = data_caveat(trainer.provenance())
    lines = [
        f"run          {run_dir}" if run_dir else None,
        f"network      {_shape(cfg)}, {_pretrain_text(cfg)}",
        f"position     {result.position:,} of {cfg.total_updates:,} examples "
        f"({cfg.unsup_updates:,} unsupervised + {cfg.sup_updates:,} supervised)",
        f"online_error {result.online_error:.4f} (last {min(cfg.window, max(result.position - cfg.unsup_updates, 0)):,} "
        f"supervised examples; chance 0.9)" if not math.isnan(result.online_error) else None,
        f"online NLL   {result.online_nll:.4f} nats" if not math.isnan(result.online_nll) else None,
        f"test_error   {test.error_percent:.2f}% on the {test.n_examples:,} "
        f"{'test digits of the fallback sample (500, repeated)' if caveat else 'MNIST test digits'}, "
        f"NLL {test.nll:.4f} nats (evaluation-test.json)" if test is not None else None,
        f"cumulative   {trainer.metrics.prequential.cumulative_error:.4f} error over every "
        f"supervised example" if trainer.metrics.prequential.n_examples else None,
        _time_line(seconds, trainer.compile_time.seconds, result.position),
        f"snapshot     {result.snapshot}" if result.snapshot else None,
        f"plot         {png}" if png else None,
    ]

    if caveat:
        lines.insert(2, f"data         WARNING: {caveat}")
    if trainer.train_error is not None:
        err = ", ".join(f"{e:.4f}" for e in trainer.train_error["error"])
        lines.append(f"train error  by block in presentation order (Figure 12): {err}")
    if not png and cfg.sup_updates == 0:
        lines.append("plot         none: no supervised updates, so no online error (the "
                     "reconstruction cost is in log.txt and the snapshots' /series)")
    typer.echo("\n".join(line for line in lines if line))
    if result.online_error >= CHANCE_WARNING:
        typer.secho(
            f"warning: the final online_error {result.online_error:.4f} is at chance level (0.9) "
            f"or worse: the network did not learn (online NLL {result.online_nll:.4g} nats); "
            f"try a smaller --lr (now {cfg.learning_rate:g})"
            + (f" or --unsup-lr (now {cfg.unsup_learning_rate:g}; the pre-training may have "
               f"saturated the hidden units)" if cfg.unsup_updates and cfg.pretrain != "none"
               else ""), err=True, fg=typer.colors.YELLOW)


def _finished(trainer, run_dir: Path) -> bool:
    """Whether a resumed run has nothing left to do: complete, its final snapshot pinned, Figure 12
    blocks computed if asked for, test evaluation and plot written."""
    from onlinedeep import evaluate as ev

    cfg = trainer.config
    if trainer.position != cfg.total_updates or not trainer.folder.snapshot_path(
            cfg.total_updates, pinned=True).is_file():
        return False
    if cfg.train_error_blocks and trainer.train_error is None:
        return False
    if (cfg.n_inputs, cfg.n_classes) == (784, 10) and ev.recorded(run_dir, "test",
                                                                 trainer.position) is None:
        return False
    return cfg.sup_updates == 0 or trainer.folder.plot_path.is_file()


def register(app: typer.Typer) -> None:
    """Add ``train`` and ``plot`` to the onlinedeep app."""

    @app.command()
    def train(
        layers: Optional[int] = typer.Option(None, "--layers", help="Hidden layers, 1-5 [1]."),
        n_hidden: Optional[int] = typer.Option(
            None, "--n-hidden", "--units",
            help="Units per hidden layer [2000 for 1 layer, else 1000]; --units is the same option."),
        pretrain: Optional[str] = typer.Option(
            None, "--pretrain", help="dae (stacked denoising auto-encoders), rbm (DBN, CD-k) or none [dae]."),
        pretrain_layers: Optional[int] = typer.Option(
            None, "--pretrain-layers", help="Pre-train only the bottom K layers (Figure 14) [all]."),
        unsup_updates: Optional[int] = typer.Option(
            None, "--unsup-updates", parser=_count, metavar="COUNT",
            help=f"Unsupervised updates, all layers together [2.5M; 0 without pre-training]. {COUNT_HELP}"),
        sup_updates: Optional[int] = typer.Option(
            None, "--sup-updates", parser=_count, metavar="COUNT",
            help=f"Supervised updates [7.5M after pre-training, 10M without]. {COUNT_HELP}"),
        unsup_split: Optional[str] = typer.Option(
            None, "--unsup-split",
            help="Share of the unsupervised updates per layer: 'equal' or weights such as '2,1,1' [equal]."),
        learning_rate: Optional[float] = typer.Option(
            None, "--lr", "--learning-rate", help="Supervised learning rate (constant) [0.05]."),
        unsup_learning_rate: Optional[float] = typer.Option(
            None, "--unsup-lr", "--unsup-learning-rate", help="Pre-training learning rate [0.01]."),
        corruption_level: Optional[float] = typer.Option(
            None, "--corruption", "--corruption-level", help="DAE: fraction of inputs corrupted [0.25]."),
        noise: Optional[str] = typer.Option(None, "--noise", help="DAE noise: masking or salt-pepper [masking]."),
        cd_k: Optional[int] = typer.Option(None, "--cd-k", help="RBM: Gibbs steps of CD-k [1]."),
        sample_reconstruction: Optional[bool] = typer.Option(
            None, "--sample-reconstruction/--no-sample-reconstruction",
            help="RBM: sample the visible reconstruction instead of using probabilities [no]."),
        l1: Optional[float] = typer.Option(None, "--l1", help="L1 penalty on the weights [0]."),
        l2: Optional[float] = typer.Option(None, "--l2", help="L2 penalty on the weights [0]."),
        seed: Optional[int] = typer.Option(None, "--seed", help="Initial weights and noise draws [0]."),
        split: Optional[str] = typer.Option(
            None, "--split", help="protocol (deformations of training digits 0-49,999) or all [protocol]."),
        stream_start: Optional[int] = typer.Option(
            None, "--stream-start", parser=_count, metavar="COUNT",
            help="First training id of the sequence [0]."),
        deformation: Optional[str] = typer.Option(
            None, "--deformation", help="first-order, elastic, or infimnist (with --mnist-dir = infimnist's data) [first-order]."),
        stream_seed: Optional[int] = typer.Option(None, "--stream-seed", help="Seed of the displacement fields [0]."),
        window: Optional[int] = typer.Option(
            None, "--window", parser=_count, metavar="COUNT", help=f"Online-error window [100k]. {COUNT_HELP}"),
        log_every: Optional[int] = typer.Option(
            None, "--log-every", parser=_count, metavar="COUNT", help="Examples between metric records [10k]."),
        snapshot_every: Optional[int] = typer.Option(
            None, "--snapshot-every", parser=_count, metavar="COUNT",
            help="Updates between snapshots, a multiple of --chunk-size [500k]."),
        keep_snapshots: Optional[int] = typer.Option(
            None, "--keep-snapshots", help="Periodic snapshots kept, 0 = all [2]."),
        chunk_size: Optional[int] = typer.Option(
            None, "--chunk-size", parser=_count, metavar="COUNT", help="Updates per kernel call [1000]."),
        queue_size: Optional[int] = typer.Option(None, "--queue-size", help="Chunks generated ahead [4]."),
        train_error_blocks: Optional[int] = typer.Option(
            None, "--train-error-blocks",
            help="At the end, error on the training sequence in this many blocks (Figure 12) [0 = off]."),
        device: Optional[str] = typer.Option(None, "--device", help="auto, cpu or cuda [auto]."),
        kernel: Optional[str] = typer.Option(None, "--kernel", help="auto, reference, numba, cuda-graph [auto]."),
        threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads for torch and Numba [0 = default]."),
        mnist_dir: Optional[Path] = typer.Option(
            None, "--mnist-dir", help="MNIST IDX directory [$ONLINEDEEP_MNIST_DIR, cache, download]."),
        name: Optional[str] = typer.Option(None, "--name", help="Run folder name [<model>-<time>]."),
        out: Optional[Path] = typer.Option(None, "--out", help="Parent folder of run folders [runs]."),
        resume: Optional[Path] = typer.Option(
            None, "--resume", help="Continue the run in this folder from its last snapshot."),
        preset: Optional[str] = typer.Option(
            None, "--preset", help="paper (section 5.3 protocol) or smoke (small, under a minute) [paper]."),
        progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
        tensorboard: Optional[Path] = typer.Option(
            None, "--tensorboard", metavar="DIR",
            help="Write online error, NLL and reconstruction cost as TensorBoard scalars to DIR "
                 "(needs the tensorboard extra)."),
    ):
        """Pre-train greedily (SDAE or DBN) then fine-tune an MLP on the InfiniteMNIST stream, one
        example per update, tracking the online (prequential) error (paper 8.1, Figure 11).

        Writes runs/NAME/: config.json, schedule.json, provenance.json, log.txt, snapshots/*.h5 and
        online_error.png. Ctrl-C writes a snapshot and exits with status 130; --resume continues.
        """
        from onlinedeep.config import RESUME_MUTABLE, RunConfig
        from onlinedeep.experiments import figure12
        from onlinedeep.plots import plot_online_error
        from onlinedeep.run_folder import reserved_folder
        from onlinedeep.training import (NonFiniteLossError, Trainer, TrainingInterrupted,
                                         resume as resume_run)

        # Errors of the project's own classes (ConfigError, SnapshotError, RunDirError, MNIST
        # errors, ...) are reported by cli.main as one line; the run folder is written only once
        # the configuration, kernel, device and data source have been checked (Trainer.run).
        values = dict(locals())
        with contextlib.ExitStack() as stack:
            # paths typed as Path (an empty one is refused, see cli.main); the configuration's are str
            given = {f: str(values[f]) if isinstance(values[f], Path) else values[f]
                     for f in _FIELDS if values[f] is not None}
            sink = None
            if tensorboard is not None:  # before anything is written: a missing extra is one line
                from onlinedeep.live import TensorBoardSink

                sink = TensorBoardSink(tensorboard)
            if resume is not None:
                if preset is not None:
                    _fail("--preset cannot be combined with --resume (the run's configuration is "
                          "read from its snapshot)", 2)
                from onlinedeep.run_folder import SNAPSHOT_DIR

                if Path(resume).is_file():  # a snapshot file: name the folder to give
                    where = next((p for p in Path(resume).resolve().parents
                                  if (p / SNAPSHOT_DIR).is_dir()), None)
                    _fail(f"--resume: {resume} is a file; --resume takes the run folder (the one "
                          f"holding {SNAPSHOT_DIR}/)"
                          + (f": --resume {where}" if where is not None else ""), 2)
                if Path(resume).is_dir() and Path(resume).resolve().name == SNAPSHOT_DIR:
                    _fail(f"--resume: {resume} is the {SNAPSHOT_DIR}/ folder of a run; --resume "
                          f"takes the run folder: --resume {Path(resume).resolve().parent}", 2)
                # an option repeated with the run's own value changes nothing: not an error
                given = {f: v for f, v in given.items()
                         if f in RESUME_MUTABLE or not _same_as_run(Path(resume), f, v)}
                fixed = sorted(f for f in given if f not in RESUME_MUTABLE)
                if fixed:
                    _fail(f"{', '.join(option_name(f) for f in fixed)}: cannot change when "
                          f"resuming (the snapshot's configuration is used and the run continues "
                          f"in {resume}); allowed: "
                          f"{', '.join(option_name(f) for f in sorted(RESUME_MUTABLE))}", 2)
                run_dir = Path(resume)
                trainer = resume_run(run_dir, **given)
                if _finished(trainer, run_dir):
                    typer.echo(f"{run_dir}: the run is complete ({trainer.position:,} of "
                               f"{trainer.config.total_updates:,} updates); nothing to do, no file "
                               f"changed (to train longer: --resume {run_dir} --sup-updates COUNT)")
                    return
                announce = (f"resuming {run_dir} at position {trainer.position:,} of "
                            f"{trainer.config.total_updates:,}")
            else:
                config = RunConfig.preset("paper" if preset is None else preset, **given)
                if config.name is None:
                    # a folder of its own, even for runs started at the same second (a sweep)
                    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
                    config.name = stack.enter_context(
                        reserved_folder(config.out, f"{config.default_name()}-{stamp}")).name
                    config.validate()
                run_dir = Path(config.out) / config.name
                trainer = Trainer(config, run_dir=run_dir)
                announce = (f"run folder {run_dir}: {config.total_updates:,} updates "
                            f"({config.unsup_updates:,} unsupervised + {config.sup_updates:,} "
                            f"supervised), {_shape(config)}, "
                            f"{_pretrain_text(config)}, kernel {trainer.kernel.name} on "
                            f"{trainer.device}")

            if sink is not None:
                trainer.metrics.sinks.append(sink)
            from onlinedeep.atomic import DiskFullError
            from onlinedeep_cli.preflight import check_space_for_runs

            check_space_for_runs(run_dir, [trainer.config], f"the run in {run_dir}")
            try:
                # announced once the folder is locked and the data checked, so that a refusal
                # is not preceded by "resuming ..."
                announced = False

                def announce_once() -> None:
                    nonlocal announced
                    if not announced:
                        typer.echo(announce)
                        announced = True

                result = trainer.run(progress=progress, on_start=announce_once)
                announce_once()  # nothing was left to train: the post-steps below still run
            except NonFiniteLossError as exc:
                if resume is None:
                    raise
                # the learning rates cannot change on --resume: say what can be done instead
                raise NonFiniteLossError(
                    f"{exc}; a resumed run keeps its learning rates, so resuming it again fails "
                    f"the same way: start a new run (without --resume) with a smaller one",
                    exc.position) from None
            except DiskFullError as exc:
                if not trainer.folder.has_snapshot():
                    raise
                _fail(f"{exc.filename}: {exc.strerror}, then resume with: onlinedeep train "
                      f"--resume {run_dir}", 1)
            except TrainingInterrupted as exc:
                typer.secho(f"\n{exc}\nresume with: onlinedeep train --resume {run_dir}", err=True,
                            fg=typer.colors.YELLOW)
                if exc.at_once:  # do not wait for the chunk still running (files are consistent)
                    if sink is not None:
                        sink.close()
                    sys.stdout.flush()
                    sys.stderr.flush()
                    os._exit(128 + int(exc.signum))
                raise typer.Exit(128 + int(exc.signum)) from None
            finally:
                if sink is not None:
                    sink.close()
            # Figure 12 blocks: after a complete run, stored in its final snapshot
            result.snapshot = figure12.record(trainer, progress=progress) or result.snapshot

            test = None
            if result.position == trainer.config.total_updates and (
                    trainer.config.n_inputs, trainer.config.n_classes) == (784, 10):
                from onlinedeep import evaluate as ev

                test = ev.evaluate_stream(trainer.params, trainer.stream, "test")
                test.position, test.snapshot = result.position, str(result.snapshot)
                ev.record(run_dir, test)
            png = None
            if len(result.series.supervised()):
                png = plot_online_error([run_dir], trainer.folder.plot_path)
            _summary(trainer, result, run_dir, png, test)

    @app.command()
    def plot(
        runs: List[Path] = typer.Argument(..., help="Run folders or snapshot files."),
        out: Path = typer.Option(Path("online_error.png"), "--out", help="Image to write (PNG)."),
        label: Optional[List[str]] = typer.Option(
            None, "--label", help="Legend entry per run (repeat; default from each configuration)."),
        title: Optional[str] = typer.Option(None, "--title"),
        log_y: bool = typer.Option(True, "--log-y/--linear-y", help="Logarithmic error axis."),
    ):
        """Figure 11-style curves: online error against examples seen, one line per run."""
        from onlinedeep.plots import plot_online_error

        try:
            path = plot_online_error(runs, out, labels=label or None, title=title, log_y=log_y)
        except ValueError as exc:  # e.g. a --label count that does not match the runs
            _fail(str(exc), 2)
        typer.echo(f"wrote {path}")
