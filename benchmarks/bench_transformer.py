"""One training step of module 12's char-GPT against the same model in PyTorch CPU, side by side.

The step: zero_grad, forward through a GPT (4 pre-LN blocks, dim 128, 4 heads, context 128,
vocabulary 70), cross entropy over every position, backward, AdamW update; batch 16, float32, one
thread for BLAS and for torch. PyTorch runs the same step from the same weights (its nn.Linear
stores W transposed; GELU with approximate="tanh", as module 02's), so the first step's losses are
compared as well as the times. Contenders alternate round by round, so drift hits both alike.

Also measured: where each framework's time goes (forward + loss, backward, optimizer step).

Run with `python -m benchmarks transformer`. Every ratio comes from numbers measured in this run.
"""

from __future__ import annotations

import time

import numpy as np

import tinytorch.core.autograd  # noqa: F401  (backward() on Tensor)
from benchmarks.bench_training import one_thread
from benchmarks.training_step import compare_steps
from benchmarks.harness import print_header, write_json
from tinytorch.core.optimizers import AdamW
from tinytorch.models.transformer import GPT, language_model_loss

VOCAB, DIM, LAYERS, HEADS, CONTEXT, BATCH = 70, 128, 4, 4, 128, 16
LR = 1e-3
ROUNDS = 3
STEP_REPEATS = 3          # single-step samples per round
PHASE_STEPS = 5           # steps timed phase by phase (median per phase)
TORCH_RATIO_TARGET = 3.0  # tinytorch step time / PyTorch step time


def batch() -> tuple[np.ndarray, np.ndarray]:
    gen = np.random.default_rng(1)
    windows = gen.integers(0, VOCAB, size=(BATCH, CONTEXT + 1))
    return windows[:, :-1], windows[:, 1:]


class TinyStep:
    """tinytorch: the training step, and the same step split into timed phases."""

    name = "tinytorch"

    def __init__(self):
        self.model = GPT(VOCAB, DIM, LAYERS, HEADS, CONTEXT, seed=0)
        self.optimizer = AdamW(self.model.parameters(), lr=LR)
        self.x, self.y = batch()

    def __call__(self) -> float:
        self.optimizer.zero_grad()
        loss = language_model_loss(self.model, self.x, self.y)
        loss.backward()
        self.optimizer.step()
        return float(loss.data)

    def phases(self) -> tuple[float, float, float]:
        t0 = time.perf_counter()
        self.optimizer.zero_grad()
        loss = language_model_loss(self.model, self.x, self.y)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        self.optimizer.step()
        t3 = time.perf_counter()
        return t1 - t0, t2 - t1, t3 - t2


def torch_twin(gpt: GPT):
    """The same GPT in PyTorch, weights copied from `gpt`."""
    import torch
    from torch import nn

    def linear(layer):
        twin = nn.Linear(layer.in_features, layer.out_features)
        with torch.no_grad():
            twin.weight.copy_(torch.from_numpy(np.ascontiguousarray(layer.weight.data.T)))
            twin.bias.copy_(torch.from_numpy(layer.bias.data))
        return twin

    def layer_norm(layer):
        twin = nn.LayerNorm(layer.dim, eps=layer.eps)
        with torch.no_grad():
            twin.weight.copy_(torch.from_numpy(layer.gamma.data))
            twin.bias.copy_(torch.from_numpy(layer.beta.data))
        return twin

    class Block(nn.Module):
        def __init__(self, block):
            super().__init__()
            self.n_heads = block.n_heads
            self.ln1, self.ln2 = layer_norm(block.ln1), layer_norm(block.ln2)
            self.q, self.k, self.v, self.o = (linear(getattr(block.attn, name))
                                              for name in ("q_proj", "k_proj", "v_proj", "out_proj"))
            self.fc1, self.fc2 = linear(block.mlp.fc1), linear(block.mlp.fc2)

        def forward(self, x, mask):
            b, t, d = x.shape
            a = self.ln1(x)
            split = lambda z: z.view(b, t, self.n_heads, d // self.n_heads).transpose(1, 2)  # noqa: E731
            q, k, v = split(self.q(a)), split(self.k(a)), split(self.v(a))
            scores = (q @ k.transpose(-1, -2)) * (1.0 / (d // self.n_heads) ** 0.5)
            weights = scores.masked_fill(~mask, float("-inf")).softmax(dim=-1)
            h = x + self.o((weights @ v).transpose(1, 2).reshape(b, t, d))
            return h + self.fc2(nn.functional.gelu(self.fc1(self.ln2(h)), approximate="tanh"))

    class TorchGPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok = nn.Embedding(gpt.vocab_size, gpt.dim)
            self.pos = nn.Embedding(gpt.max_seq_len, gpt.dim)
            with torch.no_grad():
                self.tok.weight.copy_(torch.from_numpy(gpt.token_embedding.weight.data))
                self.pos.weight.copy_(torch.from_numpy(gpt.position_embedding.weight.data))
            self.blocks = nn.ModuleList(Block(block) for block in gpt.blocks)
            self.ln_f, self.head = layer_norm(gpt.ln_f), linear(gpt.head)

        def forward(self, tokens):
            t = tokens.shape[1]
            x = self.tok(tokens) + self.pos(torch.arange(t))
            mask = torch.tril(torch.ones(t, t, dtype=torch.bool))
            for block in self.blocks:
                x = block(x, mask)
            return self.head(self.ln_f(x))

    return TorchGPT()


class TorchStep:
    """PyTorch CPU: the same architecture, weights, batch, loss and AdamW settings."""

    name = "PyTorch CPU"

    def __init__(self, tiny: TinyStep):
        import torch

        self.torch = torch
        self.model = torch_twin(tiny.model)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=LR, eps=1e-8, weight_decay=0.01)
        x, y = batch()
        self.x, self.y = torch.from_numpy(x), torch.from_numpy(y)

    def loss(self):
        logits = self.model(self.x)
        return self.torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), self.y.reshape(-1))

    def __call__(self) -> float:
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss()
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())

    def phases(self) -> tuple[float, float, float]:
        t0 = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss()
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        self.optimizer.step()
        t3 = time.perf_counter()
        return t1 - t0, t2 - t1, t3 - t2


def make_torch_step(tiny: TinyStep):
    try:
        return TorchStep(tiny)
    except ImportError:
        return None


def first_step_agreement() -> dict:
    """One step of each from the same weights: the losses of the two steps must agree."""
    tiny = TinyStep()
    twin = make_torch_step(tiny)
    tiny_first, tiny_second = tiny(), tiny()
    if twin is None:
        return {"tinytorch_loss": tiny_first}
    torch_first, torch_second = twin(), twin()
    print(f"from the same weights: loss tinytorch {tiny_first:.6f}, PyTorch {torch_first:.6f}; after one AdamW "
          f"step: tinytorch {tiny_second:.6f}, PyTorch {torch_second:.6f}")
    return {"tinytorch_loss": tiny_first, "pytorch_loss": torch_first,
            "tinytorch_second_loss": tiny_second, "pytorch_second_loss": torch_second}


def step_table() -> dict:
    tiny = TinyStep()
    contenders = [tiny]
    twin = make_torch_step(tiny)
    if twin is not None:
        contenders.append(twin)
    model = f"GPT {LAYERS} layers, dim {DIM}, {HEADS} heads, context {CONTEXT}, vocabulary {VOCAB}, batch {BATCH}"
    return compare_steps(contenders, model=model, phase_names=("forward + loss", "backward", "AdamW step"),
                         rounds=ROUNDS, step_repeats=STEP_REPEATS, phase_steps=PHASE_STEPS,
                         step_warmup=1, phase_warmup=1, target=TORCH_RATIO_TARGET)


def main() -> None:
    print_header("transformer: one char-GPT training step (forward, backward, AdamW) against PyTorch CPU")
    with one_thread():
        agreement = first_step_agreement()
        steps = step_table()
    write_json("transformer", {"first_step": agreement, "step": steps})


if __name__ == "__main__":
    main()
