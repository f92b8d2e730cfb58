"""Package tests for tinytorch.optimization.compression: exact-count magnitude pruning against a NumPy
sort, masks that survive optimizers, filter pruning that keeps the function of the kept filters, CSR
against the dense product, distillation's loss and gradient, and 70% sparsity on the digits MLP."""

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import tinytorch.core.autograd  # noqa: F401  (installs the recorder and Tensor.backward)
from tinytorch.core.activations import ReLU
from tinytorch.core.autograd import no_grad
from tinytorch.core.layers import Linear, Sequential
from tinytorch.core.losses import CrossEntropyLoss
from tinytorch.core.optimizers import SGD, Adam, AdamW
from tinytorch.core.spatial import Conv2d, Flatten, MaxPool2d
from tinytorch.core.tensor import Tensor
from tinytorch.core.training import Trainer, cosine_schedule
from tinytorch.data.loader import DataLoader, Standardizer, TensorDataset, load_digits_dataset, train_test_split
from tinytorch.optimization.compression import (
    PruningMasks,
    SparseLinear,
    copy_model,
    csr_matmul_kernel,
    dense_to_csr,
    distill,
    distillation_loss,
    filter_norms,
    fine_tune,
    flatten_rows,
    magnitude_masks,
    magnitude_prune,
    measure_sparsity,
    prunable_layers,
    prune_conv_filters,
    prune_count,
    soft_target_loss,
)


def expected_count(sparsity, total):
    """The stated rule: round(sparsity * total), halves up."""
    return int(np.floor(np.float64(sparsity) * total + 0.5))


def mlp(seed=0, sizes=(10, 16, 8, 3)):
    layers = []
    for index, (fan_in, fan_out) in enumerate(zip(sizes, sizes[1:])):
        layers += [Linear(fan_in, fan_out, seed=seed + index), ReLU()]
    return Sequential(*layers[:-1])


def train_steps(model, optimizer, steps, seed=0):
    gen = np.random.default_rng(seed)
    x = gen.standard_normal((32, model.layers[0].in_features)).astype(np.float32)
    y = gen.integers(0, model.layers[-1].out_features, 32)
    for _ in range(steps):
        optimizer.zero_grad()
        CrossEntropyLoss()(model(Tensor(x)), y).backward()
        optimizer.step()


# ---------------------------------------------------------------- counting and masks

@pytest.mark.parametrize("total", [1, 3, 10, 99, 100, 1001])
@pytest.mark.parametrize("sparsity", [0.0, 0.1, 0.29, 0.5, 0.7, 0.95, 0.999])
def test_prune_count_is_round_half_up(sparsity, total):
    k = prune_count(sparsity, total)
    assert k == expected_count(sparsity, total)
    assert abs(k / total - sparsity) <= 0.5 / total + 1e-12, "within half an element of the request"


@pytest.mark.parametrize("bad", [1.0, 1.01, -1e-9, float("nan"), float("inf"), True, None, "0.5"])
def test_prune_count_rejects(bad):
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        prune_count(bad, 10)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("sparsity", [0.1, 0.5, 0.7, 0.9])
def test_layer_masks_against_sort(seed, sparsity):
    gen = np.random.default_rng(seed)
    weights = [gen.standard_normal(shape) * scale for shape, scale in (((7, 9), 1.0), ((4, 3, 3, 3), 5.0), ((13,), 0.1))]
    masks = magnitude_masks(weights, sparsity, scope="layer")
    for w, mask in zip(weights, masks):
        k = expected_count(sparsity, w.size)
        ordered = np.sort(np.abs(w).ravel())
        assert mask.shape == w.shape and mask.dtype == bool
        assert int((~mask).sum()) == k
        if k:
            np.testing.assert_array_equal(mask, np.abs(w) > ordered[k - 1])


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("sparsity", [0.2, 0.5, 0.8])
def test_global_masks_against_sort(seed, sparsity):
    gen = np.random.default_rng(seed)
    weights = [gen.standard_normal((6, 8)) * 0.05, gen.standard_normal((8, 8)), gen.standard_normal((8, 2)) * 3]
    masks = magnitude_masks(weights, sparsity, scope="global")
    everything = np.concatenate([np.abs(w).ravel() for w in weights])
    k = expected_count(sparsity, everything.size)
    threshold = np.sort(everything)[k - 1]
    assert sum(int((~m).sum()) for m in masks) == k
    for w, mask in zip(weights, masks):
        np.testing.assert_array_equal(mask, np.abs(w) > threshold)


def test_masks_rank_by_magnitude_not_sign():
    w = np.array([-5.0, 0.1, -0.2, 4.0, -3.0, 0.05])
    (mask,) = magnitude_masks([w], 0.5)
    np.testing.assert_array_equal(mask, [True, False, False, True, True, False])


def test_masks_ties_exact_count_position_order():
    (mask,) = magnitude_masks([np.ones(5)], 0.4)
    np.testing.assert_array_equal(mask, [False, False, True, True, True])


def test_masks_bad_scope():
    with pytest.raises(ValueError, match="global"):
        magnitude_masks([np.ones(3)], 0.5, scope="channel")


# ---------------------------------------------------------------- pruning a model, keeping it pruned

def test_magnitude_prune_layer_scope_counts_and_values():
    model = mlp(seed=1)
    before = [layer.weight.data.copy() for layer in prunable_layers(model)]
    biases = [layer.bias.data.copy() for layer in prunable_layers(model)]
    masks = magnitude_prune(model, 0.7)
    assert isinstance(masks, PruningMasks)
    zeros = 0
    for layer, w, b in zip(prunable_layers(model), before, biases):
        k = expected_count(0.7, w.size)
        assert int((layer.weight.data == 0).sum()) == k
        kept = layer.weight.data != 0
        np.testing.assert_array_equal(layer.weight.data[kept], w[kept])
        np.testing.assert_array_equal(layer.bias.data, b)
        zeros += k
    assert measure_sparsity(model) == zeros / sum(w.size for w in before)
    assert masks.sparsity() == measure_sparsity(model)


def test_magnitude_prune_global_threshold():
    model = mlp(seed=2)
    model.layers[0].weight.data *= 0.1
    before = np.concatenate([layer.weight.data.ravel() for layer in prunable_layers(model)])
    magnitude_prune(model, 0.6, scope="global")
    after = np.concatenate([layer.weight.data.ravel() for layer in prunable_layers(model)])
    pruned = after == 0
    assert int(pruned.sum()) == expected_count(0.6, before.size)
    assert np.abs(before[pruned]).max() <= np.abs(before[~pruned]).min()


def test_nested_and_conv_layers_are_found():
    conv = Conv2d(1, 4, 3, seed=0)
    head = Linear(16, 2, seed=1)
    model = Sequential(Sequential(conv, ReLU()), Flatten(), head)
    assert prunable_layers(model) == [conv, head]
    magnitude_prune(model, 0.5)
    assert int((conv.weight.data == 0).sum()) == expected_count(0.5, 36)


@pytest.mark.parametrize("model", [ReLU(), Sequential(), Sequential(ReLU(), Flatten(), MaxPool2d(2))])
def test_no_prunable_layers_is_a_clear_error(model):
    with pytest.raises(ValueError, match="Linear or Conv2d"):
        magnitude_prune(model, 0.5)
    with pytest.raises(ValueError, match="Linear or Conv2d"):
        measure_sparsity(model)


def test_bad_sparsity_changes_nothing():
    model = mlp()
    before = [p.data.copy() for p in model.parameters()]
    for bad in (1.0, -0.5, 2):
        with pytest.raises(ValueError):
            magnitude_prune(model, bad)
    for p, b in zip(model.parameters(), before):
        np.testing.assert_array_equal(p.data, b)


@pytest.mark.parametrize("make_optimizer", [
    lambda params: Adam(params, lr=0.05),
    lambda params: AdamW(params, lr=0.05, weight_decay=0.1),
    lambda params: SGD(params, lr=0.1, momentum=0.9),
], ids=["Adam", "AdamW", "SGD-momentum"])
def test_momentum_revives_pruned_weights_unless_attached(make_optimizer):
    for attached in (False, True):
        model = mlp(seed=3)
        optimizer = make_optimizer(model.parameters())
        train_steps(model, optimizer, 3)                 # momentum everywhere
        masks = magnitude_prune(model, 0.5)
        pruned = [layer.weight.data == 0 for layer in prunable_layers(model)]
        if attached:
            assert masks.attach(optimizer) is optimizer
        train_steps(model, optimizer, 2, seed=1)
        revived = sum(int((layer.weight.data[p] != 0).sum()) for layer, p in zip(prunable_layers(model), pruned))
        if attached:
            assert revived == 0
            assert measure_sparsity(model) == masks.sparsity()
        else:
            assert revived > 0, "the oracle of the test: without the mask, momentum moves pruned weights"


def test_attached_optimizer_state_dict_unchanged_and_trainer_works():
    model = mlp(seed=4)
    optimizer = Adam(model.parameters(), lr=0.01)
    keys_before = set(optimizer.state_dict())
    masks = magnitude_prune(model, 0.8)
    masks.attach(optimizer)
    assert set(optimizer.state_dict()) == keys_before
    gen = np.random.default_rng(0)
    x, y = gen.standard_normal((40, 10)).astype(np.float32), gen.integers(0, 3, 40)
    Trainer(model, optimizer, CrossEntropyLoss(), DataLoader(TensorDataset(x, y), batch_size=8)).fit(2)
    assert measure_sparsity(model) == masks.sparsity()


def test_fine_tune_keeps_masks_and_lowers_loss():
    gen = np.random.default_rng(5)
    x = gen.standard_normal((96, 10)).astype(np.float32)
    y = (x[:, :3].sum(axis=1) > 0).astype(np.int64)
    model = mlp(seed=5, sizes=(10, 24, 2))
    masks = magnitude_prune(model, 0.7)
    history = fine_tune(model, masks, DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True, seed=0), 6, lr=1e-2)
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert measure_sparsity(model) == masks.sparsity()


# ---------------------------------------------------------------- structured pruning

def cnn_with_zero_filters(seed, zero_first=(1, 4), zero_second=(0, 3, 5)):
    gen = np.random.default_rng(seed)
    first, second = Conv2d(2, 6, 3, padding=1, seed=seed), Conv2d(6, 8, 3, padding=1, seed=seed + 1)
    for conv, zeros in ((first, zero_first), (second, zero_second)):
        w = gen.standard_normal(conv.weight.shape).astype(np.float32)
        b = gen.standard_normal(conv.out_channels).astype(np.float32)
        w[list(zeros)], b[list(zeros)] = 0, 0
        conv.weight, conv.bias = Tensor(w, requires_grad=True), Tensor(b, requires_grad=True)
    return Sequential(first, ReLU(), MaxPool2d(2), second, ReLU(), MaxPool2d(2), Flatten(), Linear(32, 3, seed=seed + 2))


@pytest.mark.parametrize("norm", ["l1", "l2"])
def test_removing_zero_filters_keeps_the_function(norm):
    model = cnn_with_zero_filters(0)
    x = np.random.default_rng(1).standard_normal((6, 2, 8, 8)).astype(np.float32)
    with no_grad():
        expected = model(Tensor(x)).data
        pruned = prune_conv_filters(model, 0.35, norm=norm)
        got = pruned(Tensor(x)).data
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    assert [tuple(p.shape) for p in pruned.parameters()] == [(4, 2, 3, 3), (4,), (5, 4, 3, 3), (5,), (20, 3), (3,)]
    assert sum(p.size for p in pruned.parameters()) < sum(p.size for p in model.parameters())


def test_kept_filters_compute_the_same_channels():
    model = cnn_with_zero_filters(2)
    x = np.random.default_rng(3).standard_normal((3, 2, 8, 8)).astype(np.float32)
    pruned = prune_conv_filters(model, 0.35)
    np.testing.assert_allclose(pruned.layers[0](Tensor(x)).data, model.layers[0](Tensor(x)).data[:, [0, 2, 3, 5]],
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(pruned.layers[3].weight.data, model.layers[3].weight.data[[1, 2, 4, 6, 7]][:, [0, 2, 3, 5]])
    np.testing.assert_array_equal(pruned.layers[7].weight.data, model.layers[7].weight.data[flatten_rows([1, 2, 4, 6, 7], 4)])
    assert pruned.layers[0].weight.requires_grad and pruned.layers[7].bias.requires_grad
    assert model.layers[0].weight.shape == (6, 2, 3, 3)


def test_fraction_zero_is_the_same_model():
    model = cnn_with_zero_filters(4, zero_first=(), zero_second=())
    x = np.random.default_rng(5).standard_normal((2, 2, 8, 8)).astype(np.float32)
    pruned = prune_conv_filters(model, 0.0)
    np.testing.assert_array_equal(pruned(Tensor(x)).data, model(Tensor(x)).data)


def test_filter_norms_and_flatten_rows():
    w = np.random.default_rng(6).standard_normal((5, 3, 2, 2))
    np.testing.assert_allclose(filter_norms(w, "l1"), np.abs(w).reshape(5, -1).sum(axis=1))
    np.testing.assert_allclose(filter_norms(w, "l2"), np.linalg.norm(w.reshape(5, -1), axis=1))
    with pytest.raises(ValueError, match="l1"):
        filter_norms(w, "linf")
    np.testing.assert_array_equal(flatten_rows([2, 0], 2), [4, 5, 0, 1])


def test_copy_model_is_independent():
    model = cnn_with_zero_filters(9)
    twin = copy_model(model)
    x = np.random.default_rng(10).standard_normal((2, 2, 8, 8)).astype(np.float32)
    np.testing.assert_array_equal(twin(Tensor(x)).data, model(Tensor(x)).data)
    before = model.layers[0].weight.data.copy()
    magnitude_prune(twin, 0.9)
    np.testing.assert_array_equal(model.layers[0].weight.data, before)
    assert all(a is not b for a, b in zip(twin.parameters(), model.parameters()))


def test_structured_pruning_errors():
    with pytest.raises(ValueError, match="Conv2d"):
        prune_conv_filters(Sequential(Linear(4, 2)), 0.5)
    with pytest.raises(TypeError, match="Sequential"):
        prune_conv_filters(Conv2d(1, 2, 3), 0.5)
    with pytest.raises(ValueError):
        prune_conv_filters(cnn_with_zero_filters(0), 1.0)


def test_fine_tune_structured_model_without_masks():
    model = prune_conv_filters(cnn_with_zero_filters(7), 0.5)
    gen = np.random.default_rng(8)
    x, y = gen.standard_normal((24, 2, 8, 8)).astype(np.float32), gen.integers(0, 3, 24)
    history = fine_tune(model, None, DataLoader(TensorDataset(x, y), batch_size=8), 3, lr=1e-2)
    assert history[-1]["train_loss"] < history[0]["train_loss"]


# ---------------------------------------------------------------- CSR

def csr_to_dense(data, indices, indptr, shape):
    dense = np.zeros(shape, dtype=np.float32)
    for row in range(shape[0]):
        for position in range(indptr[row], indptr[row + 1]):
            dense[row, indices[position]] = data[position]
    return dense


@pytest.mark.parametrize("shape", [(1, 1), (5, 7), (64, 3), (3, 64), (40, 40)])
@pytest.mark.parametrize("density", [0.0, 0.1, 0.5, 1.0])
def test_csr_round_trip(shape, density):
    gen = np.random.default_rng(sum(shape))
    matrix = gen.standard_normal(shape).astype(np.float32) * (gen.random(shape) < density)
    data, indices, indptr = dense_to_csr(matrix)
    assert indptr.shape == (shape[0] + 1,) and indptr[0] == 0 and indptr[-1] == np.count_nonzero(matrix)
    assert np.all(np.diff(indptr) >= 0)
    np.testing.assert_array_equal(csr_to_dense(data, indices, indptr, shape), matrix)


@pytest.mark.parametrize("batch", [1, 2, 64])
@pytest.mark.parametrize("sparsity", [0.0, 0.7, 0.99])
def test_csr_kernel_against_dense(batch, sparsity):
    gen = np.random.default_rng(batch)
    matrix = gen.standard_normal((33, 50)).astype(np.float32)
    (mask,) = magnitude_masks([matrix], sparsity)
    matrix = np.where(mask, matrix, np.float32(0))
    x_cols = gen.standard_normal((50, batch)).astype(np.float32)
    out = np.full((33, batch), np.nan, dtype=np.float32)
    csr_matmul_kernel(*dense_to_csr(matrix), x_cols, out)
    np.testing.assert_allclose(out, matrix.astype(np.float64) @ x_cols, rtol=1e-4, atol=1e-4)


def test_sparse_linear_equals_pruned_linear():
    linear = Linear(40, 24, seed=9)
    linear.bias = Tensor(np.random.default_rng(10).standard_normal(24), requires_grad=True)
    magnitude_prune(linear, 0.8)
    sparse = SparseLinear.from_linear(linear)
    for shape in ((1, 40), (64, 40), (40,), (2, 3, 40)):
        x = np.random.default_rng(len(shape)).standard_normal(shape).astype(np.float32)
        y = sparse(Tensor(x))
        assert isinstance(y, Tensor) and y.dtype == np.float32
        np.testing.assert_allclose(y.data, linear(Tensor(x)).data, rtol=1e-5, atol=1e-5)
    nnz = int(np.count_nonzero(linear.weight.data))
    assert sparse.nnz == nnz and sparse.nbytes == 8 * nnz + 4 * (24 + 1) + 4 * 24
    with pytest.raises(ValueError, match="40"):
        sparse(np.ones((2, 39)))
    with pytest.raises(ValueError):
        SparseLinear(np.ones(3))


# ---------------------------------------------------------------- distillation

def kd_oracle(student, teacher, temperature):
    p_s = np.exp(student / temperature) / np.exp(student / temperature).sum(axis=1, keepdims=True)
    p_t = np.exp(teacher / temperature) / np.exp(teacher / temperature).sum(axis=1, keepdims=True)
    return temperature**2 * np.mean(np.sum(p_t * np.log(p_t / p_s), axis=1))


@pytest.mark.parametrize("temperature", [0.5, 1.0, 4.0, 20.0])
def test_soft_target_loss_value_and_gradient(temperature):
    gen = np.random.default_rng(11)
    student, teacher = gen.standard_normal((5, 6)), 2 * gen.standard_normal((5, 6))
    logits = Tensor(student, dtype=np.float64, requires_grad=True)
    teacher_tensor = Tensor(teacher, dtype=np.float64, requires_grad=True)
    loss = soft_target_loss(logits, teacher_tensor, temperature)
    np.testing.assert_allclose(float(loss.data), kd_oracle(student, teacher, temperature), rtol=1e-5)
    loss.backward()
    p_s = np.exp(student / temperature) / np.exp(student / temperature).sum(axis=1, keepdims=True)
    p_t = np.exp(teacher / temperature) / np.exp(teacher / temperature).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(logits.grad.data, temperature * (p_s - p_t) / 5, rtol=1e-6, atol=1e-9)
    assert teacher_tensor.grad is None, "the teacher's logits are a fixed target"
    numeric = np.zeros_like(student)
    for index in np.ndindex(student.shape):
        up, down = student.copy(), student.copy()
        up[index] += 1e-6
        down[index] -= 1e-6
        numeric[index] = (kd_oracle(up, teacher, temperature) - kd_oracle(down, teacher, temperature)) / 2e-6
    np.testing.assert_allclose(logits.grad.data, numeric, rtol=1e-4, atol=1e-7)


def test_distillation_loss_mix_and_errors():
    gen = np.random.default_rng(12)
    student, teacher, labels = gen.standard_normal((4, 3)), gen.standard_normal((4, 3)), gen.integers(0, 3, 4)
    ce = float(CrossEntropyLoss()(Tensor(student, dtype=np.float64), labels).data)
    mixed = distillation_loss(Tensor(student), Tensor(teacher), labels, temperature=2.0, alpha=0.25)
    np.testing.assert_allclose(float(mixed.data), 0.25 * kd_oracle(student, teacher, 2.0) + 0.75 * ce, rtol=1e-5)
    for bad in (0, -2.0, float("nan"), True):
        with pytest.raises(ValueError, match="temperature"):
            soft_target_loss(student, teacher, bad)
    with pytest.raises(ValueError, match="alpha"):
        distillation_loss(student, teacher, labels, alpha=1.5)
    with pytest.raises(ValueError, match="same shape"):
        soft_target_loss(student, teacher.T)


def test_distill_leaves_teacher_and_lowers_loss():
    gen = np.random.default_rng(13)
    x = gen.standard_normal((64, 6)).astype(np.float32)
    teacher = mlp(seed=14, sizes=(6, 16, 4))
    y = teacher(Tensor(x)).data.argmax(axis=1)
    weights_before = [p.data.copy() for p in teacher.parameters()]
    student = mlp(seed=15, sizes=(6, 4))
    losses = distill(teacher, student, DataLoader(TensorDataset(x, y), batch_size=16), 8, temperature=3.0, lr=1e-2)
    assert len(losses) == 8 and losses[-1] < losses[0]
    for p, b in zip(teacher.parameters(), weights_before):
        np.testing.assert_array_equal(p.data, b)
        assert p.grad is None


# ---------------------------------------------------------------- the course's claim, measured

def test_digits_mlp_at_70_percent_sparsity_within_two_points():
    with threadpool_limits(limits=1, user_api="blas"):   # 32 x 128 matrices: threads only add overhead (module 08)
        digits_mlp_at_70_percent_sparsity()


def digits_mlp_at_70_percent_sparsity():
    images, labels = load_digits_dataset()
    x_train, x_test, y_train, y_test = train_test_split(images, labels, test_fraction=0.2, seed=0, stratify=labels)
    scaler = Standardizer().fit(x_train)
    x_train, x_test = scaler.apply(x_train), scaler.apply(x_test)
    model = mlp(seed=0, sizes=(64, 128, 128, 10))
    loader = DataLoader(TensorDataset(x_train, y_train), batch_size=32, shuffle=True, seed=0)
    epochs = 10
    total = epochs * len(loader)
    Trainer(model, AdamW(model.parameters(), lr=3e-3, weight_decay=1e-3), CrossEntropyLoss(), loader,
            schedule=lambda step: cosine_schedule(step, total, 3e-3, min_lr=3e-5, warmup_steps=len(loader)),
            max_grad_norm=5.0).fit(epochs)

    def accuracy():
        with no_grad():
            return float(np.mean(model(Tensor(x_test)).data.argmax(axis=1) == y_test))

    dense = accuracy()
    masks = magnitude_prune(model, 0.7, scope="global")
    fine_tune(model, masks, DataLoader(TensorDataset(x_train, y_train), batch_size=32, shuffle=True, seed=1), 5)
    assert measure_sparsity(model) == expected_count(0.7, 64 * 128 + 128 * 128 + 128 * 10) / (64 * 128 + 128 * 128 + 128 * 10)
    assert dense >= 0.93
    assert accuracy() >= dense - 0.02, f"70% sparse {accuracy():.4f} vs dense {dense:.4f}"
