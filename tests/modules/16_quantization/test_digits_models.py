"""The digits MLP of module 08, trained briefly, keeps its test accuracy within a point after int8."""

import copy

import numpy as np

from tinytorch.core.activations import ReLU
from tinytorch.core.autograd import no_grad
from tinytorch.core.layers import Linear, Sequential
from tinytorch.core.losses import CrossEntropyLoss
from tinytorch.core.optimizers import AdamW
from tinytorch.core.tensor import Tensor
from tinytorch.core.training import Trainer
from tinytorch.data.loader import DataLoader, Standardizer, TensorDataset, load_digits_dataset, train_test_split
from tinytorch.optimization.quantization import model_nbytes, quantize_model


def test_digits_mlp_int8_accuracy_within_one_point():
    images, labels = load_digits_dataset()
    x_train, x_test, y_train, y_test = train_test_split(images, labels, test_fraction=0.2, seed=0, stratify=labels)
    scaler = Standardizer().fit(x_train)
    x_train, x_test = scaler.apply(x_train), scaler.apply(x_test)
    model = Sequential(Linear(64, 64, seed=0), ReLU(), Linear(64, 10, seed=1))
    loader = DataLoader(TensorDataset(x_train, y_train), batch_size=64, shuffle=True, seed=0)
    Trainer(model, AdamW(model.parameters(), lr=1e-2), CrossEntropyLoss(), loader).fit(3)
    quantized = quantize_model(copy.deepcopy(model), [x_train[:128], x_train[128:256]])

    def accuracy(m):
        with no_grad():
            return float(np.mean(np.argmax(m(Tensor(x_test)).data, axis=1) == y_test))

    float_accuracy, int8_accuracy = accuracy(model), accuracy(quantized)
    assert float_accuracy > 0.85
    assert abs(float_accuracy - int8_accuracy) <= 0.01 + 1e-9
    assert model_nbytes(model) / model_nbytes(quantized) > 3.5
