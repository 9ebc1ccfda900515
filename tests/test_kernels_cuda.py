"""The CUDA-graph kernel's step functions against the reference loop.

Off CUDA the same step functions run eagerly, so their maths (and the replica batching through
bmm) is tested on every machine; graph capture and replay are tested only where CUDA exists.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from onlinedeep import noise
from onlinedeep.kernels.cuda import CudaGraphKernel, make_kernel
from onlinedeep.kernels.reference import ReferenceKernel
from onlinedeep.model import clone_params, init_params

from kernel_testdata import mnist_inputs

ATOL = 2e-5
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _close(got, want, atol=ATOL):
    for key in want:
        diff = (got[key].cpu() - want[key].cpu()).abs().max().item()
        assert diff <= atol, f"{key}: max |cuda-graph - reference| = {diff:.3g} > {atol}"


@pytest.mark.parametrize("n_layers,l1,l2", [(1, 0.0, 0.0), (3, 1e-4, 1e-3), (1, 0.0, 1e-8),
                                             (3, 0.0, 1e-6)])
def test_supervised_step_matches_reference_on_cpu(n_layers, l1, l2):
    x, y = mnist_inputs(120)
    start = init_params(784, 32, n_layers, seed=4)
    ref, fast = clone_params(start), clone_params(start)
    err_r, nll_r = ReferenceKernel().supervised(ref, x, y, learning_rate=0.1, l1=l1, l2=l2)
    err_f, nll_f = CudaGraphKernel("cpu").supervised(fast, x, y, learning_rate=0.1, l1=l1, l2=l2)
    assert max((ref[k] - start[k]).abs().max().item() for k in start) > 1e-2
    _close(fast, ref)
    assert torch.equal(err_f, err_r)
    assert torch.allclose(nll_f, nll_r, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("salt_pepper", [False, True])
def test_dae_step_matches_reference_on_cpu(salt_pepper):
    x, _ = mnist_inputs(100)
    pos = np.arange(100)
    if salt_pepper:
        keep, values = noise.salt_pepper(3, pos, 0, 784, 196)
        values = torch.from_numpy(values)
    else:
        keep, values = noise.masking_keep(3, pos, 0, 784, 196), None
    keep = torch.from_numpy(keep)
    start = init_params(784, 32, 1, seed=8)
    ref, fast = clone_params(start), clone_params(start)
    cost_r = ReferenceKernel().dae(ref, 0, x, keep, values, learning_rate=0.02)
    cost_f = CudaGraphKernel("cpu").dae(fast, 0, x, keep, values, learning_rate=0.02)
    _close(fast, ref)
    assert torch.allclose(cost_f, cost_r, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("sample_reconstruction,cd_k", [(False, 1), (True, 1), (True, 2)])
def test_rbm_step_matches_reference_on_cpu(sample_reconstruction, cd_k):
    n, n_hidden = 80, 24
    x, _ = mnist_inputs(n)
    pos = np.arange(n)
    u_h = torch.from_numpy(noise.uniforms(5, pos, 1, 0, cd_k * n_hidden)).reshape(n, cd_k, n_hidden)
    u_v = (torch.from_numpy(noise.uniforms(5, pos, 2, 0, cd_k * 784)).reshape(n, cd_k, 784)
           if sample_reconstruction else None)
    start = init_params(784, n_hidden, 1, seed=6)
    ref, fast = clone_params(start), clone_params(start)
    cost_r = ReferenceKernel().rbm(ref, 0, x, u_h, u_v, learning_rate=0.05, cd_k=cd_k)
    cost_f = CudaGraphKernel("cpu").rbm(fast, 0, x, u_h, u_v, learning_rate=0.05, cd_k=cd_k)
    _close(fast, ref)
    assert torch.allclose(cost_f, cost_r, rtol=1e-5, atol=1e-3)


def test_batched_replicas_match_separate_reference_runs_on_cpu():
    """R = 3 models, each on its own stream, advanced together through bmm."""
    R, n = 3, 60
    x, y = mnist_inputs(R * n)
    starts = [init_params(784, 20, 2, seed=s) for s in range(R)]
    refs = [clone_params(p) for p in starts]
    want = [ReferenceKernel().supervised(refs[r], x[r * n:(r + 1) * n], y[r * n:(r + 1) * n],
                                         learning_rate=0.1) for r in range(R)]
    stacked = {k: torch.stack([p[k] for p in starts]).contiguous() for k in starts[0]}
    errors, nll = CudaGraphKernel("cpu").supervised_batched(
        stacked, x.reshape(R, n, 784), y.reshape(R, n), learning_rate=0.1)
    for r in range(R):
        got = {k: v[r] for k, v in stacked.items()}
        _close(got, refs[r])
        assert torch.equal(errors[r], want[r][0])
        assert torch.allclose(nll[r], want[r][1], rtol=1e-4, atol=1e-5)


def test_refuses_graphs_off_cuda_and_bad_params():
    with pytest.raises(ValueError, match="CUDA graphs need a cuda device"):
        CudaGraphKernel("cpu", use_graphs=True)
    with pytest.raises(ValueError, match="cuda only"):
        make_kernel("cpu")
    params = init_params(784, 8, 1, seed=0)
    params["W0"] = params["W0"].double()
    x, y = mnist_inputs(2)
    with pytest.raises(ValueError, match="contiguous float32"):
        CudaGraphKernel("cpu").supervised(params, x, y, learning_rate=0.1)


@needs_cuda
@pytest.mark.parametrize("mode", ["supervised", "dae", "rbm"])
def test_graph_replay_matches_reference_on_cuda(mode):
    n = 150  # two replays of 64 steps and 22 eager steps
    x, y = mnist_inputs(n)
    x, y = x.cuda(), y.cuda()
    start = init_params(784, 32, 2, seed=1, device="cuda")
    ref, fast = clone_params(start), clone_params(start)
    kernel = CudaGraphKernel("cuda", steps_per_graph=64)
    if mode == "supervised":
        want = ReferenceKernel().supervised(ref, x, y, learning_rate=0.1)[1]
        got = kernel.supervised(fast, x, y, learning_rate=0.1)[1]
    elif mode == "dae":
        keep = torch.from_numpy(noise.masking_keep(1, np.arange(n), 0, 784, 196)).cuda()
        want = ReferenceKernel().dae(ref, 0, x, keep, None, learning_rate=0.05)
        got = kernel.dae(fast, 0, x, keep, None, learning_rate=0.05)
    else:
        u_h = torch.from_numpy(noise.uniforms(1, np.arange(n), 1, 0, 32)).reshape(n, 1, 32).cuda()
        want = ReferenceKernel().rbm(ref, 0, x, u_h, None, learning_rate=0.05)
        got = kernel.rbm(fast, 0, x, u_h, None, learning_rate=0.05)
    _close(fast, ref, atol=1e-4)
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-3)


@needs_cuda
@pytest.mark.parametrize("l2,steps_per_graph", [(1e-6, 64), (1.0, 16)])
def test_graph_replay_with_l2_matches_reference_on_cuda(l2, steps_per_graph):
    """The per-step scale coefficients are graph inputs, read at each replay. l2 = 1: the scale is
    brought back to 1 after 63 updates (segments 63, 63, 24: graphs of 16 steps, eager steps)."""
    n = 150
    x, y = mnist_inputs(n)
    zero_pixels = (x == 0).all(dim=0)
    x, y = x.cuda(), y.cuda()
    start = init_params(784, 32, 2, seed=1, device="cuda")
    ref, fast = clone_params(start), clone_params(start)
    kernel = CudaGraphKernel("cuda", steps_per_graph=steps_per_graph)
    want = ReferenceKernel().supervised(ref, x, y, learning_rate=0.1, l2=l2)[1]
    got = kernel.supervised(fast, x, y, learning_rate=0.1, l2=l2)[1]
    _close(fast, ref, atol=1e-4)
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-3)
    # zero-gradient weights: same float64 scale, same single rounding, same bits
    assert zero_pixels.sum() > 50
    rows = zero_pixels.cuda()
    assert torch.equal(fast["W0"][rows], ref["W0"][rows])
    assert not torch.equal(fast["W0"][rows], start["W0"][rows])
