"""Shared measurement rules for every benchmark: warm-up, median of repeats, ratios, BLAS printed.

Each bench_*.py builds rows with `median_seconds` and prints them with `print_table`; ratios are
always computed from numbers measured in the same run, never typed in.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

RESULTS_DIR = Path(__file__).parent / "results"


def median_seconds(fn, *args, warmup: int = 2, repeats: int = 7, min_time: float = 0.0, **kw) -> float:
    """Median wall time of fn(*args, **kw) after `warmup` untimed calls.

    min_time: each repeat loops fn until at least this many seconds pass (for sub-millisecond
    calls, like timeit's autorange) and reports the per-call time.
    """
    for _ in range(warmup):
        fn(*args, **kw)
    samples = []
    for _ in range(repeats):
        calls = 0
        start = time.perf_counter()
        while True:
            fn(*args, **kw)
            calls += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_time:
                break
        samples.append(elapsed / calls)
    return statistics.median(samples)


@contextmanager
def blas_threads(n: int | None):
    """Limit BLAS (and OpenMP) threads to n inside the block; None leaves them as they are."""
    if n is None:
        yield
        return
    with threadpool_limits(limits=n):
        yield


def blas_description() -> str:
    """One line naming the BLAS library, its kernel (architecture) and its thread count."""
    parts = []
    for pool in threadpool_info():
        if pool.get("user_api") == "blas":
            parts.append(
                f"{pool.get('internal_api')} {pool.get('version')} kernel={pool.get('architecture')} "
                f"threads={pool.get('num_threads')}"
            )
    coretype = os.environ.get("OPENBLAS_CORETYPE")
    if coretype:
        parts.append(f"OPENBLAS_CORETYPE={coretype} (forces an older kernel; unset it to measure the default)")
    return "; ".join(parts) or "no BLAS found by threadpoolctl"


def copyto_bandwidth_gbs(nbytes: int = 64 * 2**20) -> float:
    """Measured np.copyto bandwidth in GB/s (bytes read + bytes written), the memory ceiling."""
    src = np.ones(nbytes // 4, dtype=np.float32)
    dst = np.empty_like(src)
    seconds = median_seconds(np.copyto, dst, src)
    return 2 * src.nbytes / seconds / 1e9


def blas_gflops(n: int, dtype=np.float32, threads: int | None = 1) -> float:
    """Measured NumPy matmul GFLOP/s at n x n x n, the compute ceiling."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    with blas_threads(threads):
        seconds = median_seconds(np.matmul, a, b)
    return 2 * n**3 / seconds / 1e9


def print_header(title: str) -> None:
    print()
    print(f"== {title} ==")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, NumPy {np.__version__}")
    print(f"BLAS: {blas_description()}")


def print_table(headers: list[str], rows: list[list]) -> None:
    """Plain aligned table; floats shown with 3 significant digits."""

    def fmt(v):
        if isinstance(v, float):
            return f"{v:.3g}"
        return str(v)

    cells = [[fmt(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)))
    print("  ".join("-" * w for w in widths))
    for r in cells:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))


def verdict(name: str, measured: float, target: float, higher_is_better: bool = True) -> str:
    """'met' or the gap, for a target stated as a ratio."""
    ok = measured >= target if higher_is_better else measured <= target
    sign = ">=" if higher_is_better else "<="
    status = "met" if ok else "NOT met"
    return f"target {name}: {measured:.3g} (want {sign} {target:g}) -> {status}"


def write_json(name: str, payload: dict) -> Path:
    """Write results to benchmarks/results/<name>.json (ignored by git) and return the path."""
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    payload = {"blas": blas_description(), "machine": platform.machine(), **payload}
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    return path
