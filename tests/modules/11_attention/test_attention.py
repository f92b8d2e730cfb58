"""Package tests for tinytorch.core.attention: the embedding lookup and its scatter-add gradient,
positional encodings, the causal mask, scaled dot-product attention (loop reference, finite
differences, causality by gradients) and multi-head attention with its past_kv path."""

import math
import warnings

import numpy as np
import pytest

import tinytorch.core.autograd  # noqa: F401  (installs the recorder and Tensor.backward)
from tinytorch.core.attention import (
    Embedding,
    MultiHeadAttention,
    PositionalEmbedding,
    causal_mask,
    concat,
    embedding_lookup,
    scaled_dot_product_attention,
    sinusoidal_positional_encoding,
)
from tinytorch.core.autograd import no_grad
from tinytorch.core.layers import get_matmul_backend, set_matmul_backend
from tinytorch.core.tensor import Tensor


def finite_differences(loss_of, values, eps=1e-6):
    """d loss / d values by central differences; values is changed and restored in place."""
    grad = np.zeros_like(values)
    flat, grad_flat = values.reshape(-1), grad.reshape(-1)
    for index in range(flat.size):
        kept = flat[index]
        flat[index] = kept + eps
        up = loss_of()
        flat[index] = kept - eps
        down = loss_of()
        flat[index] = kept
        grad_flat[index] = (up - down) / (2 * eps)
    return grad


def reference_attention(q, k, v, mask=None):
    """Einsum and an explicit per-row softmax, float64: an oracle that shares no code with the module."""
    scores = np.einsum("...id,...jd->...ij", q, k) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
    weights /= weights.sum(axis=-1, keepdims=True)
    return np.einsum("...ij,...jd->...id", weights, v)


def float64_projections(mha):
    """Swap each projection's parameters for float64 copies (nonzero biases); returns [(W, b)] as arrays."""
    arrays = []
    for offset, layer in enumerate((mha.q_proj, mha.k_proj, mha.v_proj, mha.out_proj)):
        weight = layer.weight.data.astype(np.float64)
        bias = np.linspace(-0.2, 0.2, weight.shape[1]) + 0.05 * offset
        layer.weight = Tensor(weight, dtype=np.float64, requires_grad=True)
        layer.bias = Tensor(bias, dtype=np.float64, requires_grad=True)
        arrays.append((weight, bias))
    return arrays


def reference_multi_head(x, arrays, n_heads, mask=None):
    (wq, bq), (wk, bk), (wv, bv), (wo, bo) = arrays
    batch, length, dim = x.shape
    split = lambda t: t.reshape(batch, length, n_heads, dim // n_heads).transpose(0, 2, 1, 3)  # noqa: E731
    heads = reference_attention(split(x @ wq + bq), split(x @ wk + bk), split(x @ wv + bv), mask)
    return heads.transpose(0, 2, 1, 3).reshape(batch, length, dim) @ wo + bo


# --- embedding ---------------------------------------------------------------------------------

def test_embedding_lookup_is_row_gather():
    table = np.random.default_rng(0).standard_normal((6, 4))
    ids = np.array([[5, 0], [2, 2]])
    out = embedding_lookup(Tensor(table, dtype=np.float64), Tensor(ids))
    assert out.shape == (2, 2, 4)
    np.testing.assert_array_equal(out.data, table[ids])


def test_embedding_gradient_accumulates_repeated_ids():
    gen = np.random.default_rng(1)
    table, upstream = gen.standard_normal((4, 3)), gen.standard_normal((7, 3))
    ids = np.array([1, 1, 1, 3, 0, 1, 3])
    weight = Tensor(table, dtype=np.float64, requires_grad=True)
    embedding_lookup(weight, ids).backward(upstream)
    expected = np.zeros((4, 3))
    for position, token in enumerate(ids):          # loop oracle
        expected[token] += upstream[position]
    np.testing.assert_allclose(weight.grad.data, expected, rtol=1e-12, atol=1e-12)
    assert np.all(weight.grad.data[2] == 0.0)


def test_embedding_gradient_matches_finite_differences():
    gen = np.random.default_rng(2)
    table, ids, upstream = gen.standard_normal((3, 2)), np.array([[0, 2], [2, 2]]), gen.standard_normal((2, 2, 2))
    weight = Tensor(table.copy(), dtype=np.float64, requires_grad=True)
    embedding_lookup(weight, ids).backward(upstream)
    expected = finite_differences(lambda: float(np.sum(upstream * table[ids])), table)
    np.testing.assert_allclose(weight.grad.data, expected, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("bad_id", [8, 100, -1])
def test_embedding_out_of_range_names_id_and_vocab(bad_id):
    layer = Embedding(8, 2, seed=0)
    with pytest.raises(ValueError, match=rf"{bad_id}.*8"):
        layer(np.array([1, bad_id]))


def test_embedding_rejects_float_ids_and_bad_sizes():
    with pytest.raises(TypeError, match="integers"):
        Embedding(4, 2)(np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="num_embeddings"):
        Embedding(0, 2)
    with pytest.raises(ValueError, match="dim"):
        Embedding(4, -3)


def test_embedding_seed_and_dtype():
    a, b = Embedding(10, 4, seed=3), Embedding(10, 4, seed=3)
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    assert a.weight.dtype == np.float32 and a.weight.requires_grad and a.parameters() == [a.weight]
    assert not np.array_equal(a.weight.data, Embedding(10, 4, seed=4).weight.data)


# --- positions ---------------------------------------------------------------------------------

def test_sinusoidal_encoding_formula_and_properties():
    pe = sinusoidal_positional_encoding(50, 10).astype(np.float64)
    positions = np.arange(50)[:, None]
    frequencies = 1.0 / 10000 ** (np.arange(0, 10, 2) / 10)
    np.testing.assert_allclose(pe[:, 0::2], np.sin(positions * frequencies), atol=1e-6)
    np.testing.assert_allclose(pe[:, 1::2], np.cos(positions * frequencies), atol=1e-6)
    np.testing.assert_allclose(pe[:, 0::2] ** 2 + pe[:, 1::2] ** 2, 1.0, atol=1e-6)   # each pair is a unit clock
    assert sinusoidal_positional_encoding(3, 5).shape == (3, 5)


def test_learned_positions_slice_and_gradient():
    table = PositionalEmbedding(6, 2, seed=0)
    window = table(3, start=2)
    np.testing.assert_array_equal(window.data, table.weight.data[2:5])
    window.backward(np.ones((3, 2)))
    np.testing.assert_array_equal(table.weight.grad.data.sum(axis=1), [0, 0, 2, 2, 2, 0])
    with pytest.raises(ValueError, match="max_len=6"):
        table(2, start=5)


# --- causal mask -------------------------------------------------------------------------------

def test_causal_mask_matches_tril_and_cached_offsets():
    np.testing.assert_array_equal(causal_mask(5), np.tril(np.ones((5, 5), dtype=bool)))
    for past in range(4):
        full = causal_mask(past + 3)
        np.testing.assert_array_equal(causal_mask(3, past_len=past), full[past:])
    with pytest.raises(ValueError):
        causal_mask(0)
    with pytest.raises(ValueError):
        causal_mask(2, past_len=-1)


# --- scaled dot-product attention --------------------------------------------------------------

@pytest.mark.parametrize("shapes", [((3, 4), (5, 4), (5, 2)), ((2, 3, 6, 8), (2, 3, 6, 8), (2, 3, 6, 8))])
def test_attention_matches_reference(shapes):
    gen = np.random.default_rng(4)
    q, k, v = (gen.standard_normal(s) for s in shapes)
    got = scaled_dot_product_attention(*(Tensor(a, dtype=np.float64) for a in (q, k, v)))
    np.testing.assert_allclose(got.data, reference_attention(q, k, v), rtol=1e-10, atol=1e-12)


def test_attention_with_mask_and_float32():
    gen = np.random.default_rng(5)
    q, k, v = (gen.standard_normal((2, 6, 4)).astype(np.float32) for _ in range(3))
    got = scaled_dot_product_attention(Tensor(q), Tensor(k), Tensor(v), mask=causal_mask(6))
    assert got.dtype == np.float32
    expected = reference_attention(*(a.astype(np.float64) for a in (q, k, v)), causal_mask(6))
    np.testing.assert_allclose(got.data, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got.data[:, 0], v[:, 0], rtol=1e-6, atol=1e-7)   # the first token sees only itself


def test_attention_no_warnings_with_masks_and_huge_scores():
    gen = np.random.default_rng(6)
    q, k, v = (Tensor(gen.standard_normal((5, 3)) * 1e3, dtype=np.float64, requires_grad=True) for _ in range(3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")                 # exp overflow or inf - inf would warn
        out = scaled_dot_product_attention(q, k, v, mask=causal_mask(5))
        out.backward(np.ones((5, 3)))
    assert np.all(np.isfinite(out.data)) and np.all(np.isfinite(q.grad.data))


def test_attention_gradients_match_finite_differences():
    gen = np.random.default_rng(7)
    q, k, v = gen.standard_normal((2, 3, 4)), gen.standard_normal((2, 5, 4)), gen.standard_normal((2, 5, 3))
    mask = np.array([[1, 1, 0, 0, 1], [1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=bool)
    upstream = gen.standard_normal((2, 3, 3))
    tensors = [Tensor(a.copy(), dtype=np.float64, requires_grad=True) for a in (q, k, v)]
    scaled_dot_product_attention(*tensors, mask=mask).backward(upstream)
    for tensor, values in zip(tensors, (q, k, v)):
        expected = finite_differences(lambda: float(np.sum(upstream * reference_attention(q, k, v, mask))), values)
        np.testing.assert_allclose(tensor.grad.data, expected, rtol=1e-6, atol=1e-8)


def test_causality_proven_by_gradients_exact_zero():
    gen = np.random.default_rng(8)
    length = 6
    for t in range(length - 1):
        x = Tensor(gen.standard_normal((2, length, 4)), dtype=np.float64, requires_grad=True)
        out = scaled_dot_product_attention(x, x, x, mask=causal_mask(length))
        upstream = np.zeros((2, length, 4))
        upstream[:, t] = 1.0
        out.backward(upstream)
        assert np.all(x.grad.data[:, t + 1] == 0.0)          # d output[t] / d input[t+1] is exactly zero
        assert np.all(x.grad.data[:, t + 1:] == 0.0)
        assert np.all(np.abs(x.grad.data[:, :t + 1]).sum(axis=-1) > 0)


def test_attention_bad_inputs():
    q = np.ones((3, 4))
    with pytest.raises(TypeError, match="boolean"):
        scaled_dot_product_attention(q, q, q, mask=np.tril(np.ones((3, 3))))
    with pytest.raises(ValueError, match=r"\(2, 2\)"):
        scaled_dot_product_attention(q, q, q, mask=causal_mask(2))
    with pytest.raises(ValueError, match="no key"):
        scaled_dot_product_attention(q, q, q, mask=np.zeros((3, 3), dtype=bool))
    with pytest.raises(ValueError, match="mismatch"):
        scaled_dot_product_attention(q, np.ones((3, 5)), np.ones((3, 5)))
    with pytest.raises(ValueError):
        scaled_dot_product_attention(np.ones(4), np.ones(4), np.ones(4))


def test_attention_runs_on_the_current_matmul_backend():
    before = set_matmul_backend("naive")
    try:
        gen = np.random.default_rng(9)
        q, k, v = (gen.standard_normal((2, 3, 2)) for _ in range(3))
        got = scaled_dot_product_attention(*(Tensor(a, dtype=np.float64) for a in (q, k, v)))
        np.testing.assert_allclose(got.data, reference_attention(q, k, v), rtol=1e-10, atol=1e-12)
    finally:
        set_matmul_backend(before)
    assert get_matmul_backend() == before


# --- multi-head attention ----------------------------------------------------------------------

@pytest.mark.parametrize("dim,n_heads,causal", [(8, 2, False), (12, 4, True), (6, 6, True)])
def test_multi_head_matches_reference(dim, n_heads, causal):
    mha = MultiHeadAttention(dim, n_heads, seed=1)
    arrays = float64_projections(mha)
    x = np.random.default_rng(dim).standard_normal((2, 5, dim))
    mask = causal_mask(5) if causal else None
    out, (k, v) = mha(Tensor(x, dtype=np.float64), mask=mask)
    np.testing.assert_allclose(out.data, reference_multi_head(x, arrays, n_heads, mask), rtol=1e-10, atol=1e-12)
    assert k.shape == v.shape == (2, n_heads, 5, dim // n_heads)


def test_split_and_merge_heads_are_inverse_and_keep_positions():
    mha = MultiHeadAttention(6, 3, seed=0)
    x = Tensor(np.arange(2 * 4 * 6, dtype=np.float64).reshape(2, 4, 6), dtype=np.float64)
    heads = mha.split_heads(x)
    assert heads.shape == (2, 3, 4, 2)
    np.testing.assert_array_equal(heads.data[1, 2, 3], x.data[1, 3, 4:6])   # head 2, position 3: columns 4..5
    np.testing.assert_array_equal(mha.merge_heads(heads).data, x.data)


def test_multi_head_past_kv_equals_full_forward_all_splits():
    gen = np.random.default_rng(10)
    mha = MultiHeadAttention(8, 4, seed=5)
    float64_projections(mha)
    x = gen.standard_normal((3, 7, 8))
    full, (full_k, full_v) = mha(Tensor(x, dtype=np.float64), mask=causal_mask(7))
    assert np.std(full.data) > 1e-2                              # not an all-zero model
    for split in range(1, 7):
        _, cache = mha(Tensor(x[:, :split], dtype=np.float64), mask=causal_mask(split))
        rest, (k, v) = mha(Tensor(x[:, split:], dtype=np.float64), mask=causal_mask(7 - split, past_len=split),
                           past_kv=cache)
        np.testing.assert_allclose(rest.data, full.data[:, split:], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(k.data, full_k.data, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(v.data, full_v.data, rtol=1e-12, atol=1e-14)


def test_multi_head_token_by_token_from_empty_cache_under_no_grad():
    gen = np.random.default_rng(11)
    mha = MultiHeadAttention(4, 2, seed=2)
    x = gen.standard_normal((1, 5, 4)).astype(np.float32)
    full, _ = mha(Tensor(x), mask=causal_mask(5))
    cache = None
    with no_grad():
        for t in range(5):
            step, cache = mha(Tensor(x[:, t:t + 1]), mask=causal_mask(1, past_len=t), past_kv=cache)
            assert cache[0].shape == (1, 2, t + 1, 2)
            np.testing.assert_allclose(step.data, full.data[:, t:t + 1], rtol=1e-5, atol=1e-6)
            assert not step.requires_grad


def test_multi_head_gradients_match_finite_differences():
    gen = np.random.default_rng(12)
    mha = MultiHeadAttention(4, 2, seed=9)
    arrays = float64_projections(mha)
    x, upstream = gen.standard_normal((2, 3, 4)), gen.standard_normal((2, 3, 4))
    x_tensor = Tensor(x.copy(), dtype=np.float64, requires_grad=True)
    out, _ = mha(x_tensor, mask=causal_mask(3))
    out.backward(upstream)
    loss = lambda: float(np.sum(upstream * reference_multi_head(x, arrays, 2, causal_mask(3))))  # noqa: E731
    np.testing.assert_allclose(x_tensor.grad.data, finite_differences(loss, x), rtol=1e-6, atol=1e-8)
    layers = (mha.q_proj, mha.k_proj, mha.v_proj, mha.out_proj)
    for layer, (weight, bias) in zip(layers, arrays):
        np.testing.assert_allclose(layer.weight.grad.data, finite_differences(loss, weight), rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(layer.bias.grad.data, finite_differences(loss, bias), rtol=1e-6, atol=1e-8)


def test_multi_head_gradient_through_the_cache():
    gen = np.random.default_rng(13)
    mha = MultiHeadAttention(4, 2, seed=4)
    float64_projections(mha)
    x = gen.standard_normal((1, 4, 4))
    prefix = Tensor(x[:, :3].copy(), dtype=np.float64, requires_grad=True)
    _, cache = mha(prefix, mask=causal_mask(3))
    step, _ = mha(Tensor(x[:, 3:], dtype=np.float64), mask=causal_mask(1, past_len=3), past_kv=cache)
    step.backward(np.ones((1, 1, 4)))
    whole = Tensor(x.copy(), dtype=np.float64, requires_grad=True)
    full, _ = mha(whole, mask=causal_mask(4))
    picked = np.zeros((1, 4, 4))
    picked[:, 3] = 1.0
    full.backward(picked)
    np.testing.assert_allclose(prefix.grad.data, whole.grad.data[:, :3], rtol=1e-10, atol=1e-12)


def test_multi_head_errors():
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(10, 4)
    mha = MultiHeadAttention(4, 2)
    with pytest.raises(ValueError, match=r"\(batch, seq_len, 4\)"):
        mha(np.ones((5, 4)))
    _, cache = mha(np.ones((1, 3, 4)))
    with pytest.raises(ValueError, match="past_len"):
        mha(np.ones((1, 1, 4)), mask=causal_mask(1), past_kv=cache)        # a mask that ignores the cache
    with pytest.raises(ValueError, match="concatenate"):
        mha(np.ones((2, 1, 4)), past_kv=cache)                              # a cache from another batch size


def test_multi_head_seeds_and_parameters():
    a, b = MultiHeadAttention(8, 2, seed=0), MultiHeadAttention(8, 2, seed=0)
    for p, r in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(p.data, r.data)
    assert len(a.parameters()) == 8 and all(p.requires_grad for p in a.parameters())
    assert not np.array_equal(a.q_proj.weight.data, a.k_proj.weight.data)


def test_concat_gradient_splits_at_the_seam():
    first = Tensor(np.ones((2, 3, 2)), dtype=np.float64, requires_grad=True)
    second = Tensor(np.ones((2, 1, 2)), dtype=np.float64, requires_grad=True)
    joined = concat(first, second, axis=1)
    assert joined.shape == (2, 4, 2)
    upstream = np.arange(16.0).reshape(2, 4, 2)
    joined.backward(upstream)
    np.testing.assert_array_equal(first.grad.data, upstream[:, :3])
    np.testing.assert_array_equal(second.grad.data, upstream[:, 3:])
