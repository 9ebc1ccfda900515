"""Counter-based random draws (onlinedeep.noise)."""

import json
import subprocess
import sys

import numpy as np
import pytest

from onlinedeep import noise


@pytest.mark.parametrize("level,fan_in,expected", [
    (0.0, 784, 0), (0.25, 784, 196), (0.1, 784, 78), (0.4, 1000, 400), (1.0, 30, 30),
    (0.25, 2, 1),   # 0.5 rounds up, not to even
    (0.25, 10, 3),  # 2.5 rounds up
    (0.05, 10, 1),
])
def test_corruption_count(level, fan_in, expected):
    assert noise.corruption_count(level, fan_in) == expected


@pytest.mark.parametrize("level,fan_in", [(-0.1, 10), (1.5, 10), (float("nan"), 10), (0.1, 0)])
def test_corruption_count_rejects(level, fan_in):
    with pytest.raises(ValueError, match="must be"):
        noise.corruption_count(level, fan_in)


@pytest.mark.parametrize("n_inputs,n_corrupt", [(784, 196), (784, 0), (784, 784), (30, 12), (1, 1)])
def test_masking_drops_exactly_n_corrupt(n_inputs, n_corrupt):
    keep = noise.masking_keep(7, np.arange(500, 900), 0, n_inputs, n_corrupt)
    assert keep.shape == (400, n_inputs) and keep.dtype == np.bool_
    assert np.all((~keep).sum(axis=1) == n_corrupt)


def test_masking_subsets_are_uniform():
    # Each input is dropped with probability n_corrupt / n_inputs, and rows differ.
    keep = noise.masking_keep(1, np.arange(20000), 2, 20, 5)
    freq = (~keep).mean(axis=0)
    np.testing.assert_allclose(freq, 0.25, atol=0.02)
    # pairs of inputs dropped together: 5·4/(20·19) for a uniform subset
    both = ((~keep[:, 3]) & (~keep[:, 17])).mean()
    assert both == pytest.approx(20 / 380, abs=0.006)
    assert len({row.tobytes() for row in keep[:200]}) > 190


def test_draws_are_independent_of_chunking():
    whole = noise.masking_keep(3, np.arange(100), 1, 50, 20)
    parts = np.concatenate([noise.masking_keep(3, np.arange(a, b), 1, 50, 20)
                            for a, b in [(0, 1), (1, 37), (37, 38), (38, 100)]])
    np.testing.assert_array_equal(whole, parts)
    order = np.random.default_rng(0).permutation(100)
    np.testing.assert_array_equal(noise.masking_keep(3, order, 1, 50, 20), whole[order])

    u = noise.uniforms(3, np.arange(100), noise.PURPOSE_RBM_HIDDEN, 0, 64)
    u_parts = np.concatenate([noise.uniforms(3, np.arange(a, a + 10), noise.PURPOSE_RBM_HIDDEN, 0, 64)
                              for a in range(0, 100, 10)])
    np.testing.assert_array_equal(u, u_parts)
    # more draws per position extend the row, they do not change its beginning
    np.testing.assert_array_equal(u, noise.uniforms(3, np.arange(100), noise.PURPOSE_RBM_HIDDEN, 0, 200)[:, :64])

    keep, values = noise.salt_pepper(3, np.arange(100), 0, 50, 20)
    k2, v2 = noise.salt_pepper(3, np.arange(60, 100), 0, 50, 20)
    np.testing.assert_array_equal(keep[60:], k2)
    np.testing.assert_array_equal(values[60:], v2)


def test_draws_are_deterministic_and_depend_on_every_coordinate():
    pos = np.arange(1000, 1050)
    base = noise.uniforms(11, pos, noise.PURPOSE_RBM_HIDDEN, 0, 100)
    np.testing.assert_array_equal(base, noise.uniforms(11, pos, noise.PURPOSE_RBM_HIDDEN, 0, 100))
    others = [
        noise.uniforms(12, pos, noise.PURPOSE_RBM_HIDDEN, 0, 100),       # seed
        noise.uniforms(11, pos + 1, noise.PURPOSE_RBM_HIDDEN, 0, 100),   # position
        noise.uniforms(11, pos, noise.PURPOSE_RBM_VISIBLE, 0, 100),      # purpose
        noise.uniforms(11, pos, noise.PURPOSE_RBM_HIDDEN, 1, 100),       # layer
    ]
    for other in others:
        # independent uniforms coincide with probability 2**-24 each
        assert (other == base).mean() < 0.001
        assert abs(np.corrcoef(other.ravel(), base.ravel())[0, 1]) < 0.03
    # rows of consecutive positions are not shifted copies of each other
    assert (base[1:, :-1] == base[:-1, 1:]).mean() < 0.001

    k0 = noise.masking_keep(11, pos, 0, 100, 30)
    for k in (noise.masking_keep(12, pos, 0, 100, 30), noise.masking_keep(11, pos, 1, 100, 30),
              noise.salt_pepper(11, pos, 0, 100, 30)[0]):
        assert (k != k0).any(axis=1).all()
    # seeds beyond 32 bits, differing only in high bits, still differ
    hi = noise.uniforms(2**40 + 5, pos, 1, 0, 10)
    assert (hi != noise.uniforms(5, pos, 1, 0, 10)).all(axis=1).any()


def test_uniforms_look_uniform():
    u = noise.uniforms(0, np.arange(2000), noise.PURPOSE_RBM_VISIBLE, 3, 500)
    assert u.dtype == np.float32 and u.shape == (2000, 500)
    assert u.min() >= 0.0 and u.max() < 1.0
    np.testing.assert_array_equal(u * 2**24, np.floor(u * 2**24))  # multiples of 2**-24
    assert u.mean() == pytest.approx(0.5, abs=0.002)
    assert u.var() == pytest.approx(1 / 12, abs=0.001)
    counts = np.histogram(u, bins=100, range=(0, 1))[0]
    expected = u.size / 100
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 200  # 99 degrees of freedom: mean 99, sd 14
    # neighbouring draws uncorrelated
    assert abs(np.corrcoef(u[:, :-1].ravel(), u[:, 1:].ravel())[0, 1]) < 0.01


def test_salt_pepper_values():
    keep, values = noise.salt_pepper(4, np.arange(3000), 0, 100, 40)
    assert keep.dtype == np.bool_ and values.dtype == np.float32 and values.shape == keep.shape
    assert np.all((~keep).sum(axis=1) == 40)
    assert np.all(values[keep] == 0.0)
    dropped = values[~keep]
    assert set(np.unique(dropped)) <= {0.0, 1.0}
    assert dropped.mean() == pytest.approx(0.5, abs=0.01)


@pytest.mark.parametrize("call,match", [
    (lambda: noise.masking_keep(0, np.array([3, -1]), 0, 10, 2), "positions must be >= 0"),
    (lambda: noise.masking_keep(0, np.arange(3), 0, 10, 11), "n_corrupt"),
    (lambda: noise.masking_keep(-1, np.arange(3), 0, 10, 1), "seed"),
    (lambda: noise.masking_keep(2**64, np.arange(3), 0, 10, 1), "seed"),
    (lambda: noise.uniforms(1.5, np.arange(3), 1, 0, 4), "seed"),
    (lambda: noise.uniforms(True, np.arange(3), 1, 0, 4), "seed"),
    (lambda: noise.masking_keep(0, np.arange(3.0), 0, 10, 1), "integer array"),
    (lambda: noise.uniforms(0, np.arange(3), 1, -2, 4), "layer"),
    (lambda: noise.uniforms(0, np.zeros((2, 2), dtype=np.int64), 1, 0, 4), "1-d"),
])
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_every_seed_works_in_any_order_in_one_process():
    # Same class of bug as the stream's hash key: a seed reaching a numba function as a Python int
    # fixes its type at the first call. A fresh process, both orders, every draw function.
    code = (
        "import json, sys, hashlib, numpy as np\n"
        "from onlinedeep import noise\n"
        "pos = np.array([0, 5, 2**40], np.int64)\n"
        "seeds = json.loads(sys.argv[1])\n"
        "out = {}\n"
        "for order in (seeds, seeds[::-1]):\n"
        "    for s in order:\n"
        "        a = noise.uniforms(s, pos, noise.PURPOSE_RBM_HIDDEN, 1, 7).tobytes()\n"
        "        a += noise.masking_keep(s, pos, 0, 20, 5).tobytes()\n"
        "        a += b''.join(x.tobytes() for x in noise.salt_pepper(s, pos, 2, 20, 5))\n"
        "        out.setdefault(str(s), set()).add(hashlib.sha256(a).hexdigest())\n"
        "print(json.dumps({k: len(v) for k, v in out.items()}))\n"
    )
    seeds = [0, 3, 2**63 - 1, 2**63, 2**64 - 1]
    res = subprocess.run([sys.executable, "-c", code, json.dumps(seeds)], capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    counts = json.loads(res.stdout)
    assert len(counts) == len(seeds) and set(counts.values()) == {1}
