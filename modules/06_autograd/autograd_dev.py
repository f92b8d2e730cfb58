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
# # Module 06: Autograd
#
# Training a network means asking, for every weight, "if I nudge you, how does the loss change?"
# and stepping each weight against that slope. Writing those derivatives by hand for every model
# is hopeless; **reverse-mode automatic differentiation** gets all of them in one backward sweep
# that costs about as much as the forward pass. Every framework you will use is built around it.
#
# The idea has two halves:
#
# 1. **Record.** While the forward pass runs, remember for each result which operation made it
#    from which inputs: a directed acyclic *graph* whose leaves are the parameters and inputs.
# 2. **Replay backwards.** Start from the loss with gradient 1, visit the graph in reverse
#    topological order, and let each operation's **gradient rule** turn the gradient of its output
#    into gradients of its inputs (the chain rule). Where a tensor feeds several operations, the
#    gradients from every path **add up**.
#
# ```
#   forward (recorded)                              backward (replayed in reverse)
#
#   x ──┐                                           x.grad += W-path ◀──┐
#       ├─ matmul ─▶ h ─ relu ─▶ a ─ mse ─▶ loss      W.grad += h-path ◀──┼── matmul rule ◀─ relu rule ◀─ mse rule ◀─ 1.0
#   W ──┘                                                                │
#                                                   each rule: d(loss)/d(input) = d(loss)/d(output) · d(output)/d(input)
# ```
#
# Module 01 already made every `Tensor` operation *report itself* through a seam
# (`set_op_recorder`); modules 02 and 03 report activations and the dispatched `matmul`, and
# module 04 reports the losses. This module plugs a recorder into that seam and adds `backward`.
# Module 01 never imports this one: importing `tinytorch.core.autograd` installs the recorder and
# attaches `backward` and `detach` to the `Tensor` class, exactly as modules 13 and 15 plug
# kernels into module 03's dispatch point.
#
# | part | you write | the point |
# |---|---|---|
# | 1 | `unbroadcast(grad, shape)` | broadcasting copies a value to many places; its gradient sums them back |
# | 2 | `record_operation`, `no_grad`, `is_grad_enabled`, `detach` | the graph: one node per operation, only where a gradient is wanted |
# | 3 | `topological_order`, `backward` | an iterative sweep (a 10,000-op chain is fine) that **accumulates** |
# | 4-7 | the gradient rules | arithmetic, matmul, shape ops, reductions, indexing, activations, losses; each checked against finite differences |
# | 8 | (nothing new) | a whole MLP trains: a few SGD steps by hand on the digits |
#
# A widely used earlier version of this course marked nodes "visited" during its backward pass,
# so a tensor used twice (`y * y`, a residual connection) silently lost one of its gradients; one
# of its activations was never hooked into the graph. The tests here check for both mistakes,
# and every rule is compared with **central finite differences** in float64.

# %%
#| default_exp core.autograd

# %%
#| export
import contextlib

import numpy as np

from tinytorch.core.tensor import Tensor, set_op_recorder
from tinytorch.core.layers import matmul   # backward matmuls use module 03's dispatch point too

# %%
from tinytorch.core.activations import GELU, ReLU, Sigmoid, Softmax, Tanh   # tests and analyses only
from tinytorch.core.layers import Linear, Sequential
from tinytorch.core.losses import BinaryCrossEntropyLoss, CrossEntropyLoss, MSELoss

# %% [markdown]
# ## Part 1: undoing broadcasting
#
# `a + b` with `a` of shape `(4, 3)` and `b` of shape `(3,)` uses each element of `b` four times,
# once per row. Each use contributes to the loss, so the gradient of `b` is the **sum** of the
# output gradient over the rows. In general, when an input of shape `shape` was broadcast to the
# output's shape, its gradient is the output gradient summed over
#
# - the leading axes the input did not have (a `(3,)` operand against `(4, 3)`: axis 0), and
# - the axes where the input had size 1 but the output did not (a `(4, 1)` column against
#   `(4, 3)`: axis 1, **keeping** that axis so the result has shape `(4, 1)`).
#
# ```
#   output grad (4, 3)          b of shape (3,)         c of shape (4, 1)
#   ┌ g00 g01 g02 ┐             sum over rows:          sum over columns, keep the axis:
#   │ g10 g11 g12 │     ──▶     [Σ g_i0, Σ g_i1, Σ g_i2]  [[Σ g_0j], [Σ g_1j], [Σ g_2j], [Σ g_3j]]
#   │ g20 g21 g22 │
#   └ g30 g31 g32 ┘
# ```
#
# Write `unbroadcast(grad, shape)`: return an array of exactly `shape` (a 0-d input gets the sum
# of everything). Forgetting this step is the classic autograd bug: the bias gradient of a
# `Linear` layer would have the batch's shape instead of the bias's.

# %% nbgrader={"grade": false, "grade_id": "unbroadcast", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def unbroadcast(grad: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum `grad` (of a broadcast result's shape) back down to `shape`, the shape of the input."""
    ### BEGIN SOLUTION
    grad = np.asarray(grad)
    extra_leading = grad.ndim - len(shape)
    if extra_leading > 0:
        grad = grad.sum(axis=tuple(range(extra_leading)))
    stretched = tuple(axis for axis, size in enumerate(shape) if size == 1 and grad.shape[axis] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad.reshape(shape)
    ### END SOLUTION

# %% [markdown]
# ### Test: `unbroadcast`
#
# The oracle is a loop that adds every output position into the input position it was copied
# from (`np.broadcast_to` tells which positions those are: its view repeats the input).

# %% nbgrader={"grade": true, "grade_id": "test-unbroadcast", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def test_unit_unbroadcast():
    def summed_back(grad, shape):   # oracle: add each output position into its source position
        source_index = np.arange(int(np.prod(shape))).reshape(shape)
        origin = np.broadcast_to(source_index, grad.shape)
        total = np.zeros(int(np.prod(shape)))
        for position in np.ndindex(grad.shape):
            total[origin[position]] += grad[position]
        return total.reshape(shape)

    gen = np.random.default_rng(0)
    grad = gen.standard_normal((4, 3))
    for shape in [(4, 3), (3,), (1, 3), (4, 1), (1, 1), ()]:
        got = unbroadcast(grad, shape)
        assert np.shape(got) == shape, f"unbroadcast to {shape} returned shape {np.shape(got)}"
        np.testing.assert_allclose(got, summed_back(grad, shape), rtol=1e-12, atol=1e-12)

test_unit_unbroadcast()
### BEGIN HIDDEN TESTS
def test_hidden_unbroadcast_leading_and_inner_ones():
    grad = np.random.default_rng(1).standard_normal((2, 5, 1, 4))
    got = unbroadcast(grad, (5, 1, 1))
    assert np.shape(got) == (5, 1, 1)
    np.testing.assert_allclose(got, grad.sum(axis=(0, 3)).reshape(5, 1, 1), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(unbroadcast(grad, (1, 5, 1, 1)), grad.sum(axis=(0, 3), keepdims=True), rtol=1e-12, atol=1e-12)

test_hidden_unbroadcast_leading_and_inner_ones()
### END HIDDEN TESTS

# %% [markdown]
# ## Part 2: recording the graph
#
# After every operation, module 01's seam calls the installed recorder with
# `(op, out, inputs, params)`: `("mul", y, (x, 2.0), {})`, `("sum", s, (y,), {"axis": 1,
# "keepdims": False})`. The recorder decides whether to remember it. A **graph node**
# (`GraphNode`, given) holds what the backward pass will need:
#
# | field | what | why |
# |---|---|---|
# | `op`, `params` | the operation's name and settings (axis, shape, index, reduction) | pick and parametrise the gradient rule |
# | `inputs` | the inputs as they were passed: Tensors, numbers or arrays | walk the graph; most rules need the input values (`x * y` needs both) |
# | `needs_grad` | one bool per input: a Tensor that requires grad | skip work: no `x.grad` for the data, only for the weights |
# | `output` | the forward result's array, **only** for rules that read it | sigmoid' = s(1 - s) is cheaper from s than from x |
#
# The node keeps the output's *array*, never the output Tensor: the Tensor holds its node
# (`out.grad_fn`), and a node holding the Tensor back would be a reference cycle that only the
# garbage collector could free.
#
# Gradient rules are registered by name with the decorator `@gradient_rule("mul")`
# (`saves_output=True` for the rules that read `node.output`).
#
# Write `record_operation(op, out, inputs, params)`:
#
# - do nothing while gradients are disabled (`no_grad()`), when no input is a Tensor that
#   requires grad, or when the result is not a floating-point tensor (only floats have gradients);
# - otherwise make the result require grad and attach a `GraphNode` as `out.grad_fn`, keeping the
#   output array only when the op's rule was registered with `saves_output=True`.
#
# An op without a registered rule is still recorded: its `backward` raises an error that names
# it, so a missing rule can never silently drop a gradient.
#
# Then the grad mode: `no_grad()` is a context manager inside which nothing is recorded (use it for
# evaluation and for optimizer updates: no graph, no memory kept), restoring the previous mode on
# exit even after an exception; `is_grad_enabled()` reports the mode. `detach(t)` returns a new
# Tensor on the **same data** that requires no grad and has no history.

# %%
#| export
_GRADIENT_RULES: dict = {}    # op name -> rule(node, grad) -> one gradient (or None) per input
_RULES_READING_OUTPUT: set = set()   # ops whose rule reads node.output


def gradient_rule(op: str, saves_output: bool = False):
    """Decorator: register `rule(node, grad)` as the gradient rule of the operation `op`.

    saves_output: the rule reads node.output, so the recorder keeps the forward result's array.
    """
    def register(rule):
        _GRADIENT_RULES[op] = rule
        if saves_output:
            _RULES_READING_OUTPUT.add(op)
        else:
            _RULES_READING_OUTPUT.discard(op)
        return rule
    return register


class GraphNode:
    """How one tensor was made: enough to send a gradient back to the inputs, and nothing more."""

    __slots__ = ("op", "inputs", "params", "needs_grad", "output")

    def __init__(self, op: str, inputs: tuple, params: dict, needs_grad: tuple, output=None):
        self.op = op
        self.inputs = inputs            # as passed to the operation: Tensors, numbers or arrays
        self.params = params            # axis, keepdims, shape, index, reduction, ...
        self.needs_grad = needs_grad    # per input: a Tensor that requires grad
        self.output = output            # the result's array, kept only when the rule reads it

    def arrays(self) -> tuple:
        """The inputs as NumPy arrays (a Tensor's data, a number as a 0-d array)."""
        return tuple(x.data if isinstance(x, Tensor) else np.asarray(x) for x in self.inputs)

    def __repr__(self) -> str:
        return f"GraphNode(op={self.op!r}, inputs={len(self.inputs)}, params={self.params})"

# %% nbgrader={"grade": false, "grade_id": "record-operation", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
_GRAD_ENABLED = True   # False inside no_grad()


def record_operation(op: str, out: Tensor, inputs: tuple, params: dict) -> None:
    """Module 01's recorder: attach a GraphNode to `out` when an input requires grad."""
    ### BEGIN SOLUTION
    if not _GRAD_ENABLED or not np.issubdtype(out.dtype, np.floating):
        return
    needs_grad = tuple(isinstance(x, Tensor) and x.requires_grad for x in inputs)
    if not any(needs_grad):
        return
    kept_output = out.data if op in _RULES_READING_OUTPUT else None
    out.requires_grad = True
    out.grad_fn = GraphNode(op, tuple(inputs), dict(params), needs_grad, kept_output)
    ### END SOLUTION


@contextlib.contextmanager
def no_grad():
    """Inside the block, operations record nothing (their results require no grad)."""
    ### BEGIN SOLUTION
    global _GRAD_ENABLED
    previous, _GRAD_ENABLED = _GRAD_ENABLED, False
    try:
        yield
    finally:
        _GRAD_ENABLED = previous
    ### END SOLUTION


def is_grad_enabled() -> bool:
    """True unless inside no_grad()."""
    ### BEGIN SOLUTION
    return _GRAD_ENABLED
    ### END SOLUTION


def detach(self: Tensor) -> Tensor:
    """The same data as a new Tensor that requires no grad and has no history (no copy)."""
    ### BEGIN SOLUTION
    return Tensor(self.data, dtype=self.dtype)
    ### END SOLUTION

# %% [markdown]
# ## Part 3: the backward pass
#
# `loss.backward()` computes the gradient of `loss` with respect to every leaf that requires
# grad and **adds** it to that leaf's `.grad`.
#
# **Order.** A node's rule may run only once the gradient of its output is complete, that is,
# after every operation that *used* the output has sent its share back. Reverse topological order
# guarantees that. `topological_order(root)` returns every tensor that requires grad and that
# `root` depends on, each exactly once, inputs before the tensors made from them (so `root` is
# last). Do it **iteratively**, with an explicit stack: a recursive depth-first search needs one
# Python frame per node on the path, and a 10,000-operation chain (an unrolled RNN, a long
# training graph) would exceed Python's recursion limit of 1,000.
#
# ```
#   y = x * x;  z = y + x                   topological order: x, y, z
#
#   x ──┬──┬─ mul ─▶ y ──┐                  backward (reverse): z: grad 1
#       │  └──┘          ├─ add ─▶ z                          y: 1          (from add)
#       └────────────────┘                                    x: 1 (from add) + 2x·1 (from mul, both uses)
# ```
#
# Marking a node "visited" belongs in the *ordering*, never in the *gradient* sweep: the sweep
# must deliver every path's contribution. Keep a table of pending gradients (one entry per tensor
# of the order) and add each contribution into it.
#
# **`backward(self, grad=None)`**:
#
# - `self` must require grad (a `RuntimeError` saying why not, otherwise);
# - without `grad`, `self` must hold one element (a loss) and the seed is 1; a tensor with more
#   elements raises a `ValueError` telling the caller to pass a gradient of its shape or to
#   reduce it first (`.sum()`); a given `grad` (array or Tensor) must have `self`'s shape;
# - walk the order in reverse; for a tensor with a `grad_fn`, call its rule
#   (`_GRADIENT_RULES[node.op](node, grad)` gives one gradient or `None` per input; a missing rule
#   is a `NotImplementedError` naming the op) and add each input's gradient into the pending
#   table (only inputs whose `needs_grad` is set); for a **leaf** (no `grad_fn`), add the
#   gradient to `.grad`: a Tensor of the leaf's dtype and shape, created on the first call and
#   **accumulated** on later ones, until someone sets it back to `None` (module 07's `zero_grad`).
#
# Intermediate tensors do not keep a `.grad` (as in PyTorch: it would cost one array per
# activation); inspect one with a hook-free trick instead: make it a leaf with `detach()`,
# `requires_grad = True`, and compute from there. The graph stays in place after `backward`,
# so calling it twice adds the gradients twice.

# %% nbgrader={"grade": false, "grade_id": "backward", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def topological_order(root: Tensor) -> list:
    """Every tensor requiring grad that `root` depends on, once each, inputs before outputs (root last)."""
    ### BEGIN SOLUTION
    order, seen = [], set()
    stack = [(root, False)]            # (tensor, its inputs are already placed)
    while stack:
        tensor, inputs_placed = stack.pop()
        if inputs_placed:
            order.append(tensor)
            continue
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        stack.append((tensor, True))
        node = tensor.grad_fn
        if node is not None:
            for source, wanted in zip(node.inputs, node.needs_grad):
                if wanted and id(source) not in seen:
                    stack.append((source, False))
    return order
    ### END SOLUTION


def backward(self: Tensor, grad=None) -> None:
    """Add d(self)/d(leaf), times `grad` (default 1 for a one-element tensor), to every leaf's .grad."""
    ### BEGIN SOLUTION
    if not self.requires_grad:
        raise RuntimeError("backward() on a tensor that does not require grad: no input of the computation "
                           "had requires_grad=True (or it ran inside no_grad()); set requires_grad=True on the "
                           "parameters or inputs you want gradients for")
    if grad is None:
        if self.size != 1:
            raise ValueError(f"backward() without a gradient needs a one-element tensor (a loss), got shape "
                             f"{self.shape}; pass backward(grad) with a gradient of shape {self.shape}, or "
                             "reduce first (e.g. t.sum().backward())")
        seed = np.ones(self.shape, dtype=self.dtype)
    else:
        seed = np.asarray(grad.data if isinstance(grad, Tensor) else grad, dtype=self.dtype)
        if seed.shape != self.shape:
            raise ValueError(f"backward(grad): grad has shape {seed.shape} but the tensor has shape "
                             f"{self.shape}; pass a gradient of the tensor's shape")
    pending = {id(self): seed}
    for tensor in reversed(topological_order(self)):
        upstream = pending.pop(id(tensor), None)
        if upstream is None:
            continue
        node = tensor.grad_fn
        if node is None:                                # a leaf: accumulate into .grad
            if tensor.grad is None:
                tensor.grad = Tensor(np.array(upstream, dtype=tensor.dtype), dtype=tensor.dtype)
            else:
                tensor.grad.data += upstream
            continue
        rule = _GRADIENT_RULES.get(node.op)
        if rule is None:
            raise NotImplementedError(f"no gradient rule for the operation {node.op!r}; register one with "
                                      f"@gradient_rule({node.op!r}) (rule(node, grad) -> a gradient per input)")
        for source, wanted, contribution in zip(node.inputs, node.needs_grad, rule(node, upstream)):
            if not wanted or contribution is None:
                continue
            contribution = np.asarray(contribution, dtype=source.dtype)
            key = id(source)
            pending[key] = contribution if key not in pending else pending[key] + contribution
    ### END SOLUTION

# %% [markdown]
# Installing it: one cell plugs the recorder into module 01's seam and attaches the methods to
# the `Tensor` class. Python classes are open, so a later module can add methods to an earlier
# one's class without the earlier one knowing: module 01 only promised to report operations.

# %%
#| export
Tensor.backward = backward
Tensor.detach = detach
Tensor.grad_fn = None                                   # class default: a tensor nobody recorded is a leaf
Tensor.is_leaf = property(lambda tensor: tensor.grad_fn is None)
set_op_recorder(record_operation)

# %% [markdown]
# The worked example of a gradient rule: **add**. `out = a + b`, so `d out / d a = 1` elementwise,
# and the output gradient flows to both inputs unchanged, except that broadcasting has to be
# undone. `node.arrays()` gives the inputs as arrays (a Python number as a 0-d array). Returning a
# gradient for an input that needs none is allowed (the backward pass ignores it); a rule whose
# gradients are expensive checks `node.needs_grad` first.

# %%
#| export
@gradient_rule("add")
def add_backward(node: GraphNode, grad: np.ndarray) -> tuple:
    a, b = node.arrays()
    return unbroadcast(grad, a.shape), unbroadcast(grad, b.shape)

# %% [markdown]
# ### Test: recording, grad mode, and the backward pass
#
# These tests use only `+` (the given rule) and the engine you wrote. The oracles are derivatives
# by hand: `d(x + x)/dx = 2`, and for `z = (x + x) + x`, `dz/dx = 3` along three paths.

# %% nbgrader={"grade": true, "grade_id": "test-recording", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def test_unit_recording_rules():
    x = Tensor(np.ones(3), requires_grad=True)
    data = Tensor(np.ones(3))
    y = x + data
    assert y.requires_grad and y.grad_fn is not None and y.grad_fn.op == "add"
    assert not y.is_leaf and x.is_leaf
    plain = data + data
    assert not plain.requires_grad and plain.grad_fn is None, "no input requires grad: nothing to record"

def test_unit_no_grad_and_detach():
    x = Tensor(np.ones(3), requires_grad=True)
    assert is_grad_enabled()
    with no_grad():
        assert not is_grad_enabled()
        inside = x + 1.0
    assert is_grad_enabled(), "no_grad() must restore the grad mode on exit"
    assert not inside.requires_grad and inside.grad_fn is None
    try:
        with no_grad():
            raise KeyError("escaping")
    except KeyError:
        pass
    assert is_grad_enabled(), "no_grad() must restore the grad mode after an exception"

    frozen = (x + 1.0).detach()
    assert not frozen.requires_grad and frozen.grad_fn is None
    np.testing.assert_array_equal(frozen.data, [2.0, 2.0, 2.0])
    weights = np.array([0.5, -0.5])
    leaf = Tensor(weights, dtype=np.float64, requires_grad=True)
    assert np.shares_memory(leaf.detach().data, weights), "detach() shares the data (no copy)"

test_unit_recording_rules()
test_unit_no_grad_and_detach()
### BEGIN HIDDEN TESTS
def test_hidden_integer_results_are_not_recorded():
    x = Tensor(np.arange(3.0), requires_grad=True)
    counts = Tensor(np.arange(3))
    assert not (counts + counts).requires_grad
    with no_grad():
        with no_grad():
            pass
        assert not is_grad_enabled(), "a nested no_grad() must not switch recording back on"
    assert (x + counts).requires_grad

test_hidden_integer_results_are_not_recorded()
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test-backward", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
def test_unit_backward_accumulates_over_paths():
    x = Tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True)
    doubled = x + x                        # x used twice by one op
    total = doubled + x                    # and once more by another op
    total.backward(np.ones(3))
    np.testing.assert_allclose(x.grad.data, [3.0, 3.0, 3.0], rtol=0, atol=0)
    assert x.grad.shape == x.shape and x.grad.dtype == x.dtype and not x.grad.requires_grad

def test_unit_backward_accumulates_across_calls():
    w = Tensor(np.array([0.5, 1.5]), requires_grad=True)
    first = w + w
    first.backward(np.array([1.0, 10.0]))
    np.testing.assert_allclose(w.grad.data, [2.0, 20.0], rtol=0, atol=0)
    second = w + 5.0
    second.backward(np.array([1.0, 1.0]))
    np.testing.assert_allclose(w.grad.data, [3.0, 21.0], rtol=0, atol=0, err_msg="backward() must add to .grad")
    w.grad = None
    (w + 0.0).backward(np.array([4.0, 4.0]))
    np.testing.assert_allclose(w.grad.data, [4.0, 4.0], rtol=0, atol=0)

def test_unit_backward_long_chain_is_iterative():
    x = Tensor(np.array(0.25), requires_grad=True)
    y = x
    for _ in range(10_000):                 # deeper than Python's recursion limit
        y = y + x
    y.backward()
    np.testing.assert_allclose(x.grad.data, 10_001.0, rtol=0, atol=0)

def test_unit_backward_errors():
    x = Tensor(np.ones((2, 3)), requires_grad=True)
    y = x + 1.0
    try:
        y.backward()
    except ValueError as err:
        assert "(2, 3)" in str(err), "the error names the tensor's shape"
    else:
        raise AssertionError("backward() on a (2, 3) tensor without a gradient must raise ValueError")
    try:
        Tensor(np.ones(1)).backward()
    except RuntimeError:
        pass
    else:
        raise AssertionError("backward() on a tensor that does not require grad must raise RuntimeError")

test_unit_backward_accumulates_over_paths()
test_unit_backward_accumulates_across_calls()
test_unit_backward_long_chain_is_iterative()
test_unit_backward_errors()
### BEGIN HIDDEN TESTS
def test_hidden_backward_diamond_and_order():
    x = Tensor(np.array([2.0]), requires_grad=True)
    left, right = x + 1.0, x + x          # two branches that meet again
    top = left + right
    order = topological_order(top + left)
    assert len(order) == 5, "each tensor appears once in the order"
    assert order[-1].grad_fn is not None and order[0] is x
    (top + left).backward()
    np.testing.assert_allclose(x.grad.data, [4.0], rtol=0, atol=0)
    assert left.grad is None, "intermediate tensors keep no .grad"
    try:
        x.backward(np.ones(2))
    except ValueError:
        pass
    else:
        raise AssertionError("a gradient of the wrong shape must raise ValueError")

def test_hidden_backward_accepts_array_likes():
    # the upstream gradient may be any array-like of the tensor's shape: a list, or a number for a 0-d tensor
    x = Tensor(np.array([1.0, 2.0, 3.0]), dtype=np.float64, requires_grad=True)
    (x + x).backward([1.0, 0.5, 2.0])                    # only "add" has a rule at this point of the notebook
    np.testing.assert_allclose(x.grad.data, [2.0, 1.0, 4.0], rtol=1e-12)
    s = Tensor(np.array(3.0), dtype=np.float64, requires_grad=True)
    (s + s).backward(0.25)
    np.testing.assert_allclose(s.grad.data, 0.5, rtol=1e-12)

test_hidden_backward_diamond_and_order()
test_hidden_backward_accepts_array_likes()
### END HIDDEN TESTS

# %% [markdown]
# ## Part 4: arithmetic
#
# Each rule receives the node and the gradient of the output (an array of the output's shape)
# and returns one gradient per input, each of **that input's** shape (`unbroadcast`):
#
# | op | `out` | gradient of `a` | gradient of `b` |
# |---|---|---|---|
# | `sub` | `a - b` | `g` | `-g` |
# | `mul` | `a * b` | `g * b` | `g * a` |
# | `div` | `a / b` | `g / b` | `-g * a / b²` |
# | `neg` | `-a` | `-g` | |
#
# Reflected operations report their operands in math order (`2.0 - x` arrives as
# `sub(2.0, x)`), so the rules need no special case.
#
# **How the tests check a rule.** For `out = f(a, b)` and a random "upstream" array `w` of the
# output's shape, `out.backward(w)` must give `a.grad = d/da Σ w·f(a, b)`. The oracle is central
# finite differences of that sum, computed in float64 from a NumPy formula of `f`:
# `(L(a + ε e_i) - L(a - ε e_i)) / 2ε` for each element `i`, with an error of order `ε²`.

# %% nbgrader={"grade": false, "grade_id": "arithmetic-rules", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
@gradient_rule("sub")
def sub_backward(node: GraphNode, grad: np.ndarray) -> tuple:
    ### BEGIN SOLUTION
    a, b = node.arrays()
    return unbroadcast(grad, a.shape), unbroadcast(-grad, b.shape)
    ### END SOLUTION


@gradient_rule("mul")
def mul_backward(node: GraphNode, grad: np.ndarray) -> tuple:
    ### BEGIN SOLUTION
    a, b = node.arrays()
    return unbroadcast(grad * b, a.shape), unbroadcast(grad * a, b.shape)
    ### END SOLUTION


@gradient_rule("div")
def div_backward(node: GraphNode, grad: np.ndarray) -> tuple:
    ### BEGIN SOLUTION
    a, b = node.arrays()
    grad_over_b = grad / b
    return unbroadcast(grad_over_b, a.shape), unbroadcast(-grad_over_b * a / b, b.shape)
    ### END SOLUTION


@gradient_rule("neg")
def neg_backward(node: GraphNode, grad: np.ndarray) -> tuple:
    ### BEGIN SOLUTION
    return (-grad,)
    ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "test-arithmetic-rules", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def finite_difference(loss, arrays, which, eps=1e-6):
    """Central differences of the scalar loss(*arrays) with respect to arrays[which], in float64."""
    arrays = [np.array(a, dtype=np.float64) for a in arrays]
    slope = np.zeros_like(arrays[which])
    for position in np.ndindex(arrays[which].shape):
        original = arrays[which][position]
        arrays[which][position] = original + eps
        above = loss(*arrays)
        arrays[which][position] = original - eps
        below = loss(*arrays)
        arrays[which][position] = original
        slope[position] = (above - below) / (2 * eps)
    return slope

def check_binary(op_name, tensor_op, numpy_op, shape_a, shape_b, seed):
    gen = np.random.default_rng(seed)
    a64 = gen.uniform(0.5, 2.0, shape_a) * gen.choice([-1, 1], shape_a)
    b64 = gen.uniform(0.5, 2.0, shape_b) * gen.choice([-1, 1], shape_b)
    upstream = gen.standard_normal(np.broadcast_shapes(shape_a, shape_b))
    expected_a = finite_difference(lambda a, b: np.sum(upstream * numpy_op(a, b)), [a64, b64], 0)
    expected_b = finite_difference(lambda a, b: np.sum(upstream * numpy_op(a, b)), [a64, b64], 1)
    a = Tensor(a64, dtype=np.float64, requires_grad=True)
    b = Tensor(b64, dtype=np.float64, requires_grad=True)
    tensor_op(a, b).backward(upstream)
    for name, got, want in [("a", a.grad, expected_a), ("b", b.grad, expected_b)]:
        assert got is not None and got.shape == want.shape, f"{op_name}: {name}.grad must have {name}'s shape {want.shape}"
        np.testing.assert_allclose(got.data, want, rtol=1e-6, atol=1e-7, err_msg=f"{op_name}: gradient of {name}")

def test_unit_arithmetic_rules():
    for shape_a, shape_b in [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 3), (4, 1))]:
        check_binary("sub", lambda a, b: a - b, np.subtract, shape_a, shape_b, seed=1)
        check_binary("mul", lambda a, b: a * b, np.multiply, shape_a, shape_b, seed=2)
        check_binary("div", lambda a, b: a / b, np.divide, shape_a, shape_b, seed=3)
    x = Tensor(np.array([1.0, -2.0]), dtype=np.float64, requires_grad=True)
    (-x).backward(np.array([3.0, 5.0]))
    np.testing.assert_allclose(x.grad.data, [-3.0, -5.0], rtol=0, atol=0)

def test_unit_square_uses_both_paths():
    x64 = np.array([0.5, -1.5, 2.0])
    x = Tensor(x64, dtype=np.float64, requires_grad=True)
    (x * x).backward(np.ones(3))
    np.testing.assert_allclose(x.grad.data, 2 * x64, rtol=1e-12, err_msg="d(x*x)/dx = 2x: both uses of x count")

test_unit_arithmetic_rules()
test_unit_square_uses_both_paths()
### BEGIN HIDDEN TESTS
def test_hidden_arithmetic_with_numbers_and_reflected():
    x64 = np.array([[1.0, 2.0, 4.0]])
    x = Tensor(x64, dtype=np.float64, requires_grad=True)
    ((3.0 - x) * 2.0 + 1.0 / x).backward(np.ones((1, 3)))
    np.testing.assert_allclose(x.grad.data, -2.0 - 1.0 / x64**2, rtol=1e-12)
    check_binary("div", lambda a, b: a / b, np.divide, (1,), (2, 3), seed=4)
    check_binary("mul", lambda a, b: a * b, np.multiply, (), (2, 2), seed=5)

test_hidden_arithmetic_with_numbers_and_reflected()
### END HIDDEN TESTS

# %% [markdown]
# ## Part 5: matmul
#
# For `C = A @ B` with `A (m, k)` and `B (k, n)`, each `C[i, j] = Σ_p A[i, p] B[p, j]`, so
#
# ```
#   dA = G @ Bᵀ     (m, n) @ (n, k) -> (m, k)        dB = Aᵀ @ G     (k, m) @ (m, n) -> (k, n)
# ```
#
# (the shapes alone tell you where the transposes go: each gradient has its input's shape).
# Three generalisations, all from `np.matmul`'s rules:
#
# - **Batched** operands `(..., m, k) @ (..., k, n)`: transpose the last two axes only
#   (`np.swapaxes(x, -1, -2)`), and `unbroadcast` the result when batch dimensions were
#   broadcast (a weight `(k, n)` shared by a batch `(B, m, k)` collects the sum over the batch).
#   When `B` is 2-D, `Aᵀ @ G` over a batch is one 2-D product with the batch folded into rows:
#   `A.reshape(-1, k).T @ G.reshape(-1, n)`, one big call instead of `B` small ones and a sum.
# - A **1-D** `A (k,)` behaves as a row `(1, k)` whose axis is dropped from the result; a 1-D
#   `B (k,)` as a column `(k, 1)`. Promote them, put the dropped axis back into `G`
#   (`np.expand_dims`), and reshape each gradient to its input's shape at the end.
# - The products go through module 03's `matmul` (imported at the top), not `np.matmul`: then
#   `set_backend("optimized")` (module 15) speeds up the backward pass too, which is two thirds
#   of a training step's matmul work. Compute a gradient only where `node.needs_grad` asks for
#   it: the input batch of the first layer needs none.

# %% nbgrader={"grade": false, "grade_id": "matmul-rule", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
@gradient_rule("matmul")
def matmul_backward(node: GraphNode, grad: np.ndarray) -> tuple:
    ### BEGIN SOLUTION
    a, b = node.arrays()
    a_rows = a.reshape(1, -1) if a.ndim == 1 else a          # (k,) -> (1, k)
    b_cols = b.reshape(-1, 1) if b.ndim == 1 else b          # (k,) -> (k, 1)
    grad = np.asarray(grad)
    if b.ndim == 1:
        grad = np.expand_dims(grad, -1)                     # the n axis the product dropped
    if a.ndim == 1:
        grad = np.expand_dims(grad, -2)                     # the m axis the product dropped
    grad_a = grad_b = None
    if node.needs_grad[0]:
        grad_a = unbroadcast(matmul(grad, np.swapaxes(b_cols, -1, -2)), a_rows.shape).reshape(a.shape)
    if node.needs_grad[1]:
        if b_cols.ndim == 2:                                # shared weight: fold the batch into rows
            inner = a_rows.shape[-1]
            grad_b = matmul(a_rows.reshape(-1, inner).T, grad.reshape(-1, grad.shape[-1]))
        else:
            grad_b = unbroadcast(matmul(np.swapaxes(a_rows, -1, -2), grad), b_cols.shape)
        grad_b = grad_b.reshape(b.shape)
    return grad_a, grad_b
    ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "test-matmul-rule", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def finite_difference(loss, arrays, which, eps=1e-6):
    """Central differences of the scalar loss(*arrays) with respect to arrays[which], in float64."""
    arrays = [np.array(a, dtype=np.float64) for a in arrays]
    slope = np.zeros_like(arrays[which])
    for position in np.ndindex(arrays[which].shape):
        original = arrays[which][position]
        arrays[which][position] = original + eps
        above = loss(*arrays)
        arrays[which][position] = original - eps
        below = loss(*arrays)
        arrays[which][position] = original
        slope[position] = (above - below) / (2 * eps)
    return slope

def check_matmul(shape_a, shape_b, seed):
    gen = np.random.default_rng(seed)
    a64, b64 = gen.standard_normal(shape_a), gen.standard_normal(shape_b)
    upstream = np.asarray(gen.standard_normal(np.matmul(a64, b64).shape))
    loss = lambda a, b: np.sum(upstream * np.einsum("...ik,...kj->...ij", a, b)) if a.ndim > 1 and b.ndim > 1 else np.sum(upstream * np.matmul(a, b))
    expected = [finite_difference(loss, [a64, b64], which) for which in (0, 1)]
    a = Tensor(a64, dtype=np.float64, requires_grad=True)
    b = Tensor(b64, dtype=np.float64, requires_grad=True)
    (a @ b).backward(upstream)
    for name, got, want in [("A", a.grad, expected[0]), ("B", b.grad, expected[1])]:
        assert got is not None and got.shape == want.shape, f"{shape_a} @ {shape_b}: {name}.grad must have shape {want.shape}"
        np.testing.assert_allclose(got.data, want, rtol=1e-6, atol=1e-7, err_msg=f"{shape_a} @ {shape_b}: gradient of {name}")

def test_unit_matmul_rule():
    check_matmul((3, 4), (4, 2), seed=0)          # rectangular: a wrong transpose cannot even fit
    check_matmul((3, 3), (3, 3), seed=1)          # square: a wrong transpose fits, but gives wrong numbers
    check_matmul((2, 3, 4), (4, 5), seed=2)       # a batch against a shared weight

test_unit_matmul_rule()
### BEGIN HIDDEN TESTS
def test_hidden_matmul_vectors_and_batches():
    check_matmul((4,), (4, 3), seed=3)
    check_matmul((2, 4), (4,), seed=4)
    check_matmul((4,), (4,), seed=5)
    check_matmul((2, 1, 3, 4), (5, 4, 2), seed=6)  # batch dimensions broadcast on both sides

test_hidden_matmul_vectors_and_batches()
### END HIDDEN TESTS

# %% [markdown]
# ## Part 6: shape operations, reductions and indexing
#
# | op (params) | gradient of the input |
# |---|---|
# | `reshape` (`shape`) | `g` reshaped to the input's shape |
# | `transpose` (`axes`: a tuple, `()` = reverse) | `g` transposed by the **inverse** permutation (`np.argsort(axes)`); reversing is its own inverse |
# | `sum` (`axis`, `keepdims`) | `g` copied back over the summed axes: put them back as size 1 (`np.expand_dims`, when `keepdims` was False), then `np.broadcast_to` the input's shape |
# | `mean` | as `sum`, divided by the number of elements averaged (the product of the reduced sizes) |
# | `max` | `g` goes to the position of the maximum; where several elements tie for the maximum, it is **split evenly** between them (a fair subgradient; PyTorch's `amax` does the same) |
# | `getitem` (`index`) | zeros of the input's shape, with `g` **added** at the indexed positions: `np.add.at`, because an integer index array may repeat a position (`x[[0, 0, 1]]`) and each repetition contributes |
#
# `axis` may be `None` (every axis), an int (possibly negative) or a tuple. An index may be a
# Tensor (unwrap its data, as `__getitem__` does).

# %% nbgrader={"grade": false, "grade_id": "shape-rules", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def _reduced_axes(axis, ndim: int) -> tuple:
    """The axes a reduction with `axis` (None, int or tuple) removes, as non-negative ints."""
    if axis is None:
        return tuple(range(ndim))
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    return tuple(int(a) % ndim for a in axes)


@gradient_rule("reshape")
def reshape_backward(node: GraphNode, grad: np.ndarray) -> tuple:
    ### BEGIN SOLUTION
    (x,) = node.arrays()
    return (np.reshape(grad, x.shape),)
    ### END SOLUTION


@gradient_rule("transpose")
def transpose_backward(node: GraphNode, grad: np.ndarray) -> tuple:
    ### BEGIN SOLUTION
    axes = node.params["axes"]
    if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
        axes = tuple(axes[0])
    if not axes:
        return (np.transpose(grad),)
    return (np.transpose(grad, np.argsort(axes)),)
    ### END SOLUTION


@gradient_rule("sum")
def sum_backward(node: GraphNode, grad: np.ndarray) -> tuple:
    ### BEGIN SOLUTION
    (x,) = node.arrays()
    axes = _reduced_axes(node.params["axis"], x.ndim)
    if not node.params["keepdims"]:
        grad = np.expand_dims(grad, axes)
    return (np.broadcast_to(grad, x.shape),)
    ### END SOLUTION


@gradient_rule("mean")
def mean_backward(node: GraphNode, grad: np.ndarray) -> tuple:
    ### BEGIN SOLUTION
    (x,) = node.arrays()
    axes = _reduced_axes(node.params["axis"], x.ndim)
    if not node.params["keepdims"]:
        grad = np.expand_dims(grad, axes)
    averaged = int(np.prod([x.shape[a] for a in axes]))
    return (np.broadcast_to(grad / averaged, x.shape),)
    ### END SOLUTION


@gradient_rule("max", saves_output=True)
def max_backward(node: GraphNode, grad: np.ndarray) -> tuple:
    ### BEGIN SOLUTION
    (x,) = node.arrays()
    axes = _reduced_axes(node.params["axis"], x.ndim)
    largest, grad = node.output, np.asarray(grad)
    if not node.params["keepdims"]:
        largest, grad = np.expand_dims(largest, axes), np.expand_dims(grad, axes)
    winners = (x == largest)
    share = winners / winners.sum(axis=axes, keepdims=True)   # ties split the gradient evenly
    return (grad * share,)
    ### END SOLUTION


@gradient_rule("getitem")
def getitem_backward(node: GraphNode, grad: np.ndarray) -> tuple:
    ### BEGIN SOLUTION
    (x,) = node.arrays()
    index = node.params["index"]
    key = index.data if isinstance(index, Tensor) else index
    scattered = np.zeros(x.shape, dtype=np.result_type(grad, x))
    np.add.at(scattered, key, grad)                           # repeated positions add up
    return (scattered,)
    ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "test-shape-rules", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
def finite_difference(loss, arrays, which, eps=1e-6):
    """Central differences of the scalar loss(*arrays) with respect to arrays[which], in float64."""
    arrays = [np.array(a, dtype=np.float64) for a in arrays]
    slope = np.zeros_like(arrays[which])
    for position in np.ndindex(arrays[which].shape):
        original = arrays[which][position]
        arrays[which][position] = original + eps
        above = loss(*arrays)
        arrays[which][position] = original - eps
        below = loss(*arrays)
        arrays[which][position] = original
        slope[position] = (above - below) / (2 * eps)
    return slope

def check_unary(label, tensor_op, numpy_op, x64, seed=0):
    upstream = np.random.default_rng(seed).standard_normal(np.shape(numpy_op(x64)))
    expected = finite_difference(lambda x: np.sum(upstream * numpy_op(x)), [x64], 0)
    x = Tensor(x64, dtype=np.float64, requires_grad=True)
    tensor_op(x).backward(upstream)
    assert x.grad is not None and x.grad.shape == x64.shape, f"{label}: x.grad must have shape {x64.shape}"
    np.testing.assert_allclose(x.grad.data, expected, rtol=1e-6, atol=1e-7, err_msg=label)

def test_unit_shape_and_reduction_rules():
    x64 = np.random.default_rng(10).standard_normal((2, 3, 4))
    check_unary("reshape", lambda x: x.reshape(4, 6), lambda x: x.reshape(4, 6), x64)
    check_unary("transpose(1, 2, 0)", lambda x: x.transpose(1, 2, 0), lambda x: x.transpose(1, 2, 0), x64)
    check_unary("sum(axis=1)", lambda x: x.sum(axis=1), lambda x: x.sum(axis=1), x64)
    check_unary("sum()", lambda x: x.sum(), lambda x: x.sum(), x64)
    check_unary("mean(axis=(0, 2), keepdims)", lambda x: x.mean(axis=(0, 2), keepdims=True),
                lambda x: x.mean(axis=(0, 2), keepdims=True), x64)
    check_unary("mean()", lambda x: x.mean(), lambda x: x.mean(), x64)
    check_unary("max(axis=-1)", lambda x: x.max(axis=-1), lambda x: x.max(axis=-1), x64)

def test_unit_indexing_rules():
    x64 = np.random.default_rng(11).standard_normal((4, 3))
    check_unary("x[1:3, ::2]", lambda x: x[1:3, ::2], lambda x: x[1:3, ::2], x64)
    check_unary("x[[0, 2, 0, 0]] (repeats)", lambda x: x[np.array([0, 2, 0, 0])], lambda x: x[np.array([0, 2, 0, 0])], x64)
    mask = x64 > 0
    check_unary("x[mask]", lambda x: x[mask], lambda x: x[mask], x64)

def test_unit_max_ties_split_evenly():
    x = Tensor(np.array([[1.0, 3.0, 3.0], [2.0, 0.0, -1.0]]), dtype=np.float64, requires_grad=True)
    x.max(axis=1).backward(np.array([1.0, 1.0]))
    np.testing.assert_allclose(x.grad.data, [[0.0, 0.5, 0.5], [1.0, 0.0, 0.0]], rtol=0, atol=1e-15)

test_unit_shape_and_reduction_rules()
test_unit_indexing_rules()
test_unit_max_ties_split_evenly()
### BEGIN HIDDEN TESTS
def test_hidden_shape_rules_more_cases():
    x64 = np.random.default_rng(12).standard_normal((3, 1, 4))
    check_unary("transpose()", lambda x: x.transpose(), lambda x: x.transpose(), x64)
    check_unary("T then reshape", lambda x: x.T.reshape(-1), lambda x: x.T.reshape(-1), x64)
    check_unary("sum(axis=(-1, 0))", lambda x: x.sum(axis=(-1, 0)), lambda x: x.sum(axis=(-1, 0)), x64)
    check_unary("mean(axis=2)", lambda x: x.mean(axis=2), lambda x: x.mean(axis=2), x64)
    check_unary("max() keepdims", lambda x: x.max(axis=None, keepdims=True), lambda x: x.max(axis=None, keepdims=True), x64)
    check_unary("x[2, 0, 1]", lambda x: x[2, 0, 1], lambda x: x[2, 0, 1], x64)
    check_unary("x[Tensor([1, 1])]", lambda x: x[Tensor(np.array([1, 1]))], lambda x: x[np.array([1, 1])], x64)

def test_hidden_transpose_axes_as_one_tuple():
    # x.transpose((2, 0, 1)) and x.transpose(2, 0, 1) are the same permutation; the gradient undoes it
    values = np.arange(24.0).reshape(2, 3, 4)
    upstream = np.random.default_rng(3).standard_normal((4, 2, 3))
    x = Tensor(values, dtype=np.float64, requires_grad=True)
    x.transpose((2, 0, 1)).backward(upstream)
    np.testing.assert_allclose(x.grad.data, upstream.transpose(1, 2, 0), rtol=0, atol=0)

test_hidden_shape_rules_more_cases()
test_hidden_transpose_axes_as_one_tuple()
### END HIDDEN TESTS

# %% [markdown]
# ## Part 7: activations
#
# Module 02's activations report themselves as one operation each (`relu`, `sigmoid`, `tanh`,
# `gelu`, and `softmax` with its `axis`), whatever their `forward` does inside. Their rules:
#
# | op | derivative | computed from |
# |---|---|---|
# | `relu` | `1` where `x > 0`, else `0` | the input |
# | `sigmoid` | `s (1 - s)` | the **output** `s` (`saves_output=True`) |
# | `tanh` | `1 - t²` | the output `t` |
# | `gelu` | see below | the input |
# | `softmax` | `dx = s ⊙ (g - Σ_axis g ⊙ s)` | the output `s` |
#
# **GELU.** Module 02 computes the *tanh approximation*, so differentiate that, not the exact
# `x Φ(x)`: with `u = c (x + 0.044715 x³)`, `c = sqrt(2/π)`,
#
# ```
#   gelu(x)  = 0.5 x (1 + tanh u)
#   gelu'(x) = 0.5 (1 + tanh u) + 0.5 x (1 - tanh² u) · c (1 + 3 · 0.044715 x²)
# ```
#
# (its forward clips x to [-10, 10] inside `u` only, where tanh is already ±1; the second term is
# then 0 to within float precision, so no special case is needed, but use the same clipped x in
# `u` to differentiate exactly what it computes). **Softmax** couples the entries along `axis`:
# its Jacobian is `diag(s) - s sᵀ`, and multiplying the upstream gradient by it gives the formula
# in the table without ever building the `C × C` matrix.

# %% nbgrader={"grade": false, "grade_id": "activation-rules", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
GELU_SCALE = float(np.sqrt(2.0 / np.pi))   # module 02's tanh-approximation constants
GELU_CUBIC = 0.044715


@gradient_rule("relu")
def relu_backward(node: GraphNode, grad: np.ndarray) -> tuple:
    ### BEGIN SOLUTION
    (x,) = node.arrays()
    return (grad * (x > 0),)
    ### END SOLUTION


@gradient_rule("sigmoid", saves_output=True)
def sigmoid_backward(node: GraphNode, grad: np.ndarray) -> tuple:
    ### BEGIN SOLUTION
    squashed = node.output
    return (grad * squashed * (1 - squashed),)
    ### END SOLUTION


@gradient_rule("tanh", saves_output=True)
def tanh_backward(node: GraphNode, grad: np.ndarray) -> tuple:
    ### BEGIN SOLUTION
    bent = node.output
    return (grad * (1 - bent * bent),)
    ### END SOLUTION


@gradient_rule("gelu")
def gelu_backward(node: GraphNode, grad: np.ndarray) -> tuple:
    ### BEGIN SOLUTION
    (x,) = node.arrays()
    clipped = np.clip(x, -10, 10)
    squared = clipped * clipped          # not clipped**3: float32 ** is a slow pow() call per element
    tanh_u = np.tanh(GELU_SCALE * (clipped + GELU_CUBIC * squared * clipped))
    du_dx = GELU_SCALE * (1 + 3 * GELU_CUBIC * squared) * (np.abs(x) <= 10)
    slope = 0.5 * (1 + tanh_u) + 0.5 * x * (1 - tanh_u * tanh_u) * du_dx
    return (grad * slope,)
    ### END SOLUTION


@gradient_rule("softmax", saves_output=True)
def softmax_backward(node: GraphNode, grad: np.ndarray) -> tuple:
    ### BEGIN SOLUTION
    probabilities, axis = node.output, node.params["axis"]
    weighted = np.sum(grad * probabilities, axis=axis, keepdims=True)
    return (probabilities * (grad - weighted),)
    ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "test-activation-rules", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def finite_difference(loss, arrays, which, eps=1e-6):
    """Central differences of the scalar loss(*arrays) with respect to arrays[which], in float64."""
    arrays = [np.array(a, dtype=np.float64) for a in arrays]
    slope = np.zeros_like(arrays[which])
    for position in np.ndindex(arrays[which].shape):
        original = arrays[which][position]
        arrays[which][position] = original + eps
        above = loss(*arrays)
        arrays[which][position] = original - eps
        below = loss(*arrays)
        arrays[which][position] = original
        slope[position] = (above - below) / (2 * eps)
    return slope

def check_activation(label, activation, numpy_forward, x64, seed=0):
    upstream = np.random.default_rng(seed).standard_normal(x64.shape)
    expected = finite_difference(lambda x: np.sum(upstream * numpy_forward(x)), [x64], 0)
    x = Tensor(x64, dtype=np.float64, requires_grad=True)
    out = activation(x)
    assert out.requires_grad, f"{label}: the output of an activation on a tensor requiring grad must require grad"
    out.backward(upstream)
    assert x.grad is not None, f"{label}: no gradient reached the input"
    np.testing.assert_allclose(x.grad.data, expected, rtol=1e-5, atol=1e-7, err_msg=label)

def gelu_tanh_formula(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))

def softmax_formula(x, axis):
    shifted = np.exp(x - x.max(axis=axis, keepdims=True))
    return shifted / shifted.sum(axis=axis, keepdims=True)

def test_unit_activation_rules():
    gen = np.random.default_rng(20)
    x64 = gen.uniform(0.1, 3.0, (3, 5)) * gen.choice([-1, 1], (3, 5))   # away from relu's kink at 0
    check_activation("relu", ReLU(), lambda x: np.maximum(x, 0), x64)
    check_activation("sigmoid", Sigmoid(), lambda x: 1 / (1 + np.exp(-x)), x64)
    check_activation("tanh", Tanh(), np.tanh, x64)
    check_activation("gelu", GELU(), gelu_tanh_formula, x64)
    check_activation("softmax(axis=-1)", Softmax(), lambda x: softmax_formula(x, -1), x64)

test_unit_activation_rules()
### BEGIN HIDDEN TESTS
def test_hidden_activations_in_a_chain_and_softmax_axis():
    gen = np.random.default_rng(21)
    x64 = gen.standard_normal((4, 3, 2))
    check_activation("softmax(axis=0)", Softmax(axis=0), lambda x: softmax_formula(x, 0), x64, seed=1)
    check_activation("gelu at large |x|", GELU(), gelu_tanh_formula, np.array([-12.0, -4.0, 0.3, 4.0, 12.0]), seed=2)
    check_activation("tanh(sigmoid(x)) * relu(x)", lambda x: Tanh()(Sigmoid()(x)) * ReLU()(x),
                     lambda x: np.tanh(1 / (1 + np.exp(-x))) * np.maximum(x, 0), x64 + 0.05, seed=3)

def test_hidden_relu_gradient_at_the_kink_is_zero():
    # the rule is 1 where x > 0, else 0: at exactly 0 the gradient is 0 (PyTorch's choice too)
    x = Tensor(np.array([-1.0, 0.0, 0.0, 2.0]), dtype=np.float64, requires_grad=True)
    ReLU()(x).backward(np.array([5.0, 6.0, 7.0, 8.0]))
    np.testing.assert_array_equal(x.grad.data, [0.0, 0.0, 0.0, 8.0], err_msg="relu's gradient at x == 0 is 0")

test_hidden_activations_in_a_chain_and_softmax_axis()
test_hidden_relu_gradient_at_the_kink_is_zero()
### END HIDDEN TESTS

# %% [markdown]
# ### A fused operation is one node too
#
# Module 15's `backend_forward` runs a `Linear` and the activation after it as one fused kernel
# (`act(x @ W + b)` in one pass over the output) and reports it as a single operation, `linear`,
# with inputs `(x, weight, bias)` and `activation` ("relu", "gelu" or None). Its rule (given) is
# the chain of the rules you wrote: the activation's rule, then `+ bias`, then matmul's. The
# fused kernel overwrote `x @ W + b` in place, so for GELU the rule recomputes it (one extra
# matmul: the classic trade of compute for memory); ReLU's mask is readable from the output.

# %%
#| export
@gradient_rule("linear", saves_output=True)
def linear_backward(node: GraphNode, grad: np.ndarray) -> tuple:
    x, weight = node.arrays()[:2]
    bias = node.inputs[2]
    activation = node.params.get("activation")
    if activation == "relu":           # relu(z) > 0 exactly where z > 0
        grad = _GRADIENT_RULES["relu"](GraphNode("relu", (node.output,), {}, (True,)), grad)[0]
    elif activation == "gelu":
        pre_activation = matmul(x, weight) + (0 if bias is None else np.asarray(bias.data if isinstance(bias, Tensor) else bias))
        grad = _GRADIENT_RULES["gelu"](GraphNode("gelu", (pre_activation,), {}, (True,)), grad)[0]
    elif activation is not None:
        raise NotImplementedError(f"no gradient for a fused linear with activation {activation!r}")
    product = GraphNode("matmul", (x, weight), {}, node.needs_grad[:2])
    grad_x, grad_weight = _GRADIENT_RULES["matmul"](product, grad)
    grad_bias = None if bias is None else unbroadcast(grad, np.shape(bias.data if isinstance(bias, Tensor) else bias))
    return grad_x, grad_weight, grad_bias

# %% [markdown]
# ## Part 8: the losses
#
# Module 04's losses report themselves as one operation each, with `reduction` `"mean"` or
# `"sum"` (and `"none"`: one loss per sample, whose upstream gradient has that shape). One
# operation per loss is not only shorter: the combined gradients are simpler and more stable than
# the chain of their pieces.
#
# | op (inputs) | per-element loss | gradient of the first input (reduction "sum") |
# |---|---|---|
# | `mse_loss` (p, t) | `(p - t)²` | `2 (p - t)`; the target gets the negative |
# | `cross_entropy_loss` (z `(N, C)`, y `(N,)` ints) | `logsumexp(z_n) - z_n[y_n]` | `softmax(z) - onehot(y)`, row by row |
# | `binary_cross_entropy_loss` (z, t) | `max(z, 0) - z t + log(1 + e^-\|z\|)` | `sigmoid(z) - t`; the target gets `-z` |
#
# With `"mean"` every gradient is divided by the number of terms averaged: `N` samples for cross
# entropy, every element for the other two. Forgetting that `1/N` makes the step size grow with
# the batch size. Class labels never get a gradient (return `None`).

# %% nbgrader={"grade": false, "grade_id": "loss-rules", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def _reduction_scale(grad: np.ndarray, reduction: str, terms: int, per_term_shape: tuple) -> np.ndarray:
    """The upstream gradient of a reduced loss as one factor per term (shape `per_term_shape`)."""
    if reduction == "none":
        return np.asarray(grad).reshape(per_term_shape)
    if reduction == "mean":
        return np.asarray(grad) / terms
    if reduction == "sum":
        return np.asarray(grad)
    raise ValueError(f"unknown reduction {reduction!r}; use 'mean', 'sum' or 'none'")


@gradient_rule("mse_loss")
def mse_loss_backward(node: GraphNode, grad: np.ndarray) -> tuple:
    ### BEGIN SOLUTION
    predictions, targets = node.arrays()
    difference = predictions - targets
    per_term = _reduction_scale(grad, node.params["reduction"], difference.size, difference.shape)
    grad_predictions = 2 * per_term * difference
    return unbroadcast(grad_predictions, predictions.shape), unbroadcast(-grad_predictions, targets.shape)
    ### END SOLUTION


@gradient_rule("cross_entropy_loss")
def cross_entropy_loss_backward(node: GraphNode, grad: np.ndarray) -> tuple:
    ### BEGIN SOLUTION
    logits, labels = node.arrays()
    labels = labels.astype(np.intp)
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    probabilities = shifted / shifted.sum(axis=-1, keepdims=True)
    rows = labels[..., None]
    np.put_along_axis(probabilities, rows, np.take_along_axis(probabilities, rows, axis=-1) - 1, axis=-1)
    per_term = _reduction_scale(grad, node.params["reduction"], labels.size, labels.shape)
    per_term = per_term[..., None] if np.ndim(per_term) else per_term
    return probabilities * per_term, None
    ### END SOLUTION


@gradient_rule("binary_cross_entropy_loss")
def binary_cross_entropy_loss_backward(node: GraphNode, grad: np.ndarray) -> tuple:
    ### BEGIN SOLUTION
    logits, targets = node.arrays()
    probability = np.exp(np.minimum(logits, 0)) / (1 + np.exp(-np.abs(logits)))   # sigmoid without overflow
    per_term = _reduction_scale(grad, node.params["reduction"], np.broadcast(logits, targets).size,
                                np.broadcast_shapes(logits.shape, targets.shape))
    return (unbroadcast(per_term * (probability - targets), logits.shape),
            unbroadcast(per_term * -logits, targets.shape))
    ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "test-loss-rules", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def finite_difference(loss, arrays, which, eps=1e-6):
    """Central differences of the scalar loss(*arrays) with respect to arrays[which], in float64."""
    arrays = [np.array(a, dtype=np.float64) for a in arrays]
    slope = np.zeros_like(arrays[which])
    for position in np.ndindex(arrays[which].shape):
        original = arrays[which][position]
        arrays[which][position] = original + eps
        above = loss(*arrays)
        arrays[which][position] = original - eps
        below = loss(*arrays)
        arrays[which][position] = original
        slope[position] = (above - below) / (2 * eps)
    return slope

def cross_entropy_formula(z, labels, reduction):
    top = z.max(axis=1, keepdims=True)
    per_sample = np.log(np.exp(z - top).sum(axis=1)) + top[:, 0] - z[np.arange(len(labels)), labels]
    return per_sample.mean() if reduction == "mean" else per_sample.sum()

def bce_formula(z, t, reduction):
    per_element = np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))
    return per_element.mean() if reduction == "mean" else per_element.sum()

def test_unit_loss_rules():
    gen = np.random.default_rng(30)
    for reduction in ("mean", "sum"):
        p64, t64 = gen.standard_normal((6, 2)), gen.standard_normal((6, 2))
        expected = finite_difference(lambda p: np.mean((p - t64) ** 2) if reduction == "mean" else np.sum((p - t64) ** 2), [p64], 0)
        p = Tensor(p64, dtype=np.float64, requires_grad=True)
        MSELoss(reduction=reduction)(p, Tensor(t64, dtype=np.float64)).backward()
        np.testing.assert_allclose(p.grad.data, expected, rtol=1e-6, atol=1e-8, err_msg=f"MSELoss({reduction!r})")

        z64, labels = gen.standard_normal((5, 4)) * 3, np.array([0, 3, 1, 3, 2])
        expected = finite_difference(lambda z: cross_entropy_formula(z, labels, reduction), [z64], 0)
        z = Tensor(z64, dtype=np.float64, requires_grad=True)
        CrossEntropyLoss(reduction=reduction)(z, Tensor(labels)).backward()
        np.testing.assert_allclose(z.grad.data, expected, rtol=1e-6, atol=1e-8, err_msg=f"CrossEntropyLoss({reduction!r})")

test_unit_loss_rules()
### BEGIN HIDDEN TESTS
def test_hidden_bce_rule_and_large_logits():
    gen = np.random.default_rng(31)
    for reduction in ("mean", "sum"):
        z64, t64 = gen.standard_normal((3, 4)) * 4, gen.uniform(0, 1, (3, 4))
        expected = finite_difference(lambda z: bce_formula(z, t64, reduction), [z64], 0)
        z = Tensor(z64, dtype=np.float64, requires_grad=True)
        BinaryCrossEntropyLoss(reduction=reduction)(z, Tensor(t64, dtype=np.float64)).backward()
        np.testing.assert_allclose(z.grad.data, expected, rtol=1e-6, atol=1e-8, err_msg=f"BinaryCrossEntropyLoss({reduction!r})")
    huge = Tensor(np.array([[100.0, -100.0]]), dtype=np.float64, requires_grad=True)
    CrossEntropyLoss()(huge, Tensor(np.array([1]))).backward()
    np.testing.assert_allclose(huge.grad.data, [[1.0, -1.0]], rtol=0, atol=1e-12)

test_hidden_bce_rule_and_large_logits()
### END HIDDEN TESTS

# %% [markdown]
# ## Part 9: a whole network learns
#
# Nothing new to write: `Linear` is `matmul` then `+` (module 03), so its weight and bias get
# gradients from the rules above. The test checks a two-layer MLP's gradients against finite
# differences of the same network written in NumPy.

# %% nbgrader={"grade": true, "grade_id": "test-mlp-gradients", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
def test_unit_mlp_gradients():
    gen = np.random.default_rng(40)
    model = Sequential(Linear(3, 5, seed=1), ReLU(), Linear(5, 4, seed=2))
    x64, labels = gen.standard_normal((6, 3)), np.array([0, 1, 2, 3, 1, 0])
    weights = [layer.weight.data.astype(np.float64) for layer in (model.layers[0], model.layers[2])]
    biases = [np.array([0.1, -0.2, 0.3, 0.0, 0.05]), np.array([0.2, -0.1, 0.0, 0.1])]
    for layer, bias in zip((model.layers[0], model.layers[2]), biases):
        layer.weight = Tensor(layer.weight.data, dtype=np.float64, requires_grad=True)
        layer.bias = Tensor(bias, dtype=np.float64, requires_grad=True)

    def numpy_loss(w1, b1, w2, b2):
        z = np.maximum(x64 @ w1 + b1, 0) @ w2 + b2
        top = z.max(axis=1, keepdims=True)
        return np.mean(np.log(np.exp(z - top).sum(axis=1)) + top[:, 0] - z[np.arange(6), labels])

    CrossEntropyLoss()(model(Tensor(x64, dtype=np.float64)), Tensor(labels)).backward()
    arrays = [weights[0], biases[0], weights[1], biases[1]]
    got = [model.layers[0].weight.grad, model.layers[0].bias.grad, model.layers[2].weight.grad, model.layers[2].bias.grad]
    for which, (name, grad) in enumerate(zip(["W1", "b1", "W2", "b2"], got)):
        assert grad is not None, f"{name}.grad is None: the gradient did not reach the first layer"
        eps = 1e-6
        expected = np.zeros_like(arrays[which])
        for position in np.ndindex(arrays[which].shape):
            plus = [a.copy() for a in arrays]
            minus = [a.copy() for a in arrays]
            plus[which][position] += eps
            minus[which][position] -= eps
            expected[position] = (numpy_loss(*plus) - numpy_loss(*minus)) / (2 * eps)
        np.testing.assert_allclose(grad.data, expected, rtol=1e-5, atol=1e-8, err_msg=name)

test_unit_mlp_gradients()
### BEGIN HIDDEN TESTS
def test_hidden_mlp_input_gets_no_grad_work():
    model = Sequential(Linear(4, 3, seed=5), Tanh(), Linear(3, 2, seed=6))
    x = Tensor(np.ones((2, 4)))
    MSELoss()(model(x), Tensor(np.zeros((2, 2)))).backward()
    assert x.grad is None, "data that does not require grad gets no gradient"
    assert model.layers[0].weight.grad.shape == (4, 3) and model.layers[0].bias.grad.shape == (3,)

test_hidden_mlp_input_gets_no_grad_work()
### END HIDDEN TESTS

# %% [markdown]
# ### Gradient descent by hand on the digits
#
# The 8×8 handwritten digits that scikit-learn ships (1,797 images; module 05 turns them into a
# proper data pipeline) and a 64-32-10 MLP. Each step: forward, loss, `backward()`, then move every
# parameter against its gradient by hand, `p.data -= lr * p.grad.data` (module 07 packages this as
# an optimizer). The update writes into the arrays directly, so nothing is recorded. The losses printed below are measured on your machine; they should fall.

# %%
import os

from sklearn.datasets import load_digits

QUICK = os.environ.get("TITO_AUTOGRADING") == "1"   # shrink sizes and repeats while grading

digits = load_digits()
images = (digits.data / 16.0).astype(np.float32)        # pixel values 0..16 -> 0..1
labels = digits.target
model = Sequential(Linear(64, 32, seed=0), ReLU(), Linear(32, 10, seed=1))
criterion = CrossEntropyLoss()
learning_rate, steps, batch = 0.5, (20 if QUICK else 100), 128
order = np.random.default_rng(0).permutation(len(images))
losses = []
for step in range(steps):
    rows = order[(step * batch) % len(images):][:batch]
    loss = criterion(model(Tensor(images[rows])), Tensor(labels[rows]))
    for parameter in model.parameters():
        parameter.grad = None                            # gradients accumulate: clear them each step
    loss.backward()
    for parameter in model.parameters():
        parameter.data -= learning_rate * parameter.grad.data
    losses.append(float(loss.data))
with no_grad():
    full_loss = float(criterion(model(Tensor(images)), Tensor(labels)).data)
    accuracy = float(np.mean(np.argmax(model(Tensor(images)).data, axis=1) == labels))
print(f"loss over {steps} SGD steps of {batch} images: first {losses[0]:.3f}, last {losses[-1]:.3f}")
print(f"after training: loss on all 1,797 images {full_loss:.3f}, accuracy {accuracy:.1%} (training images: not a test score)")

# %% [markdown]
# ## Analysis: what the graph costs
#
# **Memory.** Every recorded node keeps its inputs alive (and, for some ops, its output), so
# after the forward pass the graph holds on to every intermediate activation until the graph is
# dropped: this is the memory that training needs and inference (`no_grad()`) does not. Measured
# with `tracemalloc` on an MLP 784-256-256-10 at batch 64: the memory still allocated after the
# forward pass with the graph, and the same forward under `no_grad()` (only the logits survive).
# The last line adds up the bytes of the distinct arrays the graph references, walking it from
# the loss: it should agree with the first to within the small Python objects. Note what is in
# there: each `Linear` keeps two arrays of the batch's width, the product `x @ W` and the sum
# `+ b`, although `add`'s rule reads neither (the product stays alive because the add node
# references its input Tensor). A fused `linear` node (module 15) keeps one.
#
# **Time.** Backward does two matmuls for each forward one (`dX = G Wᵀ`, `dW = Xᵀ G`; the first
# layer skips `dX`), so expect backward to take one to two times the forward time. Median of
# repeats after a warm-up, BLAS on one thread.

# %%
import statistics
import timeit
import tracemalloc

from threadpoolctl import threadpool_info, threadpool_limits


def graph_arrays(root) -> dict:
    """id -> array for every distinct array the graph below `root` keeps alive (parameters excluded)."""
    found, stack, seen = {}, [root], set()
    while stack:
        tensor = stack.pop()
        node = tensor.grad_fn
        if node is None or id(tensor) in seen:
            continue
        seen.add(id(tensor))
        found[id(tensor.data)] = tensor.data
        if node.output is not None:
            found[id(node.output)] = node.output
        stack.extend(t for t in node.inputs if isinstance(t, Tensor))
    return found


def mlp_step_parts(batch_size: int, widths=(784, 256, 256, 10)):
    layers = []
    for position, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
        layers += [Linear(fan_in, fan_out, seed=position), ReLU()]
    network = Sequential(*layers[:-1])
    gen = np.random.default_rng(0)
    inputs = Tensor(gen.standard_normal((batch_size, widths[0])).astype(np.float32))
    targets = Tensor(gen.integers(0, widths[-1], batch_size))
    return network, inputs, targets


network, inputs, targets = mlp_step_parts(64)
tracemalloc.start()
start_bytes = tracemalloc.get_traced_memory()[0]
loss = criterion(network(inputs), targets)
with_graph = tracemalloc.get_traced_memory()[0] - start_bytes
referenced = sum(array.nbytes for array in graph_arrays(loss).values())
del loss
start_bytes = tracemalloc.get_traced_memory()[0]
with no_grad():
    logits = network(inputs)
without_graph = tracemalloc.get_traced_memory()[0] - start_bytes
tracemalloc.stop()
del logits
parameter_bytes = sum(p.data.nbytes for p in network.parameters())
print("MLP 784-256-256-10, batch 64, float32")
print(f"  parameters                          : {parameter_bytes / 2**10:8.1f} KiB")
print(f"  kept after forward, graph recorded  : {with_graph / 2**10:8.1f} KiB")
print(f"  kept after forward, no_grad()       : {without_graph / 2**10:8.1f} KiB")
print(f"  arrays the graph references (walked): {referenced / 2**10:8.1f} KiB")

# %%
blas = [f"{p['internal_api']} ({p.get('architecture', '?')})" for p in threadpool_info() if p.get("user_api") == "blas"]
repeats = 5 if QUICK else 21
print(f"BLAS: {', '.join(blas) or 'none found'}; 1 thread; median of {repeats} repeats")
print(f"{'batch':>6} {'forward (ms)':>13} {'backward (ms)':>14} {'backward/forward':>17}")
with threadpool_limits(limits=1, user_api="blas"):
    for batch_size in ((16, 64) if QUICK else (16, 64, 256)):
        network, inputs, targets = mlp_step_parts(batch_size)
        graphs = []

        def forward():
            graphs.append(criterion(network(inputs), targets))

        def backward():
            graphs.pop().backward()

        forward_s, backward_s = [], []
        for _ in range(repeats + 1):                      # the first round is the warm-up
            forward_s.append(timeit.timeit(forward, number=1))
            backward_s.append(timeit.timeit(backward, number=1))
        fwd, bwd = statistics.median(forward_s[1:]), statistics.median(backward_s[1:])
        print(f"{batch_size:>6} {fwd * 1e3:>13.3f} {bwd * 1e3:>14.3f} {bwd / fwd:>17.2f}")
