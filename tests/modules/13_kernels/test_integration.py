"""A Linear -> ReLU model gives the same outputs with the framework defaults and with this module's kernels."""

import numpy as np
import pytest

from tinytorch.core.activations import ReLU
from tinytorch.core.kernels import cache_friendly_matmul, parallel_matmul, parallel_relu, vectorized_relu
from tinytorch.core.layers import Linear, Sequential, get_matmul_backend, register_matmul, set_matmul_backend
from tinytorch.core.tensor import Tensor

OPTIMIZED = {
    "kernels-tiled": lambda a, b: cache_friendly_matmul(a, b, block_size=16),
    "kernels-parallel": lambda a, b: parallel_matmul(a, b, block_size=8),
}


@pytest.fixture
def restore_backend():
    before = get_matmul_backend()
    yield
    set_matmul_backend(before)


@pytest.mark.parametrize("backend", sorted(OPTIMIZED))
@pytest.mark.parametrize("relu", [vectorized_relu, parallel_relu])
def test_linear_relu_same_outputs(backend, relu, restore_backend):
    layer = Linear(64, 24, seed=3)
    model = Sequential(layer, ReLU())
    x = Tensor(np.random.default_rng(0).standard_normal((45, 64)).astype(np.float32))
    baseline = model(x).numpy()

    register_matmul(backend, OPTIMIZED[backend])
    set_matmul_backend(backend)
    hidden = layer(x).numpy()
    optimized = relu(hidden)

    assert optimized.dtype == baseline.dtype == np.float32
    np.testing.assert_allclose(optimized, baseline, rtol=1e-5, atol=1e-5)
    assert (baseline == 0).any() and (baseline > 0).any()


def test_two_layer_mlp_with_tiled_backend(restore_backend):
    model = Sequential(Linear(32, 48, seed=0), ReLU(), Linear(48, 10, seed=1))
    x = Tensor(np.random.default_rng(1).standard_normal((3, 7, 32)).astype(np.float32))
    baseline = model(x).numpy()
    register_matmul("kernels-tiled", OPTIMIZED["kernels-tiled"])
    set_matmul_backend("kernels-tiled")
    np.testing.assert_allclose(model(x).numpy(), baseline, rtol=1e-5, atol=1e-5)
