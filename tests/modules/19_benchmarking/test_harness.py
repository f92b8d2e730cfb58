"""Package tests for TinyMLPerf's measuring side: percentiles, accuracy, the harness, scores, the gate."""

import numpy as np
import pytest

from tinytorch.benchmarking.tinymlperf import (
    TASKS,
    Entry,
    HarnessSettings,
    Measurement,
    accuracy,
    digits_mlp,
    get_task,
    latency_summary,
    measure_entry,
    passes_quality_gate,
    percentile,
    relative_scores,
    stored_bytes,
)
from tinytorch.core.activations import ReLU
from tinytorch.core.layers import Linear, Sequential
from tinytorch.core.tensor import Tensor

TINY = HarnessSettings(warmup=1, queries=7, throughput_repeats=2)


# --- percentiles -------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 2, 3, 10, 99, 1000])
@pytest.mark.parametrize("q", [0, 1, 37.5, 50, 90, 99, 99.9, 100])
def test_percentile_equals_numpy_linear(n, q):
    samples = np.random.default_rng(n).lognormal(-7, 1, size=n)
    assert percentile(samples.tolist(), q) == pytest.approx(float(np.percentile(samples, q)), rel=1e-12, abs=1e-15)


def test_percentile_does_not_reorder_the_callers_list():
    samples = [3.0, 1.0, 2.0]
    percentile(samples, 50)
    assert samples == [3.0, 1.0, 2.0]


@pytest.mark.parametrize("samples, q", [([], 50), ([1.0], -0.1), ([1.0], 101)])
def test_percentile_bad_input(samples, q):
    with pytest.raises(ValueError):
        percentile(samples, q)


def test_latency_summary_orders_its_percentiles():
    samples = np.random.default_rng(3).exponential(1.0, 500)
    s = latency_summary(samples)
    assert s.p50_s <= s.p90_s <= s.p99_s and s.count == 500
    assert s.mean_s == pytest.approx(samples.mean(), rel=1e-12)


# --- accuracy ----------------------------------------------------------------------------------

@pytest.mark.parametrize("batch_size", [1, 7, 64, 1000])
def test_accuracy_equals_a_direct_count_for_any_batch_size(batch_size):
    model = Sequential(Linear(5, 8, seed=0), ReLU(), Linear(8, 4, seed=1))
    x = np.random.default_rng(0).standard_normal((101, 5)).astype(np.float32)
    y = np.random.default_rng(1).integers(0, 4, 101)
    expected = float(np.mean(np.argmax(model(Tensor(x)).data, axis=1) == y))
    assert accuracy(model, x, y, batch_size) == pytest.approx(expected, abs=1e-12)


def test_accuracy_rejects_mismatched_labels():
    with pytest.raises(ValueError, match="labels"):
        accuracy(lambda b: np.zeros((len(b), 2)), np.zeros((3, 1)), np.zeros(2))


# --- stored bytes ------------------------------------------------------------------------------

def test_stored_bytes_counts_parameters_of_a_model():
    model = digits_mlp()
    assert stored_bytes(model) == sum(p.data.nbytes for p in model.parameters()) == 4 * (64 * 128 + 128 + 128 * 128 + 128 + 128 * 10 + 10)


def test_stored_bytes_counts_a_shared_buffer_once_and_int8_as_one_byte():
    class Holder:
        def __init__(self):
            self.q = np.zeros((100, 10), dtype=np.int8)
            self.view = self.q[:50]            # a view of q: no new memory
            self.same = self.q                 # the same array twice
            self.scale = np.ones(10, dtype=np.float32)
            self.grad = np.ones(10_000)        # gradients are not model storage
    assert stored_bytes(Holder()) == 1000 + 40


# --- the harness -------------------------------------------------------------------------------

class CountingModel:
    """A real model wrapper that counts the rows it was asked to predict."""

    def __init__(self, model):
        self.model = model
        self.rows_seen = 0

    def __call__(self, x):
        self.rows_seen += len(x)
        return self.model(Tensor(x))


def test_measure_entry_measures_quality_itself_on_the_whole_eval_set():
    task = get_task("digits-mlp")
    model = digits_mlp(seed=3)                           # untrained: about one in ten right
    _, _, x_eval, y_eval = task.data()
    counting = CountingModel(model)
    measured = measure_entry(task, Entry("untrained", model, counting), TINY)
    expected = float(np.mean(np.argmax(model(Tensor(x_eval)).data, axis=1) == y_eval))
    assert measured.quality == pytest.approx(expected, abs=1e-12)
    assert len(y_eval) == 359
    # accuracy (359 rows) + warm-up and timed single-row queries + throughput (warm-up + repeats) + memory
    assert counting.rows_seen == 359 + (TINY.warmup + TINY.queries) + 359 * (1 + TINY.throughput_repeats) + 359
    assert 0 < measured.p50_ms <= measured.p90_ms <= measured.p99_ms
    assert measured.throughput_per_s > 0 and measured.peak_bytes > 0
    assert measured.model_bytes == stored_bytes(model)


def test_measure_entry_enters_the_entry_context_around_every_call():
    task = get_task("digits-mlp")
    model = digits_mlp()
    state = {"inside": False, "calls_outside": 0}

    class Marker:
        def __enter__(self):
            state["inside"] = True

        def __exit__(self, *exc):
            state["inside"] = False

    def predict(x):
        state["calls_outside"] += not state["inside"]
        return model(Tensor(x))

    measure_entry(task, Entry("ctx", model, predict, context=Marker), TINY)
    assert state == {"inside": False, "calls_outside": 0}


def test_a_wrong_model_gets_a_measured_low_quality():
    """The harness cannot be told a quality: a model that predicts one class is measured as such."""
    task = get_task("digits-cnn")
    _, _, _, y_eval = task.data()
    always_three = Entry("always 3", digits_mlp(), lambda x: np.eye(10, dtype=np.float32)[np.full(len(x), 3)])
    measured = measure_entry(task, always_three, TINY)
    assert measured.quality == pytest.approx(np.mean(y_eval == 3), abs=1e-12)


# --- scores and the gate -----------------------------------------------------------------------

def measurement(quality=0.95, p50=2.0, p99=4.0, throughput=100.0, peak=1000, size=4000):
    return Measurement(quality, p50, (p50 + p99) / 2, p99, throughput, peak, size)


def test_speedup_is_reference_time_over_submission_time():
    scores = relative_scores(measurement(p50=3.0, p99=9.0), measurement(p50=1.0, p99=3.0), 0.01)
    assert scores["speedup"] == pytest.approx(3.0) and scores["p99_speedup"] == pytest.approx(3.0)
    assert scores["score"] == pytest.approx(3.0)


def test_memory_size_and_throughput_ratios_point_the_same_way():
    scores = relative_scores(measurement(throughput=100, peak=1000, size=4000),
                             measurement(throughput=250, peak=500, size=1000), 0.01)
    assert scores["throughput_ratio"] == pytest.approx(2.5)
    assert scores["memory_ratio"] == pytest.approx(2.0) and scores["size_ratio"] == pytest.approx(4.0)


@pytest.mark.parametrize("reference, submission, passes", [
    (0.95, 0.94, True),       # exactly one point under
    (0.9721, 0.9621, True),
    (0.95, 0.9399, False),
    (0.95, 0.90, False),
    (0.95, 1.00, True),
    (344 / 359, 340 / 359, False),   # 4 of 359 digits = 1.11 points
    (344 / 359, 341 / 359, True),    # 3 of 359 = 0.84 points
])
def test_quality_gate_boundary(reference, submission, passes):
    assert passes_quality_gate(reference, submission, 0.01) is passes
    scores = relative_scores(measurement(quality=reference), measurement(quality=submission, p50=1.0), 0.01)
    assert scores["passes_gate"] is passes
    assert scores["score"] == (pytest.approx(2.0) if passes else 0.0)


def test_loss_gate_is_mirrored():
    assert passes_quality_gate(1.0, 1.02, 0.02, higher_is_better=False)
    assert not passes_quality_gate(1.0, 1.03, 0.02, higher_is_better=False)


def test_every_task_has_a_one_point_accuracy_gate():
    for task in TASKS.values():
        if task.higher_is_better:
            assert task.tolerance == 0.01


# --- the char-GPT task -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_gpt():
    return get_task("char-gpt").train_reference(steps=2, config={"dim": 16, "n_layers": 1, "n_heads": 2, "max_seq_len": 32})


GPT_SETTINGS = HarnessSettings(generations=2, new_tokens=8)


def test_gpt_quality_is_the_validation_loss_measured_by_the_harness(small_gpt):
    from tinytorch.models.transformer import evaluate_loss

    task = get_task("char-gpt")
    measured = measure_entry(task, task.reference_entry(small_gpt), GPT_SETTINGS)
    assert measured.quality == pytest.approx(evaluate_loss(small_gpt, task.data()[2]), rel=1e-9)
    assert measured.throughput_per_s == pytest.approx(GPT_SETTINGS.new_tokens / (measured.p50_ms / 1e3), rel=1e-9)
    assert measured.model_bytes == sum(p.data.nbytes for p in small_gpt.parameters())


def test_gpt_entry_must_really_generate(small_gpt):
    task = get_task("char-gpt")
    lazy = Entry("returns the prompt", small_gpt, lambda prompt, n: prompt)
    with pytest.raises(ValueError, match="followed by 8 new ones"):
        measure_entry(task, lazy, GPT_SETTINGS)
    other_prompt = Entry("ignores the prompt", small_gpt, lambda prompt, n: np.zeros(prompt.size + n, dtype=np.int64))
    with pytest.raises(ValueError, match="prompt"):
        measure_entry(task, other_prompt, GPT_SETTINGS)


def test_gpt_gate_is_on_loss():
    task = get_task("char-gpt")
    assert task.higher_is_better is False and task.tolerance == 0.02
