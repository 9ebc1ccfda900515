"""Exact L2 weight decay, and the L1 step, on every weight in every kernel.

The first-layer weights of a pixel that is always zero get no gradient, so with the penalty
``l2·Σ W²`` they must follow the closed form ``w·dⁿ``, ``d = 1 - 2·lr·l2``, down to ``lr·l2 = 1e-9``
(the paper's grid reaches 5e-9), where a per-update float32 decay rounds back to ``w``. The kernels
keep ``W = s·V`` with a float64 scale inside a chunk and round to float32 once at its end
(onlinedeep.kernels.weight_decay); these tests pin that down bit for bit, against the closed form,
across thread counts and across chunk cuts. The CUDA-graph kernel's step functions run eagerly on
the CPU here, as in tests/test_kernels_cuda.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from onlinedeep.kernels.cuda import CudaGraphKernel
from onlinedeep.kernels.numba_cpu import NumbaKernel
from onlinedeep.kernels.reference import ReferenceKernel
from onlinedeep.kernels.weight_decay import RESCALE_MIN
from onlinedeep.model import clone_params, init_params

from kernel_testdata import mnist_inputs

pytestmark = pytest.mark.usefixtures("all_thread_counts")  # 3-4 threads on 2 cores too

KERNELS = {
    "reference": ReferenceKernel,
    "numba": lambda: NumbaKernel(n_threads=1),
    "cuda-graph": lambda: CudaGraphKernel("cpu"),
}
N_ZERO = 5  # inputs 0..4 of the small test network are always zero


def _stream(n: int, n_inputs: int = 30, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """n examples of n_inputs uniform inputs whose first N_ZERO are always 0, random labels."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand((n, n_inputs), generator=gen)
    x[:, :N_ZERO] = 0
    return x, torch.randint(0, 10, (n,), generator=gen)


def _run(kernel, params, x, y, cuts, **hyper):
    """Supervised chunks [cuts[i], cuts[i+1]) in order."""
    for a, b in zip(cuts[:-1], cuts[1:]):
        kernel.supervised(params, x[a:b], y[a:b], **hyper)


def _chunked_decay(w0: torch.Tensor, d: float, chunk_lengths) -> torch.Tensor:
    """The specification for a zero-gradient weight: per chunk of m updates the float64 scale
    s = d·d·…·d (m products) and one rounding, w ← float32(float64(w)·s)."""
    w = w0.clone()
    for m in chunk_lengths:
        s = 1.0
        for _ in range(m):
            s *= d
        w = (w.double() * s).float()
    return w


@pytest.mark.parametrize("name", list(KERNELS))
def test_weights_of_an_always_zero_pixel_follow_the_closed_form(name):
    """100k updates at lr·l2 = 1e-9: float32(d) == 1.0 and float32(d·w) == w for every weight, yet
    the weights decay by (1 - 2e-9)^100000 ≈ 1 - 2e-4, as the closed form says."""
    n, chunk = 100_000, 25_000
    lr, l2 = 0.01, 1e-7
    d = 1.0 - 2.0 * lr * l2
    assert np.float32(d) == 1.0  # the regime where a per-update float32 decay is lost
    x, y = _stream(n)
    start = init_params(30, 16, 1, seed=1)
    params = clone_params(start)
    _run(KERNELS[name](), params, x, y, list(range(0, n + 1, chunk)), learning_rate=lr, l2=l2)

    w0, w = start["W0"][:N_ZERO], params["W0"][:N_ZERO]
    # bit for bit the rounding the kernels promise: once per chunk
    assert torch.equal(w, _chunked_decay(w0, d, [chunk] * (n // chunk)))
    # and the closed form, within half a float32 spacing per chunk
    closed = w0.double() * d ** n
    spacing = torch.from_numpy(np.spacing(np.abs(w0.numpy()))).double()  # >= spacing of any later w
    err = (w.double() - closed).abs()
    assert (err <= 0.5 * (n // chunk) * spacing + 1e-12 * closed.abs()).all(), err.max()
    decayed = (w0.double() - closed).abs()  # ~2e-4·|w0|: thousands of float32 spacings
    assert (decayed > 1000 * spacing).all()
    assert (err / decayed).max() < 2e-3
    # the other weights did train
    assert (params["W0"][N_ZERO:] - start["W0"][N_ZERO:]).abs().max() > 1e-2


def test_zero_pixel_weights_are_identical_in_every_kernel():
    """Same chunks, same float64 scale, one rounding: the same bits in all kernels, at the smallest
    lr·l2 of the paper's grid (0.005·1e-6) and in a 2-layer network (scale shared by all layers)."""
    lr, l2 = 0.005, 1e-6
    x, y = _stream(3000, seed=2)
    cuts = [0, 1, 1200, 3000]
    start = init_params(30, 12, 2, seed=3)
    results = {}
    for name, make in KERNELS.items():
        params = clone_params(start)
        _run(make(), params, x, y, cuts, learning_rate=lr, l2=l2)
        results[name] = params
    want = _chunked_decay(start["W0"][:N_ZERO], 1.0 - 2.0 * lr * l2, np.diff(cuts))
    assert not torch.equal(want, start["W0"][:N_ZERO])
    for name, params in results.items():
        assert torch.equal(params["W0"][:N_ZERO], want), name
        assert (params["W_out"] - results["reference"]["W_out"]).abs().max() < 2e-5, name


@pytest.mark.parametrize("l2", [0.0, 1e-3])
@pytest.mark.parametrize("name", list(KERNELS))
def test_l1_step_moves_every_weight(name, l2):
    """The L1 step -lr·l1·sign(W) reaches the weights of a zero pixel too, in every kernel, with and
    without L2: w_n = dⁿ·w0 - lr·l1·sign(w0)·(1 + d + … + d^(n-1)) while the sign holds."""
    n, lr, l1 = 500, 0.1, 1e-5
    d = 1.0 - 2.0 * lr * l2
    x, y = _stream(n, seed=4)
    start = init_params(30, 16, 1, seed=5)
    params = clone_params(start)
    _run(KERNELS[name](), params, x, y, [0, 200, n], learning_rate=lr, l1=l1, l2=l2)
    w0 = start["W0"][:N_ZERO].double()
    shift = lr * l1 * sum(d ** k for k in range(n))
    closed = w0 * d ** n - torch.sign(w0) * shift
    keep = w0.abs() > 2 * shift  # weights that cannot have crossed zero
    assert keep.sum() > 40
    spacing = torch.from_numpy(np.spacing(np.abs(start["W0"][:N_ZERO].numpy()))).double()
    err = (params["W0"][:N_ZERO].double() - closed).abs()[keep]
    assert (err <= n * spacing[keep]).all(), err.max()  # float32 rounding of n additive steps
    assert shift > 50 * n * spacing.max()


@pytest.mark.parametrize("lr,l2", [(0.01, 1e-6), (0.2, 1e-3)])
@pytest.mark.parametrize("name", list(KERNELS))
def test_chunk_cuts_change_l2_weights_by_float32_rounding_only(name, lr, l2):
    """With l2 > 0 a chunk end rounds the weights to float32 (at most half a spacing): two cuts of
    the same updates agree to float32 rounding (bit for bit only without L2, see
    onlinedeep.kernels.weight_decay); the prequential errors are the same."""
    x, y = mnist_inputs(90)
    start = init_params(784, 24, 2, seed=6)
    kernel = KERNELS[name]()
    whole, parts = clone_params(start), clone_params(start)
    e_whole, _ = kernel.supervised(whole, x, y, learning_rate=lr, l2=l2)
    e_parts = [kernel.supervised(parts, x[a:b], y[a:b], learning_rate=lr, l2=l2)[0]
               for a, b in [(0, 1), (1, 41), (41, 90)]]
    assert max((whole[k] - start[k]).abs().max().item() for k in start) > 1e-2
    for key in start:
        diff = (whole[key] - parts[key]).abs().max().item()
        assert diff <= 1e-6, f"{key}: {diff:.3g}"
    assert torch.equal(e_whole, torch.cat(e_parts))


@pytest.mark.parametrize("lr,l1,l2", [
    (0.01, 0.0, 1e-7),   # lr·l2 = 1e-9, sparse first-layer sweep
    (0.1, 0.0, 1.0),     # d = 0.8: the scale leaves [RESCALE_MIN, 1] inside the chunk
    (0.1, 1e-4, 1e-3),   # L1: dense first-layer sweep
])
def test_numba_l2_weights_are_bit_identical_for_any_thread_count(lr, l1, l2):
    x, y = mnist_inputs(90)
    start = init_params(784, 37, 2, seed=8)  # 37 rows: blocks of unequal size
    runs = {}
    for n_threads in (1, 2, 4):
        params = clone_params(start)
        kernel = NumbaKernel(n_threads=n_threads)
        out = [kernel.supervised(params, x[a:b], y[a:b], learning_rate=lr, l1=l1, l2=l2)
               for a, b in [(0, 41), (41, 90)]]
        runs[n_threads] = params, [torch.cat(v) for v in zip(*out)]
    assert max((runs[1][0][k] - start[k]).abs().max().item() for k in start) > 1e-3
    for n_threads in (2, 4):
        for key in start:
            assert torch.equal(runs[n_threads][0][key], runs[1][0][key]), (n_threads, key)
        for got, want in zip(runs[n_threads][1], runs[1][1]):
            assert torch.equal(got, want), n_threads


@pytest.mark.parametrize("name", ["numba", "cuda-graph"])
def test_rescale_inside_a_chunk_matches_the_reference(name):
    """d = 0.8: the scale drops below RESCALE_MIN after 63 updates, so the 150-update chunk brings
    the weights back to W twice on its way; the result still matches the reference."""
    lr, l2 = 0.1, 1.0
    assert 0.8 ** 63 < RESCALE_MIN < 0.8 ** 62
    x, y = mnist_inputs(150)
    start = init_params(784, 32, 2, seed=9)
    ref, fast = clone_params(start), clone_params(start)
    err_r, nll_r = ReferenceKernel().supervised(ref, x, y, learning_rate=lr, l2=l2)
    err_f, nll_f = KERNELS[name]().supervised(fast, x, y, learning_rate=lr, l2=l2)
    assert max((ref[k] - start[k]).abs().max().item() for k in start) > 1e-2
    for key in start:
        diff = (fast[key] - ref[key]).abs().max().item()
        assert diff <= 2e-5, f"{key}: {diff:.3g}"
    assert torch.equal(err_f, err_r)
    assert torch.allclose(nll_f, nll_r, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", list(KERNELS))
def test_refuses_learning_rate_times_l2_of_one_half(name):
    params = init_params(30, 4, 1, seed=0)
    x, y = _stream(2)
    with pytest.raises(ValueError, match=r"learning_rate · l2 must be < 0.5"):
        KERNELS[name]().supervised(params, x, y, learning_rate=0.5, l2=1.0)
