"""Fixup (Zhang et al. 2019) for residual networks and T-Fixup (Huang et al. 2020) for transformers."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

from torch import nn

from berry._validation import check_choice, check_int
from berry.torch._model import RulesLike, fan_blocks
from berry.torch.schemes._report import SchemeReport, SchemeRules, apply_rules
from berry.torch.schemes._roles import ModelParameters, Patterns, PatternsLike, Preset, RoleTable, exact
from berry.torch.schemes._transformer import (
    ARCHITECTURES,
    TRANSFORMER_ROLES,
    layer_counts,
    resolve_transformer,
    scaled_xavier,
)

__all__ = ["FIXUP_PRESETS", "FIXUP_ROLES", "TFixupScales", "fixup", "fixup_scale", "t_fixup", "t_fixup_scales"]


# =============================================================================== Fixup
FIXUP_ROLES = RoleTable(
    "fixup",
    roles=("branch", "classifier", "scalar_bias", "multiplier"),
    presets=(
        Preset("residual_mlp", {
            "branch": ("blocks.*.layers.*.weight",),
            "classifier": ("head.weight", "head.bias"),
            "scalar_bias": ("blocks.*.bias[0-9]*",),
            "multiplier": ("blocks.*.scale",),
        }),
        Preset("resnet", {  # torchvision names; Fixup's scalars as the authors name them (bias1a, scale, ...)
            "branch": ("layer*.*.conv*.weight",),
            "classifier": ("fc.weight", "fc.bias"),
            "scalar_bias": ("*bias[12][ab]", "bias[12]"),
            "multiplier": ("*.scale",),
        }),
    ),
    required=(("branch",), ("classifier",)),
)
FIXUP_PRESETS: dict[str, dict[str, Patterns]] = FIXUP_ROLES.as_dict()


def fixup_scale(n_branches: int, branch_layers: int) -> float:
    """Fixup's multiplier for the non-final layers of a residual branch (Zhang et al. 2019).

    "Fixup Initialization: Residual Learning Without Normalization": with
    ``L`` residual branches of ``m`` layers each, the first ``m - 1`` layers of
    every branch are initialized by a standard method (He) and then scaled by

    .. math:: L^{-\\frac{1}{2m-2}}

    while the last layer of each branch starts at zero. A one-layer branch
    (``m = 1``) has no layer to scale: the multiplier is 1.

    >>> fixup_scale(16, 2)
    0.25
    """
    n_branches = check_int("n_branches", n_branches, minimum=1)
    branch_layers = check_int("branch_layers", branch_layers, minimum=1)
    if branch_layers == 1:
        return 1.0
    return float(n_branches ** (-1.0 / (2 * branch_layers - 2)))


def branches_of(names: list[str], branch_depth: int) -> dict[str, list[str]]:
    """Branch weights grouped by branch: the first ``branch_depth`` components of their names, in order."""
    branches: dict[str, list[str]] = {}
    for name in names:
        branches.setdefault(".".join(name.split(".")[:branch_depth]), []).append(name)
    return branches


def fixup(
    model: nn.Module,
    *,
    seed: int = 0,
    preset: str | Preset = "auto",
    branch_depth: int = 2,
    mode: str = "fan_in",
    roles: Mapping[str, PatternsLike] | None = None,
    rules: RulesLike = None,
    **patterns: PatternsLike,
) -> SchemeReport:
    """Fixup (Zhang et al. 2019, "Fixup Initialization: Residual Learning Without Normalization").

    Trains deep residual networks without normalization:

    1. the classification layer and the last layer of each residual branch start at 0;
    2. the other layers of each branch get He normal, scaled by :func:`fixup_scale`;
    3. the scalar biases start at 0 and the scalar multipliers at 1 (the model adds them).

    .. math:: W_{branch, i<m} \\sim \\mathcal{N}\\!\\left(0, \\frac{2}{n} L^{-\\frac{2}{2m-2}}\\right),
        \\qquad W_{branch, m} = 0, \\qquad W_{classifier} = 0

    with ``L`` the number of residual branches and ``m`` the layers of each
    (counted per branch), and ``n`` the fan of each layer as
    :func:`berry.torch.init_model` computes it (groups and transposed
    convolutions included). Other weights (stem, shortcut projections) get He
    normal unscaled; other biases zero.

    Parameters
    ----------
    model:
        A residual network, e.g. :class:`berry.torch.models.ResidualMLP` with
        ``fixup=True`` or :class:`berry.torch.models.ResNet` with ``norm="none"``.
    seed:
        berry's seed.
    preset:
        ``"auto"``, ``"residual_mlp"``, ``"resnet"`` (torchvision's names) or a :class:`Preset`.
    branch_depth:
        How many leading components of a branch weight's name identify its
        branch (``"layer1.0.conv2.weight"`` -> ``"layer1.0"`` with 2).
    mode:
        He's fan, ``"fan_in"`` (default) or ``"fan_out"`` (what the authors'
        ResNet code uses for convolutions).
    roles, branch, classifier, scalar_bias, multiplier:
        fnmatch patterns replacing the preset's, as ``roles={"branch": ...}``
        or ``branch=...``: the weights inside residual branches (in forward
        order), the classification layer's parameters (set to zero), Fixup's
        scalar biases (0) and multipliers (1).
    rules:
        :func:`berry.torch.init_model` rules for the other parameters.

    >>> from berry.torch.models import ResidualMLP
    >>> model = ResidualMLP(depth=16, branch_layers=2, fixup=True)
    >>> report = fixup(model, seed=0)
    >>> report.constants["n_branches"], report.constants["scale"]
    (16.0, 0.25)
    """
    branch_depth = check_int("branch_depth", branch_depth, minimum=1)
    mode = check_choice("mode", mode, ("fan_in", "fan_out"))
    parameters = ModelParameters(model)
    found = FIXUP_ROLES.resolve(parameters, preset, FIXUP_ROLES.overrides(roles, patterns))
    branches = branches_of(found.of("branch"), branch_depth)
    n_branches = len(branches)

    def he_std(name: str) -> float:
        """He's normal std with the layer's own fans (groups, transposed convolutions: init_model's)."""
        entry = parameters[name]
        assert entry.shape is not None
        fans = fan_blocks(entry.module, entry.local_name, entry.shape)[0].fans
        assert fans is not None
        return math.sqrt(2.0 / (fans[0] if mode == "fan_in" else fans[1]))

    scheme_rules: SchemeRules = []
    role_of: dict[str, str] = {}
    depths = set()
    for layers in branches.values():
        depths.add(len(layers))
        scale = fixup_scale(n_branches, len(layers))
        for i, name in enumerate(layers):
            if i == len(layers) - 1:
                scheme_rules.append((exact(name), "zeros"))
                role_of[name] = "branch last"
            else:
                scheme_rules.append((exact(name), {"std": he_std(name) * scale}))
                role_of[name] = "branch"
    for role, action in (("classifier", "zeros"), ("scalar_bias", "zeros"), ("multiplier", "ones")):
        for name in found.of(role):
            if name not in role_of:
                scheme_rules.append((exact(name), action))
                role_of[name] = role
    for entry in parameters:
        if entry.name in role_of or not isinstance(entry.module, (nn.Linear, nn.modules.conv._ConvNd)):
            continue
        if entry.local_name == "weight":
            scheme_rules.append((exact(entry.name), {"std": he_std(entry.name)}))
            role_of[entry.name] = "he"
        elif entry.local_name == "bias":
            scheme_rules.append((exact(entry.name), "zeros"))
            role_of[entry.name] = "bias"
    report = apply_rules(model, scheme_rules, rules, seed)
    constants = {"n_branches": float(n_branches), "branch_layers": float(max(depths, default=0))}
    if len(depths) == 1:
        constants["scale"] = fixup_scale(n_branches, depths.pop())
    return SchemeReport("fixup", found.preset, constants, role_of, report)


# =============================================================================== T-Fixup
@dataclasses.dataclass(frozen=True)
class TFixupScales:
    """T-Fixup's multipliers: per stack for v/o/feed-forward weights and for the input embeddings."""

    encoder: float | None
    decoder: float | None
    encoder_embedding: float | None
    decoder_embedding: float | None


def t_fixup_scales(
    architecture: str, *, encoder_layers: int | None = None, decoder_layers: int | None = None
) -> TFixupScales:
    """T-Fixup's scales (Huang et al. 2020, "Improving Transformer Optimization Through Better Initialization").

    After Xavier initialization (embeddings ``N(0, d^{-1/2})``), with ``N``
    encoder and ``M`` decoder layers, the value, output and feed-forward
    weights of the encoder are multiplied by ``0.67 N^{-1/4}``, those of the
    decoder (self- and encoder-attention) by ``(9M)^{-1/4}``, and the input
    embeddings of each stack by ``(9L)^{-1/4}`` with ``L`` its own depth (as
    the authors' fairseq code does):

    .. math::

        v, w, W_{ffn}^{enc} \\times 0.67 N^{-1/4}, \\quad
        v, w, W_{ffn}^{dec} \\times (9M)^{-1/4}, \\quad
        E_{enc} \\times (9N)^{-1/4}, \\quad E_{dec} \\times (9M)^{-1/4}

    >>> s = t_fixup_scales("encoder-decoder", encoder_layers=6, decoder_layers=6)
    >>> round(s.encoder, 4), round(s.decoder, 4)
    (0.4281, 0.3689)
    """
    architecture = check_choice("architecture", architecture, ARCHITECTURES)
    n, m = layer_counts(architecture, encoder_layers, decoder_layers)
    return TFixupScales(
        None if n is None else 0.67 * n**-0.25,
        None if m is None else (9 * m) ** -0.25,
        None if n is None else (9 * n) ** -0.25,
        None if m is None else (9 * m) ** -0.25,
    )


def t_fixup(
    model: nn.Module,
    *,
    seed: int = 0,
    architecture: str | None = None,
    encoder_layers: int | None = None,
    decoder_layers: int | None = None,
    preset: str | Preset = "auto",
    distribution: str = "uniform",
    roles: Mapping[str, PatternsLike] | None = None,
    rules: RulesLike = None,
    **patterns: PatternsLike,
) -> SchemeReport:
    """T-Fixup (Huang et al. 2020, "Improving Transformer Optimization Through Better Initialization").

    Trains transformers without layer normalization and without learning-rate
    warm-up. Every weight of ``Linear`` layers gets Xavier (uniform, as the
    authors' fairseq code; ``distribution="normal"`` for Xavier normal), the
    input embeddings ``N(0, d^{-1/2})``, biases zero; then, with the
    multipliers of :func:`t_fixup_scales`:

    .. math::

        W_V, W_O, W_{ffn} \\mathrel{*}= 0.67 N^{-1/4} \\text{ (encoder)},\\ (9M)^{-1/4} \\text{ (decoder)},
        \\qquad E \\mathrel{*}= (9 L)^{-1/4}

    Remove the model's layer norms (e.g.
    ``Transformer(norm="none")`` in :mod:`berry.torch.models`).

    Parameters are as in :func:`deepnorm`, plus the role ``embedding``
    (patterns of the input embeddings, token and learned positions) and ``distribution``.

    >>> from berry.torch.models import Transformer
    >>> model = Transformer(n_layer=4, n_embd=32, n_head=4, norm="none", naming="fairseq", causal=False)
    >>> report = t_fixup(model, architecture="encoder", seed=0)
    >>> round(report.constants["encoder"], 4)
    0.4738
    """
    distribution = check_choice("distribution", distribution, ("uniform", "normal"))
    parameters = ModelParameters(model)
    overrides = TRANSFORMER_ROLES.overrides(roles, patterns)
    found = resolve_transformer("t_fixup", parameters, preset, overrides, architecture, encoder_layers,
                                decoder_layers)
    scales = t_fixup_scales(found.architecture, encoder_layers=found.encoder_layers,
                            decoder_layers=found.decoder_layers)
    layer_scale = {"encoder": scales.encoder, "decoder": scales.decoder}
    embedding_scale = {"encoder": scales.encoder_embedding, "decoder": scales.decoder_embedding}

    scheme_rules: SchemeRules = []
    role_of: dict[str, str] = {}
    for role in ("embedding", "ffn", "value", "output", "query_key", "packed"):
        for name in found.roles.of(role):
            if name in role_of:
                continue
            role_of[name] = role
            stack = found.stack_of(name)
            if role == "embedding":
                e_scale = embedding_scale[stack]
                assert e_scale is not None
                scheme_rules.append((exact(name), {"std": parameters.shape(name)[-1] ** -0.5 * e_scale}))
                continue
            scale = layer_scale[stack] if role != "query_key" else 1.0
            assert scale is not None
            scheme_rules.append((exact(name), scaled_xavier(parameters, name, role, scale, distribution)))
    scheme_rules += [
        ("Linear:weight", {"init": "xavier", "distribution": distribution}),
        ("Conv1D:weight", {"init": "xavier", "distribution": distribution}),
        ("Linear:bias", "zeros"),
        ("Conv1D:bias", "zeros"),
        ("MultiheadAttention:*bias*", "zeros"),
    ]
    report = apply_rules(model, scheme_rules, rules, seed)
    numbers = {k: v for k, v in dataclasses.asdict(scales).items() if v is not None}
    numbers.update(found.layer_counts())
    return SchemeReport("t_fixup", found.roles.preset, numbers, role_of, report)
