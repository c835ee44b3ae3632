"""Mimetic attention (Trockman & Kolter 2023): the products W_q W_k^T and W_v W_o against the paper's targets.

The random matrices are regenerated here from berry's documented keys, and the paper's construction
(truncated SVD per head for q/k, exact for v/o) is recomputed with NumPy, for every supported layout.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402

import berry  # noqa: E402
from berry.torch import schemes  # noqa: E402
from berry.torch.models import Transformer  # noqa: E402


def targets(seed: int, q_name: str, v_name: str, d: int, heads: int, a1=0.7, b1=0.7, a2=0.4, b2=0.4):
    """Per head, the best rank-k approximation of a1 Z1 + b1 I; and a2 Z2 - b2 I, with Z ~ N(0, I/d)."""
    k = d // heads
    z1 = berry.sample((heads, d, d), std=1.0, seed=seed, name=f"{q_name}[mimetic Z1]", dtype="float64") / math.sqrt(d)
    z2 = berry.sample((d, d), std=1.0, seed=seed, name=f"{v_name}[mimetic Z2]", dtype="float64") / math.sqrt(d)
    qk = []
    for h in range(heads):
        u, s, vh = np.linalg.svd(a1 * z1[h] + b1 * np.eye(d))
        qk.append((u[:, :k] * s[:k]) @ vh[:k])
    return qk, a2 * z2 - b2 * np.eye(d)


def products(wq: np.ndarray, wk: np.ndarray, wv: np.ndarray, wo: np.ndarray, heads: int):
    """In torch's (out, in) layout: per-head W_q^h W_k^h^T (x-row convention) and W_v W_o."""
    k = wq.shape[0] // heads
    qk = [wq[h * k:(h + 1) * k].T @ wk[h * k:(h + 1) * k] for h in range(heads)]
    return qk, wv.T @ wo.T


def check(qk, vo, want_qk, want_vo) -> None:
    for got, want in zip(qk, want_qk, strict=True):
        assert np.allclose(got, want, atol=2e-5)
    assert np.allclose(vo, want_vo, atol=2e-5)


def test_nanogpt_packed_layout():
    model = Transformer(n_layer=2, n_embd=32, n_head=4)
    report = schemes.mimetic(model, seed=3)
    assert report.preset == "gpt2" and report.constants["layers"] == 2
    for i, block in enumerate(model.blocks):
        w = block.attn.c_attn.weight.detach().double().numpy()
        wo = block.attn.c_proj.weight.detach().double().numpy()
        name = f"transformer.h.{i}.attn.c_attn.weight"
        check(*products(w[:32], w[32:64], w[64:], wo, 4), *targets(3, name, name, 32, 4))
        assert not block.attn.c_attn.bias.any() and not block.attn.c_proj.bias.any()


def test_torch_multihead_attention_and_other_constants():
    mha = nn.MultiheadAttention(24, 3)
    schemes.mimetic(mha, seed=0, alpha1=0.5, beta1=1.0, alpha2=0.2, beta2=0.9)
    w = mha.in_proj_weight.detach().double().numpy()
    wo = mha.out_proj.weight.detach().double().numpy()
    want = targets(0, "in_proj_weight", "in_proj_weight", 24, 3, 0.5, 1.0, 0.2, 0.9)
    check(*products(w[:24], w[24:48], w[48:], wo, 3), *want)


def test_separate_projections_llama_names_with_heads_given():
    layer = nn.Module()
    layer.self_attn = nn.Module()
    for p in ("q_proj", "k_proj", "v_proj", "o_proj"):
        layer.self_attn.add_module(p, nn.Linear(16, 16, bias=False))
    model = nn.ModuleDict({"layers": nn.ModuleList([layer])})
    with pytest.raises(schemes.PresetError, match="n_heads"):
        schemes.mimetic(model)
    report = schemes.mimetic(model, n_heads=2, seed=1)
    assert report.preset == "llama"
    a = layer.self_attn
    got = [x.weight.detach().double().numpy() for x in (a.q_proj, a.k_proj, a.v_proj, a.o_proj)]
    check(*products(*got, 2), *targets(1, "layers.0.self_attn.q_proj.weight", "layers.0.self_attn.v_proj.weight", 16, 2))


def test_hugging_face_gpt2_conv1d_layout():
    transformers = pytest.importorskip("transformers", reason="the gpt2 preset is tried on transformers' GPT2LMHeadModel")
    model = transformers.GPT2LMHeadModel(transformers.GPT2Config(vocab_size=50, n_positions=8, n_embd=32, n_layer=1,
                                                                 n_head=4, bos_token_id=0, eos_token_id=0))
    schemes.mimetic(model, seed=2)
    attn = model.transformer.h[0].attn
    w = attn.c_attn.weight.detach().double().numpy().T  # Conv1D stores (in, out)
    wo = attn.c_proj.weight.detach().double().numpy().T
    name = "transformer.h.0.attn.c_attn.weight"
    check(*products(w[:32], w[32:64], w[64:], wo, 4), *targets(2, name, name, 32, 4))


def test_attention_starts_near_the_diagonal():
    torch.manual_seed(0)
    x = torch.randn(1, 12, 64)
    mha = nn.MultiheadAttention(64, 4, batch_first=True)
    _, default = mha(x, x, x, need_weights=True)
    schemes.mimetic(mha, seed=0)
    _, mimetic = mha(x, x, x, need_weights=True)
    assert mimetic.diagonal(dim1=-2, dim2=-1).mean() > 3 * default.diagonal(dim1=-2, dim2=-1).mean()


def test_grouped_query_attention_is_refused():
    layer = nn.Module()
    layer.q_proj, layer.k_proj, layer.v_proj, layer.out_proj = (nn.Linear(16, n) for n in (16, 8, 8, 16))
    with pytest.raises(schemes.PresetError, match="grouped-query"):
        schemes.mimetic(nn.ModuleDict({"attn": layer}), n_heads=4)


def test_heads_must_divide_the_width():
    with pytest.raises(ValueError, match="divisible"):
        schemes.mimetic(nn.MultiheadAttention(12, 3), n_heads=5)


def test_mimetic_factors_split_evenly():
    z = np.random.default_rng(1).normal(size=(6, 6)) / 6**0.5
    left, right = schemes.mimetic_factors(z, 0.4, -0.4)
    assert np.allclose(left @ right.T, 0.4 * z - 0.4 * np.eye(6))
    assert np.allclose(np.linalg.svd(left, compute_uv=False), np.linalg.svd(right, compute_uv=False))
