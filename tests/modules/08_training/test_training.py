"""Package tests for tinytorch.core.training: the schedule and clipping against hand computations,
Trainer metrics and loop order, bit-identical checkpoints through real .npz files, bad input,
and the digits MLP trained from scratch to >= 95% held-out accuracy."""

import json
import math
import zipfile

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from tinytorch.core.activations import ReLU
from tinytorch.core.layers import Linear, Sequential
from tinytorch.core.losses import CrossEntropyLoss, MSELoss
from tinytorch.core.optimizers import SGD, Adam, AdamW
from tinytorch.core.tensor import Tensor
from tinytorch.core.training import CHECKPOINT_FORMAT, Trainer, clip_grad_norm, cosine_schedule
from tinytorch.data.loader import DataLoader, Standardizer, TensorDataset, load_digits_dataset, train_test_split


@pytest.fixture(autouse=True)
def one_blas_thread():
    """Tiny matmuls: threads only add overhead (and noise on a shared machine)."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield


# --- cosine_schedule -------------------------------------------------------------------------------


def test_cosine_schedule_matches_formula_everywhere():
    total, warmup, top, bottom = 50, 5, 0.3, 0.01
    for step in range(total + 5):
        if step < warmup:
            expected = top * (step + 1) / warmup
        elif step >= total:
            expected = bottom
        else:
            expected = bottom + 0.5 * (top - bottom) * (1 + math.cos(math.pi * (step - warmup) / (total - warmup)))
        assert cosine_schedule(step, total, top, min_lr=bottom, warmup_steps=warmup) == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_cosine_schedule_landmarks():
    assert cosine_schedule(0, 10, 1.0) == 1.0
    assert cosine_schedule(5, 10, 1.0) == pytest.approx(0.5, abs=1e-15)
    assert cosine_schedule(10, 10, 1.0) == pytest.approx(0.0, abs=1e-15)
    assert cosine_schedule(3, 10, 1.0, warmup_steps=4) == 1.0      # the warm-up's last step reaches max_lr


@pytest.mark.parametrize("args, kwargs", [((0, 0, 0.1), {}), ((0, 5, 0.1), {"warmup_steps": 5}), ((-1, 5, 0.1), {}),
                                          ((0, 5, 0.1), {"min_lr": 0.2}), ((0.5, 5, 0.1), {}), ((0, 5, 0.1), {"min_lr": -1.0})])
def test_cosine_schedule_rejects_nonsense(args, kwargs):
    with pytest.raises(ValueError):
        cosine_schedule(*args, **kwargs)


# --- clip_grad_norm --------------------------------------------------------------------------------


def with_grads(*grads):
    params = []
    for g in grads:
        param = Tensor(np.zeros_like(g), dtype=g.dtype, requires_grad=True)
        param.grad = Tensor(np.array(g), dtype=g.dtype)
        params.append(param)
    return params


def test_clip_against_hand_computation():
    params = with_grads(np.array([[1.0, 2.0], [2.0, 0.0]], dtype=np.float32), np.array([4.0], dtype=np.float32))
    grad_arrays = [p.grad.data for p in params]
    norm = clip_grad_norm(params, 2.5)                     # |g| = sqrt(1 + 4 + 4 + 16) = 5
    assert norm == pytest.approx(5.0, rel=1e-12)
    coef = 2.5 / (5.0 + 1e-6)
    np.testing.assert_allclose(params[0].grad.data, [[coef, 2 * coef], [2 * coef, 0.0]], rtol=1e-6)
    np.testing.assert_allclose(params[1].grad.data, [4 * coef], rtol=1e-6)
    assert all(p.grad.data is a for p, a in zip(params, grad_arrays))          # in place
    assert params[0].grad.dtype == np.float32


def test_clip_below_threshold_changes_nothing_and_skips_none():
    params = with_grads(np.array([0.6, 0.8], dtype=np.float32))
    params.append(Tensor(np.zeros(2, dtype=np.float32), requires_grad=True))
    assert clip_grad_norm(params, 2.0) == pytest.approx(1.0, rel=1e-7)
    np.testing.assert_array_equal(params[0].grad.data, np.array([0.6, 0.8], dtype=np.float32))
    assert params[1].grad is None


def test_clip_norm_in_float64_for_float32_grads():
    big = np.full(1000, 3e19, dtype=np.float32)             # squares overflow float32
    params = with_grads(big)
    norm = clip_grad_norm(params, 1.0)
    assert norm == pytest.approx(3e19 * math.sqrt(1000), rel=1e-6)
    assert np.sqrt(np.sum(params[0].grad.data.astype(np.float64) ** 2)) == pytest.approx(1.0, rel=1e-5)


def test_clip_non_finite_norm_is_returned_and_leaves_grads():
    params = with_grads(np.array([np.inf, 1.0], dtype=np.float32))
    assert clip_grad_norm(params, 1.0) == math.inf
    np.testing.assert_array_equal(params[0].grad.data, [np.inf, 1.0])


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), "1"])
def test_clip_rejects_bad_max_norm(bad):
    with pytest.raises(ValueError, match="max_norm"):
        clip_grad_norm(with_grads(np.ones(2, dtype=np.float32)), bad)


# --- Trainer: metrics and loop -----------------------------------------------------------------------


def small_classification(n=30, features=5, classes=3, seed=0):
    gen = np.random.default_rng(seed)
    return gen.standard_normal((n, features)).astype(np.float32), gen.integers(0, classes, n)


def numpy_cross_entropy(x, y, layer):
    z = x.astype(np.float64) @ layer.weight.data.astype(np.float64) + layer.bias.data
    top = z.max(axis=1, keepdims=True)
    return np.log(np.exp(z - top).sum(axis=1)) + top[:, 0] - z[np.arange(len(y)), y], np.argmax(z, axis=1) == y


def test_epoch_metrics_are_per_sample_means_with_a_short_last_batch():
    x, y = small_classification(n=11)
    layer = Linear(5, 3, seed=0)
    losses, hits = numpy_cross_entropy(x, y, layer)
    trainer = Trainer(layer, SGD(layer.parameters(), lr=0.0), CrossEntropyLoss(), DataLoader(TensorDataset(x, y), batch_size=4))
    metrics = trainer.train_epoch()
    assert metrics["loss"] == pytest.approx(losses.mean(), rel=1e-6)
    assert metrics["accuracy"] == pytest.approx(hits.mean(), abs=1e-12)
    evaluated = trainer.evaluate(DataLoader(TensorDataset(x, y), batch_size=5))
    assert evaluated["loss"] == pytest.approx(losses.mean(), rel=1e-6)


def test_evaluate_records_no_graph_and_changes_nothing():
    x, y = small_classification()
    model = Sequential(Linear(5, 4, seed=1), ReLU(), Linear(4, 3, seed=2))
    trainer = Trainer(model, Adam(model.parameters(), lr=0.1), CrossEntropyLoss(), DataLoader(TensorDataset(x, y), batch_size=8))
    before = [p.data.copy() for p in model.parameters()]
    trainer.evaluate(DataLoader(TensorDataset(x, y), batch_size=8))
    assert all(p.grad is None for p in model.parameters())
    for p, b in zip(model.parameters(), before):
        np.testing.assert_array_equal(p.data, b)
    assert (trainer.epoch, trainer.step) == (0, 0) and trainer.optimizer.steps == [0] * 4
    from tinytorch.core.autograd import no_grad
    with no_grad():     # sanity: inside no_grad a forward result requires no grad
        assert not model(Tensor(x)).requires_grad


def test_schedule_is_asked_before_each_step_with_the_global_step():
    x, y = small_classification(n=10)
    layer = Linear(5, 3, seed=0)
    seen = []
    trainer = Trainer(layer, SGD(layer.parameters(), lr=1.0), CrossEntropyLoss(),
                      DataLoader(TensorDataset(x, y), batch_size=4), schedule=lambda step: seen.append(step) or 0.0)
    before = layer.weight.data.copy()
    trainer.fit(2)
    assert seen == [0, 1, 2, 3, 4, 5]
    np.testing.assert_array_equal(layer.weight.data, before)            # lr 0 from the schedule: nothing moved
    assert [h["epoch"] for h in trainer.history] == [1, 2] and [h["step"] for h in trainer.history] == [3, 6]


def test_clipping_happens_before_the_step():
    x, y = small_classification(n=8)
    x *= 100
    layer = Linear(5, 3, seed=0)
    trainer = Trainer(layer, SGD(layer.parameters(), lr=1.0), CrossEntropyLoss(),
                      DataLoader(TensorDataset(x, y), batch_size=8), max_grad_norm=0.01)
    before = [p.data.astype(np.float64) for p in layer.parameters()]
    trainer.train_epoch()
    moved = math.sqrt(sum(np.sum((p.data - b) ** 2) for p, b in zip(layer.parameters(), before)))
    assert 0.009 < moved <= 0.01 * (1 + 1e-5)


def test_fit_history_has_train_and_eval_entries_and_is_json():
    x, y = small_classification()
    layer = Linear(5, 3, seed=0)
    trainer = Trainer(layer, Adam(layer.parameters(), lr=0.05), CrossEntropyLoss(), DataLoader(TensorDataset(x, y), batch_size=8))
    history = trainer.fit(3, eval_loader=DataLoader(TensorDataset(x, y), batch_size=30))
    assert set(history[0]) == {"train_loss", "train_accuracy", "eval_loss", "eval_accuracy", "epoch", "step", "lr"}
    assert json.loads(json.dumps(history)) == history
    assert history[-1]["train_loss"] < history[0]["train_loss"]


def test_regression_has_loss_but_no_accuracy():
    gen = np.random.default_rng(3)
    x, t = gen.standard_normal((12, 3)).astype(np.float32), gen.standard_normal((12, 1)).astype(np.float32)
    layer = Linear(3, 1, seed=0)
    trainer = Trainer(layer, SGD(layer.parameters(), lr=0.05), MSELoss(), DataLoader(TensorDataset(x, t), batch_size=5))
    metrics = trainer.train_epoch()
    assert set(metrics) == {"loss"}


def test_bad_setups_are_refused_with_advice():
    x, y = small_classification()
    layer = Linear(5, 3, seed=0)
    loader = DataLoader(TensorDataset(x, y), batch_size=8)
    with pytest.raises(ValueError, match="reduction"):
        Trainer(layer, SGD(layer.parameters(), lr=0.1), CrossEntropyLoss(reduction="sum"), loader)
    with pytest.raises(ValueError, match="model.parameters"):
        Trainer(layer, SGD(Linear(5, 3).parameters(), lr=0.1), CrossEntropyLoss(), loader)
    with pytest.raises(TypeError, match="schedule"):
        Trainer(layer, SGD(layer.parameters(), lr=0.1), CrossEntropyLoss(), loader, schedule=0.1)
    with pytest.raises(ValueError, match="max_grad_norm"):
        Trainer(layer, SGD(layer.parameters(), lr=0.1), CrossEntropyLoss(), loader, max_grad_norm=-1)


# --- checkpoints ------------------------------------------------------------------------------------


def digits_like_run(x, y, weight_seed, lr=3e-3, epochs_planned=4, make_optimizer=AdamW):
    model = Sequential(Linear(x.shape[1], 16, seed=weight_seed), ReLU(), Linear(16, 4, seed=weight_seed + 1))
    loader = DataLoader(TensorDataset(x, y), batch_size=7, shuffle=True, seed=11)
    total = epochs_planned * len(loader)
    return Trainer(model, make_optimizer(model.parameters(), lr=lr), CrossEntropyLoss(), loader,
                   schedule=lambda step: cosine_schedule(step, total, 0.02, warmup_steps=3), max_grad_norm=0.5)


@pytest.mark.parametrize("make_optimizer", [AdamW, Adam, lambda ps, lr: SGD(ps, lr=lr, momentum=0.9)],
                         ids=["adamw", "adam", "sgd-momentum"])
def test_four_epochs_equal_two_plus_checkpoint_plus_two(tmp_path, make_optimizer):
    x, y = small_classification(n=45, features=6, classes=4, seed=5)
    straight = digits_like_run(x, y, weight_seed=0, make_optimizer=make_optimizer)
    straight.fit(4)

    halfway = digits_like_run(x, y, weight_seed=0, make_optimizer=make_optimizer)
    halfway.fit(2)
    halfway.save_checkpoint(tmp_path / "run.npz")
    resumed = digits_like_run(x, y, weight_seed=50, lr=0.5, make_optimizer=make_optimizer)   # other weights, other lr
    arrays_before = [p.data for p in resumed.model.parameters()]
    resumed.load_checkpoint(tmp_path / "run.npz")
    assert all(p.data is a for p, a in zip(resumed.model.parameters(), arrays_before))        # loaded in place
    resumed.fit(2)

    for a, b in zip(resumed.model.parameters(), straight.model.parameters()):
        np.testing.assert_array_equal(a.data, b.data)
    assert resumed.history == straight.history
    assert (resumed.epoch, resumed.step) == (straight.epoch, straight.step)


def test_without_the_shuffling_state_the_run_would_differ(tmp_path):
    # the oracle above is only meaningful if the loader's state matters: show that it does
    x, y = small_classification(n=45, features=6, classes=4, seed=5)
    straight = digits_like_run(x, y, weight_seed=0)
    straight.fit(4)
    halfway = digits_like_run(x, y, weight_seed=0)
    halfway.fit(2)
    state = halfway.state_dict()
    fresh = digits_like_run(x, y, weight_seed=0)
    fresh_rng_state = {k: state[k] for k in state if k.startswith("rng.")}
    for key in fresh_rng_state:
        state[key] = json.dumps(np.random.default_rng(11).bit_generator.state)   # a loader as if just created
    fresh.load_state_dict(state)
    fresh.fit(2)
    assert not np.array_equal(fresh.model.parameters()[0].data, straight.model.parameters()[0].data)


def test_checkpoint_file_is_plain_npz_without_pickle(tmp_path):
    x, y = small_classification()
    trainer = digits_like_run(x, y, weight_seed=0)
    trainer.fit(1)
    path = tmp_path / "plain.npz"
    trainer.save_checkpoint(path)
    with np.load(path, allow_pickle=False) as stored:       # raises if anything needed pickle
        keys = set(stored.files)
        assert str(stored["format"]) == CHECKPOINT_FORMAT
        assert all(stored[k].dtype != object for k in keys)
    assert {"epoch", "step", "history", "num_params", "param.0", "optimizer.kind", "optimizer.m.0"} <= keys
    assert any(k.startswith("rng.") for k in keys)
    with zipfile.ZipFile(path) as archive:
        assert all(name.endswith(".npy") for name in archive.namelist())
    assert not (tmp_path / "plain.partial.npz").exists()


def test_checkpoint_from_a_different_model_is_refused_and_changes_nothing(tmp_path):
    x, y = small_classification(n=20, features=6, classes=4)
    digits_like_run(x, y, weight_seed=0).save_checkpoint(tmp_path / "a.npz")
    wider = Sequential(Linear(6, 17, seed=0), ReLU(), Linear(17, 4, seed=1))
    other = Trainer(wider, AdamW(wider.parameters()), CrossEntropyLoss(), DataLoader(TensorDataset(x, y), batch_size=7, shuffle=True, seed=11))
    before = [p.data.copy() for p in wider.parameters()]
    with pytest.raises(ValueError, match="different model"):
        other.load_checkpoint(tmp_path / "a.npz")
    for p, b in zip(wider.parameters(), before):
        np.testing.assert_array_equal(p.data, b)
    deeper = Sequential(Linear(6, 16, seed=0), ReLU(), Linear(16, 16, seed=1), ReLU(), Linear(16, 4, seed=2))
    with pytest.raises(ValueError, match="different model"):
        Trainer(deeper, AdamW(deeper.parameters()), CrossEntropyLoss(), other.train_loader).load_checkpoint(tmp_path / "a.npz")


def test_checkpoint_with_another_optimizer_or_not_a_checkpoint_is_refused(tmp_path):
    x, y = small_classification(n=20, features=6, classes=4)
    digits_like_run(x, y, weight_seed=0).save_checkpoint(tmp_path / "adamw.npz")
    with pytest.raises(ValueError, match="AdamW"):
        digits_like_run(x, y, weight_seed=0, make_optimizer=Adam).load_checkpoint(tmp_path / "adamw.npz")
    np.savez(tmp_path / "weights.npz", w=np.zeros(3))
    with pytest.raises(ValueError, match="not a tinytorch checkpoint"):
        digits_like_run(x, y, weight_seed=0).load_checkpoint(tmp_path / "weights.npz")
    with pytest.raises(ValueError, match=".npz"):
        digits_like_run(x, y, weight_seed=0).save_checkpoint(tmp_path / "run.ckpt")


def test_pickled_checkpoint_is_not_loaded(tmp_path):
    x, y = small_classification(n=20, features=6, classes=4)
    trainer = digits_like_run(x, y, weight_seed=0)
    state = trainer.state_dict()
    state["format"] = np.array([CHECKPOINT_FORMAT], dtype=object)     # would need pickle to read
    np.savez(tmp_path / "evil.npz", **state)
    with pytest.raises(ValueError, match="pickle"):
        trainer.load_checkpoint(tmp_path / "evil.npz")


# --- the real thing: the digits ---------------------------------------------------------------------


def test_digits_mlp_reaches_95_percent_on_held_out_images_deterministically():
    images, labels = load_digits_dataset()
    x_train, x_test, y_train, y_test = train_test_split(images, labels, test_fraction=0.2, seed=0, stratify=labels)
    scaler = Standardizer().fit(x_train)
    x_train, x_test = scaler.apply(x_train), scaler.apply(x_test)
    results = []
    for _ in range(2):                                                        # twice: deterministic
        model = Sequential(Linear(64, 128, seed=0), ReLU(), Linear(128, 10, seed=1))
        loader = DataLoader(TensorDataset(x_train, y_train), batch_size=32, shuffle=True, seed=0)
        epochs = 12
        total = epochs * len(loader)
        trainer = Trainer(model, AdamW(model.parameters(), lr=3e-3), CrossEntropyLoss(), loader,
                          schedule=lambda step, total=total: cosine_schedule(step, total, 3e-3, warmup_steps=45),
                          max_grad_norm=5.0)
        trainer.fit(epochs)
        results.append((trainer.evaluate(DataLoader(TensorDataset(x_test, y_test), batch_size=512)),
                        [p.data.copy() for p in model.parameters()]))
    (first, weights_a), (second, weights_b) = results
    assert first["accuracy"] >= 0.95, f"held-out accuracy {first['accuracy']:.2%}"
    assert first == second
    for a, b in zip(weights_a, weights_b):
        np.testing.assert_array_equal(a, b)
