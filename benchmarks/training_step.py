"""One training step of tinytorch against its PyTorch twin: the shared table of bench_training and
bench_transformer. Each contender is callable (one full step) and has `phases()` returning the
seconds of (forward + loss, backward, optimizer step) of one step, timed separately."""

from __future__ import annotations

import statistics

import numpy as np

from benchmarks.harness import median_seconds, print_table, verdict


def compare_steps(contenders: list, *, model: str, phase_names: tuple[str, str, str], rounds: int,
                  step_repeats: int, phase_steps: int, step_warmup: int, phase_warmup: int,
                  target: float) -> dict:
    """Alternating rounds (so load drift hits every contender alike), the median of single steps per
    round (a median of short samples skips the ones another process interrupted), then phase by phase."""
    samples = {c.name: [] for c in contenders}
    for _ in range(rounds):
        for contender in contenders:
            samples[contender.name].append(median_seconds(contender, warmup=step_warmup, repeats=step_repeats))
    seconds = {name: statistics.median(s) for name, s in samples.items()}

    phases = {}
    for contender in contenders:
        for _ in range(phase_warmup):
            contender.phases()
        timed = np.array([contender.phases() for _ in range(phase_steps)])
        phases[contender.name] = np.median(timed, axis=0)

    torch_s = seconds.get("PyTorch CPU")
    rows = [[name, s * 1e3, s / torch_s if torch_s else "n/a"] for name, s in seconds.items()]
    print(f"\none training step, {model}, float32, 1 thread (median over {rounds} alternating rounds of the "
          f"median of {step_repeats} single steps)")
    print_table(["contender", "ms per step", "time / PyTorch"], rows)
    print(f"\nwhere the time goes (median of {phase_steps} steps timed phase by phase, ms)")
    phase_rows = []
    for index, phase in enumerate(phase_names):
        row = [phase] + [float(phases[c.name][index]) * 1e3 for c in contenders]
        if torch_s:
            row.append(float(phases["tinytorch"][index] / phases["PyTorch CPU"][index]))
        phase_rows.append(row)
    print_table(["phase"] + [c.name for c in contenders] + (["ratio"] if torch_s else []), phase_rows)

    record = {"ms_per_step": {n: s * 1e3 for n, s in seconds.items()},
              "phases_ms": {n: dict(zip(phase_names, (float(v) * 1e3 for v in p))) for n, p in phases.items()}}
    if torch_s:
        ratio = seconds["tinytorch"] / torch_s
        record["tinytorch / pytorch"] = ratio
        print(verdict(f"tinytorch {model.split(',')[0]} training step time / PyTorch CPU time", ratio, target,
                      higher_is_better=False))
    else:
        print("PyTorch is not installed: only the tinytorch time is shown (pip install torch==2.13.0 to compare)")
    return record
