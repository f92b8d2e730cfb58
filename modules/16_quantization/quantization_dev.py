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
# # Module 16: Quantization
#
# A trained float32 network spends 4 bytes on every weight. Most of those bits are noise: the
# digits models of modules 08 and 09 keep their accuracy when every weight is rounded to one of
# 255 levels, stored in **one byte**. This module does post-training quantization for real: the
# codes are stored as `int8` arrays (you will measure `nbytes` about 4× smaller), the products are
# computed by module 13's int8 kernel with exact int32 accumulation, and the accuracy and the
# latency are measured on your machine, not written down.
#
# ```
#   float x ──quantize──▶ int8 codes ─┐                         s_x, z_x: the input's scale and zero point
#                                     ├─ int8 GEMM, int32 sums ─▶ + int32 bias ─▶ × s_x·s_w ─▶ float y
#   float W ──quantize (once)──▶ int8 codes (stored) ─┘          s_w: one scale per output channel
# ```
#
# The one formula behind everything here, with `q` an integer code:
#
# ```
#   value ≈ scale · (q − zero_point)          q = clip(round(value / scale) + zero_point, q_min, q_max)
# ```
#
# | you build | what it is for |
# |---|---|
# | `MinMaxObserver`, `PercentileObserver` | the range of values a tensor takes (min/max, or ignoring rare outliers) |
# | `INT8Quantizer` | scale and zero point from an observed range: symmetric or asymmetric, per tensor or per channel, `int8` or `uint8`; saturating `quantize`, `dequantize` |
# | `requantize` | int32 sums back to 8-bit codes at another scale (how integer-only pipelines chain layers) |
# | `QuantizedLinear`, `QuantizedConv2d` | layers that store int8 weights and an int32 bias and run the int8 GEMM |
# | `calibrate`, `quantize_model`, `model_nbytes` | activation ranges from real batches; swapping every layer in place; the bytes a model really stores |

# %%
#| default_exp optimization.quantization

# %%
#| export
import numpy as np

from tinytorch.core.tensor import Tensor
from tinytorch.core.layers import Linear
from tinytorch.core.autograd import no_grad
from tinytorch.core.spatial import Conv2d, im2col, window_output_size
from tinytorch.core.kernels import INT8_LIMIT, int8_matmul

# %%
import os

from tinytorch.core.activations import ReLU
from tinytorch.core.layers import Sequential
from tinytorch.core.spatial import Flatten, MaxPool2d, conv2d_naive

QUICK = os.environ.get("TITO_AUTOGRADING") == "1"   # shrink training and repeats while grading

# %% [markdown]
# ## Part 1: observing a range
#
# Before anything can be quantized we need to know which values it takes. An **observer** sees
# batches one after another and keeps a summary:
#
# - `MinMaxObserver` keeps the running minimum and maximum. Exact, cheap, and at the mercy of a
#   single outlier: one activation of 1000 among values of ±1 stretches the scale 1000-fold, and
#   every ordinary value then lands on the same few codes.
# - `PercentileObserver(percentile=99.99)` keeps the values it saw and reports the
#   `100 − p` and `p` percentiles: the rare extremes are left out of the range and **saturate**
#   (they become the largest code) instead of ruining the resolution of everything else.
#
# Both take `axis`: `None` summarises the whole tensor; an integer keeps one range per index along
# that axis (per *channel*: the output columns of a Linear weight, axis 1, or the filters of a
# Conv2d weight, axis 0). `range()` returns `(low, high)`, floats or arrays of shape `(channels,)`;
# before any data it raises `RuntimeError`, and an empty batch is a `ValueError`.
#
# `_channel_rows` (given) lays a tensor out as one row per channel, so both observers reduce along
# axis 1 whatever the tensor's rank.

# %% nbgrader={"grade": false, "grade_id": "observers", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def _as_values(x) -> np.ndarray:
    """A Tensor or array-like as a float64 ndarray (a copy: observers never alias the caller's data)."""
    data = x.data if isinstance(x, Tensor) else x
    return np.array(data, dtype=np.float64)


def _channel_rows(values: np.ndarray, axis: int | None) -> np.ndarray:
    """values as (1, everything) for axis=None, or (channels, everything else) for a channel axis."""
    if axis is None:
        return values.reshape(1, -1)
    if not -values.ndim <= axis < values.ndim:
        raise ValueError(f"channel axis {axis} does not exist in a tensor of shape {values.shape}")
    return np.moveaxis(values, axis, 0).reshape(values.shape[axis], -1)


def _not_observed(kind: str) -> RuntimeError:
    return RuntimeError(f"{kind} has observed no data yet: observe() some batches first "
                        "(for a model, calibrate(model, batches) does it for every layer)")


class MinMaxObserver:
    """Running min and max of everything observed (one pair per channel when axis is set)."""

    def __init__(self, axis: int | None = None):
        self.axis = axis
        self.low = None    # float64 array (channels,) once data arrives
        self.high = None

    def observe(self, x) -> None:
        ### BEGIN SOLUTION
        rows = _channel_rows(_as_values(x), self.axis)
        if rows.size == 0:
            raise ValueError("cannot observe an empty batch: pass at least one value")
        batch_low, batch_high = rows.min(axis=1), rows.max(axis=1)
        if self.low is None:
            self.low, self.high = batch_low, batch_high
        else:
            self.low, self.high = np.minimum(self.low, batch_low), np.maximum(self.high, batch_high)
        ### END SOLUTION

    def range(self) -> tuple:
        """(low, high): floats for axis=None, arrays of shape (channels,) otherwise."""
        ### BEGIN SOLUTION
        if self.low is None:
            raise _not_observed("MinMaxObserver")
        if self.axis is None:
            return float(self.low[0]), float(self.high[0])
        return self.low.copy(), self.high.copy()
        ### END SOLUTION


class PercentileObserver:
    """The (100 - percentile, percentile) percentiles of everything observed: rare outliers saturate.

    Keeps every observed value (fine for calibration sets of a few hundred samples).
    """

    def __init__(self, percentile: float = 99.99, axis: int | None = None):
        if not 50.0 < percentile <= 100.0:
            raise ValueError(f"percentile must be in (50, 100], got {percentile}; 99.99 keeps all but the rarest values")
        self.percentile = float(percentile)
        self.axis = axis
        self.seen = []     # (channels, n) blocks, one per observed batch

    def observe(self, x) -> None:
        ### BEGIN SOLUTION
        rows = _channel_rows(_as_values(x), self.axis)
        if rows.size == 0:
            raise ValueError("cannot observe an empty batch: pass at least one value")
        self.seen.append(rows)
        ### END SOLUTION

    def range(self) -> tuple:
        ### BEGIN SOLUTION
        if not self.seen:
            raise _not_observed("PercentileObserver")
        everything = np.concatenate(self.seen, axis=1)
        low = np.percentile(everything, 100.0 - self.percentile, axis=1)
        high = np.percentile(everything, self.percentile, axis=1)
        if self.axis is None:
            return float(low[0]), float(high[0])
        return low, high
        ### END SOLUTION


# %% [markdown]
# ### Test: observers over several batches

# %% nbgrader={"grade": true, "grade_id": "test-observers", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def test_unit_minmax_over_batches():
    observer = MinMaxObserver()
    observer.observe(np.array([1.0, -2.0, 0.5]))
    observer.observe(np.array([[5.0, 0.0]]))
    observer.observe(Tensor(np.array([3.0, -1.0])))
    low, high = observer.range()
    assert (low, high) == (-2.0, 5.0), f"the range of all three batches is (-2, 5), got {(low, high)}"

    per_column = MinMaxObserver(axis=1)
    first = np.array([[1.0, -4.0, 0.0], [2.0, 3.0, -1.0]])
    second = np.array([[-3.0, 1.0, 7.0]])
    per_column.observe(first)
    per_column.observe(second)
    low, high = per_column.range()
    both = np.concatenate([first, second])
    np.testing.assert_array_equal(np.asarray(low), both.min(axis=0))
    np.testing.assert_array_equal(np.asarray(high), both.max(axis=0))

def test_unit_percentile_ignores_outliers():
    values = np.concatenate([np.linspace(-1.0, 1.0, 20001), [1000.0, -500.0]])
    observer = PercentileObserver(percentile=99.9)
    observer.observe(values[:12000])
    observer.observe(values[12000:])
    low, high = observer.range()
    np.testing.assert_allclose([low, high], [np.percentile(values, 0.1), np.percentile(values, 99.9)], rtol=1e-9)
    assert high < 2.0, f"the 99.9th percentile ignores the one outlier of 1000, got {high}"

def test_unit_observer_errors():
    for make in (MinMaxObserver, PercentileObserver):
        try:
            make().range()
        except RuntimeError:
            pass
        else:
            raise AssertionError(f"{make.__name__}().range() before any observe() must raise RuntimeError")
        try:
            make().observe(np.array([]))
        except ValueError:
            pass
        else:
            raise AssertionError(f"{make.__name__}().observe of an empty batch must raise ValueError")

test_unit_minmax_over_batches()
test_unit_percentile_ignores_outliers()
test_unit_observer_errors()
### BEGIN HIDDEN TESTS
def test_hidden_observer_axis0_and_copies():
    weights = np.arange(24.0).reshape(4, 3, 2) - 10.0
    observer = MinMaxObserver(axis=0)
    observer.observe(weights)
    low, high = observer.range()
    np.testing.assert_array_equal(np.asarray(low), weights.reshape(4, -1).min(axis=1))
    np.testing.assert_array_equal(np.asarray(high), weights.reshape(4, -1).max(axis=1))
    per_filter = PercentileObserver(percentile=100.0, axis=0)
    per_filter.observe(weights)
    low, high = per_filter.range()
    np.testing.assert_allclose(np.asarray(high), weights.reshape(4, -1).max(axis=1), rtol=1e-12)
    one = MinMaxObserver()
    one.observe(np.array([7.0]))
    assert one.range() == (7.0, 7.0)

test_hidden_observer_axis0_and_copies()
### END HIDDEN TESTS

# %% [markdown]
# ## Part 2: `INT8Quantizer`, scale and zero point
#
# **Symmetric** (weights). Zero maps to code 0 and the largest magnitude to 127:
#
# ```
#   scale = max(|low|, |high|) / 127        zero_point = 0        codes in [-127, 127]
# ```
#
# Weights are centred on zero, so nothing is lost by the symmetry, and a zero point of 0 keeps the
# int8 GEMM free of correction terms on the weight side. Code −128 is left unused so that `−q`
# always exists (module 13's `INT8_LIMIT`).
#
# **Asymmetric** (activations). After a ReLU every value is ≥ 0: a symmetric scale would waste the
# negative half of the codes. An affine map uses all 256 codes of `[q_min, q_max]`
# (`int8`: −128…127, `uint8`: 0…255) for the range `[low, high]`, first widened to contain 0 so
# that the value 0 (ReLU's output, and the zero padding of a convolution) is represented *exactly*:
#
# ```
#   low ≤ 0 ≤ high:   scale = (high − low) / (q_max − q_min)      zero_point = q_min − round(low / scale)
#   e.g. [0, 5.1] as int8:  scale = 0.02, zero_point = −128:   0.0 → −128,  5.1 → 127
# ```
#
# (the zero point is the code of the value 0: `0 = scale · (zero_point − zero_point)`.) A range of
# width 0 (an all-zero tensor) gets scale 1.
#
# **Per channel.** `per_channel=True, axis=a` keeps one scale (and zero point) per index along
# axis `a`. One wide output channel then no longer sets the resolution of all the narrow ones.
#
# **Quantize** rounds to the nearest code (`np.rint`: a truncating `astype` maps 2.9 to 2), then
# **saturates** with `np.clip` *before* the cast: `np.array(200.0).astype(np.int8)` is −56, a
# value beyond the calibrated range would otherwise come back with the wrong sign.
# **Dequantize** is `scale · (q − zero_point)` in float32. Inside `[low, high]` the round trip is
# off by at most `scale / 2`: that is the oracle the tests use.
#
# | method | behaviour |
# |---|---|
# | `INT8Quantizer(symmetric=True, per_channel=False, axis=0, dtype="int8", observer="minmax", percentile=99.99)` | `ValueError` for a symmetric `uint8`, an unknown dtype or observer |
# | `observe(x)` | feed one batch to the observer (the scale is then stale until `compute_qparams`) |
# | `compute_qparams()` | set and return `(scale, zero_point)` from the observed range |
# | `fit(x)` | `observe(x)` then `compute_qparams()`; returns the quantizer (for weights: one call) |
# | `quantize(x)`, `dequantize(q)` | codes of `dtype`, floats of float32; `RuntimeError` before calibration |
#
# `scale` is a float (per tensor) or a float64 array `(channels,)`; `zero_point` an int or an
# int64 array; `_broadcastable` (given) reshapes them to line up with the channel axis of `x`.

# %% nbgrader={"grade": false, "grade_id": "int8-quantizer", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
CODE_RANGES = {"int8": (-128, 127), "uint8": (0, 255)}   # the codes an asymmetric quantizer may use
OBSERVERS = ("minmax", "percentile")


class INT8Quantizer:
    """Maps floats to 8-bit codes q = clip(round(x / scale) + zero_point, q_min, q_max), and back.

    symmetric: zero_point 0 and codes in [-127, 127] (weights); otherwise affine over all 256 codes.
    per_channel, axis: one scale per index along `axis` (1 for Linear weights, 0 for Conv2d weights).
    dtype: "int8" or "uint8" (uint8 only asymmetric). observer: "minmax" or "percentile".
    """

    def __init__(self, symmetric: bool = True, per_channel: bool = False, axis: int = 0, dtype: str = "int8",
                 observer: str = "minmax", percentile: float = 99.99):
        if dtype not in CODE_RANGES:
            raise ValueError(f"dtype must be one of {sorted(CODE_RANGES)}, got {dtype!r}")
        if symmetric and dtype == "uint8":
            raise ValueError("a symmetric quantizer needs signed codes (dtype='int8'); "
                             "use symmetric=False for uint8 codes with a zero point")
        if observer not in OBSERVERS:
            raise ValueError(f"observer must be one of {OBSERVERS}, got {observer!r}")
        self.symmetric, self.per_channel, self.dtype = symmetric, per_channel, dtype
        self.axis = axis if per_channel else None
        self.q_min, self.q_max = (-INT8_LIMIT, INT8_LIMIT) if symmetric else CODE_RANGES[dtype]
        channel_axis = self.axis
        self.observer = (MinMaxObserver(channel_axis) if observer == "minmax"
                         else PercentileObserver(percentile, channel_axis))
        self.scale = None          # float, or float64 array (channels,), once calibrated
        self.zero_point = None     # int, or int64 array (channels,)

    @property
    def calibrated(self) -> bool:
        return self.scale is not None

    def _broadcastable(self, params, ndim: int):
        """scale or zero_point shaped to broadcast against an ndim-dimensional x along the channel axis."""
        if self.axis is None:
            return params
        shape = [1] * ndim
        shape[self.axis] = -1
        return np.reshape(params, shape)

    def _require_calibration(self) -> None:
        if not self.calibrated:
            raise RuntimeError("this INT8Quantizer is not calibrated: call fit(x), or observe() batches and then "
                               "compute_qparams(); for a model use calibrate(model, batches) or quantize_model")

    def observe(self, x) -> None:
        self.observer.observe(x)
        self.scale = self.zero_point = None      # stale until compute_qparams

    def fit(self, x) -> "INT8Quantizer":
        self.observe(x)
        self.compute_qparams()
        return self

    def compute_qparams(self) -> tuple:
        """(scale, zero_point) from the observer's range."""
        ### BEGIN SOLUTION
        low, high = self.observer.range()
        if self.symmetric:
            scale = np.maximum(np.abs(low), np.abs(high)) / INT8_LIMIT
        else:
            low, high = np.minimum(low, 0.0), np.maximum(high, 0.0)      # 0 must be a code
            scale = (high - low) / (self.q_max - self.q_min)
        scale = np.where(scale > 0, scale, 1.0)                          # an all-zero tensor
        zero_point = np.zeros(scale.shape)
        if not self.symmetric:
            zero_point = np.clip(self.q_min - np.rint(low / scale), self.q_min, self.q_max)
        if self.axis is None:
            self.scale, self.zero_point = float(scale), int(zero_point)
        else:
            self.scale, self.zero_point = scale.astype(np.float64), zero_point.astype(np.int64)
        return self.scale, self.zero_point
        ### END SOLUTION

    def quantize(self, x) -> np.ndarray:
        """Codes of self.dtype: rounded to nearest, saturated at q_min and q_max (never wrapped)."""
        ### BEGIN SOLUTION
        self._require_calibration()
        values = np.asarray(x)                      # a Tensor converts itself (__array__)
        scale = self._broadcastable(self.scale, values.ndim)
        zero_point = self._broadcastable(self.zero_point, values.ndim)
        codes = np.rint(values / scale) + zero_point
        np.clip(codes, self.q_min, self.q_max, out=codes)
        return codes.astype(self.dtype)
        ### END SOLUTION

    def dequantize(self, q) -> np.ndarray:
        """float32 values scale * (q - zero_point)."""
        ### BEGIN SOLUTION
        self._require_calibration()
        codes = np.asarray(q)
        scale = self._broadcastable(self.scale, codes.ndim)
        zero_point = self._broadcastable(self.zero_point, codes.ndim)
        return ((codes.astype(np.float64) - zero_point) * scale).astype(np.float32)
        ### END SOLUTION

    def __repr__(self) -> str:
        kind = "symmetric" if self.symmetric else "asymmetric"
        where = f"per-channel axis={self.axis}" if self.per_channel else "per-tensor"
        return f"INT8Quantizer({kind}, {where}, {self.dtype}, calibrated={self.calibrated})"


# %% [markdown]
# ### Test: symmetric per-tensor codes, rounding and saturation
#
# `max|x| = 2.54`, so `scale = 0.02`: `±0.0559` is `±2.795` steps and rounds to `±3` (truncation
# gives ±2), and 10.0 is far beyond the range and must stick at 127 (a wrapping cast would not).

# %% nbgrader={"grade": true, "grade_id": "test-symmetric", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def test_unit_symmetric_scale_and_codes():
    x = np.array([-2.54, -1.0, -0.0559, 0.0, 0.0559, 0.26, 2.54], dtype=np.float32)
    quantizer = INT8Quantizer(symmetric=True).fit(x)
    assert abs(float(quantizer.scale) - 2.54 / 127) < 1e-7, f"scale = max|x| / 127 = 0.02, got {quantizer.scale}"
    assert int(quantizer.zero_point) == 0
    codes = quantizer.quantize(x)
    assert codes.dtype == np.int8, f"codes are stored as int8, got {codes.dtype}"
    np.testing.assert_array_equal(codes, [-127, -50, -3, 0, 3, 13, 127])

def test_unit_symmetric_saturates():
    quantizer = INT8Quantizer().fit(np.array([-1.27, 1.27]))
    codes = quantizer.quantize([10.0, -10.0, 1.5, -1.5, 200.0])
    np.testing.assert_array_equal(codes, [127, -127, 127, -127, 127])
    np.testing.assert_array_equal(quantizer.quantize(Tensor(np.array([0.5, -300.0]))), [50, -127])

def test_unit_symmetric_round_trip_within_half_a_step():
    x = np.random.default_rng(0).standard_normal(5000).astype(np.float32) * 3
    quantizer = INT8Quantizer().fit(x)
    scale = float(quantizer.scale)
    np.testing.assert_allclose(scale, np.abs(x).max() / 127, rtol=1e-6)
    back = quantizer.dequantize(quantizer.quantize(x))
    assert back.dtype == np.float32
    assert np.max(np.abs(back - x)) <= scale / 2 * (1 + 1e-5), "inside the range the error is at most scale / 2"

test_unit_symmetric_scale_and_codes()
test_unit_symmetric_saturates()
test_unit_symmetric_round_trip_within_half_a_step()
### BEGIN HIDDEN TESTS
def test_hidden_symmetric_rounding_and_zero_tensor():
    quantizer = INT8Quantizer().fit(np.array([0.0, 12.7]))       # scale 0.1
    np.testing.assert_array_equal(quantizer.quantize(np.array([0.26, -0.26, 0.34, -0.34, 0.04])), [3, -3, 3, -3, 0])
    zeros = INT8Quantizer().fit(np.zeros(4))
    assert float(zeros.scale) == 1.0, "an all-zero tensor gets scale 1 (never 0: x / 0 is not a code)"
    affine_zeros = INT8Quantizer(symmetric=False).fit(np.zeros(4))
    assert float(affine_zeros.scale) == 1.0 and int(affine_zeros.zero_point) == -128
    np.testing.assert_array_equal(zeros.quantize(np.zeros(4)), np.zeros(4, dtype=np.int8))
    try:
        INT8Quantizer(symmetric=True, dtype="uint8")
    except ValueError:
        pass
    else:
        raise AssertionError("a symmetric uint8 quantizer must raise ValueError")

test_hidden_symmetric_rounding_and_zero_tensor()
### END HIDDEN TESTS

# %% [markdown]
# ### Test: asymmetric codes and the zero point
#
# `[0, 5.1]` over 255 steps gives `scale = 0.02`; the value 0 must be exactly representable, so its
# code is the zero point: −128 in int8, 0 in uint8. `[−1, 3]` gives `scale = 4/255` and zero point
# `−128 + round(63.75) = −64` (int8) or 64 (uint8).

# %% nbgrader={"grade": true, "grade_id": "test-asymmetric", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def test_unit_asymmetric_after_relu():
    x = np.linspace(0.0, 5.1, 52)
    signed = INT8Quantizer(symmetric=False, dtype="int8").fit(x)
    assert abs(float(signed.scale) - 0.02) < 1e-9 and int(signed.zero_point) == -128
    codes = signed.quantize(np.array([0.0, 5.1, 2.55, 100.0, -100.0]))
    assert codes.dtype == np.int8
    np.testing.assert_array_equal(codes, [-128, 127, 0, 127, -128])
    unsigned = INT8Quantizer(symmetric=False, dtype="uint8").fit(x)
    assert int(unsigned.zero_point) == 0
    codes = unsigned.quantize(np.array([0.0, 5.1, 100.0, -100.0]))
    assert codes.dtype == np.uint8
    np.testing.assert_array_equal(codes, [0, 255, 255, 0])

def test_unit_asymmetric_zero_point():
    x = np.array([-1.0, 0.5, 3.0])
    signed = INT8Quantizer(symmetric=False).fit(x)
    np.testing.assert_allclose(float(signed.scale), 4.0 / 255, rtol=1e-9)
    assert int(signed.zero_point) == -64, f"zero_point = -128 - round(-1 / (4/255)) = -64, got {signed.zero_point}"
    assert int(INT8Quantizer(symmetric=False, dtype="uint8").fit(x).zero_point) == 64
    assert signed.dequantize(signed.quantize(np.array([0.0])))[0] == 0.0, "the value 0 must come back exactly"
    inside = np.random.default_rng(1).uniform(-1.0, 3.0, 4000)
    back = signed.dequantize(signed.quantize(inside))
    assert np.max(np.abs(back - inside)) <= float(signed.scale) / 2 + 1e-6

def test_unit_asymmetric_range_contains_zero():
    positive = INT8Quantizer(symmetric=False).fit(np.array([2.0, 4.0]))
    np.testing.assert_allclose(float(positive.scale), 4.0 / 255, rtol=1e-9)
    assert int(positive.zero_point) == -128
    assert positive.dequantize(positive.quantize(np.array([0.0])))[0] == 0.0

test_unit_asymmetric_after_relu()
test_unit_asymmetric_zero_point()
test_unit_asymmetric_range_contains_zero()
### BEGIN HIDDEN TESTS
def test_hidden_asymmetric_negative_range_and_errors():
    negative = INT8Quantizer(symmetric=False).fit(np.array([-5.1, -1.0]))   # high widened to 0
    np.testing.assert_allclose(float(negative.scale), 0.02, rtol=1e-9)
    assert int(negative.zero_point) == 127
    np.testing.assert_array_equal(negative.quantize(np.array([-5.1, 0.0, 9.0])), [-128, 127, 127])
    try:
        INT8Quantizer(symmetric=False).quantize(np.ones(3))
    except RuntimeError as err:
        assert "calibrat" in str(err), f"the error should say to calibrate first: {err}"
    else:
        raise AssertionError("quantize before calibration must raise RuntimeError")
    for bad in (dict(dtype="int4"), dict(observer="mean")):
        try:
            INT8Quantizer(**bad)
        except ValueError:
            continue
        raise AssertionError(f"INT8Quantizer(**{bad}) must raise ValueError")

test_hidden_asymmetric_negative_range_and_errors()
### END HIDDEN TESTS

# %% [markdown]
# ### Test: one scale per channel
#
# Columns whose magnitudes differ 1000-fold: with one scale per tensor, the small columns round to
# almost nothing; with one per column every column uses codes up to ±127.

# %% nbgrader={"grade": true, "grade_id": "test-per-channel", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def test_unit_per_channel_scales():
    magnitudes = np.array([0.01, 0.1, 1.0, 10.0])
    weight = np.random.default_rng(2).standard_normal((50, 4)) * magnitudes
    quantizer = INT8Quantizer(per_channel=True, axis=1).fit(weight)
    scale = np.asarray(quantizer.scale)
    assert scale.shape == (4,), f"one scale per column, got shape {scale.shape}"
    assert scale.dtype == np.float64, f"per-channel scales are a float64 array, got {scale.dtype}"
    zero_point = np.asarray(quantizer.zero_point)
    assert zero_point.dtype == np.int64 and np.all(zero_point == 0), "symmetric: int64 zero points, all 0"
    np.testing.assert_allclose(scale, np.abs(weight).max(axis=0) / 127, rtol=1e-7)
    codes = quantizer.quantize(weight)
    assert codes.dtype == np.int8 and codes.shape == weight.shape
    np.testing.assert_array_equal(np.abs(codes).max(axis=0), [127, 127, 127, 127])
    error = np.abs(quantizer.dequantize(codes) - weight).max(axis=0)
    assert np.all(error <= scale / 2 * (1 + 1e-5) + 1e-12)

def test_unit_per_channel_beats_per_tensor():
    weight = np.random.default_rng(3).standard_normal((50, 4)) * np.array([0.01, 0.1, 1.0, 10.0])
    per_tensor = INT8Quantizer(per_channel=False).fit(weight)
    per_column = INT8Quantizer(per_channel=True, axis=1).fit(weight)
    tensor_error = np.abs(per_tensor.dequantize(per_tensor.quantize(weight)) - weight).max(axis=0)
    column_error = np.abs(per_column.dequantize(per_column.quantize(weight)) - weight).max(axis=0)
    assert column_error[0] < tensor_error[0] / 100, "the smallest column gains about 1000x resolution"

def test_unit_per_channel_conv_axis():
    weight = np.random.default_rng(4).standard_normal((3, 2, 3, 3)) * np.array([1.0, 5.0, 0.2]).reshape(3, 1, 1, 1)
    quantizer = INT8Quantizer(per_channel=True, axis=0).fit(weight)
    np.testing.assert_allclose(np.asarray(quantizer.scale), np.abs(weight).reshape(3, -1).max(axis=1) / 127, rtol=1e-7)
    back = quantizer.dequantize(quantizer.quantize(weight))
    assert back.shape == weight.shape
    bound = (np.asarray(quantizer.scale) / 2).reshape(3, 1, 1, 1)
    assert np.all(np.abs(back - weight) <= bound * (1 + 1e-5))

test_unit_per_channel_scales()
test_unit_per_channel_beats_per_tensor()
test_unit_per_channel_conv_axis()
### BEGIN HIDDEN TESTS
def test_hidden_per_channel_asymmetric():
    x = np.array([[0.0, -2.0], [5.1, 2.0]])          # column 0: [0, 5.1]; column 1: [-2, 2]
    quantizer = INT8Quantizer(symmetric=False, per_channel=True, axis=1).fit(x)
    np.testing.assert_allclose(np.asarray(quantizer.scale), [0.02, 4.0 / 255], rtol=1e-9)
    np.testing.assert_array_equal(np.asarray(quantizer.zero_point), [-128, 0])
    np.testing.assert_array_equal(quantizer.quantize(np.array([[9.0, -9.0]])), [[127, -128]])

test_hidden_per_channel_asymmetric()
### END HIDDEN TESTS

# %% [markdown]
# ## Part 3: `requantize`, from int32 sums back to 8-bit codes
#
# An int8 GEMM produces int32 sums at scale `s_acc = s_x · s_w`. To feed the next layer without
# going through float, an integer-only pipeline maps them straight to that layer's codes:
#
# ```
#   value = s_acc · acc = s_out · (q_out − z_out)   ⇒   q_out = clip(round(acc · s_acc / s_out) + z_out)
# ```
#
# `requantize(acc, multiplier, zero_point=0, dtype="int8")` takes `multiplier = s_acc / s_out` (a
# float, or one per output channel along the last axis) and saturates like `quantize`. Compute the
# product in float64: an int32 sum carries up to 31 significant bits and float32 only 24, enough
# to move a sum across a rounding boundary. Real accelerators store the multiplier as an integer
# and a shift; a float64 is exact enough here.

# %% nbgrader={"grade": false, "grade_id": "requantize", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def requantize(acc: np.ndarray, multiplier, zero_point=0, dtype: str = "int8") -> np.ndarray:
    """int32 sums to 8-bit codes: clip(round(acc * multiplier) + zero_point) in dtype's code range."""
    ### BEGIN SOLUTION
    if dtype not in CODE_RANGES:
        raise ValueError(f"dtype must be one of {sorted(CODE_RANGES)}, got {dtype!r}")
    q_min, q_max = CODE_RANGES[dtype]
    codes = np.rint(np.asarray(acc) * np.float64(multiplier)) + zero_point    # int32 x float64 -> float64
    return np.clip(codes, q_min, q_max).astype(dtype)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test-requantize", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def test_unit_requantize():
    acc = np.array([-100000, -300, 0, 299, 301, 100000], dtype=np.int32)
    codes = requantize(acc, 0.01, zero_point=-5)
    assert codes.dtype == np.int8
    np.testing.assert_array_equal(codes, [-128, -8, -5, -2, -2, 127])
    unsigned = requantize(acc, 0.01, zero_point=10, dtype="uint8")
    assert unsigned.dtype == np.uint8
    np.testing.assert_array_equal(unsigned, [0, 7, 10, 13, 13, 255])
    large = np.array([2**25 + 3], dtype=np.int32)                # 26 significant bits: more than float32 keeps
    np.testing.assert_array_equal(requantize(large, 100.4999980 / (2**25 + 3)), [100])
    try:
        requantize(acc, 0.01, dtype="int4")
    except ValueError:
        pass
    else:
        raise AssertionError("requantize to an unknown dtype must raise ValueError")

def test_unit_requantize_per_channel():
    acc = np.array([[1000, 1000, 1000], [-250, 250, 70]], dtype=np.int32)
    codes = requantize(acc, np.array([0.1, 0.01, 0.001]))
    np.testing.assert_array_equal(codes, [[100, 10, 1], [-25, 2, 0]])

test_unit_requantize()
test_unit_requantize_per_channel()

# %% [markdown]
# ## Part 4: `QuantizedLinear`, int8 storage and int8 arithmetic
#
# Write `x ≈ s_x (q_x − z_x)` (asymmetric input, per tensor) and `W[:, j] ≈ s_j · Q[:, j]`
# (symmetric weight, one scale per output column `j`). Then
#
# ```
#   y_j = Σ_k x_k W_kj + b_j ≈ s_x s_j · ( Σ_k q_x,k Q_kj  −  z_x Σ_k Q_kj  +  round(b_j / (s_x s_j)) )
#                                           └ int8 GEMM ┘    └ once, at init ┘   └ int32 bias ┘
# ```
#
# Everything inside the parentheses is an **integer**: the GEMM's int32 sums (module 13's
# `int8_matmul`), the zero-point correction `z_x · colsum(Q)` (it depends only on the weights, so
# it is computed once), and the bias quantized at the accumulator's scale `s_x s_j`. The bias
# needs int32, not int8: `b / (s_x s_j)` is routinely in the thousands (the sum of `in_features`
# products lives at that scale), and an int8 bias would clip it. One float multiply per output
# (`s_x s_j`) turns the sums back into float32 (dequantize).
#
# `QuantizedLinear(linear, input_quantizer, per_channel=True)` takes a float `Linear` and a
# *calibrated* asymmetric per-tensor int8 `input_quantizer` for its inputs, and stores:
#
# | attribute | dtype, shape | |
# |---|---|---|
# | `weight_q` | int8 `(in, out)` | symmetric codes, per column (`per_channel`) or one scale |
# | `weight_scale` | float32 `(out,)` or `(1,)` | `max|W[:, j]| / 127`, or `max|W| / 127` |
# | `bias_q` | int32 `(out,)` | `round(b / (s_x · s_w))`, zeros without a bias |
# | `input_scale`, `input_zero_point` | float, int | from `input_quantizer` |
# | `accumulator_offset` | int32 `(out,)` | `bias_q − z_x · colsum(weight_q)`: added to every GEMM row |
# | `output_scale` | float64 `(out,)` or `(1,)` | `s_x · s_w`: multiplies the int32 sums (dequantize) |
#
# `accumulate(codes)` maps int8 input codes `(m, in)` to the int32 sums plus `accumulator_offset`;
# `forward(x)` quantizes x (any leading dimensions), accumulates, and dequantizes to a float32
# Tensor. `parameters()` returns what is stored (int8 weights, int32 bias, float32 scales) as
# Tensors that require no gradient: quantized layers are for inference. `_set_weights` is written
# once for both layers: it receives the weight already laid out as GEMM columns `(K, out)`.

# %% nbgrader={"grade": false, "grade_id": "quantized-linear", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
INT32_MIN, INT32_MAX = np.iinfo(np.int32).min, np.iinfo(np.int32).max


def _check_input_quantizer(quantizer, layer_name: str) -> None:
    """The activation quantizer a quantized layer can use: calibrated, asymmetric-capable int8, per tensor."""
    if not isinstance(quantizer, INT8Quantizer):
        raise TypeError(f"{layer_name} needs an INT8Quantizer for its inputs, got {type(quantizer).__name__}")
    if not quantizer.calibrated:
        raise RuntimeError(f"{layer_name}: the input quantizer is not calibrated; run calibrate(model, batches) "
                           "or quantizer.fit(representative_inputs) first")
    if quantizer.per_channel or quantizer.dtype != "int8":
        raise ValueError(f"{layer_name} multiplies int8 codes with one scale per input tensor; got {quantizer!r} "
                         "(use INT8Quantizer(symmetric=False, dtype='int8'))")


class QuantizedLinear:
    """Inference-only Linear: int8 weights, int32 bias at scale s_x * s_w, int8 GEMM with int32 sums."""

    def __init__(self, linear: Linear, input_quantizer: INT8Quantizer, per_channel: bool = True):
        _check_input_quantizer(input_quantizer, "QuantizedLinear")
        self.in_features, self.out_features = linear.in_features, linear.out_features
        bias = None if linear.bias is None else linear.bias.data
        self._set_weights(linear.weight.data, bias, input_quantizer, per_channel)

    def _set_weights(self, weight_columns: np.ndarray, bias, input_quantizer: INT8Quantizer, per_channel: bool) -> None:
        """Quantize weight_columns (K, out) symmetrically and the bias to int32; fold in the zero point."""
        self.input_quantizer = input_quantizer
        self.per_channel = per_channel
        ### BEGIN SOLUTION
        self.input_scale = float(input_quantizer.scale)
        self.input_zero_point = int(input_quantizer.zero_point)
        weight_quantizer = INT8Quantizer(symmetric=True, per_channel=per_channel, axis=1).fit(weight_columns)
        self.weight_q = weight_quantizer.quantize(weight_columns)
        self.weight_scale = np.atleast_1d(np.asarray(weight_quantizer.scale, dtype=np.float32))
        accumulator_scale = self.input_scale * self.weight_scale.astype(np.float64)   # float64: bias codes reach 1e7
        if bias is None:
            self.bias_q = np.zeros(weight_columns.shape[1], dtype=np.int32)
        else:
            bias_codes = np.rint(bias / accumulator_scale)            # float64: b / (s_x s_w)
            self.bias_q = np.clip(bias_codes, INT32_MIN, INT32_MAX).astype(np.int32)
        column_sums = self.weight_q.sum(axis=0)                         # NumPy sums int8 in int64
        offset = self.bias_q - self.input_zero_point * column_sums
        self.accumulator_offset = np.clip(offset, INT32_MIN, INT32_MAX).astype(np.int32)
        self.output_scale = accumulator_scale                       # dequantize: int32 sums x s_x * s_w
        ### END SOLUTION

    def accumulate(self, codes: np.ndarray) -> np.ndarray:
        """int8 input codes (m, in) -> int32 (m, out): int8 GEMM sums + accumulator_offset."""
        ### BEGIN SOLUTION
        sums = int8_matmul(codes, self.weight_q)
        sums += self.accumulator_offset
        return sums
        ### END SOLUTION

    def forward(self, x) -> Tensor:
        ### BEGIN SOLUTION
        values = np.asarray(x)
        if values.ndim == 0 or values.shape[-1] != self.in_features:
            raise ValueError(f"{self!r} expects inputs whose last dimension is {self.in_features}, got {values.shape}")
        codes = self.input_quantizer.quantize(values.reshape(-1, self.in_features))
        sums = self.accumulate(codes)
        out = sums * self.output_scale                               # a float32 Tensor below
        return Tensor(out.reshape(*values.shape[:-1], self.out_features))
        ### END SOLUTION

    def __call__(self, x) -> Tensor:
        return self.forward(x)

    def dequantized_weight(self) -> np.ndarray:
        """The float32 weight the int8 codes stand for, in the float layer's layout."""
        return (self.weight_q * self.weight_scale).astype(np.float32)

    def parameters(self) -> list:
        return [Tensor(self.weight_q), Tensor(self.bias_q), Tensor(self.weight_scale)]

    def __repr__(self) -> str:
        return (f"QuantizedLinear(in_features={self.in_features}, out_features={self.out_features}, "
                f"per_channel={self.per_channel})")


# %% [markdown]
# ### Test: `QuantizedLinear` against the float layer, within a bound from the scales
#
# Two oracles. First the exact integer computation, written out with NumPy: the layer must give
# those numbers to float32 rounding. Second the float layer itself, within a bound derived from
# the scales: with `x̂`, `ŵ` the dequantized values, `|x̂ − x| ≤ s_x/2` and `|ŵ − w| ≤ s_j/2`, so
#
# ```
#   |ŷ_j − y_j| ≤ Σ_k ( |x̂_k| · s_j/2 + |w_kj| · s_x/2 ) + s_x s_j / 2        (the last term: the bias's rounding)
# ```
#
# The bias is large on purpose: at the accumulator's scale it needs far more than 8 bits.

# %% nbgrader={"grade": true, "grade_id": "test-quantized-linear", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
def linear_case(per_channel, seed=0):
    gen = np.random.default_rng(seed)
    layer = Linear(20, 6, seed=seed)
    layer.weight = Tensor(layer.weight.data * np.array([0.001, 0.002, 1.0, 3.0, 0.5, 1.5], dtype=np.float32))
    layer.bias = Tensor(gen.standard_normal(6).astype(np.float32) * 2)
    x = (gen.standard_normal((32, 20)) * 2 + 0.7).astype(np.float32)
    weight, bias = layer.weight.data.astype(np.float64), layer.bias.data.astype(np.float64)
    quantized = QuantizedLinear(layer, INT8Quantizer(symmetric=False).fit(x), per_channel=per_channel)
    return quantized, x, weight, bias

def test_unit_quantized_linear_storage():
    quantized, x, weight, bias = linear_case(per_channel=True)
    assert quantized.weight_q.dtype == np.int8 and quantized.weight_q.shape == (20, 6)
    assert quantized.weight_q.nbytes * 4 == weight.astype(np.float32).nbytes, "int8 codes: 4x fewer bytes"
    assert quantized.weight_scale.dtype == np.float32, f"scales are stored as float32, got {quantized.weight_scale.dtype}"
    weight_scale = np.asarray(quantized.weight_scale, dtype=np.float64)
    np.testing.assert_allclose(weight_scale, np.abs(weight).max(axis=0) / 127, rtol=1e-6)
    s_x = np.float64(quantized.input_scale)
    np.testing.assert_allclose(s_x, (x.max() - min(x.min(), 0)) / 255, rtol=1e-6)
    assert quantized.bias_q.dtype == np.int32, f"the bias is stored in int32, got {quantized.bias_q.dtype}"
    expected_bias = np.rint(bias / (s_x * weight_scale))
    assert np.abs(expected_bias).max() > 127, "this bias needs more than 8 bits at scale s_x * s_w"
    np.testing.assert_array_equal(quantized.bias_q, expected_bias)
    offset = np.asarray(quantized.accumulator_offset)
    assert offset.dtype == np.int32, f"the accumulator offset is int32, got {offset.dtype}"
    column_sums = np.asarray(quantized.weight_q, dtype=np.int64).sum(axis=0)
    np.testing.assert_array_equal(offset, expected_bias - int(quantized.input_zero_point) * column_sums)

def test_unit_quantized_linear_integer_oracle():
    quantized, x, weight, bias = linear_case(per_channel=True)
    s_x, z_x = np.float64(quantized.input_scale), int(quantized.input_zero_point)
    weight_scale = np.asarray(quantized.weight_scale, dtype=np.float64)
    codes_x = np.clip(np.rint(x.astype(np.float64) / s_x) + z_x, -128, 127)
    codes_w = np.asarray(quantized.weight_q, dtype=np.float64)
    sums = (codes_x - z_x) @ codes_w + np.asarray(quantized.bias_q, dtype=np.float64)
    y = quantized(Tensor(x))
    assert isinstance(y, Tensor) and y.shape == (32, 6) and y.dtype == np.float32
    np.testing.assert_allclose(y.data, sums * s_x * weight_scale, rtol=2e-6, atol=1e-6)

def test_unit_quantized_linear_error_bound():
    for per_channel in (True, False):
        quantized, x, weight, bias = linear_case(per_channel=per_channel, seed=1)
        s_x, z_x = np.float64(quantized.input_scale), int(quantized.input_zero_point)
        s_w = np.asarray(quantized.weight_scale, dtype=np.float64)
        if not per_channel:
            assert s_w.size == 1, "per_channel=False keeps one weight scale"
            np.testing.assert_allclose(s_w, np.abs(weight).max() / 127, rtol=1e-6)
        x_hat = s_x * (np.clip(np.rint(x / s_x) + z_x, -128, 127) - z_x)
        bound = np.abs(x_hat) @ np.ones_like(weight) * (s_w / 2) + s_x / 2 * np.abs(weight).sum(axis=0) + s_x * s_w / 2
        error = np.abs(quantized(x).data - (x.astype(np.float64) @ weight + bias))
        assert np.all(error <= bound * 1.001 + 1e-5), f"per_channel={per_channel}: error {error.max()} above the bound"

test_unit_quantized_linear_storage()
test_unit_quantized_linear_integer_oracle()
test_unit_quantized_linear_error_bound()
### BEGIN HIDDEN TESTS
def test_hidden_quantized_linear_no_bias_3d_and_errors():
    layer = Linear(5, 3, bias=False, seed=7)
    x = np.random.default_rng(8).uniform(-1.0, 4.0, (2, 4, 5)).astype(np.float32)
    quantized = QuantizedLinear(layer, INT8Quantizer(symmetric=False).fit(x))
    assert quantized.bias_q.dtype == np.int32 and quantized.bias_q.shape == (3,)
    np.testing.assert_array_equal(quantized.bias_q, np.zeros(3, dtype=np.int32))
    y = quantized(x)
    assert y.shape == (2, 4, 3)
    np.testing.assert_allclose(y.data, x @ layer.weight.data, atol=0.08)
    one_sample = quantized(x[0, 0])
    assert one_sample.shape == (3,), f"a single sample (5,) gives (3,), got {one_sample.shape}"
    np.testing.assert_allclose(one_sample.data, y.data[0, 0], rtol=1e-6, atol=1e-6)
    assert sum(p.data.nbytes for p in quantized.parameters()) == 5 * 3 + 3 * 4 + 3 * 4
    try:
        QuantizedLinear(layer, INT8Quantizer(symmetric=False))
    except RuntimeError:
        pass
    else:
        raise AssertionError("an uncalibrated input quantizer must raise RuntimeError")
    try:
        quantized(np.ones((2, 4)))
    except ValueError as err:
        assert "(2, 4)" in str(err), f"the error names the input shape: {err}"
    else:
        raise AssertionError("an input with 4 features must raise ValueError for in_features=5")

test_hidden_quantized_linear_no_bias_3d_and_errors()
### END HIDDEN TESTS

# %% [markdown]
# ## Part 5: `QuantizedConv2d`, and why padding is not code 0
#
# A convolution is im2col plus one GEMM (module 09), so the int8 version reuses everything above:
# the weight `(O, C, kh, kw)` is stored as GEMM columns `(C·kh·kw, O)` with one scale per filter,
# the input is quantized once (not the 9× larger im2col matrix), the codes go through `im2col`,
# and `accumulate` does the rest. One trap: zero padding means the **value** 0, and the code of
# the value 0 is the zero point. After a ReLU the zero point is −128, so padding the codes with 0
# would add a border of value `128 · s_x` to every image. Pad the codes with `input_zero_point`
# (with `np.pad(..., constant_values=...)`), then call `im2col` with `padding=0`.
#
# `QuantizedConv2d(conv, input_quantizer, per_channel=True)` keeps `in_channels`,
# `out_channels`, `kernel_size`, `stride`, `padding`; `forward(x)` takes `(N, C, H, W)` floats and
# returns a float32 Tensor `(N, O, out_h, out_w)`.

# %% nbgrader={"grade": false, "grade_id": "quantized-conv2d", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
class QuantizedConv2d(QuantizedLinear):
    """Inference-only Conv2d: int8 filters as GEMM columns (C*kh*kw, O), padding with the zero point."""

    def __init__(self, conv: Conv2d, input_quantizer: INT8Quantizer, per_channel: bool = True):
        _check_input_quantizer(input_quantizer, "QuantizedConv2d")
        self.in_channels, self.out_channels = conv.in_channels, conv.out_channels
        self.kernel_size, self.stride, self.padding = conv.kernel_size, conv.stride, conv.padding
        self.in_features = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
        self.out_features = conv.out_channels
        columns = conv.weight.data.reshape(conv.out_channels, -1).T          # (C*kh*kw, O)
        bias = None if conv.bias is None else conv.bias.data
        self._set_weights(np.ascontiguousarray(columns), bias, input_quantizer, per_channel)

    def forward(self, x) -> Tensor:
        ### BEGIN SOLUTION
        images = np.asarray(x)
        if images.ndim != 4 or images.shape[1] != self.in_channels:
            raise ValueError(f"{self!r} expects a 4-D input (N, {self.in_channels}, H, W), got shape {images.shape}")
        out_h, out_w = window_output_size(images.shape, self.kernel_size, self.stride, self.padding)
        codes = self.input_quantizer.quantize(images)
        pad = self.padding
        padded = np.pad(codes, ((0, 0), (0, 0), (pad, pad), (pad, pad)), constant_values=self.input_zero_point)
        columns = im2col(padded, *self.kernel_size, stride=self.stride, padding=0)
        sums = self.accumulate(columns)
        out = sums * self.output_scale
        batch = images.shape[0]
        return Tensor(np.ascontiguousarray(out.reshape(batch, out_h, out_w, self.out_channels).transpose(0, 3, 1, 2)))
        ### END SOLUTION

    def dequantized_weight(self) -> np.ndarray:
        columns = super().dequantized_weight()
        return np.ascontiguousarray(columns.T).reshape(self.out_channels, self.in_channels, *self.kernel_size)

    def __repr__(self) -> str:
        return (f"QuantizedConv2d({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, per_channel={self.per_channel})")


# %% [markdown]
# ### Test: `QuantizedConv2d` against the loop convolution
#
# Non-negative inputs (as after a ReLU) put the zero point at −128, so a border padded with code 0
# lands far outside the bound. The bound is the one of `QuantizedLinear`, summed over each window:
# computed with module 09's `conv2d_naive` applied to `|x̂|` and to a mask of the real pixels.

# %% nbgrader={"grade": true, "grade_id": "test-quantized-conv2d", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def test_unit_quantized_conv2d():
    gen = np.random.default_rng(5)
    conv = Conv2d(3, 4, 3, padding=1, seed=5)
    conv.weight = Tensor(conv.weight.data * np.array([0.1, 1.0, 2.0, 0.5], dtype=np.float32).reshape(4, 1, 1, 1))
    conv.bias = Tensor(gen.standard_normal(4).astype(np.float32))
    x = np.abs(gen.standard_normal((2, 3, 5, 5))).astype(np.float32)
    weight, bias = conv.weight.data.astype(np.float64), conv.bias.data.astype(np.float64)
    quantized = QuantizedConv2d(conv, INT8Quantizer(symmetric=False).fit(x))
    assert int(quantized.input_zero_point) == -128
    assert np.asarray(quantized.weight_q).dtype == np.int8 and np.asarray(quantized.weight_q).size == weight.size
    s_w = np.asarray(quantized.weight_scale, dtype=np.float64)
    np.testing.assert_allclose(s_w, np.abs(weight).reshape(4, -1).max(axis=1) / 127, rtol=1e-6)
    s_x = np.float64(quantized.input_scale)
    y = quantized(Tensor(x))
    assert isinstance(y, Tensor) and y.shape == (2, 4, 5, 5) and y.dtype == np.float32
    reference = conv2d_naive(x.astype(np.float64), weight, padding=1) + bias.reshape(1, 4, 1, 1)
    x_hat = s_x * (np.clip(np.rint(x / s_x) - 128, -128, 127) + 128)
    per_filter = s_w.reshape(1, 4, 1, 1)
    bound = (conv2d_naive(np.abs(x_hat), np.ones_like(weight), padding=1) * per_filter / 2
             + conv2d_naive(np.ones_like(x_hat), np.abs(weight), padding=1) * s_x / 2 + s_x * per_filter / 2)
    error = np.abs(y.data - reference)
    assert np.all(error <= bound * 1.001 + 1e-5), f"error {error.max()} above the bound (is the padding the zero point?)"

def test_unit_quantized_conv2d_stride_no_padding():
    conv = Conv2d(2, 3, (2, 3), stride=2, seed=6)
    x = np.random.default_rng(6).uniform(-2.0, 1.0, (1, 2, 7, 8)).astype(np.float32)
    quantized = QuantizedConv2d(conv, INT8Quantizer(symmetric=False).fit(x), per_channel=False)
    assert np.asarray(quantized.weight_scale).size == 1
    reference = conv2d_naive(x, conv.weight.data, stride=2)
    y = quantized(x)
    assert y.shape == reference.shape
    np.testing.assert_allclose(y.data, reference, atol=0.05 * np.abs(reference).max())

test_unit_quantized_conv2d()
test_unit_quantized_conv2d_stride_no_padding()
### BEGIN HIDDEN TESTS
def test_hidden_quantized_conv2d_dequantized_weight_and_errors():
    conv = Conv2d(2, 3, 3, padding=1, seed=9)
    x = np.random.default_rng(9).uniform(0.0, 3.0, (1, 2, 4, 4)).astype(np.float32)
    quantized = QuantizedConv2d(conv, INT8Quantizer(symmetric=False).fit(x))
    back = quantized.dequantized_weight()
    assert back.shape == (3, 2, 3, 3)
    bound = (np.asarray(quantized.weight_scale) / 2).reshape(3, 1, 1, 1)
    assert np.all(np.abs(back - conv.weight.data) <= bound * (1 + 1e-5))
    try:
        quantized(np.ones((1, 3, 4, 4), dtype=np.float32))
    except ValueError as err:
        assert "(1, 3, 4, 4)" in str(err), f"the error names the input shape: {err}"
    else:
        raise AssertionError("3 channels into a 2-channel QuantizedConv2d must raise ValueError")

test_hidden_quantized_conv2d_dequantized_weight_and_errors()
### END HIDDEN TESTS

# %% [markdown]
# ## Part 6: calibrating and quantizing a whole model
#
# `calibrate(model, batches, observer="minmax", percentile=99.99)` runs the *float* model over a few
# representative batches (training data, never the test set) layer by layer, and feeds the input
# of every `Linear` and `Conv2d` to an asymmetric int8 `INT8Quantizer`. It returns
# `{position in model.layers: calibrated quantizer}`. A batch may be an array, a Tensor, or a
# DataLoader's `(x, y)` pair (the labels are ignored). No gradients are needed (module 06's
# `no_grad`). An empty calibration set is a `ValueError`: there is no range to take.
#
# `quantize_model(model, calibration_batches, per_channel=True, observer="minmax")` calibrates,
# replaces each `Linear` by a `QuantizedLinear` and each `Conv2d` by a `QuantizedConv2d`, **in
# place** in `model.layers`, and returns the same model. ReLU, pooling and Flatten stay float:
# each quantized layer takes floats and returns floats. A model without any `Linear` or `Conv2d`
# is a `ValueError` (nothing to quantize).
#
# `model_nbytes(model)`: the bytes of `model.parameters()` as stored (`.data.nbytes`): 4 per float32
# weight before, 1 per int8 code, 4 per int32 bias and per scale after.

# %% nbgrader={"grade": false, "grade_id": "quantize-model", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
QUANTIZABLE = (Linear, Conv2d)


def _model_layers(model) -> list:
    if not hasattr(model, "layers"):
        raise TypeError(f"expected a Sequential-like model with a .layers list, got {type(model).__name__}")
    return model.layers


def _batch_inputs(batch):
    """A calibration batch: an array, a Tensor, or an (inputs, labels) pair from a DataLoader."""
    return batch[0] if isinstance(batch, (tuple, list)) else batch


def calibrate(model, batches, observer: str = "minmax", percentile: float = 99.99) -> dict:
    """{index in model.layers: INT8Quantizer of that Linear/Conv2d's inputs}, from the float model on batches."""
    ### BEGIN SOLUTION
    layers = _model_layers(model)
    quantizers = {index: INT8Quantizer(symmetric=False, observer=observer, percentile=percentile)
                  for index, layer in enumerate(layers) if isinstance(layer, QUANTIZABLE)}
    if not quantizers:
        raise ValueError(f"nothing to quantize: the model has no Linear or Conv2d layer ({model!r})")
    saw_a_batch = False
    with no_grad():
        for batch in batches:
            hidden = _batch_inputs(batch)        # every layer accepts arrays and Tensors
            for index, layer in enumerate(layers):
                if index in quantizers:
                    quantizers[index].observe(hidden)
                hidden = layer(hidden)
            saw_a_batch = True
    if not saw_a_batch:
        raise ValueError("the calibration set is empty: pass a few batches of representative inputs "
                         "(e.g. a few hundred training images), never the test set")
    for quantizer in quantizers.values():
        quantizer.compute_qparams()
    return quantizers
    ### END SOLUTION


def quantize_model(model, calibration_batches, per_channel: bool = True, observer: str = "minmax"):
    """Replace every Linear/Conv2d of model.layers by its int8 version, in place; returns model."""
    ### BEGIN SOLUTION
    quantizers = calibrate(model, calibration_batches, observer=observer)
    layers = _model_layers(model)
    for index, input_quantizer in quantizers.items():
        layer = layers[index]
        quantized_type = QuantizedConv2d if isinstance(layer, Conv2d) else QuantizedLinear
        layers[index] = quantized_type(layer, input_quantizer, per_channel=per_channel)
    return model
    ### END SOLUTION


def model_nbytes(model) -> int:
    """Bytes of model.parameters() as stored (float32 weights, or int8 codes + int32 bias + scales)."""
    ### BEGIN SOLUTION
    return int(sum(p.data.nbytes for p in model.parameters()))
    ### END SOLUTION


# %% [markdown]
# ### Test: calibration ranges, layers swapped in place, bytes measured

# %% nbgrader={"grade": true, "grade_id": "test-quantize-model", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
def small_mlp_and_batches():
    gen = np.random.default_rng(10)
    model = Sequential(Linear(8, 16, seed=11), ReLU(), Linear(16, 4, seed=12))
    batches = [gen.standard_normal((10, 8)).astype(np.float32) * (index + 1) for index in range(3)]
    return model, batches

def test_unit_calibrate_ranges():
    model, batches = small_mlp_and_batches()
    first, second = model.layers[0].weight.data.astype(np.float64), model.layers[0].bias.data.astype(np.float64)
    quantizers = calibrate(model, batches)
    assert sorted(quantizers) == [0, 2], f"one quantizer per Linear, keyed by position, got {sorted(quantizers)}"
    everything = np.concatenate(batches).astype(np.float64)
    low, high = min(everything.min(), 0.0), max(everything.max(), 0.0)
    np.testing.assert_allclose(float(quantizers[0].scale), (high - low) / 255, rtol=1e-6)
    hidden = np.maximum(everything @ first + second, 0.0)
    np.testing.assert_allclose(float(quantizers[2].scale), hidden.max() / 255, rtol=1e-5)
    assert int(quantizers[2].zero_point) == -128, "the input of the second Linear comes after a ReLU"
    labelled = [(batch, np.zeros(len(batch), dtype=np.int64)) for batch in batches]
    np.testing.assert_allclose(float(calibrate(model, labelled)[0].scale), (high - low) / 255, rtol=1e-6)

def test_unit_quantize_model_in_place_and_bytes():
    model, batches = small_mlp_and_batches()
    x = batches[1]
    expected = model(x).data.astype(np.float64)
    assert model_nbytes(model) == (8 * 16 + 16 + 16 * 4 + 4) * 4
    returned = quantize_model(model, batches, per_channel=True)
    assert returned is model, "quantize_model returns the model it changed in place"
    assert len(model.layers) == 3
    assert model.layers[0].weight_q.dtype == np.int8 and model.layers[2].weight_q.dtype == np.int8
    assert model_nbytes(model) == (8 * 16 + 16 * 4) * 1 + (16 + 4) * 4 + (16 + 4) * 4
    got = model(x).data
    assert got.shape == expected.shape
    assert np.max(np.abs(got - expected)) < 0.03 * np.abs(expected).max()
    per_tensor, _ = small_mlp_and_batches()
    quantize_model(per_tensor, batches, per_channel=False)
    assert model_nbytes(per_tensor) == (8 * 16 + 16 * 4) + (16 + 4) * 4 + 2 * 4

def test_unit_quantize_model_bad_input():
    model, batches = small_mlp_and_batches()
    for call in (lambda: calibrate(model, []), lambda: quantize_model(model, ())):
        try:
            call()
        except ValueError as err:
            assert "empty" in str(err), f"the error should say the calibration set is empty: {err}"
        else:
            raise AssertionError("an empty calibration set must raise ValueError")
    try:
        quantize_model(Sequential(ReLU()), batches)
    except ValueError:
        pass
    else:
        raise AssertionError("a model with no Linear or Conv2d must raise ValueError")

test_unit_calibrate_ranges()
test_unit_quantize_model_in_place_and_bytes()
test_unit_quantize_model_bad_input()
### BEGIN HIDDEN TESTS
def test_hidden_quantize_cnn():
    gen = np.random.default_rng(13)
    model = Sequential(Conv2d(1, 4, 3, padding=1, seed=14), ReLU(), MaxPool2d(2), Flatten(), Linear(4 * 3 * 3, 3, seed=15))
    batches = [gen.standard_normal((6, 1, 6, 6)).astype(np.float32) for _ in range(2)]
    x = batches[0]
    expected = model(x).data
    float_bytes = model_nbytes(model)
    quantize_model(model, batches)
    assert model.layers[0].weight_q.dtype == np.int8 and model.layers[4].weight_q.dtype == np.int8
    assert len(model.layers) == 5
    assert model_nbytes(model) == (36 + 108) + (4 + 3) * 4 * 2
    assert float_bytes == (36 + 4 + 108 + 3) * 4
    np.testing.assert_allclose(model(x).data, expected, atol=0.03 * np.abs(expected).max())

def test_hidden_calibrate_percentile():
    values = np.append(np.linspace(-1.0, 1.0, 999), 500.0).reshape(-1, 1)
    model = Sequential(Linear(1, 2, seed=1))
    clipped = calibrate(model, [values[:500], values[500:]], observer="percentile", percentile=99.9)
    widest = calibrate(model, [values[:500], values[500:]])
    low, high = np.percentile(values, 0.1), np.percentile(values, 99.9)
    np.testing.assert_allclose(float(clipped[0].scale), (high - low) / 255, rtol=1e-5)
    np.testing.assert_allclose(float(widest[0].scale), 501.0 / 255, rtol=1e-6)
    swapped = quantize_model(Sequential(Linear(1, 2, seed=1)), [values[:500], values[500:]], observer="percentile")
    low, high = np.percentile(values, 0.01), np.percentile(values, 99.99)
    np.testing.assert_allclose(float(swapped.layers[0].input_scale), (high - low) / 255, rtol=1e-5)

test_hidden_quantize_cnn()
test_hidden_calibrate_percentile()
### END HIDDEN TESTS

# %% [markdown]
# ## Analysis: the digits models, float against int8, measured
#
# Module 08's MLP (64-128-128-10) and module 09's CNN, trained here from scratch with the same
# recipes and seeds (shorter runs while grading). Calibration uses 256 **training** images; the
# test images are used only to measure.

# %%
import time

from threadpoolctl import threadpool_info, threadpool_limits

from tinytorch.core.losses import CrossEntropyLoss
from tinytorch.core.optimizers import AdamW
from tinytorch.core.training import Trainer, cosine_schedule
from tinytorch.data.loader import DataLoader, Standardizer, TensorDataset, load_digits_dataset, train_test_split

threadpool_limits(limits=1, user_api="blas")     # these matrices are too small to share among threads
blas = [f"{p['internal_api']} {p['version']} (kernel {p['architecture']}, {p['num_threads']} thread)"
        for p in threadpool_info() if p.get("user_api") == "blas"]
print("BLAS:", "; ".join(blas) or "not found")


def digits_split():
    images, labels = load_digits_dataset()
    x_train, x_test, y_train, y_test = train_test_split(images, labels, test_fraction=0.2, seed=0, stratify=labels)
    scaler = Standardizer().fit(x_train)
    return scaler.apply(x_train), y_train, scaler.apply(x_test), y_test


def train(model, x_train, y_train, epochs: int, lr: float):
    loader = DataLoader(TensorDataset(x_train, y_train), batch_size=32, shuffle=True, seed=0)
    total = epochs * len(loader)
    trainer = Trainer(model, AdamW(model.parameters(), lr=lr, weight_decay=1e-3), CrossEntropyLoss(), loader,
                      schedule=lambda step: cosine_schedule(step, total, lr, min_lr=lr / 100, warmup_steps=len(loader)),
                      max_grad_norm=5.0)
    trainer.fit(epochs)
    return model


def accuracy(model, x, y) -> float:
    with no_grad():
        return float(np.mean(np.argmax(model(Tensor(x)).data, axis=1) == y))


x_train, y_train, x_test, y_test = digits_split()
images_train, images_test = x_train.reshape(-1, 1, 8, 8), x_test.reshape(-1, 1, 8, 8)


def digits_mlp():
    return Sequential(Linear(64, 128, seed=0), ReLU(), Linear(128, 128, seed=1), ReLU(), Linear(128, 10, seed=2))


def digits_cnn():
    return Sequential(Conv2d(1, 16, 3, padding=1, seed=0), ReLU(), MaxPool2d(2),
                      Conv2d(16, 32, 3, padding=1, seed=1), ReLU(), MaxPool2d(2), Flatten(), Linear(32 * 2 * 2, 10, seed=2))


start = time.perf_counter()
mlp = train(digits_mlp(), x_train, y_train, epochs=4 if QUICK else 20, lr=3e-3)
cnn = train(digits_cnn(), images_train, y_train, epochs=2 if QUICK else 15, lr=1e-2)
print(f"trained both models in {time.perf_counter() - start:.1f} s")
models = {"MLP": (mlp, x_train, x_test), "CNN": (cnn, images_train, images_test)}

# %% [markdown]
# ### Accuracy and bytes
#
# Each float model is copied (its layers are fresh objects sharing nothing), and the copy is
# quantized in place, per channel and per tensor.

# %%
import copy


def calibration_batches(x, count: int = 256, batch: int = 64):
    return [x[start:start + batch] for start in range(0, count, batch)]


results = {}
print(f"{'model':5} {'version':22} {'test acc':>9} {'bytes':>9} {'vs float':>9}")
for name, (model, train_x, test_x) in models.items():
    variants = {"float32": model}
    for per_channel in (True, False):
        label = "int8 " + ("per-channel" if per_channel else "per-tensor")
        variants[label] = quantize_model(copy.deepcopy(model), calibration_batches(train_x), per_channel=per_channel)
    float_bytes = model_nbytes(model)
    for label, variant in variants.items():
        acc = accuracy(variant, test_x, y_test)
        results[(name, label)] = acc
        print(f"{name:5} {label:22} {acc:9.2%} {model_nbytes(variant):9,} {float_bytes / model_nbytes(variant):8.2f}x")
    gap = (results[(name, "float32")] - results[(name, "int8 per-channel")]) * 100
    print(f"      accuracy lost by int8 per-channel: {gap:+.2f} points ({'within' if abs(gap) <= 1 else 'outside'} "
          f"the 1-point target); weight bytes alone: "
          f"{sum(l.weight.data.nbytes for l in model.layers if isinstance(l, QUANTIZABLE)) / sum(l.weight_q.nbytes for l in variants['int8 per-channel'].layers if isinstance(l, QuantizedLinear)):.2f}x smaller")

# %% [markdown]
# ### Error per layer, per channel against per tensor
#
# For each quantizable layer: the relative error of its output (float input, quantized layer against
# float layer, on the test set) and the relative error of its weights alone, with one scale per
# channel and with one per tensor. The ratio `per-tensor / per-channel` is what per-channel buys.
#
# Where that ratio comes out close to 1, the output channels of this model already have similar
# ranges (uniform initialisation, a short training run and weight decay keep them alike): one
# scale per channel pays off when the ranges differ a lot, as in the test with columns 1000×
# apart, and that is the common case in large trained networks (depthwise convolutions, language
# models), where per-tensor int8 can lose the small channels entirely.

# %%
def layer_inputs(model, x):
    """The float input of every layer of model on x."""
    inputs, hidden = [], Tensor(x)
    with no_grad():
        for layer in model.layers:
            inputs.append(hidden)
            hidden = layer(hidden)
    return inputs


def relative_error(approx, exact) -> float:
    return float(np.linalg.norm(approx - exact) / np.linalg.norm(exact))


print(f"{'model':5} {'layer':38} {'weight err chan':>15} {'weight err tensor':>17} {'output err chan':>15} "
      f"{'output err tensor':>17} {'tensor/chan':>11}")
for name, (model, train_x, test_x) in models.items():
    quantizers = calibrate(model, calibration_batches(train_x))
    inputs = layer_inputs(model, test_x)
    for index, input_quantizer in quantizers.items():
        layer = model.layers[index]
        make = QuantizedConv2d if isinstance(layer, Conv2d) else QuantizedLinear
        exact = layer(inputs[index]).data
        row = {}
        for per_channel in (True, False):
            quantized = make(layer, input_quantizer, per_channel=per_channel)
            row[per_channel] = (relative_error(quantized.dequantized_weight(), layer.weight.data),
                                relative_error(quantized(inputs[index]).data, exact))
        print(f"{name:5} {index}: {layer!r:35.35} {row[True][0]:15.2e} {row[False][0]:17.2e} {row[True][1]:15.2e} "
              f"{row[False][1]:17.2e} {row[False][1] / row[True][1]:10.2f}x")

# %% [markdown]
# ### An integer-only hop between two layers
#
# `requantize` maps the first layer's int32 sums straight to the second layer's input codes; ReLU
# becomes a clamp at the zero point (the code of 0). The codes agree with the float detour
# (dequantize, ReLU, quantize) up to one step of rounding, measured here:

# %%
mlp_quantizers = calibrate(mlp, calibration_batches(x_train))
first = QuantizedLinear(mlp.layers[0], mlp_quantizers[0])
second_input = mlp_quantizers[2]
sums = first.accumulate(mlp_quantizers[0].quantize(x_test))
integer_codes = requantize(sums, first.output_scale / second_input.scale, second_input.zero_point)
integer_codes = np.maximum(integer_codes, second_input.zero_point)             # ReLU on codes
detour_codes = second_input.quantize(np.maximum(np.multiply(sums, first.output_scale, dtype=np.float32), 0))
steps = np.abs(integer_codes.astype(np.int32) - detour_codes.astype(np.int32))
print(f"integer-only vs float detour, {steps.size:,} codes: {np.mean(steps == 0):.2%} identical, "
      f"largest difference {steps.max()} code(s)")

# %% [markdown]
# ### Latency, end to end, one thread
#
# The whole model's forward pass at batch 1 and 64: float32 through BLAS against int8 (quantize the
# input of each layer, module 13's int8 GEMM with int32 sums, dequantize). Median of repeats after a
# warm-up. Then the largest Linear of the MLP taken apart, to see where the int8 time goes.

# %%
import statistics
import timeit


def median_seconds(fn, repeats: int = 7, number: int = 20) -> float:
    fn()
    return statistics.median(timeit.repeat(fn, number=number, repeat=repeats)) / number


repeats = 3 if QUICK else 9
speed = {}
print(f"{'model':5} {'batch':>5} {'float32 (us)':>13} {'int8 (us)':>10} {'int8 / float':>13}")
for name, (model, train_x, test_x) in models.items():
    quantized = quantize_model(copy.deepcopy(model), calibration_batches(train_x))
    for batch in (1, 64):
        x = Tensor(test_x[:batch])
        with no_grad():
            float_s = median_seconds(lambda: model(x), repeats=repeats)
            int8_s = median_seconds(lambda: quantized(x), repeats=repeats)
        speed[(name, batch)] = int8_s / float_s
        print(f"{name:5} {batch:5d} {float_s * 1e6:13.1f} {int8_s * 1e6:10.1f} {int8_s / float_s:12.2f}x")

layer = mlp.layers[2]
quantized_layer = QuantizedLinear(layer, mlp_quantizers[2])
hidden = np.maximum(x_test[:64] @ mlp.layers[0].weight.data + mlp.layers[0].bias.data, 0).astype(np.float32)
codes = quantized_layer.input_quantizer.quantize(hidden)
sums = quantized_layer.accumulate(codes)
parts = {"float32 x @ W + b (BLAS sgemm)": lambda: hidden @ layer.weight.data + layer.bias.data,
         "quantize input": lambda: quantized_layer.input_quantizer.quantize(hidden),
         "int8 GEMM, int32 sums": lambda: quantized_layer.accumulate(codes),
         "dequantize (to a float32 Tensor)": lambda: Tensor(sums * quantized_layer.output_scale)}
print(f"\n{layer!r}, batch 64, one thread:")
for part, fn in parts.items():
    print(f"  {part:32} {median_seconds(fn, repeats=repeats, number=50) * 1e6:9.1f} us")
slower = [f"{name} batch {batch}" for (name, batch), ratio in speed.items() if ratio > 1]
print("int8 slower than float32 here:", ", ".join(slower) if slower else "nowhere")

# %% [markdown]
# **Reading the latency table.** Where a ratio at batch 64 is above 1, int8 is *slower* than
# float on this CPU, even though it moves 4× fewer weight bytes. The breakdown says why: the float
# path is one call into a BLAS `sgemm` hand-tuned for this CPU (register blocking, fused
# multiply-adds on 8 or 16 floats per instruction), while module 13's int8 kernel is a numba loop
# that widens every int8 to int32 before multiplying, which gives LLVM no reason to use the CPU's
# 8-bit dot-product instructions (VNNI `vpdpbusd`, where present) that make production int8 GEMMs
# (oneDNN, FBGEMM) faster than float. On top of the GEMM, int8 pays two extra passes over memory
# per layer (quantize, dequantize). At batch 1 these matrices are so small that the arithmetic
# hardly counts: the time is Python overhead per layer. The float `Linear` goes through module 03's
# dispatch point, module 01's op recorder and two Tensor operations, the int8 layer through fewer
# calls, so a ratio below 1 at batch 1 measures that overhead, not faster arithmetic. The 4× in
# bytes is real either way, and it is what matters when a model must fit in a microcontroller's
# flash or a phone's cache: quantization buys memory first, and speed only with a kernel built for
# 8-bit arithmetic.

# %% [markdown]
# ## What you built
#
# * Observers that turn batches into ranges, and quantizers that turn ranges into scales and zero
#   points: symmetric for weights, affine for activations, per tensor or per channel, saturating.
# * Layers that really store one byte per weight and an int32 bias, multiply integers exactly, and
#   stay within an error bound you derived from the scales.
# * Post-training quantization of two trained models, with their accuracy, bytes, per-layer error
#   and latency measured on this machine, including where int8 is not faster.
