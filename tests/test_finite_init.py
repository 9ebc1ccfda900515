"""Initialisation from marginal histograms (paper 7.1, Table 1)."""
from __future__ import annotations

import numpy as np
import torch

from onlinedeep.finite.init import histogram_params, sample_histogram, uniform_params


def _pretrained(seed=0):
    rng = np.random.default_rng(seed)
    base = uniform_params(30, 40, 2, seed, n_classes=3)
    fake = {k: v.clone() for k, v in base.items()}
    # fat-tailed weights, as after pre-training (footnote 12), and spread biases
    fake["W0"] = torch.from_numpy(rng.standard_t(3, size=(30, 40)).astype(np.float32))
    fake["b0"] = torch.from_numpy(rng.normal(-1.0, 0.3, size=40).astype(np.float32))
    fake["W1"] = torch.from_numpy(rng.laplace(0, 0.2, size=(40, 40)).astype(np.float32))
    fake["b1"] = torch.from_numpy(rng.normal(0.5, 0.1, size=40).astype(np.float32))
    return fake, base


def test_sample_histogram_matches_quantiles():
    rng = np.random.default_rng(1)
    values = rng.standard_t(3, size=20_000)
    drawn = sample_histogram(values, 20_000, np.random.default_rng(2), bins=100)
    qs = [0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99]
    width = (values.max() - values.min()) / 100   # a draw is exact up to its bin
    assert np.allclose(np.quantile(drawn, qs), np.quantile(values, qs), atol=width)
    assert not np.allclose(np.quantile(drawn, qs), np.quantile(2 * values, qs), atol=width)
    assert drawn.min() >= values.min() and drawn.max() <= values.max()
    assert np.all(sample_histogram(np.full(5, 0.25), 7, rng) == 0.25)


def test_histogram_params_shapes_marginals_and_what_is_kept():
    pre, base = _pretrained()
    new = histogram_params(pre, base, 2, seed=5, bins=50)
    assert set(new) == set(base)
    for k in base:
        assert new[k].shape == base[k].shape and new[k].dtype == torch.float32
    for name in ("W0", "b0", "W1", "b1"):
        a, b = new[name].numpy().ravel(), pre[name].numpy().ravel()
        assert not np.array_equal(a, b)
        assert abs(np.median(a) - np.median(b)) < 0.2 * (b.std() + 1e-9) + 0.05
        assert abs(a.std() - b.std()) < 0.25 * b.std()
    for name in ("c0", "c1", "W_out", "b_out"):   # not pre-trained: the uniform initialisation
        assert torch.equal(new[name], base[name])
    only_bottom = histogram_params(pre, base, 1, seed=5, bins=50)
    assert torch.equal(only_bottom["W1"], base["W1"]) and torch.equal(only_bottom["W0"], new["W0"])


def test_histogram_draws_ignore_positions():
    """Independent of position: a permuted source gives exactly the same draws (the histogram is
    all that is used), and the draws are uncorrelated with the source's values."""
    pre, base = _pretrained()
    perm = {k: v.clone() for k, v in pre.items()}
    g = np.random.default_rng(3)
    perm["W0"] = torch.from_numpy(g.permutation(pre["W0"].numpy().ravel()).reshape(30, 40))
    a = histogram_params(pre, base, 2, seed=9)
    b = histogram_params(perm, base, 2, seed=9)
    assert torch.equal(a["W0"], b["W0"])
    corr = np.corrcoef(a["W0"].numpy().ravel(), pre["W0"].numpy().ravel())[0, 1]
    assert abs(corr) < 0.1
    c = histogram_params(pre, base, 2, seed=10)
    assert not torch.equal(a["W0"], c["W0"])
    assert torch.equal(a["W0"], histogram_params(pre, base, 2, seed=9)["W0"])


def test_histogram_run_matches_pretrained_marginals(tmp_path):
    """A histogram run draws from the pre-training of the same seed (own or a snapshot's)."""
    from onlinedeep.finite.config import FiniteConfig
    from onlinedeep.finite.train import train

    common = dict(dataset="shapeset", n_hidden=10, layers=1, epochs=1, pretrain_epochs=1,
                  n_train=100, n_valid=30, n_test=30, kernel="reference", chunk_size=50)
    pre = train(FiniteConfig(init="pretrained", **common), tmp_path / "pre")
    snap = sorted((tmp_path / "pre" / "snapshots").iterdir())[0]   # end of pre-training
    own = train(FiniteConfig(init="histogram", **common), tmp_path / "own")
    given = train(FiniteConfig(init="histogram", histogram_source=str(snap), **common),
                  tmp_path / "given")
    assert len(own.records.supervised()) == len(given.records.supervised()) == 1
    assert given.config.engine_config().unsup_updates == 0   # no pre-training of its own
    for r in (own, given):
        assert r.records.last()["test_error"] <= 1.0
