# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Module 18: Caching
#
# A language model generates one token at a time: run the model over the context, sample the next
# token from the last position's logits, append it, repeat. Done naively, step `t` runs the whole
# model over all `t` tokens again, although the keys and values of the first `t - 1` tokens are
# exactly what the previous step computed (a causal model never lets an old position see a new
# one, so nothing about them changes). Generating `N` tokens costs `1 + 2 + … + N ≈ N²/2`
# position-passes through every layer.
#
# A **KV cache** keeps each layer's keys and values. Each step then runs only the new token:
#
# ```
#   step t (no cache):   tokens 0..t ─▶ every layer over t+1 positions ─▶ logits[t]      O(t) work
#   step t (cache):      token t ─▶ q, k, v of ONE position ─▶ append k, v to the cache
#                                  ─▶ q attends over cached keys 0..t (itself included) ─▶ logits[t]
#
#   cache, per layer:    keys   (B, H, max_seq_len, d)   ████████████░░░░░░░░   filled 0..length-1
#                        values (B, H, max_seq_len, d)   ████████████░░░░░░░░   preallocated once
# ```
#
# | part | you write | the point |
# |---|---|---|
# | 1 | `KVCache`: `append`, `get`, `reset`, `length`, `nbytes` | preallocated once, written in place, a clear error when full |
# | 2 | `cached_attention(attn, x, cache, layer)` | project only the new tokens; attend over the cache **and** themselves |
# | 3 | `cached_forward(model, tokens, cache)` | module 12's GPT, walked layer by layer, new positions starting at `cache.length` |
# | 4 | `generate(model, prompt, ...)` | one token per step; the same sequence as `GPT.generate` with the same seed |
#
# The oracle, checked at every step: the cached logits equal the uncached full forward's (float32,
# `atol = rtol = 1e-4`), for random and for trained weights, over several prompt lengths, with
# logits that vary across the vocabulary and the positions, so an all-zero model cannot pass.
#
# An earlier version of this course printed operation counts divided by 1,000 labelled as
# milliseconds for its cache speedup, its "cached" generation embedded only the new token and
# "simulated" the rest, and its cached attention left the current token out of its own attention.
# Here every speed number is measured on your machine in the same run, the cached path runs the
# real model, and the current token attends to itself (the tests would catch each of those).

# %%
#| default_exp optimization.caching

# %%
#| export
import numbers

import numpy as np

from tinytorch.core.tensor import Tensor
from tinytorch.core.autograd import no_grad
from tinytorch.core.attention import causal_mask, scaled_dot_product_attention, token_id_array
from tinytorch.models.transformer import next_token_probabilities     # module 12's sampling rule

# %%
from tinytorch.core.attention import MultiHeadAttention   # the oracle of Part 2's test
from tinytorch.models.transformer import GPT              # module 12's model: the oracle of Parts 3 and 4

# %% [markdown]
# ## Part 1: the cache
#
# Per layer, the keys and the values of every position seen so far, each `(B, H, T, d)` (batch,
# heads, positions, head width): the layout module 11's `MultiHeadAttention` returns. Two designs:
#
# - **Concatenate** (module 11's `past_kv`, module 12's `generate(use_cache=True)`): each step
#   builds new arrays `concat(past_k, k_new)`. Step `t` copies `t` positions: `O(N²)` bytes copied
#   over `N` steps, and a fresh allocation every step.
# - **Preallocate** (this module, and what inference servers do): allocate `(B, H, max_seq_len, d)`
#   once per layer, write the new positions into the next free slots, and hand attention a *view*
#   of the filled part. Nothing is copied but the new token's own keys and values.
#
# The memory is known before generation starts:
#
# ```
#   nbytes = 2 (keys and values) · n_layers · batch · n_heads · max_seq_len · head_dim · itemsize
# ```
#
# GPT-2 small (12 layers, 12 heads of 64, 1024 positions) in float32 needs 2·12·12·1024·64·4 bytes
# = 72 MiB per sequence; a batch of 32 needs 2.3 GiB, more than its 0.5 GiB of weights. This is why
# serving systems care about the cache more than about the model.
#
# Write the `KVCache` methods:
#
# - `__init__`: one float32 keys array and one values array of shape `(batch, n_heads,
#   max_seq_len, head_dim)` per layer in the lists `self.keys` / `self.values`, and a fill count
#   per layer, `self.lengths = [0] * n_layers`.
# - `append(layer, k, v)`: `k`, `v` are `(batch, n_heads, T, head_dim)` (Tensors or arrays) for
#   `T` new positions; write them into slots `lengths[layer] … lengths[layer] + T - 1` **in
#   place** and advance that layer's count. If they do not fit, raise a `ValueError` that names the
#   layer, how many positions it holds, how many were appended and `max_seq_len`, and says what to
#   do; check **before** writing, so a refused append leaves the cache exactly as it was.
# - `get(layer)`: `(keys, values)`, views (no copies) of the filled slots, `(batch, n_heads,
#   lengths[layer], head_dim)` each.
# - `reset()`: empty every layer (the memory is kept for the next sequence).
# - `length`: the number of positions every layer holds (the smallest count: while a forward
#   pass is half-way through the layers, the later layers have not appended yet).
# - `nbytes`: the bytes of the arrays, **measured** from them (`ndarray.nbytes`), not the formula.
#
# The shape checks and `for_model(model, batch)` (a cache sized for a module 12 GPT) are given.

# %% nbgrader={"grade": false, "grade_id": "kv-cache", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"KVCache: {name} must be a positive integer, got {value!r}")
    return int(value)


class KVCache:
    """Preallocated keys and values for every layer: (batch, n_heads, max_seq_len, head_dim) float32 each."""

    def __init__(self, n_layers: int, batch: int, n_heads: int, max_seq_len: int, head_dim: int):
        self.n_layers = _positive_int(n_layers, "n_layers")
        self.batch = _positive_int(batch, "batch")
        self.n_heads = _positive_int(n_heads, "n_heads")
        self.max_seq_len = _positive_int(max_seq_len, "max_seq_len")
        self.head_dim = _positive_int(head_dim, "head_dim")
        ### BEGIN SOLUTION
        shape = (self.batch, self.n_heads, self.max_seq_len, self.head_dim)
        self.keys = [np.zeros(shape, dtype=np.float32) for _ in range(self.n_layers)]
        self.values = [np.zeros(shape, dtype=np.float32) for _ in range(self.n_layers)]
        self.lengths = [0] * self.n_layers
        ### END SOLUTION

    @classmethod
    def for_model(cls, model, batch: int = 1) -> "KVCache":
        """A cache sized for a module 12 GPT: every layer, every head, all max_seq_len positions."""
        return cls(model.n_layers, batch, model.n_heads, model.max_seq_len, model.head_dim)

    def _check_layer(self, layer) -> int:
        if isinstance(layer, bool) or not isinstance(layer, numbers.Integral) or not 0 <= layer < self.n_layers:
            raise IndexError(f"layer {layer!r} is not a layer of this cache: it has layers 0 .. {self.n_layers - 1}")
        return int(layer)

    def _new_positions(self, k, v) -> tuple:
        """k and v as arrays, checked to be (batch, n_heads, T, head_dim) with the same T."""
        k, v = (np.asarray(t.data if isinstance(t, Tensor) else t) for t in (k, v))
        expected = (self.batch, self.n_heads, "T", self.head_dim)
        for name, new in (("k", k), ("v", v)):
            if new.ndim != 4 or new.shape[:2] != expected[:2] or new.shape[3] != self.head_dim:
                raise ValueError(f"KVCache.append: {name} must have shape (batch={self.batch}, n_heads={self.n_heads}, "
                                 f"T, head_dim={self.head_dim}), got {new.shape}; pass the keys/values after split_heads")
        if k.shape != v.shape:
            raise ValueError(f"KVCache.append: k {k.shape} and v {v.shape} must have the same shape")
        return k, v

    def append(self, layer: int, k, v) -> None:
        """Write T new positions' keys and values into layer's next free slots (in place)."""
        layer = self._check_layer(layer)
        k, v = self._new_positions(k, v)
        ### BEGIN SOLUTION
        start, new_positions = self.lengths[layer], k.shape[2]
        stop = start + new_positions
        if stop > self.max_seq_len:
            raise ValueError(f"KV cache full: layer {layer} holds {start} of max_seq_len={self.max_seq_len} positions "
                             f"and cannot take {new_positions} more; call reset() to start a new sequence, or build "
                             f"the cache (and the model) with a larger max_seq_len")
        self.keys[layer][:, :, start:stop] = k
        self.values[layer][:, :, start:stop] = v
        self.lengths[layer] = stop
        ### END SOLUTION

    def get(self, layer: int) -> tuple:
        """(keys, values) of layer's filled slots: views (batch, n_heads, lengths[layer], head_dim), no copies."""
        layer = self._check_layer(layer)
        ### BEGIN SOLUTION
        filled = self.lengths[layer]
        return self.keys[layer][:, :, :filled], self.values[layer][:, :, :filled]
        ### END SOLUTION

    def reset(self) -> None:
        """Forget every position (the arrays stay allocated for the next sequence)."""
        ### BEGIN SOLUTION
        self.lengths = [0] * self.n_layers
        ### END SOLUTION

    @property
    def length(self) -> int:
        """Positions held by every layer (the smallest fill count)."""
        ### BEGIN SOLUTION
        return min(self.lengths)
        ### END SOLUTION

    @property
    def nbytes(self) -> int:
        """Bytes of all keys and values arrays, measured from the arrays."""
        ### BEGIN SOLUTION
        return sum(array.nbytes for array in self.keys + self.values)
        ### END SOLUTION

    def __repr__(self) -> str:
        return (f"KVCache(n_layers={self.n_layers}, batch={self.batch}, n_heads={self.n_heads}, "
                f"max_seq_len={self.max_seq_len}, head_dim={self.head_dim})")

# %% [markdown]
# ### Test: appends land in the next slots, the count advances, memory is the formula, full is an error
#
# The oracle for `get` is the concatenation of everything appended so far, built by the test
# with `np.concatenate`; the memory oracle is the formula above, computed in the test.

# %% nbgrader={"grade": true, "grade_id": "test-kv-cache", "locked": true, "points": 6, "schema_version": 3, "solution": false, "task": false}
def test_unit_kv_cache_appends_in_order():
    gen = np.random.default_rng(0)
    cache = KVCache(n_layers=2, batch=2, n_heads=3, max_seq_len=8, head_dim=4)
    assert cache.length == 0, f"a new cache holds no positions, length={cache.length}"
    chunks_k, chunks_v = [], []
    for new_positions in (3, 1, 2):                       # a prompt, then single tokens, then two at once
        k = gen.standard_normal((2, 3, new_positions, 4)).astype(np.float32)
        v = gen.standard_normal((2, 3, new_positions, 4)).astype(np.float32)
        chunks_k.append(k)
        chunks_v.append(v)
        cache.append(0, k, v)
        cache.append(1, 2 * k, -v)
    assert cache.length == 6, f"3 + 1 + 2 positions appended to every layer, length={cache.length}"
    keys, values = cache.get(0)
    assert keys.shape == (2, 3, 6, 4) and values.shape == (2, 3, 6, 4), f"get returns the filled part: {keys.shape}"
    np.testing.assert_array_equal(keys, np.concatenate(chunks_k, axis=2),
                                  err_msg="keys must be the appended chunks in order (was an earlier slot overwritten?)")
    np.testing.assert_array_equal(values, np.concatenate(chunks_v, axis=2))
    keys1, values1 = cache.get(1)
    np.testing.assert_array_equal(keys1, 2 * np.concatenate(chunks_k, axis=2), err_msg="each layer has its own slots")
    np.testing.assert_array_equal(values1, -np.concatenate(chunks_v, axis=2))

def test_unit_kv_cache_nbytes_and_reset():
    for n_layers, batch, n_heads, max_seq_len, head_dim in [(2, 1, 4, 16, 8), (3, 2, 1, 5, 2)]:
        cache = KVCache(n_layers, batch, n_heads, max_seq_len, head_dim)
        formula = 2 * n_layers * batch * n_heads * max_seq_len * head_dim * 4      # float32: 4 bytes
        assert cache.nbytes == formula, f"nbytes {cache.nbytes} != 2*L*B*H*S*d*4 = {formula} for {cache!r}"
    cache = KVCache(1, 1, 1, 4, 2)
    cache.append(0, np.ones((1, 1, 3, 2)), np.ones((1, 1, 3, 2)))
    cache.reset()
    assert cache.length == 0, f"reset empties the cache, length={cache.length}"
    cache.append(0, np.full((1, 1, 4, 2), 5.0), np.full((1, 1, 4, 2), 6.0))    # the whole capacity again
    keys, values = cache.get(0)
    np.testing.assert_array_equal(keys, np.full((1, 1, 4, 2), 5.0))
    np.testing.assert_array_equal(values, np.full((1, 1, 4, 2), 6.0))

def test_unit_kv_cache_full_is_an_error():
    cache = KVCache(n_layers=1, batch=1, n_heads=2, max_seq_len=5, head_dim=3)
    first = np.arange(24, dtype=np.float32).reshape(1, 2, 4, 3)
    cache.append(0, first, -first)
    try:
        cache.append(0, np.ones((1, 2, 2, 3)), np.ones((1, 2, 2, 3)))      # 4 + 2 > 5
    except ValueError as err:
        message = str(err)
        assert "5" in message and "reset" in message, f"the error names max_seq_len=5 and suggests reset(): {message}"
    else:
        raise AssertionError("appending 2 positions to a cache holding 4 of 5 must raise ValueError")
    assert cache.length == 4, f"a refused append changes nothing, length={cache.length}"
    keys, values = cache.get(0)
    np.testing.assert_array_equal(keys, first, err_msg="a refused append must not write anything")
    cache.append(0, np.ones((1, 2, 1, 3)), np.ones((1, 2, 1, 3)))          # exactly the last slot still fits
    assert cache.length == 5

test_unit_kv_cache_appends_in_order()
test_unit_kv_cache_nbytes_and_reset()
test_unit_kv_cache_full_is_an_error()
### BEGIN HIDDEN TESTS
def test_hidden_kv_cache_layers_lengths_and_views():
    gen = np.random.default_rng(1)
    cache = KVCache(3, 1, 2, 6, 2)
    k = gen.standard_normal((1, 2, 2, 2))
    cache.append(0, k, k + 1)
    assert cache.length == 0, "layers 1 and 2 hold nothing yet: length is what every layer holds"
    assert list(cache.lengths) == [2, 0, 0], f"per-layer counts: {cache.lengths}"
    keys, values = cache.get(1)
    assert keys.shape == (1, 2, 0, 2), f"an empty layer gives 0 positions: {keys.shape}"
    cache.append(1, k, k)
    cache.append(2, k, k)
    assert cache.length == 2
    keys, values = cache.get(0)
    assert keys.dtype == np.float32 and values.dtype == np.float32, f"float32 storage: {keys.dtype}"
    np.testing.assert_allclose(keys, k.astype(np.float32), rtol=0, atol=0)
    np.testing.assert_allclose(values, (k + 1).astype(np.float32), rtol=0, atol=0)
    cache.append(0, Tensor(k[:, :, :1] * 3), Tensor(k[:, :, :1] * 4))       # Tensors are accepted too
    keys, _ = cache.get(0)
    np.testing.assert_allclose(keys[:, :, 2:], (k[:, :, :1] * 3).astype(np.float32), rtol=0, atol=0)
    np.testing.assert_allclose(keys[:, :, :2], k.astype(np.float32), rtol=0, atol=0)
    assert [len(cache.keys), len(cache.values)] == [3, 3]
    assert tuple(cache.keys[0].shape) == (1, 2, 6, 2) and cache.keys[0].dtype == np.float32
    full = KVCache(2, 1, 1, 2, 1)
    full.append(1, np.ones((1, 1, 2, 1)), np.ones((1, 1, 2, 1)))
    try:
        full.append(1, np.ones((1, 1, 1, 1)), np.ones((1, 1, 1, 1)))
    except ValueError as err:
        assert "1" in str(err) and "2" in str(err)
    else:
        raise AssertionError("a full layer must refuse one more position")
    full.append(0, np.ones((1, 1, 2, 1)), np.ones((1, 1, 2, 1)))            # the other layer still has room
    assert full.length == 2
    assert KVCache(4, 3, 2, 7, 5).nbytes == 2 * 4 * 3 * 2 * 7 * 5 * 4

test_hidden_kv_cache_layers_lengths_and_views()
### END HIDDEN TESTS

# %% [markdown]
# ## Part 2: one attention step over the cache
#
# Module 11's `MultiHeadAttention` holds `q_proj`, `k_proj`, `v_proj`, `out_proj` (each a
# `Linear(dim, dim)`), `split_heads` `(B, T, D) → (B, H, T, d)` and `merge_heads` back. With a cache
# holding `P` positions and `T` new ones in `x`:
#
# ```
#   q, k, v  = split_heads(q_proj(x)), split_heads(k_proj(x)), split_heads(v_proj(x))   only the T new positions
#   cache.append(layer, k, v)                                                          now P + T positions
#   keys, values = cache.get(layer)                                                    views, no copies
#   out = out_proj(merge_heads(attention(q, keys, values, mask = causal_mask(T, past_len=P))))
# ```
#
# The order matters: append **before** attending, so each new token attends to itself (the
# earlier course attended over the cache only, which left the token out and crashed on the first
# step, when the cache was empty). The mask lets new token `i` see cached positions `0 … P-1` and
# new positions `0 … i`; for one new token it allows everything.
#
# Read `P` from the layer's own count (`cache.lengths[layer]`) before appending.

# %% nbgrader={"grade": false, "grade_id": "cached-attention", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def cached_attention(attn, x, cache: KVCache, layer: int) -> Tensor:
    """attn's output (B, T, dim) for T new positions x (B, T, dim), attending over layer's cache and themselves.

    attn: a module 11 MultiHeadAttention; its keys and values for x are appended to cache's layer.
    """
    x = x if isinstance(x, Tensor) else Tensor(x)
    if x.ndim != 3 or x.shape[-1] != attn.dim:
        raise ValueError(f"cached_attention expects x of shape (batch, T, {attn.dim}), got {x.shape}")
    ### BEGIN SOLUTION
    past_len = cache.lengths[layer]
    q = attn.split_heads(attn.q_proj(x))
    k = attn.split_heads(attn.k_proj(x))
    v = attn.split_heads(attn.v_proj(x))
    cache.append(layer, k, v)                  # first: the new positions must attend to themselves too
    keys, values = cache.get(layer)
    mask = causal_mask(x.shape[1], past_len=past_len)
    attended = scaled_dot_product_attention(q, Tensor(keys), Tensor(values), mask=mask)
    return attn.out_proj(attn.merge_heads(attended))
    ### END SOLUTION

# %% [markdown]
# ### Test: the cached step equals the full causal forward, from an empty cache, token by token
#
# The oracle is module 11's `MultiHeadAttention.forward` over the whole sequence with a causal
# mask. The cached path is fed a prefix, then one token at a time, and must reproduce the full
# forward's rows at every position (float32: `atol = rtol = 1e-5`).

# %% nbgrader={"grade": true, "grade_id": "test-cached-attention", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
def test_unit_cached_attention_equals_full_forward():
    gen = np.random.default_rng(2)
    for dim, n_heads, prefix in [(8, 2, 1), (12, 3, 4), (6, 1, 0)]:
        attn = MultiHeadAttention(dim, n_heads, seed=dim)
        x = gen.standard_normal((2, 7, dim)).astype(np.float32)
        full, _ = attn(Tensor(x), mask=causal_mask(7))
        full = full.data
        assert np.std(full) > 0.1, "random weights give a non-trivial output"
        cache = KVCache(n_layers=1, batch=2, n_heads=n_heads, max_seq_len=7, head_dim=dim // n_heads)
        steps = [(0, prefix)] if prefix else []
        steps += [(t, t + 1) for t in range(prefix, 7)]
        for start, stop in steps:
            out = cached_attention(attn, Tensor(x[:, start:stop]), cache, 0)
            assert out.shape == (2, stop - start, dim), f"one output row per new position: {out.shape}"
            np.testing.assert_allclose(out.data, full[:, start:stop], rtol=1e-5, atol=1e-5,
                                       err_msg=f"dim={dim}, heads={n_heads}: positions {start}..{stop - 1} after "
                                               f"{start} cached ones must equal the full forward (does the new "
                                               f"token attend to itself?)")
        assert cache.length == 7, f"every position was appended: length={cache.length}"

test_unit_cached_attention_equals_full_forward()
### BEGIN HIDDEN TESTS
def test_hidden_cached_attention_sharp_weights_and_cache_content():
    gen = np.random.default_rng(3)
    attn = MultiHeadAttention(8, 2, seed=1)
    for layer in (attn.q_proj, attn.k_proj):      # large scores: attention far from uniform
        layer.weight = Tensor(layer.weight.data * 4.0, requires_grad=True)
    attn.v_proj.bias = Tensor(np.linspace(-1, 1, 8), requires_grad=True)
    x = gen.standard_normal((1, 5, 8)).astype(np.float32)
    full, (full_k, full_v) = attn(Tensor(x), mask=causal_mask(5))
    cache = KVCache(2, 1, 2, 6, 4)
    cache.append(0, np.zeros((1, 2, 1, 4)), np.zeros((1, 2, 1, 4)))        # layer 0 is someone else's
    for t in range(5):
        out = cached_attention(attn, x[:, t:t + 1], cache, 1)
        np.testing.assert_allclose(out.data, full.data[:, t:t + 1], rtol=1e-5, atol=1e-5)
    keys, values = cache.get(1)
    np.testing.assert_allclose(keys, full_k.data, rtol=1e-5, atol=1e-6, err_msg="the cache holds the keys of x")
    np.testing.assert_allclose(values, full_v.data, rtol=1e-5, atol=1e-6)
    assert cache.lengths[0] == 1 and cache.lengths[1] == 5

test_hidden_cached_attention_sharp_weights_and_cache_content()
### END HIDDEN TESTS

# %% [markdown]
# ## Part 3: the whole model, one step
#
# Module 12's `GPT` exposes its parts: `token_embedding`, `position_embedding(seq_len, start)`,
# `blocks` (each with `ln1`, `attn`, `ln2`, `mlp`), `ln_f` and `head`. Its forward is
#
# ```
#   x = token_embedding(tokens) + position_embedding(T, start)       start = positions already seen
#   for each block:   h = x + attn(ln1(x)) ;   x = h + mlp(ln2(h))
#   logits = head(ln_f(x))                                            (B, T, vocab_size)
# ```
#
# `cached_forward(model, tokens, cache)` walks the same parts, with `cached_attention` in place of
# each block's attention, and the new positions starting at `start = cache.length` (a new token
# is *not* at position 0; placing it there, or one too far, changes every logit). Module 12 never
# imports this module: the cache plugs in from outside, through those public attributes.
#
# Generation needs no gradients: run everything inside module 06's `no_grad()`, so no graph is
# recorded. The checks that the cache fits the model and the new tokens fit the cache are given,
# before any work, so a refused call leaves the cache untouched in every layer.

# %% nbgrader={"grade": false, "grade_id": "cached-forward", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def _check_cache_fits(model, cache: KVCache, batch: int, new_positions: int) -> None:
    wanted = (model.n_layers, batch, model.n_heads, model.head_dim)
    held = (cache.n_layers, cache.batch, cache.n_heads, cache.head_dim)
    if held != wanted:
        raise ValueError(f"{cache!r} does not fit this model and batch: need (n_layers, batch, n_heads, head_dim) = "
                         f"{wanted}, got {held}; build it with KVCache.for_model(model, batch={batch})")
    capacity = min(cache.max_seq_len, model.max_seq_len)
    if cache.length + new_positions > capacity:
        raise ValueError(f"KV cache full: it holds {cache.length} positions and {new_positions} more do not fit "
                         f"max_seq_len={capacity}; call cache.reset() to start a new sequence, or generate "
                         f"without the cache (it crops the context)")


def cached_forward(model, tokens, cache: KVCache) -> Tensor:
    """Logits (B, T, vocab_size) of T new tokens (B, T) after cache.length cached ones; appends to every layer."""
    tokens = token_id_array(tokens)
    if tokens.ndim != 2 or tokens.shape[1] < 1:
        raise ValueError(f"cached_forward expects token ids of shape (batch, T) with T >= 1, got {tokens.shape}")
    batch, new_positions = tokens.shape
    _check_cache_fits(model, cache, batch, new_positions)
    ### BEGIN SOLUTION
    start = cache.length
    with no_grad():
        x = model.token_embedding(tokens) + model.position_embedding(new_positions, start)
        for layer, block in enumerate(model.blocks):
            h = x + cached_attention(block.attn, block.ln1(x), cache, layer)
            x = h + block.mlp(block.ln2(h))
        return model.head(model.ln_f(x))
    ### END SOLUTION

# %% [markdown]
# ### Test: cached logits equal the full forward's at every position
#
# The oracle is `model(tokens)`: module 12's full forward, no cache. A prompt of `P` tokens is fed
# at once, then the rest one token at a time, for `P = 1`, a few, and one short of `max_seq_len`;
# every row must equal the full forward's (float32: `atol = rtol = 1e-4`). The logits must vary
# across the vocabulary and across positions, so a model that outputs a constant cannot pass.
# The same runs again with sharpened weights (larger positions and queries: peaked attention, as a
# trained model has), where an off-by-one position or a token left out of its own attention shows.

# %% nbgrader={"grade": true, "grade_id": "test-cached-forward", "locked": true, "points": 6, "schema_version": 3, "solution": false, "task": false}
def check_every_position(model, tokens, prompt_len, label):
    full = model(tokens)[0].data                                  # (B, T, V), no cache
    assert np.std(full, axis=-1).min() > 1e-2, f"{label}: logits must vary across the vocabulary"
    assert np.abs(np.diff(full, axis=1)).max() > 1e-2, f"{label}: logits must vary across positions"
    cache = KVCache.for_model(model, batch=tokens.shape[0])
    steps = [(0, prompt_len)] + [(t, t + 1) for t in range(prompt_len, tokens.shape[1])]
    for start, stop in steps:
        assert cache.length == start, f"{label}: before positions {start}.. the cache holds {start}, not {cache.length}"
        logits = cached_forward(model, tokens[:, start:stop], cache).data
        assert logits.shape == full[:, start:stop].shape, f"{label}: logits (B, T, vocab), got {logits.shape}"
        np.testing.assert_allclose(logits, full[:, start:stop], rtol=1e-4, atol=1e-4,
                                   err_msg=f"{label}: positions {start}..{stop - 1} after {start} cached")
    assert cache.length == tokens.shape[1]

def sharpen(model):
    model.position_embedding.weight = Tensor(model.position_embedding.weight.data * 3.0, requires_grad=True)
    for block in model.blocks:
        block.attn.q_proj.weight = Tensor(block.attn.q_proj.weight.data * 4.0, requires_grad=True)

def test_unit_cached_forward_equals_full_forward():
    gen = np.random.default_rng(4)
    model = GPT(vocab_size=13, dim=16, n_layers=2, n_heads=2, max_seq_len=10, seed=0)
    tokens = gen.integers(0, 13, size=(1, 10))
    for prompt_len in (1, 3, 9):
        check_every_position(model, tokens, prompt_len, f"random weights, prompt {prompt_len}")
    sharpen(model)
    for prompt_len in (1, 4):
        check_every_position(model, tokens, prompt_len, f"sharpened weights, prompt {prompt_len}")

def test_unit_cached_forward_refuses_overflow():
    model = GPT(vocab_size=7, dim=8, n_layers=2, n_heads=2, max_seq_len=4, seed=1)
    cache = KVCache.for_model(model)
    cached_forward(model, np.array([[1, 2, 3]]), cache)
    try:
        cached_forward(model, np.array([[4, 5]]), cache)
    except ValueError as err:
        assert "reset" in str(err), f"the error says how to go on: {err}"
    else:
        raise AssertionError("3 cached + 2 new positions do not fit max_seq_len=4: ValueError expected")
    assert cache.length == 3 and list(cache.lengths) == [3, 3], "a refused step appends to no layer"

test_unit_cached_forward_equals_full_forward()
test_unit_cached_forward_refuses_overflow()
### BEGIN HIDDEN TESTS
def test_hidden_cached_forward_batch_and_four_layers():
    gen = np.random.default_rng(5)
    model = GPT(vocab_size=9, dim=12, n_layers=4, n_heads=3, max_seq_len=8, seed=3)
    sharpen(model)
    tokens = gen.integers(0, 9, size=(2, 8))
    check_every_position(model, tokens, 2, "batch 2, four layers")
    check_every_position(model, tokens, 8, "the whole sequence at once")

test_hidden_cached_forward_batch_and_four_layers()
### END HIDDEN TESTS

# %% [markdown]
# ## Part 4: generation
#
# `generate(model, prompt, max_new_tokens, temperature=1.0, top_k=None, seed=None,
# use_cache=True)` returns the prompt followed by `max_new_tokens` sampled ids, a 1-D int64 array,
# exactly as module 12's `GPT.generate` does, and with the same seed the same ids:
#
# - With the cache: a fresh `KVCache.for_model(model)`, the whole prompt in one `cached_forward`
#   (the *prefill*), then each sampled token fed alone. The last sampled token is never fed back,
#   so `len(prompt) + max_new_tokens - 1` positions must fit `max_seq_len`; if not, raise a
#   `ValueError` before doing any work that says so and suggests `use_cache=False` (the uncached
#   path crops the context to the last `max_seq_len` tokens; with learned absolute positions a
#   cache cannot slide without changing every position).
# - Without: each step runs `model(context)` over the last `max_seq_len` ids, inside `no_grad()`.
# - Each new id is drawn as module 12 draws it: `rng.choice(vocab_size, p=next_token_probabilities(
#   logits of the last position, temperature, top_k))`, with one `rng = np.random.default_rng(seed)`
#   for the whole generation (module 12's `next_token_probabilities` is imported above).
#
# The prompt and sampling checks are given.

# %% nbgrader={"grade": false, "grade_id": "cached-generate", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def generate(model, prompt, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
             seed: int | None = None, use_cache: bool = True) -> np.ndarray:
    """prompt + max_new_tokens sampled ids (1-D int64), one token per step, with or without a KV cache."""
    ids = token_id_array(prompt)
    if ids.ndim != 1 or ids.size == 0:
        raise ValueError(f"generate takes a non-empty 1-D prompt of token ids, got shape {ids.shape}")
    ids = model.check_tokens(ids[None, :])[0].astype(np.int64)          # ids within the vocabulary
    next_token_probabilities(np.zeros(model.vocab_size), temperature, top_k)   # checks both before any work
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, numbers.Integral) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be a non-negative integer, got {max_new_tokens!r}")
    ### BEGIN SOLUTION
    fed_positions = ids.size + max_new_tokens - 1
    if use_cache and fed_positions > model.max_seq_len:
        raise ValueError(f"a prompt of {ids.size} tokens and {max_new_tokens} new ones need {fed_positions} cached "
                         f"positions, more than max_seq_len={model.max_seq_len}: shorten them, or pass "
                         f"use_cache=False (it crops the context to the last {model.max_seq_len} tokens)")
    rng = np.random.default_rng(seed)
    out = np.empty(ids.size + max_new_tokens, dtype=np.int64)     # the prompt, then each sampled id
    out[:ids.size] = ids
    cache = KVCache.for_model(model, batch=1) if use_cache else None
    with no_grad():
        for position in range(ids.size, out.size):
            if cache is None:                                      # the whole context, cropped
                logits, _ = model(out[None, max(0, position - model.max_seq_len):position])
            elif position == ids.size:                             # the prefill: the prompt at once
                logits = cached_forward(model, out[None, :position], cache)
            else:                                                  # only the token sampled last
                logits = cached_forward(model, out[None, position - 1:position], cache)
            probabilities = next_token_probabilities(logits.data[0, -1], temperature, top_k)
            out[position] = rng.choice(model.vocab_size, p=probabilities)
    return out
    ### END SOLUTION

# %% [markdown]
# ### Test: the same ids as `GPT.generate` with the same seed; overflow is refused up front

# %% nbgrader={"grade": true, "grade_id": "test-cached-generate", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
def test_unit_generate_matches_gpt_generate():
    model = GPT(vocab_size=11, dim=16, n_layers=2, n_heads=2, max_seq_len=12, seed=2)
    for prompt, new, temperature, top_k, seed in [([3], 11, 1.0, None, 0), ([1, 4, 1, 5], 6, 0.7, 3, 7)]:
        expected = model.generate(np.array(prompt), new, temperature=temperature, top_k=top_k, seed=seed)
        for use_cache in (True, False):
            got = generate(model, np.array(prompt), new, temperature=temperature, top_k=top_k, seed=seed,
                           use_cache=use_cache)
            got = np.asarray(got)
            assert got.shape == (len(prompt) + new,) and got.dtype == np.int64, f"1-D int64 ids: {got.shape} {got.dtype}"
            np.testing.assert_array_equal(got, expected, err_msg=f"use_cache={use_cache}: the same seed must give "
                                                                 f"GPT.generate's ids")
    assert len(set(expected.tolist())) > 2, "sampling at temperature 0.7 from random weights varies"

def test_unit_generate_refuses_cache_overflow():
    model = GPT(vocab_size=5, dim=8, n_layers=1, n_heads=2, max_seq_len=6, seed=3)
    assert np.asarray(generate(model, np.array([1, 2, 3]), 4, seed=0)).shape == (7,), "3 + 4 - 1 = 6 positions fit"
    try:
        generate(model, np.array([1, 2, 3]), 5, seed=0)
    except ValueError as err:
        assert "use_cache=False" in str(err) and "6" in str(err), f"the error names max_seq_len and the way out: {err}"
    else:
        raise AssertionError("3 + 5 - 1 = 7 positions do not fit max_seq_len=6: ValueError expected")
    longer = generate(model, np.array([1, 2, 3]), 9, seed=0, use_cache=False)        # crops, so it goes on
    np.testing.assert_array_equal(np.asarray(longer), model.generate(np.array([1, 2, 3]), 9, seed=0))

test_unit_generate_matches_gpt_generate()
test_unit_generate_refuses_cache_overflow()
### BEGIN HIDDEN TESTS
def test_hidden_generate_edges():
    model = GPT(vocab_size=6, dim=8, n_layers=2, n_heads=2, max_seq_len=5, seed=4)
    for prompt in ([2, 0], [1, 2, 3, 4, 5, 0]):                 # no new tokens: the prompt, whatever its length
        nothing_new = np.asarray(generate(model, np.array(prompt), 0))
        assert nothing_new.dtype == np.int64, f"int64 ids, got {nothing_new.dtype}"
        np.testing.assert_array_equal(nothing_new, prompt)
    for seed in (1, 2):
        np.testing.assert_array_equal(np.asarray(generate(model, np.array([5]), 5, top_k=1, seed=seed)),
                                      model.generate(np.array([5]), 5, top_k=1, seed=seed))
    np.testing.assert_array_equal(np.asarray(generate(model, [1, 2], 3, temperature=2.0, seed=9)),
                                  model.generate(np.array([1, 2]), 3, temperature=2.0, seed=9))
    np.testing.assert_array_equal(np.asarray(generate(model, [3, 1, 4], 3, temperature=0)),
                                  model.generate(np.array([3, 1, 4]), 3, temperature=0), err_msg="greedy")

test_hidden_generate_edges()
### END HIDDEN TESTS

# %% [markdown]
# ## The oracle on a trained model
#
# Random weights give near-uniform attention; a trained model's attention is peaked and its logits
# far from flat. Below, module 12's character GPT is trained briefly on Shakespeare, then the
# cache is checked against the full forward at **every** position of a generated sequence, for
# several prompt lengths (1, a few, and near `max_seq_len`). The largest difference is printed.

# %%
import os
import time

from threadpoolctl import threadpool_info, threadpool_limits

QUICK = os.environ.get("TITO_AUTOGRADING") == "1"   # shrink sizes and repeats while grading
BLAS = ", ".join(f"{p.get('internal_api')} {p.get('version')} ({p.get('architecture', '?')})"
                 for p in threadpool_info() if p.get("user_api") == "blas") or "none found"
print(f"BLAS: {BLAS}; 1 thread for every measurement below")

# %%
from tinytorch.models.transformer import train_char_gpt
from tinytorch.text.tokenization import load_shakespeare, split_by_position

train_text, val_text = split_by_position(load_shakespeare("hamlet"), 0.1)
alphabet = sorted(set(train_text) | set(val_text))
char_id = {char: index for index, char in enumerate(alphabet)}
train_ids = np.array([char_id[char] for char in train_text], dtype=np.int64)
val_ids = np.array([char_id[char] for char in val_text], dtype=np.int64)

trained = GPT(vocab_size=len(alphabet), dim=32, n_layers=2, n_heads=2, max_seq_len=32, seed=0)
with threadpool_limits(limits=1, user_api="blas"):
    history = train_char_gpt(trained, train_ids, steps=15 if QUICK else 300, batch_size=16, seed=0)
print(f"char GPT {trained.config()} trained {len(history['train_loss'])} steps: "
      f"train loss {history['train_loss'][0]:.3f} -> {history['train_loss'][-1]:.3f}")


def largest_cache_error(model, tokens, prompt_len):
    """max |cached - full| over every position: the prompt at once, then one token per step."""
    full = model(tokens)[0].data
    cache, worst = KVCache.for_model(model), 0.0
    steps = [(0, prompt_len)] + [(t, t + 1) for t in range(prompt_len, tokens.shape[1])]
    for start, stop in steps:
        logits = cached_forward(model, tokens[:, start:stop], cache).data
        np.testing.assert_allclose(logits, full[:, start:stop], rtol=1e-4, atol=1e-4,
                                   err_msg=f"positions {start}..{stop - 1} after {start} cached")
        worst = max(worst, float(np.abs(logits - full[:, start:stop]).max()))
    return worst, float(np.std(full, axis=-1).min()), float(np.abs(np.diff(full, axis=1)).max())


print(f"{'weights':>8} {'prompt':>7} {'positions':>10} {'max |cached - full|':>20} {'min std over vocab':>19} "
      f"{'max change between positions':>29}")
for label, model in (("trained", trained), ("random", GPT(**trained.config(), seed=1))):
    for prompt_len in (1, 5, model.max_seq_len - 1):
        prompt = val_ids[:prompt_len]
        tokens = generate(model, prompt, model.max_seq_len - prompt_len, temperature=0.8, seed=prompt_len)[None, :]
        worst, vocab_spread, position_change = largest_cache_error(model, tokens, prompt_len)
        print(f"{label:>8} {prompt_len:>7} {tokens.shape[1]:>10} {worst:>20.2e} {vocab_spread:>19.3f} {position_change:>29.3f}")
print("every position checked against model(tokens) with rtol = atol = 1e-4 (float32)")
print("sample:", repr("".join(alphabet[i] for i in generate(trained, val_ids[:8], 24, temperature=0.8, seed=0))))

# %% [markdown]
# ## Analysis: the cost of one token against its position
#
# The same token sequence is run both ways on a GPT with random weights (the cost does not depend
# on the values of the weights): without the cache, step `t` runs `model(ids[:t+1])`, all `t + 1`
# positions; with it, step `t` runs `cached_forward` on the one new token. Each step is timed
# (median over repeats, one BLAS thread) and the table shows the mean cost per token over windows
# of positions. Without the cache the cost grows with the position (every layer's projections and
# MLP run over `t + 1` positions, attention over `(t + 1)²` pairs); with it, only attention's
# `t + 1` dot products grow, and the fixed cost of one position dominates.
#
# Steps are timed in CPU seconds of this process (`time.process_time`; BLAS runs one thread, so
# that is the work done): on a machine shared with other jobs, wall time also counts the waits for
# a core. On an idle machine the two agree; the end-to-end table below prints both.

# %%
config = dict(vocab_size=65, dim=64, n_layers=4, n_heads=4, max_seq_len=40 if QUICK else 288)
new_tokens = 24 if QUICK else 256
repeats = 1 if QUICK else 3
timing_model = GPT(**config, seed=0)
sequence = generate(timing_model, np.array([0]), new_tokens - 1, seed=0)    # new_tokens ids to feed


def per_step_seconds(use_cache: bool) -> np.ndarray:
    """Seconds of step t (t = 0 .. len(sequence)-1), one new token each; the median over repeats."""
    samples = np.zeros((repeats, sequence.size))
    for r in range(repeats):
        cache = KVCache.for_model(timing_model)
        with no_grad():
            for t in range(sequence.size):
                begin = time.process_time()
                if use_cache:
                    cached_forward(timing_model, sequence[None, t:t + 1], cache)
                else:
                    timing_model(sequence[None, :t + 1])
                samples[r, t] = time.process_time() - begin
    return np.median(samples, axis=0)


with threadpool_limits(limits=1, user_api="blas"):
    per_step_seconds(True)                                      # warm-up
    cached_s, uncached_s = per_step_seconds(True), per_step_seconds(False)

window = max(1, sequence.size // 8)
print(f"GPT {config}, random weights; CPU ms per token, mean over windows of {window} positions, median of {repeats}")
print(f"{'positions':>11} {'no cache (ms)':>14} {'cache (ms)':>11} {'no cache / cache':>17}")
for start in range(0, sequence.size, window):
    stop = min(start + window, sequence.size)
    plain, cached = uncached_s[start:stop].mean() * 1e3, cached_s[start:stop].mean() * 1e3
    print(f"{start:>5}..{stop - 1:<5} {plain:>14.3f} {cached:>11.3f} {plain / cached:>17.2f}")

# %% [markdown]
# ### The plot, and the totals: O(N) against O(N²)
#
# Summing the steps gives the cost of generating `N` tokens. Without the cache it is the sum of a
# cost growing with `t`: quadratic in `N` (the count of position-passes is `N(N+1)/2`); with it,
# `N` position-passes: linear, until attention over long caches starts to show. The table doubles
# `N` and prints how the measured total grows: towards ×4 for a quadratic, ×2 for a linear cost.

# %%
import matplotlib.pyplot as plt

positions = np.arange(sequence.size)
figure, (per_token_axes, total_axes) = plt.subplots(1, 2, figsize=(11, 4))
per_token_axes.plot(positions, uncached_s * 1e3, label="no cache: model(ids[:t+1])")
per_token_axes.plot(positions, cached_s * 1e3, label="KV cache: cached_forward(one token)")
per_token_axes.set(xlabel="position t of the new token", ylabel="CPU ms for this token", title="cost per token")
total_axes.plot(positions + 1, np.cumsum(uncached_s), label="no cache")
total_axes.plot(positions + 1, np.cumsum(cached_s), label="KV cache")
total_axes.set(xlabel="tokens generated N", ylabel="total CPU seconds", title="total cost of N tokens")
for axes in (per_token_axes, total_axes):
    axes.legend()
figure.tight_layout()
plt.show()

print(f"{'N':>5} {'passes, no cache':>17} {'passes, cache':>14} {'no cache (CPU s)':>17} {'growth':>7} "
      f"{'cache (CPU s)':>14} {'growth':>7}")
previous = None
for n in (sequence.size // 4, sequence.size // 2, sequence.size):
    plain, cached = uncached_s[:n].sum(), cached_s[:n].sum()
    growth = ("" if previous is None else f"x{plain / previous[0]:.2f}", "" if previous is None else f"x{cached / previous[1]:.2f}")
    print(f"{n:>5} {n * (n + 1) // 2:>17} {n:>14} {plain:>17.3f} {growth[0]:>7} {cached:>14.3f} {growth[1]:>7}")
    previous = (plain, cached)

# %% [markdown]
# ## Analysis: the speedup for whole generations
#
# End to end, `new_tokens` tokens from a one-token prompt with the same seed, four ways: this
# module's preallocated cache, module 12's `GPT.generate(use_cache=True)` (the concatenating
# `past_kv` cache: every step copies the whole cache), and both without a cache. The course plan
# expected 5–10× for 256 tokens; the numbers below are what this machine measures. All four must
# give the same ids, which the cell checks.
#
# What bounds the ratio: at the first positions both paths cost about the same (the first rows
# of the table above). That is the fixed cost of one step, the Python dispatch of every operation of
# a forward pass, which the cache pays too; the cache removes only the work that grows with the
# context. A wider model or a longer generation moves the ratio up (`python -m benchmarks caching`
# also measures a wider model).

# %%
def seconds_and_ids(fn):
    """(wall seconds, CPU seconds, ids) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    ids = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, np.asarray(ids)


ways = {
    "KVCache (this module)": lambda: generate(timing_model, np.array([0]), new_tokens, seed=1, use_cache=True),
    "past_kv concat (module 12)": lambda: timing_model.generate(np.array([0]), new_tokens, seed=1, use_cache=True),
    "no cache (this module)": lambda: generate(timing_model, np.array([0]), new_tokens, seed=1, use_cache=False),
    "no cache (module 12)": lambda: timing_model.generate(np.array([0]), new_tokens, seed=1, use_cache=False),
}
runs = {name: [] for name in ways}
with threadpool_limits(limits=1, user_api="blas"):
    for _ in range(repeats):                        # the ways interleaved, so a busy spell hits them all
        for name, fn in ways.items():
            runs[name].append(seconds_and_ids(fn))
reference_ids = runs["no cache (module 12)"][0][2]
for name, samples in runs.items():
    for _, _, ids in samples:
        np.testing.assert_array_equal(ids, reference_ids, err_msg=f"{name} sampled other ids")
wall_s = {name: float(np.median([s[0] for s in samples])) for name, samples in runs.items()}
cpu_s = {name: float(np.median([s[1] for s in samples])) for name, samples in runs.items()}
print(f"{new_tokens} new tokens, GPT {config}, 1 BLAS thread ({BLAS}); median of {repeats}; identical ids from all four")
print(f"{'generation':>28} {'wall s':>8} {'tokens/s':>9} {'speedup (wall)':>15} {'CPU s':>8} {'speedup (CPU)':>14}")
for name in ways:
    print(f"{name:>28} {wall_s[name]:>8.3f} {new_tokens / wall_s[name]:>9.1f} "
          f"{wall_s['no cache (module 12)'] / wall_s[name]:>15.2f} {cpu_s[name]:>8.3f} "
          f"{cpu_s['no cache (module 12)'] / cpu_s[name]:>14.2f}")

# %% [markdown]
# ## Analysis: what the cache costs in memory
#
# The cache's bytes grow linearly in `max_seq_len` (and in batch, layers and heads). Below, caches
# are allocated for a few lengths, for this module's timing model and for GPT-2 small's shape
# (12 layers, 12 heads of 64), and their measured `nbytes` is compared with the formula and with the
# model's own parameter bytes (for the timing model, measured from its parameters).

# %%
def parameter_bytes(model) -> int:
    return sum(p.data.nbytes for p in model.parameters())


shapes = {"timing model": (config["n_layers"], config["n_heads"], config["dim"] // config["n_heads"]),
          "GPT-2 small shape": (12, 12, 64)}
lengths = (64, 256, 1024) if QUICK else (64, 256, 1024, 4096)
print(f"timing model parameters: {parameter_bytes(timing_model) / 2**20:.2f} MiB (measured)")
print(f"{'shape':>18} {'max_seq_len':>12} {'batch':>6} {'measured (MiB)':>15} {'formula (MiB)':>14} {'equal':>6}")
for name, (n_layers, n_heads, head_dim) in shapes.items():
    for max_seq_len in lengths:
        for batch in (1, 8):
            cache = KVCache(n_layers, batch, n_heads, max_seq_len, head_dim)
            formula = 2 * n_layers * batch * n_heads * max_seq_len * head_dim * np.dtype(np.float32).itemsize
            print(f"{name:>18} {max_seq_len:>12} {batch:>6} {cache.nbytes / 2**20:>15.2f} {formula / 2**20:>14.2f} "
                  f"{str(cache.nbytes == formula):>6}")
            del cache

# %% [markdown]
# ## What you built
#
# * `KVCache`: keys and values preallocated per layer, appended in place, handed out as views,
#   refusing to overflow before writing anything, with its memory measured and equal to
#   `2 · layers · batch · heads · max_seq_len · head_dim · itemsize`.
# * `cached_attention`: only the new tokens are projected; they join the cache before attending,
#   so each attends to itself; no concatenation copies.
# * `cached_forward` and `generate` over module 12's GPT, from the outside, through its public
#   attributes: logits equal to the full forward at every position, and the same sampled ids as
#   `GPT.generate` with the same seed, in `O(N)` position-passes instead of `O(N²)`.
