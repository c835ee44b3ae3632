"""Mimetic initialization of self-attention (Trockman & Kolter 2023): attention that starts out like a trained one."""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from berry._validation import check_finite, check_int
from berry.torch._model import RulesLike
from berry.torch._tensors import Region
from berry.torch.schemes._report import SchemeReport, SchemeRules, apply_rules
from berry.torch.schemes._roles import (
    ModelParameters,
    Patterns,
    PatternsLike,
    Preset,
    PresetError,
    RoleTable,
    exact,
)
from berry.torch.schemes._sites import fill_computed, linear_fans, paired, stream_normal

__all__ = ["MIMETIC_PRESETS", "MIMETIC_ROLES", "mimetic", "mimetic_factors"]

MIMETIC_ROLES = RoleTable(
    "mimetic",
    roles=("query", "key", "value", "packed", "output"),
    presets=(
        Preset("gpt2", {"packed": ("*.attn.c_attn.weight",), "output": ("*.attn.c_proj.weight",)}),  # nanoGPT, HF GPT-2
        Preset("llama", {"query": ("*.self_attn.q_proj.weight",), "key": ("*.self_attn.k_proj.weight",),
                         "value": ("*.self_attn.v_proj.weight",), "output": ("*.self_attn.o_proj.weight",)}),
        Preset("fairseq", {"query": ("*.q_proj.weight",), "key": ("*.k_proj.weight",), "value": ("*.v_proj.weight",),
                           "output": ("*.out_proj.weight",)}),
        Preset("torch", {"packed": ("*in_proj_weight",), "output": ("*out_proj.weight",)}),  # nn.MultiheadAttention
        Preset("timm", {"packed": ("*.attn.qkv.weight",), "output": ("*.attn.proj.weight",)}),  # timm's ViT
    ),
    required=(("query", "packed"), ("output",)),
)
MIMETIC_PRESETS: dict[str, dict[str, Patterns]] = MIMETIC_ROLES.as_dict()

_HEAD_ATTRIBUTES = ("num_heads", "n_head", "n_heads", "num_attention_heads")


def mimetic_factors(
    z: np.ndarray, alpha: float, beta: float, rank: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(L, R)`` with ``L R^T`` the best rank-``rank`` approximation of ``M = alpha Z + beta I``, split evenly.

    Trockman & Kolter (2023), "Mimetic Initialization of Self-Attention
    Layers", section 3: with ``M = U S V^T``, ``L = U_k S_k^{1/2}`` and
    ``R = V_k S_k^{1/2}`` (``k = rank``, all of ``M`` by default). Both are
    ``(d, k)``.

    >>> z = np.random.default_rng(0).normal(size=(8, 8)) / 8**0.5
    >>> left, right = mimetic_factors(z, 0.7, 0.7)
    >>> bool(np.allclose(left @ right.T, 0.7 * z + 0.7 * np.eye(8)))
    True
    """
    d = z.shape[0]
    k = d if rank is None else rank
    u, s, vh = np.linalg.svd(alpha * z + beta * np.eye(d))
    root = np.sqrt(s[:k])
    return u[:, :k] * root, vh[:k].T * root


@dataclasses.dataclass
class _Attention:
    """One attention layer's weights and the values computed for them (once)."""

    names: dict[str, str]  #: "query", "key", "value", "output" or "packed" -> parameter name
    d: int
    n_heads: int
    packed_transposed: bool  #: Hugging Face Conv1D stores (in, out)
    output_transposed: bool
    values: dict[str, np.ndarray] | None = None  #: torch (out, in) layout, per part


def _layer_values(layer: _Attention, *, seed: int, alpha1: float, beta1: float, alpha2: float,
                  beta2: float) -> dict[str, np.ndarray]:
    if layer.values is None:
        d, heads = layer.d, layer.n_heads
        k = d // heads
        key = layer.names.get("query") or layer.names["packed"]
        z1 = stream_normal((heads, d, d), None, seed=seed, name=f"{key}[mimetic Z1]") / math.sqrt(d)
        query, keys = np.empty((d, d)), np.empty((d, d))
        for h in range(heads):  # per head: W_q^h W_k^h^T ~ alpha1 Z1 + beta1 I, rank d_head
            left, right = mimetic_factors(z1[h], alpha1, beta1, k)
            query[h * k:(h + 1) * k], keys[h * k:(h + 1) * k] = left.T, right.T
        value_key = layer.names.get("value") or layer.names["packed"]
        z2 = stream_normal((d, d), None, seed=seed, name=f"{value_key}[mimetic Z2]") / math.sqrt(d)
        left, right = mimetic_factors(z2, alpha2, -beta2)  # W_v W_proj ~ alpha2 Z2 - beta2 I, full rank
        layer.values = {"query": query, "key": keys, "value": left.T, "output": right}
    return layer.values


def _fill(tensor: torch.Tensor, *, seed: int, name: str, layer: _Attention, part: str, constants: Mapping[str, float]) -> None:
    del name
    if tensor.is_meta:
        return
    values = _layer_values(layer, seed=seed, **constants)
    if part == "packed":
        matrix = np.concatenate([values["query"], values["key"], values["value"]], axis=0)
        matrix = matrix.T if layer.packed_transposed else matrix
    else:
        matrix = values[part].T if part == "output" and layer.output_transposed else values[part]

    def compute(shape: tuple[int, ...], region: Region) -> np.ndarray:
        return matrix[region]

    fill_computed(tensor, compute)


def _heads_of(model: nn.Module, name: str) -> int | None:
    """The head count of the attention module holding parameter ``name`` (its nearest ancestor that says)."""
    modules = dict(model.named_modules())
    parts = name.split(".")[:-1]
    for cut in range(len(parts), -1, -1):
        module = modules.get(".".join(parts[:cut]))
        for owner in (module, getattr(module, "config", None)):
            for attribute in _HEAD_ATTRIBUTES:
                value = getattr(owner, attribute, None)
                if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                    return value
    return None


def mimetic(
    model: nn.Module,
    *,
    seed: int = 0,
    n_heads: int | None = None,
    alpha1: float = 0.7,
    beta1: float = 0.7,
    alpha2: float = 0.4,
    beta2: float = 0.4,
    preset: str | Preset = "auto",
    roles: Mapping[str, PatternsLike] | None = None,
    rules: RulesLike = None,
    **patterns: PatternsLike,
) -> SchemeReport:
    """Mimetic initialization (Trockman & Kolter 2023): ``W_q W_k^T ~ alpha1 Z1 + beta1 I``, ``W_v W_o ~ alpha2 Z2 - beta2 I``.

    "Mimetic Initialization of Self-Attention Layers" (ICML 2023): trained
    attention layers have a positive diagonal in ``W_q W_k^T`` (tokens attend
    to themselves and, through position embeddings, their neighbours) and a
    negative one in ``W_v W_proj``. Setting them so at initialization, in
    closed form, trains faster. With ``Z1, Z2 ~ N(0, I/d)`` keyed by the
    layer's weight names:

    * per head ``h`` (head size ``k``): ``W_q^h W_k^{h T}`` is the best rank-``k``
      approximation of ``alpha1 Z1^h + beta1 I`` (SVD ``U S V^T``:
      ``W_q^h = U_k S_k^{1/2}``, ``W_k^h = V_k S_k^{1/2}``);
    * ``W_v W_proj = alpha2 Z2 - beta2 I`` exactly (``W_v = U S^{1/2}``,
      ``W_proj = S^{1/2} V^T``);

    in the row-vector convention ``softmax(X W_q W_k^T X^T) X W_v W_proj``, so
    that a token's output starts near ``-beta2`` times its value input.
    Defaults are the paper's ViT constants ``alpha1 = beta1 = 0.7``,
    ``alpha2 = beta2 = 0.4``. Attention biases are zero; other parameters go
    to ``rules``, then berry's defaults. Grouped-query attention (fewer key
    heads than query heads) is not covered: the paper's construction pairs
    each query head with its own key head.

    .. math:: W_q^h W_k^{h\\top} \\approx \\alpha_1 Z_1 + \\beta_1 I, \\qquad
        W_v W_{proj} = \\alpha_2 Z_2 - \\beta_2 I, \\qquad Z_i \\sim \\mathcal N(0, I/d)

    Parameters
    ----------
    model:
        The model.
    seed:
        berry's seed.
    n_heads:
        The number of heads; by default read from the attention module
        (``num_heads``, ``n_head``, ``n_heads``, ``num_attention_heads``, or its ``config``).
    alpha1, beta1, alpha2, beta2:
        The paper's constants.
    preset:
        ``"auto"``, ``"gpt2"`` (packed ``c_attn``, ``c_proj``; nanoGPT and
        Hugging Face GPT-2), ``"llama"``, ``"fairseq"``, ``"torch"``
        (``nn.MultiheadAttention``), ``"timm"`` (``attn.qkv``, ``attn.proj``), or a :class:`Preset`.
    roles, query, key, value, packed, output:
        fnmatch patterns replacing the preset's.
    rules:
        :func:`berry.torch.init_model` rules for other parameters.

    >>> import torch
    >>> attention = torch.nn.MultiheadAttention(16, 4, batch_first=True)
    >>> report = mimetic(attention, seed=0)
    >>> w = attention.in_proj_weight.detach()
    >>> qk = sum(w[h*4:(h+1)*4].T @ w[16+h*4:16+(h+1)*4] for h in range(4)) / 4
    >>> vo = (attention.out_proj.weight @ w[32:]).detach()
    >>> round(float(qk.diagonal().mean()), 1) > 0, round(float(vo.diagonal().mean()), 1) < 0
    (True, True)
    """
    constants = {"alpha1": check_finite("alpha1", alpha1), "beta1": check_finite("beta1", beta1),
                 "alpha2": check_finite("alpha2", alpha2), "beta2": check_finite("beta2", beta2)}
    parameters = ModelParameters(model)
    found = MIMETIC_ROLES.resolve(parameters, preset, MIMETIC_ROLES.overrides(roles, patterns))
    outputs = found.of("output")
    anchors = found.of("packed") or found.of("query")
    output_of = paired("mimetic", anchors, outputs, "output projection")
    scheme_rules: SchemeRules = []
    role_of: dict[str, str] = {}
    for anchor in anchors:
        names = {"output": output_of[anchor]}
        if anchor in found.of("packed"):
            names["packed"] = anchor
        else:
            names["query"] = anchor
            names["key"] = paired("mimetic", [anchor], found.of("key"), "key projection")[anchor]
            names["value"] = paired("mimetic", [anchor], found.of("value"), "value projection")[anchor]
        entry = parameters[anchor]
        d = linear_fans(entry.module, parameters.shape(anchor))[0]
        heads = n_heads or _heads_of(model, anchor)
        if heads is None:
            raise PresetError(f"mimetic: cannot read the number of heads of {anchor!r}; pass n_heads=")
        heads = check_int("n_heads", heads, minimum=1)
        if d % heads:
            raise ValueError(f"mimetic: width {d} of {anchor!r} is not divisible by n_heads={heads}")
        for part, name in names.items():
            fans = linear_fans(parameters[name].module, parameters.shape(name))
            expected = (d, 3 * d) if part == "packed" else (d, d)
            if fans != expected:
                raise PresetError(
                    f"mimetic: {name} ({part}) has (fan_in, fan_out) {fans}, expected {expected}: the construction needs "
                    "square q/k/v/output projections (no grouped-query attention, no kdim/vdim)")
        layer = _Attention(names, d, heads,
                           type(parameters[names.get("packed", anchor)].module).__name__ == "Conv1D",
                           type(parameters[names["output"]].module).__name__ == "Conv1D")
        for part, name in names.items():
            scheme_rules.append((exact(name), functools.partial(_fill, layer=layer, part=part, constants=constants)))
            role_of[name] = part
            bias = name[: -len("weight")] + "bias" if name.endswith("weight") else None
            if bias is not None and bias in parameters:
                scheme_rules.append((exact(bias), "zeros"))
                role_of[bias] = f"{part} bias"
    report = apply_rules(model, scheme_rules, rules, seed)
    return SchemeReport("mimetic", found.preset, {**constants, "layers": float(len(anchors))}, role_of, report)
