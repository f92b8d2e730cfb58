"""Profiler: counts against formulas and module 03's own parameter count, timing on a scripted clock."""

import tracemalloc

import numpy as np
import pytest

from tinytorch.core.activations import GELU, Softmax
from tinytorch.core.layers import Linear, Sequential, count_parameters
from tinytorch.core.tensor import Tensor
from tinytorch.profiling.profiler import Profiler, format_layer_table

MIB = 2**20


def steady_clock(step_ns):
    """Fake clock that advances by step_ns at every reading."""
    ticks = iter(range(0, 10**15, step_ns))
    return lambda: next(ticks)


def mlp():
    return Sequential(Linear(20, 32, seed=0), GELU(), Linear(32, 8, seed=1), Softmax())


def batch(rows=6, features=20):
    return Tensor(np.random.default_rng(0).standard_normal((rows, features)).astype(np.float32))


def test_parameter_count_agrees_with_layers_module():
    model = mlp()
    assert Profiler().count_parameters(model) == count_parameters(model) == 20 * 32 + 32 + 32 * 8 + 8
    assert Profiler().count_parameters(GELU()) == 0


def test_count_flops_is_the_sum_of_layer_formulas():
    rows = 6
    expected = rows * 32 * (2 * 20 + 1) + 9 * rows * 32 + rows * 8 * (2 * 32 + 1) + rows * (5 * 8 - 2)
    assert Profiler().count_flops(mlp(), batch(rows)) == expected


def test_measure_memory_returns_the_forward_output():
    model, x = mlp(), batch()
    stats = Profiler().measure_memory(model, x)
    np.testing.assert_allclose(stats.result.numpy(), model(x).numpy(), rtol=1e-6, atol=1e-7)
    assert stats.peak_bytes >= stats.result.numpy().nbytes


def test_measure_latency_on_a_scripted_clock():
    stats = Profiler(clock=steady_clock(3_000_000)).measure_latency(mlp(), batch(), warmup=2, iterations=5)
    assert stats.samples_s == pytest.approx([0.003] * 5, rel=1e-12)
    assert stats.median_ms == pytest.approx(3.0, rel=1e-12)
    assert stats.p99_ms == pytest.approx(3.0, rel=1e-12)


def test_profile_layers_rows():
    rows, step = 4, 1_000_000
    model, x = mlp(), batch(rows)
    table = Profiler(clock=steady_clock(step)).profile_layers(model, x, warmup=1, iterations=3)
    assert [r.name for r in table] == ["0 Linear", "1 GELU", "2 Linear", "3 Softmax"]
    assert [r.parameters for r in table] == [20 * 32 + 32, 0, 32 * 8 + 8, 0]
    assert [r.output_bytes for r in table] == [rows * 32 * 4, rows * 32 * 4, rows * 8 * 4, rows * 8 * 4]
    assert table[1].flops == 9 * rows * 32
    # compulsory traffic of the first Linear: input, weight, bias and output, float32
    assert table[0].bytes_moved_estimate == 4 * (rows * 20 + 20 * 32 + 32 + rows * 32)
    assert table[1].bytes_moved_estimate == 4 * (rows * 32 + rows * 32)
    for r in table:
        assert r.median_s == pytest.approx(step / 1e9, rel=1e-12)
        assert r.achieved_gflops == pytest.approx(r.flops / (step / 1e9) / 1e9, rel=1e-12)
    text = format_layer_table(table)
    assert "0 Linear" in text and "3 Softmax" in text and f"{table[0].flops:,}" in text


def test_context_manager_measures_the_block():
    with Profiler(clock=steady_clock(5_000_000)) as p:
        kept = np.ones(12 * MIB // 8)
    assert p.elapsed_s == pytest.approx(0.005, rel=1e-12)
    assert 12 * MIB <= p.memory.peak_bytes
    assert 12 * MIB <= p.memory.net_bytes < 12 * MIB + 64 * 1024
    assert kept.nbytes == 12 * MIB


def test_context_manager_lets_exceptions_through():
    with pytest.raises(RuntimeError):
        with Profiler(clock=steady_clock(1)) as p:
            raise RuntimeError("inside")
    assert p.elapsed_s == pytest.approx(1e-9)
    assert not tracemalloc.is_tracing()  # the block's tracing is stopped even when the block raises
