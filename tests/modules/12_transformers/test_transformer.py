"""Package tests for tinytorch.models.transformer: LayerNorm against NumPy and finite differences,
the MLP and the pre-LN block against a float64 NumPy reference, GPT's past_kv path against the full
forward (random and trained weights, every position), causality by gradients, sampling, save/load,
the bigram baseline and a short training run on a real play. PyTorch, where installed, is a
second oracle for the block and the model's loss."""

import math

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import tinytorch.core.autograd  # noqa: F401  (installs the recorder and Tensor.backward)
from tinytorch.core.attention import MultiHeadAttention, causal_mask
from tinytorch.core.tensor import Tensor
from tinytorch.models.transformer import (
    GPT,
    MLP,
    LayerNorm,
    TransformerBlock,
    bigram_loss,
    evaluate_loss,
    language_model_loss,
    layer_norm,
    next_token_probabilities,
    random_windows,
    train_char_gpt,
)
from tinytorch.text.tokenization import CharTokenizer, load_shakespeare, split_by_position


@pytest.fixture(autouse=True)
def one_blas_thread():
    with threadpool_limits(limits=1, user_api="blas"):
        yield


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


def reference_layer_norm(x, gamma, beta, eps=1e-5):
    mean = x.mean(axis=-1, keepdims=True)
    variance = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(variance + eps) * gamma + beta


def reference_gelu(z):
    return 0.5 * z * (1 + np.tanh(math.sqrt(2 / math.pi) * (z + 0.044715 * z**3)))


def weights_of(block):
    read = lambda t: np.array(t.data, dtype=np.float64)  # noqa: E731
    w = {"ln1": (read(block.ln1.gamma), read(block.ln1.beta)), "ln2": (read(block.ln2.gamma), read(block.ln2.beta))}
    for name, layer in (("q", block.attn.q_proj), ("k", block.attn.k_proj), ("v", block.attn.v_proj),
                        ("o", block.attn.out_proj), ("fc1", block.mlp.fc1), ("fc2", block.mlp.fc2)):
        w[name] = (read(layer.weight), read(layer.bias))
    return w


def to_float64(block, seed):
    """Float64 parameters with random LayerNorm gamma/beta and nonzero biases, so every term matters."""
    gen = np.random.default_rng(seed)
    for ln in (block.ln1, block.ln2):
        ln.gamma = Tensor(1 + 0.3 * gen.standard_normal(block.dim), dtype=np.float64, requires_grad=True)
        ln.beta = Tensor(0.2 * gen.standard_normal(block.dim), dtype=np.float64, requires_grad=True)
    for layer in (block.attn.q_proj, block.attn.k_proj, block.attn.v_proj, block.attn.out_proj,
                  block.mlp.fc1, block.mlp.fc2):
        layer.weight = Tensor(layer.weight.data.astype(np.float64), dtype=np.float64, requires_grad=True)
        layer.bias = Tensor(0.1 * gen.standard_normal(layer.out_features), dtype=np.float64, requires_grad=True)
    return weights_of(block)


def reference_block(x, w, n_heads):
    """Pre-LN block in float64 with einsum attention (shares no code with the module)."""
    b, t, d = x.shape
    hd = d // n_heads
    a = reference_layer_norm(x, *w["ln1"])
    split = lambda z: z.reshape(b, t, n_heads, hd).transpose(0, 2, 1, 3)  # noqa: E731
    q, k, v = (split(a @ w[n][0] + w[n][1]) for n in "qkv")
    scores = np.einsum("bhid,bhjd->bhij", q, k) / math.sqrt(hd)
    scores = np.where(np.tril(np.ones((t, t), dtype=bool)), scores, -np.inf)
    p = np.exp(scores - scores.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    heads = np.einsum("bhij,bhjd->bhid", p, v).transpose(0, 2, 1, 3).reshape(b, t, d)
    h = x + heads @ w["o"][0] + w["o"][1]
    return h + reference_gelu(reference_layer_norm(h, *w["ln2"]) @ w["fc1"][0] + w["fc1"][1]) @ w["fc2"][0] + w["fc2"][1]


def reference_gpt(model, tokens):
    x = model.token_embedding.weight.data.astype(np.float64)[tokens]
    x = x + model.position_embedding.weight.data.astype(np.float64)[: tokens.shape[1]]
    for block in model.blocks:
        x = reference_block(x, weights_of(block), model.n_heads)
    ln = reference_layer_norm(x, model.ln_f.gamma.data.astype(np.float64), model.ln_f.beta.data.astype(np.float64))
    return ln @ model.head.weight.data.astype(np.float64) + model.head.bias.data


def perturb_layer_norms(model, seed):
    gen = np.random.default_rng(seed)
    for ln in [model.ln_f] + [b.ln1 for b in model.blocks] + [b.ln2 for b in model.blocks]:
        ln.gamma.data[...] = 1 + 0.3 * gen.standard_normal(model.dim)
        ln.beta.data[...] = 0.3 * gen.standard_normal(model.dim)


# --- LayerNorm -----------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(4,), (3, 4), (2, 5, 8), (2, 3, 4, 6)])
def test_layer_norm_matches_numpy_formula(shape):
    gen = np.random.default_rng(len(shape))
    x, gamma, beta = gen.standard_normal(shape) * 3 + 1, gen.standard_normal(shape[-1]), gen.standard_normal(shape[-1])
    out = layer_norm(Tensor(x, dtype=np.float64), Tensor(gamma, dtype=np.float64), Tensor(beta, dtype=np.float64))
    assert out.dtype == np.float64 and out.shape == shape
    np.testing.assert_allclose(out.data, reference_layer_norm(x, gamma, beta), rtol=1e-12, atol=1e-12)


def test_layer_norm_eps_is_inside_the_square_root_and_variance_is_biased():
    x = np.array([[1.0, 1.0 + 1e-4, 1.0 - 1e-4, 1.0]])
    out = layer_norm(Tensor(x, dtype=np.float64), Tensor(np.ones(4), dtype=np.float64), Tensor(np.zeros(4), dtype=np.float64))
    np.testing.assert_allclose(out.data, (x - 1.0) / np.sqrt(np.var(x) + 1e-5), rtol=1e-10)
    y = np.arange(4.0)[None]
    out = layer_norm(Tensor(y, dtype=np.float64), Tensor(np.ones(4), dtype=np.float64), Tensor(np.zeros(4), dtype=np.float64))
    np.testing.assert_allclose(out.data, (y - 1.5) / np.sqrt(1.25 + 1e-5), rtol=1e-12)


def test_layer_norm_gradients_by_finite_differences():
    gen = np.random.default_rng(0)
    x, gamma, beta = gen.standard_normal((2, 3, 6)), gen.standard_normal(6), gen.standard_normal(6)
    upstream = gen.standard_normal((2, 3, 6))
    tensors = [Tensor(a, dtype=np.float64, requires_grad=True) for a in (x, gamma, beta)]
    layer_norm(*tensors, eps=1e-3).backward(upstream)
    for tensor, values in zip(tensors, (x, gamma, beta)):
        expected = finite_differences(lambda: np.sum(upstream * reference_layer_norm(x, gamma, beta, eps=1e-3)), values)
        np.testing.assert_allclose(tensor.grad.data, expected, rtol=1e-6, atol=1e-8)


def test_layer_norm_float32_stays_float32_and_rejects_a_wrong_width():
    layer = LayerNorm(8)
    out = layer(Tensor(np.random.default_rng(1).standard_normal((4, 8)).astype(np.float32)))
    assert out.dtype == np.float32
    with pytest.raises(ValueError, match="8"):
        layer(np.ones((2, 7), dtype=np.float32))
    with pytest.raises(ValueError):
        LayerNorm(4, eps=0)


# --- MLP and block --------------------------------------------------------------------------------

def test_mlp_is_fc2_gelu_fc1():
    mlp = MLP(5, seed=0)
    assert mlp.hidden == 20 and isinstance(mlp.fc1.weight, Tensor)
    x = np.random.default_rng(2).standard_normal((3, 5)).astype(np.float32)
    w1, b1, w2, b2 = (np.asarray(p.data, dtype=np.float64) for p in mlp.parameters())
    np.testing.assert_allclose(mlp(Tensor(x)).data, reference_gelu(x @ w1 + b1) @ w2 + b2, rtol=1e-4, atol=1e-5)


def test_block_matches_reference_and_is_pre_ln():
    block = TransformerBlock(12, 3, seed=1)
    w = to_float64(block, seed=2)
    x = np.random.default_rng(3).standard_normal((2, 6, 12))
    out, (k, v) = block(Tensor(x, dtype=np.float64), mask=causal_mask(6))
    np.testing.assert_allclose(out.data, reference_block(x, w, 3), rtol=1e-10, atol=1e-10)
    assert k.shape == v.shape == (2, 3, 6, 4)


def test_block_gradients_by_finite_differences():
    block = TransformerBlock(4, 2, seed=4)
    w = to_float64(block, seed=5)
    gen = np.random.default_rng(6)
    x, upstream = gen.standard_normal((2, 3, 4)), gen.standard_normal((2, 3, 4))
    xt = Tensor(x, dtype=np.float64, requires_grad=True)
    block(xt, mask=causal_mask(3))[0].backward(upstream)
    np.testing.assert_allclose(xt.grad.data, finite_differences(lambda: np.sum(upstream * reference_block(x, w, 2)), x),
                               rtol=1e-6, atol=1e-8)
    for name, param_of in [("ln2.beta", lambda b: b.ln2.beta), ("attn.v_proj.weight", lambda b: b.attn.v_proj.weight),
                           ("mlp.fc1.bias", lambda b: b.mlp.fc1.bias)]:
        param = param_of(block)
        values = param.data               # the reference reads the same array through `w`
        source = {"ln2.beta": w["ln2"][1], "attn.v_proj.weight": w["v"][0], "mlp.fc1.bias": w["fc1"][1]}[name]
        expected = finite_differences(lambda: np.sum(upstream * reference_block(x, w, 2)), source)
        np.testing.assert_allclose(param.grad.data, expected, rtol=1e-6, atol=1e-8, err_msg=name)
        assert values.shape == source.shape


def test_block_against_pytorch():
    torch = pytest.importorskip("torch")
    block = TransformerBlock(8, 2, seed=7)
    w = to_float64(block, seed=8)
    x = np.random.default_rng(9).standard_normal((2, 5, 8))
    a = torch.nn.functional.layer_norm(torch.from_numpy(x), (8,), torch.from_numpy(w["ln1"][0]), torch.from_numpy(w["ln1"][1]))
    lin = lambda z, n: z @ torch.from_numpy(w[n][0]) + torch.from_numpy(w[n][1])  # noqa: E731
    split = lambda z: z.view(2, 5, 2, 4).transpose(1, 2)  # noqa: E731
    att = torch.nn.functional.scaled_dot_product_attention(split(lin(a, "q")), split(lin(a, "k")), split(lin(a, "v")),
                                                           is_causal=True)
    h = torch.from_numpy(x) + lin(att.transpose(1, 2).reshape(2, 5, 8), "o")
    m = torch.nn.functional.layer_norm(h, (8,), torch.from_numpy(w["ln2"][0]), torch.from_numpy(w["ln2"][1]))
    expected = h + lin(torch.nn.functional.gelu(lin(m, "fc1"), approximate="tanh"), "fc2")
    out, _ = block(Tensor(x, dtype=np.float64), mask=causal_mask(5))
    np.testing.assert_allclose(out.data, expected.numpy(), rtol=1e-10, atol=1e-10)


# --- GPT ------------------------------------------------------------------------------------------

def test_gpt_logits_match_reference():
    model = GPT(vocab_size=17, dim=16, n_layers=3, n_heads=4, max_seq_len=12, seed=3)
    perturb_layer_norms(model, seed=4)
    tokens = np.random.default_rng(5).integers(0, 17, size=(2, 12))
    logits, kv = model(tokens)
    assert logits.shape == (2, 12, 17) and len(kv) == 3 and kv[2][1].shape == (2, 4, 12, 4)
    np.testing.assert_allclose(logits.data, reference_gpt(model, tokens), rtol=1e-4, atol=1e-4)


def test_gpt_public_attributes_for_later_modules():
    model = GPT(vocab_size=9, dim=8, n_layers=2, n_heads=2, max_seq_len=5, seed=0)
    assert (model.vocab_size, model.dim, model.n_layers, model.n_heads, model.head_dim, model.max_seq_len) == (9, 8, 2, 2, 4, 5)
    assert isinstance(model.blocks, list) and all(isinstance(b, TransformerBlock) for b in model.blocks)
    assert isinstance(model.blocks[0].attn, MultiHeadAttention) and isinstance(model.ln_f, LayerNorm)
    assert model.position_embedding(2, 3).shape == (2, 8)
    names = [name for name, _ in model.named_parameters()]
    assert len(names) == len(set(names)) == len(model.parameters())
    assert all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("prefix", [1, 4, 7])
def test_gpt_past_kv_equals_full_forward_random_weights(prefix):
    model = GPT(vocab_size=11, dim=12, n_layers=2, n_heads=3, max_seq_len=9, seed=prefix)
    perturb_layer_norms(model, seed=0)
    tokens = np.random.default_rng(prefix).integers(0, 11, size=(3, 9))
    full, _ = model(tokens)
    assert np.std(full.data, axis=1).min() > 1e-3, "logits vary along the sequence"
    first, cache = model(tokens[:, :prefix])
    np.testing.assert_allclose(first.data, full.data[:, :prefix], rtol=1e-5, atol=1e-5)
    for t in range(prefix, 9):
        step, cache = model(tokens[:, t:t + 1], past_kv=cache)
        np.testing.assert_allclose(step.data[:, 0], full.data[:, t], rtol=1e-5, atol=1e-5, err_msg=f"position {t}")
    assert cache[0][0].shape == (3, 3, 9, 4)


def test_gpt_causality_by_gradients_of_the_embeddings():
    model = GPT(vocab_size=8, dim=8, n_layers=2, n_heads=2, max_seq_len=7, seed=1)
    tokens = np.array([[0, 1, 2, 3, 4, 5, 6]])
    for t in range(6):
        model.position_embedding.weight.grad = None
        logits, _ = model(tokens)
        upstream = np.zeros(logits.shape, dtype=np.float32)
        upstream[0, t] = 1.0
        upstream[0, t, 0] = -3.0
        logits.backward(upstream)
        grad = model.position_embedding.weight.grad.data
        assert np.all(grad[t + 1:] == 0.0)
        assert np.all(np.abs(grad[:t + 1]).sum(axis=1) > 0)


def test_gpt_bad_input_errors_say_what_to_do():
    model = GPT(vocab_size=6, dim=8, n_layers=1, n_heads=2, max_seq_len=4, seed=0)
    with pytest.raises(ValueError, match="max_seq_len=4"):
        model(np.zeros((1, 5), dtype=np.int64))
    _, cache = model(np.zeros((1, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="3 cached"):
        model(np.zeros((1, 2), dtype=np.int64), past_kv=cache)
    with pytest.raises(ValueError, match="out of range for vocab_size=6"):
        model(np.array([[1, 6]]))
    with pytest.raises(ValueError, match="out of range"):
        model(np.array([[-2, 1]]))
    with pytest.raises(TypeError):
        model(np.array([[0.5, 1.0]]))
    with pytest.raises(ValueError, match="batch, seq_len"):
        model(np.array([1, 2]))
    with pytest.raises(ValueError, match="divisible"):
        GPT(6, 10, 1, 4, 8)
    with pytest.raises(ValueError, match="past_kv"):
        model(np.zeros((1, 1), dtype=np.int64), past_kv=cache * 2)
    with pytest.raises(ValueError, match="batch=2"):
        model(np.zeros((2, 1), dtype=np.int64), past_kv=cache)


def test_save_load_round_trip(tmp_path):
    model = GPT(vocab_size=7, dim=8, n_layers=2, n_heads=2, max_seq_len=6, seed=2)
    perturb_layer_norms(model, seed=1)
    path = model.save(tmp_path / "gpt.npz")
    loaded = GPT.load(path)
    assert loaded.config() == model.config()
    for (name, a), (other, b) in zip(model.named_parameters(), loaded.named_parameters()):
        assert name == other
        np.testing.assert_array_equal(a.data, b.data)
    tokens = np.array([[1, 2, 3, 4]])
    np.testing.assert_array_equal(loaded(tokens)[0].data, model(tokens)[0].data)
    np.savez(tmp_path / "other.npz", weights=np.ones(3))
    with pytest.raises(ValueError, match="not a GPT checkpoint"):
        GPT.load(tmp_path / "other.npz")


# --- sampling -------------------------------------------------------------------------------------

def test_probabilities_top_k_temperature_and_greedy():
    logits = np.array([1.0, 4.0, 2.5, -1.0, 0.0])
    for k in range(1, 6):
        probs = next_token_probabilities(logits, top_k=k)
        kept = np.argsort(-logits)[:k]
        assert np.count_nonzero(probs) == k and set(np.flatnonzero(probs)) == set(kept)
        np.testing.assert_allclose(probs[kept], np.exp(logits[kept]) / np.exp(logits[kept]).sum(), rtol=1e-12)
    hot = next_token_probabilities(logits, temperature=1e-3)
    np.testing.assert_allclose(hot, np.eye(5)[1], atol=1e-12)
    np.testing.assert_array_equal(next_token_probabilities(logits, temperature=0.0), np.eye(5)[1])
    flat = next_token_probabilities(logits, temperature=1e6)
    np.testing.assert_allclose(flat, 0.2, atol=1e-5)
    with pytest.raises(ValueError, match="top_k"):
        next_token_probabilities(logits, top_k=6)
    with pytest.raises(ValueError, match="temperature"):
        next_token_probabilities(logits, temperature=-1.0)


def test_generate_is_deterministic_and_cache_agrees():
    model = GPT(vocab_size=10, dim=8, n_layers=2, n_heads=2, max_seq_len=8, seed=3)
    perturb_layer_norms(model, seed=2)
    for seed in (0, 1):
        plain = model.generate([1, 2, 3], 12, temperature=0.9, top_k=4, seed=seed)
        cached = model.generate([1, 2, 3], 12, temperature=0.9, top_k=4, seed=seed, use_cache=True)
        np.testing.assert_array_equal(plain, cached)
        np.testing.assert_array_equal(plain, model.generate([1, 2, 3], 12, temperature=0.9, top_k=4, seed=seed))
        assert plain.dtype == np.int64 and plain.shape == (15,) and list(plain[:3]) == [1, 2, 3]
    samples = {tuple(model.generate([0], 6, seed=s)) for s in range(6)}
    assert len(samples) > 1, "different seeds give different samples"
    with pytest.raises(ValueError, match="1-D"):
        model.generate([[1, 2]], 3)
    with pytest.raises(ValueError):
        model.generate([1], -1)


def test_generate_top_k_samples_only_top_tokens():
    model = GPT(vocab_size=12, dim=8, n_layers=1, n_heads=2, max_seq_len=16, seed=5)
    out = model.generate([3], 15, temperature=5.0, top_k=3, seed=0)
    for position in range(1, 16):
        logits, _ = model(out[None, :position])
        assert out[position] in set(np.argsort(-logits.data[0, -1])[:3])


# --- baseline and training -----------------------------------------------------------------------

def test_bigram_loss_matches_counting():
    gen = np.random.default_rng(0)
    train, val = gen.integers(0, 5, 300), gen.integers(0, 5, 80)
    counts = np.zeros((5, 5))
    for a, b in zip(train[:-1], train[1:]):
        counts[a, b] += 1
    probs = (counts + 0.5) / (counts.sum(axis=1, keepdims=True) + 2.5)
    expected = -np.mean([math.log(probs[a, b]) for a, b in zip(val[:-1], val[1:])])
    assert bigram_loss(train, val, 5, smoothing=0.5) == pytest.approx(expected, abs=1e-12)
    with pytest.raises(ValueError, match="smoothing"):
        bigram_loss(train, val, 5, smoothing=0.0)


def test_evaluate_loss_scores_every_target_once():
    model = GPT(vocab_size=6, dim=8, n_layers=1, n_heads=2, max_seq_len=4, seed=0)
    ids = np.random.default_rng(1).integers(0, 6, 11)          # 10 targets: windows 4, 4, 2
    by_hand = 0.0
    for start, length in [(0, 4), (4, 4), (8, 2)]:
        logits, _ = model(ids[None, start:start + length])
        z = logits.data[0].astype(np.float64)
        logp = z - z.max(axis=1, keepdims=True) - np.log(np.exp(z - z.max(axis=1, keepdims=True)).sum(axis=1, keepdims=True))
        by_hand -= logp[np.arange(length), ids[start + 1:start + length + 1]].sum()
    assert evaluate_loss(model, ids) == pytest.approx(by_hand / 10, rel=1e-5)


def test_random_windows_are_shifted_by_one():
    ids = np.arange(50)
    inputs, targets = random_windows(ids, 4, 8, np.random.default_rng(0))
    assert inputs.shape == targets.shape == (4, 8)
    np.testing.assert_array_equal(targets, inputs + 1)


def test_short_training_on_a_play_lowers_the_validation_loss():
    text = load_shakespeare("macbeth")[:30_000]
    tokenizer = CharTokenizer(text)
    train, val = split_by_position(np.array(tokenizer.encode(text)), 0.1)
    model = GPT(tokenizer.vocab_size, dim=32, n_layers=1, n_heads=2, max_seq_len=32, seed=0)
    start = evaluate_loss(model, val)
    assert start > math.log(tokenizer.vocab_size) - 0.5, "an untrained model is no better than uniform"
    history = train_char_gpt(model, train, 60, batch_size=16, lr=1e-2, seed=0, val_ids=val)
    assert history["val_loss"][-1][1] < start - 1.0
    assert len(history["train_loss"]) == 60
    loss = language_model_loss(model, *random_windows(train, 2, 8, np.random.default_rng(0)))
    assert loss.shape == () and np.isfinite(float(loss.data))
