"""Autograd (module 06) on every compute backend of module 15: the same gradients, fused or not.

Module 15 switches matmul and activations through dispatch points and fuses Linear + activation
in backend_forward; every one of those paths must stay on the gradient graph. This file spans two
modules, so it lives outside tests/modules/.
"""

import numpy as np
import pytest

from tinytorch.core.activations import GELU, ReLU, Tanh, register_activation_kernel
from tinytorch.core.autograd import no_grad
from tinytorch.core.layers import Linear, Sequential, get_matmul_backend, register_matmul, set_matmul_backend
from tinytorch.core.losses import CrossEntropyLoss
from tinytorch.core.tensor import Tensor
from tinytorch.optimization.acceleration import ROUTED_ACTIVATIONS, backend_forward, set_backend


@pytest.fixture(autouse=True)
def untouched_dispatch_points():
    """Leave modules 02 and 03 as this test found them: no activation routed, the same matmul."""
    matmul_before = get_matmul_backend()
    yield
    set_backend("numpy")                  # lets the outgoing backend undo its settings (threads)
    for name in ROUTED_ACTIVATIONS:
        register_activation_kernel(name, None)
    set_matmul_backend(matmul_before)


def mlp():
    return Sequential(Linear(10, 16, seed=0), GELU(), Linear(16, 12, seed=1), ReLU(),
                      Linear(12, 8, seed=2), Tanh(), Linear(8, 4, seed=3))


def gradients(backend, forward):
    set_backend(backend)
    model = mlp()
    gen = np.random.default_rng(0)
    x, labels = gen.standard_normal((9, 10)).astype(np.float32), gen.integers(0, 4, 9)
    loss = CrossEntropyLoss()(forward(model, x), Tensor(labels))
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None for g in grads), f"{backend}: a parameter got no gradient"
    return [g.data.copy() for g in grads], float(loss.data)


PLAIN = ("model(x)", lambda model, x: model(Tensor(x)))
FUSED = ("backend_forward", backend_forward)


@pytest.mark.parametrize("forward", [PLAIN, FUSED], ids=lambda f: f[0])
@pytest.mark.parametrize("backend", ["naive", "numpy", "optimized"])
def test_gradients_are_equal_on_every_backend(backend, forward):
    reference, reference_loss = gradients("numpy", PLAIN[1])
    got, loss = gradients(backend, forward[1])
    np.testing.assert_allclose(loss, reference_loss, rtol=1e-5)
    for ref, grad in zip(reference, got):
        np.testing.assert_allclose(grad, ref, rtol=1e-4, atol=1e-6)


def test_fused_forward_is_one_node_per_linear_and_activation():
    set_backend("optimized")
    model = Sequential(Linear(4, 3, seed=0), ReLU(), Linear(3, 2, seed=1))
    out = backend_forward(model, np.ones((2, 4), np.float32))
    assert out.grad_fn.op == "linear" and out.grad_fn.params == {"activation": None}
    first = out.grad_fn.inputs[0]
    assert first.grad_fn.op == "linear" and first.grad_fn.params == {"activation": "relu"}
    with no_grad():
        assert backend_forward(model, np.ones((2, 4), np.float32)).grad_fn is None


def test_backward_matmuls_run_on_the_chosen_backend():
    calls = []

    def counting_kernel(a, b):
        calls.append((a.shape, b.shape))
        return np.matmul(a, b)

    register_matmul("counting-autograd", counting_kernel)
    previous = set_matmul_backend("counting-autograd")
    try:
        layer = Linear(5, 3, seed=0)
        out = layer(Tensor(np.ones((4, 5), np.float32)))
        calls.clear()
        out.sum().backward()
    finally:
        set_matmul_backend(previous)
    assert get_matmul_backend() == previous
    assert calls == [((5, 4), (4, 3))], "the weight gradient x^T @ g goes through the dispatch point (x needs none)"


def test_training_step_on_the_optimized_backend():
    set_backend("optimized")
    model = mlp()
    gen = np.random.default_rng(1)
    x, labels = Tensor(gen.standard_normal((32, 10)).astype(np.float32)), Tensor(gen.integers(0, 4, 32))
    losses = []
    for _ in range(5):
        for p in model.parameters():
            p.grad = None
        loss = CrossEntropyLoss()(backend_forward(model, x), labels)
        loss.backward()
        for p in model.parameters():
            p.data -= 0.1 * p.grad.data
        losses.append(float(loss.data))
    assert losses[-1] < losses[0]
