"""Module 13's kernels side by side: matmul loop orders, tiling and threads against NumPy BLAS,
ReLU against `np.copyto` bandwidth, int8 against float32 (time and bytes).

Run with `python -m benchmarks kernels` (or `make bench`). Every numba kernel is called once before
it is timed, so JIT compilation (or loading numba's on-disk cache) is never in a timing. Targets
are ratios of numbers measured in this run; the two sides of each ratio alternate over several
rounds, so drift on a shared machine (other tenants, clock frequency) hits both alike.
"""

from __future__ import annotations

import statistics

import numba
import numpy as np

from benchmarks.harness import (
    blas_threads,
    copyto_bandwidth_gbs,
    median_seconds,
    print_header,
    print_table,
    verdict,
    write_json,
)
from tinytorch.core.kernels import (
    cache_friendly_matmul,
    ijk_matmul,
    ikj_matmul,
    int8_matmul,
    parallel_matmul,
    parallel_relu,
    quantize_int8,
    quantized_matmul,
    symmetric_scale,
    vectorized_relu,
)
from tinytorch.core.layers import matmul_naive

MATMUL_SIZES = (64, 128, 256, 512, 1024)
PYTHON_LOOP_SIZES = (64, 128)          # pure-Python loops take seconds beyond this
RELU_SIZES = (1 << 16, 1 << 20, 1 << 24)
INT8_SIZES = (256, 512, 1024)
ROUNDS = 7                             # alternating rounds for each target ratio

TILED_VS_BLAS_N, TILED_VS_BLAS_TARGET = 512, 0.20
TILED_VS_IKJ_N, TILED_VS_IKJ_TARGET = 1024, 1.5
RELU_VS_COPY_ELEMENTS, RELU_VS_COPY_TARGET = 1 << 24, 0.70
INT8_VS_BLAS_N, INT8_VS_BLAS_TARGET = 512, 0.15


def square_operands(n: int):
    rng = np.random.default_rng(n)
    return rng.standard_normal((n, n)).astype(np.float32), rng.standard_normal((n, n)).astype(np.float32)


def seconds(fn, *args, slow: bool = False) -> float:
    """Median seconds after warm-up; slow kernels get fewer repeats (they are far from any target)."""
    if slow:
        return median_seconds(fn, *args, warmup=1, repeats=3)
    return median_seconds(fn, *args, warmup=2, repeats=7, min_time=0.02)


def paired_ratio(fast, slow, *args) -> float:
    """Median over alternating rounds of time(slow) / time(fast): how many times faster `fast` is."""
    fast(*args), slow(*args)
    ratios = []
    for _ in range(ROUNDS):
        t_slow = median_seconds(slow, *args, warmup=0, repeats=3, min_time=0.01)
        t_fast = median_seconds(fast, *args, warmup=0, repeats=3, min_time=0.01)
        ratios.append(t_slow / t_fast)
    return statistics.median(ratios)


def with_numba_threads(fn, threads: int):
    def run(*args):
        previous = numba.get_num_threads()
        numba.set_num_threads(threads)
        try:
            return fn(*args)
        finally:
            numba.set_num_threads(previous)
    return run


def matmul_table(all_threads: int):
    """Rows: N, kernel, threads, ms, GFLOP/s, ratio to 1-thread BLAS (all measured here)."""
    rows, records = [], []
    for n in MATMUL_SIZES:
        A, B = square_operands(n)
        reference = A.astype(np.float64) @ B.astype(np.float64)
        with blas_threads(1):
            blas1 = seconds(np.matmul, A, B)
        kernels = []
        if n in PYTHON_LOOP_SIZES:
            kernels.append(("Python loops (matmul_naive)", 1, matmul_naive, True))
        if n >= 128:
            kernels += [
                ("numba ijk", 1, ijk_matmul, n >= 512),
                ("numba ikj", 1, ikj_matmul, n >= 1024),
                ("numba tiled (cache_friendly_matmul)", 1, cache_friendly_matmul, False),
                ("numba tiled+parallel (parallel_matmul)", 1, with_numba_threads(parallel_matmul, 1), False),
                ("numba tiled+parallel (parallel_matmul)", all_threads, parallel_matmul, False),
            ]
        measured = [("NumPy BLAS", 1, blas1)]
        with blas_threads(1):   # idle OpenBLAS threads must not compete with numba's
            for name, threads, kernel, slow in kernels:
                out = kernel(A, B)                    # compiles (or loads the cache) and checks
                error = np.abs(out - reference).max() / np.abs(reference).max()
                assert error < 1e-4, f"{name} at n={n} is wrong (relative error {error:.2e})"
                measured.append((name, threads, seconds(kernel, A, B, slow=slow)))
        with blas_threads(None):
            measured.append(("NumPy BLAS", all_threads, seconds(np.matmul, A, B)))
        for name, threads, t in measured:
            gflops = 2 * n**3 / t / 1e9
            rows.append([n, name, threads, t * 1e3, gflops, blas1 / t])
            records.append({"n": n, "kernel": name, "threads": threads, "seconds": t, "gflops": gflops,
                            "ratio_to_blas_1_thread": blas1 / t})
    return rows, records


def relu_table():
    """Rows: elements, MiB, kernel, us, GB/s (read + write), ratio to np.copyto on the same arrays."""
    rows, records = [], []
    for size in RELU_SIZES:
        x = np.random.default_rng(size).standard_normal(size).astype(np.float32)
        dst = np.empty_like(x)
        moved = 2 * x.nbytes
        variants = [
            ("np.copyto (ceiling)", np.copyto, (dst, x)),
            ("vectorized_relu(x, out=)", vectorized_relu, (x, dst)),
            ("vectorized_relu(x) (allocates)", vectorized_relu, (x,)),
            ("parallel_relu(x, 2, out=)", parallel_relu, (x, 2, dst)),
        ]
        copy_s = None
        for name, fn, args in variants:
            t = seconds(fn, *args)
            copy_s = copy_s or t
            rows.append([size, x.nbytes / 2**20, name, t * 1e6, moved / t / 1e9, copy_s / t])
            records.append({"elements": size, "kernel": name, "seconds": t, "gbs": moved / t / 1e9,
                            "ratio_to_copyto": copy_s / t})
        np.testing.assert_array_equal(dst, np.where(x > 0, x, np.float32(0)))
    return rows, records


def int8_table():
    """Rows: N, kernel, ms, G op/s, ratio to 1-thread float32 BLAS, operand bytes, exact."""
    rows, records = [], []
    for n in INT8_SIZES:
        A, B = square_operands(n)
        sA, sB = symmetric_scale(A), symmetric_scale(B)
        qA, qB = quantize_int8(A, sA), quantize_int8(B, sB)
        exact = bool(np.array_equal(int8_matmul(qA, qB).astype(np.int64), qA.astype(np.int64) @ qB.astype(np.int64)))
        float_bytes, int8_bytes = A.nbytes + B.nbytes, qA.nbytes + qB.nbytes
        with blas_threads(1):
            blas1 = seconds(np.matmul, A, B)
            variants = [
                ("float32 NumPy BLAS", blas1, float_bytes, "-"),
                ("float32 cache_friendly_matmul", seconds(cache_friendly_matmul, A, B), float_bytes, "-"),
                ("int8_matmul (int32 sums)", seconds(int8_matmul, qA, qB), int8_bytes, exact),
                ("quantized_matmul (quantize+int8+rescale)", seconds(quantized_matmul, A, B, sA, sB), int8_bytes, exact),
            ]
        for name, t, nbytes, is_exact in variants:
            rows.append([n, name, t * 1e3, 2 * n**3 / t / 1e9, blas1 / t, nbytes, is_exact])
            records.append({"n": n, "kernel": name, "seconds": t, "gops": 2 * n**3 / t / 1e9,
                            "ratio_to_float32_blas_1_thread": blas1 / t, "operand_bytes": nbytes, "exact": is_exact})
    return rows, records


def targets():
    """The four stated targets, each from alternating rounds in this run."""
    lines, values = [], {}
    A, B = square_operands(TILED_VS_BLAS_N)
    with blas_threads(1):
        values["tiled_over_blas1_n512"] = paired_ratio(cache_friendly_matmul, np.matmul, A, B)
    lines.append(verdict(f"tiled GFLOP/s / 1-thread BLAS GFLOP/s at N={TILED_VS_BLAS_N}",
                         values["tiled_over_blas1_n512"], TILED_VS_BLAS_TARGET))

    A, B = square_operands(TILED_VS_IKJ_N)
    values["tiled_over_ikj_n1024"] = paired_ratio(cache_friendly_matmul, ikj_matmul, A, B)
    lines.append(verdict(f"tiled / ikj speed at N={TILED_VS_IKJ_N}", values["tiled_over_ikj_n1024"], TILED_VS_IKJ_TARGET))

    x = np.random.default_rng(0).standard_normal(RELU_VS_COPY_ELEMENTS).astype(np.float32)
    dst = np.empty_like(x)
    values["relu_out_over_copyto"] = paired_ratio(lambda: vectorized_relu(x, dst), lambda: np.copyto(dst, x))
    lines.append(verdict(f"vectorized_relu(out=) GB/s / np.copyto GB/s, {x.nbytes >> 20} MiB float32",
                         values["relu_out_over_copyto"], RELU_VS_COPY_TARGET))

    A, B = square_operands(INT8_VS_BLAS_N)
    sA, sB = symmetric_scale(A), symmetric_scale(B)
    qA, qB = quantize_int8(A, sA), quantize_int8(B, sB)
    with blas_threads(1):
        values["quantized_over_blas1_n512"] = paired_ratio(
            lambda: quantized_matmul(A, B, sA, sB), lambda: np.matmul(A, B))
    values["operand_bytes_ratio"] = (A.nbytes + B.nbytes) / (qA.nbytes + qB.nbytes)
    values["int8_exact"] = bool(np.array_equal(int8_matmul(qA, qB).astype(np.int64),
                                               qA.astype(np.int64) @ qB.astype(np.int64)))
    lines.append(verdict(f"quantized_matmul op/s / 1-thread float32 BLAS FLOP/s at N={INT8_VS_BLAS_N}",
                         values["quantized_over_blas1_n512"], INT8_VS_BLAS_TARGET))
    lines.append(verdict("float32 / int8 operand nbytes (measured)", values["operand_bytes_ratio"], 4))
    lines.append(f"int8 int32 sums equal the int64 reference at N={INT8_VS_BLAS_N}: {values['int8_exact']}")
    return lines, values


def main() -> None:
    all_threads = numba.get_num_threads()
    print_header("kernels (module 13): numba loops, tiling, threads and int8 against BLAS and np.copyto")
    print(f"numba {numba.__version__}, threading layer {numba.config.THREADING_LAYER}, {all_threads} threads; "
          f"np.copyto ceiling (harness, 64 MiB): {copyto_bandwidth_gbs():.1f} GB/s")

    print("\nmatmul, float32 N x N; ratio = time of 1-thread BLAS / time of the kernel")
    mm_rows, mm_records = matmul_table(all_threads)
    print_table(["N", "kernel", "threads", "ms", "GFLOP/s", "vs BLAS 1t"], mm_rows)

    print("\nReLU, float32; GB/s counts bytes read + written; ratio to np.copyto on the same arrays")
    relu_rows, relu_records = relu_table()
    print_table(["elements", "MiB", "kernel", "us", "GB/s", "vs copyto"], relu_rows)

    print("\nint8 against float32, N x N, 1 thread; op/s counts 2 N^3 operations for both")
    int8_rows, int8_records = int8_table()
    print_table(["N", "kernel", "ms", "G op/s", "vs f32 BLAS 1t", "operand bytes", "exact"], int8_rows)

    print("\ntargets (alternating rounds, median ratio):")
    lines, values = targets()
    for line in lines:
        print("  " + line)

    path = write_json("kernels", {"matmul": mm_records, "relu": relu_records, "int8": int8_records, "targets": values})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
