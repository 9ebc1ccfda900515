"""OnlineMLP (issue 13): the same weights as `onlinedeep train`, any width and classes, the
scikit-learn and River APIs, save/load, bad input."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from onlinedeep_cli.main import app
from infinite_mnist import InfiniteMNIST, Schedule
from onlinedeep import phases, run_folder
from onlinedeep import snapshot
from onlinedeep.config import ConfigError, RunConfig
from onlinedeep.learner import OnlineMLP

pytestmark = [pytest.mark.usefixtures("single_thread"),
              pytest.mark.filterwarnings("ignore::infinite_mnist.MnistSourceWarning")]

# A small run: 2 layers of 24 units, 300 + 300 pre-training updates, 900 supervised; chunks of 200,
# so chunks end at 200, 300 (a phase boundary), 400, 600, 800, ...
CLI_OPTIONS = ["--layers", "2", "--n-hidden", "24", "--unsup-updates", "600", "--sup-updates", "900",
               "--chunk-size", "200", "--window", "300", "--log-every", "100",
               "--snapshot-every", "400", "--threads", "1", "--device", "cpu", "--no-progress"]
LEARNER_OPTIONS = dict(layers=2, n_hidden=24, window=300, log_every=100, chunk_size=200, threads=1,
                       device="cpu")


def _stream_rows(mnist_dir, total):
    stream = InfiniteMNIST(mnist_dir=mnist_dir)
    idx = Schedule.contiguous(total).indices(0, total)
    return stream.floats(idx), stream.labels(idx)


def _feed_by_phase(net, config, X, y):
    for phase in phases.phases(config):
        rows = slice(phase.start, phase.stop)
        if phase.kind == "pretrain":
            net.pretrain_partial_fit(X[rows], layer=phase.layer)
        else:
            net.partial_fit(X[rows], y[rows], classes=range(10))


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory, mnist_dir):
    out = tmp_path_factory.mktemp("runs")
    runs = {}
    for pretrain in ("dae", "rbm"):
        extra = ["--pretrain", pretrain] + (["--noise", "salt-pepper"] if pretrain == "dae" else
                                            ["--sample-reconstruction", "--cd-k", "2"])
        r = CliRunner().invoke(app, ["train", *CLI_OPTIONS, *extra, "--mnist-dir", str(mnist_dir),
                                     "--out", str(out), "--name", pretrain],
                               catch_exceptions=False)
        assert r.exit_code == 0, r.output
        runs[pretrain] = (out / pretrain, extra, r.output)
    return runs


@pytest.mark.parametrize("pretrain", ["dae", "rbm"])
def test_learner_gives_the_cli_runs_weights_bit_for_bit(cli_runs, mnist_dir, pretrain):
    run_dir, extra, _ = cli_runs[pretrain]
    snap = snapshot.load(run_folder.latest(run_dir / "snapshots"))
    cfg = snap.config
    X, y = _stream_rows(mnist_dir, cfg.total_updates)
    net = OnlineMLP(pretrain=pretrain, noise=cfg.noise, cd_k=cfg.cd_k,
                    sample_reconstruction=cfg.sample_reconstruction, **LEARNER_OPTIONS)
    _feed_by_phase(net, cfg, X, y)
    assert net.position_ == snap.position == 1500
    assert sorted(net.params_) == sorted(snap.params)
    for name, value in snap.params.items():
        np.testing.assert_array_equal(net.params_[name].numpy(), value, err_msg=name)
    # the online error and its window too, and the description of what was done
    np.testing.assert_array_equal(net.metrics_.prequential.errors.buffer,
                                  snap.metrics["errors"]["buffer"])
    assert net.online_error == pytest.approx(
        snap.metrics["errors"]["total"] / 300, abs=0)
    mine = net.to_config()
    for field in ("layers", "n_hidden", "pretrain", "pretrain_layers", "unsup_updates",
                  "sup_updates", "noise", "cd_k", "sample_reconstruction", "seed"):
        assert getattr(mine, field) == getattr(cfg, field), field
    assert phases.layer_updates(mine) == phases.layer_updates(cfg)


def test_learner_series_equals_the_runs(cli_runs, mnist_dir, tmp_path):
    run_dir, _, _ = cli_runs["dae"]
    snap = snapshot.load(run_folder.latest(run_dir / "snapshots"))
    X, y = _stream_rows(mnist_dir, 1500)
    net = OnlineMLP(noise="salt-pepper", **LEARNER_OPTIONS)
    _feed_by_phase(net, snap.config, X, y)
    saved = snapshot.load(net.save(tmp_path / "net.h5"))  # save records the end, as a run does
    theirs, mine = snap.metrics["series"], saved.metrics["series"]
    for field in ("position", "layer", "online_error", "nll", "reconstruction"):
        np.testing.assert_array_equal(getattr(mine, field), getattr(theirs, field), err_msg=field)


def test_other_groupings_of_rows_agree_to_float_rounding(mnist_dir):
    X, y = _stream_rows(mnist_dir, 1100)
    ref = OnlineMLP(**LEARNER_OPTIONS)
    ref.pretrain_partial_fit(X[:300], layer=0)
    ref.pretrain_partial_fit(X[300:600], layer=1)
    ref.partial_fit(X[600:], y[600:], classes=range(10))
    net = OnlineMLP(n_classes=10, **LEARNER_OPTIONS)
    for i in range(0, 300, 37):
        net.pretrain_partial_fit(X[i:min(i + 37, 300)])
    net.pretrain_partial_fit(X[300:600], layer=1)
    for i in range(600, 1100):
        net.learn_one(X[i], int(y[i]))
    assert net.position_ == ref.position_ and net.layer_updates_ == ref.layer_updates_ == [300, 300]
    for name in ref.params_:
        torch.testing.assert_close(net.params_[name], ref.params_[name], rtol=0, atol=2e-6)
    assert net.metrics_.prequential.n_errors == ref.metrics_.prequential.n_errors


# ------------------------------------------------------------------------- any width, any classes
def _shapes(n, seed=0, n_inputs=100, n_classes=3):
    """A small Shapeset-like problem: 100 inputs in [0, 1], 3 classes, learnable."""
    rng = np.random.default_rng(seed)
    protos = (np.random.default_rng(99).random((n_classes, n_inputs)) < 0.3).astype(np.float32)
    y = rng.integers(0, n_classes, n)
    X = np.clip(protos[y] * 0.8 + rng.random((n, n_inputs)) * 0.3, 0, 1).astype(np.float32)
    return X, y


def test_any_width_and_classes_learn_and_round_trip(tmp_path):
    X, y = _shapes(3000)
    net = OnlineMLP(layers=2, n_hidden=32, window=500, log_every=500, chunk_size=250, threads=1,
                    learning_rate=0.1)
    net.pretrain_partial_fit(X[:400], layer=0).pretrain_partial_fit(X[400:800], layer=1)
    net.partial_fit(X[800:], y[800:], classes=[0, 1, 2])
    assert net.n_features_in_ == 100 and net.classes_.tolist() == [0, 1, 2]
    assert net.params_["W0"].shape == (100, 32) and net.params_["W_out"].shape == (32, 3)
    assert net.online_error < 0.2  # chance is 2/3
    Xt, yt = _shapes(500, seed=1)
    assert net.score(Xt, yt) > 0.8
    path = net.save(tmp_path / "shapes.h5")
    cfg = snapshot.load(path).config
    assert (cfg.n_inputs, cfg.n_classes) == (100, 3)
    back = OnlineMLP.load(path)
    np.testing.assert_array_equal(back.predict_proba(Xt), net.predict_proba(Xt))
    assert back.layer_updates_ == [400, 400] and back.position_ == 3000
    # continuing the loaded copy is continuing the original
    net.partial_fit(Xt, yt)
    back.partial_fit(Xt, yt)
    for name in net.params_:
        torch.testing.assert_close(back.params_[name], net.params_[name], rtol=0, atol=0)
    assert back.online_error == net.online_error


def test_labels_of_any_kind_and_river_dicts(tmp_path):
    X, y = _shapes(1200, n_inputs=20)
    names = np.array(["circle", "square", "triangle"])
    net = OnlineMLP(n_hidden=16, window=200, chunk_size=100, threads=1, learning_rate=0.2)
    for i in range(40):
        net.partial_fit(X[i:i + 1], names[y[i:i + 1]], classes=names)
    feats = [f"f{j}" for j in range(20)]
    for i in range(40, 1200):
        net.learn_one({f: float(v) for f, v in zip(feats, X[i]) if v > 0}, names[y[i]])
    assert net.feature_names_in_[:2] == ["f0", "f1"] or set(net.feature_names_in_) <= set(feats)
    x0 = dict(zip(net.feature_names_in_, X[0][[feats.index(f) for f in net.feature_names_in_]]))
    proba = net.predict_proba_one(x0)
    assert set(proba) == set(names) and abs(sum(proba.values()) - 1) < 1e-5
    assert net.predict_one(x0) == max(proba, key=proba.get)
    assert net.online_error < 0.3
    back = OnlineMLP.load(net.save(tmp_path / "named.h5"))
    assert back.classes_.tolist() == names.tolist()
    assert back.predict_one(x0) == net.predict_one(x0)
    with pytest.raises(ValueError, match="expected a file path, found an empty one"):
        net.save("")   # Path("") would be the current folder


def test_bad_input_is_refused_with_a_clear_error():
    X, y = _shapes(10)
    net = OnlineMLP(n_hidden=8, n_classes=3, threads=1)
    with pytest.raises(ValueError, match=r"expected inputs in \[0, 1\].*found \d+ at row 0, column 0.*divide by 255"):
        net.partial_fit((X * 255).astype(np.uint8), y)
    with pytest.raises(ValueError, match=r"found nan at row 2, column 5"):
        bad = X.copy()
        bad[2, 5] = np.nan
        net.partial_fit(bad, y)
    assert net.position_ == 0 and net.params_ is None  # nothing trained, nothing created
    net.partial_fit(X, y)
    with pytest.raises(ValueError, match="expected 100 columns"):
        net.partial_fit(X[:, :50], y)
    with pytest.raises(ValueError, match="label 7 at row 0 is not one of the classes"):
        net.partial_fit(X[:1], [7])
    with pytest.raises(ValueError, match="fine-tuning has started"):
        net.pretrain_partial_fit(X)
    with pytest.raises(ValueError, match="classes: unknown on the first call"):
        OnlineMLP(n_hidden=8).partial_fit(X, y)
    with pytest.raises(ValueError, match="greedy pre-training goes bottom-up; expected layer 0"):
        OnlineMLP(layers=3, n_hidden=8).pretrain_partial_fit(X, layer=1)
    with pytest.raises(ValueError, match="pretrain='none'"):
        OnlineMLP(n_hidden=8, pretrain="none").pretrain_partial_fit(X)
    with pytest.raises(ConfigError, match="learning_rate"):
        OnlineMLP(learning_rate=-1)
    with pytest.raises(ConfigError, match="^n_hidden: expected an integer >= 1, found 0"):
        OnlineMLP(n_hidden=0)
    with pytest.raises(ValueError, match="no classifier yet"):
        OnlineMLP(n_hidden=8).predict(X)
    with pytest.raises(snapshot.SnapshotError, match="found an empty path"):  # not the current folder
        OnlineMLP.load("")


def test_pretraining_before_the_classes_are_known_keeps_the_initial_weights():
    """The softmax layer made once the classes are known is the one a network made with them
    would have: the hidden weights come first from the seeded generator."""
    X, y = _shapes(300)
    late = OnlineMLP(n_hidden=8, threads=1, chunk_size=100)
    late.pretrain_partial_fit(X[:100])
    late.partial_fit(X[100:], y[100:], classes=[0, 1, 2])
    early = OnlineMLP(n_hidden=8, threads=1, chunk_size=100, n_classes=3)
    early.pretrain_partial_fit(X[:100])
    early.partial_fit(X[100:], y[100:])
    for name in early.params_:
        torch.testing.assert_close(late.params_[name], early.params_[name], rtol=0, atol=0)


def test_scikit_learn_clone_and_params():
    sklearn = pytest.importorskip("sklearn")
    from sklearn.base import clone

    net = OnlineMLP(layers=2, n_hidden=8, learning_rate=0.1, n_classes=3)
    copy = clone(net)
    assert copy.get_params() == net.get_params() and copy is not net
    copy.set_params(n_hidden=12)
    assert copy.n_hidden_ == 12 and net.n_hidden_ == 8
    X, y = _shapes(20)
    copy.partial_fit(X, y)
    with pytest.warns(UserWarning, match="set_params discards the trained network"):
        copy.set_params(learning_rate=0.01)
    assert copy.position_ == 0 and copy.params_ is None
    assert OnlineMLP(layers=1).n_hidden_ == 2000 and OnlineMLP(layers=3).n_hidden_ == 1000
    assert OnlineMLP().get_params()["n_hidden"] is None
    assert sklearn.__version__


def test_run_config_width_and_classes():
    cfg = RunConfig(n_inputs=100, n_classes=3, n_hidden=8, sup_updates=10)
    assert snapshot.param_shapes(cfg)["W0"] == (100, 8)
    assert snapshot.param_shapes(cfg)["W_out"] == (8, 3)
    with pytest.raises(ConfigError, match="n_classes: expected an integer >= 2, found 1"):
        RunConfig(n_classes=1)
    with pytest.raises(ConfigError, match="n_inputs: expected an integer >= 1"):
        RunConfig(n_inputs=0)
    old = RunConfig().to_dict()
    del old["n_inputs"], old["n_classes"]  # a configuration written before these fields existed
    assert (RunConfig.from_dict(old).n_inputs, RunConfig.from_dict(old).n_classes) == (784, 10)


def test_automatic_threads_adapt_between_chunks_and_keep_the_weights(monkeypatch):
    """threads=0 gives the learner the training loop's adaptive controller (not a fixed count that
    collapses when another process holds a core); the weights equal those of one thread."""
    from onlinedeep import threads as thread_policy

    monkeypatch.delenv("ONLINEDEEP_NUMBA_THREADS", raising=False)
    monkeypatch.setattr(thread_policy, "decide",
                        lambda role, requested=0, **kw: requested or 2 if role == "kernel" else 1)
    rng = np.random.default_rng(5)
    X = rng.random((600, 20)).astype(np.float32)
    y = rng.integers(0, 3, 600)
    nets = {t: OnlineMLP(n_hidden=16, n_classes=3, chunk_size=100, threads=t, kernel="numba",
                         pretrain="dae") for t in (0, 1)}
    for net in nets.values():
        net.pretrain_partial_fit(X[:300])
        net.partial_fit(X[300:], y[300:])
    control = nets[0]._kernel_threads
    assert isinstance(control, thread_policy.KernelThreads) and control.n_max == 2
    assert nets[1]._kernel_threads is None
    for name, value in nets[1].params_.items():
        assert torch.equal(nets[0].params_[name], value), name


def test_a_fitted_two_thread_learner_pickles_and_keeps_learning():
    import pickle

    rng = np.random.default_rng(0)
    X = rng.random((50, 20), dtype=np.float32)
    y = rng.integers(0, 3, 50)
    net = OnlineMLP(n_hidden=8, threads=2).partial_fit(X, y, classes=[0, 1, 2])
    twin = pickle.loads(pickle.dumps(net))
    net.partial_fit(X, y)
    twin.partial_fit(X, y)
    for key, value in net.params_.items():
        np.testing.assert_array_equal(value.numpy(), twin.params_[key].numpy())
