"""The finite-data experiments (issue 14) end to end at the smoke preset: every experiment on the
generated Shapeset and on real MNIST, reports, resume, plan checks and the command line."""
from __future__ import annotations

import json

import pytest

from onlinedeep.config import ConfigError
from onlinedeep.experiments import executors
from onlinedeep.experiments.finite import catalog, common
from onlinedeep.finite.config import FiniteConfig


@pytest.fixture(scope="module")
def cluster():
    """A Dask cluster in this process (one worker thread), as a real one looks to the runner."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp",
                      dashboard_address=None) as c:
        yield c


def _run(name, out, cluster, dataset="shapeset", seeds=1, **overrides):
    cells = catalog.experiment_cells(name, "smoke", dataset, overrides or None)
    outcomes = common.run_experiment(
        name, out, cells, range(seeds), lambda: executors.remote_client(cluster.scheduler_address),
        preset="smoke", dataset=dataset, threads=1)
    return cells, outcomes


def _check_report(name, out, cells, seeds=1):
    mod = catalog.module(name)
    files = common.write_report(name, out, None, mod.draw, getattr(mod, "extra", None))
    lines = files["table"].read_text().splitlines()
    assert len(lines) == 1 + len(cells)
    header = lines[0].split(",")
    for line in lines[1:]:
        row = dict(zip(header, line.split(",")))
        assert int(row["n_seeds"]) == seeds
        assert 0 <= float(row["test_error_pct"]) <= 100
    assert files["figure"].stat().st_size > 1000
    assert len(files["seeds"].read_text().splitlines()) == 1 + seeds * len(cells)
    return files


@pytest.mark.parametrize("name", sorted(catalog.NAMES))
def test_every_experiment_on_shapeset(name, tmp_path, cluster):
    cells, outcomes = _run(name, tmp_path / name, cluster)
    assert all(o.status == "done" for o in outcomes.values()), outcomes
    files = _check_report(name, tmp_path / name, cells)
    if name == "figure1":
        assert (files["figure"].parent / "figure2.png").stat().st_size > 1000
    if name == "search":
        chosen = json.loads(files["chosen"].read_text())
        assert set(chosen["by_init"]) == {"uniform", "pretrained"}
        assert chosen["by_init"]["uniform"]["learning_rate"] in (0.1, 0.02)


@pytest.mark.parametrize("name", sorted(catalog.NAMES))
def test_every_experiment_on_mnist(name, mnist_dir, tmp_path, cluster):
    cells, outcomes = _run(name, tmp_path / name, cluster, dataset="mnist")
    assert all(o.status == "done" for o in outcomes.values()), outcomes
    _check_report(name, tmp_path / name, cells)


def test_table1_histogram_runs_after_their_pretrained_seed(tmp_path, cluster):
    cells = catalog.experiment_cells("table1", "smoke", "shapeset")
    specs = {s.key: s for s in common.job_specs(tmp_path, cells, range(2))}
    hist = specs["layers2-histogram/s001"]
    assert hist.depends_on == ("layers2-pretrained/s001",)
    source = hist.args[0]["histogram_source"]
    assert source.startswith(str(tmp_path / "layers2-pretrained" / "s001" / "snapshots"))
    assert source.endswith(".pinned.h5")


def test_rerun_does_nothing_and_an_interrupted_job_is_redone(tmp_path, cluster):
    out = tmp_path / "t1"
    cells, first = _run("table1", out, cluster, seeds=2)
    assert all(o.status == "done" for o in first.values())
    stamp = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    _, again = _run("table1", out, cluster, seeds=2)
    assert all(o.value["status"] == "already finished" for o in again.values())
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == stamp
    # a job killed before its end has no epochs.h5: only it runs again
    victim = common.run_dir(out, "layers1-uniform", 1) / "epochs.h5"
    victim.unlink()
    _, third = _run("table1", out, cluster, seeds=2)
    redone = [k for k, o in third.items() if o.value["status"] != "already finished"]
    assert redone == ["layers1-uniform/s001"] and victim.is_file()
    # more seeds: only the new ones run
    _, more = _run("table1", out, cluster, seeds=3)
    assert sorted(k for k, o in more.items() if o.value["status"] != "already finished") == sorted(
        common.job_key(c.key, 2) for c in cells)


def test_plan_mismatch_is_refused(tmp_path, cluster):
    out = tmp_path / "f10"
    _run("figure10", out, cluster)
    with pytest.raises(ConfigError, match="other configurations"):
        _run("figure10", out, cluster, epochs=3)
    with pytest.raises(ConfigError, match="experiment 'figure10'"):
        _run("l1l2", out, cluster)


def test_overrides_and_hparams(tmp_path):
    cells = catalog.experiment_cells("table1", "smoke", "mnist", catalog.parse_set(
        ["epochs=3", "n_train=50"]), {"by_init": {"uniform": {"learning_rate": 0.07}}})
    assert all(c.config.epochs == 3 and c.config.n_train == 50 for c in cells)
    lrs = {c.config.init: c.config.learning_rate for c in cells}
    assert lrs["uniform"] == 0.07 and lrs["pretrained"] != 0.07
    assert lrs["histogram"] == 0.07  # no entry of its own: the uniform one
    own = catalog.experiment_cells("table1", "smoke", "mnist", None, {"by_init": {
        "uniform": {"learning_rate": 0.07}, "histogram": {"learning_rate": 0.03}}})
    assert {c.config.init: c.config.learning_rate for c in own}["histogram"] == 0.03
    with pytest.raises(ConfigError, match="epochs"):
        catalog.experiment_cells("table1", "smoke", "mnist", {"epochs": 0})
    with pytest.raises(ConfigError, match="unknown field"):
        catalog.experiment_cells("table1", "smoke", "mnist", {"epoch": 3})
    with pytest.raises(ConfigError, match="FIELD=VALUE"):
        catalog.parse_set(["epochs"])
    grid = catalog.experiment_cells("search", "smoke", "mnist",
                                    hparams={"grid": {"learning_rate": [0.1, 0.05, 0.01]}})
    assert len(grid) == 6
    with pytest.raises(ConfigError, match="search only"):
        catalog.experiment_cells("table1", "smoke", "mnist", hparams={"grid": {"l2": [0.0]}})


def test_a_bad_set_item_is_named_as_typed(tmp_path):
    """``experiment run`` has no ``--n-hidden``: an error caused by ``--set n_hidden=0`` names the
    item, not an option the command does not take."""
    from typer.testing import CliRunner

    from onlinedeep_cli.main import app

    base = ["experiment", "run", "table1", "--preset", "smoke", "--dry-run",
            "--out", str(tmp_path / "t")]
    for item, said in (("units=16", "--set units=16: unknown field(s) ['units']; known fields"),
                       ("n_hidden=0", "--set n_hidden=0: expected an integer >= 1, found 0"),
                       ("epochs", "--set: expected FIELD=VALUE, found 'epochs'")):
        r = CliRunner().invoke(app, base + ["--set", "epochs=1", "--set", item])
        assert r.exit_code == 2, r.output
        assert r.output.startswith(f"error: {said}") and "--n-hidden" not in r.output, r.output
    assert not (tmp_path / "t").exists()


def test_cli_run_report_and_dry_run(tmp_path, cluster):
    from typer.testing import CliRunner

    from onlinedeep_cli.main import app

    out = tmp_path / "f14"
    args = ["experiment", "run", "figure14-mnist", "--out", str(out), "--seeds", "1", "--preset",
            "smoke", "--dataset", "shapeset"]
    r = CliRunner().invoke(app, args + ["--dry-run"])
    assert r.exit_code == 0, r.output
    assert "4 cell(s) x 1 seed(s)" in r.output and not out.exists()
    assert "4 unfinished job(s): ETA" in r.output and "each" in r.output
    r = CliRunner().invoke(app, args + ["--scheduler", cluster.scheduler_address])
    assert r.exit_code == 0, r.output
    assert "4 finished now" in r.output
    r = CliRunner().invoke(app, ["experiment", "report", "figure14-mnist", "--out", str(out),
                                 "--results", str(tmp_path / "res")])
    assert r.exit_code == 0, r.output
    assert "rbm-k3" in r.output and (tmp_path / "res" / "figure14-mnist" / "table.csv").is_file()
    r = CliRunner().invoke(app, args + ["--set", "epochs=3", "--dry-run"])
    assert r.exit_code == 2 and "other configurations" in r.output
    r = CliRunner().invoke(app, ["experiment", "report", "table1", "--out", str(tmp_path / "none")])
    assert r.exit_code == 2 and "no plan.json" in r.output


def test_dry_run_cost_is_updates_times_measured_rates_plus_evaluation(tmp_path):
    from onlinedeep.experiments.finite import cost
    from onlinedeep.finite.data import load_dataset

    cells = catalog.experiment_cells("table1", "smoke", "shapeset")
    specs = common.job_specs(tmp_path, cells, range(2))
    configs = {s.key: FiniteConfig.from_dict(s.args[0]) for s in specs}
    data = load_dataset("shapeset", sizes=cells[0].config.sizes())
    job_cost = cost.JobCost(data, 1, budget_s=0.05)
    pre = configs["layers1-pretrained/s000"]
    per_update, per_example = job_cost.rates(pre)
    assert set(per_update) == {"pretrain0", "supervised"} and per_example > 0
    n = pre.split_size("train")
    expect = (pre.pretrain_epochs * n * per_update["pretrain0"]
              + pre.epochs * n * per_update["supervised"]
              + pre.epochs * sum(pre.split_size(s) for s in ("train", "valid", "test")) * per_example)
    assert job_cost.seconds(pre) == pytest.approx(expect)
    # seeds share the measurement; a histogram job does not pre-train, so it costs less (at the
    # same measured rates: its own 0.05-s measurement alone can differ by more under load)
    assert job_cost.seconds(configs["layers1-pretrained/s001"]) == job_cost.seconds(pre)
    hist = configs["layers1-histogram/s000"]
    assert cost._network_key(hist) != cost._network_key(pre)
    job_cost._rates[cost._network_key(hist)] = ({"supervised": per_update["supervised"]},
                                                per_example)
    assert job_cost.seconds(hist) < job_cost.seconds(pre)
    keys = {s.key for s in specs}
    wall, each = cost.estimate(specs, configs, keys, job_cost, workers=2)
    assert set(each) == keys and max(each.values()) <= wall <= sum(each.values()) + 1e-9
    done = keys - {"layers2-uniform/s001"}
    wall1, each1 = cost.estimate(specs, configs, keys - done, job_cost, workers=2)
    assert list(each1) == ["layers2-uniform/s001"]
    assert wall1 == pytest.approx(each1["layers2-uniform/s001"])


def test_only_selects_cells_and_their_dependencies(tmp_path):
    cells = catalog.experiment_cells("table1", "smoke", "mnist")
    specs = common.job_specs(tmp_path, cells, range(2))
    assert common.select(specs, None) == specs
    keys = [s.key for s in common.select(specs, ["layers2-*"])]
    assert keys == [k for k in (s.key for s in specs) if k.startswith("layers2-")]
    # a histogram job needs the pre-trained network of its seed: that job comes along
    keys = [s.key for s in common.select(specs, ["*-histogram"])]
    assert set(keys) == {f"layers{d}-{c}/s00{i}" for d in (1, 2) for c in ("histogram", "pretrained")
                         for i in (0, 1)}
    with pytest.raises(ConfigError, match="matches no cell; the cells are layers1-pretrained"):
        common.select(specs, ["layers3-*"])


def test_cli_only_runs_the_matching_cells(tmp_path):
    from typer.testing import CliRunner

    from onlinedeep_cli.main import app

    out = tmp_path / "f8"
    args = ["experiment", "run", "figure8", "--out", str(out), "--seeds", "2", "--preset", "smoke",
            "--dataset", "shapeset", "--jobs", "1", "--threads", "1"]
    r = CliRunner().invoke(app, args + ["--only", "layers1-*"])
    assert r.exit_code == 0, r.output
    assert "(--only: 2 of 6 cells) = 4 jobs" in r.output and "4 finished now" in r.output
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["layers1-pretrained",
                                                                  "layers1-uniform"]
    plan = json.loads((out / "plan.json").read_text())
    assert len(plan["cells"]) == 6  # the plan holds every cell: the rest can follow
    r = CliRunner().invoke(app, args + ["--only", "layers2-*", "--dry-run"])
    assert r.exit_code == 0, r.output
    assert "layers2-uniform" in r.output and "layers1-uniform" not in r.output
    # without --threads a local job's kernel count adapts (config threads 0), with it, it is fixed
    no_threads = args[:-2] + ["--only", "layers2-uniform"]
    r = CliRunner().invoke(app, no_threads)
    assert r.exit_code == 0, r.output
    threads = {cell: json.loads((out / cell / "s000" / "finite.json").read_text())["threads"]
               for cell in ("layers1-uniform", "layers2-uniform")}
    assert threads == {"layers1-uniform": 1, "layers2-uniform": 0}
    for option in (["--only", "x"], ["--seeds", "3"], ["--dataset", "shapeset"],
                   ["--set", "epochs=2"], ["--hparams", "chosen.json"]):
        r = CliRunner().invoke(app, ["experiment", "run", "figure11", *option, "--dry-run"])
        assert r.exit_code == 2 and "finite-data experiments only" in r.output, (option, r.output)
        assert option[0] in r.output
    r = CliRunner().invoke(app, ["experiment", "report", "table1", "--out", str(out)])
    assert r.exit_code == 2 and "holds experiment 'figure8', not 'table1'" in r.output
    assert not (out / "reports").exists()


def test_figure8_matched_nll_compares_test_nll_at_the_same_train_nll():
    import numpy as np

    from onlinedeep.experiments.finite import figure8

    train = np.exp(np.linspace(-1, -5, 9))  # train NLL falling over 9 epochs
    paths = {"uniform": [(train, 2.0 * train + 0.1)] * 2,
             "pretrained": [(train[2:], 2.0 * train[2:] + 0.05)]}
    rows = figure8.matched_nll(paths, bins=3, min_points=1)
    assert len(rows) == 3
    assert rows[0]["log_train_lo"] == pytest.approx(-5) and rows[-1]["log_train_hi"] == pytest.approx(-2)
    for row in rows:  # pre-trained 0.05 lower at every train NLL: a lower log test NLL in each bin
        assert row["pretrained_log_test"] < row["uniform_log_test"]
        assert row["uniform_points"] == 2 * row["pretrained_points"]
    assert figure8.matched_nll({"uniform": [(train, train)], "pretrained": []}) == []


def test_a_search_per_depth_chooses_per_init_and_depth_and_is_applied_by_depth(tmp_path):
    from types import SimpleNamespace

    from onlinedeep.experiments.finite import search

    grid = {"layers": [1, 2], "learning_rate": [0.1, 0.02]}
    cells = catalog.experiment_cells("search", "smoke", "shapeset", hparams={"grid": grid})
    plan = {"cells": {c.key: {"labels": c.labels} for c in cells}}
    # made-up validation errors: 1 layer prefers 0.1, 2 layers 0.02, in both inits
    def valid(labels):
        good = 0.1 if labels["layers"] == 1 else 0.02
        return 0.1 if labels["learning_rate"] == good else 0.3
    results = [SimpleNamespace(cell=c.key, best={"valid_error": valid(c.labels)}) for c in cells]
    chosen = search.choose(plan, results)
    assert set(chosen) == {"uniform@1", "uniform@2", "pretrained@1", "pretrained@2"}
    assert chosen["pretrained@2"]["fields"] == {"learning_rate": 0.02}
    written = search.extra({**plan, "dataset": "shapeset", "preset": "smoke"}, results, tmp_path)
    data = json.loads(written["chosen"].read_text())
    assert "by_init" not in data and data["by_init_layers"]["uniform"]["2"] == {"learning_rate": 0.02}
    by = {"uniform": {"1": {"learning_rate": 0.1}, "2": {"learning_rate": 0.02}}}
    applied = catalog.experiment_cells("table1", "smoke", "mnist", None, {"by_init_layers": by})
    lrs = {(c.config.init, c.config.layers): c.config.learning_rate for c in applied}
    assert lrs[("uniform", 1)] == 0.1 and lrs[("uniform", 2)] == 0.02
    assert lrs[("histogram", 2)] == 0.02  # the uniform choice of its depth
    default = catalog.experiment_cells("table1", "smoke", "mnist")[0].config.learning_rate
    assert lrs[("pretrained", 1)] == default  # no entry for this init: unchanged


def test_local_jobs_without_threads_choose_their_count_between_chunks(tmp_path):
    import torch

    from onlinedeep.finite.train import train

    cells = catalog.experiment_cells("table1", "smoke", "shapeset")
    auto = common.job_specs(tmp_path, cells, range(1), 2, adaptive=True)
    fixed = common.job_specs(tmp_path, cells, range(1), 2)
    assert all(s.args[0]["threads"] == 0 and s.args[2] == 2 for s in auto)
    assert all(s.args[0]["threads"] == 2 for s in fixed)
    # the count chosen between chunks (threads 0) gives the weights of one thread, bit for bit
    cfg = FiniteConfig.from_dict(auto[0].args[0]).replace(kernel="numba", chunk_size=20)
    adaptive = train(cfg)
    one = train(cfg.replace(threads=1))
    assert all(torch.equal(adaptive.params[k], one.params[k]) for k in one.params)
