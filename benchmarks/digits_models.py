"""The digits models the optimization benchmarks start from: module 19's reference architectures
(digits_mlp, digits_cnn, digits_split) trained with modules 08/09's recipe, and how they are scored."""

from __future__ import annotations

import numpy as np

from tinytorch.benchmarking.tinymlperf import digits_cnn, digits_mlp, digits_split
from tinytorch.core.autograd import no_grad
from tinytorch.core.layers import Linear
from tinytorch.core.losses import CrossEntropyLoss
from tinytorch.core.optimizers import AdamW
from tinytorch.core.spatial import Conv2d
from tinytorch.core.tensor import Tensor
from tinytorch.core.training import Trainer, cosine_schedule
from tinytorch.data.loader import DataLoader, TensorDataset

__all__ = ["digits", "digits_cnn", "digits_mlp", "train", "accuracy", "weight_bytes"]


def digits(as_images: bool):
    """(x_train, y_train, x_test, y_test), standardised on the training split; (N, 1, 8, 8) if as_images."""
    x_train, y_train, x_test, y_test = digits_split()
    if as_images:
        x_train, x_test = x_train.reshape(-1, 1, 8, 8), x_test.reshape(-1, 1, 8, 8)
    return x_train, y_train, x_test, y_test


def train(model, x, y, epochs: int, lr: float):
    """Modules 08/09's recipe: AdamW, cosine schedule with a warm-up epoch, clipping at 5."""
    loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True, seed=0)
    total = epochs * len(loader)
    Trainer(model, AdamW(model.parameters(), lr=lr, weight_decay=1e-3), CrossEntropyLoss(), loader,
            schedule=lambda step: cosine_schedule(step, total, lr, min_lr=lr / 100, warmup_steps=len(loader)),
            max_grad_norm=5.0).fit(epochs)
    return model


def accuracy(model, x, y) -> float:
    with no_grad():
        return float(np.mean(np.argmax(model(Tensor(x)).data, axis=1) == y))


def weight_bytes(model) -> int:
    """Bytes of the weight matrices alone (no bias, no scales): float32, int8 codes, or CSR arrays."""
    total = 0
    for layer in model.layers:
        if all(hasattr(layer, a) for a in ("data", "indices", "indptr")):      # module 17's SparseLinear
            total += layer.data.nbytes + layer.indices.nbytes + layer.indptr.nbytes
        elif hasattr(layer, "weight_q"):                                       # module 16's int8 layers
            total += layer.weight_q.nbytes
        elif isinstance(layer, (Linear, Conv2d)):
            total += layer.weight.data.nbytes
    return total
