"""``onlinedeep.show`` (issue 15): the numbers behind the pictures of section 6, on small cases.

Engine tests use networks from ``model.init_params`` and tiny runs trained on the synthetic
``FakeStream`` (no MNIST, reference kernel); the command line runs end to end on real MNIST
($ONLINEDEEP_MNIST_DIR, skipped without it).
"""
from __future__ import annotations

import csv
import warnings

import h5py
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from onlinedeep import evaluate, model, snapshot
from onlinedeep.config import RunConfig
from onlinedeep.show import filters, landscape, sources, trajectories
from onlinedeep.show.sources import ShowError
from onlinedeep.training import Trainer

pytestmark = [pytest.mark.usefixtures("single_thread"),
              pytest.mark.filterwarnings("ignore::infinite_mnist.MnistSourceWarning")]


def _params(sizes=(784, 24, 24), seed=0):
    return model.init_params(sizes[0], sizes[1], len(sizes) - 1, seed)


# ------------------------------------------------------------------------------------ filters
@pytest.mark.parametrize("n_inputs, side", [(784, 28), (100, 10)])
def test_filter_tiles_are_the_weights_reshaped(n_inputs, side):
    params = model.init_params(n_inputs, 12, 1, seed=3)
    units = [0, 5, 11]
    tiles = filters.first_layer_tiles(params["W0"], units)
    assert tiles.shape == (3, side, side) and tiles.dtype == np.float32
    W0 = params["W0"].numpy()
    for i, j in enumerate(units):
        np.testing.assert_array_equal(tiles[i], W0[:, j].reshape(side, side))
        assert tiles[i][1, 2] == W0[side + 2, j]  # row-major: pixel r·side + c


def test_filter_tiles_need_a_square_input():
    with pytest.raises(ShowError, match="square number of inputs"):
        filters.first_layer_tiles(model.init_params(50, 4, 1, seed=0)["W0"], [0])


@pytest.mark.parametrize("layer", [2, 3])
def test_activation_maximization_raises_activation_within_the_norm_bound(layer):
    params = model.init_params(784, 20, 3, seed=1)
    units = list(range(8))
    x, act, start = filters.maximize_activation(params, layer, units, norm=5.0, steps=100, seed=2)
    assert x.shape == (8, 784) and x.dtype == np.float32
    assert np.all(np.linalg.norm(x, axis=1) <= 5.0 * (1 + 1e-5))
    assert np.all(act > start)
    np.testing.assert_allclose(filters.unit_activation(params, x, layer, units), act, rtol=1e-5)
    # better than any of 200 random inputs on the same sphere
    rng = np.random.default_rng(0)
    for j in units[:3]:
        r = rng.random((200, 784)).astype(np.float32)
        r *= 5.0 / np.linalg.norm(r, axis=1, keepdims=True)
        assert act[j] > filters.unit_activation(params, r, layer, [j] * 200).max()


def test_activation_maximization_rejects_a_bad_layer():
    with pytest.raises(ValueError, match="hidden layer in 1..2"):
        filters.maximize_activation(_params(), 3, [0])


def test_mosaic_scales_each_tile():
    tiles = np.stack([np.arange(4.0).reshape(2, 2), np.full((2, 2), 7.0)]).astype(np.float32)
    m = filters.mosaic(tiles, n_cols=2, pad=1)
    assert m.shape == (2, 5) and np.isnan(m[:, 2]).all()
    np.testing.assert_allclose(m[:, :2], [[0, 1 / 3], [2 / 3, 1]])
    assert (m[:, 3:] == 0.5).all()


LONG = "dae-3x128-s0-20261203-025604: SDAE pre-training, seed 0"


@pytest.mark.parametrize("rows", [
    # a 3-layer run at two stages above a 1-layer run: the layout the titles once overlapped in
    [(LONG, "after pre-training", 3, 100, 28), (LONG, "after fine-tuning", 3, 100, 28),
     ("int1: no pre-training, seed 0", "after fine-tuning", 1, 64, 28)],
    # one small network, one column: the figure title once ran off both sides
    [("term1: DBN pre-training, seed 0", "at position 922,000 of 1,001,000", 1, 16, 10)],
])
def test_filter_figure_titles_overlap_nothing(rows, monkeypatch, tmp_path):
    rng = np.random.default_rng(0)
    panels = [filters.Panel(run, stage, 0, layer, np.arange(n),
                            rng.random((n, side, side), dtype=np.float32))
              for run, stage, depth, n, side in rows for layer in range(1, depth + 1)]
    drawn = []
    monkeypatch.setattr(sources, "save_figure", lambda fig, path: drawn.append(fig) or path)
    filters._draw(panels, tmp_path / "filters.png")
    fig = drawn[0]
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    axes = [ax for ax in fig.axes if ax.images]
    titles = [ax.title.get_window_extent(renderer) for ax in axes]
    (suptitle,) = [text.get_window_extent(renderer) for text in fig.texts]
    assert fig.bbox.x0 <= suptitle.x0 and suptitle.x1 <= fig.bbox.x1
    boxes = [(f"title {i}", t) for i, t in enumerate(titles)] + [("suptitle", suptitle)] + [
        (f"axes {i}", ax.get_window_extent(renderer)) for i, ax in enumerate(axes)]
    for i, title in enumerate(titles):
        for name, box in boxes:
            if name != f"title {i}" and name != f"axes {i}":
                w = min(title.x1, box.x1) - max(title.x0, box.x0)
                h = min(title.y1, box.y1) - max(title.y0, box.y0)
                assert w <= 1 or h <= 1, f"title {i} overlaps {name} by {w:.0f} x {h:.0f} px"
    plt = sources.pyplot()
    plt.close(fig)


# ------------------------------------------------------------------------------------ landscape
def _examples(n=300, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 784), dtype=np.float32), rng.integers(0, 10, n).astype(np.int64)


def test_landscape_cut_at_zero_is_the_training_error():
    params = _params()
    x, y = _examples()
    ev = evaluate.evaluate(params, x, y)
    v = landscape.gradient_direction(params, x[0], int(y[0]))
    error, nll = landscape.cut(params, v, x, y)
    assert error.shape == nll.shape == (51,)
    i0 = int(np.flatnonzero(landscape.ALPHAS == 0)[0])
    assert error[i0] == ev.error
    assert nll[i0] == pytest.approx(ev.nll, rel=1e-6)
    np.testing.assert_allclose(landscape.ALPHAS[[0, 1, -1]], [-2.5, -2.4, 2.5])
    # away from 0: the network θ + α·v, every parameter moved, evaluated independently
    for i in (0, 40):
        alpha = float(landscape.ALPHAS[i])
        moved = {k: (t.double() + alpha * v[k]).float() if k in v else t for k, t in params.items()}
        ev = evaluate.evaluate(moved, x, y)
        assert abs(error[i] - ev.error) <= 1 / len(y)  # an argmax may flip on float rounding
        assert nll[i] == pytest.approx(ev.nll, rel=1e-4)


def test_directions_have_unit_norm_and_descend_on_their_example():
    params = _params()
    x, y = _examples()
    dirs, rows = landscape.random_directions(params, x, y, 7, seed=4)
    assert len(dirs) == 7 and len(set(rows.tolist())) == 7
    for v, row in zip(dirs, rows):
        assert set(v) == {"W0", "b0", "W1", "b1", "W_out", "b_out"}  # no visible bias c{k}
        assert float(sum((t * t).sum() for t in v.values())) == pytest.approx(1.0, abs=1e-12)
        # v is the gradient of the example's NLL: a small step against it lowers that NLL
        _, here = landscape.cut(params, v, x[row:row + 1], y[row:row + 1], [0.0])
        _, down = landscape.cut(params, v, x[row:row + 1], y[row:row + 1], [-1e-2])
        assert down[0] < here[0]


# ------------------------------------------------------------------------------------ trajectories
def test_isomap_neighbours_give_one_connected_component():
    from scipy.sparse.csgraph import connected_components
    from sklearn.neighbors import kneighbors_graph

    rng = np.random.default_rng(0)
    points = np.concatenate([rng.normal(0, 1, (12, 5)), rng.normal(100, 1, (12, 5))])
    k = trajectories.connected_neighbours(points, start=3)
    graph = kneighbors_graph(points, k)
    assert connected_components(graph, directed=False)[0] == 1
    assert connected_components(kneighbors_graph(points, k - 1), directed=False)[0] > 1
    assert trajectories.connected_neighbours(rng.normal(size=(30, 4)), start=5) >= 5


@pytest.fixture(scope="module")
def fake_runs(tmp_path_factory):
    """Two tiny runs on FakeStream: 2-layer SDAE (snapshot at the end of pre-training) and none."""
    from conftest import FakeStream

    out = tmp_path_factory.mktemp("show-runs")
    common = dict(layers=2, n_hidden=12, chunk_size=100, snapshot_every=200, keep_snapshots=0,
                  window=100, log_every=100, learning_rate=0.1, kernel="reference", device="cpu")
    runs = {"dae": RunConfig(pretrain="dae", unsup_updates=400, sup_updates=600, name="dae",
                             **common),
            "none": RunConfig(pretrain="none", unsup_updates=0, sup_updates=800, seed=1,
                              name="none", **common)}
    for name, cfg in runs.items():
        Trainer(cfg, stream=FakeStream(), run_dir=out / name).run(progress=False)
    return out


def test_gather_orders_snapshots_and_groups_files(fake_runs):
    (dae,) = sources.gather([fake_runs / "dae"])
    assert dae.positions == [0, 200, 400, 600, 800, 1000]
    assert dae.pretrain_end().name == "snapshot-000000000400.pinned.h5"  # the trainer pins it
    assert dae.supervised()[0] == [400, 600, 800, 1000]
    files = sorted((fake_runs / "none" / "snapshots").glob("*.h5"))[::-1]
    runs = sources.gather([*files, fake_runs / "dae"])
    assert [r.positions for r in runs] == [[0, 200, 400, 600, 800], dae.positions]
    assert sources.condition(runs[0].config) == "no pre-training"
    assert sources.condition(dae.config) == "SDAE pre-training"


def test_embedding_has_one_row_per_snapshot_of_both_conditions(fake_runs):
    from conftest import FakeStream

    runs = sources.gather([fake_runs / "dae", fake_runs / "none"])
    x = FakeStream().floats(np.arange(50))
    traj = trajectories.collect(runs, x, progress=False)
    assert traj.vectors.shape == (4 + 5, 500)
    assert set(traj.condition.tolist()) == {"SDAE pre-training", "no pre-training"}
    np.testing.assert_array_equal(traj.progress, [0, 200, 400, 600, 0, 200, 400, 600, 800])
    last = sources.load_params(runs[1].final)
    np.testing.assert_allclose(traj.vectors[-1], model.predict_proba(last, x).numpy().ravel())
    for method in ("tsne", "isomap"):
        xy, info = trajectories.embed(traj.vectors, method, n_neighbors=3)
        assert xy.shape == (9, 2) and np.isfinite(xy).all()


def test_trajectories_need_several_snapshots(fake_runs, tmp_path):
    from conftest import FakeStream

    cfg = RunConfig(pretrain="none", unsup_updates=0, sup_updates=400, n_hidden=8, chunk_size=100,
                    snapshot_every=400, window=100, log_every=100, kernel="reference",
                    device="cpu", name="sparse")
    Trainer(cfg, stream=FakeStream(), run_dir=tmp_path / "sparse").run(progress=False)
    runs = sources.gather([fake_runs / "dae", tmp_path / "sparse"])
    with pytest.raises(ShowError, match=r"sparse: a trajectory needs at least 3 snapshots of "
                                        r"supervised training, found 2 .*--snapshot-every COUNT "
                                        r"--keep-snapshots 0"):
        trajectories.collect(runs, np.zeros((5, 784), np.float32), progress=False)


def test_filter_panels_after_pretraining_and_fine_tuning(fake_runs):
    runs = sources.gather([fake_runs / "dae", fake_runs / "none"])
    panels = filters.filter_panels(runs, units=5, steps=20, progress=False)
    cells = [(p.run.split(":")[0], p.stage, p.layer) for p in panels]
    assert cells == [("dae", "after pre-training", 1), ("dae", "after pre-training", 2),
                     ("dae", "after fine-tuning", 1), ("dae", "after fine-tuning", 2),
                     ("none", "after fine-tuning", 1), ("none", "after fine-tuning", 2)]
    end = snapshot.load(runs[0].pretrain_end())
    np.testing.assert_array_equal(panels[0].tiles, end.params["W0"][:, :5].T.reshape(5, 28, 28))
    assert np.all(panels[1].activation > panels[1].start)


def test_a_missing_pretraining_snapshot_is_a_warning_and_the_final_network_is_drawn(tmp_path):
    from conftest import FakeStream

    cfg = RunConfig(pretrain="dae", unsup_updates=400, sup_updates=200, n_hidden=8, chunk_size=100,
                    snapshot_every=300, keep_snapshots=0, window=100, log_every=100,
                    kernel="reference", device="cpu", name="gap")
    Trainer(cfg, stream=FakeStream(), run_dir=tmp_path / "gap").run(progress=False)
    # a run folder from before the trainer pinned the end of pre-training
    (tmp_path / "gap" / "snapshots" / "snapshot-000000000400.pinned.h5").unlink()
    runs = sources.gather([tmp_path / "gap"])
    assert runs[0].positions == [0, 300, 600] and runs[0].pretrain_end() is None
    with pytest.warns(UserWarning, match="no snapshot at the end of pre-training .*400"):
        panels = filters.filter_panels(runs, units=3, progress=False)
    assert [p.stage for p in panels] == ["after fine-tuning"]


def test_a_run_without_snapshots_is_a_clear_error(tmp_path):
    (tmp_path / "empty" / "snapshots").mkdir(parents=True)
    with pytest.raises(ShowError, match="empty: holds no snapshot file"):
        sources.gather([tmp_path / "empty"])


# ------------------------------------------------------------------------------------ command line
TINY = ["--preset", "smoke", "--units", "24", "--window", "500", "--log-every", "250",
        "--chunk-size", "250", "--snapshot-every", "500", "--keep-snapshots", "0",
        "--kernel", "reference", "--threads", "1", "--no-progress"]


def _invoke(*args):
    from onlinedeep_cli.main import app

    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory, mnist_dir):
    out = tmp_path_factory.mktemp("cli-runs")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, extra in (("sdae", ["--layers", "2", "--pretrain", "dae", "--unsup-updates",
                                      "1000", "--sup-updates", "1000"]),
                            ("plain", ["--pretrain", "none", "--sup-updates", "1500"])):
            r = _invoke("train", *TINY, *extra, "--mnist-dir", mnist_dir, "--out", out,
                        "--name", name)
            assert r.exit_code == 0, r.output
    return out


@pytest.mark.slow
def test_cli_show_end_to_end(cli_runs, mnist_dir, tmp_path):
    from infinite_mnist import InfiniteMNIST, Schedule

    runs = [cli_runs / "sdae", cli_runs / "plain"]
    pics = tmp_path / "pics"
    r = _invoke("show", "filters", *runs, "--out", pics, "--units", "16", "--steps", "30",
                "--no-progress")
    assert r.exit_code == 0, r.output
    with h5py.File(pics / "filters.h5") as f:
        stages = [(f[g].attrs["run"].split(":")[0], f[g].attrs["stage"], f[g].attrs["layer"])
                  for g in f]
        first = f["panel000"]["tiles"][()]
    assert stages[:2] == [("sdae", "after pre-training", 1), ("sdae", "after pre-training", 2)]
    assert ("plain", "after fine-tuning", 1) in stages
    end = snapshot.load(cli_runs / "sdae" / "snapshots" / "snapshot-000000001000.pinned.h5")
    np.testing.assert_array_equal(first, end.params["W0"][:, :16].T.reshape(16, 28, 28))

    r = _invoke("show", "trajectories", *runs, "--out", pics, "--examples", "100",
                "--mnist-dir", mnist_dir, "--no-progress")
    assert r.exit_code == 0, r.output
    with open(pics / "trajectories.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 3 + 4  # positions 1000..2000 and 0..1500, every 500
    assert {row["condition"] for row in rows} == {"SDAE pre-training", "no pre-training"}

    r = _invoke("show", "landscape", *runs, "--out", pics, "--examples", "400", "--directions",
                "3", "--mnist-dir", mnist_dir, "--no-progress")
    assert r.exit_code == 0, r.output
    with open(pics / "landscape.csv") as fh:
        rows = [row for row in csv.DictReader(fh) if float(row["alpha"]) == 0.0]
    assert len(rows) == 2 * 3
    # a missing data folder: the error alone, no progress bar started before it
    r = _invoke("show", "landscape", *runs, "--out", tmp_path / "nowhere", "--mnist-dir",
                tmp_path / "missing")
    assert r.exit_code != 0 and "missing" in r.output and "landscape cuts" not in r.output, r.output
    stream = InfiniteMNIST(mnist_dir=str(mnist_dir))
    for run, row in zip(runs, rows[::3]):
        snapshot_path = sorted((run / "snapshots").glob("*.pinned.h5"))[-1]
        snap = snapshot.load(snapshot_path)
        idx = Schedule.from_dict(snap.schedule).indices(snap.position - 400, 400)
        params = {k: torch.from_numpy(v) for k, v in snap.params.items()}
        ev = evaluate.evaluate(params, stream.floats(idx), stream.labels(idx).astype(np.int64))
        assert float(row["error"]) == pytest.approx(ev.error, abs=1e-9), snapshot_path
    for name in ("filters.png", "trajectories-tsne.png", "trajectories-isomap.png",
                 "landscape.png"):
        assert (pics / name).read_bytes()[:4] == b"\x89PNG"
    assert (pics / "landscape-command.txt").read_text().startswith("onlinedeep ")


def test_cli_show_names_the_missing_snapshots(fake_runs, tmp_path):
    sparse = tmp_path / "sparse"
    (sparse / "snapshots").mkdir(parents=True)
    for p in sorted((fake_runs / "none" / "snapshots").glob("*.pinned.h5")):
        (sparse / "snapshots" / p.name).write_bytes(p.read_bytes())
    r = _invoke("show", "trajectories", sparse, "--out", tmp_path / "pics", "--no-progress")
    assert r.exit_code == 2
    assert "found 2" in r.output and "--snapshot-every COUNT --keep-snapshots 0" in r.output
    assert not (tmp_path / "pics").exists()


@pytest.fixture(scope="module")
def shapeset_runs(tmp_path_factory):
    """Two tiny finite-data runs on the generated Shapeset (no MNIST needed), every epoch kept."""
    from onlinedeep.finite.config import FiniteConfig
    from onlinedeep.finite.train import train

    root = tmp_path_factory.mktemp("shapeset")
    base = dict(dataset="shapeset", n_hidden=12, layers=2, epochs=3, pretrain_epochs=1,
                n_train=150, n_valid=40, n_test=60, learning_rate=0.1, unsup_learning_rate=0.01,
                chunk_size=50, snapshots="epochs", kernel="reference")
    out = {}
    for init in ("uniform", "pretrained"):
        folder = root / init / "s000"
        out[init] = (folder, train(FiniteConfig(**base, init=init), folder))
    return out


def test_finite_runs_are_drawn_on_their_own_data_set(shapeset_runs, tmp_path):
    from onlinedeep.finite.data import load_dataset

    folder, result = shapeset_runs["pretrained"]
    run, = sources.gather([folder])
    assert run.finite is not None and sources.data_name(run) == "shapeset"
    assert run.label.startswith("pretrained/s000: SDAE pre-training")
    data = load_dataset("shapeset", seed=run.finite.data_seed)
    x = sources.test_inputs(run, 60)
    assert x.shape == (60, 100) and np.array_equal(x, data.test.x[:60])
    with pytest.raises(ShowError, match="1..60 test examples of shapeset"):
        sources.test_inputs(run, 61)
    assert sources.test_inputs(run, None).shape == (60, 100)  # the default: the whole test split
    # the training error of the landscape is the run's own training set (n_train = 150)
    tx, ty = sources.training_examples(run, run.final, 10_000)
    assert tx.shape == (150, 100) and np.array_equal(ty, data.train.y[:150])
    out = landscape.show_landscape([folder], tmp_path, directions=2, examples=10_000,
                                   progress=False)
    rows = list(csv.DictReader(open(out[1])))
    at_zero = [float(r["error"]) for r in rows if float(r["alpha"]) == 0.0]
    assert at_zero == [pytest.approx(result.records.rows[-1]["train_error"])] * 2
    assert all(0 <= int(r["example_position"]) < 150 for r in rows)


def test_finite_trajectories_one_row_per_epoch_snapshot(shapeset_runs, tmp_path):
    folders = [f for f, _ in shapeset_runs.values()]
    runs = sources.gather(folders)
    x = sources.test_inputs(runs[0], 40)
    traj = trajectories.collect(runs, x, min_snapshots=3, progress=False)
    # uniform: 3 epochs + start; pretrained: the end of pre-training + 3 epochs
    assert len(traj.run) == 8 and traj.vectors.shape == (8, 40 * 2)
    assert set(traj.condition) == {"no pre-training", "SDAE pre-training"}


def test_an_unreadable_snapshot_is_left_out_of_the_trajectories_with_a_warning(fake_runs, tmp_path):
    import shutil

    shutil.copytree(fake_runs / "none", tmp_path / "none")
    files = sorted((tmp_path / "none" / "snapshots").glob("*.h5"))
    damaged = files[-2]
    damaged.write_bytes(damaged.read_bytes()[:1000])  # truncated
    runs = sources.gather([tmp_path / "none"])
    x = np.zeros((5, 784), np.float32)
    with pytest.warns(sources.SkippedSnapshotWarning, match=damaged.name):
        traj = trajectories.collect(runs, x, progress=False)
    whole = trajectories.collect(sources.gather([fake_runs / "none"]), x, progress=False)
    assert len(traj.run) == len(whole.run) - 1
