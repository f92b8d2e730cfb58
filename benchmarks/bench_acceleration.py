"""Module 15's acceleration, side by side in one run.

1. GELU on a 2000x2000 float32 array: `fused_gelu` vs `unfused_gelu` vs the one-expression NumPy
   version. Time, useful GB/s (8 bytes per element) as a share of `np.copyto` on the same bytes,
   and peak extra memory (tracemalloc) in units of one output.
2. A 784-256-256-10 MLP, batch 64, on each backend and on PyTorch CPU where installed, all on the
   same thread count. The naive backend is pure Python, so it is timed on a few rows and compared
   per row.

Run with `python -m benchmarks acceleration`. Every ratio comes from numbers measured in this run.
BENCH_ACCEL_THREADS sets the thread count of the MLP table (default 1: on a shared machine,
multi-thread timings mostly measure the neighbours; "all" leaves the libraries' defaults).
"""

from __future__ import annotations

import os
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
from tinytorch.core.activations import ReLU
from tinytorch.core.layers import Linear, Sequential
from tinytorch.core.tensor import Tensor
from tinytorch.optimization.acceleration import (
    backend_forward,
    fused_gelu,
    get_backend,
    one_expression_gelu,
    set_backend,
    unfused_gelu,
)
from tinytorch.profiling.profiler import MemoryProfiler

GELU_N = 2000
MLP_SIZES = (784, 256, 256, 10)
MLP_BATCH = 64
NAIVE_ROWS = 2          # pure-Python matmul: about 0.27 M multiply-adds per row
ROUNDS = 5              # contenders alternate round by round, so drift hits all alike
FUSED_SPEEDUP_TARGET = 3.0
FUSED_MEMORY_TARGET = 1.01   # peak extra memory in outputs: one output, plus 1% for bookkeeping
TORCH_RATIO_TARGET = 1.3     # optimized time / PyTorch time
NAIVE_SPEEDUP_TARGET = 100.0


def gelu_table() -> dict:
    x = np.random.default_rng(0).standard_normal((GELU_N, GELU_N)).astype(np.float32)
    copy_gbs = copyto_bandwidth_gbs(x.nbytes)
    versions = {"fused_gelu": fused_gelu, "unfused_gelu": unfused_gelu, "one-expression NumPy": one_expression_gelu}
    for fn in versions.values():
        fn(x)   # compile / warm up before anything is measured
    samples = {name: [] for name in versions}
    for _ in range(ROUNDS):
        for name, fn in versions.items():
            samples[name].append(median_seconds(fn, x, warmup=1, repeats=5))
    seconds = {name: statistics.median(s) for name, s in samples.items()}
    peaks = {name: MemoryProfiler().measure(fn, x).peak_bytes / x.nbytes for name, fn in versions.items()}
    rows, records = [], {}
    for name in versions:
        gbs = 2 * x.nbytes / seconds[name] / 1e9
        rows.append([name, seconds[name] * 1e3, gbs, gbs / copy_gbs, peaks[name], seconds["unfused_gelu"] / seconds[name]])
        records[name] = {"ms": seconds[name] * 1e3, "useful_gbs": gbs, "share_of_copyto": gbs / copy_gbs,
                         "peak_extra_outputs": peaks[name]}
    print(f"\nGELU on {GELU_N}x{GELU_N} float32 (median of {ROUNDS} alternating rounds); "
          f"np.copyto on the same bytes: {copy_gbs:.1f} GB/s")
    print_table(["version", "ms", "useful GB/s", "share of copyto", "peak extra (outputs)", "speed-up vs unfused"], rows)
    speedup = seconds["unfused_gelu"] / seconds["fused_gelu"]
    print(verdict("fused_gelu speed-up over unfused_gelu", speedup, FUSED_SPEEDUP_TARGET))
    print(verdict("fused_gelu peak extra memory, in outputs", peaks["fused_gelu"], FUSED_MEMORY_TARGET,
                  higher_is_better=False))
    return {"copyto_gbs": copy_gbs, "versions": records, "fused_speedup": speedup}


def make_mlp() -> Sequential:
    layers = []
    for i, (fan_in, fan_out) in enumerate(zip(MLP_SIZES, MLP_SIZES[1:])):
        layers += [Linear(fan_in, fan_out, seed=i), ReLU()]
    return Sequential(*layers[:-1])   # no activation after the last layer


def torch_twin(model: Sequential):
    """The same weights in a torch.nn.Sequential, or None when PyTorch is not installed."""
    try:
        import torch
    except ImportError:
        return None
    layers = []
    for layer in model.layers:
        if isinstance(layer, Linear):
            twin = torch.nn.Linear(*layer.weight.shape)
            with torch.no_grad():
                twin.weight.copy_(torch.from_numpy(np.ascontiguousarray(layer.weight.data.T)))
                twin.bias.copy_(torch.from_numpy(layer.bias.data))
            layers.append(twin)
        else:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers).eval()


class thread_count:
    """BLAS, numba and torch limited to n threads inside the block (None: leave them)."""

    def __init__(self, n: int | None):
        self.n = n

    def __enter__(self):
        self.blas = blas_threads(self.n)
        self.blas.__enter__()
        self.saved = numba.get_num_threads()
        if self.n is not None:
            numba.set_num_threads(min(self.n, numba.config.NUMBA_NUM_THREADS))
        try:
            import torch
            self.torch_saved = torch.get_num_threads()
            if self.n is not None:
                torch.set_num_threads(self.n)
        except ImportError:
            self.torch_saved = None
        return self

    def __exit__(self, *exc):
        numba.set_num_threads(self.saved)
        if self.torch_saved is not None:
            import torch
            torch.set_num_threads(self.torch_saved)
        return self.blas.__exit__(*exc)


def mlp_table(threads: int | None) -> dict:
    model = make_mlp()
    x = np.random.default_rng(1).standard_normal((MLP_BATCH, MLP_SIZES[0])).astype(np.float32)
    x_tensor = Tensor(x)
    twin = torch_twin(model)
    contenders = {}   # name -> (function, argument)
    outputs = {}
    try:
        set_backend("naive")
        outputs["naive"] = model(Tensor(x[:NAIVE_ROWS])).data
        naive_s = median_seconds(model, Tensor(x[:NAIVE_ROWS]), warmup=0, repeats=3)
        set_backend("numpy")
        outputs["numpy"] = model(x_tensor).data
        contenders["numpy: model(x)"] = ("numpy", model, x_tensor)
        set_backend("optimized")
        outputs["optimized"] = model(x_tensor).data   # the first call measures and picks the matmul kernels
        contenders["optimized: model(x)"] = ("optimized", model, x_tensor)
        contenders["optimized: backend_forward"] = ("optimized", lambda t: backend_forward(model, t), x_tensor)
        choices = {f"{a}@{b}": k for (a, b), k in get_backend().tuned.items() if a[0] == MLP_BATCH}
        if twin is not None:
            import torch

            x_torch = torch.from_numpy(x)

            def torch_forward(t):
                with torch.inference_mode():
                    return twin(t)

            outputs["pytorch"] = torch_forward(x_torch).numpy()
            contenders["PyTorch CPU"] = ("numpy", torch_forward, x_torch)
        samples = {name: [] for name in contenders}
        for _ in range(ROUNDS):
            for name, (backend, fn, arg) in contenders.items():
                set_backend(backend)
                samples[name].append(median_seconds(fn, arg, warmup=2, repeats=5, min_time=0.02))
    finally:
        set_backend("numpy")
    seconds = {name: statistics.median(s) for name, s in samples.items()}
    per_row = {"naive (pure Python)": naive_s / NAIVE_ROWS, **{n: s / MLP_BATCH for n, s in seconds.items()}}
    torch_s = seconds.get("PyTorch CPU")
    rows = []
    for name, row_s in per_row.items():
        rows_timed = NAIVE_ROWS if name.startswith("naive") else MLP_BATCH
        vs_torch = row_s / (torch_s / MLP_BATCH) if torch_s else "n/a"
        rows.append([name, rows_timed, row_s * 1e6, row_s * MLP_BATCH * 1e3, vs_torch, per_row["naive (pure Python)"] / row_s])
    thread_text = "library default threads" if threads is None else f"{threads} thread(s) for BLAS, numba and torch"
    print(f"\nMLP {'-'.join(map(str, MLP_SIZES))}, float32, {thread_text}; median of {ROUNDS} alternating rounds "
          f"(naive: {NAIVE_ROWS} rows, median of 3 runs)")
    print_table(["contender", "rows timed", "us per row", "ms per 64 rows", "time / PyTorch", "speed-up vs naive"], rows)
    print(f"matmul kernels the optimized backend measured and chose: {choices}")
    print("ms per 64 rows for naive = its per-row time x 64 (its matmul cost grows linearly with rows)")
    for name in ("numpy", "optimized", "pytorch"):
        if name in outputs:
            gap = float(np.max(np.abs(outputs[name][:NAIVE_ROWS] - outputs["naive"])))
            print(f"max |{name} - naive| on the {NAIVE_ROWS} shared rows: {gap:.2e}")
    record = {"threads": threads, "us_per_row": {n: s * 1e6 for n, s in per_row.items()}, "tuned": choices}
    for name in ("optimized: model(x)", "optimized: backend_forward"):
        if torch_s:
            record[f"{name} / pytorch"] = seconds[name] / torch_s
            print(verdict(f"{name} time / PyTorch CPU time", seconds[name] / torch_s, TORCH_RATIO_TARGET,
                          higher_is_better=False))
        record[f"{name} speed-up vs naive"] = per_row["naive (pure Python)"] / per_row[name]
        print(verdict(f"{name} speed-up over naive, per row", per_row["naive (pure Python)"] / per_row[name],
                      NAIVE_SPEEDUP_TARGET))
    if not torch_s:
        print("PyTorch is not installed: the PyTorch comparison is skipped (pip install torch==2.13.0)")
    return record


def main() -> None:
    setting = os.environ.get("BENCH_ACCEL_THREADS", "1")
    threads = None if setting == "all" else int(setting)
    print_header("acceleration: fused GELU and an MLP on every backend")
    gelu = gelu_table()
    with thread_count(threads):
        mlp = mlp_table(threads)
    write_json("acceleration", {"gelu": gelu, "mlp": mlp})


if __name__ == "__main__":
    main()
