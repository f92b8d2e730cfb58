"""The course's optimized entries (modules 12, 15-18) compute what the reference computes, in less space."""

import numpy as np
import pytest

from tinytorch.benchmarking.tinymlperf import course_entries, get_task, stored_bytes
from tinytorch.core.autograd import no_grad
from tinytorch.core.tensor import Tensor


def logits_of(entry, x):
    context = entry.context() if entry.context is not None else None
    if context is not None:
        context.__enter__()
    try:
        with no_grad():
            out = entry.predict(x)
    finally:
        if context is not None:
            context.__exit__(None, None, None)
    return out.data if isinstance(out, Tensor) else np.asarray(out)


@pytest.fixture(scope="module")
def mlp_entries():
    task = get_task("digits-mlp")
    reference = task.train_reference(epochs=3)
    return task, reference, course_entries("digits-mlp", reference, fine_tune_epochs=1)


def test_digits_entries_are_the_four_optimizations(mlp_entries):
    _, _, entries = mlp_entries
    assert [e.optimizations[0].split(":")[0] for e in entries] == ["backend", "int8", "prune", "prune"]
    assert entries[-1].optimizations[-1].startswith("int8")


def test_backend_entry_computes_the_reference_logits(mlp_entries):
    task, reference, entries = mlp_entries
    _, _, x_eval, _ = task.data()
    with no_grad():
        expected = reference(Tensor(x_eval)).data
    np.testing.assert_allclose(logits_of(entries[0], x_eval), expected, rtol=1e-4, atol=1e-4)


def test_int8_entry_is_close_and_a_third_of_the_bytes(mlp_entries):
    task, reference, entries = mlp_entries
    _, _, x_eval, y_eval = task.data()
    int8 = entries[1]
    with no_grad():
        reference_predictions = np.argmax(reference(Tensor(x_eval)).data, axis=1)
    agreement = np.mean(np.argmax(logits_of(int8, x_eval), axis=1) == reference_predictions)
    assert agreement > 0.97
    assert stored_bytes(int8.model) < stored_bytes(reference) / 3


def test_pruned_entry_is_sparse_and_does_not_touch_the_reference(mlp_entries):
    _, reference, entries = mlp_entries
    pruned = entries[2].model
    kept = sum(layer.nnz for layer in pruned.layers if hasattr(layer, "nnz"))
    total = sum(p.data.size for p in reference.parameters() if p.data.ndim == 2)
    assert kept == pytest.approx(0.3 * total, rel=0.02)
    assert all(np.count_nonzero(p.data) == p.data.size for p in reference.parameters() if p.data.ndim == 2)


def test_gpt_cache_entries_generate_what_the_reference_generates():
    task = get_task("char-gpt")
    model = task.train_reference(steps=2, config={"dim": 16, "n_layers": 1, "n_heads": 2, "max_seq_len": 32})
    prompt = np.array(task.data()[0].encode(task.prompt), dtype=np.int64)
    expected = task.reference_entry(model).predict(prompt, 12)
    for entry in course_entries("char-gpt", model):
        np.testing.assert_array_equal(entry.predict(prompt, 12), expected, err_msg=entry.name)
