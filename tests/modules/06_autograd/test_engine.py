"""Package tests for tinytorch.core.autograd: the recorder, grad mode, and the backward pass itself."""

import gc
import sys
import weakref

import numpy as np
import pytest

from tinytorch.core import autograd
from tinytorch.core.autograd import GraphNode, gradient_rule, is_grad_enabled, no_grad, topological_order
from tinytorch.core.tensor import Tensor, record_op, set_op_recorder


def leaf(values, dtype=np.float64):
    return Tensor(np.asarray(values, dtype=dtype), dtype=dtype, requires_grad=True)


# --- installation through module 01's seam ---------------------------------------------------

def test_import_attaches_methods_and_installs_the_recorder():
    assert Tensor.backward is autograd.backward and Tensor.detach is autograd.detach
    previous = set_op_recorder(None)
    try:
        assert previous is autograd.record_operation
    finally:
        set_op_recorder(previous)


def test_results_require_grad_only_when_an_input_does():
    x, data = leaf([1.0, 2.0]), Tensor(np.ones(2))
    assert (x * data).requires_grad and (data * x).requires_grad
    assert not (data * data).requires_grad and (data * data).grad_fn is None
    assert (x * 2.0).grad_fn.op == "mul" and x.is_leaf and not (x * 2.0).is_leaf


def test_node_keeps_output_only_for_rules_that_read_it():
    x = leaf([[0.5, -0.5]])
    assert x.sum().grad_fn.output is None
    assert x.max().grad_fn.output is not None        # max's rule reads the forward result
    node = (x * 3.0).grad_fn
    assert node.inputs[0] is x and node.inputs[1] == 3.0 and node.needs_grad == (True, False)


def test_graph_has_no_reference_cycle():
    x = leaf(np.ones((3, 3)))
    y = (x * 2.0).max(axis=0)             # max keeps its output array, never the output Tensor
    watcher = weakref.ref(y.grad_fn.inputs[0])
    gc.disable()
    try:
        del y
        assert watcher() is None, "dropping the result must free the graph without the garbage collector"
    finally:
        gc.enable()


def test_integer_results_and_no_grad_record_nothing():
    x = leaf([1.0, 2.0])
    assert not Tensor(np.arange(3)).sum().requires_grad
    with no_grad():
        assert not is_grad_enabled()
        inside = x * 2.0
        with no_grad():
            pass
        assert not is_grad_enabled()
    assert is_grad_enabled() and not inside.requires_grad and inside.grad_fn is None


def test_no_grad_restores_the_mode_after_an_exception():
    with pytest.raises(KeyError):
        with no_grad():
            raise KeyError("boom")
    assert is_grad_enabled()


def test_detach_shares_data_and_drops_history():
    x = leaf([1.0, 2.0])
    y = x * 3.0
    frozen = y.detach()
    assert np.shares_memory(frozen.data, y.data)
    assert not frozen.requires_grad and frozen.grad_fn is None and frozen.dtype == y.dtype
    (frozen * x).sum().backward()          # the detached branch is a constant
    np.testing.assert_allclose(x.grad.data, [3.0, 6.0])


# --- backward ---------------------------------------------------------------------------------

def test_reused_tensor_gets_every_path():
    x = leaf([1.5, -2.0])
    y = x * x                               # one op, two uses
    z = y + x                               # a residual connection
    (z * z).sum().backward()
    expected = 2 * (x.data**2 + x.data) * (2 * x.data + 1)
    np.testing.assert_allclose(x.grad.data, expected, rtol=1e-12)


def test_grad_accumulates_across_calls_until_cleared():
    w = leaf([1.0, 2.0])
    (w * 3.0).sum().backward()
    (w * w).sum().backward()
    np.testing.assert_allclose(w.grad.data, [3.0 + 2.0, 3.0 + 4.0])
    w.grad = None
    (w * 1.0).sum().backward()
    np.testing.assert_allclose(w.grad.data, [1.0, 1.0])


def test_same_graph_backward_twice_adds_twice():
    w = leaf([2.0])
    loss = (w * w).sum()
    loss.backward()
    loss.backward()
    np.testing.assert_allclose(w.grad.data, [8.0])


def test_grad_is_a_plain_tensor_of_the_leaf_dtype_and_shape():
    w = Tensor(np.ones((2, 3), np.float32), requires_grad=True)
    (w * np.float32(2.0)).sum().backward()
    assert isinstance(w.grad, Tensor) and w.grad.dtype == np.float32 and w.grad.shape == (2, 3)
    assert not w.grad.requires_grad and w.grad.grad_fn is None


def test_gradients_of_two_leaves_never_share_memory():
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    (a + b).sum().backward()                # add's rule hands both the same upstream array
    a.grad.data += 10
    np.testing.assert_allclose(b.grad.data, [1.0, 1.0])


def test_intermediate_tensors_keep_no_grad():
    x = leaf([1.0])
    hidden = x * 2.0
    (hidden * hidden).sum().backward()
    assert hidden.grad is None and x.grad is not None


@pytest.mark.parametrize("op", ["add", "mul", "reshape"])
def test_ten_thousand_op_chain_needs_no_recursion(op):
    x = leaf(np.array([0.5]))
    y = x
    for _ in range(10_000):
        y = {"add": lambda t: t + 0.0, "mul": lambda t: t * 1.0, "reshape": lambda t: t.reshape(1)}[op](y)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)             # Python's default: a recursive walk would need 10,000 frames
    try:
        y.sum().backward()
    finally:
        sys.setrecursionlimit(limit)
    np.testing.assert_allclose(x.grad.data, [1.0])


def test_topological_order_lists_each_tensor_once_inputs_first():
    x = leaf([1.0])
    a = x * 2.0
    b = a + x
    c = b * a
    order = topological_order(c)
    assert len(order) == 4 and order[-1] is c
    position = {id(t): i for i, t in enumerate(order)}
    assert position[id(x)] < position[id(a)] < position[id(b)] < position[id(c)]


def test_backward_errors_say_what_to_do():
    x = leaf(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        (x * 2.0).backward()
    with pytest.raises(ValueError, match="shape"):
        (x * 2.0).backward(np.ones(3))
    with pytest.raises(RuntimeError, match="requires_grad"):
        Tensor(np.ones(1)).backward()
    (x * 2.0).backward(Tensor(np.ones((2, 3))))       # a Tensor gradient works too
    np.testing.assert_allclose(x.grad.data, np.full((2, 3), 2.0))


def test_one_element_tensor_of_any_shape_seeds_with_one():
    x = leaf([[3.0]])
    (x * x).backward()
    np.testing.assert_allclose(x.grad.data, [[6.0]])


def test_an_op_without_a_rule_fails_loudly_at_backward():
    x = leaf([1.0, 2.0])
    out = record_op("mystery_op", Tensor(x.data * 2), (x,))
    assert out.requires_grad and out.grad_fn.op == "mystery_op"
    with pytest.raises(NotImplementedError, match="mystery_op"):
        out.sum().backward()


def test_a_registered_rule_is_used():
    try:
        @gradient_rule("double_for_test")
        def double_backward(node: GraphNode, grad):
            return (2 * grad,)

        x = leaf([1.0, 2.0])
        record_op("double_for_test", Tensor(x.data * 2), (x,)).sum().backward()
        np.testing.assert_allclose(x.grad.data, [2.0, 2.0])
    finally:
        autograd._GRADIENT_RULES.pop("double_for_test", None)


def test_data_inputs_get_no_gradient_and_no_work():
    calls = []
    original = autograd._GRADIENT_RULES["matmul"]

    def spying_rule(node, grad):
        calls.append(node.needs_grad)
        return original(node, grad)

    autograd._GRADIENT_RULES["matmul"] = spying_rule
    try:
        data, weight = Tensor(np.ones((4, 3))), leaf(np.ones((3, 2)))
        (data @ weight).sum().backward()
    finally:
        autograd._GRADIENT_RULES["matmul"] = original
    assert calls == [(False, True)] and data.grad is None
