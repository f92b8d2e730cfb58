"""Module 09's convolution on every backend, side by side in one run.

1. Conv2d forward + backward (input, weight and bias gradients), batch 32, 16 -> 32 channels,
   32x32, k=3, padding 1, float32, one thread: module 15's naive, numpy and optimized backends
   (through `set_backend`, the model code unchanged) against PyTorch CPU where installed. The naive
   backend is pure Python: it is timed on a slice (one image, two output channels) and scaled by
   FLOPs, which its loops cost linearly.
2. The forward convolution alone: im2col + one GEMM (`conv2d_im2col`) against the loops
   (`conv2d_naive`), per FLOP, and both against a BLAS matmul of the same FLOPs (the ceiling).

Run with `python -m benchmarks spatial`. Every ratio comes from numbers measured in this run.
"""

from __future__ import annotations

import statistics

import numpy as np

from benchmarks.bench_acceleration import thread_count
from benchmarks.harness import median_seconds, print_header, print_table, verdict, write_json
from tinytorch.core.spatial import Conv2d, conv2d_im2col, conv2d_naive, im2col
from tinytorch.core.tensor import Tensor
from tinytorch.optimization.acceleration import set_backend

BATCH, IN_CH, OUT_CH, SIZE, KERNEL, PADDING = 32, 16, 32, 32, 3, 1
NAIVE_SLICE = (1, 2)           # (images, output channels) the pure-Python backend is timed on
ROUNDS = 3                     # contenders alternate round by round, so drift hits all alike
TORCH_RATIO_TARGET = 3.0       # optimized time / PyTorch time
IM2COL_SPEEDUP_TARGET = 100.0  # im2col FLOP rate / loops FLOP rate


def conv_flops(batch: int, out_ch: int) -> int:
    """Forward multiply-adds x 2 of a 'same' convolution of this module's shape."""
    return 2 * batch * out_ch * SIZE * SIZE * IN_CH * KERNEL * KERNEL


def train_step(layer: Conv2d, x: Tensor) -> None:
    """Forward, then backward for the input, weight and bias (gradients zeroed first)."""
    layer.weight.grad = layer.bias.grad = x.grad = None
    layer(x).sum().backward()


def torch_step(weight: np.ndarray, x: np.ndarray):
    """The same forward + backward in PyTorch, or None when it is not installed."""
    try:
        import torch
    except ImportError:
        return None
    w = torch.from_numpy(weight.copy()).requires_grad_()
    b = torch.zeros(weight.shape[0], requires_grad=True)
    inputs = torch.from_numpy(x.copy()).requires_grad_()

    def step():
        w.grad = b.grad = inputs.grad = None
        torch.nn.functional.conv2d(inputs, w, b, padding=PADDING).sum().backward()
        return inputs.grad

    return step


def backend_table() -> dict:
    import tinytorch.core.autograd  # noqa: F401  (backward on Tensors)

    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, IN_CH, SIZE, SIZE)).astype(np.float32)
    layer = Conv2d(IN_CH, OUT_CH, KERNEL, padding=PADDING, seed=0)
    x_tensor = Tensor(x, requires_grad=True)
    images, channels = NAIVE_SLICE
    naive_layer = Conv2d(IN_CH, channels, KERNEL, padding=PADDING, seed=0)
    naive_x = Tensor(x[:images], requires_grad=True)
    grads = {}
    step = torch_step(layer.weight.data, x)
    try:
        set_backend("naive")
        naive_s = median_seconds(train_step, naive_layer, naive_x, warmup=0, repeats=1)
        naive_s *= conv_flops(BATCH, OUT_CH) / conv_flops(images, channels)
        samples = {"numpy": [], "optimized": []}
        for name in samples:
            set_backend(name)
            train_step(layer, x_tensor)            # warm-up: compiles the optimized backend's kernels
            grads[name] = x_tensor.grad.data.copy()
        if step is not None:
            samples["PyTorch CPU"] = []
        for _ in range(ROUNDS):                    # PyTorch alternates with the backends too: drift hits all alike
            for name in samples:
                if name == "PyTorch CPU":
                    samples[name].append(median_seconds(step, warmup=1, repeats=3))
                    continue
                set_backend(name)
                samples[name].append(median_seconds(train_step, layer, x_tensor, warmup=1, repeats=3))
    finally:
        set_backend("numpy")
    seconds = {"naive (scaled from a slice)": naive_s, **{n: statistics.median(s) for n, s in samples.items()}}
    if step is not None:
        torch_grad = step().numpy()
        for name, grad in grads.items():
            print(f"max |d x ({name}) - d x (PyTorch)|: {float(np.max(np.abs(grad - torch_grad))):.2e}")
    torch_s = seconds.get("PyTorch CPU")
    flops = 3 * conv_flops(BATCH, OUT_CH)      # forward, d weight and d input: one GEMM's FLOPs each
    rows = [[name, s * 1e3, flops / s / 1e9, s / torch_s if torch_s else "n/a", naive_s / s] for name, s in seconds.items()]
    print(f"\nConv2d({IN_CH}, {OUT_CH}, {KERNEL}, padding={PADDING}) forward + backward, x ({BATCH}, {IN_CH}, {SIZE}, {SIZE}) "
          f"float32, 1 thread; median of {ROUNDS} alternating rounds")
    print_table(["backend", "ms per step", "GFLOP/s", "time / PyTorch", "speed-up vs naive"], rows)
    record = {"ms": {n: s * 1e3 for n, s in seconds.items()}}
    if torch_s:
        ratio = seconds["optimized"] / torch_s
        record["optimized / pytorch"] = ratio
        print(verdict("optimized time / PyTorch CPU time", ratio, TORCH_RATIO_TARGET, higher_is_better=False))
    else:
        print("PyTorch is not installed: no PyTorch row (pip install torch to compare)")
    return record


def forward_table() -> dict:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((BATCH, IN_CH, SIZE, SIZE)).astype(np.float32)
    weight = rng.standard_normal((OUT_CH, IN_CH, KERNEL, KERNEL)).astype(np.float32)
    images, channels = NAIVE_SLICE
    cols = im2col(x, KERNEL, KERNEL, 1, PADDING)
    flat_t = np.ascontiguousarray(weight.reshape(OUT_CH, -1).T)
    loops_s = median_seconds(conv2d_naive, x[:images], weight[:channels], 1, PADDING, warmup=0, repeats=1)
    loops_rate = conv_flops(images, channels) / loops_s
    im2col_s = median_seconds(conv2d_im2col, x, weight, 1, PADDING, warmup=1, repeats=5)
    gemm_s = median_seconds(np.matmul, cols, flat_t, warmup=1, repeats=5)
    flops = conv_flops(BATCH, OUT_CH)
    rates = {"conv2d_naive (loops)": loops_rate, "conv2d_im2col": flops / im2col_s, "BLAS GEMM, same FLOPs": flops / gemm_s}
    rows = [[name, rate / 1e9, rate / rates["BLAS GEMM, same FLOPs"]] for name, rate in rates.items()]
    print(f"\nforward convolution alone, same shape, 1 thread (loops timed on {images} image x {channels} output channels)")
    print_table(["implementation", "GFLOP/s", "share of BLAS"], rows)
    speedup = rates["conv2d_im2col"] / loops_rate
    print(verdict("im2col FLOP rate / loops FLOP rate", speedup, IM2COL_SPEEDUP_TARGET))
    print(f"im2col matrix: {cols.nbytes / x.nbytes:.1f}x the input's bytes")
    return {"gflops": {n: r / 1e9 for n, r in rates.items()}, "im2col_speedup": speedup}


def main() -> None:
    print_header("Spatial: conv2d on every backend (module 09 + module 15)")
    with thread_count(1):
        results = {"backends": backend_table(), "forward": forward_table()}
    print(f"results: {write_json('spatial', results)}")


if __name__ == "__main__":
    main()
