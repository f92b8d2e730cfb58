"""One training step of modules 03-07 against PyTorch CPU, side by side in one run.

The step: zero_grad, forward through a 784-256-256-10 MLP (ReLU), cross entropy, backward, Adam
update; batch 64, float32, one thread for BLAS and for torch. PyTorch runs the same step from the
same weights (its nn.Linear stores W transposed), so the first step's losses and updated weights
are compared as well as the times. Contenders alternate round by round, so drift hits both alike.

Also measured: where each framework's time goes (forward + loss, backward, optimizer step), and
the peak memory of one tinytorch step (tracemalloc, which sees NumPy's allocations) against the
sum of parameters, gradients, Adam's state and the activations a backward pass needs, computed
from the shapes.

Run with `python -m benchmarks training`. Every ratio comes from numbers measured in this run.
"""

from __future__ import annotations

import time
import tracemalloc

import numpy as np

import tinytorch.core.autograd  # noqa: F401  (backward() on Tensor)
from benchmarks.training_step import compare_steps
from benchmarks.harness import blas_threads, print_header, print_table, write_json
from tinytorch.core.activations import ReLU
from tinytorch.core.layers import Linear, Sequential
from tinytorch.core.losses import CrossEntropyLoss
from tinytorch.core.optimizers import Adam
from tinytorch.core.tensor import Tensor

SIZES = (784, 256, 256, 10)
BATCH = 64
LR = 1e-3
ROUNDS = 5
STEP_REPEATS = 15        # single-step samples per round
PHASE_STEPS = 60          # steps timed phase by phase (median per phase)
TORCH_RATIO_TARGET = 2.0  # tinytorch step time / PyTorch step time


def make_mlp() -> Sequential:
    layers = []
    for i, (fan_in, fan_out) in enumerate(zip(SIZES, SIZES[1:])):
        layers += [Linear(fan_in, fan_out, seed=i), ReLU()]
    return Sequential(*layers[:-1])


def batch() -> tuple[np.ndarray, np.ndarray]:
    gen = np.random.default_rng(1)
    return gen.standard_normal((BATCH, SIZES[0])).astype(np.float32), gen.integers(0, SIZES[-1], BATCH)


class TinyStep:
    """tinytorch: the training step, and the same step split into timed phases."""

    name = "tinytorch"

    def __init__(self):
        self.model = make_mlp()
        self.optimizer = Adam(self.model.parameters(), lr=LR)
        self.loss_fn = CrossEntropyLoss()
        x, y = batch()
        self.x, self.y = Tensor(x), Tensor(y)

    def __call__(self) -> float:
        self.optimizer.zero_grad()
        loss = self.loss_fn(self.model(self.x), self.y)
        loss.backward()
        self.optimizer.step()
        return float(loss.data)

    def phases(self) -> tuple[float, float, float]:
        t0 = time.perf_counter()
        self.optimizer.zero_grad()
        loss = self.loss_fn(self.model(self.x), self.y)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        self.optimizer.step()
        t3 = time.perf_counter()
        return t1 - t0, t2 - t1, t3 - t2

    def weights(self) -> list[np.ndarray]:
        return [p.data for p in self.model.parameters()]   # (in, out) and (out,)


class TorchStep:
    """PyTorch CPU: the same architecture, weights, batch, loss and Adam settings."""

    name = "PyTorch CPU"

    def __init__(self, tiny: TinyStep):
        import torch

        self.torch = torch
        layers = []
        for layer in tiny.model.layers:
            if isinstance(layer, Linear):
                twin = torch.nn.Linear(layer.in_features, layer.out_features)
                with torch.no_grad():
                    twin.weight.copy_(torch.from_numpy(np.ascontiguousarray(layer.weight.data.T)))
                    twin.bias.copy_(torch.from_numpy(layer.bias.data))
                layers.append(twin)
            else:
                layers.append(torch.nn.ReLU())
        self.model = torch.nn.Sequential(*layers)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=LR)
        self.loss_fn = torch.nn.CrossEntropyLoss()
        x, y = batch()
        self.x, self.y = torch.from_numpy(x), torch.from_numpy(y)

    def __call__(self) -> float:
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss_fn(self.model(self.x), self.y)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())

    def phases(self) -> tuple[float, float, float]:
        t0 = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss_fn(self.model(self.x), self.y)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        self.optimizer.step()
        t3 = time.perf_counter()
        return t1 - t0, t2 - t1, t3 - t2

    def weights(self) -> list[np.ndarray]:
        out = []
        for layer in self.model:
            if isinstance(layer, self.torch.nn.Linear):
                out += [layer.weight.detach().numpy().T, layer.bias.detach().numpy()]
        return out


class one_thread:
    """BLAS and torch limited to one thread inside the block."""

    def __enter__(self):
        self.blas = blas_threads(1)
        self.blas.__enter__()
        try:
            import torch
            self.torch_saved = torch.get_num_threads()
            torch.set_num_threads(1)
        except ImportError:
            self.torch_saved = None
        return self

    def __exit__(self, *exc):
        if self.torch_saved is not None:
            import torch
            torch.set_num_threads(self.torch_saved)
        return self.blas.__exit__(*exc)


def make_torch_step(tiny: TinyStep):
    try:
        return TorchStep(tiny)
    except ImportError:
        return None


def first_step_agreement() -> dict:
    """One step of each from the same weights: the loss and the updated weights must agree."""
    tiny = TinyStep()
    twin = make_torch_step(tiny)
    tiny_loss = tiny()
    if twin is None:
        return {"tinytorch_loss": tiny_loss}
    torch_loss = twin()
    gap = max(float(np.max(np.abs(a - b))) for a, b in zip(tiny.weights(), twin.weights()))
    print(f"first step from the same weights: loss tinytorch {tiny_loss:.6f}, PyTorch {torch_loss:.6f}; "
          f"largest difference of the updated weights {gap:.2e} (Adam moves each weight by about lr = {LR:g})")
    return {"tinytorch_loss": tiny_loss, "pytorch_loss": torch_loss, "max_weight_gap": gap}


def step_table() -> dict:
    tiny = TinyStep()
    contenders = [tiny]
    twin = make_torch_step(tiny)
    if twin is not None:
        contenders.append(twin)
    return compare_steps(contenders, model=f"MLP {'-'.join(map(str, SIZES))}, batch {BATCH}",
                         phase_names=("forward + loss", "backward", "Adam step"),
                         rounds=ROUNDS, step_repeats=STEP_REPEATS, phase_steps=PHASE_STEPS,
                         step_warmup=3, phase_warmup=5, target=TORCH_RATIO_TARGET)


def activation_bytes(model: Sequential, x: Tensor) -> int:
    """Bytes of the tensors a backward pass needs: the input and every layer's output (from shapes)."""
    total, rows, width = x.data.nbytes, x.shape[0], x.shape[1]
    for layer in model.layers:
        if isinstance(layer, Linear):
            width = layer.out_features      # an activation keeps the width of the layer before it
        total += rows * width * x.data.itemsize
    return total


def memory_table() -> dict:
    tracemalloc.start()
    try:
        tiny = TinyStep()                 # parameters, Adam's m and v, the batch: all traced from here
        before_step, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        tiny()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    params = sum(p.data.nbytes for p in tiny.model.parameters())
    grads = params
    state = sum(b.nbytes for buffers in tiny.optimizer.state for b in buffers.values())
    activations = activation_bytes(tiny.model, tiny.x)
    accounted = params + grads + state + activations
    print("\nmemory of one tinytorch step (tracemalloc peak, everything allocated since the model was built)")
    rows = [["parameters", params / 2**20], ["gradients (one per parameter)", grads / 2**20],
            ["Adam state (m and v)", state / 2**20],
            ["activations (input + each layer's output, from shapes)", activations / 2**20],
            ["sum of the above", accounted / 2**20],
            ["measured before the step (model, optimizer, batch)", before_step / 2**20],
            ["measured peak during the step", peak / 2**20]]
    print_table(["what", "MiB"], rows)
    print(f"peak / sum = {peak / accounted:.2f} (the rest: intermediates such as x@W before the bias is added, "
          "softmax probabilities in the loss's backward, and temporaries of the Adam update)")
    return {"params_bytes": params, "grads_bytes": grads, "adam_state_bytes": state, "activation_bytes": activations,
            "accounted_bytes": accounted, "peak_bytes": peak, "peak_over_accounted": peak / accounted}


def main() -> None:
    print_header("training: one step (forward, backward, Adam) against PyTorch CPU")
    with one_thread():
        agreement = first_step_agreement()
        steps = step_table()
        memory = memory_table()
    write_json("training", {"first_step": agreement, "step": steps, "memory": memory})


if __name__ == "__main__":
    main()
