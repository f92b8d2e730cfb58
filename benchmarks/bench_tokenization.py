"""Module 10's BPE encoder, fast (heap over a linked list) against the naive reference (one pass per
merge), on a real play: throughput in characters per second and their ratio, same ids asserted.

Run with `python -m benchmarks tokenization`. Every ratio comes from numbers measured in this run.
"""

from __future__ import annotations

import time

from benchmarks.harness import median_seconds, print_header, print_table, write_json
from tinytorch.text.tokenization import (
    BPETokenizer,
    apply_merges,
    apply_merges_naive,
    load_shakespeare,
    split_by_position,
)

PLAY = "hamlet"
VOCAB_SIZES = (512, 1024)
NAIVE_REPEATS = 3  # the naive encoder takes seconds per call on the validation text


def encode_rows():
    train, val = split_by_position(load_shakespeare(PLAY), 0.1)
    val_ids = list(val.encode("utf-8"))
    rows, records = [], []
    for vocab_size in VOCAB_SIZES:
        start = time.perf_counter()
        tok = BPETokenizer().train(train, vocab_size)
        train_s = time.perf_counter() - start
        fast_ids = apply_merges(val_ids, tok.merges)
        assert fast_ids == apply_merges_naive(val_ids, tok.merges), "fast and naive encoders disagree"
        assert tok.decode(fast_ids) == val, "round trip failed"
        fast_s = median_seconds(apply_merges, val_ids, tok.merges, warmup=1, repeats=7)
        naive_s = median_seconds(apply_merges_naive, val_ids, tok.merges, warmup=0, repeats=NAIVE_REPEATS)
        fast_cps, naive_cps = len(val) / fast_s, len(val) / naive_s
        rows.append([vocab_size, len(tok.merges), train_s, len(val) / len(fast_ids),
                     fast_cps / 1e6, naive_cps / 1e6, fast_cps / naive_cps])
        records.append({"vocab_size": vocab_size, "merges": len(tok.merges), "train_bytes": len(train.encode()),
                        "train_s": train_s, "chars": len(val), "tokens": len(fast_ids),
                        "fast_chars_per_s": fast_cps, "naive_chars_per_s": naive_cps, "ratio": fast_cps / naive_cps})
    return rows, records, len(train), len(val)


def main() -> None:
    print_header("tokenization: BPE encode, heap over a linked list vs one pass per merge (pure Python, 1 thread)")
    rows, records, n_train, n_val = encode_rows()
    print(f"\n{PLAY}: trained on the first {n_train:,} characters, encoding the last {n_val:,} (split by position); "
          f"fast: median of 7, naive: median of {NAIVE_REPEATS}; ids asserted equal")
    print_table(["vocab", "merges", "train s (once)", "chars/token", "fast M chars/s", "naive M chars/s", "fast / naive"],
                rows)
    print(f"results: {write_json('tokenization', {'play': PLAY, 'encode': records})}")


if __name__ == "__main__":
    main()
