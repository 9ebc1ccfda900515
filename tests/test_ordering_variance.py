"""The ordering-variance experiment (paper 8.2, Figure 13): plan, executors, jobs, pipeline."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from onlinedeep.experiments import executors
from onlinedeep.config import ConfigError, RunConfig
from onlinedeep.experiments.ordering_variance import (
    Job,
    OrderingPlan,
    load_table,
    output_variance,
    report,
    run_experiment,
    run_job,
    save_or_check_plan,
)
from onlinedeep.model import predict_proba
from onlinedeep.run_folder import JobFolder, RunFolder
from onlinedeep.training import Trainer, branch
from onlinedeep.experiments import ordering_variance as ov


def small_config(**kw) -> RunConfig:
    values = dict(layers=1, n_hidden=8, unsup_updates=0, sup_updates=1200, pretrain="none",
                  chunk_size=100, snapshot_every=200, window=100, log_every=100)
    values.update(kw)
    return RunConfig(**values)


# ------------------------------------------------------------------------------------------ plan
def _base_digit(indices: np.ndarray) -> np.ndarray:
    """Training digit of which each stream index (>= 70,000) is a deformation."""
    return (np.asarray(indices) - 10_000) % 60_000


def test_each_draw_resamples_its_segment_and_keeps_the_rest():
    plan = OrderingPlan.preset("smoke")
    n, seg = plan.n_examples, plan.segment_length
    base = plan.base_schedule().indices(0, n)
    assert len(np.unique(base)) == n
    swapped_sets = []
    for condition in plan.conditions:
        assert np.array_equal(plan.schedule(Job(condition)).indices(0, n), base)
        for s in range(plan.n_segments):
            for d in range(plan.n_draws):
                job = Job(condition, s, d)
                seq = plan.schedule(job).indices(0, n)
                lo, hi = plan.boundary(s), plan.boundary(s) + seg
                outside = np.r_[0:lo, hi:n]
                assert np.array_equal(seq[outside], base[outside]), (s, d)  # the fixed part
                assert np.array_equal(plan.indices(job), seq[lo:hi])  # default: the varied segment
                assert np.array_equal(plan.indices(job, 5, 7), seq[5:12])
                if condition == plan.conditions[0]:
                    swapped_sets.append(seq[lo:hi])
                else:  # paired design: every condition sees the same samples
                    assert np.array_equal(seq[lo:hi], swapped_sets[s * plan.n_draws + d])
    swapped = np.concatenate(swapped_sets)
    assert len(np.unique(swapped)) == len(swapped)  # 47-bit deformation numbers: no repeats
    assert not np.intersect1d(swapped, base).size
    # protocol split: only deformations of training digits 0-49,999; never the held-out digits
    everything = np.concatenate([base, swapped])
    assert everything.min() >= 70_000
    assert (_base_digit(everything) < 50_000).all()
    # a rerun (a fresh plan object, as on another worker) gives the same indices
    again = OrderingPlan.preset("smoke")
    assert np.array_equal(again.indices(Job("none", 2, 1)), swapped_sets[2 * plan.n_draws + 1])
    with pytest.raises(ValueError, match="positions"):
        plan.indices(Job("none", 0, 0), n - 1, 2)


def test_paper_draws_share_almost_no_base_digit():
    """Paper 8.2 varies a segment "by resampling ... a different set of 1 million examples each
    time": two draws of one segment must not present the same base digits in the same order (the
    old ranges of consecutive training ids did, at every position, since L is a multiple of 50,000)."""
    plan = OrderingPlan.preset("paper")
    assert (plan.n_examples, plan.n_segments, plan.n_draws, plan.segment_length) == (
        10_000_000, 10, 10, 1_000_000)
    assert plan.configs["dae"].unsup_updates == 2_500_000
    assert plan.configs["none"].sup_updates == 10_000_000
    s = 3
    a = plan.indices(Job("dae", s, 0))
    b = plan.indices(Job("dae", s, 1))
    base = plan.base_schedule().indices(plan.boundary(s), plan.segment_length)
    assert a.shape == b.shape == (1_000_000,)
    # chance 1/50,000 per position: ~20 in 1M (P(> 60) is negligible), never all of them
    same = int((_base_digit(a) == _base_digit(b)).sum())
    assert 0 < same < 60, same
    assert int((_base_digit(a) == _base_digit(base)).sum()) < 60
    # each draw covers the base digits about evenly, not one block of them in order
    assert len(np.unique(_base_digit(a))) > 49_000
    assert np.array_equal(a, plan.indices(Job("none", s, 0)))  # same samples for both conditions
    assert np.array_equal(a[:1000], OrderingPlan.preset("paper").indices(Job("dae", s, 0), 3 * 10**6, 1000))
    for d in (0, 9):  # the fixed part stays fixed
        sched = plan.schedule(Job("dae", s, d))
        lo, hi = plan.boundary(s), plan.boundary(s) + plan.segment_length
        for p in (0, lo - 1, hi, plan.n_examples - 1):
            assert int(sched.indices(p, 1)[0]) == int(plan.base_schedule().indices(p, 1)[0])


def test_costs_with_and_without_prefix_sharing():
    costs = OrderingPlan.preset("paper").costs()
    # per condition: base run (10M) + 10 draws x sum_{s=0}^{9} (10 - s) segments of 1M = 560M
    assert costs == {"runs_shared": 202, "jobs_shared": 220,
                     "updates_shared": 2 * (10_000_000 + 10 * 55 * 1_000_000),
                     "jobs_unshared": 200, "updates_unshared": 2 * 100 * 10_000_000}


def test_job_keys_and_dependencies(tmp_path):
    plan = OrderingPlan({"none": small_config()}, n_segments=4, n_draws=2)
    jobs = plan.jobs()
    assert [j.key for j in jobs[:4]] == ["none/base-s01", "none/base-s02", "none/base-s03", "none/base"]
    assert len(jobs) == 4 + 4 * 2 == plan.costs()["jobs_shared"]
    for job in jobs:
        assert Job.from_key(job.key) == job
    # base stages chain; each segment's draws wait only for the stage that pins their branch point
    assert plan.depends_on(Job("none", 1)) == ()
    assert plan.depends_on(Job("none", 3)) == (Job("none", 2),)
    assert plan.depends_on(Job("none")) == (Job("none", 3),)
    assert plan.depends_on(Job("none", 0, 1)) == ()  # differs from the start: nothing to share
    assert plan.depends_on(Job("none", 2, 1)) == (Job("none", 2),)
    # a stage's product is its branch point, in the base run's folder
    assert ov.output_path(plan, tmp_path, Job("none", 2)) == ov.branch_point(plan, tmp_path, "none", 2)
    assert ov.branch_point(plan, tmp_path, "none", 2) == (
        tmp_path / "none" / "base" / "snapshots" / "snapshot-000000000600.pinned.h5")
    assert ov.run_dir(plan, tmp_path, Job("none", 2)) == ov.run_dir(plan, tmp_path, Job("none"))
    assert ov.output_path(plan, tmp_path, Job("none", 2, 1)) == tmp_path / "none" / "s02-d01.h5"
    for bad in ("none/s1", "none/base-x", "base", "none/s01-d01-x"):
        with pytest.raises(ValueError, match="CONDITION/sSS-dDD"):
            Job.from_key(bad)


def test_jobs_of_some_segments_are_their_draws_and_the_stages_they_branch_from():
    plan = OrderingPlan({"none": small_config()}, n_segments=4, n_draws=2)
    keys = [j.key for j in plan.jobs([2, 1, 2])]   # order and repeats do not matter
    assert keys == ["none/base-s01", "none/base-s02", "none/s02-d00", "none/s02-d01",
                    "none/s01-d00", "none/s01-d01"]          # no base-s03, no base job
    assert [j.key for j in plan.jobs([0])] == ["none/s00-d00", "none/s00-d01"]  # nothing to share
    everything = plan.jobs(range(4))
    assert {j.key for j in plan.jobs()} - {j.key for j in everything} == {"none/base"}
    for job in plan.jobs([3]):  # every dependency of a chosen job is chosen too
        assert set(plan.depends_on(job)) <= set(plan.jobs([3]))
    for bad, match in (([4], "segments: 4 not in 0..3"), ([], "none chosen"),
                       ([-1, 2], "segments: -1 not in"), (range(99), "4-98 not in 0..3")):
        with pytest.raises(ConfigError, match=match):
            plan.jobs(bad)


def test_only_segments_text():
    import typer

    from onlinedeep_cli.ordering_variance import chosen_segments, parse_segments

    assert parse_segments("0-4") == [0, 1, 2, 3, 4]
    assert parse_segments(" 0, 2,5-6") == [0, 2, 5, 6]
    assert parse_segments(None) is None
    for bad in ("", "a", "3-1", "1-", "-2", "1,,2", "+1", "\u0663", "1.0"):
        with pytest.raises(typer.BadParameter, match="segment numbers and ranges"):
            parse_segments(bad)
    plan = OrderingPlan({"none": small_config()}, n_segments=4, n_draws=2)
    with pytest.raises(typer.BadParameter) as info:    # out of the plan: one short line
        chosen_segments(plan, "0-99")
    assert info.value.param_hint == "--only-segments"
    assert info.value.message == "4-99 not in 0..3 (the plan has 4 segments)"
    assert chosen_segments(plan, None) is None and chosen_segments(plan, "3,1") == [1, 3]


@pytest.mark.parametrize("kwargs,match", [
    ({"n_segments": 7}, "divisor of N=1200"),
    ({"n_segments": 8}, "multiple of chunk_size=100"),
    ({"n_draws": 1}, "n_draws: expected an integer >= 2"),
    ({"seed": -1}, "seed: expected an integer"),
    ({"test_count": 0}, "test_count"),
])
def test_plan_rejects_bad_geometry(kwargs, match):
    args = {"n_segments": 4, "n_draws": 2, **kwargs}
    with pytest.raises(ConfigError, match=match):
        OrderingPlan({"none": small_config()}, **args)


def test_plan_rejects_conditions_on_different_data():
    with pytest.raises(ConfigError, match=r"configs\['b'\]: expected the same N"):
        OrderingPlan({"a": small_config(), "b": small_config(sup_updates=2400)}, 4, 2)
    with pytest.raises(ConfigError, match=r"configs\['b'\].stream_seed"):
        OrderingPlan({"a": small_config(), "b": small_config(stream_seed=3)}, 4, 2)


def test_plan_roundtrip_and_folder_mismatch(tmp_path):
    plan = OrderingPlan.preset("smoke")
    assert OrderingPlan.from_dict(json.loads(json.dumps(plan.to_dict()))).to_dict() == plan.to_dict()
    save_or_check_plan(plan, tmp_path)
    # execution-only fields may change between reruns
    save_or_check_plan(OrderingPlan.preset("smoke", kernel="reference", log_every=500), tmp_path)
    with pytest.raises(ConfigError, match=r"different experiment.*n_draws: 3 vs 4"):
        save_or_check_plan(OrderingPlan.preset("smoke", n_draws=4), tmp_path)
    with pytest.raises(ConfigError, match=r"learning_rate"):
        save_or_check_plan(OrderingPlan.preset("smoke", learning_rate=0.2), tmp_path)
    with pytest.raises(ConfigError, match=r"seed: 0 vs 5"):  # other draws: another experiment
        save_or_check_plan(OrderingPlan.preset("smoke", seed=5), tmp_path)


def test_results_of_another_sampling_version_are_refused(tmp_path):
    plan = OrderingPlan.preset("smoke")
    # a plan written before resampling (format /1: ranges of consecutive training ids)
    old = {k: v for k, v in plan.to_dict().items() if k not in ("sampling_version", "seed")}
    old.update(format="onlinedeep.ordering_variance.plan/1", draw_start=4000)
    (tmp_path / "plan.json").write_text(json.dumps(old))
    with pytest.raises(ConfigError, match=r"plan.json: made with sampling version None .* another --out"):
        save_or_check_plan(plan, tmp_path)
    assert json.loads((tmp_path / "plan.json").read_text()) == old  # refused, not rewritten
    # another experiment's folder is named as such, not as an old sampling version
    other = tmp_path / "other"
    other.mkdir()
    (other / "plan.json").write_text(json.dumps({"format": "onlinedeep.finite-plan",
                                                 "experiment": "table1"}))
    with pytest.raises(ConfigError, match=r"holds another experiment \('table1'\)"):
        save_or_check_plan(plan, other)
    # an output of another version without a plan beside it
    fresh = tmp_path / "fresh"
    output = ov.output_path(plan, fresh, Job("none", 1, 0))
    output.parent.mkdir(parents=True)
    with h5py.File(output, "w") as f:
        f.attrs["format"] = "onlinedeep.ordering_variance.job/1"
        f.attrs["online_error"] = 0.5
        f.create_dataset("probabilities", data=np.full((plan.test_count, 10), 0.1, np.float32))
    with pytest.raises(ConfigError, match=r"s01-d00.h5: made with sampling version None, not 1"):
        save_or_check_plan(plan, fresh)
    assert not (fresh / "plan.json").exists()
    JobFolder(fresh).write_json(JobFolder(fresh).plan_path, plan.to_dict())
    with pytest.raises(ValueError, match=r"s01-d00.h5: made with sampling version None"):
        ov.aggregate(fresh)


# ------------------------------------------------------------------------------------ variance
def test_output_variance():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(10), size=(1, 50)).astype(np.float32)
    assert output_variance(np.repeat(p, 4, axis=0)) == 0.0
    q = rng.dirichlet(np.ones(10), size=(1, 50))
    # two networks: unbiased variance of {a, b} is (a - b)^2 / 2, averaged over examples and classes
    expected = float(np.mean((p[0].astype(np.float64) - q[0]) ** 2 / 2))
    assert output_variance(np.concatenate([p, q])) == pytest.approx(expected, rel=1e-12)
    many = rng.dirichlet(np.ones(10), size=(7, 30))
    assert output_variance(many) == pytest.approx(
        np.mean([[np.var(many[:, i, k], ddof=1) for k in range(10)] for i in range(30)]))
    with pytest.raises(ValueError, match=r"expected shape \(D >= 2, n, k\)"):
        output_variance(p)


def test_figure13_draws_segments_with_fewer_draws_apart(tmp_path, monkeypatch):
    # A run still going: its partial segments are open markers off the curves, named in the legend.
    import matplotlib.figure

    seen = {}
    save = matplotlib.figure.Figure.savefig

    def spy(fig, *args, **kwargs):
        ax = fig.axes[0]
        seen["legend"] = [t.get_text() for t in ax.get_legend().get_texts()]
        seen["lines"] = [(list(np.round(line.get_xdata(), 2)), line.get_linestyle())
                         for line in ax.get_lines()
                         if len(line.get_xdata()) and line.get_marker() == "o"]
        return save(fig, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", spy)
    table = {"condition": np.array(["dae"] * 3 + ["none"] * 3, dtype=object),
             "segment": np.array([0, 1, 2] * 2), "fraction": np.array([0.0, 1 / 3, 2 / 3] * 2),
             "n_draws": np.array([10, 3, 1, 10, 10, 10]),
             "variance": np.array([1e-4, 2e-4, np.nan, 3e-4, 2e-4, 4e-4])}
    ov.plot_figure13(table, tmp_path / "f.png", n_draws=10)
    assert (tmp_path / "f.png").stat().st_size > 0
    assert seen["lines"] == [([0.0], "-"), ([0.33], "None"), ([0.0, 0.33, 0.67], "-")]
    assert "with pre-training (SDAE): segments with 2-9 of 10 draws so far" in seen["legend"]
    assert not any("none:" in text for text in seen["legend"])


# ----------------------------------------------------------------------------------- executors
def _ok(x):
    t0 = time.monotonic()
    time.sleep(0.05)
    return {"x": x, "start": t0, "stop": time.monotonic()}


def _boom(x):
    raise ValueError(f"boom {x}")


@pytest.fixture(scope="module")
def dask_cluster():
    """A real Dask cluster in this process (threads), as the distributed executor sees one."""
    from distributed import LocalCluster

    # tcp, not inproc: the CLI in a subprocess connects to it with --scheduler
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, protocol="tcp",
                      dashboard_address=None) as cluster:
        yield cluster


def test_failed_task_is_reported_and_others_finish(dask_cluster):
    tasks = [
        executors.Task("a", _ok, (1,)),
        executors.Task("bad", _boom, (7,)),
        executors.Task("after-bad", _ok, (2,), depends_on=("bad",)),
        executors.Task("after-after-bad", _ok, (3,), depends_on=("after-bad",)),
        executors.Task("after-a", _ok, (4,), depends_on=("a",)),
        executors.Task("free", _ok, (5,)),
    ]
    seen = []
    with executors.remote_client(dask_cluster.scheduler_address) as client:
        out = executors.run_tasks(client, tasks, on_outcome=lambda o: seen.append(o.key))
    assert list(out) == [t.key for t in tasks]
    assert sorted(seen) == sorted(out)
    assert out["bad"].status == "failed"
    assert out["bad"].error == "ValueError: boom 7"
    assert "_boom" in out["bad"].traceback
    for key in ("after-bad", "after-after-bad"):
        assert out[key].status == "skipped"
        assert "dependency 'bad' failed: ValueError: boom 7" in out[key].error
    for key, x in (("a", 1), ("after-a", 4), ("free", 5)):
        assert out[key].status == "done" and out[key].value["x"] == x
    assert out["after-a"].value["start"] >= out["a"].value["stop"]


def test_ready_tasks_start_in_the_order_listed_even_when_ready_later():
    # A chain listed first must not wait behind independent tasks listed after it that were ready
    # earlier (plain Dask submission order would run all of them before the chain's second link).
    from distributed import LocalCluster

    chain = [executors.Task("c1", _ok, (1,)), executors.Task("c2", _ok, (2,), depends_on=("c1",)),
             executors.Task("c3", _ok, (3,), depends_on=("c2",))]
    free = [executors.Task(f"f{i}", _ok, (10 + i,)) for i in range(16)]
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None,
                      scheduler_kwargs={"dashboard_address": ":0"}) as cluster:
        with executors.remote_client(cluster.scheduler_address) as client:
            out = executors.run_tasks(client, chain + free)
    assert all(o.status == "done" for o in out.values())
    start = {key: o.value["start"] for key, o in out.items()}
    assert start["c1"] < start["c2"] < start["c3"]
    later = [key for key in start if key.startswith("f") and start[key] > start["c3"]]
    assert len(later) >= 4, sorted(start, key=start.get)  # ~12: two slip in per link (queueing)


def test_two_chains_listed_first_run_before_the_jobs_after_them(dask_cluster):
    # The paper Figure 13 case: two workers, the base runs of two conditions (chains) listed first,
    # then independent draws. Each worker runs one chain link after link, the draws after both.
    chains = []
    for c in ("a", "b"):
        chains += [executors.Task(f"{c}1", _ok, (1,)),
                   executors.Task(f"{c}2", _ok, (2,), depends_on=(f"{c}1",)),
                   executors.Task(f"{c}3", _ok, (3,), depends_on=(f"{c}2",))]
    free = [executors.Task(f"f{i}", _ok, (10 + i,)) for i in range(8)]
    with executors.remote_client(dask_cluster.scheduler_address) as client:
        out = executors.run_tasks(client, chains + free)
    start = {key: o.value["start"] for key, o in out.items()}
    last_link = max(start["a3"], start["b3"])
    assert all(start[f.key] > last_link for f in free), sorted(start, key=start.get)


def test_local_workers_take_the_highest_priority_job_when_free():
    # One local worker: a chain listed first runs link after link, none of the independent jobs
    # listed after it in between.
    chain = [executors.Task("c1", _ok, (1,)), executors.Task("c2", _ok, (2,), depends_on=("c1",)),
             executors.Task("c3", _ok, (3,), depends_on=("c2",))]
    free = [executors.Task(f"f{i}", _ok, (10 + i,)) for i in range(6)]
    with executors.local_client(1) as client:
        out = executors.run_tasks(client, chain + free)
    start = {key: o.value["start"] for key, o in out.items()}
    order = sorted(start, key=start.get)
    assert order[:3] == ["c1", "c2", "c3"], order


def test_draw_jobs_run_segment_by_segment_from_the_cheapest():
    dae = small_config(pretrain="dae", unsup_updates=300, sup_updates=900)
    plan = OrderingPlan({"none": small_config(), "dae": dae}, n_segments=4, n_draws=2)
    jobs = plan.jobs()
    assert len(jobs) == plan.costs()["jobs_shared"] == 2 * (4 + 4 * 2)
    n_base = 2 * 4
    assert all(j.is_base for j in jobs[:n_base])
    assert [j.segment for j in jobs[:6]] == [1, 1, 2, 2, 3, 3]
    draws = jobs[n_base:]
    assert [j.segment for j in draws] == [3] * 4 + [2] * 4 + [1] * 4 + [0] * 4
    # each segment: both conditions, every draw, before the next (more expensive) segment
    assert {(j.condition, j.draw) for j in draws[:4]} == {(c, d) for c in ("none", "dae") for d in (0, 1)}


def test_run_tasks_rejects_malformed_graphs(dask_cluster):
    with executors.remote_client(dask_cluster.scheduler_address) as client:
        with pytest.raises(ValueError, match="duplicate task key 'a'"):
            executors.run_tasks(client, [executors.Task("a", _ok), executors.Task("a", _ok)])
        with pytest.raises(ValueError, match="depends on 'zz'"):
            executors.run_tasks(client, [executors.Task("a", _ok, depends_on=("zz",))])
        with pytest.raises(ValueError, match="cycle"):
            executors.run_tasks(client, [executors.Task("a", _ok, depends_on=("b",)),
                                         executors.Task("b", _ok, depends_on=("a",))])


# ------------------------------------------------------------------------------- jobs (trainer)
def _network(output: Path) -> dict[str, np.ndarray]:
    from onlinedeep import snapshot

    with h5py.File(output, "r") as f:
        network = output.parent / f.attrs["network"]
    return snapshot.load(network).params


def _attrs(output: Path) -> dict:
    with h5py.File(output, "r") as f:
        return dict(f.attrs)


def test_branching_and_resuming_equal_training_from_scratch(tmp_path, mnist_dir):
    plan = OrderingPlan.preset("smoke", n_draws=2)
    data, out = plan.to_dict(), str(tmp_path)
    # the base run in stages, each continuing the previous one and pinning its branch point
    for s in range(1, plan.n_segments):
        summary = run_job(data, out, Job("dae", s).key)
        assert summary["started_from"] == ("initial weights" if s == 1 else "resumed")
        assert summary["position"] == plan.boundary(s)
        assert ov.branch_point(plan, out, "dae", s).is_file()
    assert run_job(data, out, "dae/base")["start_position"] == plan.boundary(plan.n_segments - 1)
    base = _network(ov.output_path(plan, out, Job("dae")))
    whole = Trainer(plan.config(Job("dae")))
    whole.run(progress=False)
    for name, value in whole.params.items():
        assert torch.equal(torch.from_numpy(base[name]), value), name

    # s = 2: interrupted half-way through the replaced segment (a snapshot in its run folder), then
    # run again; s = 1: branched at the end of pre-training (a phase boundary) in one go.
    interrupted = Job("dae", 2, 1)
    trainer = branch(ov.branch_point(plan, out, "dae", 2),
                                    schedule=plan.schedule(interrupted),
                                    run_dir=ov.run_dir(plan, out, interrupted))
    trainer.run(stop=plan.boundary(2) + 500, progress=False)
    del trainer
    expected_start = {1: ("branch point", 1000), 2: ("resumed", 2500)}

    test_x = torch.from_numpy(Trainer(plan.config(Job("dae"))).stream.floats(np.arange(10_000)))
    for s in (1, 2):
        job = Job("dae", s, 1)
        summary = run_job(data, out, job.key)
        assert (summary["started_from"], summary["start_position"]) == expected_start[s]
        scratch = Trainer(plan.config(job), schedule=plan.schedule(job))
        scratch.run(progress=False)
        branched = _network(ov.output_path(plan, out, job))
        assert sorted(branched) == sorted(scratch.params)
        for name, value in scratch.params.items():
            assert torch.equal(torch.from_numpy(branched[name]), value), (s, name)
        # the swap did change the network (the comparison above is not vacuous)
        assert not np.array_equal(branched["W_out"], base["W_out"])
        with h5py.File(ov.output_path(plan, out, job), "r") as f:
            assert np.array_equal(f["probabilities"][...], predict_proba(scratch.params, test_x).numpy())
            assert f.attrs["position"] == plan.n_examples
    # finished: a second call does nothing
    assert run_job(data, out, Job("dae", 1, 1).key) == {"key": "dae/s01-d01",
                                                        "status": "already finished"}


# ---------------------------------------------------------------------------- smoke pipelines
def _cli(*args, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "onlinedeep_cli.main", "ordering-variance", *args],
                          capture_output=True, text=True, env=env, timeout=300, **kw)


@pytest.mark.slow
def test_dry_run_prints_a_measured_eta_and_writes_nothing(tmp_path, mnist_dir):
    out = tmp_path / "ov"
    result = _cli("run", "--out", str(out), "--preset", "smoke", "--dry-run", "--jobs", "2",
                  "--threads", "1")
    assert result.returncode == 0, result.stderr
    plan = OrderingPlan.preset("smoke")
    n_jobs = len(plan.jobs())
    assert f"{n_jobs} jobs, {n_jobs} unfinished" in result.stdout
    assert "ETA" in result.stdout and "with 2 parallel job(s) x 1 thread(s)" in result.stdout
    assert "measured here, end to end" in result.stdout
    assert "supervised" in result.stdout and "pretrain0" in result.stdout
    assert not out.exists()
    # a folder holding another plan: the dry run says what the run would refuse
    save_or_check_plan(OrderingPlan.preset("smoke", n_draws=4), out)
    result = _cli("run", "--out", str(out), "--preset", "smoke", "--dry-run")
    assert result.returncode == 2 and "different experiment" in result.stderr, result.stderr
    assert "--draws: 4 vs 3" in result.stderr and "ETA" not in result.stdout


def _state(plan: OrderingPlan, out: Path) -> tuple[dict[str, int], set[str]]:
    """Finished jobs (key -> output mtime) and started-but-unfinished jobs (snapshot, no output)."""
    finished, started = {}, set()
    for job in plan.jobs():
        output = ov.output_path(plan, out, job)
        if output.exists():
            finished[job.key] = output.stat().st_mtime_ns
        elif RunFolder(ov.run_dir(plan, out, job)).has_snapshot():
            started.add(job.key)
    return finished, started


def _check_report(out: Path, plan: OrderingPlan) -> None:
    result = _cli("report", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert (out / "figure13.png").stat().st_size > 10_000
    table = load_table(out / "ordering_variance.h5")
    assert list(table["condition"]) == [c for c in plan.conditions for _ in range(plan.n_segments)]
    assert np.allclose(table["fraction"], np.tile(np.arange(plan.n_segments) / plan.n_segments, 2))
    assert (table["n_draws"] == plan.n_draws).all()
    assert np.isfinite(table["variance"]).all() and (table["variance"] > 0).all()
    assert ((table["online_error_mean"] > 0) & (table["online_error_mean"] < 0.9)).all()
    mask = os.umask(0)
    os.umask(mask)
    wrong = {str(p.relative_to(out)): oct(p.stat().st_mode & 0o777) for p in out.rglob("*")
             if p.is_file() and p.stat().st_mode & 0o777 != 0o666 & ~mask}
    assert wrong == {}  # every output follows the umask (tempfile's 0600 did not)


@pytest.mark.slow
def test_smoke_pipeline_local_executor_killed_and_rerun(tmp_path, mnist_dir):
    out = tmp_path / "ov"
    plan = OrderingPlan.preset("smoke")
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "onlinedeep_cli.main", "ordering-variance", "run", "--out", str(out),
         "--preset", "smoke", "--jobs", "2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            finished, started = _state(plan, out) if (out / "plan.json").exists() else ({}, set())
            if len(finished) >= 3 and started:
                break
            time.sleep(0.02)
        assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read()}"
    finally:
        # the whole session: the CLI, the Dask nannies and their worker processes
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
    for _ in range(200):  # wait until every process of that session is gone
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    finished, started = _state(plan, out)
    assert 3 <= len(finished) < len(plan.jobs())

    result = _cli("run", "--out", str(out), "--preset", "smoke", "--jobs", "2")
    assert result.returncode == 0, result.stderr
    assert f"{len(finished)} of {len(plan.jobs())} jobs already finished" in result.stdout
    last_run = json.loads((out / "last_run.json").read_text())
    for key, mtime in finished.items():  # skipped, not redone
        assert last_run[key]["value"]["status"] == "already finished"
        assert ov.output_path(plan, out, Job.from_key(key)).stat().st_mtime_ns == mtime
    for key in started:  # continued from the snapshot in their run folder
        assert last_run[key]["value"]["started_from"] == "resumed"
        if not Job.from_key(key).is_stage:
            assert _attrs(ov.output_path(plan, out, Job.from_key(key)))["started_from"] == "resumed"
    assert all(v["status"] == "done" for v in last_run.values())
    _check_report(out, plan)


@pytest.mark.slow
def test_smoke_pipeline_dask_cluster_with_a_failed_job(tmp_path, dask_cluster, mnist_dir):
    out = tmp_path / "ov"
    plan = OrderingPlan.preset("smoke")
    # A damaged snapshot in one job's run folder: that job must fail with a clear error, alone.
    victim = Job("none", 2, 1)
    bad = ov.run_dir(plan, out, victim) / "snapshots" / "snapshot-000000002500.h5"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"this is not an HDF5 file")

    def connect():
        return executors.remote_client(dask_cluster.scheduler_address)

    outcomes = run_experiment(plan, out, connect)
    assert outcomes[victim.key].status == "failed"
    assert "SnapshotError" in outcomes[victim.key].error and str(bad) in outcomes[victim.key].error
    others = [o for key, o in outcomes.items() if key != victim.key]
    assert all(o.status == "done" and o.value["status"] == "finished" for o in others)
    last_run = json.loads((out / "last_run.json").read_text())
    assert last_run[victim.key]["status"] == "failed" and "Traceback" in last_run[victim.key]["traceback"]
    table, _, _ = report(out)
    row = (table["condition"] == "none") & (table["segment"] == 2)
    assert table["n_draws"][row] == [plan.n_draws - 1] and np.isfinite(table["variance"][row]).all()

    # Remove the cause and rerun through the CLI on the same cluster: only the failed job runs.
    finished, _ = _state(plan, out)
    bad.unlink()
    result = _cli("run", "--out", str(out), "--preset", "smoke", "--scheduler",
                  dask_cluster.scheduler_address)
    assert result.returncode == 0, result.stderr
    assert f"{len(plan.jobs()) - 1} of {len(plan.jobs())} jobs already finished" in result.stdout
    assert _state(plan, out)[0] == {**finished, victim.key: _state(plan, out)[0][victim.key]}
    assert _attrs(ov.output_path(plan, out, victim))["started_from"] == "branch point"
    _check_report(out, plan)


def test_reading_a_table_of_another_format_names_the_file(tmp_path):
    from onlinedeep.experiments.ordering_variance import load_table

    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "something else"
    with pytest.raises(ValueError, match=r"other\.h5: not a readable ordering-variance table .*'format'"):
        load_table(path)
