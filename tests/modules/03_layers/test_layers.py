"""Package tests for tinytorch.core.layers: the naive kernel, the dispatch point, Linear, Sequential."""

import math

import numpy as np
import pytest

from tinytorch.core.activations import ReLU, Tanh
from tinytorch.core.layers import (
    Linear,
    Sequential,
    available_matmul_backends,
    count_parameters,
    get_matmul_backend,
    matmul,
    matmul_naive,
    register_matmul,
    set_matmul_backend,
)
from tinytorch.core.tensor import Tensor


@pytest.fixture
def restore_backend():
    """Whatever a test switches to, the next test starts on the backend that was current before."""
    before = get_matmul_backend()
    yield
    set_matmul_backend(before)


def recording_backend(calls: list):
    """A real kernel (np.dot) that also records the shapes it was called with."""
    def kernel(a, b):
        calls.append((a.shape, b.shape))
        return np.dot(a, b)
    return kernel


# --- matmul_naive ------------------------------------------------------------------------------

@pytest.mark.parametrize("m, k, n", [(1, 1, 1), (3, 5, 2), (7, 4, 6), (1, 9, 1)])
def test_matmul_naive_matches_einsum_float64(m, k, n):
    gen = np.random.default_rng(m * 100 + k * 10 + n)
    a, b = gen.standard_normal((m, k)), gen.standard_normal((k, n))
    np.testing.assert_allclose(matmul_naive(a, b), np.einsum("ik,kj->ij", a, b), rtol=1e-12, atol=1e-12)


def test_matmul_naive_keeps_float32():
    gen = np.random.default_rng(0)
    a, b = gen.standard_normal((4, 8)).astype(np.float32), gen.standard_normal((8, 3)).astype(np.float32)
    out = matmul_naive(a, b)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, a.astype(np.float64) @ b.astype(np.float64), rtol=1e-5, atol=1e-5)


def test_matmul_naive_integers_are_exact():
    a = np.array([[1, 2], [3, 4]])
    np.testing.assert_array_equal(matmul_naive(a, a), [[7, 10], [15, 22]])


@pytest.mark.parametrize("shape_a, shape_b", [((2, 3), (2, 3)), ((3,), (3, 2)), ((2, 2, 2), (2, 2))])
def test_matmul_naive_bad_shapes_raise_naming_them(shape_a, shape_b):
    with pytest.raises(ValueError, match=r"\(.*\).*\(.*\)"):
        matmul_naive(np.ones(shape_a), np.ones(shape_b))


# --- dispatch point ----------------------------------------------------------------------------

def test_builtin_backends_and_default():
    assert get_matmul_backend() == "numpy"
    assert {"numpy", "naive"} <= set(available_matmul_backends())


def test_set_returns_previous_name(restore_backend):
    assert set_matmul_backend("naive") == "numpy"
    assert get_matmul_backend() == "naive"
    assert set_matmul_backend("numpy") == "naive"


def test_unknown_backend_raises_listing_registered_names(restore_backend):
    with pytest.raises(ValueError) as info:
        set_matmul_backend("tpu")
    message = str(info.value)
    assert "tpu" in message and all(name in message for name in available_matmul_backends())
    assert get_matmul_backend() == "numpy"


def test_available_backends_sorted_and_include_registered():
    register_matmul("zz-test-einsum", lambda a, b: np.einsum("ik,kj->ij", a, b))
    names = available_matmul_backends()
    assert "zz-test-einsum" in names and names == sorted(names)


@pytest.mark.parametrize("name, fn", [("", np.matmul), (None, np.matmul), ("not-a-function", "np.matmul")])
def test_register_rejects_bad_arguments(name, fn):
    with pytest.raises(TypeError):
        register_matmul(name, fn)


def test_registering_a_backend_changes_what_matmul_calls(restore_backend):
    calls = []
    register_matmul("recording", recording_backend(calls))
    a, b = np.ones((2, 3)), np.ones((3, 4))
    matmul(a, b)
    assert calls == []                        # registered, not yet current
    set_matmul_backend("recording")
    out = matmul(a, b)
    assert calls == [((2, 3), (3, 4))]
    np.testing.assert_array_equal(out, np.full((2, 4), 3.0))


def test_reregistering_a_name_replaces_the_kernel(restore_backend):
    register_matmul("replaceable", lambda a, b: np.zeros((a.shape[0], b.shape[1])))
    register_matmul("replaceable", lambda a, b: np.ones((a.shape[0], b.shape[1])))
    set_matmul_backend("replaceable")
    np.testing.assert_array_equal(matmul(np.ones((2, 2)), np.ones((2, 2))), np.ones((2, 2)))


# --- matmul routing ----------------------------------------------------------------------------

def test_matmul_returns_array_for_arrays_and_tensor_for_tensors():
    gen = np.random.default_rng(1)
    a, b = gen.standard_normal((3, 4)), gen.standard_normal((4, 2))
    out = matmul(a, b)
    assert type(out) is np.ndarray and out.dtype == np.float64
    np.testing.assert_allclose(out, np.einsum("ik,kj->ij", a, b), rtol=1e-12)
    for left, right in [(Tensor(a), b), (a, Tensor(b)), (Tensor(a), Tensor(b))]:
        got = matmul(left, right)
        assert isinstance(got, Tensor) and got.dtype == np.float32
        np.testing.assert_allclose(got.data, np.einsum("ik,kj->ij", a, b), rtol=1e-5, atol=1e-5)


def test_matmul_folds_leading_dimensions_into_one_call(restore_backend):
    calls = []
    register_matmul("recording-fold", recording_backend(calls))
    set_matmul_backend("recording-fold")
    x = np.random.default_rng(2).standard_normal((2, 3, 5, 4))
    w = np.random.default_rng(3).standard_normal((4, 6))
    out = matmul(x, w)
    assert calls == [((30, 4), (4, 6))]
    np.testing.assert_allclose(out, np.einsum("abik,kj->abij", x, w), rtol=1e-12, atol=1e-12)


def test_matmul_vector_times_matrix():
    np.testing.assert_allclose(matmul(np.array([1.0, 2.0]), np.array([[1.0, 0.0, 2.0], [3.0, 1.0, 0.0]])), [7.0, 2.0, 2.0], rtol=0)


def test_matmul_batched_right_operand_calls_backend_per_slice(restore_backend):
    calls = []
    register_matmul("recording-batch", recording_backend(calls))
    set_matmul_backend("recording-batch")
    gen = np.random.default_rng(4)
    q, k = gen.standard_normal((2, 3, 5, 4)), gen.standard_normal((3, 4, 5))
    out = matmul(q, k)
    assert len(calls) == 6 and set(calls) == {((5, 4), (4, 5))}
    np.testing.assert_allclose(out, np.einsum("bhik,hkj->bhij", q, k), rtol=1e-12, atol=1e-12)


def test_naive_backend_agrees_with_numpy_backend(restore_backend):
    gen = np.random.default_rng(5)
    a, b = gen.standard_normal((2, 4, 3)), gen.standard_normal((3, 5))
    fast = matmul(a, b)
    set_matmul_backend("naive")
    np.testing.assert_allclose(matmul(a, b), fast, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape_a, shape_b", [((2, 3), (4, 5)), ((3,), (3,)), ((2, 3), (3,)), ((2, 2, 3), (4, 3, 1))])
def test_matmul_bad_shapes_raise_before_any_backend_call(restore_backend, shape_a, shape_b):
    calls = []
    register_matmul("recording-errors", recording_backend(calls))
    set_matmul_backend("recording-errors")
    with pytest.raises(ValueError, match="shape"):
        matmul(np.ones(shape_a), np.ones(shape_b))
    assert calls == []


# --- Linear ------------------------------------------------------------------------------------

def test_linear_shapes_and_dtypes():
    layer = Linear(7, 3)
    assert layer.weight.shape == (7, 3) and layer.weight.dtype == np.float32
    assert layer.bias.shape == (3,) and layer.bias.dtype == np.float32
    np.testing.assert_array_equal(layer.bias.data, 0.0)


@pytest.mark.parametrize("fan_in, fan_out", [(784, 256), (10, 10), (3, 500)])
def test_linear_xavier_uniform_bounds_and_variance(fan_in, fan_out):
    weights = Linear(fan_in, fan_out, seed=11).weight.data.astype(np.float64)
    bound = math.sqrt(6 / (fan_in + fan_out))
    assert np.abs(weights).max() <= bound * (1 + 1e-6)
    assert np.abs(weights).max() > 0.9 * bound            # the whole interval is used, not a narrower one
    # variance of U(-a, a) is a^2 / 3; with >= 100 draws the sample is within 30% (seeded)
    np.testing.assert_allclose(weights.var(), bound**2 / 3, rtol=0.3)
    assert abs(weights.mean()) < bound / 5


def test_linear_same_seed_same_weights_different_seed_different():
    np.testing.assert_array_equal(Linear(8, 4, seed=3).weight.data, Linear(8, 4, seed=3).weight.data)
    assert not np.array_equal(Linear(8, 4, seed=3).weight.data, Linear(8, 4, seed=4).weight.data)


def test_linear_forward_matches_affine_map():
    layer = Linear(5, 4, seed=0)
    layer.bias = Tensor([1.0, -1.0, 0.5, 0.0])
    x = np.random.default_rng(6).standard_normal((3, 5)).astype(np.float32)
    y = layer(Tensor(x))
    assert isinstance(y, Tensor) and y.shape == (3, 4) and y.dtype == np.float32
    expected = np.einsum("bi,io->bo", x.astype(np.float64), layer.weight.data.astype(np.float64)) + [1.0, -1.0, 0.5, 0.0]
    np.testing.assert_allclose(y.data, expected, rtol=1e-5, atol=1e-5)


def test_linear_forward_goes_through_the_dispatch_point(restore_backend):
    calls = []
    register_matmul("recording-linear", recording_backend(calls))
    set_matmul_backend("recording-linear")
    Linear(4, 2, seed=0)(Tensor(np.ones((3, 4))))
    assert calls == [((3, 4), (4, 2))]


def test_linear_without_bias_has_one_parameter():
    layer = Linear(4, 2, bias=False, seed=1)
    assert layer.bias is None and layer.parameters() == [layer.weight]
    x = np.random.default_rng(7).standard_normal((2, 4)).astype(np.float32)
    np.testing.assert_allclose(layer(Tensor(x)).data, x @ layer.weight.data, rtol=1e-6, atol=1e-6)


def test_linear_rejects_wrong_feature_count():
    with pytest.raises(ValueError, match=r"\(2, 6\)"):
        Linear(5, 3)(Tensor(np.ones((2, 6))))


# --- Sequential and count_parameters -------------------------------------------------------------

def test_sequential_equals_manual_composition():
    first, second, third = Linear(6, 16, seed=1), Linear(16, 8, seed=2), Linear(8, 2, seed=3)
    model = Sequential(first, ReLU(), second, Tanh(), third)
    x = Tensor(np.random.default_rng(8).standard_normal((4, 6)))
    manual = third(Tanh()(second(ReLU()(first(x)))))
    np.testing.assert_allclose(model(x).data, manual.data, rtol=0, atol=0)
    np.testing.assert_allclose(model.forward(x).data, manual.data, rtol=0, atol=0)


def test_sequential_parameters_in_layer_order():
    first, second = Linear(3, 4, seed=1), Linear(4, 2, bias=False, seed=2)
    model = Sequential(first, ReLU(), second)
    assert model.layers[1].__class__ is ReLU
    params = model.parameters()
    assert [id(p) for p in params] == [id(first.weight), id(first.bias), id(second.weight)]


def test_count_parameters_matches_formula():
    model = Sequential(Linear(784, 256), ReLU(), Linear(256, 10))
    assert count_parameters(model) == (784 * 256 + 256) + (256 * 10 + 10)
    assert count_parameters(Sequential(ReLU())) == 0
    assert count_parameters(Linear(6, 3, bias=False)) == 18


def test_empty_sequential_is_identity():
    x = Tensor([[1.0, 2.0]])
    np.testing.assert_array_equal(Sequential()(x).data, x.data)

