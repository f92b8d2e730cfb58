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
# # Module 04: Losses
#
# A network learns by making one number smaller: the **loss**, which says how far its outputs are
# from the answers. Training (module 08) is a loop around it:
#
# ```
#   x ──▶ model ──▶ predictions ──▶ loss(predictions, targets) ──▶ one number ──▶ backward (06) ──▶ update (07)
# ```
#
# Three losses cover most of this course:
#
# | task | model output | target | loss |
# |---|---|---|---|
# | regression | any real numbers | real numbers, same shape | mean squared error |
# | one of C classes (digits 0-9) | logits `(N, C)` | class ids `(N,)` | cross entropy |
# | yes / no (one or many independent labels) | logits, any shape | 0/1 or probabilities, same shape | binary cross entropy |
#
# The two cross entropies take **logits** (raw scores), not probabilities. That is not a
# convenience: the textbook recipe (softmax, then log; sigmoid, then log) returns `inf` or `nan`
# for scores a real network produces, while the same formula rearranged never overflows. You
# write the rearranged, stable versions here; the analysis at the end runs both and shows the
# difference.
#
# | you write | what it is for |
# |---|---|
# | `reduce_loss(losses, reduction)` | per-sample losses to what a loss returns: their `"mean"`, their `"sum"`, or all of them (`"none"`) |
# | `mse_loss`, `cross_entropy_loss`, `binary_cross_entropy_loss` | the functional forms: Tensors in, a 0-d Tensor out |
# | `MSELoss`, `CrossEntropyLoss`, `BinaryCrossEntropyLoss` | the same as objects, `loss = CrossEntropyLoss(); loss(logits, labels)`, composing like layers |
#
# Each functional form is decorated with module 01's seam, `@records(...)`: module 06 (autograd)
# sees a loss as **one** operation and attaches its gradient, so the steps you write inside it
# need no gradients of their own.

# %%
#| default_exp core.losses

# %%
#| export
import numpy as np

from tinytorch.core.tensor import Tensor, records

# %%
from tinytorch.core.activations import Sigmoid, Softmax   # used by the analysis, not by the losses
from tinytorch.core.layers import Linear

# %% [markdown]
# ## Given: the reductions and two small conversions
#
# A loss first computes one loss per sample (or per element), then *reduces* them. Every loss
# accepts `reduction` in `REDUCTIONS`; inputs may be Tensors or anything `Tensor(...)` accepts,
# and a loss computes and returns in the floating dtype of its predictions (float32 in, float32
# out; integer predictions count as float32). This code is given.

# %%
#| export
REDUCTIONS = ("mean", "sum", "none")   # "none" returns the per-sample losses themselves


def _as_tensor(x) -> Tensor:
    """x itself if it is a Tensor, else Tensor(x) (float64 arrays become float32, as in Tensor arithmetic)."""
    return x if isinstance(x, Tensor) else Tensor(x)


def _float_dtype(t: Tensor) -> np.dtype:
    """The dtype a loss computes and returns in: t's own if it is floating, float32 otherwise."""
    return t.dtype if np.issubdtype(t.dtype, np.floating) else np.dtype(np.float32)


# %% [markdown]
# ## Reducing per-sample losses: `reduce_loss`
#
# | `reduction` | returns | shape |
# |---|---|---|
# | `"mean"` | the average over **every** element | `()` |
# | `"sum"` | the total over every element | `()` |
# | `"none"` | the losses unchanged | the input's |
#
# The choice matters more than it looks. With `"sum"` the loss, and so every gradient, grows
# with the batch size: doubling the batch doubles the step an optimizer takes. `"mean"` keeps the
# scale independent of the batch, which is why it is the default everywhere.
#
# Keep the dtype (a float32 array gives a float32 result) and return an ndarray. Any other
# `reduction` raises a `ValueError` that names it and lists `REDUCTIONS`.

# %% nbgrader={"grade": false, "grade_id": "reduce-loss", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def reduce_loss(losses: np.ndarray, reduction: str) -> np.ndarray:
    """Per-sample losses -> their mean or sum (0-d arrays), or the losses themselves for "none"."""
    ### BEGIN SOLUTION
    if reduction not in REDUCTIONS:
        raise ValueError(f"unknown reduction {reduction!r}; use one of {', '.join(map(repr, REDUCTIONS))}")
    per_sample = np.asarray(losses)
    if reduction == "none":
        return per_sample
    total = per_sample.sum() if reduction == "sum" else per_sample.mean()
    return np.asarray(total, dtype=per_sample.dtype)
    ### END SOLUTION


# %% [markdown]
# ### Test: mean, sum, none

# %% nbgrader={"grade": true, "grade_id": "test-reduce-loss", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def test_unit_reduce_loss_values():
    losses = np.array([1.0, 2.0, 3.0, 6.0])
    np.testing.assert_allclose(reduce_loss(losses, "mean"), 3.0, rtol=1e-12)
    np.testing.assert_allclose(reduce_loss(losses, "sum"), 12.0, rtol=1e-12)
    kept = reduce_loss(losses, "none")
    assert np.shape(kept) == (4,)
    np.testing.assert_array_equal(kept, [1.0, 2.0, 3.0, 6.0])
    grid = np.arange(6.0).reshape(2, 3)                   # every element counts, not only a row
    assert np.shape(reduce_loss(grid, "mean")) == ()
    np.testing.assert_allclose(reduce_loss(grid, "mean"), 15.0 / 6, rtol=1e-12)
    np.testing.assert_allclose(reduce_loss(grid, "sum"), 15.0, rtol=1e-12)

def test_unit_reduce_loss_dtype_and_errors():
    halves = np.full(8, 0.5, dtype=np.float32)
    assert np.asarray(reduce_loss(halves, "sum")).dtype == np.float32
    assert np.asarray(reduce_loss(halves, "mean")).dtype == np.float32
    try:
        reduce_loss(halves, "average")
    except ValueError as err:
        assert "average" in str(err) and "mean" in str(err)
    else:
        raise AssertionError("reduction='average' must raise ValueError")

test_unit_reduce_loss_values()
test_unit_reduce_loss_dtype_and_errors()
### BEGIN HIDDEN TESTS
def test_hidden_reduce_loss_rejects_near_misses():
    for wrong in ("Mean", "SUM", None, "elementwise_mean"):
        try:
            reduce_loss(np.ones(3), wrong)
        except ValueError:
            continue
        raise AssertionError(f"reduction={wrong!r} must raise ValueError")
    np.testing.assert_allclose(reduce_loss(np.array([7.0]), "mean"), 7.0, rtol=0)

test_hidden_reduce_loss_rejects_near_misses()
### END HIDDEN TESTS

# %% [markdown]
# ## Mean squared error
#
# ```
#   mse = mean over every element of (prediction - target)²
# ```
#
# Predictions and targets must have **exactly** the same shape. Broadcasting here is a classic
# silent bug: predictions of shape `(N, 1)` (a layer with one output) minus targets of shape
# `(N,)` broadcast to an `(N, N)` matrix of every prediction against every target, and the loss
# is a meaningless number that still goes down a little when you train. So raise a `ValueError`
# naming both shapes instead, and let the caller reshape.
#
# Convert both inputs with `_as_tensor`, compute in `_float_dtype(predictions)` (cast the
# targets to it), reduce with `reduce_loss`, and return `Tensor(result, dtype=that dtype)`.
#
# The `@records("mse_loss", "predictions", "targets")` line above the function is module 01's
# seam: it reports each call to module 06 as one operation with inputs `(predictions, targets)`
# and params `{"reduction": ...}`. It is given; keep it.

# %% nbgrader={"grade": false, "grade_id": "mse-loss", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
@records("mse_loss", "predictions", "targets")   # module 01's seam: module 06 attaches the gradient
def mse_loss(predictions, targets, reduction: str = "mean") -> Tensor:
    """Mean squared error between predictions and targets of the same shape (Tensors or arrays)."""
    ### BEGIN SOLUTION
    pred, target = _as_tensor(predictions), _as_tensor(targets)
    if pred.shape != target.shape:
        raise ValueError(f"mse_loss: predictions have shape {pred.shape} but targets have shape {target.shape}; "
                         "they must match exactly (an (N, 1) column against (N,) targets would broadcast to "
                         "(N, N)): reshape one of them")
    dtype = _float_dtype(pred)
    residual = pred.data.astype(dtype, copy=False) - target.data.astype(dtype, copy=False)
    return Tensor(reduce_loss(residual * residual, reduction), dtype=dtype)
    ### END SOLUTION


# %% [markdown]
# ### Test: `mse_loss` against a hand computation and NumPy

# %% nbgrader={"grade": true, "grade_id": "test-mse-loss", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def test_unit_mse_by_hand():
    pred = Tensor(np.array([[1.0, 2.0], [3.0, 4.0]]), dtype=np.float64)
    target = Tensor(np.array([[0.0, 2.0], [5.0, 1.0]]), dtype=np.float64)
    # squared errors 1, 0, 4, 9
    mean = mse_loss(pred, target)
    assert isinstance(mean, Tensor) and mean.shape == () and mean.dtype == np.float64
    np.testing.assert_allclose(mean.data, 3.5, rtol=1e-12)
    np.testing.assert_allclose(mse_loss(pred, target, reduction="sum").data, 14.0, rtol=1e-12)

def test_unit_mse_float32_and_shape_error():
    gen = np.random.default_rng(0)
    p = gen.standard_normal((8, 3)).astype(np.float32)
    t = gen.standard_normal((8, 3)).astype(np.float32)
    expected = np.mean((p.astype(np.float64) - t.astype(np.float64)) ** 2)
    got = mse_loss(Tensor(p), Tensor(t))
    assert got.dtype == np.float32 and got.shape == ()
    np.testing.assert_allclose(got.data, expected, rtol=1e-5)
    try:
        mse_loss(Tensor(np.zeros((4, 1))), Tensor(np.zeros(4)))
    except ValueError as err:
        assert "(4, 1)" in str(err) and "(4,)" in str(err)
    else:
        raise AssertionError("predictions (4, 1) against targets (4,) must raise ValueError, not broadcast")

test_unit_mse_by_hand()
test_unit_mse_float32_and_shape_error()
### BEGIN HIDDEN TESTS
def test_hidden_mse_none_arrays_and_reduction():
    gen = np.random.default_rng(1)
    p, t = gen.standard_normal((3, 2, 5)), gen.standard_normal((3, 2, 5))
    per_element = mse_loss(Tensor(p, dtype=np.float64), Tensor(t, dtype=np.float64), reduction="none")
    assert per_element.shape == (3, 2, 5)
    np.testing.assert_allclose(per_element.data, (p - t) ** 2, rtol=1e-12)
    from_arrays = mse_loss(p.astype(np.float32), t.astype(np.float32), reduction="sum")
    assert isinstance(from_arrays, Tensor) and from_arrays.shape == ()
    np.testing.assert_allclose(from_arrays.data, np.sum((p.astype(np.float32).astype(np.float64) - t.astype(np.float32)) ** 2), rtol=1e-5)
    try:
        mse_loss(Tensor(p), Tensor(t), reduction="max")
    except ValueError:
        pass
    else:
        raise AssertionError("reduction='max' must raise ValueError")

test_hidden_mse_none_arrays_and_reduction()
### END HIDDEN TESTS

# %% [markdown]
# ## Cross entropy from logits
#
# A classifier outputs one score per class, the logits `x` of shape `(N, C)`. Softmax turns a
# row into probabilities, and the loss of a sample with true class `y` is minus the log of the
# probability the model gave to it:
#
# ```
#   p_c = exp(x_c) / Σ_j exp(x_j)          loss = -log p_y = log Σ_j exp(x_j) - x_y
#                                                            └── log-sum-exp ──┘
# ```
#
# The right-hand form never takes the log of a probability, so a probability too small for
# floating point (`exp(-200)` is 0 in float32) cannot turn into `log(0) = -inf`. The remaining
# danger is `exp` itself: it overflows to `inf` above about 88.7 in float32 and 709.8 in float64.
# Subtract the row maximum `m = max_j x_j` first, which changes nothing mathematically:
#
# ```
#   log Σ_j exp(x_j) = m + log Σ_j exp(x_j - m)          every x_j - m ≤ 0, and one of them is 0,
#                                                        so the sum lies in [1, C]: no overflow, no log(0)
# ```
#
# | per row | the steps |
# |---|---|
# | `m` | the largest logit in the row (`axis=1`: over the classes, not over the batch) |
# | `lse` | `m + log(sum(exp(x - m)))` |
# | `picked` | `x[i, y_i]`, the logit of sample i's true class (`x[np.arange(N), y]`) |
# | loss | `lse - picked`, then `reduce_loss` |
#
# Compute `(m - picked) + log(...)` in that order: with logits near 1000, `m + log(...)` would
# round to float32's spacing at 1000 (6e-5) before the subtraction.
#
# Check the inputs before computing, each with a message that names what was wrong:
#
# | bad input | error |
# |---|---|
# | logits not 2-D | `ValueError` naming the shape (one sample is `logits.reshape(1, -1)`) |
# | targets not of an integer dtype (floats, bools, one-hot rows) | `TypeError` naming the dtype |
# | targets not of shape `(N,)` | `ValueError` naming both shapes |
# | a label `< 0` or `≥ C` | `ValueError` naming the label and `C` (a `-1` would otherwise silently pick the last column) |

# %% nbgrader={"grade": false, "grade_id": "cross-entropy-loss", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
@records("cross_entropy_loss", "logits", "targets")   # module 01's seam: module 06 attaches the gradient
def cross_entropy_loss(logits, targets, reduction: str = "mean") -> Tensor:
    """Softmax cross entropy from logits (N, C) and integer class ids (N,), via a stable log-sum-exp."""
    ### BEGIN SOLUTION
    scores = _as_tensor(logits)
    labels = targets.data if isinstance(targets, Tensor) else np.asarray(targets)
    if scores.ndim != 2:
        raise ValueError(f"cross_entropy_loss needs logits of shape (N, C), got shape {scores.shape}; "
                         "for a single sample use logits.reshape(1, -1)")
    n_samples, n_classes = scores.shape
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"cross_entropy_loss needs integer class ids as targets, got dtype {labels.dtype}; "
                        "convert with .astype(np.int64) (one-hot rows: use .argmax(axis=1))")
    if labels.shape != (n_samples,):
        raise ValueError(f"cross_entropy_loss: logits have shape {scores.shape}, so targets must have shape "
                         f"({n_samples},), one class id per sample; got shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        bad_label = labels.min() if labels.min() < 0 else labels.max()
        raise ValueError(f"cross_entropy_loss: class id {bad_label} is out of range for {n_classes} classes; "
                         f"targets must lie in [0, {n_classes - 1}]")
    dtype = _float_dtype(scores)
    x = scores.data.astype(dtype, copy=False)
    row_max = x.max(axis=1)
    picked = x[np.arange(n_samples), labels]
    sum_shifted = np.exp(x - row_max[:, None]).sum(axis=1)      # in [1, C]: no overflow, no log(0)
    per_sample = (row_max - picked) + np.log(sum_shifted)
    return Tensor(reduce_loss(per_sample, reduction), dtype=dtype)
    ### END SOLUTION


# %% [markdown]
# ### Test: `cross_entropy_loss` against hand values and a float64 log-sum-exp
#
# The oracle uses NumPy's `np.logaddexp.reduce`, which adds `exp`s in log space. The logits have
# more rows than columns, so a softmax over the wrong axis gives different numbers.

# %% nbgrader={"grade": true, "grade_id": "test-cross-entropy-loss", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
def test_unit_cross_entropy_by_hand():
    uniform = cross_entropy_loss(Tensor(np.zeros((1, 4)), dtype=np.float64), np.array([2]))
    assert isinstance(uniform, Tensor) and uniform.shape == ()
    np.testing.assert_allclose(uniform.data, np.log(4.0), rtol=1e-12)   # four equal scores: p = 1/4
    # logits (0, ln 3): p = (1/4, 3/4)
    two_rows = Tensor(np.array([[0.0, np.log(3.0)], [0.0, np.log(3.0)]]), dtype=np.float64)
    np.testing.assert_allclose(cross_entropy_loss(two_rows, np.array([1, 0]), reduction="none").data,
                               [-np.log(0.75), -np.log(0.25)], rtol=1e-12)

def test_unit_cross_entropy_matches_logsumexp():
    gen = np.random.default_rng(0)
    x = gen.standard_normal((6, 3)) * 3
    y = np.array([0, 2, 1, 2, 2, 0])
    oracle = np.logaddexp.reduce(x, axis=1) - np.array([x[i, y[i]] for i in range(6)])
    got = cross_entropy_loss(Tensor(x, dtype=np.float64), y)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got.data, oracle.mean(), rtol=1e-10)
    np.testing.assert_allclose(cross_entropy_loss(Tensor(x, dtype=np.float64), y, reduction="sum").data,
                               oracle.sum(), rtol=1e-10)
    as_float32 = cross_entropy_loss(Tensor(x.astype(np.float32)), y)
    assert as_float32.dtype == np.float32 and as_float32.shape == ()
    np.testing.assert_allclose(as_float32.data, oracle.mean(), rtol=1e-5)

def test_unit_cross_entropy_large_logits():
    x = np.array([[1000.0, 0.0, -1000.0], [1000.0, 1000.0, 0.0], [-1000.0, 1000.0, 50.0]])
    y = np.array([0, 2, 2])
    # by hand: row 0 is certain and right (loss 0); row 1 splits between two classes (lse = 1000 + ln 2)
    oracle = np.array([0.0, 1000.0 + np.log(2.0), 950.0])
    got = cross_entropy_loss(Tensor(x.astype(np.float32)), y, reduction="none").data
    assert np.all(np.isfinite(got)), f"logits of +-1000 must give finite losses, got {got}"
    np.testing.assert_allclose(got, oracle, rtol=1e-6, atol=1e-3)

def test_unit_cross_entropy_errors():
    logits = Tensor(np.zeros((3, 4)))
    cases = [
        (Tensor(np.zeros(4)), np.array([1]), ValueError, "(4,)"),              # logits not 2-D
        (logits, np.array([0, 4, 1]), ValueError, "4"),                         # label = C
        (logits, np.array([0, -1, 1]), ValueError, "-1"),                       # negative label
        (logits, np.array([0.0, 1.0, 2.0]), TypeError, "float"),                # not integers
        (logits, np.array([0, 1]), ValueError, "(2,)"),                         # one label short
    ]
    for bad_logits, bad_targets, error, named in cases:
        try:
            cross_entropy_loss(bad_logits, bad_targets)
        except error as err:
            assert named in str(err), f"the message should name {named!r}: {err}"
        else:
            raise AssertionError(f"logits {bad_logits.shape} with targets {bad_targets!r} must raise {error.__name__}")

test_unit_cross_entropy_by_hand()
test_unit_cross_entropy_matches_logsumexp()
test_unit_cross_entropy_large_logits()
test_unit_cross_entropy_errors()
### BEGIN HIDDEN TESTS
def test_hidden_cross_entropy_shift_and_targets():
    gen = np.random.default_rng(3)
    x = gen.standard_normal((5, 7))
    y = gen.integers(0, 7, size=5)
    base = cross_entropy_loss(Tensor(x, dtype=np.float64), y, reduction="none").data
    shifted = cross_entropy_loss(Tensor(x + 800.0, dtype=np.float64), y, reduction="none").data
    np.testing.assert_allclose(shifted, base, rtol=1e-9, atol=1e-9)          # softmax ignores a shift
    oracle = np.logaddexp.reduce(x, axis=1) - np.take_along_axis(x, y[:, None], axis=1)[:, 0]
    np.testing.assert_allclose(base, oracle, rtol=1e-10)
    from_tensor = cross_entropy_loss(Tensor(x, dtype=np.float64), Tensor(y))
    np.testing.assert_allclose(from_tensor.data, oracle.mean(), rtol=1e-10)
    one_hot = np.eye(7, dtype=np.int64)[y]
    try:
        cross_entropy_loss(Tensor(x), one_hot)
    except ValueError as err:
        assert "(5, 7)" in str(err)
    else:
        raise AssertionError("one-hot targets of shape (5, 7) must raise ValueError naming the shape")
    try:
        cross_entropy_loss(Tensor(x[None]), y)
    except ValueError:
        pass
    else:
        raise AssertionError("3-D logits must raise ValueError")
    try:
        cross_entropy_loss(Tensor(np.zeros((3, 5))), np.array([0, 7, 1]))
    except ValueError as err:
        assert "7" in str(err) and "5" in str(err), f"the message should name the bad label 7 and the 5 classes: {err}"
    else:
        raise AssertionError("label 7 with 5 classes must raise ValueError")

test_hidden_cross_entropy_shift_and_targets()
### END HIDDEN TESTS

# %% [markdown]
# ## Binary cross entropy from logits
#
# For a yes/no label `y` and a logit `x`, the model says `p = σ(x) = 1 / (1 + exp(-x))` and the
# loss is the cross entropy of two outcomes:
#
# ```
#   loss = -[y log σ(x) + (1 - y) log(1 - σ(x))]
# ```
#
# Taken literally it breaks twice: `σ(100)` is exactly 1.0 in floating point, so `log(1 - σ)` is
# `log(0) = -inf`; and `0 · log(0)` is `nan`. Rearrange with `log σ(x) = -softplus(-x)` and
# `log(1 - σ(x)) = -softplus(x)`, where `softplus(x) = log(1 + exp(x))`, and
# `softplus(-x) = softplus(x) - x`:
#
# ```
#   loss = softplus(x) - x·y
#        = max(x, 0) - x·y + log1p(exp(-|x|))
# ```
#
# `exp(-|x|)` lies in (0, 1], so nothing overflows, and `log1p(u)` computes `log(1 + u)`
# accurately even when `u` is tiny (at `x = 40`, `1 + exp(-40)` is exactly 1.0 in float64, yet
# `log1p(exp(-40))` still gives 4.2e-18).
#
# Logits and targets must have the same shape (`ValueError` naming both); targets must lie in
# `[0, 1]`, hard 0/1 labels or soft probabilities (`ValueError` naming the values found
# otherwise). Compute in `_float_dtype(logits)` and reduce over every element.

# %% nbgrader={"grade": false, "grade_id": "binary-cross-entropy-loss", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
@records("binary_cross_entropy_loss", "logits", "targets")   # module 01's seam: module 06 attaches the gradient
def binary_cross_entropy_loss(logits, targets, reduction: str = "mean") -> Tensor:
    """Sigmoid binary cross entropy from logits and targets in [0, 1] of the same shape, stable for any |x|."""
    ### BEGIN SOLUTION
    scores, labels = _as_tensor(logits), _as_tensor(targets)
    if scores.shape != labels.shape:
        raise ValueError(f"binary_cross_entropy_loss: logits have shape {scores.shape} but targets have shape "
                         f"{labels.shape}; they must match exactly (reshape one of them)")
    if labels.size and not np.all((labels.data >= 0) & (labels.data <= 1)):   # False for nan too
        raise ValueError(f"binary_cross_entropy_loss targets must lie in [0, 1] (0/1 labels or probabilities), "
                         f"got values from {np.min(labels.data)} to {np.max(labels.data)}; "
                         "for class ids use cross_entropy_loss")
    dtype = _float_dtype(scores)
    x = scores.data.astype(dtype, copy=False)
    y = labels.data.astype(dtype, copy=False)
    softplus = np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))   # log(1 + e^x), never overflows
    return Tensor(reduce_loss(softplus - x * y, reduction), dtype=dtype)
    ### END SOLUTION


# %% [markdown]
# ### Test: `binary_cross_entropy_loss` against hand values and `np.logaddexp`
#
# The oracle writes `softplus(x)` as `np.logaddexp(0, x)` = `log(e^0 + e^x)`, in float64.

# %% nbgrader={"grade": true, "grade_id": "test-binary-cross-entropy-loss", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def test_unit_bce_values():
    undecided = binary_cross_entropy_loss(Tensor(np.zeros(2), dtype=np.float64), Tensor(np.array([0.0, 1.0]), dtype=np.float64))
    assert isinstance(undecided, Tensor) and undecided.shape == ()
    np.testing.assert_allclose(undecided.data, np.log(2.0), rtol=1e-12)          # sigma(0) = 1/2 either way
    gen = np.random.default_rng(0)
    x = gen.standard_normal((4, 3)) * 4
    y = gen.uniform(0, 1, size=(4, 3))                                           # soft labels
    oracle = np.logaddexp(0.0, x) - x * y
    got = binary_cross_entropy_loss(Tensor(x, dtype=np.float64), Tensor(y, dtype=np.float64))
    np.testing.assert_allclose(got.data, oracle.mean(), rtol=1e-10)
    summed = binary_cross_entropy_loss(Tensor(x, dtype=np.float64), Tensor(y, dtype=np.float64), reduction="sum")
    np.testing.assert_allclose(summed.data, oracle.sum(), rtol=1e-10)
    as_float32 = binary_cross_entropy_loss(Tensor(x.astype(np.float32)), Tensor(y.astype(np.float32)))
    assert as_float32.dtype == np.float32
    np.testing.assert_allclose(as_float32.data, oracle.mean(), rtol=1e-5)

def test_unit_bce_large_logits():
    x = np.array([100.0, -100.0, 100.0, -100.0, 1000.0, -1000.0], dtype=np.float32)
    y = np.array([0.0, 1.0, 1.0, 0.0, 0.0, 0.0], dtype=np.float32)
    oracle = np.logaddexp(0.0, x.astype(np.float64)) - x.astype(np.float64) * y    # 100, 100, 0, 0, 1000, 0
    got = binary_cross_entropy_loss(Tensor(x), Tensor(y), reduction="none").data
    assert np.all(np.isfinite(got)), f"logits of +-100 and +-1000 must give finite losses, got {got}"
    np.testing.assert_allclose(got, oracle, rtol=1e-6, atol=1e-6)

def test_unit_bce_errors():
    try:
        binary_cross_entropy_loss(Tensor(np.zeros((3, 1))), Tensor(np.zeros(3)))
    except ValueError as err:
        assert "(3, 1)" in str(err) and "(3,)" in str(err)
    else:
        raise AssertionError("logits (3, 1) against targets (3,) must raise ValueError")
    for outside in ([0.0, 2.0], [-1.0, 1.0]):
        try:
            binary_cross_entropy_loss(Tensor(np.zeros(2)), Tensor(np.array(outside)))
        except ValueError:
            continue
        raise AssertionError(f"targets {outside} are not in [0, 1] and must raise ValueError")

test_unit_bce_values()
test_unit_bce_large_logits()
test_unit_bce_errors()
### BEGIN HIDDEN TESTS
def test_hidden_bce_none_and_integer_labels():
    gen = np.random.default_rng(5)
    x = gen.standard_normal((2, 3, 4)) * 30
    y = gen.integers(0, 2, size=(2, 3, 4))
    per_element = binary_cross_entropy_loss(Tensor(x, dtype=np.float64), y, reduction="none")
    assert per_element.shape == (2, 3, 4)
    np.testing.assert_allclose(per_element.data, np.logaddexp(0.0, x) - x * y, rtol=1e-10, atol=1e-12)
    confident_and_right = binary_cross_entropy_loss(Tensor(np.array([-40.0]), dtype=np.float64), np.array([0.0]))
    np.testing.assert_allclose(confident_and_right.data, np.exp(-40.0), rtol=1e-9)    # log1p keeps 4.2e-18
    try:
        binary_cross_entropy_loss(Tensor(np.zeros(2)), Tensor(np.array([0.5, np.nan])))
    except ValueError:
        pass
    else:
        raise AssertionError("a nan target must raise ValueError")
    try:
        binary_cross_entropy_loss(Tensor(np.zeros(3)), Tensor(np.array([0.5, 2.5, -1.5])))
    except ValueError as err:
        assert "2.5" in str(err) and "-1.5" in str(err), f"the message should name the smallest and largest target: {err}"
    else:
        raise AssertionError("targets 2.5 and -1.5 must raise ValueError")

test_hidden_bce_none_and_integer_labels()
### END HIDDEN TESTS

# %% [markdown]
# ## Loss objects
#
# Models are objects you call; losses can be too. `Loss` (given) stores `reduction` (checked at
# construction), forwards `loss(predictions, targets)` to `forward`, and has no parameters, so a
# loss sits wherever a layer does (`parameters()` is `[]`). Write each `forward` as a call of the
# matching functional form with the stored reduction: the functional form records the operation
# for module 06, so the object must not compute anything of its own.

# %% nbgrader={"grade": false, "grade_id": "loss-classes", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
class Loss:
    """Base class: loss(predictions, targets) calls forward; reduction is one of REDUCTIONS."""

    def __init__(self, reduction: str = "mean"):
        if reduction not in REDUCTIONS:
            raise ValueError(f"unknown reduction {reduction!r} for {type(self).__name__}; "
                             f"use one of {', '.join(map(repr, REDUCTIONS))}")
        self.reduction = reduction

    def forward(self, predictions, targets) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement forward(predictions, targets)")

    def __call__(self, predictions, targets) -> Tensor:
        return self.forward(predictions, targets)

    def parameters(self) -> list:
        return []   # nothing to train: a loss composes with layers (Sequential, count_parameters)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(reduction={self.reduction!r})"


class MSELoss(Loss):
    """Mean squared error; see mse_loss."""

    def forward(self, predictions, targets) -> Tensor:
        ### BEGIN SOLUTION
        return mse_loss(predictions, targets, reduction=self.reduction)
        ### END SOLUTION


class CrossEntropyLoss(Loss):
    """Softmax cross entropy from logits (N, C) and class ids (N,); see cross_entropy_loss."""

    def forward(self, logits, targets) -> Tensor:
        ### BEGIN SOLUTION
        return cross_entropy_loss(logits, targets, reduction=self.reduction)
        ### END SOLUTION


class BinaryCrossEntropyLoss(Loss):
    """Sigmoid binary cross entropy from logits; see binary_cross_entropy_loss."""

    def forward(self, logits, targets) -> Tensor:
        ### BEGIN SOLUTION
        return binary_cross_entropy_loss(logits, targets, reduction=self.reduction)
        ### END SOLUTION


# %% [markdown]
# ### Test: the objects compute the losses with their reduction

# %% nbgrader={"grade": true, "grade_id": "test-loss-classes", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def test_unit_loss_objects():
    gen = np.random.default_rng(7)
    x = gen.standard_normal((5, 3))
    labels = np.array([2, 0, 1, 1, 0])
    ce_oracle = np.logaddexp.reduce(x, axis=1) - x[np.arange(5), labels]
    ce = CrossEntropyLoss()
    assert ce.parameters() == [] and ce.reduction == "mean"
    np.testing.assert_allclose(ce(Tensor(x, dtype=np.float64), labels).data, ce_oracle.mean(), rtol=1e-10)
    np.testing.assert_allclose(CrossEntropyLoss(reduction="sum")(Tensor(x, dtype=np.float64), labels).data,
                               ce_oracle.sum(), rtol=1e-10)
    t = gen.standard_normal((5, 3))
    np.testing.assert_allclose(MSELoss(reduction="sum")(Tensor(x, dtype=np.float64), Tensor(t, dtype=np.float64)).data,
                               np.sum((x - t) ** 2), rtol=1e-10)
    y = (t > 0).astype(np.float64)
    bce = BinaryCrossEntropyLoss()
    assert bce.parameters() == []
    np.testing.assert_allclose(bce(Tensor(x, dtype=np.float64), Tensor(y, dtype=np.float64)).data,
                               np.mean(np.logaddexp(0.0, x) - x * y), rtol=1e-10)

test_unit_loss_objects()
### BEGIN HIDDEN TESTS
def test_hidden_loss_objects_none_and_bad_reduction():
    x = np.array([[2.0, -1.0], [0.5, 0.5]])
    t = np.array([[1.0, 1.0], [0.0, 0.5]])
    per_element = MSELoss(reduction="none")(Tensor(x, dtype=np.float64), Tensor(t, dtype=np.float64))
    np.testing.assert_allclose(per_element.data, [[1.0, 4.0], [0.25, 0.0]], rtol=1e-12)
    per_sample = CrossEntropyLoss(reduction="none")(Tensor(x, dtype=np.float64), np.array([0, 1]))
    np.testing.assert_allclose(per_sample.data, [np.log1p(np.exp(-3.0)), np.log(2.0)], rtol=1e-12)
    try:
        BinaryCrossEntropyLoss(reduction="batchmean")
    except ValueError:
        pass
    else:
        raise AssertionError("reduction='batchmean' must raise ValueError")

test_hidden_loss_objects_none_and_bad_reduction()
### END HIDDEN TESTS

# %% [markdown]
# ## Analysis: the textbook formulas on logits of ±100, and what stability costs
#
# Three ways to compute the same two losses, run on your machine with NumPy's warnings counted:
#
# - **naive**: softmax as `exp(x) / Σ exp(x)`, then `log`; sigmoid as `1 / (1 + exp(-x))`, then
#   the two logs of the textbook formula;
# - **stable activation, then log**: module 02's `Softmax` and `Sigmoid` (which never overflow)
#   followed by `log`: the probabilities are right, but the log of one that rounded to 0 is `-inf`;
# - **fused**: your `cross_entropy_loss` and `binary_cross_entropy_loss`.
#
# Logits of ±100 in float32 and float64, then ±1000 in float64 (float64's `exp` overflows above
# 709.8, float32's above 88.7). The exact answers, for comparison: for logits `(s, -s)` cross
# entropy is about 0 for class 0 and `2s` for class 1; binary cross entropy is `s` when the logit
# has the wrong sign and about 0 when it has the right one.

# %%
import os
import statistics
import timeit
import warnings

QUICK = os.environ.get("TITO_AUTOGRADING") == "1"   # shrink sizes and repeats while grading


def naive_cross_entropy(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    exps = np.exp(x)
    probabilities = exps / exps.sum(axis=1, keepdims=True)
    return -np.log(probabilities[np.arange(len(y)), y])


def softmax_then_log(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    probabilities = Softmax(axis=1)(Tensor(x, dtype=x.dtype)).data
    return -np.log(probabilities[np.arange(len(y)), y])


def naive_binary_cross_entropy(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    p = 1 / (1 + np.exp(-x))
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


def sigmoid_then_log(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    p = Sigmoid()(Tensor(x, dtype=x.dtype)).data
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


def fused_cross_entropy(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return cross_entropy_loss(Tensor(x, dtype=x.dtype), y, reduction="none").data


def fused_binary_cross_entropy(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return binary_cross_entropy_loss(Tensor(x, dtype=x.dtype), Tensor(y, dtype=y.dtype), reduction="none").data


def run_counting_warnings(fn, *args):
    """(result, number of RuntimeWarnings NumPy raised)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fn(*args)
    return result, sum(issubclass(w.category, RuntimeWarning) for w in caught)


def show(values: np.ndarray) -> str:
    return np.array2string(np.asarray(values), separator=", ", formatter={"float_kind": lambda v: f"{v:.4g}"})


class_ids = np.array([0, 1])
binary_labels = [0.0, 1.0, 1.0, 0.0]
for dtype, scale in [(np.float32, 100.0), (np.float64, 100.0), (np.float64, 1000.0)]:
    x_ce = np.array([[scale, -scale], [scale, -scale]], dtype=dtype)
    x_bce = np.array([scale, -scale, scale, -scale], dtype=dtype)
    y_bce = np.array(binary_labels, dtype=dtype)
    print(f"{np.dtype(dtype).name}, cross entropy, logits ({scale:g}, {-scale:g}), true class 0 then 1")
    for label, fn in [("naive softmax, log", naive_cross_entropy), ("Softmax (02), log", softmax_then_log),
                      ("cross_entropy_loss", fused_cross_entropy)]:
        out, count = run_counting_warnings(fn, x_ce, class_ids)
        print(f"  {label:26} {show(out):30} ({count} warnings)")
    print(f"{np.dtype(dtype).name}, binary cross entropy, logits {show(x_bce)}, targets {show(y_bce)}")
    for label, fn in [("naive sigmoid, log", naive_binary_cross_entropy), ("Sigmoid (02), log", sigmoid_then_log),
                      ("binary_cross_entropy_loss", fused_binary_cross_entropy)]:
        out, count = run_counting_warnings(fn, x_bce, y_bce)
        print(f"  {label:26} {show(out):30} ({count} warnings)")

# %% [markdown]
# What does stability cost? The fused cross entropy does a little more work per element (a max,
# a subtraction) than the naive formula. The time per logit on a float32 batch, median of
# repeats after a warm-up:

# %%
n_samples, n_classes = (256, 100) if QUICK else (4096, 1000)
repeats = 3 if QUICK else 7
gen = np.random.default_rng(0)
moderate_logits = gen.standard_normal((n_samples, n_classes)).astype(np.float32)   # small: naive is right here
labels = gen.integers(0, n_classes, size=n_samples)
candidates = {
    "naive softmax, log": lambda: naive_cross_entropy(moderate_logits, labels).mean(),
    "cross_entropy_loss": lambda: cross_entropy_loss(Tensor(moderate_logits), labels),
}
seconds = {}
for name, fn in candidates.items():
    fn()                                             # warm-up
    seconds[name] = statistics.median(timeit.repeat(fn, number=3, repeat=repeats)) / 3
print(f"logits ({n_samples}, {n_classes}) float32:")
for name, s in seconds.items():
    print(f"  {name:20} {s / moderate_logits.size * 1e9:7.2f} ns/logit   {s / seconds['naive softmax, log']:5.2f}x naive")
agree = abs(float(candidates["naive softmax, log"]()) - float(cross_entropy_loss(Tensor(moderate_logits), labels).data))
print(f"  on these moderate logits both give the same loss (difference {agree:.2e})")

# %% [markdown]
# A sanity check you will use when training: a classifier whose logits are all equal gives every
# class `1/C`, so its cross entropy is exactly `ln C` (2.30 for ten digits). Random initial
# logits spread around zero with some variance `σ²`, which adds about `σ²(1 - 1/C)/2` (expand
# log-sum-exp to second order). A loss far above that at step 0 means the initialisation, the
# inputs' scale or the labels are wrong. Measured on module 03's `Linear(64, 10)` and random inputs:

# %%
n_classes = 10
classifier = Linear(64, n_classes, seed=0)
inputs = Tensor(np.random.default_rng(1).standard_normal((512, 64)))
random_labels = np.random.default_rng(2).integers(0, n_classes, size=512)
initial_logits = classifier(inputs)
spread = float(initial_logits.data.astype(np.float64).var())
equal_logits = cross_entropy_loss(Tensor(np.zeros((512, n_classes))), random_labels)
initial = cross_entropy_loss(initial_logits, random_labels)
print(f"all logits equal:                {float(equal_logits.data):.4f}   (ln {n_classes} = {np.log(n_classes):.4f})")
print(f"untrained Linear(64, {n_classes}), 512 samples: {float(initial.data):.4f}   "
      f"(logit variance {spread:.3f}; ln C + var (1 - 1/C) / 2 = {np.log(n_classes) + spread * (1 - 1 / n_classes) / 2:.4f})")
