"""Package tests for tinytorch.core.losses: reductions, MSE, cross entropies from logits, loss objects, the seam.

Oracles are float64 NumPy formulas written independently of the module: log-sum-exp as
np.logaddexp.reduce, softplus as np.logaddexp(0, x), and values derived by hand.
"""

import numpy as np
import pytest

from tinytorch.core.activations import Softmax
from tinytorch.core.layers import Sequential, count_parameters
from tinytorch.core.losses import (
    REDUCTIONS,
    BinaryCrossEntropyLoss,
    CrossEntropyLoss,
    MSELoss,
    binary_cross_entropy_loss,
    cross_entropy_loss,
    mse_loss,
    reduce_loss,
)
from tinytorch.core.tensor import Tensor, set_op_recorder


def f64(values) -> Tensor:
    return Tensor(np.asarray(values, dtype=np.float64), dtype=np.float64)


def ce_oracle(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-sample softmax cross entropy in float64: log-sum-exp of the row minus the true logit."""
    x = np.asarray(x, dtype=np.float64)
    return np.logaddexp.reduce(x, axis=1) - np.take_along_axis(x, np.asarray(y)[:, None], axis=1)[:, 0]


def bce_oracle(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-element sigmoid binary cross entropy in float64: softplus(x) - x*y."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    return np.logaddexp(0.0, x) - x * y


def apply_reduction(per_sample: np.ndarray, reduction: str) -> np.ndarray:
    return {"mean": np.mean, "sum": np.sum, "none": lambda a: a}[reduction](per_sample)


@pytest.fixture
def recorded_ops():
    """Installs a recorder that keeps every (op, out, inputs, params) it is told; restores the old one."""
    seen = []
    previous = set_op_recorder(lambda op, out, inputs, params: seen.append((op, out, inputs, params)))
    yield seen
    set_op_recorder(previous)


# --- reduce_loss -------------------------------------------------------------------------------

def test_reductions_offered():
    assert REDUCTIONS == ("mean", "sum", "none")


@pytest.mark.parametrize("shape", [(1,), (7,), (3, 4), (2, 3, 5)])
def test_reduce_loss_over_every_element(shape):
    losses = np.random.default_rng(len(shape)).uniform(0, 5, size=shape)
    assert np.shape(reduce_loss(losses, "mean")) == ()
    np.testing.assert_allclose(reduce_loss(losses, "mean"), losses.sum() / losses.size, rtol=1e-12)
    np.testing.assert_allclose(reduce_loss(losses, "sum"), np.add.reduce(losses.ravel()), rtol=1e-12)
    np.testing.assert_array_equal(reduce_loss(losses, "none"), losses)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_reduce_loss_keeps_dtype(dtype):
    losses = np.ones(4, dtype=dtype)
    for reduction in REDUCTIONS:
        assert np.asarray(reduce_loss(losses, reduction)).dtype == dtype


@pytest.mark.parametrize("reduction", ["Mean", "avg", "", None, "batchmean"])
def test_reduce_loss_unknown_reduction_lists_the_options(reduction):
    with pytest.raises(ValueError) as info:
        reduce_loss(np.ones(3), reduction)
    assert all(name in str(info.value) for name in REDUCTIONS)


# --- mse_loss ----------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(1,), (6,), (4, 1), (3, 5), (2, 3, 4)])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_matches_float64_oracle(shape, reduction):
    gen = np.random.default_rng(sum(shape))
    p, t = gen.standard_normal(shape), gen.standard_normal(shape)
    got = mse_loss(f64(p), f64(t), reduction=reduction)
    expected = apply_reduction((p - t) ** 2, reduction)
    assert isinstance(got, Tensor) and got.shape == np.shape(expected) and got.dtype == np.float64
    np.testing.assert_allclose(got.data, expected, rtol=1e-12)


def test_mse_by_hand():
    np.testing.assert_allclose(mse_loss(f64([1.0, 2.0, 3.0]), f64([1.0, 0.0, 6.0])).data, (0 + 4 + 9) / 3, rtol=1e-12)


def test_mse_float32_in_float32_out():
    gen = np.random.default_rng(0)
    p, t = gen.standard_normal((16, 4)).astype(np.float32), gen.standard_normal((16, 4)).astype(np.float32)
    got = mse_loss(Tensor(p), Tensor(t))
    assert got.dtype == np.float32 and got.shape == ()
    np.testing.assert_allclose(got.data, np.mean((p.astype(np.float64) - t) ** 2), rtol=1e-6)


def test_mse_accepts_arrays_and_integer_predictions():
    got = mse_loss(np.array([1, 2, 3]), np.array([0.5, 2.0, 2.0]))
    assert isinstance(got, Tensor) and got.dtype == np.float32
    np.testing.assert_allclose(got.data, (0.25 + 0 + 1) / 3, rtol=1e-6)


def test_mse_depends_on_targets():
    p = f64([0.0, 0.0])
    assert mse_loss(p, f64([1.0, 1.0])).data != mse_loss(p, f64([2.0, 2.0])).data


@pytest.mark.parametrize("shape_p, shape_t", [((4, 1), (4,)), ((4,), (4, 1)), ((2, 3), (3, 2)), ((3,), (1,))])
def test_mse_shape_mismatch_names_both_shapes(shape_p, shape_t):
    with pytest.raises(ValueError) as info:
        mse_loss(Tensor(np.zeros(shape_p)), Tensor(np.zeros(shape_t)))
    assert str(shape_p) in str(info.value) and str(shape_t) in str(info.value)


def test_mse_unknown_reduction():
    with pytest.raises(ValueError, match="'max'"):
        mse_loss(f64([1.0]), f64([1.0]), reduction="max")


# --- cross_entropy_loss --------------------------------------------------------------------------

@pytest.mark.parametrize("n, c", [(1, 1), (1, 5), (5, 3), (3, 5), (64, 10), (4, 4)])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_matches_logsumexp_oracle(n, c, reduction):
    gen = np.random.default_rng(n * 100 + c)
    x = gen.standard_normal((n, c)) * 4
    y = gen.integers(0, c, size=n)
    got = cross_entropy_loss(f64(x), y, reduction=reduction)
    expected = apply_reduction(ce_oracle(x, y), reduction)
    assert isinstance(got, Tensor) and got.shape == np.shape(expected) and got.dtype == np.float64
    np.testing.assert_allclose(got.data, expected, rtol=1e-10, atol=1e-12)


def test_cross_entropy_by_hand():
    np.testing.assert_allclose(cross_entropy_loss(f64(np.zeros((2, 10))), np.array([3, 9])).data, np.log(10.0), rtol=1e-12)
    # logits (ln 1, ln 2, ln 5): probabilities 1/8, 2/8, 5/8
    logits = f64(np.log([[1.0, 2.0, 5.0]] * 3))
    np.testing.assert_allclose(cross_entropy_loss(logits, np.array([0, 1, 2]), reduction="none").data,
                               -np.log([1 / 8, 2 / 8, 5 / 8]), rtol=1e-12)


def test_cross_entropy_equals_minus_log_of_module02_softmax_for_moderate_logits():
    x = np.random.default_rng(1).standard_normal((6, 4))
    y = np.array([0, 1, 2, 3, 3, 0])
    probabilities = Softmax(axis=1)(f64(x)).data
    np.testing.assert_allclose(cross_entropy_loss(f64(x), y, reduction="none").data,
                               -np.log(probabilities[np.arange(6), y]), rtol=1e-10)


@pytest.mark.parametrize("dtype, scale", [(np.float32, 100.0), (np.float32, 1000.0), (np.float64, 1000.0), (np.float64, 1e6)])
def test_cross_entropy_stable_for_large_logits(dtype, scale):
    x = np.array([[scale, -scale, 0.0], [scale, scale, -scale], [-scale, 0.0, scale]], dtype=dtype)
    y = np.array([1, 0, 1])
    got = cross_entropy_loss(Tensor(x, dtype=dtype), y, reduction="none")
    assert got.dtype == dtype
    assert np.all(np.isfinite(got.data))
    # by hand: row 0 lse = scale, minus -scale; row 1 lse = scale + ln 2, minus scale; row 2 lse = scale, minus 0
    np.testing.assert_allclose(got.data, [2 * scale, np.log(2.0), scale], rtol=1e-6, atol=1e-6 * scale)


def test_cross_entropy_shift_invariant():
    x = np.random.default_rng(2).standard_normal((8, 5))
    y = np.arange(8) % 5
    np.testing.assert_allclose(cross_entropy_loss(f64(x + 500.0), y).data, cross_entropy_loss(f64(x), y).data, rtol=1e-10)


def test_cross_entropy_float32_in_float32_out():
    x = np.random.default_rng(3).standard_normal((32, 10)).astype(np.float32)
    y = np.random.default_rng(4).integers(0, 10, size=32)
    got = cross_entropy_loss(Tensor(x), y)
    assert got.dtype == np.float32 and got.shape == ()
    np.testing.assert_allclose(got.data, ce_oracle(x, y).mean(), rtol=1e-6)


@pytest.mark.parametrize("as_targets", [np.asarray, Tensor, list, lambda a: a.astype(np.int32), lambda a: a.astype(np.uint8)])
def test_cross_entropy_accepts_integer_labels_in_any_container(as_targets):
    x = np.random.default_rng(5).standard_normal((4, 3))
    y = np.array([2, 0, 1, 2])
    np.testing.assert_allclose(cross_entropy_loss(f64(x), as_targets(y)).data, ce_oracle(x, y).mean(), rtol=1e-10)


def test_cross_entropy_depends_on_targets():
    x = f64([[2.0, 0.0, -1.0]])
    losses = {float(cross_entropy_loss(x, np.array([label])).data) for label in range(3)}
    assert len(losses) == 3


@pytest.mark.parametrize("shape", [(4,), (), (2, 3, 4)])
def test_cross_entropy_logits_must_be_2d(shape):
    with pytest.raises(ValueError, match=str(shape).replace("(", r"\(").replace(")", r"\)")):
        cross_entropy_loss(Tensor(np.zeros(shape)), np.array([0]))


@pytest.mark.parametrize("labels", [np.array([0.0, 1.0]), np.array([True, False]), np.array([0.5, 1.0])])
def test_cross_entropy_non_integer_labels_raise_type_error_naming_dtype(labels):
    with pytest.raises(TypeError, match=str(labels.dtype)):
        cross_entropy_loss(Tensor(np.zeros((2, 3))), labels)


@pytest.mark.parametrize("bad_label", [3, 7, -1, -3])
def test_cross_entropy_label_out_of_range_names_it(bad_label):
    with pytest.raises(ValueError) as info:
        cross_entropy_loss(Tensor(np.zeros((2, 3))), np.array([0, bad_label]))
    assert str(bad_label) in str(info.value) and "3" in str(info.value)


@pytest.mark.parametrize("label_shape", [(3,), (2, 1), (2, 3), (1,)])
def test_cross_entropy_label_shape_must_be_n(label_shape):
    with pytest.raises(ValueError) as info:
        cross_entropy_loss(Tensor(np.zeros((2, 3))), np.zeros(label_shape, dtype=np.int64))
    assert str(label_shape) in str(info.value) and "(2, 3)" in str(info.value)


# --- binary_cross_entropy_loss -------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(1,), (8,), (4, 3), (2, 3, 2)])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_matches_softplus_oracle(shape, reduction):
    gen = np.random.default_rng(sum(shape) + 7)
    x = gen.standard_normal(shape) * 5
    y = gen.uniform(0, 1, size=shape)
    got = binary_cross_entropy_loss(f64(x), f64(y), reduction=reduction)
    expected = apply_reduction(bce_oracle(x, y), reduction)
    assert isinstance(got, Tensor) and got.shape == np.shape(expected) and got.dtype == np.float64
    np.testing.assert_allclose(got.data, expected, rtol=1e-10, atol=1e-12)


def test_bce_by_hand():
    # sigma(ln 3) = 3/4: label 1 costs -ln(3/4), label 0 costs -ln(1/4)
    x = f64([np.log(3.0), np.log(3.0), 0.0])
    np.testing.assert_allclose(binary_cross_entropy_loss(x, f64([1.0, 0.0, 0.3]), reduction="none").data,
                               [-np.log(0.75), -np.log(0.25), np.log(2.0)], rtol=1e-12)


@pytest.mark.parametrize("dtype, scale", [(np.float32, 100.0), (np.float32, 1000.0), (np.float64, 100.0), (np.float64, 1e6)])
def test_bce_stable_for_large_logits(dtype, scale):
    x = np.array([scale, -scale, scale, -scale], dtype=dtype)
    y = np.array([0.0, 1.0, 1.0, 0.0], dtype=dtype)
    got = binary_cross_entropy_loss(Tensor(x, dtype=dtype), Tensor(y, dtype=dtype), reduction="none")
    assert got.dtype == dtype and np.all(np.isfinite(got.data))
    np.testing.assert_allclose(got.data, [scale, scale, 0.0, 0.0], rtol=1e-6, atol=1e-6)


def test_bce_accurate_where_log1p_matters():
    # at x = -40, label 0: the loss is log(1 + e^-40) = 4.2e-18, which 1 + e^-40 == 1.0 would lose
    got = binary_cross_entropy_loss(f64([-40.0]), f64([0.0])).data
    np.testing.assert_allclose(got, np.exp(-40.0), rtol=1e-12)


def test_bce_float32_in_float32_out_with_integer_labels():
    x = np.random.default_rng(8).standard_normal(10).astype(np.float32)
    y = np.random.default_rng(9).integers(0, 2, size=10)
    got = binary_cross_entropy_loss(Tensor(x), y)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got.data, bce_oracle(x, y).mean(), rtol=1e-6)


def test_bce_depends_on_targets():
    x = f64([1.5, -0.5])
    assert binary_cross_entropy_loss(x, f64([0.0, 0.0])).data != binary_cross_entropy_loss(x, f64([1.0, 1.0])).data


@pytest.mark.parametrize("shape_x, shape_y", [((3, 1), (3,)), ((3,), (1, 3)), ((2, 2), (4,))])
def test_bce_shape_mismatch_names_both_shapes(shape_x, shape_y):
    with pytest.raises(ValueError) as info:
        binary_cross_entropy_loss(Tensor(np.zeros(shape_x)), Tensor(np.zeros(shape_y)))
    assert str(shape_x) in str(info.value) and str(shape_y) in str(info.value)


@pytest.mark.parametrize("targets", [[0.0, 1.5], [-0.1, 0.5], [0.0, np.nan], [2.0, 3.0]])
def test_bce_targets_outside_unit_interval(targets):
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        binary_cross_entropy_loss(f64([0.0, 0.0]), f64(targets))


# --- loss objects --------------------------------------------------------------------------------

@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_loss_objects_match_the_oracles(reduction):
    gen = np.random.default_rng(10)
    x, t = gen.standard_normal((6, 4)), gen.standard_normal((6, 4))
    labels = gen.integers(0, 4, size=6)
    probabilities = gen.uniform(0, 1, size=(6, 4))
    np.testing.assert_allclose(MSELoss(reduction)(f64(x), f64(t)).data, apply_reduction((x - t) ** 2, reduction), rtol=1e-12)
    np.testing.assert_allclose(CrossEntropyLoss(reduction)(f64(x), labels).data,
                               apply_reduction(ce_oracle(x, labels), reduction), rtol=1e-10)
    np.testing.assert_allclose(BinaryCrossEntropyLoss(reduction=reduction)(f64(x), f64(probabilities)).data,
                               apply_reduction(bce_oracle(x, probabilities), reduction), rtol=1e-10)


@pytest.mark.parametrize("cls", [MSELoss, CrossEntropyLoss, BinaryCrossEntropyLoss])
def test_loss_objects_default_mean_no_parameters_and_repr(cls):
    loss = cls()
    assert loss.reduction == "mean" and loss.parameters() == []
    assert repr(loss) == f"{cls.__name__}(reduction='mean')"
    assert count_parameters(Sequential(loss)) == 0


@pytest.mark.parametrize("cls", [MSELoss, CrossEntropyLoss, BinaryCrossEntropyLoss])
def test_loss_objects_reject_unknown_reduction_at_construction(cls):
    with pytest.raises(ValueError, match="batchmean"):
        cls(reduction="batchmean")


# --- the autograd seam ---------------------------------------------------------------------------

def seam_cases():
    gen = np.random.default_rng(11)
    x = Tensor(gen.standard_normal((5, 3)).astype(np.float32))
    regression_targets = Tensor(gen.standard_normal((5, 3)).astype(np.float32))
    class_ids = np.array([0, 2, 1, 1, 0])
    probabilities = Tensor(gen.uniform(0, 1, size=(5, 3)).astype(np.float32))
    return [
        ("mse_loss", mse_loss, MSELoss, x, regression_targets),
        ("cross_entropy_loss", cross_entropy_loss, CrossEntropyLoss, x, class_ids),
        ("binary_cross_entropy_loss", binary_cross_entropy_loss, BinaryCrossEntropyLoss, x, probabilities),
    ]


@pytest.mark.parametrize("op, functional, cls, predictions, targets", seam_cases(), ids=lambda v: v if isinstance(v, str) else "")
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_each_loss_reports_exactly_one_op(recorded_ops, op, functional, cls, predictions, targets, reduction):
    from_function = functional(predictions, targets, reduction=reduction)
    from_object = cls(reduction=reduction)(predictions, targets)
    assert len(recorded_ops) == 2, [entry[0] for entry in recorded_ops]   # no inner sub/mul/exp ops leak out
    for (name, out, inputs, params), returned in zip(recorded_ops, (from_function, from_object)):
        assert name == op
        assert out is returned
        assert len(inputs) == 2 and inputs[0] is predictions and inputs[1] is targets
        assert params == {"reduction": reduction}


def test_default_reduction_is_reported(recorded_ops):
    cross_entropy_loss(Tensor(np.zeros((2, 3))), np.array([0, 1]))
    assert [(name, params) for name, _, _, params in recorded_ops] == [("cross_entropy_loss", {"reduction": "mean"})]


def test_losses_do_not_modify_their_inputs():
    gen = np.random.default_rng(12)
    x = gen.standard_normal((4, 3))
    y = gen.uniform(0, 1, size=(4, 3))
    labels = np.array([0, 1, 2, 0])
    x_before, y_before, labels_before = x.copy(), y.copy(), labels.copy()
    logits, targets = f64(x), f64(y)
    mse_loss(logits, targets)
    cross_entropy_loss(logits, labels)
    binary_cross_entropy_loss(logits, targets)
    np.testing.assert_array_equal(logits.data, x_before)
    np.testing.assert_array_equal(targets.data, y_before)
    np.testing.assert_array_equal(labels, labels_before)
