"""Module 18's KV cache: tokens/s generating 256 tokens from module 12's GPT with the preallocated
KVCache, with module 12's concatenating past_kv cache, and with no cache (the whole context every
step), and their ratios. Same seed, so all three must sample the same ids (asserted).

Run with `python -m benchmarks caching`. Every ratio comes from numbers measured in this run.
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks.harness import blas_description, blas_threads, print_header, print_table, verdict, write_json
from tinytorch.models.transformer import GPT
from tinytorch.optimization.caching import generate

NEW_TOKENS = 256
# the char-GPT shape (Shakespeare's ~65 characters), and a wider one where the matmuls, not the
# per-operation overhead of the Tensor framework, dominate a step
CONFIGS = {
    "char-GPT d=64": dict(vocab_size=65, dim=64, n_layers=4, n_heads=4, max_seq_len=NEW_TOKENS + 1),
    "wider d=256": dict(vocab_size=65, dim=256, n_layers=4, n_heads=8, max_seq_len=NEW_TOKENS + 1),
}


def ways(model):
    prompt = np.array([0])
    return {
        "KVCache (module 18)": lambda n: generate(model, prompt, n, seed=0, use_cache=True),
        "past_kv concat (module 12)": lambda n: model.generate(prompt, n, seed=0, use_cache=True),
        "no cache": lambda n: generate(model, prompt, n, seed=0, use_cache=False),
    }


def generation_rows():
    rows, records = [], []
    for name, config in CONFIGS.items():
        model = GPT(**config, seed=0)            # speed does not depend on the weights' values
        measured = {}
        for way, run in ways(model).items():
            run(8)                               # warm-up
            wall, cpu = time.perf_counter(), time.process_time()
            ids = run(NEW_TOKENS)
            measured[way] = (time.perf_counter() - wall, time.process_time() - cpu, ids)
        reference = measured["no cache"][2]
        for way, (*_, ids) in measured.items():
            assert np.array_equal(ids, reference), f"{way} sampled different ids than the uncached path"
        base_wall, base_cpu, _ = measured["no cache"]
        for way, (seconds, cpu_seconds, _) in measured.items():
            rows.append([name, way, seconds, NEW_TOKENS / seconds, base_wall / seconds, cpu_seconds, base_cpu / cpu_seconds])
            records.append({"config": config, "way": way, "seconds": seconds, "cpu_seconds": cpu_seconds,
                            "tokens_per_s": NEW_TOKENS / seconds, "speedup_vs_no_cache": base_wall / seconds,
                            "cpu_speedup_vs_no_cache": base_cpu / cpu_seconds})
    return rows, records


def main() -> None:
    print_header(f"caching: generating {NEW_TOKENS} tokens from a 1-token prompt, KV cache vs none (1 BLAS thread)")
    with blas_threads(1):
        print(f"measured with: {blas_description()}")
        rows, records = generation_rows()
    print(f"\nGPT configs: {CONFIGS}; one timed run each after an 8-token warm-up; identical ids asserted; "
          "CPU seconds (process_time) are shown too: on a shared machine they are less disturbed than wall time")
    print_table(["model", "generation", "wall s", "tokens/s", "speedup (wall)", "CPU s", "speedup (CPU)"], rows)
    for record in records:
        if record["way"] == "KVCache (module 18)":
            print(verdict(f"KVCache speedup at {NEW_TOKENS} tokens, dim={record['config']['dim']} (course plan 5-10x)",
                          record["speedup_vs_no_cache"], 5.0))
    print(f"results: {write_json('caching', {'new_tokens': NEW_TOKENS, 'generation': records})}")


if __name__ == "__main__":
    main()
