"""Package tests for the backend seam: every backend against the naive oracle, switching, threads, benchmark."""

import math
import re

import numba
import numpy as np
import pytest
from threadpoolctl import threadpool_info

import tinytorch
from tinytorch.core.activations import GELU, ReLU, Tanh
from tinytorch.core.layers import Linear, Sequential, get_matmul_backend, matmul, register_matmul, set_matmul_backend
from tinytorch.core.spatial import Conv2d, Flatten, MaxPool2d, conv2d_naive, get_conv2d_backend
from tinytorch.core.tensor import Tensor
from tinytorch.profiling.profiler import MemoryProfiler
from tinytorch.optimization.acceleration import (
    ACTIVATIONS,
    MATMUL_KERNELS,
    BenchmarkResult,
    ComputeBackend,
    NaiveBackend,
    NumpyBackend,
    OptimizedBackend,
    available_backends,
    backend_forward,
    benchmark,
    bias_activation_kernel,
    get_backend,
    register_backend,
    set_backend,
)

BACKENDS = ["naive", "numpy", "optimized"]


@pytest.fixture(autouse=True)
def back_to_numpy():
    """Each test starts and ends on the default backend, whatever it switched to."""
    set_backend("numpy")
    yield
    set_backend("numpy")


def relu_oracle(x):
    return np.where(x > 0, x, np.zeros_like(x))


def gelu_oracle(x):
    x = np.asarray(x, dtype=np.float64)
    u = np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3)
    return x / (1.0 + np.exp(-2.0 * u))


def blas_threads():
    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


def make_backend(name):
    return {"naive": NaiveBackend, "numpy": NumpyBackend, "optimized": OptimizedBackend}[name]()


# --- each backend against the oracle ------------------------------------------------------------

@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("m, k, n", [(1, 1, 1), (3, 7, 2), (9, 16, 5)])
def test_backend_matmul_equals_naive_oracle(name, m, k, n):
    rng = np.random.default_rng(m * 100 + k * 10 + n)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    oracle = NaiveBackend().matmul(a.astype(np.float64), b.astype(np.float64))
    got = make_backend(name).matmul(a, b)
    assert got.shape == (m, n)
    np.testing.assert_allclose(got, oracle, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backend_activations_equal_oracles_and_keep_dtype(name, dtype):
    x = (np.random.default_rng(5).standard_normal((4, 9)) * 3).astype(dtype)
    backend = make_backend(name)
    relu, gelu = backend.relu(x), backend.gelu(x)
    assert relu.dtype == dtype and gelu.dtype == dtype
    np.testing.assert_array_equal(relu, relu_oracle(x))
    tol = dict(rtol=1e-5, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(gelu, gelu_oracle(x), **tol)


@pytest.mark.parametrize("kernel", sorted(MATMUL_KERNELS))
def test_optimized_backend_each_forced_kernel_is_correct(kernel):
    rng = np.random.default_rng(6)
    a = rng.standard_normal((33, 70)).astype(np.float32)
    b = rng.standard_normal((70, 17)).astype(np.float32)
    got = OptimizedBackend(matmul_kernel=kernel).matmul(a, b)
    np.testing.assert_allclose(got, np.einsum("ik,kj->ij", a.astype(np.float64), b.astype(np.float64)),
                               rtol=1e-4, atol=1e-4)


def test_optimized_backend_remembers_its_measured_choice_per_shape():
    backend = OptimizedBackend()
    a = np.ones((8, 12), np.float32)
    b = np.ones((12, 4), np.float32)
    backend.matmul(a, b)
    backend.matmul(np.ones((2, 12), np.float32), b)
    assert set(backend.tuned) == {((8, 12), (12, 4)), ((2, 12), (12, 4))}
    assert set(backend.tuned.values()) <= set(MATMUL_KERNELS)
    assert backend.kernel_for(a, b) == backend.tuned[((8, 12), (12, 4))]


def test_optimized_backend_batched_and_float64_fall_back_correctly():
    backend = OptimizedBackend()
    rng = np.random.default_rng(7)
    batched, square = rng.standard_normal((3, 4, 5)), rng.standard_normal((5, 2))
    np.testing.assert_allclose(backend.matmul(batched, square), np.einsum("bik,kj->bij", batched, square), rtol=1e-12)
    assert backend.tuned == {}   # nothing to tune for operands the kernels do not take


def test_optimized_backend_rejects_unknown_kernel_and_bad_threads():
    with pytest.raises(ValueError, match="blas"):
        OptimizedBackend(matmul_kernel="cublas")
    with pytest.raises(ValueError):
        OptimizedBackend(threads=0)


def test_base_backend_says_what_is_missing():
    with pytest.raises(NotImplementedError, match="matmul"):
        ComputeBackend().matmul(np.ones((2, 2)), np.ones((2, 2)))


# --- linear: matmul, bias, activation ---------------------------------------------------------

@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_backend_linear_equals_oracle(name, activation):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 3, 12)).astype(np.float32)      # leading dimensions fold into rows
    weight = rng.standard_normal((12, 7)).astype(np.float32)
    bias = rng.standard_normal(7).astype(np.float32)
    pre = np.einsum("abi,io->abo", x.astype(np.float64), weight.astype(np.float64)) + bias
    oracle = {None: pre, "relu": relu_oracle(pre), "gelu": gelu_oracle(pre)}[activation]
    got = make_backend(name).linear(x, weight, bias, activation)
    assert got.shape == (2, 3, 7) and got.dtype == np.float32
    np.testing.assert_allclose(got, oracle, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", BACKENDS)
def test_backend_linear_without_bias_and_unknown_activation(name):
    x, weight = np.ones((4, 3), np.float32), np.full((3, 2), -1.0, np.float32)
    np.testing.assert_array_equal(make_backend(name).linear(x, weight, None, "relu"), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="swish"):
        make_backend(name).linear(x, weight, None, "swish")


def test_optimized_linear_rejects_a_bias_of_the_wrong_length():
    with pytest.raises(ValueError, match=r"\(5,\)"):
        OptimizedBackend().linear(np.ones((2, 3), np.float32), np.ones((3, 4), np.float32), np.ones(5, np.float32))


def test_optimized_linear_allocates_only_its_output():
    rng = np.random.default_rng(12)
    x = rng.standard_normal((128, 96)).astype(np.float32)
    weight = rng.standard_normal((96, 1024)).astype(np.float32)
    bias = rng.standard_normal(1024).astype(np.float32)
    backend = OptimizedBackend(matmul_kernel="blas")
    for activation in ACTIVATIONS:
        backend.linear(x, weight, bias, activation)   # compile first
        stats = MemoryProfiler().measure(backend.linear, x, weight, bias, activation)
        assert stats.peak_bytes <= 128 * 1024 * 4 + 64 * 1024, activation
    unfused = MemoryProfiler().measure(NumpyBackend().linear, x, weight, bias, "gelu")
    assert unfused.peak_bytes >= 3 * 128 * 1024 * 4   # the three-step version really holds temporaries


def test_epilogue_kernel_in_place_and_nan_stays_nan():
    out = np.array([[-1.0, np.nan, 2.0], [0.5, -0.5, np.inf]], dtype=np.float32)
    bias = np.array([0.5, 0.0, -1.0], dtype=np.float32)
    shifted = out + bias
    relu = out.copy()
    bias_activation_kernel(relu, bias, ACTIVATIONS["relu"])
    np.testing.assert_array_equal(relu, np.where(shifted > 0, shifted, np.where(np.isnan(shifted), np.nan, 0.0)))
    gelu = out.copy()
    bias_activation_kernel(gelu, bias, ACTIVATIONS["gelu"])
    np.testing.assert_allclose(gelu[np.isfinite(shifted)], gelu_oracle(shifted[np.isfinite(shifted)]), rtol=1e-5, atol=2e-6)
    assert np.isnan(gelu[0, 1]) and gelu[1, 2] == np.inf


# --- switching ---------------------------------------------------------------------------------

def test_default_backend_is_numpy():
    assert get_backend().name == "numpy" and isinstance(get_backend(), NumpyBackend)


def test_set_backend_returns_previous_and_routes_matmul():
    assert set_backend("naive") == "numpy"
    assert get_matmul_backend() == "naive" and get_backend().name == "naive"
    assert set_backend("optimized") == "naive"
    a, b = np.ones((2, 3), np.float32), np.ones((3, 4), np.float32)
    np.testing.assert_array_equal(matmul(a, b), np.full((2, 4), 3.0))


def test_set_backend_unknown_name_lists_choices_and_changes_nothing():
    set_backend("naive")
    with pytest.raises(ValueError) as info:
        set_backend("tpu")
    assert all(name in str(info.value) for name in BACKENDS)
    assert get_backend().name == "naive"


def test_top_level_names_forward_to_this_module():
    assert tinytorch.set_backend is set_backend and tinytorch.get_backend is get_backend
    assert tinytorch.benchmark is benchmark
    tinytorch.set_backend("optimized")
    assert tinytorch.get_backend().name == "optimized"


def test_get_backend_refuses_a_matmul_registered_around_it():
    register_matmul("test-einsum", lambda a, b: np.einsum("ik,kj->ij", a, b))
    set_matmul_backend("test-einsum")
    with pytest.raises(RuntimeError, match="test-einsum"):
        get_backend()


def test_custom_backend_plugs_in_through_register_backend():
    class EinsumBackend(NumpyBackend):
        name = "einsum-test"

        def matmul(self, a, b):
            return np.einsum("ik,kj->ij", a, b)

    register_backend(EinsumBackend())
    assert "einsum-test" in available_backends()
    set_backend("einsum-test")
    layer = Linear(3, 2, seed=0)
    x = np.ones((4, 3), np.float32)
    np.testing.assert_allclose(layer(x).data, np.ones((4, 3)) @ layer.weight.data.astype(np.float64), rtol=1e-6)


def test_optimized_threads_are_set_and_restored():
    blas_before, numba_before = blas_threads(), numba.get_num_threads()
    register_backend(OptimizedBackend(threads=1))
    try:
        set_backend("optimized")
        assert set(blas_threads()) == {1} and numba.get_num_threads() == 1
        set_backend("numpy")
        assert blas_threads() == blas_before and numba.get_num_threads() == numba_before
    finally:
        register_backend(OptimizedBackend())


# --- conv2d: module 09's seam ------------------------------------------------------------------

CONV_CASES = [  # (x shape, weight shape, stride, padding): kernels that do not divide the input
    ((2, 3, 7, 6), (4, 3, 3, 2), 2, 1),
    ((1, 2, 5, 5), (3, 2, 3, 3), 1, 0),
    ((2, 1, 9, 8), (2, 1, 4, 4), 3, 2),
]


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CONV_CASES)
def test_backend_conv2d_equals_naive_oracle(name, dtype, case):
    x_shape, w_shape, stride, padding = case
    rng = np.random.default_rng(sum(x_shape) + stride)
    x, weight = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    expected = conv2d_naive(x, weight, stride, padding)                   # float64 loops
    got = make_backend(name).conv2d(x.astype(dtype), weight.astype(dtype), stride, padding)
    assert got.dtype == dtype and got.shape == expected.shape
    tolerance = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(got, expected, rtol=tolerance, atol=tolerance)


def test_conv2d_on_other_dtypes_goes_through_the_base_im2col_gemm():
    """Integers (and mixed dtypes) skip the compiled unfold: module 09's im2col on the backend's matmul."""
    rng = np.random.default_rng(4)
    x, weight = rng.integers(-3, 4, (2, 3, 6, 5)), rng.integers(-2, 3, (4, 3, 3, 2))
    got = OptimizedBackend().conv2d(x, weight, 2, 1)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, conv2d_naive(x, weight, 2, 1).astype(np.int64))   # exact in integers
    mixed = OptimizedBackend().conv2d(x.astype(np.float32), weight.astype(np.float64), 1, 0)
    assert mixed.dtype == np.float64
    np.testing.assert_allclose(mixed, conv2d_naive(x, weight, 1, 0), rtol=1e-12, atol=1e-12)


def small_cnn():
    return Sequential(Conv2d(1, 4, 3, padding=1, seed=0), ReLU(), MaxPool2d(2),
                      Conv2d(4, 6, 3, padding=1, seed=1), ReLU(), MaxPool2d(2), Flatten(), Linear(24, 3, seed=2))


@pytest.mark.parametrize("name", BACKENDS)
def test_unchanged_cnn_forward_and_backward_on_every_backend(name):
    """set_backend moves a CNN's convolutions (forward, and backward's GEMMs) with no change to the model."""
    x = np.random.default_rng(9).standard_normal((2, 1, 8, 8)).astype(np.float32)
    set_backend("naive")
    oracle_model = small_cnn()
    oracle_out = oracle_model(Tensor(x))
    oracle_out.sum().backward()
    calls = []
    backend = make_backend(name)
    original_conv2d = backend.conv2d
    backend.conv2d = lambda *args: calls.append(args[1].shape) or original_conv2d(*args)
    register_backend(backend)
    try:
        set_backend(name)
        assert get_conv2d_backend() == name
        model = small_cnn()
        out = model(Tensor(x))
        out.sum().backward()
    finally:
        set_backend("numpy")
        register_backend(make_backend(name))
    assert calls == [(4, 1, 3, 3), (6, 4, 3, 3)]                          # both convolutions ran on it
    np.testing.assert_allclose(out.data, oracle_out.data, rtol=1e-4, atol=1e-5)
    for param, oracle_param in zip(model.parameters(), oracle_model.parameters()):
        np.testing.assert_allclose(param.grad.data, oracle_param.grad.data, rtol=1e-4, atol=1e-5)


# --- a model on every backend ------------------------------------------------------------------

def mlp():
    return Sequential(Linear(10, 8, seed=0), ReLU(), Linear(8, 6, seed=1), GELU(), Linear(6, 4, seed=2), Tanh())


def mlp_by_hand(model, x):
    """float64 oracle from the model's own weights: einsum, np.where, the sigmoid form of GELU, np.tanh."""
    l1, _, l2, _, l3, _ = model.layers
    h = np.asarray(x, np.float64)
    h = np.where(h @ l1.weight.data.astype(np.float64) + l1.bias.data > 0,
                 h @ l1.weight.data.astype(np.float64) + l1.bias.data, 0.0)
    h = gelu_oracle(np.einsum("bi,io->bo", h, l2.weight.data.astype(np.float64)) + l2.bias.data)
    return np.tanh(np.einsum("bi,io->bo", h, l3.weight.data.astype(np.float64)) + l3.bias.data)


@pytest.mark.parametrize("name", BACKENDS)
def test_unchanged_model_gives_the_same_outputs_on_every_backend(name):
    model = mlp()
    x = np.random.default_rng(8).standard_normal((5, 10)).astype(np.float32)
    set_backend(name)
    plain, routed = model(Tensor(x)), backend_forward(model, x)
    for out in (plain, routed):
        assert isinstance(out, Tensor) and out.dtype == np.float32 and out.shape == (5, 4)
        np.testing.assert_allclose(out.data, mlp_by_hand(model, x), rtol=1e-4, atol=1e-5)


def test_backend_forward_sends_activations_to_the_backend():
    class CountingBackend(NumpyBackend):   # real kernels, plus a count of activation calls
        name = "counting-test"

        def __init__(self):
            self.calls = []

        def relu(self, x):
            self.calls.append("relu")
            return super().relu(x)

        def gelu(self, x):
            self.calls.append("gelu")
            return super().gelu(x)

    counting = CountingBackend()
    register_backend(counting)
    try:
        set_backend("counting-test")
        model = mlp()
        backend_forward(model, np.ones((2, 10), np.float32))
        assert counting.calls == ["relu", "gelu"]   # Tanh has no backend kernel: it runs as a layer
        model(Tensor(np.ones((2, 10), np.float32)))
        # plain model(x) reaches them too, through module 02's dispatch point
        assert counting.calls == ["relu", "gelu", "relu", "gelu"]
    finally:
        set_backend("numpy")
    model(Tensor(np.ones((2, 10), np.float32)))
    assert counting.calls == ["relu", "gelu", "relu", "gelu"]   # another backend set: routes moved on


def test_backend_forward_fuses_linear_with_the_following_activation():
    class RecordingBackend(NumpyBackend):   # real kernels, plus a record of the linear calls
        name = "recording-test"

        def __init__(self):
            self.linear_calls = []

        def linear(self, x, weight, bias=None, activation=None):
            self.linear_calls.append((weight.shape, activation))
            return super().linear(x, weight, bias=bias, activation=activation)

    recording = RecordingBackend()
    register_backend(recording)
    set_backend("recording-test")
    model = Sequential(Linear(5, 4, seed=0), GELU(), Linear(4, 3, bias=False, seed=1), Linear(3, 2, seed=2), ReLU())
    x = np.random.default_rng(13).standard_normal((3, 5)).astype(np.float32)
    out = backend_forward(model, x)
    assert recording.linear_calls == [((5, 4), "gelu"), ((4, 3), None), ((3, 2), "relu")]
    set_backend("numpy")
    np.testing.assert_allclose(out.data, model(Tensor(x)).data, rtol=1e-5, atol=1e-6)


def test_backend_forward_calls_a_linear_subclass_as_a_layer():
    class ScaledLinear(Linear):   # its own forward: must not be replaced by backend.linear
        def forward(self, x):
            return super().forward(x) * 2.0

    set_backend("optimized")
    model = Sequential(ScaledLinear(3, 2, seed=0), ReLU())
    x = np.ones((2, 3), np.float32)
    np.testing.assert_allclose(backend_forward(model, x).data, model(Tensor(x)).data, rtol=1e-6)


def test_backend_forward_single_layer_and_input_kinds():
    set_backend("optimized")
    x = np.linspace(-3, 3, 12, dtype=np.float32).reshape(3, 4)
    for given in (x, Tensor(x)):
        out = backend_forward(GELU(), given)
        np.testing.assert_allclose(out.data, gelu_oracle(x), rtol=1e-5, atol=2e-6)


# --- benchmark ---------------------------------------------------------------------------------

def test_benchmark_reports_backend_and_peak_memory():
    set_backend("optimized")
    with benchmark() as result:
        held = np.ones(2_000_000)   # 16 MB
    assert isinstance(result, BenchmarkResult) and result.backend == "optimized"
    assert math.isfinite(result.seconds) and result.seconds >= 0
    assert held.nbytes <= result.peak_bytes <= held.nbytes + 256 * 1024


def test_benchmark_peak_sees_a_freed_temporary():
    with benchmark() as result:
        np.ones(1_000_000).sum()   # 8 MB, freed before the block ends
    assert result.peak_bytes >= 8_000_000


def test_benchmark_without_memory_tracing():
    with benchmark(trace_memory=False) as result:
        np.ones(10)
    assert result.peak_bytes is None and math.isfinite(result.seconds)


def test_benchmark_lets_errors_through():
    with pytest.raises(KeyError):
        with benchmark():
            raise KeyError("inside the block")


def test_epilogue_kernel_is_vectorised_by_llvm():
    """The comment in bias_activation_kernel claims SIMD; the optimised IR must show vector float math."""
    bias_activation_kernel(np.ones((2, 8), np.float32), np.ones(8, np.float32), ACTIVATIONS["gelu"])
    ir = "".join(bias_activation_kernel.inspect_llvm().values())
    assert re.search(r"= fadd(?: \w+)* <\d+ x float>", ir) and re.search(r"= fdiv(?: \w+)* <\d+ x float>", ir)
