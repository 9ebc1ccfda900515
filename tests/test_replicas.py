"""Replicas: R models side by side give exactly the weights of R separate single-model runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from onlinedeep import noise
from onlinedeep.kernels.numba_cpu import NumbaKernel
from onlinedeep.kernels.reference import ReferenceKernel
from onlinedeep.kernels.replicas import Replicas
from onlinedeep.model import clone_params, init_params

from kernel_testdata import mnist_inputs


def _streams(R, n):
    x, y = mnist_inputs(R * n)
    return [x[r * n:(r + 1) * n] for r in range(R)], [y[r * n:(r + 1) * n] for r in range(R)]


def test_supervised_replicas_are_bit_identical_to_separate_runs():
    R, n = 4, 80
    xs, ys = _streams(R, n)
    starts = [init_params(784, 24, 2, seed=s) for s in range(R)]
    models = [clone_params(p) for p in starts]
    with Replicas(models, n_workers=2) as reps:
        for lo in (0, 50):  # two chunks
            hi = n if lo else 50
            got = reps.supervised([x[lo:hi] for x in xs], [y[lo:hi] for y in ys],
                                  learning_rate=0.1, l2=1e-4)
    single = NumbaKernel(n_threads=1)
    for r in range(R):
        alone = clone_params(starts[r])
        single.supervised(alone, xs[r][:50], ys[r][:50], learning_rate=0.1, l2=1e-4)
        errs, nll = single.supervised(alone, xs[r][50:], ys[r][50:], learning_rate=0.1, l2=1e-4)
        for key in alone:
            assert torch.equal(models[r][key], alone[key]), f"replica {r}, {key}"
        assert torch.equal(got[r][0], errs) and torch.equal(got[r][1], nll)
        # and the reference to float tolerance
        ref = clone_params(starts[r])
        ReferenceKernel().supervised(ref, xs[r], ys[r], learning_rate=0.1, l2=1e-4)
        assert max((ref[k] - models[r][k]).abs().max().item() for k in ref) < 2e-5


def test_dae_and_rbm_replicas_are_bit_identical_to_separate_runs():
    R, n, H = 3, 40, 16
    xs, _ = _streams(R, n)
    keeps = [torch.from_numpy(noise.masking_keep(r, np.arange(n), 0, 784, 196)) for r in range(R)]
    u_h = [torch.from_numpy(noise.uniforms(r, np.arange(n), 1, 0, H)).reshape(n, 1, H)
           for r in range(R)]
    starts = [init_params(784, H, 1, seed=s) for s in range(R)]
    models = [clone_params(p) for p in starts]
    with Replicas(models) as reps:
        costs_dae = reps.dae(0, xs, keeps, None, learning_rate=0.05)
        costs_rbm = reps.rbm(0, xs, u_h, None, learning_rate=0.05, cd_k=1)
    single = NumbaKernel(n_threads=1)
    for r in range(R):
        alone = clone_params(starts[r])
        c_dae = single.dae(alone, 0, xs[r], keeps[r], None, learning_rate=0.05)
        c_rbm = single.rbm(alone, 0, xs[r], u_h[r], None, learning_rate=0.05, cd_k=1)
        for key in alone:
            assert torch.equal(models[r][key], alone[key]), f"replica {r}, {key}"
        assert torch.equal(costs_dae[r], c_dae) and torch.equal(costs_rbm[r], c_rbm)


def test_replicas_reject_shared_storage_and_wrong_lengths():
    p = init_params(784, 8, 1, seed=0)
    with pytest.raises(ValueError, match="shares storage"):
        Replicas([p, p])
    with Replicas([clone_params(p), clone_params(p)]) as reps:
        x, y = mnist_inputs(4)
        with pytest.raises(ValueError, match=r"one chunk per replica \(2\), found 1"):
            reps.supervised([x], [y], learning_rate=0.1)
    with pytest.raises(ValueError, match="at least one"):
        Replicas([])
