# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Module 03: Layers
#
# A **linear layer** maps a batch of inputs `x` of shape `(batch, in_features)` to
# `x @ W + b` of shape `(batch, out_features)`. Stack linear layers with activations between
# them and you have a multi-layer perceptron (MLP):
#
# ```
#   x (64, 784) ──▶ Linear(784, 256) ──▶ ReLU ──▶ Linear(256, 10) ──▶ scores (64, 10)
#                    W (784, 256)                  W (256, 10)
#                    b (256,)                      b (10,)
# ```
#
# Almost all of that network's arithmetic is in the two matrix multiplications, which is why
# every fast framework routes matmul through a swappable **backend**. You build that seam here:
#
# ```
#   Linear.forward ──▶ matmul(a, b) ──▶ _MATMUL_BACKENDS[current name](a2d, b2d)
#                                         "numpy": np.matmul   (BLAS: the default)
#                                         "naive": matmul_naive (three loops: the reference)
#                                         ...anything register_matmul adds later (module 13)
# ```
#
# | you write | what it is for |
# |---|---|
# | `matmul_naive(a, b)` | the obvious triple loop: slow, but the oracle every fast kernel is checked against |
# | `register_matmul`, `set_matmul_backend`, `get_matmul_backend`, `available_matmul_backends` | the dispatch point: a dict of kernels and the name of the current one |
# | `matmul(a, b)` | routes Tensors or arrays through the current backend, in 2-D calls |
# | `Linear`, `Sequential`, `count_parameters` | the layers, their composition, and how much memory their parameters need |

# %%
#| default_exp core.layers

# %%
#| export
import math

import numpy as np

from tinytorch.core.tensor import Tensor, records

# %%
from tinytorch.core.activations import ReLU   # used by the tests and the analysis, not by the layers

# %% [markdown]
# ## The reference kernel: `matmul_naive`
#
# `C = A @ B` with `A` of shape `(m, k)` and `B` of shape `(k, n)`:
#
# ```
#   C[i, j] = Σ_p A[i, p] · B[p, j]          for every i < m, j < n
#
#          k                 n                    n
#       ┌─────┐           ┌─────┐              ┌─────┐
#     m │ row i ───────▶  k │  col j          m │  •  │  C[i, j]: a dot product of length k
#       └─────┘           └─────┘              └─────┘
# ```
#
# Write it as three nested Python loops. Check the shapes first: both arrays must be 2-D and
# `a.shape[1] == b.shape[0]`; otherwise raise a `ValueError` that names both shapes. Accumulate
# each dot product in the output's dtype (`np.result_type(a, b)`), as a BLAS kernel does, so a
# float32 product is a float32 computation.
#
# It costs `m · n · k` multiply-adds, each one an interpreted Python step. Nobody trains with it:
# it is the *reference* that is obviously right, against which every faster kernel is tested.

# %% nbgrader={"grade": false, "grade_id": "matmul-naive", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def matmul_naive(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(m, k) @ (k, n) with three Python loops: the correctness reference, not a fast path."""
    ### BEGIN SOLUTION
    if (a.ndim, b.ndim) != (2, 2) or a.shape[1] != b.shape[0]:
        raise ValueError(f"matmul_naive needs 2-D arrays (m, k) @ (k, n), got {a.shape} @ {b.shape}; "
                         "transpose or reshape an operand so the inner dimensions agree")
    m, k = a.shape
    n = b.shape[1]
    naive_out = np.zeros((m, n), dtype=np.result_type(a, b))
    for out_row in range(m):
        for out_col in range(n):
            dot = naive_out.dtype.type(0)       # accumulate in the output dtype
            for shared in range(k):
                dot += a[out_row, shared] * b[shared, out_col]
            naive_out[out_row, out_col] = dot
    return naive_out
    ### END SOLUTION


# %% [markdown]
# ### Test: `matmul_naive` against NumPy

# %% nbgrader={"grade": true, "grade_id": "test-matmul-naive", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def test_unit_matmul_naive():
    gen = np.random.default_rng(seed=0)
    a, b = gen.standard_normal((5, 4)), gen.standard_normal((4, 3))
    np.testing.assert_allclose(matmul_naive(a, b), a @ b, rtol=1e-12, atol=1e-12)

    a32, b32 = a.astype(np.float32), b.astype(np.float32)
    out32 = matmul_naive(a32, b32)
    assert out32.dtype == np.float32 and out32.shape == (5, 3)
    np.testing.assert_allclose(out32, a32 @ b32, rtol=1e-5, atol=1e-6)

    ints = np.arange(6).reshape(2, 3)
    np.testing.assert_array_equal(matmul_naive(ints, ints.T), [[5, 14], [14, 50]])

def test_unit_matmul_naive_shape_error():
    try:
        matmul_naive(np.ones((2, 3)), np.ones((2, 3)))
    except ValueError as err:
        assert "(2, 3)" in str(err)
    else:
        raise AssertionError("(2, 3) @ (2, 3) must raise ValueError")

test_unit_matmul_naive()
test_unit_matmul_naive_shape_error()
### BEGIN HIDDEN TESTS
def test_hidden_matmul_naive_vector_shapes():
    col = np.arange(4.0).reshape(4, 1)
    np.testing.assert_allclose(matmul_naive(col.T, col), [[14.0]], rtol=0)
    np.testing.assert_allclose(matmul_naive(col, col.T), np.outer(np.arange(4.0), np.arange(4.0)), rtol=0)
    try:
        matmul_naive(np.ones(3), np.ones((3, 2)))
    except ValueError:
        pass
    else:
        raise AssertionError("a 1-D operand must raise ValueError")

test_hidden_matmul_naive_vector_shapes()
### END HIDDEN TESTS

# %% [markdown]
# ## The dispatch point
#
# The registry is a module-level dict from a name to a kernel `fn(a, b) -> ndarray` taking two
# 2-D arrays, plus the name of the current kernel. It starts with two entries, `"numpy"` (the
# default, `np.matmul`, which calls the BLAS library NumPy was built with) and `"naive"`.
#
# | function | behaviour |
# |---|---|
# | `register_matmul(name, fn)` | add (or replace) a kernel; `TypeError` if `name` is not a non-empty string or `fn` is not callable |
# | `set_matmul_backend(name)` | make `name` current and return the previous name; an unknown name raises `ValueError` listing the registered ones |
# | `get_matmul_backend()` | the current name |
# | `available_matmul_backends()` | the registered names, sorted |
#
# Returning the previous name lets callers restore it: `old = set_matmul_backend("naive")` ...
# `set_matmul_backend(old)`. Module 13 registers its own kernels here; module 15 builds a whole
# backend object on top of this seam.

# %% nbgrader={"grade": false, "grade_id": "matmul-dispatch", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
_MATMUL_BACKENDS = {"numpy": np.matmul, "naive": matmul_naive}   # name -> fn(a2d, b2d) -> ndarray
_current_matmul_backend = "numpy"


def register_matmul(name: str, fn) -> None:
    """Register fn(a, b) -> ndarray (2-D arrays in, 2-D array out) as matmul backend `name`."""
    ### BEGIN SOLUTION
    if not (isinstance(name, str) and name):
        raise TypeError(f"a backend name must be a non-empty string, got {name!r}")
    kernel_is_callable = callable(fn)
    if not kernel_is_callable:
        raise TypeError(f"backend {name!r} must be a function fn(a, b) -> ndarray, got {type(fn).__name__}")
    _MATMUL_BACKENDS[name] = fn
    ### END SOLUTION


def set_matmul_backend(name: str) -> str:
    """Make `name` the current matmul backend; returns the previous name (to restore it later)."""
    ### BEGIN SOLUTION
    global _current_matmul_backend
    if name not in _MATMUL_BACKENDS:
        raise ValueError(f"unknown matmul backend {name!r}; registered: "
                         f"{', '.join(available_matmul_backends())} (add one with register_matmul)")
    previous, _current_matmul_backend = _current_matmul_backend, name
    return previous
    ### END SOLUTION


def get_matmul_backend() -> str:
    """The name of the current matmul backend."""
    ### BEGIN SOLUTION
    return _current_matmul_backend
    ### END SOLUTION


def available_matmul_backends() -> list[str]:
    """The registered backend names, sorted."""
    ### BEGIN SOLUTION
    return sorted(_MATMUL_BACKENDS)
    ### END SOLUTION


# %% [markdown]
# ### Test: registering and switching backends
#
# Each test restores the backend it found, so later cells run on the default again.

# %% nbgrader={"grade": true, "grade_id": "test-matmul-dispatch", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def test_unit_dispatch_registry():
    assert get_matmul_backend() == "numpy"
    assert {"numpy", "naive"} <= set(available_matmul_backends())
    register_matmul("transposed-einsum", lambda a, b: np.einsum("kj,ik->ij", b, a))
    assert "transposed-einsum" in available_matmul_backends()
    assert available_matmul_backends() == sorted(available_matmul_backends())
    previous = set_matmul_backend("transposed-einsum")
    try:
        assert previous == "numpy"
        assert get_matmul_backend() == "transposed-einsum"
    finally:
        set_matmul_backend(previous)
    assert get_matmul_backend() == "numpy"

def test_unit_dispatch_unknown_name():
    try:
        set_matmul_backend("cuda")
    except ValueError as err:
        message = str(err)
        assert "cuda" in message and "numpy" in message and "naive" in message
    else:
        raise AssertionError("an unknown backend name must raise ValueError")
    assert get_matmul_backend() == "numpy"

test_unit_dispatch_registry()
test_unit_dispatch_unknown_name()
### BEGIN HIDDEN TESTS
def test_hidden_register_rejects_bad_input():
    for name, fn in [("", np.matmul), (3, np.matmul), ("not-callable", 42)]:
        try:
            register_matmul(name, fn)
        except TypeError:
            continue
        raise AssertionError(f"register_matmul({name!r}, {fn!r}) must raise TypeError")
    assert "not-callable" not in available_matmul_backends()

test_hidden_register_rejects_bad_input()
### END HIDDEN TESTS

# %% [markdown]
# ## `matmul`: routing through the backend
#
# `matmul(a, b)` accepts Tensors or arrays and returns a Tensor if either input was one (an
# array otherwise). When a Tensor meets an array, the array goes through `Tensor(...)` first,
# exactly as in Tensor arithmetic, so float64 arrays do not turn a float32 product into float64.
# Backends only ever see **2-D** arrays, so a kernel written once for matrices serves every shape
# a network produces:
#
# ```
#   a (batch, seq, k) @ b (k, n)       fold the leading dims into rows: ONE call
#       a.reshape(-1, k)  @  b   ──▶  (batch·seq, n)  ──▶ reshape to (batch, seq, n)
#   a (k,) @ b (k, n)                  the same rule: a row of 1, then drop it ──▶ (n,)
#
#   a (..., m, k) @ b (..., k, n)      b has batch dims too (attention): broadcast the batch
#                                      dims, then one 2-D call per batch element, stacked
# ```
#
# Folding is not only convenient: one `(batch·seq, k) @ (k, n)` call pays the Python and call
# overhead once and gives BLAS one big problem instead of many small ones (the analysis at the
# end of this module measures the difference).
#
# Shapes are checked once, before any backend runs (`_check_matmul_shapes` is given).

# %% nbgrader={"grade": false, "grade_id": "matmul-route", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def _check_matmul_shapes(a: np.ndarray, b: np.ndarray) -> None:
    """ValueError naming both shapes unless a (..., k) @ b (..., k, n) is a valid product."""
    ok = a.ndim >= 1 and b.ndim >= 2 and a.shape[-1] == b.shape[-2] and (a.ndim >= 2 or b.ndim == 2)
    if ok and b.ndim > 2:
        try:
            np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        except ValueError:
            ok = False
    if not ok:
        raise ValueError(f"matmul shape mismatch: {a.shape} @ {b.shape}; need a (..., m, k) or (k,) and "
                         "b (..., k, n) with equal k and broadcastable batch dimensions "
                         "(transpose or reshape one of them)")


@records("matmul", "a", "b")   # module 01's seam: autograd (module 06) records the product
def matmul(a, b):
    """a @ b computed by the current backend in 2-D calls; a Tensor if either input was a Tensor."""
    ### BEGIN SOLUTION
    return_tensor = isinstance(a, Tensor) or isinstance(b, Tensor)
    # arrays meeting a Tensor follow Tensor's dtype rule (float64 -> float32), as in Tensor arithmetic
    a = Tensor(a).data if return_tensor else np.asarray(a)
    b = Tensor(b).data if return_tensor else np.asarray(b)
    _check_matmul_shapes(a, b)
    kernel = _MATMUL_BACKENDS[_current_matmul_backend]
    inner, cols = b.shape[-2:]
    if b.ndim == 2:
        # one call: every leading dimension of a becomes rows
        routed = kernel(a.reshape(-1, inner), b).reshape(*a.shape[:-1], cols)
    else:
        batch_shape = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        lhs_rows = a.shape[-2]
        a_slices = np.broadcast_to(a, (*batch_shape, lhs_rows, inner)).reshape(-1, lhs_rows, inner)
        b_slices = np.broadcast_to(b, (*batch_shape, inner, cols)).reshape(-1, inner, cols)
        per_slice = [kernel(a_slice, b_slice) for a_slice, b_slice in zip(a_slices, b_slices)]
        routed = np.stack(per_slice).reshape(*batch_shape, lhs_rows, cols)
    return Tensor(routed, dtype=routed.dtype) if return_tensor else routed
    ### END SOLUTION


# %% [markdown]
# ### Test: `matmul` routes through the current backend
#
# A recording backend (a real kernel, `np.dot`, plus a list of the shapes it was called with)
# shows which calls `matmul` makes.

# %% nbgrader={"grade": true, "grade_id": "test-matmul-route", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def test_unit_matmul_types():
    gen = np.random.default_rng(seed=1)
    a, b = gen.standard_normal((4, 5)), gen.standard_normal((5, 2))
    as_arrays = matmul(a, b)
    assert isinstance(as_arrays, np.ndarray)
    np.testing.assert_allclose(as_arrays, np.einsum("ik,kj->ij", a, b), rtol=1e-12, atol=1e-12)
    as_tensor = matmul(Tensor(a), b)
    assert isinstance(as_tensor, Tensor) and as_tensor.dtype == np.float32
    np.testing.assert_allclose(as_tensor.data, np.einsum("ik,kj->ij", a, b), rtol=1e-5, atol=1e-5)
    wide = matmul(Tensor(a, dtype=np.float64), Tensor(b, dtype=np.float64))
    assert isinstance(wide, Tensor) and wide.dtype == np.float64
    np.testing.assert_allclose(wide.data, np.einsum("ik,kj->ij", a, b), rtol=1e-12, atol=1e-12)

def test_unit_matmul_uses_registered_backend():
    calls = []
    def recording_kernel(x, y):
        calls.append((x.shape, y.shape))
        return np.dot(x, y)
    register_matmul("recording", recording_kernel)
    previous = set_matmul_backend("recording")
    try:
        x = np.random.default_rng(2).standard_normal((2, 3, 4))
        w = np.random.default_rng(3).standard_normal((4, 5))
        out = matmul(x, w)
    finally:
        set_matmul_backend(previous)
    assert calls == [((6, 4), (4, 5))], calls       # leading dims folded into one 2-D call
    assert out.shape == (2, 3, 5)
    np.testing.assert_allclose(out, np.einsum("btk,kn->btn", x, w), rtol=1e-12, atol=1e-12)

def test_unit_matmul_naive_backend_agrees():
    a, b = np.random.default_rng(4).standard_normal((2, 6, 3)), np.random.default_rng(5).standard_normal((3, 4))
    previous = set_matmul_backend("naive")
    try:
        slow = matmul(a, b)
    finally:
        set_matmul_backend(previous)
    np.testing.assert_allclose(slow, matmul(a, b), rtol=1e-12, atol=1e-12)

test_unit_matmul_types()
test_unit_matmul_uses_registered_backend()
test_unit_matmul_naive_backend_agrees()
### BEGIN HIDDEN TESTS
def test_hidden_matmul_batched_b_and_errors():
    calls = []
    def recording_kernel(x, y):
        calls.append((x.shape, y.shape))
        return np.dot(x, y)
    register_matmul("recording-hidden", recording_kernel)
    gen = np.random.default_rng(6)
    q, k = gen.standard_normal((2, 1, 3, 4)), gen.standard_normal((1, 3, 4, 5))
    previous = set_matmul_backend("recording-hidden")
    try:
        out = matmul(q, k)
    finally:
        set_matmul_backend(previous)
    assert len(calls) == 6 and all(c == ((3, 4), (4, 5)) for c in calls)
    oracle = np.einsum("bhik,bhkj->bhij", np.broadcast_to(q, (2, 3, 3, 4)), np.broadcast_to(k, (2, 3, 4, 5)))
    np.testing.assert_allclose(out, oracle, rtol=1e-12, atol=1e-12)
    vector = matmul(np.ones(4), np.arange(8.0).reshape(4, 2))
    np.testing.assert_allclose(vector, [12.0, 16.0], rtol=0)
    calls.clear()
    previous = set_matmul_backend("recording-hidden")
    try:
        for bad_a, bad_b in [((2, 3), (2, 3)), ((3,), (3,)), ((2, 3, 4), (5, 4, 2)), ((6,), (3, 2))]:
            try:
                matmul(np.ones(bad_a), np.ones(bad_b))
            except ValueError as err:
                assert str(bad_a) in str(err) and str(bad_b) in str(err), f"the error must name both shapes: {err}"
                continue
            raise AssertionError(f"{bad_a} @ {bad_b} must raise ValueError")
    finally:
        set_matmul_backend(previous)
    assert calls == [], f"shapes are checked before the kernel runs, yet it was called with {calls}"

test_hidden_matmul_batched_b_and_errors()
### END HIDDEN TESTS

# %% [markdown]
# ## `Linear`: y = x @ W + b
#
# `Linear(in_features, out_features, bias=True, seed=None)` holds
#
# - `weight`: a float32 Tensor of shape `(in_features, out_features)`, so `x @ weight` maps a
#   row of `in_features` numbers to `out_features` numbers (PyTorch stores the transpose; the
#   product is the same);
# - `bias`: a float32 Tensor of zeros, shape `(out_features,)`, broadcast over the batch; `None`
#   when `bias=False`.
#
# **Xavier/Glorot uniform initialisation.** With random weights of variance `σ²`, one layer
# multiplies the variance of its outputs by about `fan_in · σ²` on the way forward, and that of
# its gradients by `fan_out · σ²` on the way back. Glorot and Bengio (2010) pick the compromise
# `σ² = 2 / (fan_in + fan_out)`, and a uniform distribution `U(-a, a)` has variance `a² / 3`, so
#
# ```
#   W ~ U(-a, a),    a = sqrt(6 / (fan_in + fan_out)),    fan_in = in_features, fan_out = out_features
# ```
#
# Draw the weights with `np.random.default_rng(seed)`: the same seed gives the same layer, which
# makes experiments and tests reproducible. `forward(x)` accepts a Tensor or an array (an array
# goes through `Tensor(x)`, so float64 data becomes float32), checks that the last dimension is
# `in_features` (a `ValueError` naming both otherwise), and returns `matmul(x, weight) + bias`.

# %% nbgrader={"grade": false, "grade_id": "linear", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
class Linear:
    """y = x @ weight + bias, with weight (in_features, out_features) drawn from Xavier/Glorot uniform.

    seed: seeds np.random.default_rng for the weights; the same seed gives the same layer.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, seed: int | None = None):
        self.in_features = in_features
        self.out_features = out_features
        ### BEGIN SOLUTION
        glorot_bound = math.sqrt(6.0 / (in_features + out_features))
        weight_rng = np.random.default_rng(seed)
        glorot_draws = weight_rng.uniform(-glorot_bound, glorot_bound, size=(in_features, out_features))
        self.weight = Tensor(glorot_draws, dtype=np.float32)
        self.bias = Tensor(np.zeros(out_features), dtype=np.float32) if bias else None
        ### END SOLUTION
        for trainable in self.parameters():
            trainable.requires_grad = True   # module 06 computes their gradients; module 07 updates them

    def forward(self, x) -> Tensor:
        ### BEGIN SOLUTION
        # a Tensor is used as it is (re-wrapping it would cut module 06's graph); arrays follow Tensor's dtype rule
        batch_in = x if isinstance(x, Tensor) else Tensor(x)
        if batch_in.ndim == 0 or batch_in.shape[-1] != self.in_features:
            raise ValueError(f"{self!r} expects inputs whose last dimension is {self.in_features}, "
                             f"got shape {batch_in.shape}")
        projected = matmul(batch_in, self.weight)
        return projected if self.bias is None else projected + self.bias
        ### END SOLUTION

    def __call__(self, x) -> Tensor:
        return self.forward(x)

    def parameters(self) -> list:
        return [self.weight] if self.bias is None else [self.weight, self.bias]

    def __repr__(self) -> str:
        return f"Linear(in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None})"


# %% [markdown]
# ### Test: `Linear` shapes, initialisation and forward pass

# %% nbgrader={"grade": true, "grade_id": "test-linear", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def test_unit_linear_init():
    layer = Linear(300, 100, seed=0)
    assert layer.weight.shape == (300, 100) and layer.weight.dtype == np.float32
    assert layer.bias.shape == (100,) and layer.bias.dtype == np.float32
    np.testing.assert_array_equal(layer.bias.data, np.zeros(100))
    limit = (6.0 / 400) ** 0.5
    w = layer.weight.data
    assert np.all(np.abs(w) <= np.float32(limit))
    # 30,000 uniform draws: the sample variance is within a few percent of limit^2 / 3
    np.testing.assert_allclose(w.var(), limit**2 / 3, rtol=0.05)
    np.testing.assert_array_equal(Linear(300, 100, seed=0).weight.data, w)
    assert not np.array_equal(Linear(300, 100, seed=1).weight.data, w)
    assert Linear(3, 2, bias=False).bias is None

def test_unit_linear_forward():
    layer = Linear(4, 3, seed=7)
    layer.bias = Tensor(np.array([0.5, -1.0, 2.0]))
    x = np.random.default_rng(8).standard_normal((6, 4))
    y = layer(Tensor(x))
    assert isinstance(y, Tensor) and y.shape == (6, 3) and y.dtype == np.float32
    w = layer.weight.data.astype(np.float64)
    expected = np.einsum("bi,io->bo", x, w) + np.array([0.5, -1.0, 2.0])
    np.testing.assert_allclose(y.data, expected, rtol=1e-5, atol=1e-5)
    try:
        layer(Tensor(np.ones((2, 5))))
    except ValueError as err:
        assert "4" in str(err) and "(2, 5)" in str(err)
    else:
        raise AssertionError("an input with 5 features must raise ValueError for Linear(4, 3)")
    single = layer(Tensor(x[0]))                        # one sample without a batch dimension
    assert single.shape == (3,)
    np.testing.assert_allclose(single.data, expected[0], rtol=1e-5, atol=1e-5)
    try:
        layer(Tensor(2.0))
    except ValueError:
        pass
    else:
        raise AssertionError("a 0-d input must raise ValueError for Linear(4, 3)")

test_unit_linear_init()
test_unit_linear_forward()
### BEGIN HIDDEN TESTS
def test_hidden_linear_no_bias_and_arrays():
    layer = Linear(5, 2, bias=False, seed=3)
    assert len(layer.parameters()) == 1
    x = np.random.default_rng(9).standard_normal((3, 7, 5))
    y = layer.forward(x)
    assert y.shape == (3, 7, 2) and y.dtype == np.float32
    np.testing.assert_allclose(y.data, np.einsum("bti,io->bto", x, layer.weight.data.astype(np.float64)), rtol=1e-5, atol=1e-5)

test_hidden_linear_no_bias_and_arrays()
### END HIDDEN TESTS

# %% [markdown]
# ## `Sequential` and `count_parameters`
#
# `Sequential(*layers)` keeps its layers in a list, `.layers`, and applies them in order:
# `forward(x) = layers[-1](... layers[1](layers[0](x)))`. `parameters()` collects the parameters
# of every layer that has any, in order (activations have none). `count_parameters(model)` is
# the total number of scalars in `model.parameters()`: multiply by the bytes per element to get
# the memory the weights need.

# %% nbgrader={"grade": false, "grade_id": "sequential", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
class Sequential:
    """Layers applied in order; parameters() gathers every layer's parameters."""

    def __init__(self, *layers):
        self.layers = list(layers)

    def forward(self, x):
        ### BEGIN SOLUTION
        for layer_fn in self.layers:
            x = layer_fn(x)
        return x
        ### END SOLUTION

    def __call__(self, x):
        return self.forward(x)

    def parameters(self) -> list:
        ### BEGIN SOLUTION
        gathered = []
        for layer_fn in self.layers:
            if hasattr(layer_fn, "parameters"):      # plain functions have none
                gathered.extend(layer_fn.parameters())
        return gathered
        ### END SOLUTION

    def __repr__(self) -> str:
        inner = ", ".join(repr(layer) for layer in self.layers)
        return f"Sequential({inner})"


def count_parameters(model) -> int:
    """Total number of scalars in model.parameters()."""
    ### BEGIN SOLUTION
    return sum(int(param.size) for param in model.parameters())
    ### END SOLUTION


# %% [markdown]
# ### Test: composition and counting
#
# The oracle for the forward pass is the same computation written out by hand; the oracle for
# the count is the formula `in·out + out` per layer.

# %% nbgrader={"grade": true, "grade_id": "test-sequential", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def test_unit_sequential_forward():
    first, second = Linear(4, 8, seed=1), Linear(8, 3, seed=2)
    model = Sequential(first, ReLU(), second)
    assert model.layers[0] is first and len(model.layers) == 3
    x = np.random.default_rng(3).standard_normal((5, 4)).astype(np.float32)
    hidden = x @ first.weight.data + first.bias.data
    by_hand = np.where(hidden > 0, hidden, 0) @ second.weight.data + second.bias.data
    out = model(Tensor(x))
    assert isinstance(out, Tensor) and out.shape == (5, 3)
    np.testing.assert_allclose(out.data, by_hand, rtol=1e-5, atol=1e-6)

def test_unit_parameters_and_count():
    first, second = Linear(4, 8, seed=1), Linear(8, 3, seed=2)
    model = Sequential(first, ReLU(), second)
    params = model.parameters()
    assert len(params) == 4
    assert params[0] is first.weight and params[1] is first.bias and params[3] is second.bias
    assert count_parameters(model) == (4 * 8 + 8) + (8 * 3 + 3)
    assert count_parameters(Linear(10, 2, bias=False)) == 20

test_unit_sequential_forward()
test_unit_parameters_and_count()
### BEGIN HIDDEN TESTS
def test_hidden_nested_sequential():
    inner = Sequential(Linear(3, 3, seed=4), ReLU())
    model = Sequential(inner, Linear(3, 1, seed=5))
    assert count_parameters(model) == 12 + 4
    x = np.random.default_rng(6).standard_normal((2, 3)).astype(np.float32)
    np.testing.assert_allclose(model(Tensor(x)).data, model.layers[1](inner(Tensor(x))).data, rtol=0, atol=0)
    assert Sequential()(Tensor([1.0])).data.tolist() == [1.0]

test_hidden_nested_sequential()
### END HIDDEN TESTS

# %% [markdown]
# ## Analysis: the reference kernel against BLAS, dispatch overhead, and where the memory goes
#
# Three measurements on your machine (median of repeats after a warm-up):
#
# 1. `matmul` through the `"naive"` backend against the `"numpy"` backend, for a few square sizes.
#    GFLOP/s counts `2·n³` floating-point operations per product. The loops pay the interpreter
#    for every multiply-add; BLAS runs vectorised, cache-blocked code. The naive kernel uses one
#    core, so BLAS is limited to one thread here too (threadpoolctl): a like-for-like ratio.
# 2. The cost of the dispatch point itself: `matmul` against calling `np.matmul` directly, on a
#    tiny matrix where the fixed overhead (a dict lookup, a few checks and reshapes) is visible,
#    and a large one where it should disappear in the noise. Then folding: one 2-D call for a
#    `(batch, seq, k)` input against one call per sample.
# 3. The memory of a small MLP: parameters (bytes of the actual arrays), and the activations one
#    forward pass on a batch produces (training keeps them until the backward pass, module 05).

# %%
import os
import statistics
import timeit

from threadpoolctl import threadpool_info, threadpool_limits

QUICK = os.environ.get("TITO_AUTOGRADING") == "1"   # shrink sizes and repeats while grading


def median_time(fn, repeats: int = 5, number: int = 1) -> float:
    """Median seconds of one fn() call, after one warm-up call."""
    fn()
    return statistics.median(timeit.repeat(fn, number=number, repeat=repeats)) / number


blas = [f"{p.get('internal_api')} {p.get('version')} ({p.get('architecture')}, {p.get('num_threads')} threads)"
        for p in threadpool_info() if p.get("user_api") == "blas"]
print("BLAS behind np.matmul:", "; ".join(blas) or "not found", "-> limited to 1 thread below")

sizes = [16, 32] if QUICK else [32, 64, 128]
print(f"{'n':>5} {'naive (ms)':>12} {'numpy (ms)':>12} {'naive GFLOP/s':>14} {'numpy GFLOP/s':>14} {'naive / numpy':>14}")
with threadpool_limits(limits=1, user_api="blas"):      # one core each: a like-for-like comparison
    for n in sizes:
        gen = np.random.default_rng(n)
        a = gen.standard_normal((n, n)).astype(np.float32)
        b = gen.standard_normal((n, n)).astype(np.float32)
        timings = {}
        for backend in ("naive", "numpy"):
            previous = set_matmul_backend(backend)
            try:
                timings[backend] = median_time(lambda: matmul(a, b), repeats=3, number=1 if backend == "naive" else 20)
            finally:
                set_matmul_backend(previous)
        flops = 2 * n**3
        print(f"{n:>5} {timings['naive'] * 1e3:>12.3f} {timings['numpy'] * 1e3:>12.4f} "
              f"{flops / timings['naive'] / 1e9:>14.4f} {flops / timings['numpy'] / 1e9:>14.2f} "
              f"{timings['naive'] / timings['numpy']:>13,.0f}x")

# %%
with threadpool_limits(limits=1, user_api="blas"):
    for n in (4, 256 if QUICK else 512):
        a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
        number = 200 if n == 4 else 3
        direct = median_time(lambda: np.matmul(a, a), repeats=7, number=number)
        routed = median_time(lambda: matmul(a, a), repeats=7, number=number)
        print(f"n={n:4}: np.matmul {direct * 1e6:9.2f} us, matmul via dispatch {routed * 1e6:9.2f} us "
              f"-> {routed / direct:.2f}x")

    batch, seq, width = (16, 8, 64) if QUICK else (64, 32, 256)
    gen = np.random.default_rng(1)
    activations = gen.standard_normal((batch, seq, width)).astype(np.float32)
    weight = gen.standard_normal((width, width)).astype(np.float32)
    folded = median_time(lambda: matmul(activations, weight), repeats=7, number=5)
    per_sample = median_time(lambda: np.stack([matmul(sample, weight) for sample in activations]), repeats=7, number=5)
    print(f"({batch}, {seq}, {width}) @ ({width}, {width}): one folded call {folded * 1e6:9.1f} us, "
          f"{batch} per-sample calls {per_sample * 1e6:9.1f} us -> per-sample takes {per_sample / folded:.2f}x as long")

# %%
batch = 64
mlp = Sequential(Linear(784, 256, seed=0), ReLU(), Linear(256, 128, seed=1), ReLU(), Linear(128, 10, seed=2))
param_bytes = sum(p.data.nbytes for p in mlp.parameters())
print(f"{mlp}")
print(f"parameters: {count_parameters(mlp):,} scalars, {param_bytes / 2**20:.2f} MiB as float32 "
      f"({sum(p.data.astype(np.float64).nbytes for p in mlp.parameters()) / 2**20:.2f} MiB as float64)")

x = Tensor(np.random.default_rng(1).standard_normal((batch, 784)))
activation_bytes = x.data.nbytes
print(f"\nforward pass on a batch of {batch}: output of each layer")
for layer in mlp.layers:
    x = layer(x)
    activation_bytes += x.data.nbytes
    print(f"  {layer!r:54} -> {str(x.shape):10} {x.data.nbytes / 2**10:8.1f} KiB")
print(f"activations of one forward pass (training keeps them for backward): {activation_bytes / 2**20:.2f} MiB "
      f"({activation_bytes / param_bytes:.2f}x the parameter memory)")
