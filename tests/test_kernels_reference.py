"""The reference kernel against independent computations of the same updates.

Supervised and DAE: PyTorch autograd in float64 (cross-entropy loss, penalties), one example per
step, plain ``p -= lr * grad``. RBM CD-1: autograd of the free-energy difference F(v0) - F(v) with the
negative sample v held fixed (its gradient is the CD-1 update); CD-2 with sampled reconstructions: an
explicit NumPy float64 loop. Same weights after 100 updates to float tolerance, with the weights moved
by orders of magnitude more than the tolerance.
"""

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import real_mnist_dir
from onlinedeep import kernels, model, noise
from onlinedeep.kernels.reference import ReferenceKernel

N_UPDATES = 100


def _mnist(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """First n MNIST training digits as (n, 784) float32 in [0, 1] and (n,) int64 labels (skips the
    test without $ONLINEDEEP_MNIST_DIR)."""
    root = real_mnist_dir()
    with gzip.open(Path(root) / "train-images-idx3-ubyte.gz", "rb") as f:
        images = np.frombuffer(f.read(16 + n * 784), dtype=np.uint8, offset=16)
    with gzip.open(Path(root) / "train-labels-idx1-ubyte.gz", "rb") as f:
        labels = np.frombuffer(f.read(8 + n), dtype=np.uint8, offset=8)
    x = torch.from_numpy(images.reshape(n, 784).astype(np.float32) / 255.0)
    return x, torch.from_numpy(labels.astype(np.int64))


def _random_inputs(n: int, fan_in: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand((n, fan_in), generator=gen), torch.randint(0, 10, (n,), generator=gen)


def _perturbed_params(n_inputs, n_hidden, n_layers, seed):
    """Initial parameters with non-zero biases, so a bias that is ignored or misplaced shows."""
    params = model.init_params(n_inputs, n_hidden, n_layers, seed)
    gen = torch.Generator().manual_seed(seed + 1000)
    for name, t in params.items():
        if not name.startswith("W"):
            t.add_(0.1 * torch.randn(t.shape, generator=gen))
    return params


def _assert_params_close(got, want, start, atol=2e-5, min_move=1e-2):
    assert list(got) == list(want)
    moved = max((want[k].double() - start[k].double()).abs().max().item() for k in want)
    assert moved > min_move, f"weights moved only {moved}: the test would not see a wrong update"
    for name in want:
        torch.testing.assert_close(got[name].double(), want[name].double(), atol=atol, rtol=1e-4,
                                   msg=lambda m, name=name: f"{name}: {m}")


# --------------------------------------------------------------------------- supervised

def _autograd_supervised(params, x, y, lr, l1, l2):
    p = {k: v.double().clone().requires_grad_(True) for k, v in params.items()}
    depth = model.n_layers(params)
    errors, nlls = [], []
    for i in range(x.shape[0]):
        h = x[i].double()
        for k in range(depth):
            h = torch.sigmoid(h @ p[f"W{k}"] + p[f"b{k}"])
        o = h @ p["W_out"] + p["b_out"]
        nll = F.cross_entropy(o.unsqueeze(0), y[i:i + 1])
        errors.append(int(o.argmax().item() != y[i].item()))
        nlls.append(nll.item())
        weights = [p[f"W{k}"] for k in range(depth)] + [p["W_out"]]
        loss = nll + l1 * sum(w.abs().sum() for w in weights) + l2 * sum((w * w).sum() for w in weights)
        used = [t for name, t in p.items() if not name.startswith("c")]  # c{k}: pre-training only
        grads = torch.autograd.grad(loss, used)
        with torch.no_grad():
            for t, g in zip(used, grads):
                t -= lr * g
    return {k: v.detach() for k, v in p.items()}, np.array(errors), np.array(nlls)


@pytest.mark.parametrize("n_hidden,n_layers,l1,l2,data", [
    (7, 1, 0.0, 0.0, "random20"),
    (7, 1, 1e-3, 1e-3, "random20"),
    (30, 3, 0.0, 0.0, "mnist"),
    (30, 3, 1e-4, 1e-3, "mnist"),
    (7, 1, 0.0, 1.0, "random20"),  # decay 0.8 per update: the scale is brought back in the chunk
])
def test_supervised_matches_autograd(n_hidden, n_layers, l1, l2, data):
    if data == "mnist":
        x, y = _mnist(N_UPDATES)
    else:
        x, y = _random_inputs(N_UPDATES, 20, seed=1)
    start = _perturbed_params(x.shape[1], n_hidden, n_layers, seed=2)
    lr = 0.1
    want, want_err, want_nll = _autograd_supervised(start, x, y, lr, l1, l2)

    params = model.clone_params(start)
    errors, nll = ReferenceKernel().supervised(params, x, y, learning_rate=lr, l1=l1, l2=l2)
    assert errors.dtype == torch.uint8 and errors.shape == (N_UPDATES,)
    assert nll.dtype == torch.float32 and nll.shape == (N_UPDATES,)
    _assert_params_close(params, want, start)
    np.testing.assert_array_equal(errors.numpy(), want_err)
    np.testing.assert_allclose(nll.numpy(), want_nll, rtol=1e-4, atol=1e-5)
    assert 0 < errors.sum() < N_UPDATES  # it learns something and is not trivially right


def test_supervised_is_prequential():
    """errors[i] and nll[i] are those of the weights before update i (and update i moves them)."""
    x, y = _mnist(20)
    params = _perturbed_params(784, 30, 2, seed=4)
    kernel = ReferenceKernel()
    whole = model.clone_params(params)
    errors, nll = kernel.supervised(whole, x, y, learning_rate=0.5, l1=0.0, l2=0.0)
    for i in range(20):
        proba = model.predict_proba(params, x[i:i + 1])[0]
        pred = model.predict(params, x[i:i + 1])[0]
        assert errors[i].item() == int(pred.item() != y[i].item())
        assert nll[i].item() == pytest.approx(-torch.log(proba[y[i]].double()).item(), rel=1e-4)
        before = params["W_out"].clone()
        kernel.supervised(params, x[i:i + 1], y[i:i + 1], learning_rate=0.5, l1=0.0, l2=0.0)
        assert not torch.equal(before, params["W_out"])
    for name in params:  # one chunk of 20 = 20 chunks of 1, bit for bit
        assert torch.equal(params[name], whole[name]), name


def test_supervised_ties_take_first_maximum():
    params = model.init_params(20, 7, 1, seed=0)
    params["W_out"].zero_()  # all logits equal: the prediction is class 0
    x, _ = _random_inputs(1, 20, seed=3)
    for label, expected in ((0, 0), (4, 1)):
        p = model.clone_params(params)
        errors, nll = ReferenceKernel().supervised(p, x, torch.tensor([label]), learning_rate=0.1,
                                                   l1=0.0, l2=0.0)
        assert errors.tolist() == [expected]
        assert nll.item() == pytest.approx(np.log(10.0), rel=1e-6)


def test_chunking_does_not_change_the_result():
    """Bit for bit without L2. With L2 the weights are rounded to float32 once per chunk (the end
    of the exact decay, onlinedeep.kernels.weight_decay): tests/test_kernels_weight_decay.py."""
    x, y = _random_inputs(60, 20, seed=5)
    start = _perturbed_params(20, 7, 2, seed=6)
    kernel = ReferenceKernel()
    whole = model.clone_params(start)
    e_whole, n_whole = kernel.supervised(whole, x, y, learning_rate=0.2, l1=1e-3, l2=0.0)
    parts = model.clone_params(start)
    outs = [kernel.supervised(parts, x[a:b], y[a:b], learning_rate=0.2, l1=1e-3, l2=0.0)
            for a, b in [(0, 1), (1, 33), (33, 60)]]
    for name in start:
        assert torch.equal(whole[name], parts[name]), name
    assert torch.equal(e_whole, torch.cat([o[0] for o in outs]))
    torch.testing.assert_close(n_whole, torch.cat([o[1] for o in outs]), rtol=1e-6, atol=0)

    # pre-training kernels, on layer 1 (rows of 7 floats: a chunk's rows are not 64-byte aligned)
    x1 = model.hidden_forward(start, x, 1)
    keep_np, values_np = noise.salt_pepper(1, np.arange(60), 1, 7, 2)
    keep, values = torch.from_numpy(keep_np), torch.from_numpy(values_np)
    u_h = torch.from_numpy(noise.uniforms(1, np.arange(60), noise.PURPOSE_RBM_HIDDEN, 1, 14)).reshape(60, 2, 7)
    u_v = torch.from_numpy(noise.uniforms(1, np.arange(60), noise.PURPOSE_RBM_VISIBLE, 1, 14)).reshape(60, 2, 7)
    for run in (lambda p, s: kernel.dae(p, 1, x1[s], keep[s], values[s], learning_rate=0.2),
                lambda p, s: kernel.rbm(p, 1, x1[s], u_h[s], u_v[s], learning_rate=0.2, cd_k=2)):
        whole, parts = model.clone_params(start), model.clone_params(start)
        run(whole, slice(0, 60))
        for a, b in [(0, 1), (1, 33), (33, 60)]:
            run(parts, slice(a, b))
        assert not torch.equal(whole["W1"], start["W1"])
        for name in start:
            assert torch.equal(whole[name], parts[name]), name


# --------------------------------------------------------------------------- denoising auto-encoder

def _autograd_dae(params, layer, x, corrupted, lr):
    p = {k: v.double().clone().requires_grad_(True) for k, v in params.items()}
    W, b, c = p[f"W{layer}"], p[f"b{layer}"], p[f"c{layer}"]
    costs = []
    for i in range(x.shape[0]):
        h = torch.sigmoid(corrupted[i].double() @ W + b)
        a = h @ W.t() + c
        cost = F.binary_cross_entropy_with_logits(a, x[i].double(), reduction="sum")
        costs.append(cost.item())
        grads = torch.autograd.grad(cost, [W, b, c])
        with torch.no_grad():
            for t, g in zip((W, b, c), grads):
                t -= lr * g
    return {k: v.detach() for k, v in p.items()}, np.array(costs)


@pytest.mark.parametrize("noise_kind,layer", [("masking", 0), ("salt_pepper", 0), ("masking", 1),
                                              ("salt_pepper", 1)])
def test_dae_matches_autograd(noise_kind, layer):
    x0, _ = _mnist(N_UPDATES)
    start = _perturbed_params(784, 30, 2, seed=7)
    x = model.hidden_forward(start, x0, layer)  # the deterministic input of the layer
    fan_in = x.shape[1]
    n_corrupt = noise.corruption_count(0.25, fan_in)
    positions = np.arange(5000, 5000 + N_UPDATES)
    if noise_kind == "masking":
        keep = torch.from_numpy(noise.masking_keep(9, positions, layer, fan_in, n_corrupt))
        values = None
        corrupted = x * keep
    else:
        keep_np, values_np = noise.salt_pepper(9, positions, layer, fan_in, n_corrupt)
        keep, values = torch.from_numpy(keep_np), torch.from_numpy(values_np)
        corrupted = torch.where(keep, x, values)
        assert not torch.equal(corrupted, x * keep)  # some replacements are 1
    # At larger rates (0.1) the 784-input reconstruction amplifies float32 rounding: float32
    # autograd itself then drifts 2e-4 from float64 within 100 updates.
    lr = 0.02
    want, want_cost = _autograd_dae(start, layer, x, corrupted, lr)

    params = model.clone_params(start)
    cost = ReferenceKernel().dae(params, layer, x, keep, values, learning_rate=lr)
    assert cost.dtype == torch.float32 and cost.shape == (N_UPDATES,)
    _assert_params_close(params, want, start)
    np.testing.assert_allclose(cost.numpy(), want_cost, rtol=1e-4)
    for name in start:  # other layers untouched
        if not name.endswith(str(layer)):
            assert torch.equal(params[name], start[name]), name


# --------------------------------------------------------------------------- RBM

def _free_energy(v, W, b, c):
    """F(v) = -v·c - Σ_j softplus(v W + b)_j (Bernoulli RBM; b hidden bias, c visible bias)."""
    return -(v @ c) - F.softplus(v @ W + b).sum()


def _autograd_cd1(params, layer, x, u_hidden, lr):
    p = {k: v.double().clone() for k, v in params.items()}
    W, b, c = p[f"W{layer}"], p[f"b{layer}"], p[f"c{layer}"]
    costs = []
    for i in range(x.shape[0]):
        v0 = x[i].double()
        with torch.no_grad():  # the chain: negative sample v held fixed
            ph0 = torch.sigmoid(v0 @ W + b)
            h = (u_hidden[i, 0].double() < ph0).double()
            a = h @ W.t() + c
            v = torch.sigmoid(a)
            costs.append(F.binary_cross_entropy_with_logits(a, v0, reduction="sum").item())
        leaves = [t.clone().requires_grad_(True) for t in (W, b, c)]
        surrogate = _free_energy(v0, *leaves) - _free_energy(v, *leaves)
        grads = torch.autograd.grad(surrogate, leaves)
        for t, g in zip((W, b, c), grads):
            t -= lr * g
    return p, np.array(costs)


@pytest.mark.parametrize("layer", [0, 1])
def test_rbm_cd1_matches_autograd_of_free_energy_difference(layer):
    x0, _ = _mnist(N_UPDATES)
    start = _perturbed_params(784, 30, 2, seed=8)
    x = model.hidden_forward(start, x0, layer)
    n_hidden = start[f"W{layer}"].shape[1]
    u_hidden = torch.from_numpy(noise.uniforms(3, np.arange(N_UPDATES), noise.PURPOSE_RBM_HIDDEN,
                                               layer, n_hidden)).reshape(N_UPDATES, 1, n_hidden)
    lr = 0.05
    want, want_cost = _autograd_cd1(start, layer, x, u_hidden, lr)
    params = model.clone_params(start)
    cost = ReferenceKernel().rbm(params, layer, x, u_hidden, None, learning_rate=lr, cd_k=1)
    assert cost.dtype == torch.float32 and cost.shape == (N_UPDATES,)
    _assert_params_close(params, want, start)
    np.testing.assert_allclose(cost.numpy(), want_cost, rtol=1e-4)


def _numpy_cdk(params, layer, x, u_hidden, u_visible, lr, cd_k):
    p = {k: v.double().numpy().copy() for k, v in params.items()}
    W, b, c = p[f"W{layer}"], p[f"b{layer}"], p[f"c{layer}"]

    def sigmoid(z):
        return 1.0 / (1.0 + np.exp(-z))

    for i in range(x.shape[0]):
        v0 = x[i]
        ph0 = sigmoid(v0 @ W + b)
        h = (u_hidden[i, 0] < ph0).astype(np.float64)
        for t in range(cd_k):
            pv = sigmoid(h @ W.T + c)
            v = (u_visible[i, t] < pv).astype(np.float64) if u_visible is not None else pv
            ph = sigmoid(v @ W + b)
            if t + 1 < cd_k:
                h = (u_hidden[i, t + 1] < ph).astype(np.float64)
        W += lr * (np.outer(v0, ph0) - np.outer(v, ph))
        b += lr * (ph0 - ph)
        c += lr * (v0 - v)
    return {k: torch.from_numpy(v) for k, v in p.items()}


@pytest.mark.parametrize("cd_k,sample_visible", [(2, True), (3, False)])
def test_rbm_cdk_matches_numpy(cd_k, sample_visible):
    x, _ = _mnist(N_UPDATES)
    start = _perturbed_params(784, 30, 1, seed=10)
    positions = np.arange(N_UPDATES)
    u_hidden = noise.uniforms(5, positions, noise.PURPOSE_RBM_HIDDEN, 0, cd_k * 30).reshape(-1, cd_k, 30)
    u_visible = (noise.uniforms(5, positions, noise.PURPOSE_RBM_VISIBLE, 0, cd_k * 784)
                 .reshape(-1, cd_k, 784) if sample_visible else None)
    lr = 0.05
    want = _numpy_cdk(start, 0, x.double().numpy(), u_hidden, u_visible, lr, cd_k)
    params = model.clone_params(start)
    ReferenceKernel().rbm(params, 0, x, torch.from_numpy(u_hidden),
                          None if u_visible is None else torch.from_numpy(u_visible),
                          learning_rate=lr, cd_k=cd_k)
    _assert_params_close(params, want, start)


# --------------------------------------------------------------------------- interface

def test_no_host_synchronisation_inside_the_kernels():
    """On the meta device every value read back to the host (.item(), bool(), printing) raises."""
    params = model.init_params(20, 7, 2, seed=0, device="meta")
    kernel = ReferenceKernel("meta")
    x = torch.empty((5, 20), device="meta")
    errors, nll = kernel.supervised(params, x, torch.empty(5, dtype=torch.int64, device="meta"),
                                    learning_rate=0.1, l1=1e-3, l2=1e-3)
    assert errors.device.type == "meta" and errors.dtype == torch.uint8
    cost = kernel.dae(params, 1, torch.empty((5, 7), device="meta"),
                      torch.empty((5, 7), dtype=torch.bool, device="meta"),
                      torch.empty((5, 7), device="meta"), learning_rate=0.1)
    assert cost.shape == (5,)
    cost = kernel.rbm(params, 0, x, torch.empty((5, 2, 7), device="meta"),
                      torch.empty((5, 2, 20), device="meta"), learning_rate=0.1, cd_k=2)
    assert cost.shape == (5,)


def test_bad_inputs_raise_clear_errors():
    params = model.init_params(20, 7, 2, seed=0)
    k = ReferenceKernel()
    x, y = _random_inputs(4, 20, seed=0)
    with pytest.raises(ValueError, match=r"x must be a torch.float32 tensor of shape \(4, 20\)"):
        k.supervised(params, x[:, :19], y, learning_rate=0.1, l1=0, l2=0)
    with pytest.raises(ValueError, match="y must be a torch.int64"):
        k.supervised(params, x, y.int(), learning_rate=0.1, l1=0, l2=0)
    with pytest.raises(ValueError, match="learning_rate · l2"):
        k.supervised(params, x, y, learning_rate=1.0, l1=0, l2=0.5)
    with pytest.raises(ValueError, match="layer must be in"):
        k.dae(params, 2, x, x > 0.5, None, learning_rate=0.1)
    with pytest.raises(ValueError, match="keep must be a torch.bool"):
        k.dae(params, 0, x, x, None, learning_rate=0.1)
    with pytest.raises(ValueError, match="cd_k"):
        k.rbm(params, 0, x, torch.rand(4, 1, 7), None, learning_rate=0.1, cd_k=0)
    with pytest.raises(ValueError, match=r"u_hidden must be .* shape \(4, 2, 7\)"):
        k.rbm(params, 0, x, torch.rand(4, 1, 7), None, learning_rate=0.1, cd_k=2)
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        k.rbm(params, 0, x.numpy(), torch.rand(4, 1, 7), None, learning_rate=0.1, cd_k=1)


def test_get_kernel():
    assert kernels.get("reference", "cpu").name == "reference"
    auto = kernels.get("auto", "cpu")
    assert auto.name in kernels.available("cpu")
    assert isinstance(auto, kernels.Kernel)
    assert "reference" in kernels.available("cuda")
    with pytest.raises(ValueError, match="unknown kernel 'fast'; expected one of auto, reference"):
        kernels.get("fast", "cpu")
    with pytest.raises(ValueError, match="'cuda-graph' does not run on device cpu"):
        kernels.get("cuda-graph", "cpu")
    with pytest.raises(ValueError, match="'numba' does not run on device cuda"):
        kernels.get("numba", "cuda")
