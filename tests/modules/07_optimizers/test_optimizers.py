"""Package tests for tinytorch.core.optimizers: SGD, Adam, AdamW against float64 formulas, in-place
updates, skipping, state_dict round trips (also through np.savez), bad input."""

import numpy as np
import pytest

import tinytorch.core.autograd  # noqa: F401  (backward() for the end-to-end test)
from tinytorch.core.layers import Linear
from tinytorch.core.losses import CrossEntropyLoss
from tinytorch.core.optimizers import SGD, Adam, AdamW, Optimizer
from tinytorch.core.tensor import Tensor

# --- oracles: the published update rules, in float64, written independently of the package ----------


def sgd_reference(w, grads, rates, momentum=0.0, weight_decay=0.0):
    w, velocity = w.astype(np.float64), np.zeros(w.shape)
    for g, lr in zip(grads, rates):
        g = g.astype(np.float64) + weight_decay * w
        velocity = momentum * velocity + g
        w = w - lr * velocity
    return w


def adam_reference(w, grads, rates, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled=False):
    w = w.astype(np.float64)
    m, v = np.zeros(w.shape), np.zeros(w.shape)
    b1, b2 = betas
    for t, (g, lr) in enumerate(zip(grads, rates), start=1):
        g = g.astype(np.float64)
        if decoupled:
            w = w - lr * weight_decay * w
        else:
            g = g + weight_decay * w
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        w = w - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
    return w


def run(optimizer, param, grads, rates):
    for g, lr in zip(grads, rates):
        optimizer.lr = lr
        param.grad = Tensor(g, dtype=g.dtype)
        optimizer.step()
    return param.data


def problem(shape=(3, 4), steps=5, seed=0, dtype=np.float32):
    gen = np.random.default_rng(seed)
    w = gen.standard_normal(shape).astype(dtype)
    grads = [(gen.standard_normal(shape) * gen.uniform(0.1, 3.0)).astype(dtype) for _ in range(steps)]
    rates = list(gen.uniform(0.01, 0.1, steps))
    return w, grads, rates


def param_from(w):
    return Tensor(w.copy(), dtype=w.dtype, requires_grad=True)


# --- the update rules ----------------------------------------------------------------------------


@pytest.mark.parametrize("momentum, weight_decay", [(0.0, 0.0), (0.9, 0.0), (0.0, 0.05), (0.5, 0.01)])
def test_sgd_matches_formula(momentum, weight_decay):
    w, grads, rates = problem()
    p = param_from(w)
    out = run(SGD([p], lr=rates[0], momentum=momentum, weight_decay=weight_decay), p, grads, rates)
    np.testing.assert_allclose(out, sgd_reference(w, grads, rates, momentum, weight_decay), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("betas, eps, weight_decay", [((0.9, 0.999), 1e-8, 0.0), ((0.5, 0.9), 1e-2, 0.0),
                                                      ((0.9, 0.999), 1e-8, 0.1)])
def test_adam_matches_formula(betas, eps, weight_decay):
    w, grads, rates = problem(seed=1)
    p = param_from(w)
    out = run(Adam([p], lr=rates[0], betas=betas, eps=eps, weight_decay=weight_decay), p, grads, rates)
    np.testing.assert_allclose(out, adam_reference(w, grads, rates, betas, eps, weight_decay), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("weight_decay", [0.0, 0.01, 0.3])
def test_adamw_matches_decoupled_formula(weight_decay):
    w, grads, rates = problem(seed=2)
    p = param_from(w)
    out = run(AdamW([p], lr=rates[0], weight_decay=weight_decay), p, grads, rates)
    expected = adam_reference(w, grads, rates, weight_decay=weight_decay, decoupled=True)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    if weight_decay:
        coupled = adam_reference(w, grads, rates, weight_decay=weight_decay, decoupled=False)
        assert np.max(np.abs(expected - coupled)) > 1e-4     # the test can tell L2 from decoupled


def test_float64_problem_is_tight_and_stays_float64():
    w, grads, rates = problem(seed=3, dtype=np.float64)
    for make, reference in [(lambda ps: SGD(ps, lr=0.1, momentum=0.9), lambda: sgd_reference(w, grads, rates, 0.9)),
                            (lambda ps: Adam(ps), lambda: adam_reference(w, grads, rates))]:
        p = param_from(w)
        out = run(make([p]), p, grads, rates)
        assert out.dtype == np.float64
        np.testing.assert_allclose(out, reference(), rtol=1e-12, atol=1e-14)


def test_adam_first_step_is_lr_times_sign_whatever_the_scale():
    g = np.array([1e-4, -1.0, 50.0, -1e4], dtype=np.float32)
    p = param_from(np.zeros(4, dtype=np.float32))
    p.grad = Tensor(g)
    Adam([p], lr=0.01).step()
    np.testing.assert_allclose(p.data, -0.01 * np.sign(g), rtol=1e-3)


@pytest.mark.parametrize("make, atol", [
    (lambda ps: SGD(ps, lr=0.09), 1e-3),
    (lambda ps: SGD(ps, lr=0.09, momentum=0.9), 1e-6),
    (lambda ps: Adam(ps, lr=0.05), 2e-2),
    (lambda ps: AdamW(ps, lr=0.05, weight_decay=0.0), 2e-2),
], ids=["sgd", "momentum", "adam", "adamw"])
def test_each_optimizer_finds_a_known_minimum(make, atol):
    # f(w) = 1/2 Σ a (w - c)², ill-conditioned (curvatures 0.1 .. 10); minimum at c
    curvature, centre = np.array([1.0, 10.0, 0.1]), np.array([2.0, -1.0, 0.5])
    p = Tensor(np.zeros(3), dtype=np.float64, requires_grad=True)
    optimizer = make([p])
    for _ in range(1500):
        p.grad = Tensor(curvature * (p.data - centre), dtype=np.float64)
        optimizer.step()
    np.testing.assert_allclose(p.data, centre, atol=atol)


# --- in place, dtype, skipping ---------------------------------------------------------------------


@pytest.mark.parametrize("make", [lambda ps: SGD(ps, lr=0.1), lambda ps: SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.1),
                                  lambda ps: Adam(ps, weight_decay=0.1), lambda ps: AdamW(ps)],
                         ids=["sgd", "sgd-momentum-wd", "adam-l2", "adamw"])
def test_updates_in_place_keep_dtype_and_leave_grad_alone(make):
    w, grads, _ = problem(seed=4)
    p = param_from(w)
    array_before, view = p.data, p.data[1:]
    optimizer = make([p])
    p.grad = Tensor(grads[0])
    optimizer.step()
    assert p.data is array_before and p.data.dtype == np.float32
    assert np.shares_memory(view, p.data) and not np.array_equal(p.data, w)
    np.testing.assert_array_equal(view, p.data[1:])
    np.testing.assert_array_equal(p.grad.data, grads[0])


def test_parameters_without_gradient_or_frozen_do_not_move_or_count():
    moving, untouched, frozen = (param_from(np.ones(3, dtype=np.float32)) for _ in range(3))
    frozen.grad = Tensor(np.ones(3, dtype=np.float32))
    frozen.requires_grad = False
    moving.grad = Tensor(np.ones(3, dtype=np.float32))
    optimizer = Adam([moving, untouched, frozen], lr=0.1)
    optimizer.step()
    np.testing.assert_array_equal(untouched.data, np.ones(3))
    np.testing.assert_array_equal(frozen.data, np.ones(3))
    assert optimizer.steps == [1, 0, 0]
    assert not np.any(optimizer.state[1]["m"]) and not np.any(optimizer.state[2]["v"])


def test_zero_grad_sets_none_and_backward_starts_fresh():
    layer = Linear(4, 3, seed=0)
    x, y = Tensor(np.random.default_rng(0).standard_normal((5, 4))), np.array([0, 1, 2, 0, 1])
    optimizer = SGD(layer.parameters(), lr=0.1)
    CrossEntropyLoss()(layer(x), y).backward()
    first = layer.weight.grad.data.copy()
    optimizer.zero_grad()
    assert all(p.grad is None for p in layer.parameters())
    CrossEntropyLoss()(layer(x), y).backward()
    np.testing.assert_array_equal(layer.weight.grad.data, first)    # not 2x: nothing stale was added


def test_training_steps_lower_a_real_loss():
    gen = np.random.default_rng(1)
    x, y = Tensor(gen.standard_normal((64, 8))), gen.integers(0, 4, 64)
    for make in (lambda ps: SGD(ps, lr=0.5, momentum=0.9), lambda ps: Adam(ps, lr=0.05), lambda ps: AdamW(ps, lr=0.05)):
        layer = Linear(8, 4, seed=2)
        optimizer = make(layer.parameters())
        losses = []
        for _ in range(30):
            optimizer.zero_grad()
            loss = CrossEntropyLoss()(layer(x), y)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.data))
        assert losses[-1] < 0.8 * losses[0], losses


# --- state_dict ------------------------------------------------------------------------------------

MAKERS = {
    "sgd": lambda ps, lr=0.05: SGD(ps, lr=lr, momentum=0.9, weight_decay=1e-3),
    "adam": lambda ps, lr=0.05: Adam(ps, lr=lr, weight_decay=1e-3),
    "adamw": lambda ps, lr=0.05: AdamW(ps, lr=lr),
}


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_resume_through_savez_is_bit_identical(kind, tmp_path):
    w, grads, rates = problem(shape=(6, 5), steps=8, seed=5)
    straight = param_from(w)
    run(MAKERS[kind]([straight]), straight, grads, rates)

    first = param_from(w)
    optimizer = MAKERS[kind]([first])
    run(optimizer, first, grads[:3], rates[:3])
    np.savez(tmp_path / "opt.npz", **optimizer.state_dict())
    with np.load(tmp_path / "opt.npz", allow_pickle=False) as stored:
        loaded = dict(stored)
    resumed = param_from(first.data)
    fresh = MAKERS[kind]([resumed], lr=0.9)
    fresh.load_state_dict(loaded)
    run(fresh, resumed, grads[3:], rates[3:])
    np.testing.assert_array_equal(resumed.data, straight.data)


def test_state_dict_holds_copies_in_and_out():
    p = param_from(np.ones(3, dtype=np.float32))
    optimizer = Adam([p], lr=0.1)
    p.grad = Tensor(np.ones(3, dtype=np.float32))
    optimizer.step()
    saved = optimizer.state_dict()
    snapshot = {k: np.copy(v) for k, v in saved.items()}
    optimizer.step()                                    # later steps must not reach into the saved dict
    for key in snapshot:
        np.testing.assert_array_equal(saved[key], snapshot[key])
    twin = Adam([param_from(np.ones(3, dtype=np.float32))])
    twin.load_state_dict(saved)
    saved["m.0"][:] = 123.0                             # nor may the caller's dict reach into the optimizer
    assert not np.any(twin.state[0]["m"] == 123.0)
    assert twin.state[0]["m"].dtype == np.float32 and twin.steps == [1] and twin.lr == 0.1


def test_state_dict_keys_and_plain_values():
    p, q = param_from(np.ones((2, 3), dtype=np.float32)), param_from(np.ones(3, dtype=np.float32))
    saved = SGD([p, q], lr=0.1, momentum=0.9).state_dict()
    assert set(saved) == {"kind", "num_params", "lr", "momentum", "weight_decay", "shape.0", "shape.1",
                          "step.0", "step.1", "velocity.0", "velocity.1"}
    assert saved["kind"] == "SGD" and saved["num_params"] == 2
    np.testing.assert_array_equal(saved["shape.0"], [2, 3])
    assert set(SGD([p], lr=0.1).state_dict()) == {"kind", "num_params", "lr", "momentum", "weight_decay",
                                                  "shape.0", "step.0"}


@pytest.mark.parametrize("other, why", [
    (lambda: Adam([param_from(np.zeros((4, 3), dtype=np.float32))]), "shape"),
    (lambda: Adam([param_from(np.zeros((3, 4), dtype=np.float32)), param_from(np.zeros(2, dtype=np.float32))]), "parameters"),
    (lambda: AdamW([param_from(np.zeros((3, 4), dtype=np.float32))]), "Adam"),
    (lambda: SGD([param_from(np.zeros((3, 4), dtype=np.float32))], lr=0.1, momentum=0.9), "Adam"),
], ids=["shape", "count", "subclass", "kind"])
def test_load_refuses_a_state_for_something_else(other, why):
    saved = Adam([param_from(np.zeros((3, 4), dtype=np.float32))]).state_dict()
    target = other()
    before = target.state_dict()
    with pytest.raises(ValueError, match=why):
        target.load_state_dict(saved)
    after = target.state_dict()
    for key in before:
        np.testing.assert_array_equal(after[key], before[key])


def test_load_refuses_other_momentum_setting_and_junk():
    saved = SGD([param_from(np.zeros(3, dtype=np.float32))], lr=0.1, momentum=0.9).state_dict()
    with pytest.raises(ValueError, match="velocity"):
        SGD([param_from(np.zeros(3, dtype=np.float32))], lr=0.1).load_state_dict(saved)
    with pytest.raises(ValueError, match="state_dict"):
        SGD([param_from(np.zeros(3, dtype=np.float32))], lr=0.1).load_state_dict({"weights": np.zeros(3)})


# --- bad input -------------------------------------------------------------------------------------


def test_bad_parameter_lists_are_refused_with_advice():
    w = param_from(np.ones(2, dtype=np.float32))
    with pytest.raises(ValueError, match="no parameters"):
        SGD([], lr=0.1)
    with pytest.raises(ValueError, match="no parameters"):
        Adam(iter(()))
    with pytest.raises(TypeError, match="Tensor"):
        Adam([np.ones(3)])
    with pytest.raises(TypeError, match="single Tensor"):
        Adam(w)
    with pytest.raises(TypeError, match="floating"):
        SGD([Tensor(np.arange(3))], lr=0.1)
    with pytest.raises(ValueError, match="twice"):
        SGD([w, w], lr=0.1)


@pytest.mark.parametrize("make, word", [
    (lambda ps: SGD(ps, lr=-1.0), "lr"), (lambda ps: SGD(ps, lr=float("nan")), "lr"),
    (lambda ps: SGD(ps, lr=0.1, momentum=1.0), "momentum"), (lambda ps: SGD(ps, lr="0.1"), "lr"),
    (lambda ps: Adam(ps, betas=(0.9, 1.0)), "betas"), (lambda ps: Adam(ps, betas=0.9), "betas"),
    (lambda ps: Adam(ps, eps=-1e-8), "eps"), (lambda ps: AdamW(ps, weight_decay=-0.1), "weight_decay"),
])
def test_bad_hyperparameters_are_refused_by_name(make, word):
    with pytest.raises(ValueError, match=word):
        make([param_from(np.ones(2, dtype=np.float32))])


def test_gradient_of_the_wrong_shape_is_refused():
    p = param_from(np.ones((2, 3), dtype=np.float32))
    p.grad = Tensor(np.ones(3, dtype=np.float32))
    with pytest.raises(ValueError, match=r"\(3,\).*\(2, 3\)"):
        SGD([p], lr=0.1).step()


def test_base_class_has_no_step():
    with pytest.raises(NotImplementedError, match="step"):
        Optimizer([param_from(np.ones(2, dtype=np.float32))], lr=0.1).step()


# --- PyTorch as an oracle, where it is installed (never a dependency) -----------------------------


@pytest.mark.parametrize("kind", ["sgd", "adam", "adamw"])
def test_matches_pytorch_when_installed(kind):
    torch = pytest.importorskip("torch")
    w, grads, rates = problem(seed=6, dtype=np.float64)
    p = param_from(w)
    ours = {"sgd": SGD([p], lr=0.1, momentum=0.9, weight_decay=0.01), "adam": Adam([p], lr=0.1, weight_decay=0.01),
            "adamw": AdamW([p], lr=0.1, weight_decay=0.01)}[kind]
    theirs_param = torch.tensor(w, requires_grad=True)
    theirs = {"sgd": lambda: torch.optim.SGD([theirs_param], lr=0.1, momentum=0.9, weight_decay=0.01),
              "adam": lambda: torch.optim.Adam([theirs_param], lr=0.1, weight_decay=0.01),
              "adamw": lambda: torch.optim.AdamW([theirs_param], lr=0.1, weight_decay=0.01)}[kind]()
    for g, lr in zip(grads, rates):
        ours.lr = lr
        for group in theirs.param_groups:
            group["lr"] = lr
        p.grad = Tensor(g, dtype=np.float64)
        theirs_param.grad = torch.tensor(g)
        ours.step()
        theirs.step()
    np.testing.assert_allclose(p.data, theirs_param.detach().numpy(), rtol=1e-12, atol=1e-13)
