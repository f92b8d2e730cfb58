"""final_performance_test: the table's structure and arithmetic (rates, ratios, errors), never its speeds."""

import numpy as np

from tinytorch.core.kernels import MATMUL_ROWS, RELU_ROWS, final_performance_test

N, RELU_SIZE = 40, 3000


def test_table_rows_and_arithmetic():
    rows = final_performance_test(n=N, relu_size=RELU_SIZE, repeats=1)
    assert [r["kernel"] for r in rows] == [*MATMUL_ROWS, *RELU_ROWS]
    by_name = {r["kernel"]: r for r in rows}
    blas, copy = by_name["NumPy BLAS, 1 thread"], by_name["np.copyto"]
    for row in rows:
        ceiling = blas if row["kernel"] in MATMUL_ROWS else copy
        assert row["ceiling"] == ceiling["ceiling"]
        assert np.isfinite(row["rate"]) and row["rate"] > 0
        work = 2 * N**3 if row["kernel"] in MATMUL_ROWS else 2 * 4 * RELU_SIZE
        np.testing.assert_allclose(row["rate"], work / row["time_us"] / 1e3, rtol=1e-12)
        np.testing.assert_allclose(row["ratio"], row["rate"] / ceiling["rate"], rtol=1e-12)
    assert blas["ratio"] == 1.0 and copy["ratio"] == 1.0
    assert {r["unit"] for r in rows} == {"GFLOP/s", "G op/s", "GB/s"}


def test_table_checks_results():
    rows = {r["kernel"]: r for r in final_performance_test(n=N, relu_size=RELU_SIZE, repeats=1)}
    for name in ("matmul_baseline", "ikj_matmul", "cache_friendly_matmul", "parallel_matmul (all threads)"):
        assert rows[name]["max_abs_error"] < 1e-4, rows[name]
    assert 0 < rows["quantized_matmul"]["max_abs_error"] < 0.5
    assert rows["vectorized_relu"]["max_abs_error"] == 0 and rows["parallel_relu"]["max_abs_error"] == 0
