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
# # Module 11: Attention
#
# An MLP sees a fixed number of inputs; a convolution sees a fixed neighbourhood. Text needs
# something else: the word that decides what "it" means may be anywhere earlier in the sentence.
# **Attention** lets every position look at every other position and decide, from the data, how
# much of each to take:
#
# ```
#   token ids (B, T) ─▶ Embedding ─▶ (B, T, D) ─▶ + positions ─▶ MultiHeadAttention ─▶ (B, T, D)
#
#   one head:   Q = x Wq,  K = x Wk,  V = x Wv                       (B, T, d) each
#               scores  = Q Kᵀ / √d                                  (B, T, T)  every query against every key
#               weights = softmax(scores + mask, over the keys)      rows sum to 1; masked keys get 0
#               out     = weights V                                  (B, T, d)  a weighted average of values
# ```
#
# | part | you write | the point |
# |---|---|---|
# | 1 | `embedding_lookup`, `embedding_backward` | a table lookup forward; a **scatter-add** backward (a token used twice gets both gradients) |
# | 2 | `sinusoidal_positional_encoding`, `PositionalEmbedding.forward` | attention is blind to order: positions must be added |
# | 3 | `causal_mask` | a language model may not look at the future |
# | 4 | `scaled_dot_product_attention` | the formula above, composed of recorded Tensor ops, so autograd differentiates it |
# | 5 | `MultiHeadAttention` | several heads in parallel by reshape/transpose, and a `past_kv` path for a KV cache |
#
# Everything here is built from operations that modules 01–03 report and module 06
# differentiates (matmul, transpose, reshape, `+`, `*`, softmax); two operations are new and
# register their own gradient rules with module 06, exactly as module 09's convolution does: the
# embedding lookup and the concatenation of cached keys with new ones.
#
# Two mistakes of an earlier version of this course are checked for: its KV-cached attention
# excluded the current token from its own attention (and crashed on the first step, when the
# cache is empty), and an all-zero model passed "cached output equals recomputed output". Here the
# cached path is checked against the full forward on random weights, token by token from an empty
# cache, and causality is proven with gradients: `d output[t] / d input[t+1]` is exactly zero.

# %%
#| default_exp core.attention

# %%
#| export
import math
import numbers

import numpy as np

from tinytorch.core.tensor import Tensor, records
from tinytorch.core.activations import Softmax
from tinytorch.core.layers import Linear, matmul         # projections and products use module 03's dispatch
from tinytorch.core.autograd import GraphNode, gradient_rule

# %% [markdown]
# ## Part 1: the embedding table
#
# A tokenizer (module 10) turns text into integer ids `0 ≤ id < V`. An **embedding** is a table
# `W` of shape `(V, D)`, one learned row per id; looking ids up is indexing:
#
# ```
#   ids (B, T) = [[3, 1, 3]]        W (V=5, D)            out (B, T, D) = [[W[3], W[1], W[3]]]
# ```
#
# This is the same as multiplying a one-hot matrix by `W`, without ever building the one-hot
# matrix. The gradient follows from that view: `dW = onehotᵀ · G`, i.e. **row `id` of `dW`
# receives the sum of the output gradients at every position holding `id`**. Writing
# `dW[ids] = G` (assignment) keeps only one of them when an id repeats, and repeats are the
# normal case in text (the letter `e`, the word `the`). Fancy-index `+=` has the same bug
# (`dW[ids] += G` writes each row once); `np.add.at(dW, ids, G)` accumulates.
#
# Write `embedding_lookup(weight, ids)`: check that the ids are integers (a `TypeError`
# otherwise) and that every id is in `[0, V)`, raising a `ValueError` that names the first bad id
# and the vocabulary size (a negative id would silently index from the end). Return
# `weight[ids]` as a Tensor of shape `ids.shape + (D,)`. The `@records` decorator reports the
# call to module 06 as one operation, `"embedding"`, with the ids as a parameter. Then write
# its gradient rule, `embedding_backward(node, grad)`.

# %% nbgrader={"grade": false, "grade_id": "embedding-lookup", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def token_id_array(ids) -> np.ndarray:
    """ids (Tensor, array, list or int) as an integer ndarray; TypeError for anything else."""
    values = np.asarray(ids.data if isinstance(ids, Tensor) else ids)
    if values.dtype == bool or not np.issubdtype(values.dtype, np.integer):
        raise TypeError(f"token ids must be integers, got dtype {values.dtype}; "
                        "convert them with np.asarray(ids, dtype=np.int64)")
    return values


@records("embedding", "weight")          # module 01's seam: autograd records one lookup
def embedding_lookup(weight, ids):
    """Rows of weight (V, D) at the integer ids (any shape): a Tensor of shape ids.shape + (D,)."""
    ### BEGIN SOLUTION
    table = weight if isinstance(weight, Tensor) else Tensor(weight)
    positions = token_id_array(ids)
    vocab_size = table.shape[0]
    out_of_range = (positions < 0) | (positions >= vocab_size)
    if np.any(out_of_range):
        bad_id = int(positions[out_of_range].reshape(-1)[0])
        raise ValueError(f"token id {bad_id} is out of range for a vocabulary of size {vocab_size}: ids must be "
                         "at least 0 and below the vocabulary size; check the tokenizer's vocab_size")
    gathered = table.data[positions]
    return Tensor(gathered, dtype=gathered.dtype)
    ### END SOLUTION


@gradient_rule("embedding")
def embedding_backward(node: GraphNode, grad: np.ndarray) -> tuple:
    """d weight: each output gradient added into the row of its id (repeated ids accumulate)."""
    ### BEGIN SOLUTION
    (weight,) = node.arrays()
    positions = token_id_array(node.params["ids"])
    grad_weight = np.zeros_like(weight)
    np.add.at(grad_weight, positions, grad)
    return (grad_weight,)
    ### END SOLUTION

# %% [markdown]
# The layer around it is given: a table drawn from `N(0, std²)` (GPT-2's `std = 0.02`; the
# same `seed` gives the same table) that requires grad, and `forward(ids) = embedding_lookup`.

# %%
#| export
def _check_positive_int(value, name: str, owner: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{owner}: {name} must be a positive integer, got {value!r}")
    return int(value)


class Embedding:
    """A learned table of num_embeddings rows of size dim; forward(ids) looks rows up.

    seed: seeds np.random.default_rng for the table; std: the spread of the initial N(0, std²) draws.
    """

    def __init__(self, num_embeddings: int, dim: int, seed: int | None = None, std: float = 0.02):
        self.num_embeddings = _check_positive_int(num_embeddings, "num_embeddings", "Embedding")
        self.dim = _check_positive_int(dim, "dim", "Embedding")
        draws = np.random.default_rng(seed).normal(0.0, std, size=(self.num_embeddings, self.dim))
        self.weight = Tensor(draws, dtype=np.float32, requires_grad=True)

    def forward(self, ids) -> Tensor:
        return embedding_lookup(self.weight, ids)

    def __call__(self, ids) -> Tensor:
        return self.forward(ids)

    def parameters(self) -> list:
        return [self.weight]

    def __repr__(self) -> str:
        return f"Embedding(num_embeddings={self.num_embeddings}, dim={self.dim})"

# %% [markdown]
# ### Test: lookup, accumulation over repeated ids, errors
#
# The oracle for the gradient is the one-hot view: `dW = onehot(ids)ᵀ · G`, built explicitly.

# %% nbgrader={"grade": true, "grade_id": "test-embedding", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
def test_unit_embedding_gathers_rows():
    table = np.arange(15.0).reshape(5, 3)
    ids = np.array([[3, 1, 3], [0, 4, 4]])
    out = embedding_lookup(Tensor(table, dtype=np.float64), ids)
    assert out.shape == (2, 3, 3), f"expected shape ids.shape + (D,) = (2, 3, 3), got {out.shape}"
    np.testing.assert_array_equal(out.data, table[ids])
    layer = Embedding(7, 4, seed=0)
    assert layer.weight.shape == (7, 4) and layer.weight.requires_grad
    np.testing.assert_array_equal(layer(np.array([6, 0])).data, layer.weight.data[[6, 0]])

def test_unit_embedding_gradient_accumulates():
    gen = np.random.default_rng(0)
    table = gen.standard_normal((5, 3))
    ids = np.array([[3, 1, 3], [3, 0, 1]])            # id 3 three times, id 1 twice, ids 2 and 4 never
    upstream = gen.standard_normal((2, 3, 3))
    one_hot = np.eye(5)[ids.reshape(-1)]              # (6, 5)
    expected = one_hot.T @ upstream.reshape(-1, 3)    # (5, 3)
    weight = Tensor(table, dtype=np.float64, requires_grad=True)
    embedding_lookup(weight, ids).backward(upstream)
    assert weight.grad is not None, "the embedding table got no gradient: register the rule for 'embedding'"
    np.testing.assert_allclose(weight.grad.data, expected, rtol=1e-12, atol=1e-12,
                               err_msg="a repeated id must receive the sum of its gradients")

def test_unit_embedding_errors():
    table = Tensor(np.zeros((10, 2)))
    for bad_id in (10, -1):
        try:
            embedding_lookup(table, np.array([0, bad_id, 3]))
        except ValueError as err:
            assert str(bad_id) in str(err) and "10" in str(err), f"the error names the id and the vocabulary size: {err}"
        else:
            raise AssertionError(f"id {bad_id} with a vocabulary of 10 must raise ValueError")
    try:
        embedding_lookup(table, np.array([0.0, 1.0]))
    except TypeError:
        pass
    else:
        raise AssertionError("float ids must raise TypeError")

test_unit_embedding_gathers_rows()
test_unit_embedding_gradient_accumulates()
test_unit_embedding_errors()
### BEGIN HIDDEN TESTS
def test_hidden_embedding_finite_differences_and_accumulation_across_calls():
    gen = np.random.default_rng(1)
    table, ids, upstream = gen.standard_normal((4, 2)), np.array([2, 2, 2, 0]), gen.standard_normal((4, 2))
    def loss(w):
        return np.sum(upstream * w[ids])
    eps, expected = 1e-6, np.zeros_like(table)
    for position in np.ndindex(table.shape):
        up, down = table.copy(), table.copy()
        up[position] += eps
        down[position] -= eps
        expected[position] = (loss(up) - loss(down)) / (2 * eps)
    weight = Tensor(table, dtype=np.float64, requires_grad=True)
    embedding_lookup(weight, ids).backward(upstream)
    np.testing.assert_allclose(weight.grad.data, expected, rtol=1e-7, atol=1e-9)
    embedding_lookup(weight, np.array([1])).backward(np.ones((1, 2)))
    np.testing.assert_allclose(weight.grad.data[1], expected[1] + 1.0, rtol=1e-12, atol=1e-12)
    assert embedding_lookup(Tensor(np.ones((3, 5))), 2).shape == (5,)
    from_array = embedding_lookup(np.arange(6.0).reshape(3, 2), [2, 0])     # a plain array table works too
    np.testing.assert_array_equal(from_array.data, [[4.0, 5.0], [0.0, 1.0]])
    try:
        embedding_lookup(Tensor(np.ones((3, 5))), np.array([[0, 1], [7, 2]]))
    except ValueError as err:
        assert "7" in str(err) and "3" in str(err), str(err)
    else:
        raise AssertionError("id 7 with a vocabulary of 3 must raise ValueError")

test_hidden_embedding_finite_differences_and_accumulation_across_calls()
### END HIDDEN TESTS

# %% [markdown]
# ## Part 2: positions
#
# Attention compares every query with every key by a dot product: shuffle the positions of the
# input and the outputs are shuffled the same way, nothing else changes. A language model has to
# know that "dog bites man" is not "man bites dog", so each position `p` gets a vector that is
# **added** to the token's embedding. Two ways:
#
# **Fixed sinusoids** (the original Transformer): for `i = 0, 1, …, D/2 - 1`,
#
# ```
#   PE[p, 2i]     = sin(p / 10000^(2i/D))
#   PE[p, 2i + 1] = cos(p / 10000^(2i/D))
# ```
#
# Each pair of columns is a clock with its own period, from `2π` to `10000·2π` positions; no
# parameters, defined for any position. For an odd `D` the last column is a sine.
#
# **Learned** (GPT): a second embedding table indexed by position, `(max_len, D)`. It can learn
# whatever the data wants, but only for positions `< max_len`. `forward(seq_len, start=0)` returns
# the rows `start … start + seq_len - 1`: with a KV cache the new token sits at position
# `start = ` the number of cached tokens, not at 0. Asking for a position `≥ max_len` is a
# `ValueError` that says which positions were asked for and what `max_len` is.

# %% nbgrader={"grade": false, "grade_id": "positional-encodings", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def sinusoidal_positional_encoding(max_len: int, dim: int) -> np.ndarray:
    """(max_len, dim) float32: sin in even columns and cos in odd ones, periods growing geometrically."""
    max_len = _check_positive_int(max_len, "max_len", "sinusoidal_positional_encoding")
    dim = _check_positive_int(dim, "dim", "sinusoidal_positional_encoding")
    ### BEGIN SOLUTION
    positions = np.arange(max_len, dtype=np.float64)[:, None]
    pair_index = np.arange(0, dim, 2, dtype=np.float64)            # 2i for each sin/cos pair
    angles = positions / np.power(10000.0, pair_index / dim)        # (max_len, ceil(dim/2))
    encoding = np.zeros((max_len, dim), dtype=np.float64)
    encoding[:, 0::2] = np.sin(angles)
    encoding[:, 1::2] = np.cos(angles[:, :dim // 2])
    return encoding.astype(np.float32)
    ### END SOLUTION


class PositionalEmbedding:
    """A learned (max_len, dim) table; forward(seq_len, start) gives the rows of positions start.. start+seq_len-1."""

    def __init__(self, max_len: int, dim: int, seed: int | None = None, std: float = 0.02):
        self.max_len = _check_positive_int(max_len, "max_len", "PositionalEmbedding")
        self.dim = _check_positive_int(dim, "dim", "PositionalEmbedding")
        draws = np.random.default_rng(seed).normal(0.0, std, size=(self.max_len, self.dim))
        self.weight = Tensor(draws, dtype=np.float32, requires_grad=True)

    def forward(self, seq_len: int, start: int = 0) -> Tensor:
        """(seq_len, dim): the learned vectors of positions start, ..., start + seq_len - 1."""
        ### BEGIN SOLUTION
        seq_len = _check_positive_int(seq_len, "seq_len", "PositionalEmbedding")
        if isinstance(start, bool) or not isinstance(start, numbers.Integral) or start < 0:
            raise ValueError(f"PositionalEmbedding: start must be a non-negative integer, got {start!r}")
        if start + seq_len > self.max_len:
            raise ValueError(f"start={start} + seq_len={seq_len} positions do not fit max_len={self.max_len}: "
                             "shorten the sequence (or crop the context) or build a model with a larger max_len")
        return self.weight[start:start + seq_len]
        ### END SOLUTION

    def __call__(self, seq_len: int, start: int = 0) -> Tensor:
        return self.forward(seq_len, start)

    def parameters(self) -> list:
        return [self.weight]

    def __repr__(self) -> str:
        return f"PositionalEmbedding(max_len={self.max_len}, dim={self.dim})"

# %% [markdown]
# ### Test: the formula, element by element; the learned table's rows and errors

# %% nbgrader={"grade": true, "grade_id": "test-positional-encodings", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
def test_unit_sinusoidal_formula():
    for max_len, dim in [(6, 8), (5, 7)]:
        pe = sinusoidal_positional_encoding(max_len, dim)
        assert pe.shape == (max_len, dim) and pe.dtype == np.float32, (pe.shape, pe.dtype)
        for p in range(max_len):
            for column in range(dim):
                i = column // 2
                angle = p / 10000 ** (2 * i / dim)
                want = math.sin(angle) if column % 2 == 0 else math.cos(angle)
                assert abs(pe[p, column] - want) < 1e-6, f"PE[{p}, {column}] = {pe[p, column]}, expected {want}"

def test_unit_learned_positions():
    table = PositionalEmbedding(8, 3, seed=0)
    assert table.weight.shape == (8, 3) and table.weight.requires_grad
    np.testing.assert_array_equal(table(3).data, table.weight.data[0:3])
    np.testing.assert_array_equal(table(2, start=5).data, table.weight.data[5:7])
    try:
        table(3, start=6)
    except ValueError as err:
        assert "8" in str(err), f"the error names max_len: {err}"
    else:
        raise AssertionError("positions 6..8 with max_len=8 must raise ValueError")

test_unit_sinusoidal_formula()
test_unit_learned_positions()
### BEGIN HIDDEN TESTS
def test_hidden_positions_gradient_and_bounds():
    table = PositionalEmbedding(4, 2, seed=1)
    assert table(4).shape == (4, 2)
    table(2, start=1).backward(np.array([[1.0, 2.0], [3.0, 4.0]]))
    np.testing.assert_array_equal(table.weight.grad.data, [[0, 0], [1, 2], [3, 4], [0, 0]])
    try:
        table(5)
    except ValueError:
        pass
    else:
        raise AssertionError("5 positions with max_len=4 must raise ValueError")
    for bad_seq_len, bad_start in [(0, 0), (2, -1), (-1, 2)]:
        try:
            table(bad_seq_len, start=bad_start)
        except ValueError:
            continue
        raise AssertionError(f"seq_len={bad_seq_len}, start={bad_start} must raise ValueError")
    far = sinusoidal_positional_encoding(5000, 12)[4990:]           # large angles: float32 arithmetic drifts
    angles = np.arange(4990, 5000)[:, None] / 10000 ** (np.arange(0, 12, 2) / 12)
    np.testing.assert_allclose(far[:, 0::2], np.sin(angles), rtol=0, atol=2e-6)
    np.testing.assert_allclose(far[:, 1::2], np.cos(angles), rtol=0, atol=2e-6)
    pe = sinusoidal_positional_encoding(100, 16)
    np.testing.assert_allclose(pe[:, 14], np.sin(np.arange(100) / 10000 ** (14 / 16)), rtol=0, atol=1e-6)
    np.testing.assert_allclose(pe[:, 15], np.cos(np.arange(100) / 10000 ** (14 / 16)), rtol=0, atol=1e-6)

test_hidden_positions_gradient_and_bounds()
### END HIDDEN TESTS

# %% [markdown]
# ## Part 3: the causal mask
#
# A language model predicts token `t + 1` from tokens `0 … t`. If position `t` could attend to
# position `t + 1`, training would teach it to copy the answer. The mask is a boolean matrix,
# **`True` where attention is allowed**: query `i` may see key `j` when `j ≤ i`. A position
# always sees itself (the diagonal is `True`): without it, the first token would have nothing to
# attend to at all.
#
# With a KV cache, `past_len` tokens are already cached and `seq_len` new ones arrive. The keys
# are then `past_len + seq_len` long and new query `i` sits at absolute position `past_len + i`:
#
# ```
#   causal_mask(3)                    causal_mask(2, past_len=3)       (keys 0..4, queries at 3 and 4)
#   [[T, F, F],                       [[T, T, T, T, F],
#    [T, T, F],                        [T, T, T, T, T]]
#    [T, T, T]]
# ```

# %% nbgrader={"grade": false, "grade_id": "causal-mask", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def causal_mask(seq_len: int, past_len: int = 0) -> np.ndarray:
    """Boolean (seq_len, past_len + seq_len): True where query i may attend to key j (j <= past_len + i)."""
    seq_len = _check_positive_int(seq_len, "seq_len", "causal_mask")
    if isinstance(past_len, bool) or not isinstance(past_len, numbers.Integral) or past_len < 0:
        raise ValueError(f"causal_mask: past_len must be a non-negative integer, got {past_len!r}")
    ### BEGIN SOLUTION
    query_positions = past_len + np.arange(seq_len)[:, None]
    key_positions = np.arange(past_len + seq_len)[None, :]
    return key_positions <= query_positions
    ### END SOLUTION

# %% nbgrader={"grade": true, "grade_id": "test-causal-mask", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
def test_unit_causal_mask():
    mask = causal_mask(4)
    assert mask.dtype == bool and mask.shape == (4, 4), (mask.dtype, mask.shape)
    for i in range(4):
        for j in range(4):
            assert mask[i, j] == (j <= i), f"causal_mask(4)[{i}, {j}] should be {j <= i}"
    cached = causal_mask(2, past_len=3)
    assert cached.shape == (2, 5)
    np.testing.assert_array_equal(cached, [[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]])
    np.testing.assert_array_equal(causal_mask(1, past_len=4), [[1, 1, 1, 1, 1]])   # the new token sees itself

test_unit_causal_mask()

# %% [markdown]
# ## Part 4: scaled dot-product attention
#
# For queries `q (..., T_q, d)`, keys `k (..., T_k, d)` and values `v (..., T_k, d_v)`:
#
# ```
#   scores  = q @ kᵀ · (1/√d)                       (..., T_q, T_k)
#   scores  = scores + (0 where mask, −∞ elsewhere)  masked keys: exp(−∞) = 0 exactly
#   weights = softmax(scores, axis=−1)               over the KEYS: each query's row sums to 1
#   out     = weights @ v                            (..., T_q, d_v)
# ```
#
# - **Why `1/√d`.** With entries of unit variance, a dot product of length `d` has variance `d`.
#   Without the scale, at `d = 64` the scores spread over ±8 or more, the softmax saturates to
#   one-hot, and its gradient (`p(1 − p)`) vanishes.
# - **Stable softmax.** Module 02's `Softmax` subtracts each row's maximum before `exp`, so
#   scores of 1000 do not overflow. It also makes `−∞` safe: the maximum of a row is a finite
#   allowed score (every row has one: the position itself), so `−∞ − max = −∞` and `exp` gives 0.
# - **Mask before the softmax.** Zeroing weights *after* the softmax leaves rows that no longer
#   sum to 1: the output is a shrunken average, and the masked keys still received gradient
#   through the normalisation.
# - **Gradients for free.** Build it from recorded Tensor operations: `matmul` (module 03's
#   dispatch), `transpose` of the last two axes, `*` by the scale, `+` of the mask's bias array,
#   `Softmax(axis=-1)`. Module 06 has rules for all of them.
#
# `mask` is a boolean array (or Tensor) that broadcasts to `(..., T_q, T_k)`, `True` = may attend,
# with exactly `T_k` entries in its last axis (one per key: a mask for fewer keys, such as a
# `(1, 1)` mask against cached keys, must not broadcast silently over all of them).
# Reject anything else with a clear error: a non-boolean mask is a `TypeError` (a 0/1 float mask
# added to the scores would silently mean nothing), a shape that does not fit the scores
# is a `ValueError` naming both shapes, and so is a query row that may attend to nothing (its
# softmax would be `0/0`). Shapes of `q`, `k`, `v` that do not fit are `ValueError`s too.

# %% nbgrader={"grade": false, "grade_id": "scaled-dot-product-attention", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
def _check_attention_shapes(q: Tensor, k: Tensor, v: Tensor) -> None:
    if q.ndim < 2 or k.ndim != q.ndim or v.ndim != q.ndim:
        raise ValueError(f"attention needs q, k, v with the same number (>= 2) of dimensions (..., T, d), "
                         f"got shapes {q.shape}, {k.shape}, {v.shape}")
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ValueError(f"attention shape mismatch: q {q.shape}, k {k.shape}, v {v.shape}; q and k need the same "
                         "last dimension d, and k and v the same number of positions T_k")


def scaled_dot_product_attention(q, k, v, mask=None, return_weights: bool = False):
    """softmax(q kᵀ / √d + mask bias) v over the last two axes (..., T, d); mask: True = may attend.

    return_weights: also return the attention weights (..., T_q, T_k) as a second Tensor.
    """
    q, k, v = (t if isinstance(t, Tensor) else Tensor(t) for t in (q, k, v))
    _check_attention_shapes(q, k, v)
    ### BEGIN SOLUTION
    head_dim = q.shape[-1]
    last_two_swapped = (*range(k.ndim - 2), k.ndim - 1, k.ndim - 2)
    scores = matmul(q, k.transpose(*last_two_swapped)) * (1.0 / math.sqrt(head_dim))
    if mask is not None:
        allowed = np.asarray(mask.data if isinstance(mask, Tensor) else mask)
        if allowed.dtype != bool:
            raise TypeError(f"the attention mask must be boolean (True = may attend), got dtype {allowed.dtype}; "
                            "use causal_mask(...) or a comparison such as ids != pad_id")
        try:   # one mask entry per key: a key axis of size 1 would silently broadcast over every key
            fits = (allowed.ndim >= 1 and allowed.shape[-1] == scores.shape[-1]
                    and np.broadcast_shapes(allowed.shape, scores.shape) == scores.shape)
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(f"mask of shape {allowed.shape} does not fit the scores' shape {scores.shape} "
                             "(..., T_q, T_k): it needs T_k entries in its last axis and must broadcast to the "
                             "rest; with cached keys use causal_mask(T_q, past_len=T_k - T_q)")
        if not np.all(np.any(allowed, axis=-1)):
            raise ValueError("the mask lets some query attend to no key at all (a row of False): its softmax "
                             "would be 0/0; every query must be allowed at least one key, e.g. itself")
        scores = scores + np.where(allowed, 0.0, -np.inf).astype(scores.dtype)
    weights = Softmax(axis=-1)(scores)
    attended = matmul(weights, v)
    return (attended, weights) if return_weights else attended
    ### END SOLUTION

# %% [markdown]
# ### Test: against a loop reference, float64; gradients by finite differences; causality by gradients
#
# The reference computes one query at a time with Python loops and `math.exp`: for query `i`,
# `s_j = Σ_c q[i,c] k[j,c] / √d` over the allowed keys, then the weights and the weighted sum.
# `T_q ≠ T_k` in one case, so a softmax over the wrong axis cannot pass by symmetry.

# %% nbgrader={"grade": true, "grade_id": "test-scaled-dot-product-attention", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
def loop_attention(q, k, v, mask=None):
    """One query at a time, in float64, over the leading (batch) positions."""
    out = np.zeros(q.shape[:-1] + (v.shape[-1],))
    for batch in np.ndindex(q.shape[:-2]):
        for i in range(q.shape[-2]):
            allowed = [j for j in range(k.shape[-2]) if mask is None or mask[i, j]]
            scores = [sum(q[batch][i, c] * k[batch][j, c] for c in range(q.shape[-1])) / math.sqrt(q.shape[-1])
                      for j in allowed]
            top = max(scores)
            exps = [math.exp(s - top) for s in scores]
            for j, e in zip(allowed, exps):
                out[batch][i] += e / sum(exps) * v[batch][j]
    return out

def test_unit_attention_matches_loops():
    gen = np.random.default_rng(0)
    for q_shape, k_shape, v_shape, mask in [((2, 4, 3), (2, 4, 3), (2, 4, 5), None),
                                            ((2, 3, 4), (2, 5, 4), (2, 5, 2), None),
                                            ((1, 2, 5, 4), (1, 2, 5, 4), (1, 2, 5, 4), np.tril(np.ones((5, 5), dtype=bool))),
                                            ((2, 2, 6), (2, 4, 6), (2, 4, 3), np.array([[1, 1, 1, 0], [1, 1, 1, 1]], dtype=bool))]:
        q64, k64, v64 = (gen.standard_normal(s) * 2 for s in (q_shape, k_shape, v_shape))
        expected = loop_attention(q64, k64, v64, mask)
        got = scaled_dot_product_attention(*(Tensor(a, dtype=np.float64) for a in (q64, k64, v64)), mask=mask)
        assert got.shape == expected.shape, f"expected shape {expected.shape}, got {got.shape}"
        np.testing.assert_allclose(got.data, expected, rtol=1e-10, atol=1e-12,
                                   err_msg=f"attention of q {q_shape}, k {k_shape}, v {v_shape}, mask {mask is not None}")

def test_unit_attention_weights_and_stability():
    gen = np.random.default_rng(1)
    q, k, v = (Tensor(gen.standard_normal((3, 4)) * 300, dtype=np.float64) for _ in range(3))
    mask = np.tril(np.ones((3, 3), dtype=bool))
    out, weights = scaled_dot_product_attention(q, k, v, mask=mask, return_weights=True)
    assert np.all(np.isfinite(out.data)), "scores in the hundreds must not overflow: subtract the max"
    np.testing.assert_allclose(weights.data.sum(axis=-1), 1.0, rtol=0, atol=1e-12, err_msg="each query's weights sum to 1")
    assert np.all(weights.data[~mask] == 0.0), "masked keys get exactly zero weight"

def test_unit_attention_causal_by_gradients():
    gen = np.random.default_rng(2)
    length = 5
    for t in range(length - 1):
        x = Tensor(gen.standard_normal((1, length, 3)), dtype=np.float64, requires_grad=True)
        out = scaled_dot_product_attention(x, x, x, mask=np.tril(np.ones((length, length), dtype=bool)))
        upstream = np.zeros((1, length, 3))
        upstream[0, t] = gen.standard_normal(3)
        out.backward(upstream)                                  # d (upstream · output[t]) / d x
        assert np.all(x.grad.data[0, t + 1:] == 0.0), f"output[{t}] must not depend on inputs after {t}"
        assert np.any(x.grad.data[0, :t + 1] != 0.0), f"output[{t}] depends on inputs 0..{t}"

test_unit_attention_matches_loops()
test_unit_attention_weights_and_stability()
test_unit_attention_causal_by_gradients()
### BEGIN HIDDEN TESTS
def finite_difference(loss, arrays, which, eps=1e-6):
    arrays = [np.array(a, dtype=np.float64) for a in arrays]
    slope = np.zeros_like(arrays[which])
    for position in np.ndindex(arrays[which].shape):
        original = arrays[which][position]
        arrays[which][position] = original + eps
        above = loss(*arrays)
        arrays[which][position] = original - eps
        below = loss(*arrays)
        arrays[which][position] = original
        slope[position] = (above - below) / (2 * eps)
    return slope

def numpy_attention(q, k, v, mask):
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    scores = np.where(mask, scores, -np.inf)
    weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return (weights / weights.sum(axis=-1, keepdims=True)) @ v

def test_hidden_attention_gradients_and_errors():
    gen = np.random.default_rng(3)
    q64, k64, v64 = gen.standard_normal((2, 3, 4)), gen.standard_normal((2, 4, 4)), gen.standard_normal((2, 4, 2))
    mask = np.array([[1, 0, 0, 1], [1, 1, 0, 1], [1, 1, 1, 1]], dtype=bool)
    upstream = gen.standard_normal((2, 3, 2))
    tensors = [Tensor(a, dtype=np.float64, requires_grad=True) for a in (q64, k64, v64)]
    scaled_dot_product_attention(*tensors, mask=mask).backward(upstream)
    for which, name in enumerate("qkv"):
        expected = finite_difference(lambda q, k, v: np.sum(upstream * numpy_attention(q, k, v, mask)), [q64, k64, v64], which)
        np.testing.assert_allclose(tensors[which].grad.data, expected, rtol=1e-6, atol=1e-8, err_msg=f"gradient of {name}")
    for bad_mask, error in [(np.ones((3, 4)), TypeError), (np.ones((4, 3), dtype=bool), ValueError),
                            (np.ones((3, 1), dtype=bool), ValueError), (np.ones((1, 1), dtype=bool), ValueError),
                            (np.ones((2, 4), dtype=bool), ValueError), (np.array(True), ValueError),
                            (np.array([[0, 0, 0, 0], [1, 1, 1, 1], [1, 1, 1, 1]], dtype=bool), ValueError)]:
        try:
            scaled_dot_product_attention(q64, k64, v64, mask=bad_mask)
        except error as err:
            assert "mask" in str(err), f"the error is about the mask: {err}"
            continue
        raise AssertionError(f"mask {bad_mask.dtype} {bad_mask.shape} must raise {error.__name__}")
    key_mask = np.array([1, 1, 0, 1], dtype=bool)                  # one entry per key, shared by every query
    np.testing.assert_allclose(scaled_dot_product_attention(*(Tensor(a, dtype=np.float64) for a in (q64, k64, v64)), mask=key_mask).data,
                               numpy_attention(q64, k64, v64, np.broadcast_to(key_mask, (3, 4))), rtol=1e-10, atol=1e-12)
    try:
        scaled_dot_product_attention(q64, gen.standard_normal((2, 4, 3)), v64)
    except ValueError:
        pass
    else:
        raise AssertionError("q (..., 4) against k (..., 3) must raise ValueError")
    single = scaled_dot_product_attention(np.ones((1, 8)), np.ones((1, 8)), np.full((1, 2), 3.0))
    np.testing.assert_allclose(single.data, [[3.0, 3.0]], rtol=1e-6)

test_hidden_attention_gradients_and_errors()
### END HIDDEN TESTS

# %% [markdown]
# ## Part 5: multi-head attention, with a KV-cache path
#
# One head computes one weighted average per query. **Multi-head** attention runs `H` smaller
# heads side by side, each on its own `d = D / H` columns of the projections, so one head can
# follow the previous word while another follows the subject of the sentence. The cost is the
# same as one head of width `D`; the work is a reshape and a transpose:
#
# ```
#   x (B, T, D) ─ q_proj ─▶ (B, T, D) ─ reshape ─▶ (B, T, H, d) ─ transpose(0, 2, 1, 3) ─▶ (B, H, T, d)
#                                      attention over the last two axes, per (batch, head) ─▶ (B, H, T, d)
#   (B, H, T, d) ─ transpose(0, 2, 1, 3) ─▶ (B, T, H, d) ─ reshape ─▶ (B, T, D) ─ out_proj ─▶ (B, T, D)
# ```
#
# Head `h` owns columns `h·d … (h+1)·d − 1` of `Q`, `K` and `V`. Reshaping `(B, T, D)` straight
# to `(B, H, T, d)` *without* the transpose is the classic bug: the numbers fit, but each "head"
# then holds slices of several positions, so positions leak into each other (and the causal mask
# masks the wrong things).
#
# **The KV cache (modules 12 and 18).** When a model generates text one token at a time, the
# keys and values of the earlier tokens do not change, so recomputing them at every step is
# wasted work. `forward(x, mask=None, past_kv=None)` therefore returns **`(out, (k, v))`**: the
# output and this layer's keys and values for *all* positions so far, each `(B, H, T_total, d)`.
# Given `past_kv = (past_k, past_v)` from an earlier call, the new keys and values are
# concatenated after them (along the positions axis) **before** attention, so each new token
# attends to the cached tokens *and to itself*. The caller passes the matching mask,
# `causal_mask(T_new, past_len=T_past)`; a `(T_new, T_new)` mask does not fit `T_total` keys and
# is rejected by the attention's shape check.
#
# The concatenation is a new operation with its own gradient rule (given): the gradient of the
# joined tensor is split back at the seam.

# %%
#| export
@records("concat", "first", "second")   # module 01's seam: autograd records one concatenation
def concat(first, second, axis: int = -2) -> Tensor:
    """first and second joined along `axis` (all other dimensions equal), as a Tensor."""
    first_values = first.data if isinstance(first, Tensor) else np.asarray(first)
    second_values = second.data if isinstance(second, Tensor) else np.asarray(second)
    if first_values.ndim != second_values.ndim or any(
            a != b for i, (a, b) in enumerate(zip(first_values.shape, second_values.shape)) if i != axis % first_values.ndim):
        raise ValueError(f"cannot concatenate shapes {first_values.shape} and {second_values.shape} along axis {axis}: "
                         "every other dimension must be equal (are the cached keys from the same layer and batch?)")
    joined = np.concatenate([first_values, second_values], axis=axis)
    return Tensor(joined, dtype=joined.dtype)


@gradient_rule("concat")
def concat_backward(node: GraphNode, grad: np.ndarray) -> tuple:
    first, _ = node.arrays()
    axis = node.params["axis"] % grad.ndim
    seam = first.shape[axis]
    before, after = [slice(None)] * grad.ndim, [slice(None)] * grad.ndim
    before[axis], after[axis] = slice(0, seam), slice(seam, None)
    return grad[tuple(before)], grad[tuple(after)]

# %% [markdown]
# Write the three pieces of `MultiHeadAttention`:
#
# - `__init__`: reject a `dim` that `n_heads` does not divide with a `ValueError` that names both
#   and suggests a fix; build four `Linear(dim, dim)` layers, `q_proj`, `k_proj`, `v_proj`,
#   `out_proj`, seeded `seed, seed + 1, seed + 2, seed + 3` (all `None` when `seed` is `None`).
# - `split_heads(t)` `(B, T, D) → (B, H, T, d)` and `merge_heads(t)` `(B, H, T, d) → (B, T, D)`.
# - `forward(x, mask=None, past_kv=None)` as described above. `x` must be 3-D `(B, T, D)` with
#   `D = dim` (a `ValueError` otherwise).

# %% nbgrader={"grade": false, "grade_id": "multi-head-attention", "locked": false, "schema_version": 3, "solution": true, "task": false}
#| export
class MultiHeadAttention:
    """n_heads attention heads over (B, T, dim) inputs, with q/k/v/out projections and a past_kv path.

    forward(x, mask, past_kv) returns (out (B, T, dim), (k, v)), k and v (B, n_heads, T_past + T, dim // n_heads).
    """

    def __init__(self, dim: int, n_heads: int, seed: int | None = None):
        ### BEGIN SOLUTION
        self.dim = _check_positive_int(dim, "dim", "MultiHeadAttention")
        self.n_heads = _check_positive_int(n_heads, "n_heads", "MultiHeadAttention")
        if self.dim % self.n_heads != 0:
            raise ValueError(f"MultiHeadAttention: dim={self.dim} is not divisible by n_heads={self.n_heads}; "
                             "each head needs dim // n_heads columns: choose n_heads among the divisors of dim")
        self.head_dim = self.dim // self.n_heads
        seeds = [None if seed is None else seed + offset for offset in range(4)]
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (Linear(self.dim, self.dim, seed=s) for s in seeds)
        ### END SOLUTION

    def split_heads(self, t: Tensor) -> Tensor:
        """(B, T, dim) -> (B, n_heads, T, head_dim): head h gets columns h*head_dim .. (h+1)*head_dim - 1."""
        ### BEGIN SOLUTION
        batch, length, _ = t.shape
        return t.reshape(batch, length, self.n_heads, self.head_dim).transpose(0, 2, 1, 3)
        ### END SOLUTION

    def merge_heads(self, t: Tensor) -> Tensor:
        """(B, n_heads, T, head_dim) -> (B, T, dim): the inverse of split_heads."""
        ### BEGIN SOLUTION
        batch, _, length, _ = t.shape
        return t.transpose(0, 2, 1, 3).reshape(batch, length, self.dim)
        ### END SOLUTION

    def forward(self, x, mask=None, past_kv=None) -> tuple:
        """(out, (k, v)): attention of x's positions over past_kv's keys/values followed by x's own."""
        ### BEGIN SOLUTION
        x = x if isinstance(x, Tensor) else Tensor(x)
        if x.ndim != 3 or x.shape[-1] != self.dim:
            raise ValueError(f"{self!r} expects x of shape (batch, seq_len, {self.dim}), got {x.shape}")
        q = self.split_heads(self.q_proj(x))
        k = self.split_heads(self.k_proj(x))
        v = self.split_heads(self.v_proj(x))
        if past_kv is not None:
            past_k, past_v = past_kv
            k, v = concat(past_k, k, axis=2), concat(past_v, v, axis=2)
        attended = scaled_dot_product_attention(q, k, v, mask=mask)
        return self.out_proj(self.merge_heads(attended)), (k, v)
        ### END SOLUTION

    def __call__(self, x, mask=None, past_kv=None) -> tuple:
        return self.forward(x, mask=mask, past_kv=past_kv)

    def parameters(self) -> list:
        return [p for layer in (self.q_proj, self.k_proj, self.v_proj, self.out_proj) for p in layer.parameters()]

    def __repr__(self) -> str:
        return f"MultiHeadAttention(dim={self.dim}, n_heads={self.n_heads})"

# %% [markdown]
# ### Test: heads against a loop reference; the cache equals the full forward; gradients
#
# The reference reads the student's projection weights back, computes every head one query at a
# time with `math.exp` in float64, and concatenates the heads' columns before the output
# projection. For the cache, the same input is fed as a prefix then the rest, and token by token
# from an empty cache; each must reproduce the full causal forward on random weights.

# %% nbgrader={"grade": true, "grade_id": "test-multi-head-attention", "locked": true, "points": 5, "schema_version": 3, "solution": false, "task": false}
def as_float64(mha):
    """Replace the four projections' parameters by float64 copies; returns them as arrays (W, b) per layer."""
    arrays = []
    for layer in (mha.q_proj, mha.k_proj, mha.v_proj, mha.out_proj):
        weight, bias = np.array(layer.weight.data, dtype=np.float64), np.array(layer.bias.data, dtype=np.float64)
        layer.weight = Tensor(weight, dtype=np.float64, requires_grad=True)
        layer.bias = Tensor(bias + 0.1, dtype=np.float64, requires_grad=True)   # nonzero biases
        arrays.append((weight, bias + 0.1))
    return arrays

def loop_multi_head(x, arrays, n_heads, causal):
    (wq, bq), (wk, bk), (wv, bv), (wo, bo) = arrays
    batch, length, dim = x.shape
    head_dim = dim // n_heads
    q, k, v = x @ wq + bq, x @ wk + bk, x @ wv + bv
    heads = np.zeros((batch, length, dim))
    for b in range(batch):
        for h in range(n_heads):
            cols = slice(h * head_dim, (h + 1) * head_dim)
            for i in range(length):
                keys = range(i + 1) if causal else range(length)
                scores = [float(np.dot(q[b, i, cols], k[b, j, cols])) / math.sqrt(head_dim) for j in keys]
                exps = [math.exp(s - max(scores)) for s in scores]
                heads[b, i, cols] = sum(e / sum(exps) * v[b, j, cols] for j, e in zip(keys, exps))
    return heads @ wo + bo

def test_unit_multi_head_matches_loops():
    gen = np.random.default_rng(0)
    for dim, n_heads, causal in [(8, 2, False), (12, 3, True), (6, 1, True)]:
        mha = MultiHeadAttention(dim, n_heads, seed=dim)
        arrays = as_float64(mha)
        x64 = gen.standard_normal((2, 5, dim))
        mask = np.tril(np.ones((5, 5), dtype=bool)) if causal else None
        out, (k, v) = mha(Tensor(x64, dtype=np.float64), mask=mask)
        assert k.shape == (2, n_heads, 5, dim // n_heads) and v.shape == k.shape, f"keys (B, H, T, d), got {k.shape}"
        np.testing.assert_allclose(out.data, loop_multi_head(x64, arrays, n_heads, causal), rtol=1e-9, atol=1e-10,
                                   err_msg=f"MultiHeadAttention({dim}, {n_heads}), causal={causal}")

def test_unit_past_kv_equals_full_forward():
    gen = np.random.default_rng(1)
    mha = MultiHeadAttention(8, 2, seed=3)
    as_float64(mha)
    x64 = gen.standard_normal((2, 6, 8))
    full, _ = mha(Tensor(x64, dtype=np.float64), mask=causal_mask(6))
    assert np.std(full.data) > 1e-3, "random weights give a non-trivial output"
    prefix, cache = mha(Tensor(x64[:, :4], dtype=np.float64), mask=causal_mask(4))
    rest, cache = mha(Tensor(x64[:, 4:], dtype=np.float64), mask=causal_mask(2, past_len=4), past_kv=cache)
    assert cache[0].shape == (2, 2, 6, 4), f"the cache holds all 6 positions: {cache[0].shape}"
    np.testing.assert_allclose(prefix.data, full.data[:, :4], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(rest.data, full.data[:, 4:], rtol=1e-10, atol=1e-12,
                               err_msg="the positions after the cache must equal the full forward's")
    cache = None                                           # token by token, from an empty cache
    for t in range(6):
        step, cache = mha(Tensor(x64[:, t:t + 1], dtype=np.float64), mask=causal_mask(1, past_len=t), past_kv=cache)
        np.testing.assert_allclose(step.data, full.data[:, t:t + 1], rtol=1e-10, atol=1e-12,
                                   err_msg=f"step {t}: the new token attends to the cache and to itself")

def test_unit_multi_head_errors():
    try:
        MultiHeadAttention(10, 3)
    except ValueError as err:
        assert "10" in str(err) and "3" in str(err), f"the error names dim and n_heads: {err}"
    else:
        raise AssertionError("dim=10 with n_heads=3 must raise ValueError")
    mha = MultiHeadAttention(4, 2, seed=0)
    for bad in (np.ones((2, 3, 5)), np.ones((3, 4))):
        try:
            mha(bad)
        except ValueError as err:
            assert "batch" in str(err) and "4" in str(err), f"the error names the expected shape (batch, seq_len, 4): {err}"
            continue
        raise AssertionError(f"x of shape {bad.shape} must raise ValueError for dim=4")

def test_unit_multi_head_seeds():
    first, again, unseeded = MultiHeadAttention(8, 2, seed=5), MultiHeadAttention(8, 2, seed=5), MultiHeadAttention(8, 2)
    assert first.head_dim == 4 and isinstance(first.head_dim, int), f"head_dim = dim // n_heads, an int: {first.head_dim!r}"
    np.testing.assert_array_equal(first.q_proj.weight.data, again.q_proj.weight.data, err_msg="the same seed, the same weights")
    np.testing.assert_array_equal(first.out_proj.weight.data, again.out_proj.weight.data)
    assert not np.array_equal(first.q_proj.weight.data, first.k_proj.weight.data), "each projection gets its own seed"
    assert not np.array_equal(first.q_proj.weight.data, unseeded.q_proj.weight.data)

test_unit_multi_head_matches_loops()
test_unit_past_kv_equals_full_forward()
test_unit_multi_head_errors()
test_unit_multi_head_seeds()
### BEGIN HIDDEN TESTS
def test_hidden_multi_head_gradients_and_causality():
    gen = np.random.default_rng(2)
    mha = MultiHeadAttention(4, 2, seed=7)
    arrays = as_float64(mha)
    x64, upstream = gen.standard_normal((1, 3, 4)), gen.standard_normal((1, 3, 4))
    x = Tensor(x64, dtype=np.float64, requires_grad=True)
    out, _ = mha(x, mask=causal_mask(3))
    out.backward(upstream)
    eps = 1e-6
    def loss(x_values, arrays_now):
        return np.sum(upstream * loop_multi_head(x_values, arrays_now, 2, True))
    expected_x = np.zeros_like(x64)
    for position in np.ndindex(x64.shape):
        up, down = x64.copy(), x64.copy()
        up[position] += eps
        down[position] -= eps
        expected_x[position] = (loss(up, arrays) - loss(down, arrays)) / (2 * eps)
    np.testing.assert_allclose(x.grad.data, expected_x, rtol=1e-6, atol=1e-8, err_msg="gradient of the input")
    for layer_index, layer in enumerate((mha.q_proj, mha.k_proj, mha.v_proj, mha.out_proj)):
        weight = arrays[layer_index][0]
        expected_w = np.zeros_like(weight)
        for position in np.ndindex(weight.shape):
            changed = [(w.copy(), b) for w, b in arrays]
            changed[layer_index][0][position] += eps
            above = loss(x64, changed)
            changed[layer_index][0][position] -= 2 * eps
            below = loss(x64, changed)
            expected_w[position] = (above - below) / (2 * eps)
        np.testing.assert_allclose(layer.weight.grad.data, expected_w, rtol=1e-6, atol=1e-8,
                                   err_msg=f"gradient of projection {layer_index}'s weight")
    for t in range(2):
        x = Tensor(gen.standard_normal((2, 4, 4)), dtype=np.float64, requires_grad=True)
        out, _ = mha(x, mask=causal_mask(4))
        picked = np.zeros((2, 4, 4))
        picked[:, t] = 1.0
        out.backward(picked)
        assert np.all(x.grad.data[:, t + 1:] == 0.0), f"output[{t}] must not depend on later inputs"
        assert np.all(np.abs(x.grad.data[:, :t + 1]).sum(axis=-1) > 0)
    try:
        mha(np.ones((1, 2, 4)), mask=causal_mask(2), past_kv=mha(np.ones((1, 3, 4)))[1])
    except ValueError:
        pass
    else:
        raise AssertionError("a (2, 2) mask against 5 keys (3 cached) must raise ValueError")
    assert len(mha.parameters()) == 8

test_hidden_multi_head_gradients_and_causality()
### END HIDDEN TESTS

# %% [markdown]
# ## Analysis: attention is quadratic in the sequence length
#
# The scores and the weights are `(T, T)` per head: doubling the context quadruples their memory
# and the work of the two products (`2·T²·d` multiply-adds each), while the projections grow only
# linearly (`T·D²`). Below, one attention call with `H` heads of width `d` (no projections) is
# timed for a few `T` (median of repeats, one BLAS thread), and tracemalloc measures the peak
# memory of the forward with the graph recorded. The time divided by `T²` should level off as
# `T` grows: that is the quadratic term taking over. The last column counts the peak in units of one
# `(H, T, T)` score array: the graph keeps several of them alive for backward (the scores, the
# scaled and the masked scores, the softmax output), plus the `(T, T)` mask and its bias, so
# training memory is a small multiple of `H·T²` per layer. This is why long-context models need tricks
# (FlashAttention computes the softmax in tiles and never stores the `(T, T)` matrix).

# %%
import os
import statistics
import timeit
import tracemalloc

from threadpoolctl import threadpool_info, threadpool_limits

QUICK = os.environ.get("TITO_AUTOGRADING") == "1"   # shrink sizes and repeats while grading

heads, head_dim = 4, 32
lengths = (32, 64, 128) if QUICK else (64, 128, 256, 512, 1024)
repeats = 3 if QUICK else 7
blas = [f"{p.get('internal_api')} ({p.get('architecture', '?')})" for p in threadpool_info() if p.get("user_api") == "blas"]
print(f"BLAS: {', '.join(blas) or 'none found'}; 1 thread; median of {repeats} repeats; H={heads}, d={head_dim}, float32")
print(f"{'T':>6} {'forward (ms)':>13} {'ms / T^2 x1e4':>14} {'peak (MiB)':>11} {'scores (MiB)':>13} {'peak / scores':>14}")
with threadpool_limits(limits=1, user_api="blas"):
    for length in lengths:
        gen = np.random.default_rng(length)
        q, k, v = (Tensor(gen.standard_normal((1, heads, length, head_dim)).astype(np.float32), requires_grad=True)
                   for _ in range(3))
        mask = causal_mask(length)
        def forward():
            return scaled_dot_product_attention(q, k, v, mask=mask)
        forward()                                                       # warm-up
        seconds = statistics.median(timeit.repeat(forward, number=1, repeat=repeats))
        tracemalloc.start()
        kept = forward()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        del kept
        scores_bytes = heads * length * length * 4
        print(f"{length:>6} {seconds * 1e3:>13.3f} {seconds * 1e3 / length**2 * 1e4:>14.4f} {peak / 2**20:>11.2f} "
              f"{scores_bytes / 2**20:>13.2f} {peak / scores_bytes:>14.1f}")

# %% [markdown]
# ## What you built
#
# * `Embedding` and its scatter-add gradient (`np.add.at`: repeated ids accumulate), fixed
#   sinusoidal and learned positional encodings, and `causal_mask` with a `past_len` for cached keys.
# * `scaled_dot_product_attention`, composed of recorded operations, so module 06 differentiates
#   it; checked against loops, finite differences, and causality by gradients.
# * `MultiHeadAttention` whose `forward(x, mask, past_kv)` returns `(out, (k, v))`: module 12's
#   GPT stacks it, and module 18's KV cache feeds the keys and values back in.
