"""Write the reference weights TinyMLPerf ships: `python modules/19_benchmarking/make_reference_weights.py [OUT_DIR]`.

Each task's reference model is trained with the course's recipe (fixed seeds, one BLAS thread:
`train_reference`) and saved with fixed zip timestamps (the same weights give the same bytes):
the digits models with their measured held-out accuracy (`save_weights`), the char-GPT in the
format module 12's `GPT.load` reads (`save_gpt_weights`). OUT_DIR defaults to the `reference/`
folder next to this file; `--digits-only` skips the GPT (a minute or two of training).
tests/modules/19_benchmarking retrains the digits models and compares.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tinytorch.benchmarking.tinymlperf import REFERENCE_FILES, TASKS, accuracy, save_gpt_weights, save_weights
from tinytorch.core.autograd import no_grad
from tinytorch.models.transformer import evaluate_loss

REFERENCE_DIR = Path(__file__).resolve().parent / "reference"


def write_reference_weights(out_dir: Path = REFERENCE_DIR, digits_only: bool = False) -> dict:
    """Train each task's reference model and save it under out_dir; returns {task: measured quality}."""
    out_dir.mkdir(parents=True, exist_ok=True)
    quality = {}
    for name, filename in REFERENCE_FILES.items():
        task = TASKS[name]
        if name == "char-gpt":
            if digits_only:
                continue
            model = task.train_reference()
            save_gpt_weights(model, out_dir / filename)
            quality[name] = evaluate_loss(model, task.data()[2])
            continue
        model = task.train_reference()
        _, _, x_eval, y_eval = task.data()
        with no_grad():
            quality[name] = accuracy(model, x_eval, y_eval)
        save_weights(model, out_dir / filename, {"task": name, "epochs": task.epochs, "seed": 0,
                                                 "held_out_accuracy": quality[name]})
    return quality


if __name__ == "__main__":
    arguments = [a for a in sys.argv[1:] if a != "--digits-only"]
    target = Path(arguments[0]) if arguments else REFERENCE_DIR
    for task_name, measured in write_reference_weights(target, "--digits-only" in sys.argv).items():
        what = "validation loss" if task_name == "char-gpt" else "held-out accuracy"
        print(f"{task_name}: {what} {measured:.4f} -> {target / REFERENCE_FILES[task_name]}")
