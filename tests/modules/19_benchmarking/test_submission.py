"""The submission schema (missing, extra, mistyped fields named), the JSON round trip, make_submission."""

import copy
import json

import numpy as np
import pytest

from tinytorch.benchmarking.tinymlperf import (
    SUBMISSION_SCHEMA,
    Entry,
    HarnessSettings,
    Submission,
    SubmissionError,
    check_ratios,
    digits_mlp,
    get_task,
    make_submission,
    validate_submission,
)
from tinytorch.core.tensor import Tensor

TINY = HarnessSettings(warmup=1, queries=5, throughput_repeats=2)


@pytest.fixture(scope="module")
def made():
    """A real submission: an untrained MLP against the same architecture with other seeds, measured now."""
    task = get_task("digits-mlp")
    reference, candidate = digits_mlp(seed=0), digits_mlp(seed=10)
    return make_submission("digits-mlp", Entry("candidate", candidate, candidate, ["none"]),
                           task.reference_entry(reference), TINY)


def dotted_fields(schema, prefix=""):
    """Every leaf field of the schema as a dotted path, sections first-to-last."""
    for key, kind in schema.items():
        nested = isinstance(kind, dict)
        yield from (dotted_fields(kind, f"{prefix}{key}.") if nested else [f"{prefix}{key}"])


def without(data, dotted):
    data = copy.deepcopy(data)
    *parents, leaf = dotted.split(".")
    target = data
    for part in parents:
        target = target[part]
    del target[leaf]
    return data


def test_made_submission_is_valid_and_consistent(made):
    assert validate_submission(made.data) is made.data
    check_ratios(made)                                   # the ratios follow from the measured numbers
    assert made.data["ratios"]["speedup"] == pytest.approx(made.data["reference"]["p50_ms"] / made.data["measured"]["p50_ms"])


@pytest.mark.parametrize("dotted", list(dotted_fields(SUBMISSION_SCHEMA)))
def test_each_missing_field_is_named(made, dotted):
    with pytest.raises(SubmissionError, match=f"missing field '{dotted}'"):
        validate_submission(without(made.data, dotted))


@pytest.mark.parametrize("section", ["", "measured.", "reference.", "ratios.", "environment."])
def test_an_extra_field_is_named(made, section):
    data = copy.deepcopy(made.data)
    target = data if not section else data[section[:-1]]
    target["p50ms"] = 1.0                                # a typo must not be dropped silently
    with pytest.raises(SubmissionError, match=f"unknown field '{section}p50ms'"):
        validate_submission(data)


@pytest.mark.parametrize("dotted, value", [
    ("schema_version", "1"), ("schema_version", True), ("task", 3), ("measured.peak_bytes", 1.5),
    ("measured.p50_ms", None), ("ratios.passes_gate", 1), ("ratios.score", False),
    ("environment.cpu_count", "2"), ("optimizations", "int8"), ("optimizations", ["int8", None]),
])
def test_a_mistyped_field_is_named(made, dotted, value):
    data = copy.deepcopy(made.data)
    *parents, leaf = dotted.split(".")
    target = data
    for part in parents:
        target = target[part]
    target[leaf] = value
    with pytest.raises(SubmissionError, match=f"'{dotted}'"):
        validate_submission(data)


def test_json_round_trip_and_bad_json(made, tmp_path):
    path = made.save(tmp_path)
    assert Submission.from_json(path.read_text()).data == made.data
    assert json.loads(path.read_text()) == made.data
    with pytest.raises(SubmissionError, match="not valid JSON"):
        Submission.from_json("{")


def test_tampered_ratio_is_caught(made):
    data = copy.deepcopy(made.data)
    data["ratios"]["speedup"] *= 10
    data["ratios"]["score"] = data["ratios"]["speedup"]
    with pytest.raises(SubmissionError, match="speedup"):
        check_ratios(Submission(data))


def test_a_broken_model_fails_the_gate_and_scores_zero():
    """A real model that ignores its input: the harness measures its accuracy and the gate refuses it."""
    task = get_task("digits-mlp")
    reference = task.train_reference(epochs=3)
    constant = Entry("constant", digits_mlp(), lambda x: np.zeros((len(x), 10), dtype=np.float32))
    submission = make_submission("digits-mlp", constant, task.reference_entry(reference), TINY)
    assert submission.data["reference"]["quality"] > 0.9
    assert submission.data["measured"]["quality"] < 0.2
    assert submission.data["ratios"]["passes_gate"] is False and submission.data["ratios"]["score"] == 0.0


def test_unknown_task_is_refused():
    with pytest.raises(ValueError, match="digits-mlp"):
        make_submission("imagenet", Entry("x", None, lambda x: x), Entry("y", None, lambda x: x), TINY)


def test_reference_entry_predicts_with_the_model():
    model = digits_mlp()
    entry = get_task("digits-mlp").reference_entry(model)
    x = np.ones((2, 64), dtype=np.float32)
    np.testing.assert_array_equal(entry.predict(x).data, model(Tensor(x)).data)
