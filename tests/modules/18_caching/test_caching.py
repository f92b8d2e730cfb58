"""Package tests for tinytorch.optimization.caching: the preallocated KVCache, the cached attention
step, the cached GPT forward (equal to module 12's full forward at every position, for trained
and random weights) and cached generation (the same ids as GPT.generate with the same seed)."""

import math
import tracemalloc

import numpy as np
import pytest

import tinytorch.core.autograd  # noqa: F401  (installs the recorder)
from tinytorch.core.attention import MultiHeadAttention
from tinytorch.core.tensor import Tensor
from tinytorch.models.transformer import GPT, train_char_gpt
from tinytorch.optimization.caching import KVCache, cached_attention, cached_forward, generate
from tinytorch.text.tokenization import load_shakespeare, split_by_position

TOL = dict(rtol=1e-4, atol=1e-4)   # float32 logits through a few layers


def assert_non_degenerate(logits: np.ndarray) -> None:
    """Logits that vary across the vocabulary and across positions: a constant model cannot pass."""
    assert np.std(logits, axis=-1).min() > 1e-2, "logits are flat across the vocabulary"
    assert np.abs(np.diff(logits, axis=1)).max() > 1e-2, "logits do not change between positions"


def check_every_position(model, tokens, prompt_len):
    """Prompt at once, then one token per step; each step's logits against model(tokens)."""
    full = model(tokens)[0].data
    assert_non_degenerate(full)
    cache = KVCache.for_model(model, batch=tokens.shape[0])
    steps = [(0, prompt_len)] + [(t, t + 1) for t in range(prompt_len, tokens.shape[1])]
    for start, stop in steps:
        assert cache.length == start
        logits = cached_forward(model, tokens[:, start:stop], cache)
        np.testing.assert_allclose(logits.data, full[:, start:stop], **TOL,
                                   err_msg=f"positions {start}..{stop - 1} after {start} cached")
    return cache


@pytest.fixture(scope="module")
def trained_model():
    """A tiny character GPT trained briefly on Hamlet: peaked attention, logits far from uniform."""
    train_text, _ = split_by_position(load_shakespeare("hamlet"), 0.1)
    alphabet = sorted(set(train_text))
    ids = np.array([alphabet.index(c) for c in train_text[:20000]], dtype=np.int64)
    model = GPT(vocab_size=len(alphabet), dim=32, n_layers=2, n_heads=2, max_seq_len=24, seed=0)
    history = train_char_gpt(model, ids, steps=25, batch_size=16, seed=0)
    assert history["train_loss"][-1] < history["train_loss"][0] - 0.3, "the model did train"
    return model, ids


# --- KVCache ------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(1, 1, 1, 1, 1), (2, 3, 4, 16, 8), (12, 1, 12, 1024, 64)])
def test_nbytes_is_measured_and_equals_the_formula(shape):
    n_layers, batch, n_heads, max_seq_len, head_dim = shape
    cache = KVCache(*shape)
    assert cache.nbytes == sum(a.nbytes for a in cache.keys + cache.values)
    assert cache.nbytes == 2 * n_layers * batch * n_heads * max_seq_len * head_dim * 4
    assert all(a.dtype == np.float32 and a.shape == (batch, n_heads, max_seq_len, head_dim)
               for a in cache.keys + cache.values)


def test_append_writes_in_place_and_get_returns_views():
    cache = KVCache(2, 1, 2, 8, 3)
    buffers = [id(a) for a in cache.keys + cache.values]
    gen = np.random.default_rng(0)
    parts = [gen.standard_normal((1, 2, n, 3)).astype(np.float32) for n in (3, 1, 4)]
    for part in parts:
        for layer in range(2):
            cache.append(layer, part, part * (layer + 2))
    assert [id(a) for a in cache.keys + cache.values] == buffers, "append must not reallocate"
    keys, values = cache.get(1)
    assert np.shares_memory(keys, cache.keys[1]) and np.shares_memory(values, cache.values[1]), "views, not copies"
    np.testing.assert_array_equal(keys, np.concatenate(parts, axis=2))
    np.testing.assert_array_equal(values, 3 * np.concatenate(parts, axis=2))
    assert cache.length == 8 and cache.lengths == [8, 8]
    cache.reset()
    assert cache.length == 0 and [id(a) for a in cache.keys + cache.values] == buffers, "reset keeps the memory"
    assert cache.get(0)[0].shape == (1, 2, 0, 3)


def test_length_is_what_every_layer_holds():
    cache = KVCache(3, 1, 1, 4, 2)
    cache.append(0, np.ones((1, 1, 2, 2)), np.ones((1, 1, 2, 2)))
    cache.append(1, np.ones((1, 1, 2, 2)), np.ones((1, 1, 2, 2)))
    assert cache.lengths == [2, 2, 0] and cache.length == 0
    cache.append(2, np.ones((1, 1, 2, 2)), np.ones((1, 1, 2, 2)))
    assert cache.length == 2


def test_overflow_is_refused_before_anything_is_written():
    cache = KVCache(1, 2, 2, 5, 3)
    first = np.arange(2 * 2 * 4 * 3, dtype=np.float32).reshape(2, 2, 4, 3)
    cache.append(0, first, -first)
    before_k, before_v = cache.keys[0].copy(), cache.values[0].copy()
    with pytest.raises(ValueError, match=r"layer 0 holds 4 of max_seq_len=5.*reset\(\)"):
        cache.append(0, np.full((2, 2, 2, 3), 9.0), np.full((2, 2, 2, 3), 9.0))
    np.testing.assert_array_equal(cache.keys[0], before_k)
    np.testing.assert_array_equal(cache.values[0], before_v)
    assert cache.length == 4


@pytest.mark.parametrize("bad_shape", [(1, 2, 1, 3), (2, 1, 1, 3), (2, 2, 1, 4), (2, 2, 3)])
def test_wrong_shapes_are_rejected(bad_shape):
    cache = KVCache(1, 2, 2, 5, 3)
    with pytest.raises(ValueError, match="batch=2, n_heads=2, T, head_dim=3"):
        cache.append(0, np.ones(bad_shape), np.ones(bad_shape))
    with pytest.raises(ValueError, match="same shape"):
        cache.append(0, np.ones((2, 2, 1, 3)), np.ones((2, 2, 2, 3)))
    assert cache.length == 0


def test_bad_layers_and_sizes_are_rejected():
    cache = KVCache(2, 1, 1, 4, 2)
    for layer in (2, -1, True, 0.0):
        with pytest.raises(IndexError, match="layers 0 .. 1"):
            cache.get(layer)
    for args in [(0, 1, 1, 1, 1), (1, 1, 1, -3, 1), (1, 1.5, 1, 1, 1)]:
        with pytest.raises(ValueError, match="positive integer"):
            KVCache(*args)


# --- cached attention --------------------------------------------------------------------------

def test_first_token_attends_to_itself():
    """With an empty cache, softmax over one key is 1: the output is out_proj(v_proj(x)) exactly."""
    attn = MultiHeadAttention(8, 2, seed=0)
    x = np.random.default_rng(1).standard_normal((1, 1, 8)).astype(np.float32)
    out = cached_attention(attn, Tensor(x), KVCache(1, 1, 2, 4, 4), 0)
    wv, bv = attn.v_proj.weight.data, attn.v_proj.bias.data
    wo, bo = attn.out_proj.weight.data, attn.out_proj.bias.data
    np.testing.assert_allclose(out.data, (x @ wv + bv) @ wo + bo, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dim, n_heads", [(8, 2), (12, 3), (16, 1)])
def test_cached_attention_equals_an_einsum_reference(dim, n_heads):
    gen = np.random.default_rng(dim)
    attn = MultiHeadAttention(dim, n_heads, seed=dim)
    for layer in (attn.q_proj, attn.k_proj, attn.v_proj, attn.out_proj):
        layer.bias = Tensor(gen.standard_normal(dim) * 0.1, requires_grad=True)
    x = gen.standard_normal((2, 6, dim)).astype(np.float32)
    (wq, bq), (wk, bk), (wv, bv), (wo, bo) = [(l.weight.data.astype(np.float64), l.bias.data.astype(np.float64))
                                              for l in (attn.q_proj, attn.k_proj, attn.v_proj, attn.out_proj)]
    d = dim // n_heads
    split = lambda t: t.reshape(2, 6, n_heads, d).transpose(0, 2, 1, 3)  # noqa: E731
    q, k, v = split(x @ wq + bq), split(x @ wk + bk), split(x @ wv + bv)
    scores = np.einsum("bhid,bhjd->bhij", q, k) / math.sqrt(d)
    scores = np.where(np.tril(np.ones((6, 6), dtype=bool)), scores, -np.inf)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    expected = np.einsum("bhij,bhjd->bhid", weights, v).transpose(0, 2, 1, 3).reshape(2, 6, dim) @ wo + bo
    cache = KVCache(1, 2, n_heads, 6, d)
    got = [cached_attention(attn, x[:, :2], cache, 0).data]
    got += [cached_attention(attn, x[:, t:t + 1], cache, 0).data for t in range(2, 6)]
    np.testing.assert_allclose(np.concatenate(got, axis=1), expected, rtol=1e-5, atol=1e-5)


def test_cached_step_copies_no_cache():
    """One step over a long cache allocates far less than the cached keys: no concatenation copy."""
    attn = MultiHeadAttention(256, 4, seed=0)
    cache = KVCache(1, 1, 4, 4096, 64)
    cache.append(0, np.ones((1, 4, 4000, 64)), np.ones((1, 4, 4000, 64)))
    filled_bytes = cache.get(0)[0].nbytes          # 4,096,000 bytes of keys; the scores are 64 kB (4 x 4000 x 4)
    x = Tensor(np.ones((1, 1, 256), dtype=np.float32))
    cached_attention(attn, x, cache, 0)                         # warm-up
    tracemalloc.start()
    cached_attention(attn, x, cache, 0)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < filled_bytes / 4, f"a step allocated {peak} bytes; concatenating the keys alone is {filled_bytes}"


# --- the cached GPT forward --------------------------------------------------------------------

@pytest.mark.parametrize("prompt_len", [1, 3, 23])
def test_trained_model_cached_equals_full_at_every_position(trained_model, prompt_len):
    model, ids = trained_model
    tokens = ids[None, 100:124]
    check_every_position(model, tokens, prompt_len)


@pytest.mark.parametrize("prompt_len", [1, 4, 15])
def test_random_model_cached_equals_full_at_every_position(prompt_len):
    model = GPT(vocab_size=17, dim=24, n_layers=3, n_heads=3, max_seq_len=16, seed=5)
    tokens = np.random.default_rng(prompt_len).integers(0, 17, size=(2, 16))
    check_every_position(model, tokens, prompt_len)


def test_loaded_model_cached_equals_full(tmp_path):
    model = GPT(vocab_size=9, dim=16, n_layers=2, n_heads=4, max_seq_len=10, seed=2)
    path = model.save(tmp_path / "gpt.npz")
    loaded = GPT.load(path)
    check_every_position(loaded, np.random.default_rng(0).integers(0, 9, size=(1, 10)), 2)


def test_an_all_zero_model_fails_the_non_degeneracy_check():
    model = GPT(vocab_size=9, dim=8, n_layers=1, n_heads=2, max_seq_len=6, seed=0)
    for param in model.parameters():
        param.data[...] = 0.0
    logits = model(np.array([[1, 2, 3, 4]]))[0].data
    with pytest.raises(AssertionError, match="flat"):
        assert_non_degenerate(logits)


def test_cached_forward_records_no_graph():
    model = GPT(vocab_size=9, dim=8, n_layers=1, n_heads=2, max_seq_len=6, seed=0)
    logits = cached_forward(model, np.array([[1, 2]]), KVCache.for_model(model))
    assert not logits.requires_grad and getattr(logits, "grad_fn", None) is None


def test_cached_forward_rejects_a_cache_of_another_shape_and_overflow():
    model = GPT(vocab_size=9, dim=8, n_layers=2, n_heads=2, max_seq_len=6, seed=0)
    with pytest.raises(ValueError, match="KVCache.for_model"):
        cached_forward(model, np.array([[1]]), KVCache(1, 1, 2, 6, 4))
    with pytest.raises(ValueError, match="batch=2"):
        cached_forward(model, np.array([[1], [2]]), KVCache.for_model(model))
    cache = KVCache.for_model(model)
    cached_forward(model, np.array([[1, 2, 3, 4, 5]]), cache)
    with pytest.raises(ValueError, match="reset"):
        cached_forward(model, np.array([[1, 2]]), cache)
    assert cache.lengths == [5, 5], "nothing appended to any layer"
    with pytest.raises(ValueError, match=r"\(batch, T\)"):
        cached_forward(model, np.array([1, 2]), cache)


# --- generation --------------------------------------------------------------------------------

@pytest.mark.parametrize("temperature, top_k, seed", [(1.0, None, 0), (0.7, 5, 3), (0.0, None, None), (1.5, 2, 8)])
def test_generate_gives_gpt_generate_ids(trained_model, temperature, top_k, seed):
    model, ids = trained_model
    prompt = ids[:5]
    expected = model.generate(prompt, 19, temperature=temperature, top_k=top_k, seed=seed)
    assert np.array_equal(expected, model.generate(prompt, 19, temperature=temperature, top_k=top_k, seed=seed,
                                                   use_cache=True))
    for use_cache in (True, False):
        got = generate(model, prompt, 19, temperature=temperature, top_k=top_k, seed=seed, use_cache=use_cache)
        assert got.dtype == np.int64 and got.shape == (24,)
        np.testing.assert_array_equal(got, expected)


def test_generation_work_is_linear_with_the_cache():
    """Rows through the head: N + P - 1 with the cache, the sum of the context lengths without."""
    model = GPT(vocab_size=9, dim=8, n_layers=1, n_heads=2, max_seq_len=40, seed=0)
    rows = []
    head = model.head

    class CountingHead:
        def __call__(self, x):
            rows.append(x.shape[1])
            return head(x)

    model.head = CountingHead()
    generate(model, [1, 2, 3], 30, seed=0, use_cache=True)
    assert sum(rows) == 3 + 29, f"prefill of 3 then 29 single tokens, got {rows}"
    rows.clear()
    generate(model, [1, 2, 3], 30, seed=0, use_cache=False)
    assert sum(rows) == sum(range(3, 33))


def test_generate_bad_input():
    model = GPT(vocab_size=9, dim=8, n_layers=1, n_heads=2, max_seq_len=6, seed=0)
    with pytest.raises(ValueError, match=r"need 7 cached positions.*max_seq_len=6.*use_cache=False"):
        generate(model, [1, 2, 3], 5)
    assert generate(model, [1, 2, 3], 4).shape == (7,)
    for prompt in (np.array([], dtype=np.int64), [[1, 2]]):
        with pytest.raises(ValueError, match="1-D prompt"):
            generate(model, prompt, 2)
    with pytest.raises(ValueError, match="out of range"):
        generate(model, [9], 2)
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate(model, [1], -1)
    with pytest.raises(ValueError, match="temperature"):
        generate(model, [1], 2, temperature=-1.0)
    with pytest.raises(ValueError, match="top_k"):
        generate(model, [1], 2, top_k=10)
    with pytest.raises(TypeError):
        generate(model, [1.5], 2)
