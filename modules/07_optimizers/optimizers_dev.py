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
# # Module 07: Optimizers
#
# Module 06 gives every parameter `p` a gradient `p.grad`: the direction in which the loss grows
# fastest. An **optimizer** turns gradients into steps. The simplest one walks downhill,
# `p ← p − lr·g`; the ones everybody trains with remember the past (momentum) or rescale each
# weight by how large its gradients have been (Adam). This module builds the three that cover
# almost every paper, with PyTorch's exact formulas, so a model trained here behaves like one
# trained there.
#
# ```
#   for each batch:                                           one optimizer, many parameters
#       loss = loss_fn(model(x), y)        module 04           ┌───────────────────────────────┐
#       optimizer.zero_grad()              this module         │ params: [W1, b1, W2, b2]      │
#       loss.backward()                    module 06           │ state:  per parameter, arrays │
#       optimizer.step()                   this module ──────▶ │         shaped like it (v, m) │
#                                                              │ steps:  updates per parameter │
#                                                              └───────────────────────────────┘
# ```
#
# | part | you write | the point |
# |---|---|---|
# | 1 | `Optimizer.__init__`, `zero_grad` | the parameter list, checked once; gradients cleared before each backward |
# | 2 | `SGD.step` | `g += wd·p`, `v = μ·v + g`, `p −= lr·v`, **in place** |
# | 3 | `Adam.apply_weight_decay`, `Adam.step` | moving averages of `g` and `g²`, and the bias correction that makes the first steps right |
# | 4 | `AdamW.apply_weight_decay` | weight decay taken out of the gradient: `p −= lr·wd·p` |
# | 5 | `state_dict`, `load_state_dict` | an optimizer's memory as plain arrays, so a resumed run takes bit-identical steps |
#
# Two rules hold throughout. Parameters are updated **in place** (`p.data -= ...`): a model, a
# checkpoint writer or a tied weight may all hold the same array, and rebinding `p.data` to a new
# array would leave them all looking at the old values. And the update keeps the parameter's
# dtype: a float32 model stays float32.

# %%
#| default_exp core.optimizers

# %%
#| export
import math
import numbers

import numpy as np

from tinytorch.core.tensor import Tensor

# %%
import tinytorch.core.autograd   # noqa: F401  (installs backward(): used by the analysis, not by the optimizers)
from tinytorch.core.layers import Linear
from tinytorch.core.losses import CrossEntropyLoss

# %% [markdown]
# ## Given: checking a hyperparameter
#
# Every rate an optimizer takes must be a real, finite number in a range; a typo such as
# `lr=-0.1` or `betas=(0.9, 1.0)` would otherwise train silently wrong. This code is given.

# %%
#| export
def check_hyperparameter(name: str, value, upper: float | None = None) -> float:
    """`value` as a float, or a ValueError unless it is a finite real number in [0, upper)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if value < 0 or (upper is not None and value >= upper):
        allowed = f"[0, {upper:g})" if upper is not None else ">= 0"
        raise ValueError(f"{name} must be in {allowed}, got {value!r}")
    return float(value)

# %% [markdown]
# ## Part 1: the base class
#
# `Optimizer(params, lr)` keeps
#
# | attribute | what it holds |
# |---|---|
# | `params` | the parameters, as a list (`model.parameters()` or any iterable of Tensors) |
# | `lr` | the learning rate, a float (a schedule may change it between steps, module 08) |
# | `steps` | a list: how many updates each parameter has received (Adam's bias correction needs it) |
# | `state` | a list of dicts, one per parameter: name → array shaped like the parameter (`{}` to start) |
#
# Check the parameters once, here, with errors that say what to do:
#
# - a single `Tensor` instead of a list, or no parameters at all: a `TypeError` / `ValueError`
#   (an optimizer with nothing to update is always a bug, such as a model whose `parameters()`
#   forgot its layers);
# - an element that is not a `Tensor`, or whose dtype is not floating: `TypeError`;
# - the same Tensor twice: `ValueError` (it would be stepped twice per `step()`);
# - `lr` through `check_hyperparameter`.
#
# `zero_grad()` clears every gradient: set `p.grad = None` (as PyTorch does by default; module
# 06 starts a fresh gradient the next time, instead of adding to a stale one). Forgetting it is
# the classic training bug: gradients accumulate across batches and the steps grow without bound.
#
# `gradient_of(p)` is given: it returns the gradient as an array, or `None` when `p` must not
# move (no gradient, or `requires_grad` switched off: a frozen layer). `state_dict` and
# `load_state_dict` are Part 5: leave them for now.

# %% nbgrader={"grade": false, "grade_id": "optimizer-base", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
class Optimizer:
    """Holds parameters and per-parameter state; subclasses write step().

    hyperparameters: the attribute names state_dict() saves besides the per-parameter state.
    """

    hyperparameters = ("lr",)

    def __init__(self, params, lr: float):
        ### BEGIN SOLUTION
        if isinstance(params, Tensor):
            raise TypeError("an optimizer takes a list of parameters, got a single Tensor; pass [tensor] "
                            "or model.parameters()")
        collected = list(params)
        if not collected:
            raise ValueError("the optimizer got no parameters; pass model.parameters() of a model that has "
                             "layers with weights")
        seen = set()
        for position, param in enumerate(collected):
            if not isinstance(param, Tensor):
                raise TypeError(f"parameter {position} is a {type(param).__name__}, not a Tensor; pass "
                                "model.parameters() (or wrap arrays in Tensor(..., requires_grad=True))")
            if not np.issubdtype(param.dtype, np.floating):
                raise TypeError(f"parameter {position} has dtype {param.dtype}; only floating tensors can "
                                "be trained (create it with dtype=np.float32)")
            if id(param) in seen:
                raise ValueError(f"parameter {position} appears twice in the list; each one must be listed "
                                 "once, or step() would update it twice")
            seen.add(id(param))
        self.params = collected
        self.lr = check_hyperparameter("lr", lr)
        self.steps = [0] * len(collected)
        self.state = [{} for _ in collected]
        ### END SOLUTION

    def gradient_of(self, param: Tensor):
        """param's gradient as an array, or None when param must not move (no gradient, or frozen)."""
        if param.grad is None or not param.requires_grad:
            return None
        grad = param.grad.data if isinstance(param.grad, Tensor) else np.asarray(param.grad)
        if grad.shape != param.shape:
            raise ValueError(f"a gradient of shape {grad.shape} for a parameter of shape {param.shape}; "
                             "the gradient must have the parameter's shape")
        return grad

    def zero_grad(self) -> None:
        """Clear every parameter's gradient (before the next backward pass)."""
        ### BEGIN SOLUTION
        for trainable in self.params:
            trainable.grad = None          # backward() starts a fresh gradient next time
        ### END SOLUTION

    def step(self) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not define step(): subclass Optimizer and write it")

    def state_dict(self) -> dict:
        """Everything step() depends on besides the parameters, as plain numbers, strings and arrays (copies)."""
        ### BEGIN SOLUTION
        saved = {"kind": type(self).__name__, "num_params": len(self.params)}
        for name in self.hyperparameters:
            saved[name] = getattr(self, name)
        for index, param in enumerate(self.params):
            saved[f"shape.{index}"] = np.array(param.shape, dtype=np.int64)
            saved[f"step.{index}"] = self.steps[index]
            for buffer_name, buffer in self.state[index].items():
                saved[f"{buffer_name}.{index}"] = buffer.copy()
        return saved
        ### END SOLUTION

    def load_state_dict(self, state: dict) -> None:
        """Restore what state_dict() returned (also after np.savez/np.load); ValueError if it is for other parameters."""
        ### BEGIN SOLUTION
        for required in ("kind", "num_params"):
            if required not in state:
                raise ValueError(f"not an optimizer state dict: it has no {required!r} entry; pass what "
                                 "state_dict() returned")
        saved_kind = str(state["kind"])
        if saved_kind != type(self).__name__:
            raise ValueError(f"this state dict was saved by {saved_kind}, not {type(self).__name__}; load it "
                             f"into a {saved_kind}")
        if int(state["num_params"]) != len(self.params):
            raise ValueError(f"the state dict is for {int(state['num_params'])} parameters but this optimizer "
                             f"has {len(self.params)}; it was saved for a different model")
        for index, param in enumerate(self.params):
            saved_shape = tuple(int(n) for n in np.asarray(state.get(f"shape.{index}", ())))
            if saved_shape != param.shape:
                raise ValueError(f"parameter {index} has shape {param.shape} but the state dict was saved for "
                                 f"shape {saved_shape}; it was saved for a different model")
        expected = set(self.state_dict())
        missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
        if missing or unexpected:
            raise ValueError(f"the state dict does not match this {type(self).__name__}: missing {missing}, "
                             f"unexpected {unexpected} (was it created with other settings, e.g. momentum?)")
        for index, buffers in enumerate(self.state):
            for buffer_name, buffer in buffers.items():
                if np.shape(state[f"{buffer_name}.{index}"]) != buffer.shape:
                    raise ValueError(f"{buffer_name}.{index} has shape {np.shape(state[f'{buffer_name}.{index}'])}, "
                                     f"expected {buffer.shape}")
        # everything checked: only now change anything, so a refused state dict leaves the optimizer as it was
        for name in self.hyperparameters:
            setattr(self, name, float(state[name]))
        for index, buffers in enumerate(self.state):
            self.steps[index] = int(state[f"step.{index}"])
            for buffer_name, buffer in buffers.items():
                np.copyto(buffer, state[f"{buffer_name}.{index}"])
        ### END SOLUTION

    def __repr__(self) -> str:
        settings = ", ".join(f"{name}={getattr(self, name):g}" for name in self.hyperparameters)
        return f"{type(self).__name__}({len(self.params)} parameters, {settings})"


# %% [markdown]
# ### Test: the parameter list and `zero_grad`

# %% nbgrader={"grade": true, "grade_id": "test-optimizer-base", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def test_unit_optimizer_checks_its_parameters():
    def expect_error(kind, fn, *args, mentions=""):
        try:
            fn(*args)
        except kind as err:
            assert mentions.lower() in str(err).lower(), f"the error should mention {mentions!r}: {err}"
        else:
            raise AssertionError(f"{fn.__name__}{args!r} must raise {kind.__name__}")

    w = Tensor(np.ones((2, 3), dtype=np.float32), requires_grad=True)
    expect_error(ValueError, Optimizer, [], 0.1, mentions="parameters")
    expect_error(TypeError, Optimizer, [np.ones(3)], 0.1, mentions="Tensor")
    expect_error(TypeError, Optimizer, w, 0.1)
    expect_error(ValueError, Optimizer, [w, w], 0.1)
    expect_error(ValueError, Optimizer, [w], -0.1, mentions="lr")
    optimizer = Optimizer((w,), 0.1)                     # any iterable, kept as a list
    assert isinstance(optimizer.params, list) and len(optimizer.params) == 1 and optimizer.params[0] is w

def test_unit_zero_grad_clears_every_gradient():
    w = Tensor(np.ones((2, 3), dtype=np.float32), requires_grad=True)
    b = Tensor(np.zeros(3, dtype=np.float32), requires_grad=True)
    w.grad = Tensor(np.full((2, 3), 5.0, dtype=np.float32))
    b.grad = Tensor(np.ones(3, dtype=np.float32))
    optimizer = Optimizer([w, b], lr=0.1)
    optimizer.zero_grad()
    for param in (w, b):
        assert param.grad is None or not np.any(np.asarray(param.grad.data)), "zero_grad must clear every gradient"

test_unit_optimizer_checks_its_parameters()
test_unit_zero_grad_clears_every_gradient()
### BEGIN HIDDEN TESTS
def test_hidden_optimizer_rejects_integer_parameters():
    try:
        Optimizer([Tensor(np.arange(3))], lr=0.1)
    except TypeError:
        pass
    else:
        raise AssertionError("an integer Tensor cannot be trained: TypeError")
    optimizer = Optimizer([Tensor(np.zeros(4, dtype=np.float32))], lr=0.5)
    assert optimizer.lr == 0.5 and list(optimizer.steps) == [0]

test_hidden_optimizer_rejects_integer_parameters()
### END HIDDEN TESTS


# %% [markdown]
# ## Part 2: SGD with momentum and weight decay
#
# PyTorch's SGD, for each parameter `p` with gradient `g`, at learning rate `lr`:
#
# ```
#   g ← g + wd·p          weight decay: the gradient of (wd/2)·‖p‖², an L2 penalty
#   v ← μ·v + g           momentum: a running sum of past gradients, older ones shrunk by μ
#   p ← p − lr·v          (with μ = 0 there is no v: p ← p − lr·g)
# ```
#
# `v` starts at zero, so the first step is `p − lr·g`. Momentum is why SGD crosses long, shallow
# valleys: gradients that keep pointing the same way add up (up to `1/(1−μ)` = 10× for μ = 0.9),
# gradients that flip sign cancel. Note where `lr` sits: *outside* `v`. Some textbooks write
# `v ← μ·v + lr·g; p ← p − v`, which is the same only while `lr` never changes; module 08's
# schedule changes it every step.
#
# Write `step()`:
#
# - skip a parameter whose `gradient_of` is `None` (it does not move, and its step count stays);
# - otherwise count the update in `self.steps[index]`;
# - add weight decay into a **new** array (`grad + wd·p`), never into `p.grad` itself: the
#   gradient belongs to the caller, who may still clip or log it;
# - update the velocity buffer `self.state[index]["velocity"]` in place (the constructor below
#   creates it, zeros in the parameter's dtype, only when `momentum > 0`);
# - update `p.data` **in place**: `param.data -= ...`, never `param.data = param.data - ...`.

# %% nbgrader={"grade": false, "grade_id": "sgd", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
class SGD(Optimizer):
    """Stochastic gradient descent with PyTorch's formulas: g += wd·p; v = μ·v + g; p -= lr·v."""

    hyperparameters = ("lr", "momentum", "weight_decay")

    def __init__(self, params, lr: float, momentum: float = 0.0, weight_decay: float = 0.0):
        super().__init__(params, lr)
        self.momentum = check_hyperparameter("momentum", momentum, upper=1.0)
        self.weight_decay = check_hyperparameter("weight_decay", weight_decay)
        if self.momentum:   # one velocity per parameter, in its dtype; plain SGD remembers nothing
            self.state = [{"velocity": np.zeros_like(param.data)} for param in self.params]

    def step(self) -> None:
        """One update of every parameter that has a gradient."""
        ### BEGIN SOLUTION
        for index, param in enumerate(self.params):
            grad = self.gradient_of(param)
            if grad is None:
                continue
            self.steps[index] += 1
            if self.weight_decay:
                grad = grad + self.weight_decay * param.data     # a new array: p.grad stays as it was
            if self.momentum:
                velocity = self.state[index]["velocity"]
                velocity *= self.momentum
                velocity += grad
                grad = velocity
            param.data -= self.lr * grad                         # in place: every alias sees the step
        ### END SOLUTION


# %% [markdown]
# ### Test: SGD against the formulas, written out in float64
#
# The oracle repeats the three lines above in float64 for a few steps with changing gradients
# and a learning rate that changes between steps (as a schedule does). A second Tensor built
# from the parameter, `Tensor(w)`, shares its array: if `step` replaced `w.data` by a new array,
# that alias would keep the old values.

# %% nbgrader={"grade": true, "grade_id": "test-sgd", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
def test_unit_sgd_step_in_place():
    w_start = np.array([[1.0, -2.0], [0.5, 3.0]], dtype=np.float32)
    g = np.array([[0.5, 1.0], [-1.0, 2.0]], dtype=np.float32)
    expected = w_start.astype(np.float64) - 0.1 * g.astype(np.float64)
    w = Tensor(w_start.copy(), requires_grad=True)
    alias = Tensor(w)                      # shares w's array, like a tied weight or a checkpoint writer
    w.grad = Tensor(g)
    SGD([w], lr=0.1).step()
    assert w.data.dtype == np.float32, f"a float32 parameter must stay float32, got {w.data.dtype}"
    np.testing.assert_allclose(w.data, expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(alias.data, w.data,
                                  err_msg="step() replaced w.data by a new array instead of updating it in place")

def test_unit_sgd_momentum_and_weight_decay():
    gen = np.random.default_rng(0)
    w_start = gen.standard_normal(5).astype(np.float32)
    grads = [gen.standard_normal(5).astype(np.float32) for _ in range(4)]
    rates = [0.1, 0.1, 0.05, 0.02]

    def sgd_by_hand(mu, wd):
        w_ref, running = w_start.astype(np.float64), np.zeros(5)
        for g_now, lr_now in zip(grads, rates):
            decayed = g_now.astype(np.float64) + wd * w_ref
            running = mu * running + decayed
            w_ref = w_ref - lr_now * running
        return w_ref

    for mu, wd in [(0.9, 0.0), (0.0, 0.1), (0.9, 0.01)]:
        w = Tensor(w_start.copy(), requires_grad=True)
        optimizer = SGD([w], lr=rates[0], momentum=mu, weight_decay=wd)
        for g_now, lr_now in zip(grads, rates):
            optimizer.lr = lr_now
            w.grad = Tensor(g_now)
            optimizer.step()
        np.testing.assert_allclose(w.data, sgd_by_hand(mu, wd), rtol=1e-5, atol=1e-6,
                                   err_msg=f"SGD(momentum={mu}, weight_decay={wd}) after 4 steps")

test_unit_sgd_step_in_place()
test_unit_sgd_momentum_and_weight_decay()
### BEGIN HIDDEN TESTS
def test_hidden_sgd_skips_missing_and_frozen_and_keeps_grad():
    w = Tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    no_grad_yet = Tensor(np.ones(2, dtype=np.float32), requires_grad=True)
    frozen = Tensor(np.ones(2, dtype=np.float32), requires_grad=True)
    g = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    w.grad = Tensor(g.copy())
    frozen.grad = Tensor(np.ones(2, dtype=np.float32))
    frozen.requires_grad = False
    optimizer = SGD([w, no_grad_yet, frozen], lr=0.5, momentum=0.9, weight_decay=0.1)
    optimizer.step()
    np.testing.assert_array_equal(no_grad_yet.data, np.ones(2, dtype=np.float32))
    np.testing.assert_array_equal(frozen.data, np.ones(2, dtype=np.float32))
    np.testing.assert_array_equal(w.grad.data, g, err_msg="step() must not change p.grad (weight decay goes into a new array)")
    np.testing.assert_allclose(w.data, 1.0 - 0.5 * (g + 0.1), rtol=1e-6)
    assert list(optimizer.steps) == [1, 0, 0]

def test_hidden_sgd_minimises_a_quadratic():
    # f(w) = 1/2 Σ a·(w − c)², gradient a·(w − c), minimum at w = c
    curvature = np.array([1.0, 10.0, 0.1])
    centre = np.array([2.0, -1.0, 0.5])
    w = Tensor(np.zeros(3), dtype=np.float64, requires_grad=True)
    optimizer = SGD([w], lr=0.09, momentum=0.9)
    for _ in range(300):
        w.grad = Tensor(curvature * (np.asarray(w.data) - centre), dtype=np.float64)
        optimizer.step()
    assert w.data.dtype == np.float64
    np.testing.assert_allclose(w.data, centre, atol=1e-3)

test_hidden_sgd_skips_missing_and_frozen_and_keeps_grad()
test_hidden_sgd_minimises_a_quadratic()
### END HIDDEN TESTS

# %% [markdown]
# ## Part 3: Adam, and why it needs a bias correction
#
# Adam keeps two moving averages per weight, of the gradient and of its square, and steps by
# their ratio: a weight whose gradients are consistently large moves no faster than one whose
# gradients are consistently small. At update number `t` of a parameter (`self.steps[index]`,
# counted from 1):
#
# ```
#   g ← apply_weight_decay(p, g)          Adam: g + wd·p (an L2 penalty, like SGD's)
#   m ← β₁·m + (1 − β₁)·g                 first moment: a smoothed gradient
#   v ← β₂·v + (1 − β₂)·g²                second moment: a smoothed squared gradient
#   m̂ = m / (1 − β₁ᵗ),  v̂ = v / (1 − β₂ᵗ)  bias correction
#   p ← p − lr · m̂ / (√v̂ + ε)
# ```
#
# Why the correction: `m` and `v` start at zero, so after one step `m = (1 − β₁)·g = 0.1·g` and
# `v = 0.001·g²`. Uncorrected, the first update would be `lr · 0.1·g / (0.0316·|g|) ≈ 3.2·lr`
# per weight, and `v`, averaging over about 1,000 steps, stays too small for hundreds of steps.
# Dividing by `1 − βᵗ` (the total weight the average has given to real gradients so far) makes
# `m̂ = g` and `v̂ = g²` after step one: the first update moves every weight by exactly `lr`, in
# the direction against its gradient, whatever the gradient's size.
#
# Write `apply_weight_decay` (return the gradient to use: `grad + wd·p` in a new array when
# `wd > 0`) and `step`, with the same skipping, counting and in-place rules as SGD. `m` and `v`
# are `self.state[index]["m"]` and `["v"]`, created by the constructor in the parameter's dtype.
#
# Written as above, the update allocates about ten parameter-sized temporaries per step, and for
# a model of a million weights allocating them costs more than the arithmetic. In-place
# operators (`*=`, `+=`) and NumPy's `out=` let one scratch array serve the whole update; the
# tests accept either, and the analysis at the end measures the step.

# %% nbgrader={"grade": false, "grade_id": "adam", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction; weight_decay is an L2 penalty added to the gradient."""

    hyperparameters = ("lr", "beta1", "beta2", "eps", "weight_decay")

    def __init__(self, params, lr: float = 1e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        super().__init__(params, lr)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        self.beta1 = check_hyperparameter("betas[0]", betas[0], upper=1.0)
        self.beta2 = check_hyperparameter("betas[1]", betas[1], upper=1.0)
        self.eps = check_hyperparameter("eps", eps)
        self.weight_decay = check_hyperparameter("weight_decay", weight_decay)
        self.state = [{"m": np.zeros_like(param.data), "v": np.zeros_like(param.data)} for param in self.params]

    def apply_weight_decay(self, param: Tensor, grad: np.ndarray) -> np.ndarray:
        """Adam's weight decay: the L2 penalty's gradient wd·p joins g (and is rescaled with it)."""
        ### BEGIN SOLUTION
        return grad + self.weight_decay * param.data if self.weight_decay else grad
        ### END SOLUTION

    def step(self) -> None:
        """One Adam update of every parameter that has a gradient."""
        ### BEGIN SOLUTION
        for index, param in enumerate(self.params):
            grad = self.gradient_of(param)
            if grad is None:
                continue
            self.steps[index] += 1
            t = self.steps[index]
            grad = self.apply_weight_decay(param, grad)
            first, second = self.state[index]["m"], self.state[index]["v"]
            # one scratch array for the whole update: each temporary NumPy would otherwise allocate
            # is a parameter-sized array, and allocating them costs more than the arithmetic
            work = np.multiply(grad, 1 - self.beta1)
            first *= self.beta1
            first += work                                        # m = β1·m + (1 − β1)·g
            np.multiply(grad, grad, out=work)
            work *= 1 - self.beta2
            second *= self.beta2
            second += work                                       # v = β2·v + (1 − β2)·g²
            np.sqrt(second, out=work)
            work /= math.sqrt(1 - self.beta2**t)
            work += self.eps                                     # √v̂ + ε, with v̂ = v / (1 − β2ᵗ)
            np.divide(first, work, out=work)
            work *= self.lr / (1 - self.beta1**t)                # lr · m̂ / (√v̂ + ε), with m̂ = m / (1 − β1ᵗ)
            param.data -= work
        ### END SOLUTION


# %% [markdown]
# ### Test: Adam against the formulas, and the size of its first step

# %% nbgrader={"grade": true, "grade_id": "test-adam", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
def test_unit_adam_first_step_moves_each_weight_by_lr():
    g = np.array([1e-3, -0.5, 10.0, -1e3], dtype=np.float32)
    w = Tensor(np.zeros(4, dtype=np.float32), requires_grad=True)
    alias = Tensor(w)
    w.grad = Tensor(g)
    Adam([w], lr=0.01).step()
    assert w.data.dtype == np.float32
    # bias-corrected: m̂ = g, v̂ = g², so the step is lr·g/(|g| + eps) = lr·sign(g) up to eps/|g|
    np.testing.assert_allclose(w.data, -0.01 * np.sign(g), rtol=1e-4)
    np.testing.assert_array_equal(alias.data, w.data, err_msg="Adam must update p.data in place")

def test_unit_adam_matches_hand_derivation():
    gen = np.random.default_rng(1)
    w_start = gen.standard_normal((2, 3)).astype(np.float32)
    grads = [gen.standard_normal((2, 3)).astype(np.float32) * scale for scale in (1.0, 0.1, 3.0, 1.0)]
    rates = [0.1, 0.05, 0.05, 0.01]

    def adam_by_hand(beta_1, beta_2, eps, wd):
        w_ref = w_start.astype(np.float64)
        avg, avg_sq = np.zeros((2, 3)), np.zeros((2, 3))
        for t, (g_now, lr_now) in enumerate(zip(grads, rates), start=1):
            g_ref = g_now.astype(np.float64) + wd * w_ref
            avg = beta_1 * avg + (1 - beta_1) * g_ref
            avg_sq = beta_2 * avg_sq + (1 - beta_2) * g_ref**2
            w_ref = w_ref - lr_now * (avg / (1 - beta_1**t)) / (np.sqrt(avg_sq / (1 - beta_2**t)) + eps)
        return w_ref

    for betas, eps, wd in [((0.9, 0.999), 1e-8, 0.0), ((0.8, 0.99), 1e-3, 0.0), ((0.9, 0.999), 1e-8, 0.1)]:
        w = Tensor(w_start.copy(), requires_grad=True)
        optimizer = Adam([w], lr=rates[0], betas=betas, eps=eps, weight_decay=wd)
        for g_now, lr_now in zip(grads, rates):
            optimizer.lr = lr_now
            w.grad = Tensor(g_now)
            optimizer.step()
        np.testing.assert_allclose(w.data, adam_by_hand(*betas, eps, wd), rtol=1e-5, atol=1e-6,
                                   err_msg=f"Adam(betas={betas}, eps={eps}, weight_decay={wd}) after 4 steps")

test_unit_adam_first_step_moves_each_weight_by_lr()
test_unit_adam_matches_hand_derivation()
### BEGIN HIDDEN TESTS
def test_hidden_adam_counts_steps_per_parameter():
    # a parameter that gets its first gradient late gets a first step of size lr too
    early = Tensor(np.zeros(2, dtype=np.float32), requires_grad=True)
    late = Tensor(np.zeros(2, dtype=np.float32), requires_grad=True)
    optimizer = Adam([early, late], lr=0.1)
    for _ in range(5):
        early.grad = Tensor(np.ones(2, dtype=np.float32))
        optimizer.step()
    np.testing.assert_array_equal(late.data, np.zeros(2, dtype=np.float32))
    late.grad = Tensor(np.array([2.0, -3.0], dtype=np.float32))
    optimizer.step()
    np.testing.assert_allclose(late.data, [-0.1, 0.1], rtol=1e-5)
    assert list(optimizer.steps) == [6, 1]

def test_hidden_adam_minimises_a_quadratic_and_keeps_grad():
    curvature = np.array([1.0, 10.0, 0.1])
    centre = np.array([2.0, -1.0, 0.5])
    w = Tensor(np.zeros(3), dtype=np.float64, requires_grad=True)
    optimizer = Adam([w], lr=0.05)
    for _ in range(600):
        g_now = curvature * (np.asarray(w.data) - centre)
        w.grad = Tensor(g_now, dtype=np.float64)
        optimizer.step()
    np.testing.assert_array_equal(w.grad.data, g_now, err_msg="step() must not change p.grad")
    np.testing.assert_allclose(w.data, centre, atol=2e-2)

test_hidden_adam_counts_steps_per_parameter()
test_hidden_adam_minimises_a_quadratic_and_keeps_grad()
### END HIDDEN TESTS

# %% [markdown]
# ## Part 4: AdamW, decay taken out of the gradient
#
# With Adam, the L2 term `wd·p` goes into `g` and is then divided by `√v̂`: weights with large
# gradients are barely decayed, weights with small gradients are decayed hard. Loshchilov &
# Hutter ("Decoupled Weight Decay Regularization") showed that this is not what weight decay is
# meant to do, and that taking the decay *out* of the gradient trains better:
#
# ```
#   Adam  (L2):         g ← g + wd·p ;  m, v, p ← Adam update with that g
#   AdamW (decoupled):  p ← p − lr·wd·p ;  m, v, p ← Adam update with the plain g
# ```
#
# Every weight now shrinks by the same factor `1 − lr·wd` per step, and the moments see only the
# loss's gradient. With a zero gradient, AdamW shrinks `p` and does nothing else, while Adam's
# L2 version would move each weight by about `lr`. `AdamW` inherits everything else from your
# `Adam`; write its `apply_weight_decay`: shrink `p.data` **in place** (when `wd > 0`) and return
# the gradient unchanged. Its default `weight_decay` is PyTorch's, 0.01.

# %% nbgrader={"grade": false, "grade_id": "adamw", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): p -= lr·wd·p, then the Adam step with g."""

    def __init__(self, params, lr: float = 1e-3, betas: tuple = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.01):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)

    def apply_weight_decay(self, param: Tensor, grad: np.ndarray) -> np.ndarray:
        """Shrink param in place by (1 − lr·wd); the gradient passes through untouched."""
        ### BEGIN SOLUTION
        if self.weight_decay:
            param.data *= 1 - self.lr * self.weight_decay
        return grad
        ### END SOLUTION


# %% [markdown]
# ### Test: decoupled, not L2

# %% nbgrader={"grade": true, "grade_id": "test-adamw", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def test_unit_adamw_with_zero_gradient_only_shrinks():
    w_start = np.array([1.0, -2.0, 0.25], dtype=np.float32)
    w = Tensor(w_start.copy(), requires_grad=True)
    alias = Tensor(w)
    optimizer = AdamW([w], lr=0.1, weight_decay=0.5)
    for _ in range(3):
        w.grad = Tensor(np.zeros(3, dtype=np.float32))
        optimizer.step()
    np.testing.assert_allclose(w.data, w_start.astype(np.float64) * (1 - 0.1 * 0.5) ** 3, rtol=1e-6)
    np.testing.assert_array_equal(alias.data, w.data, err_msg="AdamW must shrink p.data in place")
    assert AdamW([Tensor(np.zeros(2, dtype=np.float32))]).weight_decay == 0.01

def test_unit_adamw_matches_hand_derivation():
    gen = np.random.default_rng(2)
    w_start = gen.standard_normal(6).astype(np.float32)
    grads = [gen.standard_normal(6).astype(np.float32) for _ in range(3)]
    rates = [0.1, 0.05, 0.02]
    w_ref, avg, avg_sq = w_start.astype(np.float64), np.zeros(6), np.zeros(6)
    for t, (g_now, lr_now) in enumerate(zip(grads, rates), start=1):
        w_ref = w_ref * (1 - lr_now * 0.2)
        avg = 0.9 * avg + 0.1 * g_now.astype(np.float64)
        avg_sq = 0.999 * avg_sq + 0.001 * g_now.astype(np.float64) ** 2
        w_ref = w_ref - lr_now * (avg / (1 - 0.9**t)) / (np.sqrt(avg_sq / (1 - 0.999**t)) + 1e-8)
    w = Tensor(w_start.copy(), requires_grad=True)
    optimizer = AdamW([w], lr=rates[0], weight_decay=0.2)
    for g_now, lr_now in zip(grads, rates):
        optimizer.lr = lr_now
        w.grad = Tensor(g_now)
        optimizer.step()
    np.testing.assert_allclose(w.data, w_ref, rtol=1e-5, atol=1e-6)

test_unit_adamw_with_zero_gradient_only_shrinks()
test_unit_adamw_matches_hand_derivation()
### BEGIN HIDDEN TESTS
def test_hidden_adamw_is_adam_without_decay():
    gen = np.random.default_rng(5)
    w_start = gen.standard_normal(4).astype(np.float32)
    grads = [gen.standard_normal(4).astype(np.float32) for _ in range(3)]
    results = []
    for make in (lambda ps: AdamW(ps, lr=0.1, weight_decay=0.0), lambda ps: Adam(ps, lr=0.1)):
        w = Tensor(w_start.copy(), requires_grad=True)
        optimizer = make([w])
        for g_now in grads:
            w.grad = Tensor(g_now)
            optimizer.step()
        results.append(np.asarray(w.data))
    np.testing.assert_array_equal(results[0], results[1])
    g = np.ones(4, dtype=np.float32)
    w = Tensor(w_start.copy(), requires_grad=True)
    w.grad = Tensor(g)
    AdamW([w], lr=0.1, weight_decay=0.3).step()
    np.testing.assert_array_equal(w.grad.data, g)

test_hidden_adamw_is_adam_without_decay()
### END HIDDEN TESTS

# %% [markdown]
# ## Part 5: saving and restoring an optimizer
#
# A long training run stops (a crash, a time limit, a pre-empted machine) and must resume
# exactly where it was. The weights alone are not enough: SGD's velocity, Adam's `m`, `v` and
# step counts decide the next step as much as the weights do. `state_dict()` returns all of it
# as **plain data**, so module 08 can write it with `np.savez` (no pickle: loading a pickle runs
# arbitrary code):
#
# | key | value |
# |---|---|
# | `"kind"` | the class name, e.g. `"Adam"` |
# | `"num_params"` | the number of parameters |
# | each name in `self.hyperparameters` | its value (`"lr"`, `"momentum"`, `"beta1"`, ...) |
# | `"shape.{i}"` | parameter `i`'s shape, as an int64 array |
# | `"step.{i}"` | `self.steps[i]` |
# | `"{buffer}.{i}"` | a **copy** of each array in `self.state[i]` (`"velocity.0"`, `"m.3"`, ...) |
#
# `load_state_dict(state)` is the inverse, and it must refuse a state dict that does not fit
# with a `ValueError` that says why: another kind of optimizer, another number of parameters,
# other shapes, or keys missing or extra (an SGD created with other momentum). Check everything
# **before** changing anything, so a refused load leaves the optimizer as it was. Values may
# arrive as 0-d arrays (that is what `np.load` gives back): convert with `str()`, `int()`,
# `float()`; copy buffers into the existing arrays (`np.copyto`), so they keep their dtype.
# Write both methods in the `Optimizer` cell of Part 1.

# %% [markdown]
# ### Test: a resumed run takes bit-identical steps

# %% nbgrader={"grade": true, "grade_id": "test-state-dict", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def test_unit_state_dict_is_plain_data():
    w = Tensor(np.ones((2, 2), dtype=np.float32), requires_grad=True)
    optimizer = Adam([w], lr=0.1)
    w.grad = Tensor(np.ones((2, 2), dtype=np.float32))
    optimizer.step()
    saved = optimizer.state_dict()
    assert str(saved["kind"]) == "Adam" and int(saved["num_params"]) == 1
    for key, value in saved.items():
        assert isinstance(key, str), f"key {key!r} is not a string"
        assert isinstance(value, (int, float, str, np.ndarray, np.generic)), f"{key}: {type(value)} is not plain data"

def test_unit_resumed_run_is_bit_identical():
    gen = np.random.default_rng(3)
    w_start = gen.standard_normal((3, 4)).astype(np.float32)
    grads = [gen.standard_normal((3, 4)).astype(np.float32) for _ in range(5)]
    settings = [(SGD, {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.01}),
                (Adam, {"lr": 0.05, "weight_decay": 0.01}), (AdamW, {"lr": 0.05})]
    for make, kwargs in settings:
        straight = Tensor(w_start.copy(), requires_grad=True)
        optimizer = make([straight], **kwargs)
        for g_now in grads:
            straight.grad = Tensor(g_now)
            optimizer.step()

        first_half = Tensor(w_start.copy(), requires_grad=True)
        optimizer = make([first_half], **kwargs)
        for g_now in grads[:2]:
            first_half.grad = Tensor(g_now)
            optimizer.step()
        saved = optimizer.state_dict()

        resumed = Tensor(np.asarray(first_half.data).copy(), requires_grad=True)
        fresh = make([resumed], **{**kwargs, "lr": 0.5})     # the saved lr must win
        fresh.load_state_dict(saved)
        for g_now in grads[2:]:
            resumed.grad = Tensor(g_now)
            fresh.step()
        np.testing.assert_array_equal(resumed.data, straight.data, err_msg=f"{kwargs}: resumed != straight")

def test_unit_load_rejects_a_state_for_other_parameters():
    def expect_value_error(optimizer, state, why):
        try:
            optimizer.load_state_dict(state)
        except ValueError:
            return
        raise AssertionError(f"load_state_dict must raise ValueError: {why}")

    saved = Adam([Tensor(np.zeros((3, 4), dtype=np.float32))]).state_dict()
    expect_value_error(Adam([Tensor(np.zeros((4, 3), dtype=np.float32))]), saved, "other shape")
    expect_value_error(Adam([Tensor(np.zeros((3, 4), dtype=np.float32)), Tensor(np.zeros(2, dtype=np.float32))]),
                       saved, "other number of parameters")
    expect_value_error(SGD([Tensor(np.zeros((3, 4), dtype=np.float32))], lr=0.1, momentum=0.9), saved,
                       "another kind of optimizer")

test_unit_state_dict_is_plain_data()
test_unit_resumed_run_is_bit_identical()
test_unit_load_rejects_a_state_for_other_parameters()
### BEGIN HIDDEN TESTS
def test_hidden_refused_load_changes_nothing_and_zero_d_values_load():
    w = Tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    optimizer = SGD([w], lr=0.1, momentum=0.9)
    w.grad = Tensor(np.ones(3, dtype=np.float32))
    optimizer.step()
    before = optimizer.state_dict()
    bad = dict(before)
    bad["shape.0"] = np.array([4], dtype=np.int64)
    try:
        optimizer.load_state_dict(bad)
    except ValueError:
        pass
    else:
        raise AssertionError("a state dict for a (4,) parameter must be refused")
    after = optimizer.state_dict()
    np.testing.assert_array_equal(after["velocity.0"], before["velocity.0"])
    plain_sgd = SGD([Tensor(np.ones(3, dtype=np.float32), requires_grad=True)], lr=0.1)
    try:
        plain_sgd.load_state_dict(before)
    except ValueError:
        pass
    else:
        raise AssertionError("a momentum SGD's state (with velocity) must not load into a plain SGD")
    # what np.load gives back: every value a 0-d (or 1-d) array
    as_arrays = {key: np.asarray(value) for key, value in before.items()}
    twin = SGD([Tensor(np.ones(3, dtype=np.float32), requires_grad=True)], lr=0.7, momentum=0.9)
    twin.load_state_dict(as_arrays)
    assert twin.lr == 0.1 and list(twin.steps) == [1]
    np.testing.assert_array_equal(twin.state_dict()["velocity.0"], before["velocity.0"])

test_hidden_refused_load_changes_nothing_and_zero_d_values_load()
### END HIDDEN TESTS

# %% [markdown]
# ## Analysis: SGD, momentum and Adam on the same real problem
#
# Multinomial logistic regression on the 8×8 handwritten digits scikit-learn ships (1,797
# images, 64 pixels, 10 classes): one `Linear(64, 10)`, cross entropy from module 04, gradients
# from module 06. Every optimizer starts from the same weights and sees the same mini-batches
# in the same order; only the update rule differs. Each uses a learning rate typical for it
# (SGD 0.1, Adam 0.01): the curves compare optimizers as people use them, not at one `lr`.
#
# The printed numbers are measured here: the training loss at the end (averaged over the last
# epoch's batches), the accuracy on the training images, and the step at which the smoothed
# loss first fell below 0.5.

# %%
import os
import statistics
import timeit

import matplotlib.pyplot as plt
from sklearn.datasets import load_digits

QUICK = os.environ.get("TITO_AUTOGRADING") == "1"   # shrink the run while grading

digits = load_digits()
pixels = (digits.data / 16.0).astype(np.float32)      # pixel values 0..16 -> 0..1
labels = digits.target.astype(np.int64)
epochs, batch_size = (2, 64) if QUICK else (25, 64)
batch_order = np.random.default_rng(0)
batches = [order[start:start + batch_size]
           for order in (batch_order.permutation(len(labels)) for _ in range(epochs))
           for start in range(0, len(labels), batch_size)]
steps_per_epoch = len(batches) // epochs

contenders = {
    "SGD lr=0.1": lambda params: SGD(params, lr=0.1),
    "SGD+momentum 0.9 lr=0.1": lambda params: SGD(params, lr=0.1, momentum=0.9),
    "Adam lr=0.01": lambda params: Adam(params, lr=0.01),
}
loss_fn = CrossEntropyLoss()
curves, summaries = {}, {}
for name, make_optimizer in contenders.items():
    classifier = Linear(64, 10, seed=0)           # the same starting weights for every optimizer
    optimizer = make_optimizer(classifier.parameters())
    losses = []
    for batch in batches:
        optimizer.zero_grad()
        loss = loss_fn(classifier(Tensor(pixels[batch])), labels[batch])
        loss.backward()
        optimizer.step()
        losses.append(float(loss.data))
    curves[name] = np.array(losses)
    accuracy = float(np.mean(np.argmax(classifier(Tensor(pixels)).data, axis=1) == labels))
    smoothed = np.convolve(curves[name], np.ones(steps_per_epoch) / steps_per_epoch, mode="valid")
    below = np.flatnonzero(smoothed < 0.5)
    summaries[name] = (float(np.mean(losses[-steps_per_epoch:])), accuracy,
                       int(below[0]) + steps_per_epoch if below.size else None)

print(f"{len(batches)} steps ({epochs} epochs of {steps_per_epoch} batches of {batch_size})")
print(f"{'optimizer':26} {'last-epoch loss':>16} {'train accuracy':>15} {'smoothed loss < 0.5 at step':>28}")
for name, (last_loss, accuracy, crossing) in summaries.items():
    print(f"{name:26} {last_loss:16.4f} {accuracy:15.1%} {str(crossing) if crossing else 'not reached':>28}")

fig, ax = plt.subplots(figsize=(7, 4))
for name, losses in curves.items():
    ax.plot(np.convolve(losses, np.ones(5) / 5, mode="valid"), label=name)
ax.set_xlabel("step")
ax.set_ylabel("training loss (5-step moving average)")
ax.set_yscale("log")
ax.set_title("Logistic regression on the digits: one model, three optimizers")
ax.legend()
plt.show()

# %% [markdown]
# ## Analysis: what an optimizer costs, in memory and in time
#
# The optimizer's state lives as long as training does, next to the weights and gradients:
# SGD keeps nothing, momentum one array per parameter, Adam two. For a large model that is the
# difference between fitting on a device or not (Adam's state is twice the model). Measured
# from the arrays each optimizer actually holds, for the 784-256-256-10 MLP of module 03, and
# the time one `step()` takes on its parameters with random gradients (median of repeats after
# a warm-up; the update is a handful of elementwise passes over every weight).

# %%
mlp_layers = [Linear(784, 256, seed=0), Linear(256, 256, seed=1), Linear(256, 10, seed=2)]
mlp_params = [param for layer in mlp_layers for param in layer.parameters()]
param_bytes = sum(param.data.nbytes for param in mlp_params)
gen = np.random.default_rng(0)
for param in mlp_params:
    param.grad = Tensor(gen.standard_normal(param.shape).astype(np.float32))
print(f"784-256-256-10 MLP: {sum(p.size for p in mlp_params):,} parameters, {param_bytes / 2**20:.2f} MiB float32")
print(f"{'optimizer':26} {'state (MiB)':>12} {'state / params':>15} {'step (ms)':>10} {'GB/s touched':>13}")
for name, make in [("SGD", lambda ps: SGD(ps, lr=0.01)), ("SGD+momentum", lambda ps: SGD(ps, lr=0.01, momentum=0.9)),
                   ("Adam", lambda ps: Adam(ps, lr=1e-3)), ("AdamW", lambda ps: AdamW(ps, lr=1e-3))]:
    optimizer = make(mlp_params)
    state_bytes = sum(buffer.nbytes for buffers in optimizer.state for buffer in buffers.values())
    for _ in range(3):                                   # warm-up: the allocator settles
        optimizer.step()
    step_s = statistics.median(timeit.repeat(optimizer.step, number=3 if QUICK else 10, repeat=3 if QUICK else 7))
    step_s /= 3 if QUICK else 10
    touched = 2 * param_bytes + param_bytes + 2 * state_bytes   # read+write p, read g, read+write the state
    print(f"{name:26} {state_bytes / 2**20:12.2f} {state_bytes / param_bytes:15.2f} {step_s * 1e3:10.3f} "
          f"{touched / step_s / 1e9:13.2f}")
