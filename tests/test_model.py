"""Parameters and batched inference (onlinedeep.model)."""

import math

import numpy as np
import pytest
import torch

from onlinedeep import model


def test_init_params_keys_shapes_dtypes():
    params = model.init_params(784, 30, 3, seed=1)
    assert list(params) == ["W0", "b0", "c0", "W1", "b1", "c1", "W2", "b2", "c2", "W_out", "b_out"]
    expected = {"W0": (784, 30), "b0": (30,), "c0": (784,), "W1": (30, 30), "b1": (30,),
                "c1": (30,), "W2": (30, 30), "b2": (30,), "c2": (30,), "W_out": (30, 10),
                "b_out": (10,)}
    for name, shape in expected.items():
        assert tuple(params[name].shape) == shape, name
        assert params[name].dtype == torch.float32
        assert params[name].device.type == "cpu"
        assert params[name].is_contiguous()
        assert not params[name].requires_grad


@pytest.mark.parametrize("n_inputs,n_hidden", [(784, 2000), (400, 50)])
def test_init_weights_uniform_in_fan_in_bounds(n_inputs, n_hidden):
    params = model.init_params(n_inputs, n_hidden, 2, seed=3, n_outputs=10)
    for name, fan_in in (("W0", n_inputs), ("W1", n_hidden), ("W_out", n_hidden)):
        w = params[name].double()
        bound = 1.0 / math.sqrt(fan_in)
        assert w.abs().max() <= torch.tensor(bound, dtype=torch.float32).double()
        # uniform on [-bound, bound]: mean 0, standard deviation bound/√3, reaches near the bound
        se = bound / math.sqrt(3.0) / math.sqrt(w.numel())
        assert abs(w.mean().item()) < 5 * se, name
        assert w.std().item() == pytest.approx(bound / math.sqrt(3.0), rel=0.05 if w.numel() > 1000 else 0.2)
        assert w.abs().max() > bound * (1 - 20.0 / w.numel())
    for name in ("b0", "c0", "b1", "c1", "b_out"):
        assert torch.count_nonzero(params[name]) == 0, name


def test_init_is_a_pure_function_of_seed():
    a = model.init_params(20, 7, 2, seed=5)
    b = model.init_params(20, 7, 2, seed=5)
    c = model.init_params(20, 7, 2, seed=6)
    torch.manual_seed(123)  # the global generator must play no part
    d = model.init_params(20, 7, 2, seed=5)
    for name in a:
        assert torch.equal(a[name], b[name])
        assert torch.equal(a[name], d[name])
    assert not torch.equal(a["W0"], c["W0"])
    assert not torch.equal(a["W_out"], c["W_out"])


@pytest.mark.parametrize("kwargs", [
    dict(n_inputs=0, n_hidden=5, n_layers=1, seed=0),
    dict(n_inputs=5, n_hidden=5, n_layers=0, seed=0),
    dict(n_inputs=5, n_hidden=2.5, n_layers=1, seed=0),
    dict(n_inputs=5, n_hidden=5, n_layers=1, seed=-1),
])
def test_init_rejects_bad_sizes(kwargs):
    with pytest.raises(ValueError, match="must be"):
        model.init_params(**kwargs)


def test_sizes_clone_and_finiteness():
    params = model.init_params(20, 7, 3, seed=0, n_outputs=4)
    assert model.n_layers(params) == 3
    assert model.layer_sizes(params) == [20, 7, 7, 7, 4]
    copy = model.clone_params(params)
    copy["W1"].add_(1.0)
    assert not torch.equal(copy["W1"], params["W1"])
    del params["W1"]
    with pytest.raises(ValueError, match="without gaps"):
        model.n_layers(params)


def _manual_forward(params, x):
    h = x.double()
    hs = []
    for k in range(model.n_layers(params)):
        h = torch.sigmoid(h @ params[f"W{k}"].double() + params[f"b{k}"].double())
        hs.append(h)
    logits = h @ params["W_out"].double() + params["b_out"].double()
    return hs, logits


def test_hidden_forward_and_predict_match_manual_forward():
    params = model.init_params(20, 7, 2, seed=2)
    for name in params:  # non-zero biases, so a missing bias would show
        params[name].add_(0.1 * torch.randn(params[name].shape, generator=torch.Generator().manual_seed(9)))
    x = torch.rand((33, 20), generator=torch.Generator().manual_seed(1))
    hs, logits = _manual_forward(params, x)
    assert model.hidden_forward(params, x, 0) is x
    for upto in (1, 2):
        out = model.hidden_forward(params, x, upto)
        assert out.shape == (33, 7) and out.dtype == torch.float32
        torch.testing.assert_close(out.double(), hs[upto - 1], atol=1e-6, rtol=1e-5)
    proba = model.predict_proba(params, x, batch_size=5)
    assert proba.shape == (33, 10) and proba.dtype == torch.float32
    torch.testing.assert_close(proba.double(), torch.softmax(logits, 1), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(proba.sum(1), torch.ones(33))
    torch.testing.assert_close(proba, model.predict_proba(params, x.numpy()), atol=1e-6, rtol=1e-5)
    assert torch.equal(model.predict(params, x, batch_size=7), logits.argmax(1))
    with pytest.raises(ValueError, match="upto"):
        model.hidden_forward(params, x, 3)


def test_inference_input_errors():
    params = model.init_params(20, 7, 1, seed=0)
    with pytest.raises(TypeError, match="to_float"):
        model.predict(params, np.zeros((2, 20), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"\(n, 20\)"):
        model.predict_proba(params, torch.zeros(2, 21))
