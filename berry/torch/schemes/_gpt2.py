"""GPT-2's initialization (Radford et al. 2019): N(0, 0.02^2), residual projections scaled by 1/sqrt(2N)."""

from __future__ import annotations

import math
from typing import Any

from torch import nn

from berry._validation import check_int, check_positive
from berry.torch._model import RulesLike
from berry.torch.schemes._report import SchemeReport, SchemeRules, apply_rules
from berry.torch.schemes._roles import (
    ModelParameters,
    Patterns,
    PatternsLike,
    Preset,
    RoleTable,
    exact,
    shown,
)

__all__ = ["GPT2_PRESETS", "GPT2_ROLES", "gpt2", "gpt2_residual_std"]

GPT2_ROLES = RoleTable(
    "gpt2",
    roles=("residual",),
    presets=(
        Preset("nanogpt", {"residual": ("*.attn.c_proj.weight", "*.mlp.c_proj.weight")}),
        Preset("fairseq", {"residual": ("*.self_attn.out_proj.weight", "*.fc2.weight")}),
        Preset("torch", {"residual": ("*.self_attn.out_proj.weight", "*.linear2.weight")}),
    ),
    required=(("residual",),),
)
GPT2_PRESETS: dict[str, dict[str, Patterns]] = GPT2_ROLES.as_dict()


def gpt2_residual_std(n_layer: int, std: float = 0.02) -> float:
    """Standard deviation of GPT-2's residual output projections.

    Radford et al. (2019), "Language Models are Unsupervised Multitask
    Learners", section 2.3, as nanoGPT implements it: each of the ``2 n_layer``
    projections that add into the residual stream is scaled by
    ``1/sqrt(2 n_layer)`` so the stream's variance does not grow with depth.

    .. math:: \\sigma_{res} = \\frac{\\sigma}{\\sqrt{2 N}}

    >>> round(gpt2_residual_std(12), 6)
    0.004082
    """
    n_layer = check_int("n_layer", n_layer, minimum=1)
    std = check_positive("std", std)
    return std / math.sqrt(2 * n_layer)


def gpt2(
    model: nn.Module,
    *,
    seed: int = 0,
    std: float = 0.02,
    n_layer: int | None = None,
    preset: str | Preset = "auto",
    roles: dict[str, PatternsLike] | None = None,
    rules: RulesLike = None,
    **patterns: PatternsLike,
) -> SchemeReport:
    """GPT-2's initialization (Radford et al. 2019), as nanoGPT writes it.

    Every ``Linear`` and ``Embedding`` weight ``N(0, 0.02^2)``, every bias
    zero, norms ones and zeros, and the residual output projections (the
    attention output and the second feed-forward layer of each block, which
    add into the residual stream) scaled down with depth:

    .. math:: W \\sim \\mathcal{N}(0, \\sigma^2), \\qquad
        W_{res} \\sim \\mathcal{N}\\!\\left(0, \\frac{\\sigma^2}{2N}\\right), \\qquad \\sigma = 0.02

    Parameters
    ----------
    model:
        The model.
    seed:
        berry's seed; each parameter is keyed by its fully qualified name.
    std:
        ``sigma`` (0.02 in GPT-2).
    n_layer:
        ``N``; by default half the number of residual projections found.
    preset:
        ``"auto"``, ``"nanogpt"`` (``*.attn.c_proj.weight``,
        ``*.mlp.c_proj.weight``: nanoGPT and Hugging Face GPT-2), ``"fairseq"``
        (``*.self_attn.out_proj.weight``, ``*.fc2.weight``), ``"torch"``
        (``torch.nn.TransformerEncoderLayer``: ``out_proj``, ``linear2``) or a
        :class:`Preset`.
    roles, residual:
        fnmatch patterns of the residual projections (role ``"residual"``),
        instead of the preset's: ``roles={"residual": [...]}`` or ``residual=[...]``.
    rules:
        :func:`berry.torch.init_model` rules for parameters the scheme does not cover.

    Also known as: the GPT-2 / nanoGPT init, "scaled init" of residual projections.

    >>> import torch
    >>> from berry.torch.models import Transformer
    >>> model = Transformer(n_layer=2, n_embd=32, n_head=4)
    >>> report = gpt2(model, seed=0)
    >>> report.roles["transformer.h.0.mlp.c_proj.weight"], round(report.constants["residual_std"], 4)
    ('residual', 0.01)
    """
    std = check_positive("std", std)
    parameters = ModelParameters(model)
    found = GPT2_ROLES.resolve(parameters, preset, GPT2_ROLES.overrides(roles, patterns))
    residuals = found.of("residual")
    if n_layer is None:
        if len(residuals) % 2:
            raise ValueError(
                f"gpt2: found {len(residuals)} residual projections (an odd number), so n_layer cannot be "
                f"inferred as half of them; pass n_layer=. Found: {shown(residuals)}"
            )
        n_layer = len(residuals) // 2
    residual_std = gpt2_residual_std(n_layer, std)
    scheme_rules: SchemeRules = [(exact(n), {"std": residual_std}) for n in residuals]
    scheme_rules += [
        ("Linear:weight", {"std": std}),
        ("Conv1D:weight", {"std": std}),  # Hugging Face GPT-2's linear layers
        ("Embedding:weight", {"std": std}),
        ("Linear:bias", "zeros"),
        ("Conv1D:bias", "zeros"),
    ]
    report = apply_rules(model, scheme_rules, rules, seed)
    role_of = {n: "residual" for n in residuals}
    for entry in parameters:
        module: Any = entry.module
        if entry.name not in role_of and (isinstance(module, (nn.Linear, nn.Embedding)) or type(module).__name__ == "Conv1D"):
            role_of[entry.name] = "weight" if entry.local_name == "weight" else "bias"
    constants = {"std": std, "n_layer": float(n_layer), "residual_std": residual_std}
    return SchemeReport("gpt2", found.preset, constants, role_of, report)
