"""Package tests for tinytorch.text.tokenization: corpus, split, specials, CharTokenizer, byte-level BPE.

Oracles: hand-worked merges ("aaabdaaabac"), a from-scratch BPE trainer and a rank-order encoder
written out below, exact round-trips on seeded random Unicode, and fresh processes with different
hash seeds for determinism.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tinytorch.text.tokenization import (
    DEFAULT_SPECIALS,
    BPETokenizer,
    CharTokenizer,
    apply_merges,
    apply_merges_naive,
    available_plays,
    check_token_ids,
    learn_merges,
    load_shakespeare,
    merge_pair,
    reserve_special_ids,
    split_by_position,
)

A, B, C, D = 97, 98, 99, 100


# --- oracles -----------------------------------------------------------------------------------

def reference_merge(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def reference_encode(ids, merges):
    """Apply merges in rank (new id) order, one full pass each."""
    for pair, new_id in sorted(merges.items(), key=lambda item: item[1]):
        ids = reference_merge(ids, pair, new_id)
    return ids


def reference_train(ids, n_merges, first_new_id):
    """Recount every pair at every step; most frequent wins, ties to the smallest pair."""
    merges = {}
    for step in range(n_merges):
        counts = {}
        for pair in zip(ids, ids[1:]):
            counts[pair] = counts.get(pair, 0) + 1
        if not counts:
            break
        best = min(counts, key=lambda pair: (-counts[pair], pair))
        if counts[best] < 2:
            break
        merges[best] = first_new_id + step
        ids = reference_merge(ids, best, first_new_id + step)
    return merges


def random_unicode(gen, n):
    """Seeded text mixing ASCII, combining marks, CJK, emoji, NUL, newlines and lone surrogate-free planes."""
    pools = [(0x20, 0x7F), (0x300, 0x370), (0x4E00, 0x4F00), (0x1F300, 0x1F700), (0x0, 0x1), (0xA, 0xB),
             (0xE000, 0xE010), (0x10000, 0x10100)]
    out = []
    for _ in range(n):
        lo, hi = pools[gen.integers(len(pools))]
        out.append(chr(int(gen.integers(lo, hi))))
    return "".join(out)


# --- corpus and split --------------------------------------------------------------------------

def test_available_plays_are_sorted_modern_editions():
    plays = available_plays()
    assert plays == sorted(plays) and len(plays) >= 30
    assert {"hamlet", "macbeth", "lear", "sonnets", "tempest"} <= set(plays)
    assert not any(p.endswith("_f") for p in plays)


def test_load_shakespeare_reads_the_packaged_text():
    hamlet = load_shakespeare("hamlet")
    assert hamlet.startswith("HAMLET, PRINCE OF DENMARK")
    assert "To be, or not to be,--that is the question" in hamlet
    assert len(hamlet) > 150_000 and "\r" not in hamlet
    assert load_shakespeare() == hamlet


def test_load_shakespeare_unknown_play_names_close_matches():
    with pytest.raises(ValueError, match="macbeth"):
        load_shakespeare("macbet")
    with pytest.raises(TypeError):
        load_shakespeare(["hamlet"])


def test_split_by_position_is_a_prefix_and_a_suffix():
    text = load_shakespeare("macbeth")
    train, val = split_by_position(text, 0.1)
    assert train + val == text
    assert len(val) == round(len(text) * 0.1)
    ids = np.arange(50)
    train_ids, val_ids = split_by_position(ids, 0.2)
    np.testing.assert_array_equal(train_ids, np.arange(40))
    np.testing.assert_array_equal(val_ids, np.arange(40, 50))


@pytest.mark.parametrize("seq, frac", [("abcdef", 0.0), ("abcdef", 1.0), ("abcdef", -1), ("a", 0.3), ("ab", 0.99)])
def test_split_by_position_rejects_empty_parts(seq, frac):
    with pytest.raises(ValueError):
        split_by_position(seq, frac)


# --- specials and id checks --------------------------------------------------------------------

def test_reserve_special_ids_numbers_from_first_id():
    assert reserve_special_ids(DEFAULT_SPECIALS, 256) == {"<pad>": 256, "<bos>": 257, "<eos>": 258}
    assert reserve_special_ids(("<eos>",), 0) == {"<eos>": 0}
    assert reserve_special_ids((), 7) == {}


def test_reserve_special_ids_bad_names():
    with pytest.raises(ValueError, match="<eos>"):
        reserve_special_ids(("<eos>", "<eos>"), 0)
    with pytest.raises(TypeError):
        reserve_special_ids(("",), 0)
    with pytest.raises(TypeError):
        reserve_special_ids((3,), 0)


def test_check_token_ids_accepts_numpy_ints_and_rejects_the_rest():
    assert check_token_ids(np.array([0, 4, 2]), 5) == [0, 4, 2]
    assert all(type(t) is int for t in check_token_ids(np.array([1, 2], dtype=np.int64), 5))
    with pytest.raises(ValueError, match="id 5 at position 1"):
        check_token_ids([0, 5], 5)
    with pytest.raises(ValueError, match="-1"):
        check_token_ids([-1], 5)
    for bad in ([1.0], [True], ["1"], [None]):
        with pytest.raises(TypeError):
            check_token_ids(bad, 5)


# --- CharTokenizer ------------------------------------------------------------------------------

def test_char_vocabulary_is_sorted_by_code_point():
    tok = CharTokenizer("zyx cba ZYX 987 éà 🙂")
    assert tok.chars == sorted(set("zyx cba ZYX 987 éà 🙂"))
    assert [tok.char_to_id[c] for c in tok.chars] == list(range(len(tok.chars)))


def test_char_vocabulary_independent_of_hash_seed_and_order():
    script = ("import json; from tinytorch.text.tokenization import CharTokenizer; "
              "print(json.dumps(CharTokenizer(open(0).read()).encode('the quick brown fox')))")
    corpus = "the quick brown fox jumps over a lazy dog THE QUICK BROWN FOX"
    outputs = set()
    for seed in ("0", "1", "2", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        for text in (corpus, corpus[::-1]):
            run = subprocess.run([sys.executable, "-c", script], input=text, capture_output=True, text=True,
                                 env=env, check=True)
            outputs.add(run.stdout)
    assert len(outputs) == 1
    assert json.loads(outputs.pop()) == CharTokenizer(corpus).encode("the quick brown fox")


def test_char_specials_follow_the_characters():
    tok = CharTokenizer("ba")
    assert tok.special_ids == {"<pad>": 2, "<bos>": 3, "<eos>": 4} and tok.vocab_size == 5
    assert tok.encode("ab", add_bos=True, add_eos=True) == [3, 0, 1, 4]
    assert tok.decode([3, 0, 1, 4, 2]) == "<bos>ab<eos><pad>"
    assert tok.decode([3, 0, 1, 4, 2], skip_specials=True) == "ab"


def test_char_plain_text_never_produces_special_ids():
    tok = CharTokenizer("<bos><eos> plain")
    ids = tok.encode("<bos>plain<eos>")
    assert all(t < len(tok.chars) for t in ids)
    assert tok.decode(ids) == "<bos>plain<eos>"


def test_char_round_trip_on_a_play():
    text = load_shakespeare("tempest")
    tok = CharTokenizer(text)
    ids = tok.encode(text)
    assert len(ids) == len(text) and tok.decode(ids) == text
    assert tok.decode(np.array(ids[:100])) == text[:100]


def test_char_unknown_character_is_an_error_naming_it():
    tok = CharTokenizer("abc")
    with pytest.raises(ValueError, match=r"'z'.*position 2"):
        tok.encode("abzc")


def test_char_bad_input():
    tok = CharTokenizer("abc")
    with pytest.raises(TypeError):
        tok.encode(b"abc")
    with pytest.raises(TypeError):
        CharTokenizer(["a", "b"])
    with pytest.raises(ValueError):
        CharTokenizer("")
    with pytest.raises(ValueError, match="6"):
        tok.decode([0, 6])
    with pytest.raises(ValueError, match="<bos>"):
        CharTokenizer("abc", specials=("<pad>",)).encode("a", add_bos=True)


# --- the reference encoder ---------------------------------------------------------------------

@pytest.mark.parametrize("ids, pair, expected", [
    ([A, B, A, B], (A, B), [9, 9]),
    ([A, A, A], (A, A), [9, A]),
    ([A, A, A, A, A], (A, A), [9, 9, A]),
    ([B, A], (A, B), [B, A]),
    ([], (A, B), []),
])
def test_merge_pair_left_to_right_without_overlap(ids, pair, expected):
    assert merge_pair(ids, pair, 9) == expected


def test_apply_merges_naive_uses_rank_not_insertion_order():
    assert apply_merges_naive([A, B, C], {(B, C): 259, (A, B): 260}) == [A, 259]
    assert apply_merges_naive([A, B, C], {(A, B): 260, (B, C): 259}) == [A, 259]
    assert apply_merges_naive([A, B, C], {(A, B): 259, (B, C): 260}) == [259, C]


# --- training ----------------------------------------------------------------------------------

def test_learn_merges_classic_example_by_hand():
    merges = learn_merges(list(b"aaabdaaabac"), 100, 259)
    assert list(merges.items()) == [((A, A), 259), ((A, B), 260), ((259, 260), 261)]


def test_learn_merges_ties_go_to_the_smallest_pair():
    # (b, a) and (a, b) both occur twice; (a, b) < (b, a)
    assert list(learn_merges([B, A, B, C, A, B, A, D], 1, 300).items()) == [((A, B), 300)]
    # every pair twice: the smallest of them
    assert list(learn_merges([9, 8, 9, 8, 1, 2, 1, 2], 1, 300).items()) == [((1, 2), 300)]


@pytest.mark.parametrize("seed", range(8))
def test_learn_merges_equals_from_scratch_training(seed):
    gen = np.random.default_rng(seed)
    alphabet = [A, B, C, D, 32][: 2 + seed % 4]
    ids = [int(v) for v in gen.choice(alphabet, size=int(gen.integers(50, 400)))]
    assert list(learn_merges(ids, 60, 259).items()) == list(reference_train(ids, 60, 259).items())


def test_learn_merges_equals_from_scratch_on_real_text():
    ids = list(load_shakespeare("sonnets")[:6000].encode("utf-8"))
    assert list(learn_merges(ids, 120, 259).items()) == list(reference_train(ids, 120, 259).items())


def test_learn_merges_stops_when_no_pair_repeats():
    assert learn_merges(list(b"abcdefg"), 10, 259) == {}
    assert len(learn_merges([7] * 16, 10, 259)) == 3      # 16 -> 8 -> 4 -> 2 tokens, then one pair left


# --- the fast encoder --------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(6))
def test_apply_merges_equals_reference_on_random_merges(seed):
    gen = np.random.default_rng(100 + seed)
    corpus = [int(v) for v in gen.choice([A, B, C], size=300)]
    merges = learn_merges(corpus, 40, 259)
    for _ in range(5):
        ids = [int(v) for v in gen.choice([A, B, C], size=int(gen.integers(0, 120)))]
        assert apply_merges(ids, merges) == reference_encode(ids, merges)


def test_apply_merges_respects_rank_order_in_hand_made_merges():
    assert apply_merges([A, B, C], {(B, C): 259, (A, B): 260}) == [A, 259]
    assert apply_merges([A, A, A, A, A], {(A, A): 259}) == [259, 259, A]
    assert apply_merges([A, A, A, B], {(A, A): 259, (259, A): 260, (260, B): 261}) == [261]


def test_encoders_and_trainer_do_not_modify_their_input():
    ids = [A, B, A, B, A, B]
    before = list(ids)
    merges = learn_merges(ids, 5, 259)
    apply_merges(ids, merges)
    apply_merges_naive(ids, merges)
    assert ids == before
    assert apply_merges(ids, {}) is not ids


# --- BPETokenizer -----------------------------------------------------------------------------

def test_bpe_untrained_is_bytes_then_specials():
    tok = BPETokenizer()
    assert tok.special_ids == {"<pad>": 256, "<bos>": 257, "<eos>": 258}
    assert tok.first_merge_id == 259 and tok.vocab_size == 259
    assert tok.encode("Añ🙂") == list("Añ🙂".encode("utf-8"))


def test_bpe_train_returns_self_and_sets_vocab_size():
    tok = BPETokenizer()
    assert tok.train(load_shakespeare("macbeth")[:20_000], 300) is tok
    assert tok.vocab_size == 300 and len(tok.merges) == 41
    assert sorted(tok.merges.values()) == list(range(259, 300))


def test_bpe_token_bytes_concatenate_their_parts():
    tok = BPETokenizer().train(load_shakespeare("lear")[:20_000], 320)
    for (left, right), new_id in tok.merges.items():
        assert tok.token_bytes(new_id) == tok.token_bytes(left) + tok.token_bytes(right)
    assert tok.token_bytes(65) == b"A"
    with pytest.raises(ValueError, match="<bos>"):
        tok.token_bytes(257)


def test_bpe_encode_equals_reference_on_a_play():
    text = load_shakespeare("hamlet")
    train, val = split_by_position(text, 0.1)
    tok = BPETokenizer().train(train[:40_000], 420)
    ids = tok.encode(val[:8000])
    assert ids == reference_encode(list(val[:8000].encode("utf-8")), tok.merges)
    assert tok.decode(ids) == val[:8000]
    assert len(ids) < 0.6 * len(val[:8000])            # real compression, not bytes passed through


@pytest.mark.parametrize("seed", range(5))
def test_bpe_round_trip_exact_on_random_unicode(seed):
    gen = np.random.default_rng(seed)
    tok = BPETokenizer().train(random_unicode(gen, 400) + "to be or not to be " * 30, 360)
    for n in (0, 1, 2, 50, 500):
        text = random_unicode(gen, n)
        ids = tok.encode(text)
        assert tok.decode(ids) == text
        assert tok.decode_bytes(ids) == text.encode("utf-8")
        assert ids == reference_encode(list(text.encode("utf-8")), tok.merges)


def test_bpe_round_trip_on_text_unseen_in_training():
    tok = BPETokenizer().train(load_shakespeare("othello")[:20_000], 350)
    for text in ("\x00\x00", "e\u0301\u0301", "👩‍👩‍👧", "Ω≈ç√∫", "naïve\r\n\ttab", "\U0010FFFF"):
        assert tok.decode(tok.encode(text)) == text


def test_bpe_decode_never_drops_bytes():
    tok = BPETokenizer()
    assert tok.decode([0xE2, 0x82]) == "\ufffd"
    assert tok.decode([0xFF, 65]) == "\ufffdA"
    assert tok.decode_bytes([0xE2, 0x82, 0xAC]) == "€".encode("utf-8")


def test_bpe_specials_only_when_asked():
    tok = BPETokenizer().train("<bos> <eos> <pad> " * 50, 300)
    ids = tok.encode("<bos>hello<eos>")
    assert not set(ids) & set(tok.special_ids.values())
    framed = tok.encode("hello", add_bos=True, add_eos=True)
    assert framed[0] == 257 and framed[-1] == 258 and framed[1:-1] == tok.encode("hello")
    assert tok.decode(framed) == "<bos>hello<eos>"
    assert tok.decode(framed, skip_specials=True) == "hello"
    assert tok.decode([256]) == "<pad>"


def test_bpe_custom_specials_shift_the_merges():
    tok = BPETokenizer(specials=("<eos>",)).train("abababab", 300)
    assert tok.special_ids == {"<eos>": 256} and list(tok.merges.items())[0] == ((A, B), 257)
    assert BPETokenizer(specials=()).first_merge_id == 256


def test_bpe_training_is_deterministic_across_hash_seeds():
    script = ("import json; from tinytorch.text.tokenization import BPETokenizer, load_shakespeare; "
              "t = BPETokenizer().train(load_shakespeare('macbeth')[:8000], 330); "
              "print(json.dumps([[a, b, c] for (a, b), c in t.merges.items()]))")
    outputs = {subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                              env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("0", "7", "99")}
    assert len(outputs) == 1


def test_bpe_bad_input():
    tok = BPETokenizer()
    with pytest.raises(ValueError, match="259"):
        tok.train("abc", 258)
    with pytest.raises(ValueError):
        tok.train("abc", "300")
    with pytest.raises(TypeError):
        tok.train(b"abc", 300)
    with pytest.raises(TypeError):
        tok.encode(None)
    with pytest.raises(ValueError, match="259"):
        tok.decode([65, 259])
    with pytest.raises(TypeError):
        tok.decode([65.0])
