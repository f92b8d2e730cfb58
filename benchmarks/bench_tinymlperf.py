"""TinyMLPerf (module 19): the reference models and the course's optimized entries, side by side.

For each standard task (digits MLP, digits CNN, char-GPT) the shipped reference weights
(modules/19_benchmarking/reference/) are measured by the harness, then every entry of
`course_entries` (module 15's optimized backend, 16's int8, 17's pruning + fine-tuning, both,
and 12's / 18's KV caches for the GPT) is measured in the same run and scored as ratios to that
reference. The reference is measured once more at the end of each task: its ratio to itself is
the noise floor of this machine. A submission below the quality gate scores 0.

Run with `python -m benchmarks tinymlperf`. BENCH_TINYMLPERF_QUERIES sets the timed single-digit
queries per entry (default 300). Results go to benchmarks/results/tinymlperf.json; the
submissions and the leaderboard page (`tito leaderboard` renders the same) to
benchmarks/results/tinymlperf/.
"""

from __future__ import annotations

import os
import shutil

from benchmarks.harness import RESULTS_DIR, blas_description, print_header, print_table, write_json
from tinytorch.benchmarking.tinymlperf import (
    TASKS,
    HarnessSettings,
    build_leaderboard,
    course_entries,
    make_submission,
    measure_entry,
    relative_scores,
)

REFERENCE_DIR = os.path.join(os.path.dirname(__file__), "..", "modules", "19_benchmarking", "reference")
SETTINGS = HarnessSettings(queries=int(os.environ.get("BENCH_TINYMLPERF_QUERIES", "300")))


def quality_text(task, value: float) -> str:
    return f"{value:.2%}" if task.higher_is_better else f"{value:.3f} nats"


def task_rows(task_name: str, out_dir) -> tuple[list, list]:
    task = TASKS[task_name]
    reference_model = task.reference_model(REFERENCE_DIR)
    reference = task.reference_entry(reference_model)
    ref = measure_entry(task, reference, SETTINGS)
    rows = [[reference.name, quality_text(task, ref.quality), ref.p50_ms, ref.p99_ms, ref.throughput_per_s,
             ref.peak_bytes / 1024, ref.model_bytes / 1024, "-", "-", "-", "-", "-", "ref", "-"]]
    records = [{"entry": reference.name, "measured": vars(ref)}]
    for entry in course_entries(task_name, reference_model):
        submission = make_submission(task_name, entry, reference, SETTINGS, reference_measurement=ref)
        submission.save(out_dir)
        m, r = submission.data["measured"], submission.data["ratios"]
        rows.append([entry.name, quality_text(task, m["quality"]), m["p50_ms"], m["p99_ms"], m["throughput_per_s"],
                     m["peak_bytes"] / 1024, m["model_bytes"] / 1024, r["speedup"], r["p99_speedup"],
                     r["throughput_ratio"], r["memory_ratio"], r["size_ratio"],
                     "pass" if r["passes_gate"] else "FAIL", r["score"]])
        records.append({"entry": entry.name, "optimizations": entry.optimizations, "measured": m, "ratios": r})
    again = measure_entry(task, reference, SETTINGS)
    noise = relative_scores(ref, again, task.tolerance, task.higher_is_better)
    rows.append([f"{reference.name}, measured again", quality_text(task, again.quality), again.p50_ms, again.p99_ms,
                 again.throughput_per_s, again.peak_bytes / 1024, again.model_bytes / 1024, noise["speedup"],
                 noise["p99_speedup"], noise["throughput_ratio"], noise["memory_ratio"], noise["size_ratio"],
                 "noise", "-"])
    records.append({"entry": "reference measured again", "ratios": noise})
    return rows, records


def main() -> None:
    print_header("TinyMLPerf: reference models vs the course's optimized entries (module 19)")
    print(f"harness: {SETTINGS.queries} single-query latencies after {SETTINGS.warmup} warm-up calls, "
          f"{SETTINGS.throughput_repeats} whole-set repeats, {SETTINGS.generations} generations of "
          f"{SETTINGS.new_tokens} tokens (GPT), BLAS threads {SETTINGS.blas_threads}; ratios: reference / entry "
          "(speedup, p99, memory, size) and entry / reference (throughput), all from this run")
    out_dir = RESULTS_DIR / "tinymlperf"
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    payload = {"settings": vars(SETTINGS), "tasks": {}}
    headers = ["entry", "quality", "p50 ms", "p99 ms", "per s", "peak KiB", "stored KiB", "speedup", "p99 x",
               "per s x", "memory x", "size x", "gate", "score"]
    for task_name, task in TASKS.items():
        rows, records = task_rows(task_name, out_dir)
        unit = "digits/s, whole evaluation set per call" if task.higher_is_better else f"tokens/s, {SETTINGS.new_tokens} per generation"
        gate = f"gate: at most {task.tolerance:g} {'accuracy' if task.higher_is_better else 'nats'} worse than the reference"
        print(f"\n{task_name} ({unit}; {gate})")
        print_table(headers, rows)
        payload["tasks"][task_name] = records
    board = build_leaderboard(out_dir, out_dir / "leaderboard.html")
    winners = {name: entries[0].submission.model for name, entries in board.ranked.items()}
    print("\nleaderboard winners (score = speedup above the gate): " + "; ".join(f"{k}: {v}" for k, v in winners.items()))
    print(f"page: {out_dir / 'leaderboard.html'}")
    payload["winners"] = winners
    print(f"results: {write_json('tinymlperf', payload)}  (BLAS: {blas_description()})")


if __name__ == "__main__":
    main()
