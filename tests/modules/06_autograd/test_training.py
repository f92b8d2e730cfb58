"""A whole network through autograd: Linear layers, activations and a loss, then SGD steps by hand."""

import numpy as np
import pytest
from sklearn.datasets import load_digits

from tinytorch.core.activations import GELU, ReLU, Tanh
from tinytorch.core.autograd import no_grad
from tinytorch.core.layers import Linear, Sequential
from tinytorch.core.losses import CrossEntropyLoss, MSELoss
from tinytorch.core.tensor import Tensor


def numpy_mlp_loss(x, labels, w1, b1, w2, b2):
    z = np.maximum(x @ w1 + b1, 0) @ w2 + b2
    top = z.max(axis=1, keepdims=True)
    return np.mean(np.log(np.exp(z - top).sum(axis=1)) + top[:, 0] - z[np.arange(len(labels)), labels])


def float64_mlp(sizes, seeds):
    layers = [Linear(sizes[0], sizes[1], seed=seeds[0]), ReLU(), Linear(sizes[1], sizes[2], seed=seeds[1])]
    gen = np.random.default_rng(99)
    for layer in (layers[0], layers[2]):    # float64 copies (and non-zero biases) for a tight check
        layer.weight = Tensor(layer.weight.data, dtype=np.float64, requires_grad=True)
        layer.bias = Tensor(gen.standard_normal(layer.out_features) * 0.1, dtype=np.float64, requires_grad=True)
    return Sequential(*layers)


def test_mlp_parameter_gradients_match_finite_differences():
    model = float64_mlp((5, 7, 3), seeds=(1, 2))
    gen = np.random.default_rng(0)
    x, labels = gen.standard_normal((8, 5)), gen.integers(0, 3, 8)
    CrossEntropyLoss()(model(Tensor(x, dtype=np.float64)), Tensor(labels)).backward()
    params = [p.data.copy() for p in model.parameters()]
    for which, param in enumerate(model.parameters()):
        expected = np.zeros_like(params[which])
        for position in np.ndindex(params[which].shape):
            plus, minus = [p.copy() for p in params], [p.copy() for p in params]
            plus[which][position] += 1e-6
            minus[which][position] -= 1e-6
            expected[position] = (numpy_mlp_loss(x, labels, *plus) - numpy_mlp_loss(x, labels, *minus)) / 2e-6
        assert param.grad is not None and param.grad.shape == param.shape
        np.testing.assert_allclose(param.grad.data, expected, rtol=1e-5, atol=1e-9)


def test_every_layer_of_a_deep_model_gets_a_gradient():
    model = Sequential(Linear(4, 6, seed=0), Tanh(), Linear(6, 6, seed=1), GELU(), Linear(6, 5, seed=2), ReLU(), Linear(5, 2, seed=3))
    MSELoss()(model(Tensor(np.ones((3, 4)))), Tensor(np.zeros((3, 2)))).backward()
    for param in model.parameters():
        assert param.grad is not None and param.grad.shape == param.shape and param.grad.dtype == np.float32
        assert np.any(param.grad.data != 0)


def test_linear_on_a_sequence_batch_sums_the_bias_gradient():
    layer = Linear(3, 2, seed=4)
    x = np.random.default_rng(5).standard_normal((4, 6, 3)).astype(np.float32)
    upstream = np.random.default_rng(6).standard_normal((4, 6, 2)).astype(np.float32)
    layer(Tensor(x)).backward(upstream)
    np.testing.assert_allclose(layer.bias.grad.data, upstream.sum(axis=(0, 1)), rtol=1e-5)
    np.testing.assert_allclose(layer.weight.grad.data, np.einsum("bti,bto->io", x, upstream), rtol=1e-4, atol=1e-5)


def test_no_grad_forward_builds_no_graph():
    model = Sequential(Linear(4, 3, seed=0), ReLU(), Linear(3, 2, seed=1))
    with no_grad():
        out = model(Tensor(np.ones((2, 4))))
    assert not out.requires_grad and out.grad_fn is None


def test_sgd_by_hand_reduces_the_digits_loss():
    digits = load_digits()
    images, labels = (digits.data[:512] / 16.0).astype(np.float32), digits.target[:512]
    model = Sequential(Linear(64, 32, seed=0), ReLU(), Linear(32, 10, seed=1))
    criterion = CrossEntropyLoss()

    def full_loss():
        with no_grad():
            return float(criterion(model(Tensor(images)), Tensor(labels)).data)

    before = full_loss()
    for step in range(30):
        rows = slice((step % 4) * 128, (step % 4 + 1) * 128)
        for param in model.parameters():
            param.grad = None
        criterion(model(Tensor(images[rows])), Tensor(labels[rows])).backward()
        for param in model.parameters():
            param.data -= 0.5 * param.grad.data
    after = full_loss()
    assert after < 0.5 * before, f"30 SGD steps should at least halve the loss: {before:.3f} -> {after:.3f}"


@pytest.mark.parametrize("batch", [1, 16])
def test_gradient_step_lowers_the_loss_on_the_same_batch(batch):
    model = Sequential(Linear(6, 8, seed=3), ReLU(), Linear(8, 4, seed=4))
    gen = np.random.default_rng(batch)
    x, labels = Tensor(gen.standard_normal((batch, 6))), Tensor(gen.integers(0, 4, batch))
    loss = CrossEntropyLoss()(model(x), labels)
    loss.backward()
    for param in model.parameters():
        param.data -= 1e-2 * param.grad.data
    with no_grad():
        assert float(CrossEntropyLoss()(model(x), labels).data) < float(loss.data)
