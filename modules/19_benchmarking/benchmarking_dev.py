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
# # Module 19: Benchmarking — TinyMLPerf, measured or it did not happen
#
# An earlier version of this course had a benchmark module that *fabricated* its accuracies
# (`0.85 + i·0.05` plus noise, boosted when a model's name contained "efficient") and a capstone
# that scored random inputs against random labels. Every number in its tables looked measured;
# none was. This module builds the opposite: a small MLPerf-style suite in which every number is
# measured by the harness itself, on real labels, next to a reference measured in the same run.
#
# ```
#   standard task ──▶ fixed evaluation set (real labels) + reference model (trained by the course)
#        │
#   your entry (a model + how to run it) ──▶ harness: warm-up, p50/p90/p99 latency, throughput,
#        │                                            peak memory, stored bytes, quality
#   reference entry, same run, same machine ──▶ the same measurements
#        │
#   ratios (speedup = reference time / your time, ...) + quality gate ──▶ Submission (JSON, schema)
#        │
#   folder of submissions ──▶ leaderboard: SQLite + an HTML page with the accuracy–speed Pareto plot
# ```
#
# | you build | why |
# |---|---|
# | `percentile`, `latency_summary` | tail latency (p90, p99) is what a user waits for; the mean hides it |
# | `accuracy` | quality on the fixed evaluation set, every row of it |
# | `passes_quality_gate`, `relative_scores` | scores that compare across laptops: ratios to the reference measured in the same run, and no speed score for a model that got worse |
# | `validate_submission` | a submission file is input from someone else: a missing or extra field is an error that names it |
# | `pareto_front` | which entries are not beaten on both accuracy and speed at once |
#
# The harness (`measure_entry`), the tasks, the reference models and the leaderboard page are
# given; you use them at the end to stack modules 15–17 on the reference models and read off each
# optimization's measured contribution.

# %%
#| default_exp benchmarking.tinymlperf

# %%
#| export
import copy
import html
import io
import json
import math
import os
import platform
import sqlite3
import sys
import types
import zipfile
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from tinytorch.core.activations import ReLU
from tinytorch.core.autograd import no_grad
from tinytorch.core.layers import Linear, Sequential
from tinytorch.core.losses import CrossEntropyLoss
from tinytorch.core.optimizers import AdamW
from tinytorch.core.spatial import Conv2d, Flatten, MaxPool2d
from tinytorch.core.tensor import Tensor
from tinytorch.core.training import Trainer, cosine_schedule
from tinytorch.data.loader import DataLoader, Standardizer, TensorDataset, load_digits_dataset, train_test_split
from tinytorch.models.transformer import GPT, evaluate_loss, train_char_gpt
from tinytorch.optimization.acceleration import backend_forward, set_backend
from tinytorch.optimization.caching import generate as kv_cache_generate
from tinytorch.optimization.compression import SparseLinear, fine_tune, magnitude_prune, prune_conv_filters
from tinytorch.optimization.quantization import quantize_model
from tinytorch.profiling.profiler import MemoryProfiler, Timer
from tinytorch.text.tokenization import CharTokenizer, load_shakespeare, split_by_position

# %%
import tempfile
import time

QUICK = os.environ.get("TITO_AUTOGRADING") == "1"   # shrink training, queries and repeats while grading

# %% [markdown]
# ## Part 1: percentiles — the latency a user actually waits for
#
# A benchmark times the same query many times and gets a list of per-call seconds. The median
# (p50) says what a typical query costs; p90 and p99 say what the slowest one in ten, one in a
# hundred cost: a garbage collection, a page fault, a neighbour on the machine. MLPerf reports the
# tail for exactly that reason.
#
# `percentile(samples, q)` for `q` in `[0, 100]` uses **linear interpolation between the closest
# ranks** (NumPy's default): sort the `n` samples, compute the fractional rank `r = q/100 · (n − 1)`,
# and interpolate between `sorted[floor(r)]` and `sorted[ceil(r)]`:
#
# ```
#   sorted:   s0    s1    s2    s3    s4            n = 5, q = 90: r = 0.9 · 4 = 3.6
#                               └──●──┘              p90 = s3 + 0.6 · (s4 − s3)
# ```
#
# Write it by hand (no `np.percentile`/`np.quantile`), reject an empty list and a `q` outside
# `[0, 100]` with a `ValueError`. `latency_summary(samples_s)` returns a `LatencySummary` with
# p50, p90, p99 and the mean, in seconds.

# %% nbgrader={"grade": false, "grade_id": "percentiles", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
@dataclass(frozen=True)
class LatencySummary:
    """Per-call seconds summarised: p50 (median), p90, p99, mean, and how many samples."""

    p50_s: float
    p90_s: float
    p99_s: float
    mean_s: float
    count: int


def percentile(samples, q: float) -> float:
    """The q-th percentile (0 <= q <= 100) with linear interpolation between the closest ranks."""
    ### BEGIN SOLUTION
    ordered = sorted(float(v) for v in samples)
    if not ordered:
        raise ValueError("percentile needs at least one sample")
    if not 0 <= q <= 100:
        raise ValueError(f"q must lie in [0, 100], got {q}")
    rank = q / 100 * (len(ordered) - 1)
    below = math.floor(rank)
    above = min(below + 1, len(ordered) - 1)
    weight = rank - below
    return ordered[below] + weight * (ordered[above] - ordered[below])
    ### END SOLUTION


def latency_summary(samples_s) -> LatencySummary:
    """p50, p90, p99 and mean of per-call seconds."""
    ### BEGIN SOLUTION
    values = [float(v) for v in samples_s]
    return LatencySummary(p50_s=percentile(values, 50), p90_s=percentile(values, 90),
                          p99_s=percentile(values, 99), mean_s=sum(values) / len(values) if values else float("nan"),
                          count=len(values))
    ### END SOLUTION


# %% [markdown]
# ### Test: percentiles against NumPy

# %% nbgrader={"grade": true, "grade_id": "test-percentiles", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
def test_unit_percentile_matches_numpy():
    gen = np.random.default_rng(0)
    for n in (1, 2, 5, 10, 101):
        samples = gen.exponential(1e-3, size=n)          # unsorted, skewed like real latencies
        for q in (0, 25, 50, 90, 99, 100):
            expected = float(np.percentile(samples, q))
            got = percentile(list(samples), q)
            assert abs(got - expected) <= 1e-12 + 1e-9 * abs(expected), f"n={n} q={q}: expected {expected}, got {got}"

def test_unit_percentile_interpolates():
    assert abs(percentile([4.0, 1.0, 3.0, 2.0, 5.0], 90) - 4.6) < 1e-12   # r = 3.6 between 4 and 5
    assert percentile([7.0], 99) == 7.0

def test_unit_latency_summary():
    samples = [0.003, 0.001, 0.002, 0.010]
    summary = latency_summary(samples)
    for name, q in (("p50_s", 50), ("p90_s", 90), ("p99_s", 99)):
        assert abs(getattr(summary, name) - float(np.percentile(samples, q))) < 1e-12, name
    assert abs(summary.mean_s - 0.004) < 1e-12 and summary.count == 4

test_unit_percentile_matches_numpy()
test_unit_percentile_interpolates()
test_unit_latency_summary()
### BEGIN HIDDEN TESTS
def test_hidden_percentile_bad_input():
    for samples, q in (([], 50), ([1.0, 2.0], -1), ([1.0, 2.0], 100.5)):
        try:
            percentile(samples, q)
        except ValueError:
            continue
        raise AssertionError(f"percentile({samples}, {q}) must raise ValueError")

def test_hidden_percentile_ties_and_fractional_q():
    samples = [2.0, 2.0, 2.0, 9.0, 1.0, 1.0]
    for q in (10, 33.3, 50, 66.7, 95):
        assert abs(percentile(samples, q) - float(np.percentile(samples, q))) < 1e-12, q

test_hidden_percentile_bad_input()
test_hidden_percentile_ties_and_fractional_q()
### END HIDDEN TESTS

# %% [markdown]
# ## Part 2: the harness measures every entry itself
#
# An **entry** is something to benchmark: a name, the model object (whose stored bytes are
# measured), a `predict(x) -> logits` function the harness calls, the optimizations it claims,
# and optionally a `context` to enter around the measurement (for example a backend switch from
# module 15). The harness never accepts a number from an entry: it calls `predict` itself.
#
# `measure_entry(task, entry)` (given) runs, inside `no_grad()` and with a fixed BLAS thread count:
#
# | metric | how | built on |
# |---|---|---|
# | quality | `accuracy(predict, x_eval, y_eval)` on the whole fixed evaluation set | you write `accuracy` |
# | latency p50/p90/p99 | one query (batch of 1) timed `queries` times after `warmup` untimed calls | module 14's `Timer`, your `latency_summary` |
# | throughput | the whole evaluation set in one call, median of repeats, rows per second | `Timer` |
# | peak bytes | traced peak allocation of one whole-set call | module 14's `MemoryProfiler` |
# | stored bytes | every distinct array the model object holds (int8 weights count 1 byte each) | `stored_bytes` |
#
# `accuracy(predict, x, y, batch_size)`: call `predict` on consecutive batches of `batch_size`
# rows, **every** row including a last, shorter batch; the prediction is the argmax of each row of
# logits (a Tensor or an array); return the fraction of rows whose prediction equals the label.

# %% nbgrader={"grade": false, "grade_id": "accuracy", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def accuracy(predict: Callable, x: np.ndarray, y: np.ndarray, batch_size: int = 256) -> float:
    """Fraction of rows of x whose argmax of predict(batch) equals y, over every row, batch by batch."""
    ### BEGIN SOLUTION
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"accuracy needs as many labels as inputs (at least one), got {len(x)} inputs and {len(y)} labels")
    correct = 0
    for start in range(0, len(x), batch_size):
        logits = predict(x[start:start + batch_size])
        values = logits.data if isinstance(logits, Tensor) else np.asarray(logits)
        correct += int(np.sum(np.argmax(values, axis=-1) == y[start:start + batch_size]))
    return correct / len(x)
    ### END SOLUTION


# %% [markdown]
# ### Test: accuracy over every row
#
# The predict function here is the test's own: it scores class `row_id % 3` highest, so the
# expected accuracy is a count anyone can do by hand.

# %% nbgrader={"grade": true, "grade_id": "test-accuracy", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def test_unit_accuracy_counts_every_row():
    x = np.arange(10, dtype=np.float32).reshape(10, 1)     # row i holds the number i
    def predict_mod3(batch):
        logits = np.zeros((len(batch), 3), dtype=np.float32)
        logits[np.arange(len(batch)), batch[:, 0].astype(int) % 3] = 1.0
        return logits
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 2])      # the last label is wrong for row 9 (9 % 3 = 0)
    assert abs(accuracy(predict_mod3, x, labels, batch_size=4) - 0.9) < 1e-12    # batches 4, 4, 2
    labels_last_batch = np.array([0, 1, 2, 0, 1, 2, 0, 1, 1, 1])  # rows 8 and 9 (the short batch) wrong
    assert abs(accuracy(predict_mod3, x, labels_last_batch, batch_size=4) - 0.8) < 1e-12
    assert abs(accuracy(predict_mod3, x, labels, batch_size=100) - 0.9) < 1e-12
    batch_sizes = []
    def predict_recording(batch):
        batch_sizes.append(len(batch))
        return predict_mod3(batch)
    assert abs(accuracy(predict_recording, x[:9], labels[:9], batch_size=4) - 1.0) < 1e-12   # last batch: one row
    assert batch_sizes == [4, 4, 1], f"expected batches of 4, 4 and 1 rows, got {batch_sizes}"

def test_unit_accuracy_needs_one_label_per_row():
    x = np.zeros((4, 1), dtype=np.float32)
    def predict_zeros(batch):
        return np.zeros((len(batch), 2), dtype=np.float32)
    for inputs, labels in ((x, np.zeros(3, dtype=np.int64)), (x[:0], np.zeros(0, dtype=np.int64))):
        try:
            accuracy(predict_zeros, inputs, labels)
        except ValueError:
            continue
        raise AssertionError(f"{len(inputs)} inputs with {len(labels)} labels must raise ValueError")

test_unit_accuracy_counts_every_row()
test_unit_accuracy_needs_one_label_per_row()

# %% [markdown]
# The rest of the harness is given: an `Entry`, a `Measurement` (the numbers one entry gets, in
# the units the submission file uses), `stored_bytes`, and `measure_entry`.

# %%
#| export
@dataclass
class Entry:
    """Something to benchmark: the harness calls predict itself and measures model's stored arrays.

    context: optional factory of a context manager entered around every measurement (a backend switch).
    """

    name: str
    model: Any
    predict: Callable
    optimizations: list = field(default_factory=list)
    context: Callable | None = None


@dataclass
class Measurement:
    """What the harness measured for one entry (the keys of a submission's "measured" section)."""

    quality: float            # accuracy on the evaluation set (or validation loss, for a loss task)
    p50_ms: float
    p90_ms: float
    p99_ms: float
    throughput_per_s: float   # evaluation rows (or generated tokens) per second
    peak_bytes: int           # traced peak allocation of one whole-set call
    model_bytes: int          # bytes of the distinct arrays the model object holds


@dataclass(frozen=True)
class HarnessSettings:
    warmup: int = 10
    queries: int = 300          # timed single-row queries (p50/p90/p99 come from these)
    throughput_repeats: int = 7
    blas_threads: int | None = 1  # None leaves BLAS as it is; 1 makes laptops and shared machines comparable
    generations: int = 7          # timed generations per entry on the char-gpt task
    new_tokens: int = 100         # tokens per timed generation


_NOT_MODEL_STATE = (str, bytes, int, float, bool, type(None), type, type(sys), types.FunctionType,
                    types.BuiltinFunctionType, types.MethodType)   # nothing here holds weights


def stored_bytes(model) -> int:
    """Bytes of every distinct NumPy array reachable from model's attributes (views counted once, grads skipped)."""
    owners, seen, pending = {}, set(), [model]
    while pending:
        obj = pending.pop()
        if id(obj) in seen or isinstance(obj, _NOT_MODEL_STATE):
            continue
        seen.add(id(obj))
        if isinstance(obj, np.ndarray):
            root = obj
            while isinstance(root.base, np.ndarray):
                root = root.base
            owners[id(root)] = root.nbytes
        elif isinstance(obj, dict):
            pending.extend(obj.values())
        elif isinstance(obj, (list, tuple, set)):
            pending.extend(obj)
        elif hasattr(obj, "__dict__"):
            pending.extend(value for name, value in vars(obj).items() if name != "grad")
    return int(sum(owners.values()))


def _as_logits(output) -> np.ndarray:
    return output.data if isinstance(output, Tensor) else np.asarray(output)


def measure_entry(task, entry: Entry, settings: HarnessSettings = HarnessSettings()) -> Measurement:
    """Measure one entry on a task: quality, single-query latency percentiles, throughput, memory, bytes."""
    limit = threadpool_limits(limits=settings.blas_threads) if settings.blas_threads else nullcontext()
    chosen = entry.context() if entry.context is not None else nullcontext()
    with limit, chosen, no_grad():
        return task.measure(entry, settings)


# %% [markdown]
# ## Part 3: relative scoring and the quality gate
#
# A laptop and a server disagree on how many milliseconds a model takes, but they agree much
# better on how much *faster* one model is than another **measured on the same machine in the
# same run**. So every score is a ratio to the reference entry, measured right before:
#
# | ratio | formula | > 1 means |
# |---|---|---|
# | `speedup` | reference p50 / submission p50 | faster typical query |
# | `p99_speedup` | reference p99 / submission p99 | faster tail |
# | `throughput_ratio` | submission throughput / reference throughput | more rows per second |
# | `memory_ratio` | reference peak bytes / submission peak bytes | less peak memory |
# | `size_ratio` | reference stored bytes / submission stored bytes | smaller model |
# | `quality_delta` | in quality units, positive = better: `sub − ref` (accuracy) or `ref − sub` (a loss) | better quality |
#
# A byte count of 0 is taken as 1 in a denominator (no division by zero, no infinity in JSON).
#
# **The quality gate.** Speed bought by breaking the model is not speed. `passes_quality_gate`
# is true when the submission's *shortfall* (how much worse it is than the reference, in quality
# units) is at most `tolerance`; the accuracy tasks use a tolerance of 0.01 (one percentage point).
# Accuracies are fractions such as 0.94 that floats do not hold exactly, so a shortfall within
# `1e-9` of the tolerance counts as on the boundary, and the boundary passes. `score` is the speedup
# for a submission that passes and **0.0** for one that does not; `passes_gate` records which.

# %% nbgrader={"grade": false, "grade_id": "relative-scores", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
GATE_SLACK = 1e-9   # float rounding: a shortfall this close to the tolerance is on the boundary (and passes)


def passes_quality_gate(reference_quality: float, quality: float, tolerance: float,
                        higher_is_better: bool = True) -> bool:
    """True unless the submission is worse than the reference by more than tolerance (quality units)."""
    ### BEGIN SOLUTION
    shortfall = reference_quality - quality if higher_is_better else quality - reference_quality
    return shortfall <= tolerance + GATE_SLACK
    ### END SOLUTION


def relative_scores(reference: Measurement, submission: Measurement, tolerance: float,
                    higher_is_better: bool = True) -> dict:
    """Ratios of submission to reference (see the table), passes_gate, and score (speedup, or 0.0 below the gate)."""
    ### BEGIN SOLUTION
    passes = passes_quality_gate(reference.quality, submission.quality, tolerance, higher_is_better)
    speedup = reference.p50_ms / submission.p50_ms
    delta = submission.quality - reference.quality
    return {
        "speedup": speedup,
        "p99_speedup": reference.p99_ms / submission.p99_ms,
        "throughput_ratio": submission.throughput_per_s / reference.throughput_per_s,
        "memory_ratio": max(reference.peak_bytes, 1) / max(submission.peak_bytes, 1),
        "size_ratio": max(reference.model_bytes, 1) / max(submission.model_bytes, 1),
        "quality_delta": delta if higher_is_better else -delta,
        "passes_gate": passes,
        "score": speedup if passes else 0.0,
    }
    ### END SOLUTION


# %% [markdown]
# ### Test: which way each ratio points, and the gate's boundary

# %% nbgrader={"grade": true, "grade_id": "test-relative-scores", "locked": true, "points": 5, "schema_version": 3, "solution": false, "task": false}
def test_unit_ratio_directions():
    ref = Measurement(quality=0.95, p50_ms=4.0, p90_ms=5.0, p99_ms=8.0, throughput_per_s=1000.0,
                      peak_bytes=4000, model_bytes=100_000)
    sub = Measurement(quality=0.95, p50_ms=1.0, p90_ms=1.5, p99_ms=2.0, throughput_per_s=3000.0,
                      peak_bytes=1000, model_bytes=25_000)
    scores = relative_scores(ref, sub, tolerance=0.01)
    expected = {"speedup": 4.0, "p99_speedup": 4.0, "throughput_ratio": 3.0, "memory_ratio": 4.0,
                "size_ratio": 4.0, "quality_delta": 0.0, "score": 4.0}
    for name, value in expected.items():
        assert abs(scores[name] - value) < 1e-9, f"{name}: expected {value}, got {scores[name]}"
    assert scores["passes_gate"] is True or scores["passes_gate"] == True  # noqa: E712 (a proxied bool)
    slower = relative_scores(ref, Measurement(0.96, 8.0, 9.0, 16.0, 500.0, 8000, 200_000), tolerance=0.01)
    assert abs(slower["speedup"] - 0.5) < 1e-12 and abs(slower["throughput_ratio"] - 0.5) < 1e-12
    assert abs(slower["memory_ratio"] - 0.5) < 1e-12 and abs(slower["quality_delta"] - 0.01) < 1e-12

def test_unit_quality_gate_boundary():
    assert passes_quality_gate(0.95, 0.94, 0.01)              # exactly one point under: passes
    assert not passes_quality_gate(0.95, 0.9399, 0.01)        # more than one point under: fails
    assert passes_quality_gate(0.95, 0.99, 0.01)              # better always passes
    assert passes_quality_gate(1.20, 1.25, 0.05, higher_is_better=False)       # a loss 0.05 higher: boundary
    assert not passes_quality_gate(1.20, 1.26, 0.05, higher_is_better=False)
    assert passes_quality_gate(1.20, 0.50, 0.05, higher_is_better=False)

def test_unit_below_gate_scores_nothing():
    ref = Measurement(0.95, 4.0, 5.0, 8.0, 1000.0, 4000, 100_000)
    fast_but_broken = Measurement(0.90, 0.5, 0.6, 0.9, 9000.0, 500, 10_000)
    scores = relative_scores(ref, fast_but_broken, tolerance=0.01)
    assert scores["passes_gate"] == False and scores["score"] == 0.0  # noqa: E712
    assert abs(scores["speedup"] - 8.0) < 1e-12          # the speedup is still reported, it just earns nothing

test_unit_ratio_directions()
test_unit_quality_gate_boundary()
test_unit_below_gate_scores_nothing()
### BEGIN HIDDEN TESTS
def test_hidden_loss_quality_delta_sign_and_zero_bytes():
    ref = Measurement(1.50, 2.0, 2.0, 2.0, 100.0, 0, 0)
    sub = Measurement(1.40, 1.0, 1.0, 1.0, 200.0, 0, 0)
    scores = relative_scores(ref, sub, tolerance=0.02, higher_is_better=False)
    assert abs(scores["quality_delta"] - 0.10) < 1e-12, "a lower loss is a positive quality_delta"
    assert scores["memory_ratio"] == 1.0 and scores["size_ratio"] == 1.0
    worse = relative_scores(ref, Measurement(1.53, 1.0, 1.0, 1.0, 200.0, 0, 0), tolerance=0.02, higher_is_better=False)
    assert worse["passes_gate"] == False and worse["score"] == 0.0  # noqa: E712

test_hidden_loss_quality_delta_sign_and_zero_bytes()
### END HIDDEN TESTS

# %% [markdown]
# ## Part 4: the standard tasks and their reference models
#
# Three tasks, all on data that ships with the installed packages and with real labels. Two run on
# the 8×8 handwritten digits of module 05, split exactly as modules 08 and 09 split them (stratified
# 80/20, seed 0, standardised with training statistics): the 359 held-out digits are the fixed
# evaluation set. The third is module 12's character-level GPT on Hamlet: its quality is the
# validation loss on a fixed 4,000 held-out characters (lower is better; the gate allows 0.02 nats
# per character more than the reference), its speed the time to generate 100 tokens.
#
# | task | reference model | recipe (modules 08, 09 and 12) | quality, gate |
# |---|---|---|---|
# | `digits-mlp` | 64-128-128-10 MLP, ReLU | AdamW 3e-3, weight decay 1e-2, cosine with a warm-up epoch, clip 5, batch 32, 20 epochs | accuracy, 1 point |
# | `digits-cnn` | conv 16 – pool – conv 32 – pool – linear | AdamW 1e-2, weight decay 1e-3, the same schedule, 15 epochs | accuracy, 1 point |
# | `char-gpt` | GPT: dim 64, 2 layers, 4 heads, context 128 | `train_char_gpt`, 300 steps of batch 16, lr 3e-3 | validation loss, 0.02 nats |
#
# The course trains the reference models itself, deterministically (fixed seeds, one BLAS thread),
# and ships their weights as small `.npz` files in `modules/19_benchmarking/reference/`
# (`make_reference_weights.py` writes them; a package test retrains and compares). The archives
# are written with fixed timestamps, so writing the same weights twice gives the same bytes.

# %%
#| export
REFERENCE_FILES = {"digits-mlp": "digits_mlp.npz", "digits-cnn": "digits_cnn.npz", "char-gpt": "char_gpt.npz"}


def digits_mlp(seed: int = 0) -> Sequential:
    """Module 08's digits MLP: 64-128-128-10 with ReLU."""
    return Sequential(Linear(64, 128, seed=seed), ReLU(), Linear(128, 128, seed=seed + 1), ReLU(),
                      Linear(128, 10, seed=seed + 2))


def digits_cnn(seed: int = 0) -> Sequential:
    """Module 09's digits CNN: two conv-ReLU-pool blocks and a linear head."""
    return Sequential(Conv2d(1, 16, 3, padding=1, seed=seed), ReLU(), MaxPool2d(2),
                      Conv2d(16, 32, 3, padding=1, seed=seed + 1), ReLU(), MaxPool2d(2),
                      Flatten(), Linear(32 * 2 * 2, 10, seed=seed + 2))


def digits_split():
    """The standardised digits split of modules 08 and 09: (x_train, y_train, x_eval, y_eval), rows of 64."""
    images, labels = load_digits_dataset()
    x_train, x_eval, y_train, y_eval = train_test_split(images, labels, test_fraction=0.2, seed=0, stratify=labels)
    scaler = Standardizer().fit(x_train)
    return scaler.apply(x_train), y_train, scaler.apply(x_eval), y_eval


def write_npz(path, arrays: dict) -> None:
    """Like np.savez_compressed, but with fixed timestamps: the same arrays always give the same bytes."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(arrays):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asarray(arrays[name]), allow_pickle=False)   # 0-d stays 0-d
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))   # no clock in the bytes
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue())


def save_weights(model, path, meta: dict) -> None:
    """Parameters of model (in parameters() order) and a JSON meta record, as a deterministic .npz."""
    arrays = {f"param_{index:03d}": p.data for index, p in enumerate(model.parameters())}
    arrays["meta"] = np.frombuffer(json.dumps(meta, sort_keys=True).encode("utf-8"), dtype=np.uint8)
    write_npz(path, arrays)


def save_gpt_weights(model: GPT, path) -> None:
    """The archive module 12's GPT.load reads (configuration + named parameters), written deterministically."""
    arrays = {name: param.data for name, param in model.named_parameters()}
    arrays["__config__"] = np.array(json.dumps(model.config(), sort_keys=True))
    write_npz(path, arrays)


def load_weights(model, path) -> dict:
    """Copy the parameters saved by save_weights into model (same architecture); returns the meta record."""
    with np.load(path, allow_pickle=False) as saved:
        names = sorted(name for name in saved.files if name.startswith("param_"))
        params = model.parameters()
        if len(names) != len(params):
            raise ValueError(f"{path} holds {len(names)} parameters but the model has {len(params)}; "
                             "load it into the architecture it was saved from")
        for name, param in zip(names, params):
            if saved[name].shape != param.shape:
                raise ValueError(f"{path}: {name} has shape {saved[name].shape}, the model's parameter {param.shape}")
            param.data[...] = saved[name]
        return json.loads(saved["meta"].tobytes().decode("utf-8"))


@dataclass
class DigitsTask:
    """A classification task on the digits: fixed evaluation set, reference recipe, measurement."""

    name: str
    build_model: Callable
    image_shape: tuple            # shape of one input row as the model takes it
    learning_rate: float
    weight_decay: float
    epochs: int
    tolerance: float = 0.01       # the quality gate: one accuracy point
    higher_is_better: bool = True
    batch_size: int = 256         # for accuracy; latency uses single-row queries

    def data(self):
        """(x_train, y_train, x_eval, y_eval) shaped for this task's model."""
        x_train, y_train, x_eval, y_eval = digits_split()
        return (x_train.reshape(-1, *self.image_shape), y_train, x_eval.reshape(-1, *self.image_shape), y_eval)

    def train_reference(self, epochs: int | None = None, seed: int = 0):
        """Train the reference model with the course's recipe (deterministic: fixed seeds, one BLAS thread)."""
        epochs = self.epochs if epochs is None else epochs
        x_train, y_train, _, _ = self.data()
        model = self.build_model(seed)
        loader = DataLoader(TensorDataset(x_train, y_train), batch_size=32, shuffle=True, seed=seed)
        total_steps = epochs * len(loader)
        lr = self.learning_rate
        warmup = len(loader) if epochs > 1 else 0   # one warm-up epoch, as modules 08 and 09 (none in a 1-epoch run)
        trainer = Trainer(model, AdamW(model.parameters(), lr=lr, weight_decay=self.weight_decay), CrossEntropyLoss(),
                          loader, schedule=lambda step: cosine_schedule(step, total_steps, lr, min_lr=lr / 100,
                                                                        warmup_steps=warmup),
                          max_grad_norm=5.0)
        with threadpool_limits(limits=1):
            trainer.fit(epochs)
        return model

    def reference_model(self, weights_dir=None, epochs: int | None = None):
        """The shipped reference weights from weights_dir if the file is there, else trained now."""
        path = Path(weights_dir) / REFERENCE_FILES[self.name] if weights_dir is not None else None
        if path is not None and path.is_file():
            model = self.build_model(0)
            load_weights(model, path)
            return model
        return self.train_reference(epochs)

    def reference_entry(self, model) -> Entry:
        return Entry(name=f"{self.name} reference", model=model, predict=model, optimizations=[])

    def measure(self, entry: Entry, settings: HarnessSettings) -> Measurement:
        _, _, x_eval, y_eval = self.data()
        quality = accuracy(entry.predict, x_eval, y_eval, self.batch_size)
        query = x_eval[:1]
        per_query = Timer(warmup=settings.warmup, repeats=settings.queries).measure(entry.predict, query)
        latency = latency_summary(per_query.samples_s)
        whole_set = Timer(warmup=1, repeats=settings.throughput_repeats).measure(entry.predict, x_eval)
        peak = MemoryProfiler().measure(entry.predict, x_eval).peak_bytes
        return Measurement(quality=quality, p50_ms=latency.p50_s * 1e3, p90_ms=latency.p90_s * 1e3,
                           p99_ms=latency.p99_s * 1e3, throughput_per_s=len(x_eval) / whole_set.median_s,
                           peak_bytes=int(peak), model_bytes=stored_bytes(entry.model))


@dataclass
class CharGPTTask:
    """Character-level generation on Hamlet: tokens per second, behind a validation-loss gate.

    An entry's predict(prompt_ids, n) must return the prompt followed by n new ids; its model is
    the GPT whose validation loss (nats per character, lower is better) is the quality.
    """

    name: str = "char-gpt"
    play: str = "hamlet"
    config: dict = field(default_factory=lambda: {"dim": 64, "n_layers": 2, "n_heads": 4, "max_seq_len": 128})
    steps: int = 300
    batch_size: int = 16
    val_chars: int = 4000         # the fixed validation text: the first 4,000 characters of the held-out 10%
    prompt: str = "HAMLET.\n"
    tolerance: float = 0.02       # the quality gate: at most 0.02 nats per character worse than the reference
    higher_is_better: bool = False

    def data(self):
        """(tokenizer, train_ids, val_ids): the play split by position, 10% held out, as module 12 splits it."""
        text = load_shakespeare(self.play)
        tokenizer = CharTokenizer(text)
        train_ids, val_ids = split_by_position(np.array(tokenizer.encode(text), dtype=np.int64), val_fraction=0.1)
        return tokenizer, train_ids, val_ids[:self.val_chars]

    def train_reference(self, steps: int | None = None, seed: int = 0, config: dict | None = None) -> GPT:
        """Module 12's train_char_gpt with this task's recipe (deterministic: fixed seeds, one BLAS thread)."""
        tokenizer, train_ids, _ = self.data()
        model = GPT(tokenizer.vocab_size, **(config or self.config), seed=seed)
        with threadpool_limits(limits=1):
            train_char_gpt(model, train_ids, self.steps if steps is None else steps, batch_size=self.batch_size,
                           lr=3e-3, seed=seed)
        return model

    def reference_model(self, weights_dir=None, steps: int | None = None, config: dict | None = None) -> GPT:
        path = Path(weights_dir) / REFERENCE_FILES[self.name] if weights_dir is not None else None
        if path is not None and path.is_file():
            return GPT.load(path)
        return self.train_reference(steps, config=config)

    def reference_entry(self, model) -> Entry:
        """Module 12's generate without a cache: the whole context recomputed for every new token."""
        return Entry(name=f"{self.name} reference (no cache)", model=model,
                     predict=lambda prompt, n: model.generate(prompt, n, seed=0, use_cache=False))

    def measure(self, entry: Entry, settings: HarnessSettings) -> Measurement:
        tokenizer, _, val_ids = self.data()
        quality = evaluate_loss(entry.model, val_ids)
        prompt = np.array(tokenizer.encode(self.prompt), dtype=np.int64)
        produced = np.asarray(entry.predict(prompt, settings.new_tokens))
        if produced.shape != (prompt.size + settings.new_tokens,) or not np.array_equal(produced[:prompt.size], prompt):
            raise ValueError(f"{entry.name}: predict(prompt, {settings.new_tokens}) must return the {prompt.size} prompt "
                             f"ids followed by {settings.new_tokens} new ones, got shape {produced.shape}")
        timing = Timer(warmup=1, repeats=settings.generations).measure(entry.predict, prompt, settings.new_tokens)
        latency = latency_summary(timing.samples_s)
        peak = MemoryProfiler().measure(entry.predict, prompt, settings.new_tokens).peak_bytes
        return Measurement(quality=quality, p50_ms=latency.p50_s * 1e3, p90_ms=latency.p90_s * 1e3,
                           p99_ms=latency.p99_s * 1e3, throughput_per_s=settings.new_tokens / latency.p50_s,
                           peak_bytes=int(peak), model_bytes=stored_bytes(entry.model))


TASKS = {
    "digits-mlp": DigitsTask("digits-mlp", digits_mlp, (64,), learning_rate=3e-3, weight_decay=1e-2, epochs=20),
    "digits-cnn": DigitsTask("digits-cnn", digits_cnn, (1, 8, 8), learning_rate=1e-2, weight_decay=1e-3, epochs=15),
    "char-gpt": CharGPTTask(),
}


def get_task(name: str):
    """The standard task called name (a clear error listing the known ones otherwise)."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; the standard tasks are {', '.join(sorted(TASKS))}")
    return TASKS[name]


# %% [markdown]
# The reference models: loaded from the shipped weights when this notebook runs next to them
# (JupyterLab starts in the module folder), trained now otherwise (briefly, and the GPT smaller,
# while autograding). Either way the quality printed is measured here: accuracy on the 359
# held-out digits, validation loss on the 4,000 held-out characters.

# %%
REFERENCE_DIR = Path("reference") if Path("reference").is_dir() and not QUICK else None
SETTINGS = (HarnessSettings(warmup=3, queries=40, throughput_repeats=3, generations=3, new_tokens=24) if QUICK
            else HarnessSettings())
QUICK_TRAINING = {"digits-mlp": {"epochs": 6}, "digits-cnn": {"epochs": 3},
                  "char-gpt": {"steps": 30, "config": {"dim": 32, "n_layers": 1, "n_heads": 2, "max_seq_len": 64}}}

references = {}
for task_name, task in TASKS.items():
    start = time.perf_counter()
    model = task.reference_model(REFERENCE_DIR, **(QUICK_TRAINING[task_name] if QUICK else {}))
    source = "shipped weights" if REFERENCE_DIR is not None else "trained now"
    references[task_name] = model
    print(f"{task_name}: {model!r:.60} from {source} in {time.perf_counter() - start:.2f} s, "
          f"{stored_bytes(model):,} stored bytes")

# %%
blas = "; ".join(f"{p.get('internal_api')} {p.get('version')} kernel={p.get('architecture')}"
                 for p in threadpool_info() if p.get("user_api") == "blas") or "no BLAS found"
print(f"BLAS: {blas}; measurements use {SETTINGS.blas_threads} thread(s)")
print(f"{'task':<12}{'quality':>18}{'p50 ms':>10}{'p90 ms':>10}{'p99 ms':>10}{'per s':>12}{'peak KiB':>10}{'stored KiB':>12}")
reference_measurements = {}
for task_name, task in TASKS.items():
    measured = measure_entry(task, task.reference_entry(references[task_name]), SETTINGS)
    reference_measurements[task_name] = measured
    quality = f"{measured.quality:.2%} accuracy" if task.higher_is_better else f"{measured.quality:.3f} val loss"
    print(f"{task_name:<12}{quality:>18}{measured.p50_ms:>10.4f}{measured.p90_ms:>10.4f}"
          f"{measured.p99_ms:>10.4f}{measured.throughput_per_s:>12,.0f}{measured.peak_bytes / 1024:>10.1f}"
          f"{measured.model_bytes / 1024:>12.1f}")
print(f"per s: evaluation digits per second (whole set in one call), or generated tokens per second "
      f"({SETTINGS.new_tokens} per generation)")

# %% [markdown]
# ## Part 5: the submission file and its schema
#
# A submission is a JSON file someone else wrote, so it is validated before anything reads it.
# `SUBMISSION_SCHEMA` maps each field to its type, or to a nested schema for a section:
#
# ```
#   schema_version int · task str · model str · optimizations [str, ...]
#   measured  {quality, p50_ms, p90_ms, p99_ms, throughput_per_s: float; peak_bytes, model_bytes: int}
#   reference {the same fields: the reference entry, measured in the same run}
#   ratios    {speedup, p99_speedup, throughput_ratio, memory_ratio, size_ratio, quality_delta, score: float;
#              passes_gate: bool}
#   environment {python, numpy, blas, platform: str; cpu_count: int}
# ```
#
# `validate_submission(data, schema=SUBMISSION_SCHEMA)` returns `data` unchanged when it fits and
# otherwise raises `SubmissionError` (a `ValueError`) whose message names the field by its dotted
# path (`measured.p50_ms`):
#
# - not a dict (where a section is expected) → error naming the section;
# - a **missing** field → `missing field 'measured.p50_ms'`;
# - an **extra** field → `unknown field 'ratios.bogus'` (extra fields are refused, not ignored:
#   a typo such as `p50ms` would otherwise silently drop the real value);
# - a **wrong type** → `field 'measured.peak_bytes' must be int, got str`. An `int` is a valid
#   `float`; a `bool` is *not* a valid `int` or `float` (in Python `True` is an `int`, check for it);
#   a list of `str` must hold only strings.
#
# Report the fields in a fixed order (missing first, in schema order; then extra, sorted) so the
# same bad file always gives the same message.

# %% nbgrader={"grade": false, "grade_id": "validate-submission", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
MEASURED_FIELDS = {"quality": float, "p50_ms": float, "p90_ms": float, "p99_ms": float,
                   "throughput_per_s": float, "peak_bytes": int, "model_bytes": int}
SUBMISSION_SCHEMA = {
    "schema_version": int,
    "task": str,
    "model": str,
    "optimizations": [str],
    "measured": MEASURED_FIELDS,
    "reference": MEASURED_FIELDS,
    "ratios": {"speedup": float, "p99_speedup": float, "throughput_ratio": float, "memory_ratio": float,
               "size_ratio": float, "quality_delta": float, "passes_gate": bool, "score": float},
    "environment": {"python": str, "numpy": str, "blas": str, "platform": str, "cpu_count": int},
}
SCHEMA_VERSION = 1


class SubmissionError(ValueError):
    """A submission that does not fit the schema; the message names the field."""


def _fits(value, expected: type) -> bool:
    """isinstance, except that a bool is not a number and an int is a float."""
    ### BEGIN SOLUTION
    if expected is bool:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if expected is float:
        return isinstance(value, (int, float))
    return isinstance(value, expected)
    ### END SOLUTION


def validate_submission(data, schema: dict = SUBMISSION_SCHEMA, prefix: str = "") -> dict:
    """data if it fits schema (types, nested sections, lists of one type); SubmissionError naming the field otherwise."""
    ### BEGIN SOLUTION
    where = prefix[:-1] if prefix else "the submission"
    if not isinstance(data, dict):
        raise SubmissionError(f"{where} must be a JSON object with fields {', '.join(schema)}, got {type(data).__name__}")
    missing = [name for name in schema if name not in data]
    if missing:
        raise SubmissionError(f"missing field '{prefix}{missing[0]}' (every submission needs {', '.join(prefix + m for m in schema)})")
    extra = sorted(name for name in data if name not in schema)
    if extra:
        raise SubmissionError(f"unknown field '{prefix}{extra[0]}'; allowed here: {', '.join(schema)}")
    for name, expected in schema.items():
        value = data[name]
        if isinstance(expected, dict):
            validate_submission(value, expected, f"{prefix}{name}.")
        elif isinstance(expected, list):
            if not isinstance(value, list) or not all(_fits(item, expected[0]) for item in value):
                raise SubmissionError(f"field '{prefix}{name}' must be a list of {expected[0].__name__}, got {value!r}")
        elif not _fits(value, expected):
            raise SubmissionError(f"field '{prefix}{name}' must be {expected.__name__}, got {type(value).__name__}")
    return data
    ### END SOLUTION


# %% [markdown]
# ### Test: the schema names what is wrong

# %% nbgrader={"grade": true, "grade_id": "test-validate-submission", "locked": true, "points": 5, "schema_version": 3, "solution": false, "task": false}
def valid_submission_dict():
    measured = {"quality": 0.97, "p50_ms": 0.05, "p90_ms": 0.06, "p99_ms": 0.09, "throughput_per_s": 90000.0,
                "peak_bytes": 200000, "model_bytes": 104488}
    return {"schema_version": 1, "task": "digits-mlp", "model": "mlp int8", "optimizations": ["int8"],
            "measured": measured, "reference": dict(measured),
            "ratios": {"speedup": 1.0, "p99_speedup": 1.0, "throughput_ratio": 1.0, "memory_ratio": 1.0,
                       "size_ratio": 1.0, "quality_delta": 0.0, "passes_gate": True, "score": 1.0},
            "environment": {"python": "3.11", "numpy": "2.0", "blas": "openblas", "platform": "x86_64", "cpu_count": 2}}

def expect_submission_error(data, *words):
    try:
        validate_submission(data)
    except ValueError as err:
        message = str(err)
        for word in words:
            assert word in message, f"the error must mention {word!r}, got: {message}"
        return
    raise AssertionError(f"validate_submission must reject this submission (expected an error naming {words})")

def test_unit_valid_submission_passes():
    data = valid_submission_dict()
    assert validate_submission(data) == valid_submission_dict()
    data["measured"]["p50_ms"] = 1       # an int is a valid float
    validate_submission(data)

def test_unit_missing_and_extra_fields_are_named():
    data = valid_submission_dict()
    del data["task"]
    expect_submission_error(data, "task", "missing")
    data = valid_submission_dict()
    del data["measured"]["p99_ms"]
    expect_submission_error(data, "measured.p99_ms")
    data = valid_submission_dict()
    data["ratios"]["bogus"] = 1.0
    expect_submission_error(data, "ratios.bogus")
    data = valid_submission_dict()
    data["comment"] = "trust me"
    expect_submission_error(data, "comment")

def test_unit_wrong_types_are_named():
    data = valid_submission_dict()
    data["measured"]["peak_bytes"] = "200000"
    expect_submission_error(data, "measured.peak_bytes")
    data = valid_submission_dict()
    data["ratios"]["speedup"] = True     # a bool is not a number
    expect_submission_error(data, "ratios.speedup")
    data = valid_submission_dict()
    data["optimizations"] = ["int8", 3]
    expect_submission_error(data, "optimizations")
    data = valid_submission_dict()
    data["environment"] = "laptop"
    expect_submission_error(data, "environment")
    data = valid_submission_dict()
    data["environment"] = list(data["environment"])     # the right names, but a list, not a section
    expect_submission_error(data, "environment")

test_unit_valid_submission_passes()
test_unit_missing_and_extra_fields_are_named()
test_unit_wrong_types_are_named()
### BEGIN HIDDEN TESTS
def test_hidden_schema_edge_cases():
    data = valid_submission_dict()
    data["ratios"]["passes_gate"] = 1    # an int is not a bool
    expect_submission_error(data, "ratios.passes_gate")
    data = valid_submission_dict()
    data["environment"]["cpu_count"] = 2.0   # a float is not an int
    expect_submission_error(data, "environment.cpu_count")
    data = valid_submission_dict()
    data["schema_version"] = False
    expect_submission_error(data, "schema_version")
    data = valid_submission_dict()
    data["optimizations"] = []
    validate_submission(data)
    data["optimizations"] = "int8"
    expect_submission_error(data, "optimizations")
    expect_submission_error([1, 2], "submission")

test_hidden_schema_edge_cases()
### END HIDDEN TESTS

# %% [markdown]
# `Submission` (given) wraps a validated dict; `make_submission` is the only way the course
# makes one: it measures the reference entry and the submitted entry in the same run, computes the
# ratios with your `relative_scores`, and records the environment. Nothing in it is typed in.

# %%
#| export
def environment_record() -> dict:
    """Where the numbers were measured: Python, NumPy, the BLAS library and kernel, platform, cores."""
    blas_pools = [f"{p.get('internal_api')} {p.get('version')} kernel={p.get('architecture')}"
                  for p in threadpool_info() if p.get("user_api") == "blas"]
    return {"python": platform.python_version(), "numpy": np.__version__,
            "blas": "; ".join(blas_pools) or "none found", "platform": f"{platform.system()} {platform.machine()}",
            "cpu_count": os.cpu_count() or 1}


@dataclass
class Submission:
    """A validated TinyMLPerf submission (the dict is kept as it was read or made)."""

    data: dict

    def __post_init__(self):
        validate_submission(self.data)

    @property
    def task(self) -> str:
        return self.data["task"]

    @property
    def model(self) -> str:
        return self.data["model"]

    def to_json(self) -> str:
        return json.dumps(self.data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "Submission":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise SubmissionError(f"not valid JSON: {err}") from None
        return cls(data)

    def save(self, folder, stem: str | None = None) -> Path:
        """Write <folder>/<stem>.json (stem: the model name made file-safe) and return the path."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        stem = stem or "".join(c if c.isalnum() or c in "-_" else "-" for c in f"{self.task}-{self.model}")
        path = folder / f"{stem}.json"
        path.write_text(self.to_json(), encoding="utf-8")
        return path


def make_submission(task_name: str, entry: Entry, reference: Entry,
                    settings: HarnessSettings = HarnessSettings(), reference_measurement: Measurement | None = None) -> Submission:
    """Measure reference and entry on the task in this run and package the ratios as a Submission.

    reference_measurement: the reference measured earlier in this same run (to measure it once for many entries).
    """
    task = get_task(task_name)
    ref = reference_measurement or measure_entry(task, reference, settings)
    sub = measure_entry(task, entry, settings)
    ratios = relative_scores(ref, sub, task.tolerance, task.higher_is_better)
    return Submission({
        "schema_version": SCHEMA_VERSION, "task": task_name, "model": entry.name,
        "optimizations": [str(o) for o in entry.optimizations],
        "measured": asdict(sub), "reference": asdict(ref),
        "ratios": {name: (bool(value) if name == "passes_gate" else float(value)) for name, value in ratios.items()},
        "environment": environment_record(),
    })


# %% [markdown]
# ## Part 6: the Pareto front and the leaderboard
#
# One entry may be faster and another more accurate; neither is "the best". Entry `a`
# **dominates** `b` when `a` is at least as good in both coordinates and strictly better in at
# least one. The **Pareto front** is the set of entries no other entry dominates: the only
# sensible choices, whatever weight you give speed against accuracy.
#
# ```
#   accuracy ▲      ● a (front)
#            │            ● b (front)
#            │   ○ c            ● d (front)        c is dominated by a: slower AND less accurate
#            └──────────────────────────▶ speedup
# ```
#
# `pareto_front(points)` takes a list of `(quality, speed)` pairs, both higher-is-better, and
# returns the **indices** of the non-dominated points in increasing order. Two identical points
# do not dominate each other: both stay on the front.

# %% nbgrader={"grade": false, "grade_id": "pareto-front", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def pareto_front(points) -> list[int]:
    """Sorted indices of the (quality, speed) points that no other point dominates (both higher is better)."""
    ### BEGIN SOLUTION
    pairs = [(float(q), float(s)) for q, s in points]
    # Sweep from the highest quality down: a point is on the front if it is faster than every
    # point of strictly higher quality; equal-quality points compete on speed among themselves.
    order = sorted(range(len(pairs)), key=lambda i: (-pairs[i][0], -pairs[i][1]))
    front, best_speed_above = [], -math.inf
    position = 0
    while position < len(order):
        quality = pairs[order[position]][0]
        group = [i for i in order[position:] if pairs[i][0] == quality]
        top_speed = pairs[group[0]][1]
        if top_speed > best_speed_above:
            front.extend(i for i in group if pairs[i][1] == top_speed)
        best_speed_above = max(best_speed_above, top_speed)
        position += len(group)
    return sorted(front)
    ### END SOLUTION


# %% [markdown]
# ### Test: the front against a brute-force oracle
#
# The oracle checks every pair, straight from the definition. Points on a small integer grid
# give many ties in one coordinate or both, where sort-based shortcuts go wrong.

# %% nbgrader={"grade": true, "grade_id": "test-pareto-front", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
def brute_force_front(points):
    def dominates(a, b):
        return a[0] >= b[0] and a[1] >= b[1] and (a[0] > b[0] or a[1] > b[1])
    return [i for i, p in enumerate(points) if not any(dominates(q, p) for j, q in enumerate(points) if j != i)]

def test_unit_pareto_small_cases():
    assert list(pareto_front([(0.9, 1.0)])) == [0]
    assert list(pareto_front([(0.9, 1.0), (0.95, 2.0), (0.8, 3.0)])) == [1, 2]      # 0 is dominated by 1
    assert list(pareto_front([(0.9, 2.0), (0.9, 2.0)])) == [0, 1]                   # identical: both stay
    assert list(pareto_front([(0.9, 2.0), (0.9, 1.0)])) == [0]                      # same quality, slower: out
    assert list(pareto_front([(0.9, 2.0), (0.8, 2.0)])) == [0]                      # same speed, worse: out

def test_unit_pareto_matches_brute_force():
    gen = np.random.default_rng(7)
    for trial in range(60):
        n = int(gen.integers(1, 12))
        points = [(float(q), float(s)) for q, s in gen.integers(0, 4, size=(n, 2))]
        assert list(pareto_front(points)) == brute_force_front(points), f"points {points}"

test_unit_pareto_small_cases()
test_unit_pareto_matches_brute_force()
### BEGIN HIDDEN TESTS
def test_hidden_pareto_continuous_and_empty():
    assert list(pareto_front([])) == []
    gen = np.random.default_rng(11)
    for trial in range(20):
        points = [tuple(map(float, p)) for p in gen.random((15, 2))]
        assert list(pareto_front(points)) == brute_force_front(points)

test_hidden_pareto_continuous_and_empty()
### END HIDDEN TESTS

# %% [markdown]
# The leaderboard (given) reads every `*.json` in a folder. A file that is not JSON, does not fit
# the schema, names an unknown task, or whose ratios do **not** follow from its own measured
# numbers (the leaderboard recomputes them with `relative_scores`: it never takes a ratio on
# trust) is reported with the reason and skipped; the rest are ranked per task by score (speedup
# above the gate, 0 below it), then quality. The result goes into SQLite (one row per ranked
# submission) and into one self-contained HTML page: a table per task and an inline SVG plot of
# accuracy against speedup with the Pareto front drawn through its points. No network assets.

# %%
#| export
@dataclass
class RankedEntry:
    rank: int
    file: str
    submission: Submission
    on_pareto_front: bool


@dataclass
class Leaderboard:
    ranked: dict          # task name -> list[RankedEntry], best first
    problems: list        # (file name, reason) for every skipped file


def check_ratios(submission: Submission) -> None:
    """SubmissionError unless the ratios follow from the submission's own measured numbers (rel. 1e-6)."""
    data = submission.data
    task = get_task(data["task"])
    recomputed = relative_scores(Measurement(**data["reference"]), Measurement(**data["measured"]),
                                 task.tolerance, task.higher_is_better)
    for name, value in recomputed.items():
        stated = data["ratios"][name]
        if isinstance(value, bool) or name == "passes_gate":
            agrees = bool(stated) == bool(value)
        else:
            agrees = math.isclose(stated, value, rel_tol=1e-6, abs_tol=1e-12)
        if not agrees:
            raise SubmissionError(f"ratio '{name}' is {stated} but the measured numbers give {value}; "
                                  "write submissions with make_submission, never by hand")


def load_submissions(folder) -> tuple[list, list]:
    """([(file name, Submission)], [(file name, reason)]) for every *.json in folder, in name order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no submissions folder {folder}; write submissions there with Submission.save")
    loaded, problems = [], []
    for path in sorted(folder.glob("*.json")):
        try:
            submission = Submission.from_json(path.read_text(encoding="utf-8"))
            get_task(submission.task)
            check_ratios(submission)
        except (UnicodeDecodeError, ValueError) as err:
            problems.append((path.name, str(err)))
            continue
        loaded.append((path.name, submission))
    return loaded, problems


def rank_submissions(loaded: list) -> dict:
    """Per task: RankedEntry list ordered by score, then quality (in the task's direction), then file name."""
    by_task: dict = {}
    for file_name, submission in loaded:
        by_task.setdefault(submission.task, []).append((file_name, submission))
    ranked = {}
    for task_name in sorted(by_task):
        sign = 1.0 if get_task(task_name).higher_is_better else -1.0
        entries = sorted(by_task[task_name], key=lambda fs: (-fs[1].data["ratios"]["score"],
                                                             -sign * fs[1].data["measured"]["quality"], fs[0]))
        front = set(pareto_front([(sign * s.data["measured"]["quality"], s.data["ratios"]["speedup"]) for _, s in entries]))
        ranked[task_name] = [RankedEntry(rank=position + 1, file=f, submission=s, on_pareto_front=position in front)
                             for position, (f, s) in enumerate(entries)]
    return ranked


def write_leaderboard_db(board: Leaderboard, db_path) -> None:
    """A fresh SQLite file: table submissions (one row per ranked entry) and table problems."""
    db_path = Path(db_path)
    if db_path.exists():
        db_path.unlink()
    with sqlite3.connect(db_path) as db:
        db.execute("CREATE TABLE submissions (task TEXT, rank INTEGER, file TEXT, model TEXT, optimizations TEXT, "
                   "quality REAL, p50_ms REAL, p99_ms REAL, speedup REAL, p99_speedup REAL, memory_ratio REAL, "
                   "size_ratio REAL, passes_gate INTEGER, score REAL, on_pareto_front INTEGER, environment TEXT)")
        db.execute("CREATE TABLE problems (file TEXT, reason TEXT)")
        for task_name, entries in board.ranked.items():
            for e in entries:
                d = e.submission.data
                db.execute("INSERT INTO submissions VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                           (task_name, e.rank, e.file, d["model"], json.dumps(d["optimizations"]),
                            d["measured"]["quality"], d["measured"]["p50_ms"], d["measured"]["p99_ms"],
                            d["ratios"]["speedup"], d["ratios"]["p99_speedup"], d["ratios"]["memory_ratio"],
                            d["ratios"]["size_ratio"], int(d["ratios"]["passes_gate"]), d["ratios"]["score"],
                            int(e.on_pareto_front), json.dumps(d["environment"], sort_keys=True)))
        db.executemany("INSERT INTO problems VALUES (?, ?)", board.problems)


def pareto_svg(task_name: str, entries: list, width: int = 520, height: int = 320) -> str:
    """Inline SVG: quality (y) against speedup (x, log scale); front points filled and joined, others hollow,
    points below the quality gate grey, the reference (speedup 1) a cross."""
    pad = 48
    xs = [max(e.submission.data["ratios"]["speedup"], 1e-6) for e in entries] + [1.0]
    ys = [e.submission.data["measured"]["quality"] for e in entries] + [entries[0].submission.data["reference"]["quality"]]
    lo_x, hi_x = math.log10(min(xs)) - 0.1, math.log10(max(xs)) + 0.1
    span_y = (max(ys) - min(ys)) or 0.01
    lo_y, hi_y = min(ys) - 0.1 * span_y, max(ys) + 0.1 * span_y

    better_up = get_task(task_name).higher_is_better    # a loss axis is drawn upside down: better is up

    def place(speed, quality):
        x = pad + (math.log10(max(speed, 1e-6)) - lo_x) / (hi_x - lo_x) * (width - 2 * pad)
        share = (quality - lo_y) / (hi_y - lo_y)
        y = height - pad - (share if better_up else 1 - share) * (height - 2 * pad)
        return round(x, 2), round(y, 2)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="pareto" data-task="{html.escape(task_name)}" '
             f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
             f'<rect x="{pad}" y="{pad}" width="{width - 2 * pad}" height="{height - 2 * pad}" fill="none" stroke="#999"/>',
             f'<text x="{width / 2}" y="{height - 10}" text-anchor="middle" font-size="12">speedup over the reference (log scale)</text>',
             f'<text x="14" y="{height / 2}" text-anchor="middle" font-size="12" transform="rotate(-90 14 {height / 2})">'
             f'{"accuracy" if get_task(task_name).higher_is_better else "validation loss"}</text>']
    ref_x, ref_y = place(1.0, ys[-1])
    parts.append(f'<path class="reference" d="M{ref_x - 5},{ref_y - 5} L{ref_x + 5},{ref_y + 5} M{ref_x - 5},{ref_y + 5} '
                 f'L{ref_x + 5},{ref_y - 5}" stroke="#555"/>')
    front = sorted((e for e in entries if e.on_pareto_front), key=lambda e: e.submission.data["ratios"]["speedup"])
    if len(front) > 1:
        path = " ".join(f"{'M' if i == 0 else 'L'}{x},{y}" for i, (x, y) in
                        enumerate(place(e.submission.data["ratios"]["speedup"], e.submission.data["measured"]["quality"]) for e in front))
        parts.append(f'<path class="front" d="{path}" fill="none" stroke="#c33"/>')
    for value in sorted({min(xs), 1.0, max(xs)}):          # tick labels: slowest, the reference, fastest
        x, _ = place(value, lo_y)
        parts.append(f'<text class="tick" x="{x}" y="{height - pad + 14}" text-anchor="middle" font-size="10">{value:.3g}x</text>')
    for value in sorted({min(ys), max(ys)}):
        _, y = place(1.0, value)
        parts.append(f'<text class="tick" x="{pad - 4}" y="{y + 3}" text-anchor="end" font-size="10">{value:.4g}</text>')
    for e in entries:
        d = e.submission.data
        x, y = place(d["ratios"]["speedup"], d["measured"]["quality"])
        kind = ("point pareto" if e.on_pareto_front else "point") + ("" if d["ratios"]["passes_gate"] else " below-gate")
        fill = "#c33" if e.on_pareto_front else "white"
        stroke = "#c33" if d["ratios"]["passes_gate"] else "#888"
        parts.append(f'<circle class="{kind}" cx="{x}" cy="{y}" r="5" fill="{fill}" stroke="{stroke}" '
                     f'data-rank="{e.rank}" data-speedup="{d["ratios"]["speedup"]!r}" data-quality="{d["measured"]["quality"]!r}">'
                     f'<title>#{e.rank} {html.escape(d["model"])}</title></circle>')
    parts.append("</svg>")
    return "\n".join(parts)


def render_leaderboard_html(board: Leaderboard) -> str:
    """The whole page as one string: per task a ranked table and the Pareto plot; then the skipped files."""
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8"><title>TinyMLPerf leaderboard</title>',
           "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
           "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td.text{text-align:left}</style></head><body>",
           "<h1>TinyMLPerf leaderboard</h1>",
           "<p>Every ratio is measured against the reference model in the same run on the same machine; "
           "a submission below the quality gate scores 0.</p>"]
    columns = ("rank", "model", "optimizations", "quality", "speedup", "p99 speedup", "memory ratio", "size ratio",
               "gate", "score", "Pareto")
    for task_name, entries in board.ranked.items():
        out.append(f'<section class="task" data-task="{html.escape(task_name)}"><h2>{html.escape(task_name)}</h2>')
        out.append(f'<table class="leaderboard" data-task="{html.escape(task_name)}"><thead><tr>'
                   + "".join(f"<th>{c}</th>" for c in columns) + "</tr></thead><tbody>")
        for e in entries:
            d, r = e.submission.data, e.submission.data["ratios"]
            cells = (str(e.rank), html.escape(d["model"]), html.escape(", ".join(d["optimizations"]) or "none"),
                     f'{d["measured"]["quality"]:.4f}', f'{r["speedup"]:.3f}', f'{r["p99_speedup"]:.3f}',
                     f'{r["memory_ratio"]:.3f}', f'{r["size_ratio"]:.3f}', "pass" if r["passes_gate"] else "FAIL",
                     f'{r["score"]:.3f}', "yes" if e.on_pareto_front else "")
            out.append(f'<tr data-rank="{e.rank}" data-file="{html.escape(e.file)}">'
                       + "".join(f'<td class="text">{c}</td>' if i in (1, 2) else f"<td>{c}</td>" for i, c in enumerate(cells))
                       + "</tr>")
        out.append("</tbody></table>")
        out.append(pareto_svg(task_name, entries))
        out.append("</section>")
    out.append(f'<h2>Skipped files ({len(board.problems)})</h2><ul id="problems">')
    out.extend(f'<li data-file="{html.escape(f)}">{html.escape(f)}: {html.escape(reason)}</li>' for f, reason in board.problems)
    out.append("</ul></body></html>")
    return "\n".join(out) + "\n"


def build_leaderboard(folder, out_html, db_path=None) -> Leaderboard:
    """Read the submissions in folder, rank them, write the SQLite file (default: next to out_html) and the page."""
    loaded, problems = load_submissions(folder)
    board = Leaderboard(ranked=rank_submissions(loaded), problems=problems)
    out_html = Path(out_html)
    out_html.parent.mkdir(parents=True, exist_ok=True)
    write_leaderboard_db(board, Path(db_path) if db_path is not None else out_html.with_suffix(".sqlite"))
    out_html.write_text(render_leaderboard_html(board), encoding="utf-8")
    return board


# %% [markdown]
# ## Part 7: stacking optimizations on the reference models
#
# Now the measured contribution of each optimization the course built, one entry at a time, each
# against the reference measured in the same run. `course_entries` (given) builds them from the
# reference weights:
#
# | entry | module | what changes |
# |---|---|---|
# | optimized backend | 15 | the same weights through fused Linear + ReLU kernels (`backend_forward`) |
# | int8 | 16 | `quantize_model`: int8 weights per output channel, int8 GEMM with int32 sums, calibrated on 256 training digits |
# | pruned + fine-tuned | 17 | MLP: 70% of the weights zeroed by magnitude, fine-tuned with the mask, stored as CSR (`SparseLinear`); CNN: a quarter of the conv filters removed (`prune_conv_filters`), fine-tuned |
# | pruned + int8 | 17 + 16 | the pruned, fine-tuned model, then quantized |
# | concat cache | 12 | `generate(use_cache=True)`: past keys and values concatenated, one new token per step |
# | KV cache | 18 | `KVCache`: preallocated, written in place |

# %%
#| export
class using_backend:
    """Context manager: module 15's backend `name` while the harness measures, then the previous one."""

    def __init__(self, name: str):
        self.name = name

    def __enter__(self):
        self.previous = set_backend(self.name)

    def __exit__(self, *exc_info):
        set_backend(self.previous)
        return False


def sparse_copy(model: Sequential) -> Sequential:
    """The same layers with every Linear stored as module 17's CSR SparseLinear."""
    return Sequential(*[SparseLinear.from_linear(layer) if type(layer) is Linear else layer for layer in model.layers])


def course_entries(task_name: str, reference, fine_tune_epochs: int = 3, seed: int = 0) -> list:
    """The course's optimized entries for a task (modules 12, 15-18), built from copies of the reference."""
    task = get_task(task_name)
    if task_name == "char-gpt":
        return [Entry("char-gpt concat cache (module 12)", reference,
                      lambda prompt, n: reference.generate(prompt, n, seed=0, use_cache=True), ["cache:concat"]),
                Entry("char-gpt KVCache (module 18)", reference,
                      lambda prompt, n: kv_cache_generate(reference, prompt, n, seed=0, use_cache=True), ["cache:kv"])]
    x_train, y_train, _, _ = task.data()
    calibration = [x_train[start:start + 64] for start in range(0, 256, 64)]   # training digits, never the eval set
    loader = DataLoader(TensorDataset(x_train, y_train), batch_size=32, shuffle=True, seed=seed)
    backend_model = copy.deepcopy(reference)
    entries = [Entry(f"{task_name} optimized backend", backend_model, lambda x: backend_forward(backend_model, x),
                     ["backend:optimized"], context=lambda: using_backend("optimized"))]
    int8 = quantize_model(copy.deepcopy(reference), calibration)
    entries.append(Entry(f"{task_name} int8", int8, int8, ["int8:per-channel"]))
    with threadpool_limits(limits=1):
        if task_name == "digits-mlp":
            pruned = copy.deepcopy(reference)
            fine_tune(pruned, magnitude_prune(pruned, 0.7), loader, fine_tune_epochs)
            stored = sparse_copy(pruned)
            entries.append(Entry(f"{task_name} 70% pruned + fine-tuned (CSR)", stored, stored,
                                 ["prune:magnitude:0.7", f"fine-tune:{fine_tune_epochs}", "sparse:csr"]))
        else:
            pruned = prune_conv_filters(copy.deepcopy(reference), 0.25)   # half the filters cost ~2 points here
            fine_tune(pruned, None, loader, fine_tune_epochs)
            entries.append(Entry(f"{task_name} 25% filters pruned + fine-tuned", pruned, pruned,
                                 ["prune:filters:0.25", f"fine-tune:{fine_tune_epochs}"]))
    both = quantize_model(copy.deepcopy(pruned), calibration)
    entries.append(Entry(f"{task_name} pruned + fine-tuned + int8", both, both,
                         entries[-1].optimizations[:2] + ["int8:per-channel"]))
    return entries


# %% [markdown]
# Each entry becomes a submission: the harness measures it (and uses the reference measured
# above, in this same run), and the file goes into a folder from which the leaderboard is built.
# The first row of each task is the reference measured **again**: its ratios, which should be 1,
# show how much this machine's noise moves a ratio.

# %%
submissions_dir = Path(tempfile.mkdtemp(prefix="tinymlperf-"))
print(f"{'entry':<46}{'quality':>9}{'speedup':>9}{'p99 x':>8}{'tput x':>8}{'memory x':>10}"
      f"{'size x':>8}{'gate':>6}{'score':>7}")
for task_name, task in TASKS.items():
    reference_entry = task.reference_entry(references[task_name])
    fine_tune_epochs = 1 if QUICK else 3
    for entry in [reference_entry, *course_entries(task_name, references[task_name], fine_tune_epochs)]:
        submission = make_submission(task_name, entry, reference_entry, SETTINGS,
                                     reference_measurement=reference_measurements[task_name])
        submission.save(submissions_dir)
        r, quality = submission.data["ratios"], submission.data["measured"]["quality"]
        shown = f"{quality:.2%}" if task.higher_is_better else f"{quality:.3f}"
        print(f"{entry.name:<46}{shown:>9}{r['speedup']:>9.2f}{r['p99_speedup']:>8.2f}{r['throughput_ratio']:>8.2f}"
              f"{r['memory_ratio']:>10.2f}{r['size_ratio']:>8.2f}{'pass' if r['passes_gate'] else 'FAIL':>6}{r['score']:>7.2f}")

# %% [markdown]
# Stacking: what did the last optimization add? For the entry that quantizes the pruned model,
# its ratios divided by the pruned entry's ratios are int8's own contribution on top of pruning
# (both were measured against the same reference in this run).

# %%
saved = {}
for path in sorted(submissions_dir.glob("*.json")):
    submission = Submission.from_json(path.read_text(encoding="utf-8"))
    saved[(submission.task, submission.model)] = submission.data["ratios"]
for task_name in ("digits-mlp", "digits-cnn"):
    pruned_name = next(model for task, model in saved if task == task_name and "pruned" in model and "int8" not in model)
    both = saved[(task_name, f"{task_name} pruned + fine-tuned + int8")]
    alone = saved[(task_name, pruned_name)]
    print(f"{task_name}: int8 on top of '{pruned_name}': speedup x{both['speedup'] / alone['speedup']:.2f}, "
          f"size x{both['size_ratio'] / alone['size_ratio']:.2f}, accuracy {both['quality_delta'] - alone['quality_delta']:+.2%}")

# %% [markdown]
# The quality gate at work: an entry that halves the model by zeroing the smaller half of every
# weight matrix *without fine-tuning* may be fast or small, but if it loses more than one point
# of accuracy it scores nothing. (Module 17 does pruning properly, with fine-tuning.)

# %%
def crudely_pruned_copy(task_name: str, fraction: float):
    """A fresh reference-architecture model with the reference's weights, the smallest |w| zeroed per layer."""
    pruned = TASKS[task_name].build_model(0)
    for mine, theirs in zip(pruned.parameters(), references[task_name].parameters()):
        mine.data[...] = theirs.data
        if mine.data.ndim > 1:
            cutoff = np.quantile(np.abs(mine.data), fraction)
            mine.data[np.abs(mine.data) < cutoff] = 0.0
    return pruned


for fraction in (0.5, 0.9):
    broken = crudely_pruned_copy("digits-mlp", fraction)
    entry = Entry(name=f"digits-mlp {fraction:.0%} zeroed, no fine-tune", model=broken, predict=broken,
                  optimizations=[f"magnitude-zero:{fraction}"])
    submission = make_submission("digits-mlp", entry, TASKS["digits-mlp"].reference_entry(references["digits-mlp"]),
                                 SETTINGS, reference_measurement=reference_measurements["digits-mlp"])
    submission.save(submissions_dir)
    r = submission.data["ratios"]
    print(f"{entry.name:<40} accuracy {submission.data['measured']['quality']:.2%} "
          f"(reference {submission.data['reference']['quality']:.2%}), speedup {r['speedup']:.2f}, "
          f"gate {'pass' if r['passes_gate'] else 'FAIL'}, score {r['score']:.2f}")

# %% [markdown]
# ## The leaderboard
#
# `build_leaderboard` (and `tito leaderboard SUBMISSIONS_DIR`, which calls it) ranks the folder.
# A corrupt file is reported and the rest ranked:

# %%
(submissions_dir / "truncated.json").write_text('{"schema_version": 1, "task": ', encoding="utf-8")
page = submissions_dir / "leaderboard.html"
board = build_leaderboard(submissions_dir, page)
for task_name, ranked in board.ranked.items():
    print(task_name)
    for e in ranked:
        d = e.submission.data
        quality = d["measured"]["quality"]
        shown = f"accuracy {quality:.2%}" if TASKS[task_name].higher_is_better else f"val loss {quality:.3f}"
        print(f"  #{e.rank} {d['model']:<46} score {d['ratios']['score']:6.2f}  {shown}"
              f"{'  (Pareto front)' if e.on_pareto_front else ''}")
for file_name, reason in board.problems:
    print(f"skipped {file_name}: {reason}")
print(f"page: {page} ({page.stat().st_size:,} bytes), database: {page.with_suffix('.sqlite')}")
