"""progressive_val_score (issue 13): the online error of `onlinedeep train` on the same sequence;
River's predict-score-learn order for other models."""
from __future__ import annotations

import math

import numpy as np
import pytest
from typer.testing import CliRunner

from onlinedeep_cli.main import app
from infinite_mnist import InfiniteMNIST, Schedule
from onlinedeep import run_folder
from onlinedeep import snapshot
from onlinedeep.learner import OnlineMLP
from onlinedeep.progressive import progressive_val_score

pytestmark = [pytest.mark.usefixtures("single_thread"),
              pytest.mark.filterwarnings("ignore::infinite_mnist.MnistSourceWarning")]

OPTIONS = dict(n_hidden=24, window=300, log_every=100, chunk_size=200, threads=1, device="cpu")


@pytest.fixture(scope="module")
def dae_run(tmp_path_factory, mnist_dir):
    out = tmp_path_factory.mktemp("runs")
    r = CliRunner().invoke(app, ["train", "--n-hidden", "24", "--unsup-updates", "400",
                                 "--sup-updates", "1200", "--chunk-size", "200", "--window", "300",
                                 "--log-every", "100", "--snapshot-every", "400", "--threads", "1",
                                 "--device", "cpu", "--no-progress", "--mnist-dir", str(mnist_dir),
                                 "--out", str(out), "--name", "dae"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    snap = snapshot.load(run_folder.latest(out / "dae" / "snapshots"))
    stream = InfiniteMNIST(mnist_dir=mnist_dir)
    idx = Schedule.contiguous(1600).indices(0, 1600)
    return snap, stream.floats(idx), stream.labels(idx)


def test_same_online_error_and_series_as_the_run(dae_run):
    snap, X, y = dae_run
    net = OnlineMLP(**OPTIONS)
    net.pretrain_partial_fit(X[:400])
    result = progressive_val_score(net, X[400:], y[400:], window=300, log_every=100,
                                   classes=range(10))
    assert result.n_examples == 1200
    assert result.online_error == snap.metrics["errors"]["total"] / 300
    assert result.cumulative_error == snap.metrics["n_errors"] / 1200
    theirs = snap.metrics["series"].supervised()
    for field in ("position", "online_error", "nll"):
        np.testing.assert_array_equal(getattr(result.series, field), getattr(theirs, field),
                                      err_msg=field)
    assert result.online_error < 0.9  # it learnt something


class RiverStyle:
    """Only River's methods, around an OnlineMLP: the generic, example-by-example path."""

    def __init__(self, net):
        self.net = net

    def predict_proba_one(self, x):
        return self.net.predict_proba_one(x)

    def learn_one(self, x, y):
        self.net.learn_one(x, y)


def test_generic_path_predicts_scores_then_learns(dae_run):
    _, X, y = dae_run
    fast = progressive_val_score(OnlineMLP(n_classes=10, pretrain="none", **OPTIONS),
                                 X[:600], y[:600], window=300, log_every=100)
    slow = progressive_val_score(RiverStyle(OnlineMLP(n_classes=10, n_inputs=784, pretrain="none",
                                                      **OPTIONS)),
                                 X[:600], y[:600], window=300, log_every=100)
    np.testing.assert_array_equal(slow.errors, fast.errors)
    np.testing.assert_allclose(slow.nll, fast.nll, rtol=1e-4, atol=1e-5)
    assert slow.online_error == fast.online_error


def test_a_model_that_cannot_predict_yet_scores_a_uniform_guess():
    sklearn = pytest.importorskip("sklearn")
    from sklearn.linear_model import SGDClassifier

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 400)
    X = np.eye(3)[y] * 0.8 + rng.random((400, 3)) * 0.2
    result = progressive_val_score(SGDClassifier(loss="log_loss", random_state=0), X, y,
                                   window=100, log_every=100, classes=[0, 1, 2])
    assert result.errors[0] == 1 and result.nll[0] == pytest.approx(math.log(3))
    assert result.online_error < 0.2 and sklearn.__version__


def test_river_model_gives_rivers_own_progressive_accuracy():
    pytest.importorskip("river")
    from river import evaluate, metrics, tree

    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 300)
    rows = [{"a": float(label == 0) * 0.9 + rng.random() * 0.1, "b": float(label == 1) * 0.9}
            for label in labels]
    ours = progressive_val_score(tree.HoeffdingTreeClassifier(), rows, labels, window=1000,
                                 log_every=1000)
    accuracy = evaluate.progressive_val_score(list(zip(rows, labels.tolist())),
                                              tree.HoeffdingTreeClassifier(), metrics.Accuracy())
    # River leaves out an example the model cannot predict yet (the first); ours scores it wrong
    assert ours.errors[0] == 1
    assert 1 - ours.errors[1:].mean() == pytest.approx(accuracy.get(), abs=1e-12)


def test_lengths_must_match():
    with pytest.raises(ValueError, match="expected 3 labels"):
        progressive_val_score(OnlineMLP(n_hidden=4, n_classes=2), np.zeros((3, 5)), [0, 1])


def test_river_accepts_an_online_mlp_after_registration():
    pytest.importorskip("river")
    from river import evaluate, metrics

    from onlinedeep.learner import register_with_river

    register_with_river()
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 300)
    X = np.eye(3)[labels] * 0.8 + rng.random((300, 3)) * 0.2
    rows = [dict(zip("abc", row)) for row in X]
    kwargs = dict(n_hidden=8, n_classes=3, n_inputs=3, threads=1, learning_rate=0.3, chunk_size=50)
    accuracy = evaluate.progressive_val_score(list(zip(rows, labels.tolist())), OnlineMLP(**kwargs),
                                              metrics.Accuracy())
    ours = progressive_val_score(OnlineMLP(**kwargs), X, labels)
    # River predicts with predict_one (PyTorch's forward), ours inside the kernel: same errors
    assert accuracy.get() == pytest.approx(1 - ours.cumulative_error, abs=1 / 300)
    assert accuracy.get() > 0.6


def test_classes_default_to_the_labels_of_y():
    rng = np.random.default_rng(0)
    X = rng.random((400, 20))
    y = (X[:, 0] > 0.5).astype(int)
    result = progressive_val_score(OnlineMLP(n_hidden=16, pretrain="none", learning_rate=0.1), X, y,
                                   window=100, log_every=100)
    assert result.n_examples == 400 and result.online_error < 0.5
    sklearn = pytest.importorskip("sklearn.linear_model")
    result = progressive_val_score(sklearn.SGDClassifier(loss="log_loss", random_state=0), X, y,
                                   window=100, log_every=100)
    assert result.n_examples == 400 and result.online_error < 0.5
