"""The numba kernel against the reference PyTorch loop: same weights after a chunk of updates.

Small networks on real MNIST digits (so the first-layer sparsity path sees ~81% zero pixels), every
mode of docs/architecture.md, serial and with two threads. Tolerances are float32 ones: both kernels
compute the same maths, summing in different orders. Between thread counts of the numba kernel the
weights must be bit-identical.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from onlinedeep import noise
from onlinedeep.kernels.numba_cpu import N_BLOCKS, NumbaKernel, make_kernel
from onlinedeep.kernels.reference import ReferenceKernel
from onlinedeep.model import clone_params, init_params

from kernel_testdata import mnist_inputs

pytestmark = pytest.mark.usefixtures("all_thread_counts")  # 3-4 threads on 2 cores too

ATOL = 2e-5


def _assert_params_close(got, want, atol=ATOL):
    assert got.keys() == want.keys()
    for key in want:
        diff = (got[key] - want[key]).abs().max().item()
        assert diff <= atol, f"{key}: max |numba - reference| = {diff:.3g} > {atol}"


def _moved(before, after):
    """Largest change of any weight: shows the test compares weights that actually moved."""
    return max((after[k] - before[k]).abs().max().item() for k in before)


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("n_layers,l1,l2", [(1, 0.0, 0.0), (1, 1e-4, 1e-3), (3, 0.0, 0.0),
                                             (3, 1e-4, 1e-3), (1, 0.0, 1e-8), (3, 0.0, 1e-6)])
def test_supervised_matches_reference(n_layers, l1, l2, n_threads):
    x, y = mnist_inputs(300)
    start = init_params(784, 48, n_layers, seed=3)
    ref, fast = clone_params(start), clone_params(start)
    err_r, nll_r = ReferenceKernel().supervised(ref, x, y, learning_rate=0.1, l1=l1, l2=l2)
    kernel = NumbaKernel(n_threads=n_threads)
    # two chunks: the state carried between calls is only the parameters
    e1, n1 = kernel.supervised(fast, x[:170], y[:170], learning_rate=0.1, l1=l1, l2=l2)
    e2, n2 = kernel.supervised(fast, x[170:], y[170:], learning_rate=0.1, l1=l1, l2=l2)
    assert _moved(start, ref) > 1e-2
    _assert_params_close(fast, ref)
    assert torch.equal(torch.cat([e1, e2]), err_r)
    assert torch.allclose(torch.cat([n1, n2]), nll_r, rtol=1e-4, atol=1e-5)
    assert err_r.dtype == torch.uint8 and n1.dtype == torch.float32


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("salt_pepper", [False, True])
def test_dae_matches_reference(salt_pepper, n_threads):
    x, _ = mnist_inputs(200)
    positions = np.arange(200)
    n_corrupt = noise.corruption_count(0.25, 784)
    if salt_pepper:
        keep, values = noise.salt_pepper(7, positions, 0, 784, n_corrupt)
        values = torch.from_numpy(values)
    else:
        keep, values = noise.masking_keep(7, positions, 0, 784, n_corrupt), None
    keep = torch.from_numpy(keep)
    # Salt-and-pepper at a large rate is chaotic in float32: the reference itself, started from
    # weights perturbed by 1e-7, drifts 2e-2 away after 200 updates at lr 0.05. A smaller rate keeps
    # the comparison meaningful (weights still move by > 1e-2).
    lr = 0.01 if salt_pepper else 0.05
    start = init_params(784, 40, 2, seed=5)
    ref, fast = clone_params(start), clone_params(start)
    cost_r = ReferenceKernel().dae(ref, 0, x, keep, values, learning_rate=lr)
    # two chunks (the last update of a chunk and the first sweeps of the next are not fused)
    kernel = NumbaKernel(n_threads=n_threads)
    cost_f = torch.cat([kernel.dae(fast, 0, x[sl], keep[sl], None if values is None else values[sl],
                                   learning_rate=lr) for sl in (slice(0, 117), slice(117, None))])
    assert _moved(start, ref) > 1e-2
    _assert_params_close(fast, ref)
    assert torch.allclose(cost_f, cost_r, rtol=1e-5, atol=1e-3)


def test_dae_upper_layer_matches_reference():
    """Layer 1 of a stack: dense inputs (outputs of layer 0), fan_in = n_hidden (37: row blocks of
    9, 9, 9 and 10 rows, so the sweeps' one-row tails run too)."""
    x, _ = mnist_inputs(120)
    start = init_params(784, 37, 2, seed=11)
    h = torch.sigmoid(x @ start["W0"] + start["b0"])
    keep = torch.from_numpy(noise.masking_keep(1, np.arange(120), 1, 37,
                                               noise.corruption_count(0.3, 37)))
    ref, fast = clone_params(start), clone_params(start)
    cost_r = ReferenceKernel().dae(ref, 1, h, keep, None, learning_rate=0.1)
    cost_f = NumbaKernel(n_threads=1).dae(fast, 1, h, keep, None, learning_rate=0.1)
    _assert_params_close(fast, ref)
    assert torch.allclose(cost_f, cost_r, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("sample_reconstruction,cd_k", [(False, 1), (True, 1), (False, 2)])
def test_rbm_matches_reference(sample_reconstruction, cd_k, n_threads):
    n, n_hidden = 150, 40
    x, _ = mnist_inputs(n)
    positions = np.arange(n)
    u_h = torch.from_numpy(noise.uniforms(9, positions, 1, 0, cd_k * n_hidden)).reshape(n, cd_k, n_hidden)
    u_v = (torch.from_numpy(noise.uniforms(9, positions, 2, 0, cd_k * 784)).reshape(n, cd_k, 784)
           if sample_reconstruction else None)
    start = init_params(784, n_hidden, 1, seed=2)
    ref, fast = clone_params(start), clone_params(start)
    cost_r = ReferenceKernel().rbm(ref, 0, x, u_h, u_v, learning_rate=0.05, cd_k=cd_k)
    kernel = NumbaKernel(n_threads=n_threads)
    cost_f = torch.cat([kernel.rbm(fast, 0, x[sl], u_h[sl], None if u_v is None else u_v[sl],
                                   learning_rate=0.05, cd_k=cd_k)
                        for sl in (slice(0, 61), slice(61, None))])
    assert _moved(start, ref) > 1e-2
    _assert_params_close(fast, ref)
    assert torch.allclose(cost_f, cost_r, rtol=1e-5, atol=1e-3)


def _run_mode(mode, kernel, params, x, y):
    """One chunk of ``mode`` updates; returns the monitoring values."""
    n = len(x)
    pos = np.arange(n)
    if mode.startswith("supervised"):
        return kernel.supervised(params, x, y, learning_rate=0.1, l1=1e-5, l2=1e-4)
    if mode == "dae":
        keep = torch.from_numpy(noise.masking_keep(4, pos, 0, 784, noise.corruption_count(0.25, 784)))
        return (kernel.dae(params, 0, x, keep, None, learning_rate=0.05),)
    if mode == "dae-salt-pepper":
        keep, values = noise.salt_pepper(4, pos, 0, 784, noise.corruption_count(0.25, 784))
        return (kernel.dae(params, 0, x, torch.from_numpy(keep), torch.from_numpy(values),
                           learning_rate=0.01),)
    n_hidden = params["W0"].shape[1]
    u_h = torch.from_numpy(noise.uniforms(4, pos, noise.PURPOSE_RBM_HIDDEN, 0, 2 * n_hidden))
    u_v = torch.from_numpy(noise.uniforms(4, pos, noise.PURPOSE_RBM_VISIBLE, 0, 2 * 784))
    return (kernel.rbm(params, 0, x, u_h.reshape(n, 2, n_hidden), u_v.reshape(n, 2, 784),
                       learning_rate=0.05, cd_k=2),)


@pytest.mark.parametrize("mode,n_layers", [("supervised", 1), ("supervised", 3), ("dae", 1),
                                           ("dae-salt-pepper", 1), ("rbm", 1)])
def test_weights_are_bit_identical_for_any_thread_count(mode, n_layers):
    """Every sweep is cut into the same fixed row blocks whatever the thread count, so 1, 2 and 4
    threads (and the serial and parallel compiled loops) give the same bits, chunk split or not."""
    x, y = mnist_inputs(90)
    start = init_params(784, 37, n_layers, seed=8)  # 37 rows: blocks of unequal size
    runs = {}
    for n_threads in (1, 2, 4):
        params = clone_params(start)
        kernel = NumbaKernel(n_threads=n_threads)
        out = [_run_mode(mode, kernel, params, x[:41], y[:41]),
               _run_mode(mode, kernel, params, x[41:], y[41:])]
        runs[n_threads] = params, [torch.cat(v) for v in zip(*out)]
    assert _moved(start, runs[1][0]) > 1e-3
    for n_threads in (2, 4):
        for key in start:
            assert torch.equal(runs[n_threads][0][key], runs[1][0][key]), \
                f"{mode}: {key} differs between 1 and {n_threads} threads"
        for got, want in zip(runs[n_threads][1], runs[1][1]):
            assert torch.equal(got, want), f"{mode}: monitoring values differ"


@pytest.mark.parametrize("mode", ["supervised", "dae", "rbm"])
def test_weights_are_bit_identical_wherever_they_lie_in_memory(mode):
    """The address of the weights changes the speed (a 512-bit load split across cache lines,
    benchmarks/bench_alignment.py), never the arithmetic: copies 0, 16, 32 and 48 bytes past a
    64-byte boundary end bit-identical."""
    x, y = mnist_inputs(60)
    start = init_params(784, 40, 1, seed=3)

    def placed(t: torch.Tensor, offset: int) -> torch.Tensor:
        a = t.numpy()
        buf = np.empty(a.nbytes + 128, dtype=np.uint8)
        at = (-buf.ctypes.data) % 64 + offset
        out = buf[at:at + a.nbytes].view(a.dtype).reshape(a.shape)
        out[...] = a
        return torch.from_numpy(out)

    runs = {}
    for offset in (0, 16, 32, 48):
        params = {k: placed(v, offset) for k, v in start.items()}
        assert params["W0"].data_ptr() % 64 == offset
        _run_mode(mode, NumbaKernel(n_threads=1), params, x, y)
        runs[offset] = params
    assert _moved(start, runs[0]) > 1e-3
    for offset in (16, 32, 48):
        for key in start:
            assert torch.equal(runs[offset][key], runs[0][key]), f"{mode}: {key} at +{offset}"


def test_thread_count_default_and_cap(monkeypatch):
    import numba

    from onlinedeep import kernels
    from onlinedeep import threads

    monkeypatch.setenv("ONLINEDEEP_NUMBA_THREADS", "1")
    assert NumbaKernel().n_threads == 1
    assert kernels.get("numba", "cpu").n_threads == 1
    assert kernels.get("numba", "cpu", threads=0).n_threads == 1
    monkeypatch.setenv("ONLINEDEEP_NUMBA_THREADS", "two")
    with pytest.raises(ValueError, match="ONLINEDEEP_NUMBA_THREADS must be an integer >= 1, found 'two'"):
        NumbaKernel()
    monkeypatch.delenv("ONLINEDEEP_NUMBA_THREADS")
    expected = min(threads.available_cores(), threads.AUTO_CAP, numba.get_num_threads())
    assert threads.decide("kernel") == expected == NumbaKernel().n_threads
    assert kernels.get("numba", "cpu", threads=2).n_threads == 2
    assert NumbaKernel(n_threads=9).n_threads == N_BLOCKS
    with pytest.raises(ValueError, match="n_threads must be an integer >= 1"):
        NumbaKernel(n_threads=-1)
    with pytest.raises(ValueError, match="threads must be an integer >= 0"):
        kernels.get("numba", "cpu", threads=-1)


def test_bad_inputs_raise_clear_errors():
    params = init_params(784, 8, 1, seed=0)
    kernel = NumbaKernel(n_threads=1)
    x, y = mnist_inputs(4)
    with pytest.raises(ValueError, match=r"y\[2\] = 10"):
        kernel.supervised(params, x, torch.tensor([0, 1, 10, 3]), learning_rate=0.1)
    with pytest.raises(ValueError, match=r"shape \(n, 784\)"):
        kernel.supervised(params, x[:, :100], y, learning_rate=0.1)
    with pytest.raises(ValueError, match="float32 CPU"):
        kernel.supervised({**params, "W0": params["W0"].double()}, x, y, learning_rate=0.1)
    with pytest.raises(ValueError, match="keep must have shape"):
        kernel.dae(params, 0, x, torch.ones(4, 10, dtype=torch.bool), None, learning_rate=0.1)
    with pytest.raises(ValueError, match="cd_k"):
        kernel.rbm(params, 0, x, torch.zeros(4, 1, 8), None, learning_rate=0.1, cd_k=0)
    with pytest.raises(ValueError, match="cpu only"):
        make_kernel("cuda")


def test_empty_chunk_is_a_no_op():
    params = init_params(784, 8, 1, seed=0)
    before = clone_params(params)
    errors, nll = NumbaKernel(n_threads=1).supervised(
        params, torch.zeros(0, 784), torch.zeros(0, dtype=torch.int64), learning_rate=0.1)
    assert errors.shape == (0,) and nll.shape == (0,)
    _assert_params_close(params, before, atol=0.0)


def test_parameters_of_the_wrong_shape_and_fractional_labels_are_refused():
    """A wrong shape would make the compiled loop read or write past an array (it corrupted the
    heap: "free(): invalid size"); a label 0.5 was truncated to class 0."""
    kernel = NumbaKernel(n_threads=1)
    x, y = mnist_inputs(4)
    for key, bad, message in [("b0", torch.zeros(7), r"params\['b0'\] must have shape \(8,\)"),
                              ("W1", torch.zeros(3, 8), r"params\['W1'\] must have shape \(8, n_hidden\)"),
                              ("W_out", torch.zeros(5, 10), r"params\['W_out'\] must have shape \(8, n_outputs\)"),
                              ("b_out", torch.zeros(3), r"params\['b_out'\] must have shape \(10,\)")]:
        params = init_params(784, 8, 2, seed=0)
        params[key] = bad
        before = clone_params(params)
        with pytest.raises(ValueError, match=message):
            kernel.supervised(params, x, y, learning_rate=0.1)
        assert all(torch.equal(params[k], before[k]) for k in params)   # nothing moved
    for key in ("b0", "c0"):
        params = init_params(784, 8, 1, seed=0)
        params["c0"] = torch.zeros(784)
        params[key] = torch.zeros(5)
        with pytest.raises(ValueError, match=rf"params\['{key}'\] must have shape"):
            kernel.dae(params, 0, x, torch.ones(4, 784, dtype=torch.bool), None, learning_rate=0.1)
        with pytest.raises(ValueError, match=rf"params\['{key}'\] must have shape"):
            kernel.rbm(params, 0, x, torch.zeros(4, 1, 8), None, learning_rate=0.1)
    params = init_params(784, 8, 1, seed=0)
    with pytest.raises(ValueError, match=r"class indices \(integers\), found 0.5 at y\[1\]"):
        kernel.supervised(params, x, torch.tensor([1.0, 0.5, 2.0, 3.0]), learning_rate=0.1)
    kernel.supervised(params, x, torch.tensor([1.0, 0.0, 2.0, 3.0]), learning_rate=0.1)  # whole
