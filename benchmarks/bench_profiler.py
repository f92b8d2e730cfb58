"""Module 14's profiler, checked against the reference tools: its own overhead vs `timeit`, and
`count_flops` vs `torch.utils.flop_counter` on the same architecture (where PyTorch is installed).

Run with `python -m benchmarks profiler`. Every ratio comes from numbers measured in this run.
"""

from __future__ import annotations

import statistics
import timeit

import numpy as np

from benchmarks.harness import blas_description, blas_threads, print_header, print_table, verdict, write_json
from tinytorch.core.activations import GELU, ReLU, Sigmoid, Softmax, Tanh
from tinytorch.core.layers import Linear, Sequential
from tinytorch.core.tensor import Tensor
from tinytorch.profiling.profiler import FLOPCounter, Profiler

MIN_TIME_S = 0.02  # per repeat, for both tools: long enough that clock reads vanish, short enough for 2 cores
REPEATS = 7
ROUNDS = 5  # the two tools alternate, so drift (frequency, other load) hits both alike
OVERHEAD_TARGET = 0.05  # measure_latency within 5% of timeit at the median


def random_input(*shape) -> Tensor:
    return Tensor(np.random.default_rng(0).standard_normal(shape).astype(np.float32))


def small_ops():
    """(label, callable, input): calls from a microsecond to a fraction of a millisecond."""
    mlp = Sequential(Linear(784, 256, seed=0), ReLU(), Linear(256, 10, seed=1), Softmax())
    return [
        ("ReLU, 64 floats", ReLU(), random_input(64)),
        ("Linear 64->64, batch 8", Linear(64, 64, seed=0), random_input(8, 64)),
        ("MLP 784-256-10, batch 32", mlp, random_input(32, 784)),
    ]


def timeit_median_s(op, x, number: int) -> float:
    """timeit's own loop (statement compiled into the timing loop, GC off): median per-call seconds."""
    timer = timeit.Timer("op(x)", globals={"op": op, "x": x})
    return statistics.median(t / number for t in timer.repeat(repeat=REPEATS, number=number))


def overhead_rows():
    profiler = Profiler()
    rows, ratios, records = [], [], []
    for label, op, x in small_ops():
        first = profiler.measure_latency(op, x, warmup=5, iterations=3, min_time_s=MIN_TIME_S)
        number = max(1, int(MIN_TIME_S / first.median_s))  # same time per repeat for timeit
        ours, reference = [], []
        for _ in range(ROUNDS):
            reference.append(timeit_median_s(op, x, number))
            ours.append(profiler.measure_latency(op, x, warmup=2, iterations=REPEATS, min_time_s=MIN_TIME_S).median_s)
        per_call = profiler.measure_latency(op, x, warmup=5, iterations=2000 if first.median_s < 1e-4 else 200)
        ours_s, timeit_s = statistics.median(ours), statistics.median(reference)
        ratio = statistics.median(o / r for o, r in zip(ours, reference))  # paired by round: drift cancels
        ratios.append(ratio)
        rows.append([label, timeit_s * 1e6, ours_s * 1e6, ratio, per_call.median_s / timeit_s, per_call.cv])
        records.append({"op": label, "timeit_us": timeit_s * 1e6, "measure_latency_us": ours_s * 1e6,
                        "ratio_batched": ratio, "ratio_per_call": per_call.median_s / timeit_s})
    return rows, ratios, records


def torch_twin(model: Sequential):
    """The same architecture and weights in PyTorch (torch is imported only here, for the cross-check)."""
    import torch

    def convert(layer):
        if isinstance(layer, Linear):
            fan_in, fan_out = layer.weight.shape
            twin = torch.nn.Linear(fan_in, fan_out, bias=layer.bias is not None)
            with torch.no_grad():
                twin.weight.copy_(torch.from_numpy(np.ascontiguousarray(layer.weight.numpy().T)))
                if layer.bias is not None:
                    twin.bias.copy_(torch.from_numpy(layer.bias.numpy()))
            return twin
        if isinstance(layer, Softmax):
            return torch.nn.Softmax(dim=getattr(layer, "axis", -1))
        simple = {ReLU: torch.nn.ReLU, Sigmoid: torch.nn.Sigmoid, Tanh: torch.nn.Tanh}
        if isinstance(layer, GELU):
            return torch.nn.GELU(approximate="tanh")
        return simple[type(layer)]()

    return torch.nn.Sequential(*[convert(layer) for layer in model.layers])


def flop_rows():
    """count_flops vs torch.utils.flop_counter. torch counts only matrix products (2 x MACs), so its
    total is compared with ours minus the bias adds and activations, which are reported separately."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    cases = [
        ("MLP 784-256-10, batch 64", Sequential(Linear(784, 256, seed=0), ReLU(), Linear(256, 10, seed=1), Softmax()), (64, 784)),
        ("GELU MLP, 3-D input 4x16x128", Sequential(Linear(128, 512, seed=0), GELU(), Linear(512, 128, seed=1)), (4, 16, 128)),
        ("no-bias Tanh/Sigmoid, batch 1", Sequential(Linear(32, 32, bias=False, seed=0), Tanh(), Linear(32, 8, seed=1), Sigmoid()), (1, 32)),
    ]
    rows, records, all_match = [], [], True
    for label, model, shape in cases:
        x = random_input(*shape)
        ours = FLOPCounter().count(model, x)
        twin = torch_twin(model)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            twin_out = twin(torch.from_numpy(x.numpy()))
        outputs_agree = np.allclose(twin_out.numpy(), model(x).numpy(), rtol=1e-4, atol=1e-5)
        torch_flops = counter.get_total_flops()
        matmul_flops = 2 * ours.total_macs
        match = matmul_flops == torch_flops and outputs_agree
        all_match &= match
        rows.append([label, torch_flops, matmul_flops, ours.total_flops - matmul_flops, ours.total_flops,
                     "yes" if outputs_agree else "NO", "match" if match else "DIFFER"])
        records.append({"case": label, "torch_flops": torch_flops, "ours_matmul_flops": matmul_flops,
                        "ours_total_flops": ours.total_flops, "outputs_agree": bool(outputs_agree)})
    return rows, records, all_match


def main() -> None:
    print_header("profiler: measure_latency vs timeit, count_flops vs torch.utils.flop_counter")
    with blas_threads(1):  # both tools time the same single-threaded calls
        rows, ratios, overhead = overhead_rows()
    print(f"\nmedian per-call time, {REPEATS} repeats of >= {MIN_TIME_S * 1e3:.0f} ms each, median of {ROUNDS} alternating rounds "
          "(per-call column: one clock read pair per call, no batching)")
    print_table(["op", "timeit us", "measure_latency us", "paired ratio", "per-call ratio", "per-call cv"], rows)
    worst = max(abs(r - 1) for r in ratios)
    print(verdict("max |measure_latency / timeit - 1|", worst, OVERHEAD_TARGET, higher_is_better=False))
    payload = {"overhead": overhead, "overhead_target": OVERHEAD_TARGET, "worst_overhead": worst}

    try:
        import torch  # noqa: F401
    except ImportError:
        print("\nPyTorch not installed: FLOP cross-check skipped (pip install torch==2.13.0 to run it)")
    else:
        flops, records, all_match = flop_rows()
        print(f"\nFLOPs per forward pass (torch {torch.__version__} counts matrix products only: 2 x MACs)")
        print_table(["model", "torch", "ours 2xMACs", "ours bias+activations", "ours total", "outputs agree", "matmul FLOPs"], flops)
        print("cross-check: " + ("every matmul count equals torch's" if all_match else "DIFFERENCES above"))
        payload["flop_cross_check"] = records
    print(f"results: {write_json('profiler', payload)}  (BLAS: {blas_description()})")
