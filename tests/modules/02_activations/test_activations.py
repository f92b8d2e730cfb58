"""Package tests for tinytorch.core.activations: float64 oracles, dtype kept, no overflow at |x| = 1000."""

import math
import warnings

import numpy as np
import pytest

from tinytorch.core.activations import GELU, ReLU, Sigmoid, Softmax, Tanh
from tinytorch.core.tensor import Tensor

ELEMENTWISE = [ReLU, Sigmoid, Tanh, GELU]


def grid(lo: float, hi: float, count: int) -> np.ndarray:
    """Evenly spaced float64 values that float32 represents exactly, so both dtypes see the same inputs."""
    return np.linspace(lo, hi, count).astype(np.float32).astype(np.float64)


def without_warnings(fn, *args):
    """fn(*args) with every warning (NumPy overflow, invalid value) turned into an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return fn(*args)


@pytest.mark.parametrize("cls", ELEMENTWISE + [Softmax])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_output_is_tensor_of_input_dtype_and_shape(cls, dtype):
    x = Tensor(np.random.default_rng(0).standard_normal((3, 7)), dtype=dtype)
    out = cls()(x)
    assert isinstance(out, Tensor) and out.dtype == dtype and out.shape == (3, 7)


@pytest.mark.parametrize("cls", ELEMENTWISE + [Softmax])
def test_call_is_forward(cls):
    x = Tensor(np.random.default_rng(1).standard_normal((2, 5)))
    np.testing.assert_array_equal(cls()(x).data, cls().forward(x).data)


def test_relu_matches_where():
    x = np.random.default_rng(2).standard_normal((40, 30)).astype(np.float32)
    np.testing.assert_array_equal(ReLU()(Tensor(x)).data, np.where(x < 0, np.float32(0), x))


def test_sigmoid_matches_tanh_identity():
    x = grid(-30, 30, 601)
    out = Sigmoid()(Tensor(x, dtype=np.float64)).data
    np.testing.assert_allclose(out, 0.5 + 0.5 * np.tanh(0.5 * x), rtol=1e-12, atol=1e-15)


def test_sigmoid_keeps_relative_precision_for_very_negative_inputs():
    # 1 + tanh(x/2) would cancel to 0 in float32 here; the true value is about e^x
    x = np.array([-20.0, -40.0, -80.0])
    out = Sigmoid()(Tensor(x, dtype=np.float32)).data.astype(np.float64)
    np.testing.assert_allclose(out, [1 / (1 + math.exp(-v)) for v in x], rtol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_exact_limits_without_overflow(dtype):
    out = without_warnings(Sigmoid(), Tensor([-1000.0, 1000.0], dtype=dtype))
    np.testing.assert_array_equal(out.data, [0.0, 1.0])


def test_tanh_matches_exp_formula_and_saturates():
    x = grid(-8, 8, 161)
    oracle = np.array([(math.exp(v) - math.exp(-v)) / (math.exp(v) + math.exp(-v)) for v in x])
    np.testing.assert_allclose(Tanh()(Tensor(x, dtype=np.float64)).data, oracle, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(without_warnings(Tanh(), Tensor([-1000.0, 1000.0])).data, [-1.0, 1.0])


def test_gelu_matches_tanh_approximation_formula():
    x = grid(-8, 8, 161)
    u = math.sqrt(2.0) / math.sqrt(math.pi) * (x + 0.044715 * np.power(x, 3))
    oracle = x * (np.exp(2 * u) / (np.exp(2 * u) + 1))
    np.testing.assert_allclose(GELU()(Tensor(x, dtype=np.float64)).data, oracle, rtol=1e-12, atol=1e-15)


def test_gelu_is_close_to_exact_erf_gelu():
    x = grid(-5, 5, 201)
    exact = np.array([0.5 * v * math.erfc(-v / math.sqrt(2)) for v in x])
    np.testing.assert_allclose(GELU()(Tensor(x, dtype=np.float64)).data, exact, rtol=0, atol=1e-3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gelu_limits_without_overflow(dtype):
    out = without_warnings(GELU(), Tensor([-1e30, -1000.0, 1000.0, 1e30], dtype=dtype))
    np.testing.assert_allclose(out.data, np.array([0.0, 0.0, 1000.0, 1e30], dtype=dtype), rtol=1e-7, atol=0)


def softmax_reference(x: np.ndarray, axis: int) -> np.ndarray:
    """Textbook softmax on float64 inputs small enough not to overflow, one slice at a time."""
    moved = np.moveaxis(x, axis, -1)
    rows = moved.reshape(-1, moved.shape[-1])
    out = np.array([[math.exp(v) / math.fsum(math.exp(w) for w in row) for v in row] for row in rows])
    return np.moveaxis(out.reshape(moved.shape), -1, axis)


@pytest.mark.parametrize("axis", [0, 1, 2, -1, -2])
def test_softmax_along_any_axis(axis):
    x = np.random.default_rng(3).standard_normal((3, 4, 5))
    out = Softmax(axis=axis)(Tensor(x, dtype=np.float64)).data
    np.testing.assert_allclose(out, softmax_reference(x, axis), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(out.sum(axis=axis), 1.0, rtol=1e-12)


def test_softmax_default_axis_is_last():
    x = np.random.default_rng(4).standard_normal((2, 6))
    np.testing.assert_allclose(Softmax()(Tensor(x, dtype=np.float64)).data, softmax_reference(x, 1), rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_large_scores_without_overflow(dtype):
    scores = Tensor([[1000.0, 1000.0, 1000.0], [1000.0, 0.0, -1000.0], [-1000.0, -1001.0, -1000.0]], dtype=dtype)
    out = without_warnings(Softmax(), scores).data
    e = math.exp(-1.0)
    np.testing.assert_allclose(out, [[1 / 3] * 3, [1.0, 0.0, 0.0], [1 / (2 + e), e / (2 + e), 1 / (2 + e)]], rtol=1e-6, atol=1e-30)


def test_softmax_masked_scores_get_zero_probability():
    out = without_warnings(Softmax(), Tensor([[0.0, -np.inf, 0.0, -np.inf]])).data
    np.testing.assert_array_equal(out, [[0.5, 0.0, 0.5, 0.0]])


def test_activations_have_no_parameters():
    for cls in ELEMENTWISE + [Softmax]:
        assert cls().parameters() == []


# --- the activation dispatch point (given code; module 15's backends plug in here) ---------------

@pytest.fixture
def routed():
    """Register kernels for a test and always remove them afterwards."""
    from tinytorch.core.activations import register_activation_kernel

    names = []

    def route(name, kernel):
        names.append(name)
        register_activation_kernel(name, kernel)

    yield route
    for name in names:
        register_activation_kernel(name, None)


def test_registered_kernel_replaces_forward_and_keeps_dtype(routed):
    sevens = lambda a: np.full_like(a, 7)  # noqa: E731 - an obviously different kernel
    routed("relu", sevens)
    out = ReLU()(Tensor(np.array([-1.0, 2.0], dtype=np.float32)))
    np.testing.assert_array_equal(out.data, np.array([7.0, 7.0], dtype=np.float32))
    assert out.data.dtype == np.float32


def test_removing_the_kernel_restores_forward(routed):
    from tinytorch.core.activations import register_activation_kernel

    routed("relu", lambda a: np.full_like(a, 7))
    register_activation_kernel("relu", None)
    x = np.array([-1.0, 2.0], dtype=np.float32)
    np.testing.assert_array_equal(ReLU()(Tensor(x)).data, np.where(x > 0, x, 0))


def test_activations_with_settings_are_not_routed(routed):
    routed("softmax", lambda a: np.full_like(a, 7))
    scores = np.array([[1.0, 2.0]], dtype=np.float32)
    out = Softmax(axis=-1)(Tensor(scores)).data
    np.testing.assert_allclose(out.sum(axis=-1), [1.0], rtol=1e-6)


def test_a_kernel_must_be_callable():
    from tinytorch.core.activations import register_activation_kernel

    with pytest.raises(TypeError, match="callable"):
        register_activation_kernel("relu", 42)
