"""DeepNet's DeepNorm (Wang et al. 2022): residual multiplier alpha, Xavier of gain beta on ffn/v/out.

Not to be confused with the seed's :func:`berry.initializations.deepnet`, a
rule (He's normal with the fan-out) that shares the paper's first word: the
scheme is :func:`deepnorm`, with ``deepnet`` kept as its alias.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from torch import nn

from berry._validation import check_choice
from berry.torch._model import RulesLike
from berry.torch.schemes._report import SchemeReport, SchemeRules, apply_rules
from berry.torch.schemes._roles import ModelParameters, PatternsLike, Preset, exact
from berry.torch.schemes._transformer import (
    ARCHITECTURES,
    TRANSFORMER_ROLES,
    layer_counts,
    resolve_transformer,
    scaled_xavier,
    sibling_bias,
)

__all__ = ["DeepNormConstants", "deepnet", "deepnorm", "deepnorm_constants"]


@dataclasses.dataclass(frozen=True)
class DeepNormConstants:
    """DeepNorm's residual multiplier ``alpha`` and initialization gain ``beta``, per stack.

    ``None`` for a stack the architecture does not have.
    """

    encoder_alpha: float | None
    encoder_beta: float | None
    decoder_alpha: float | None
    decoder_beta: float | None


def deepnorm_constants(
    architecture: str, *, encoder_layers: int | None = None, decoder_layers: int | None = None
) -> DeepNormConstants:
    """DeepNorm's ``alpha`` and ``beta`` (Wang et al. 2022, "DeepNet: Scaling Transformers to 1,000 Layers").

    Each sublayer computes ``LN(alpha * x + f(x))``; the feed-forward, value
    and output projections are initialized with Xavier normal of gain
    ``beta`` (query and key with gain 1). With ``N`` encoder and ``M``
    decoder layers (the paper's Figure 2 table, as torchscale implements it):

    .. math::

        \\text{encoder-only:}\\ \\alpha = (2N)^{1/4},\\ \\beta = (8N)^{-1/4} \\\\
        \\text{decoder-only:}\\ \\alpha = (2M)^{1/4},\\ \\beta = (8M)^{-1/4} \\\\
        \\text{encoder-decoder:}\\ \\alpha_e = 0.81 (N^4 M)^{1/16},\\ \\beta_e = 0.87 (N^4 M)^{-1/16},\\
        \\alpha_d = (3M)^{1/4},\\ \\beta_d = (12M)^{-1/4}

    (torchscale writes the encoder's ``0.87`` as ``1/1.15``, 0.05% apart; the
    paper's 0.87 is used here.)

    Parameters
    ----------
    architecture:
        ``"encoder"``, ``"decoder"`` or ``"encoder-decoder"``.
    encoder_layers, decoder_layers:
        ``N`` and ``M``; the ones the architecture has are required.

    >>> c = deepnorm_constants("decoder", decoder_layers=100)
    >>> round(c.decoder_alpha, 4), round(c.decoder_beta, 4)
    (3.7606, 0.188)
    >>> round(100 * (0.87 * 1.15 - 1), 2)  # the paper's 0.87 against torchscale's 1/1.15, in percent
    0.05
    """
    architecture = check_choice("architecture", architecture, ARCHITECTURES)
    n, m = layer_counts(architecture, encoder_layers, decoder_layers)
    if architecture == "encoder":
        assert n is not None
        return DeepNormConstants((2 * n) ** 0.25, (8 * n) ** -0.25, None, None)
    if architecture == "decoder":
        assert m is not None
        return DeepNormConstants(None, None, (2 * m) ** 0.25, (8 * m) ** -0.25)
    assert n is not None and m is not None
    return DeepNormConstants(
        0.81 * (n**4 * m) ** (1 / 16), 0.87 * (n**4 * m) ** (-1 / 16), (3 * m) ** 0.25, (12 * m) ** -0.25
    )


def deepnorm(
    model: nn.Module,
    *,
    seed: int = 0,
    architecture: str | None = None,
    encoder_layers: int | None = None,
    decoder_layers: int | None = None,
    preset: str | Preset = "auto",
    roles: Mapping[str, PatternsLike] | None = None,
    rules: RulesLike = None,
    **patterns: PatternsLike,
) -> SchemeReport:
    """DeepNet's DeepNorm initialization (Wang et al. 2022, "DeepNet: Scaling Transformers to 1,000 Layers").

    A post-LN transformer whose sublayers compute ``LN(alpha * x + f(x))``
    stays stable to 1,000 layers when, in addition, the feed-forward, value
    and output projections are initialized with Xavier normal of gain
    ``beta`` (query and key with gain 1), with ``alpha`` and ``beta`` from
    :func:`deepnorm_constants`:

    .. math:: W_{ffn}, W_V, W_O \\sim \\mathcal{N}\\!\\left(0, \\beta^2 \\frac{2}{n_{in} + n_{out}}\\right),
        \\qquad W_Q, W_K \\sim \\mathcal{N}\\!\\left(0, \\frac{2}{n_{in} + n_{out}}\\right)

    ``alpha`` is a forward change the model must make: the report returns it
    (``report.constants["decoder_alpha"]`` ...); for
    :class:`berry.torch.models.Transformer` call
    ``model.set_residual_scale(alpha)``. Biases of these layers are zeroed.
    A packed q/k/v weight (nanoGPT ``c_attn``, torch's ``in_proj_weight``) gets
    each third with its own fans, the value third scaled by ``beta``.

    Parameters
    ----------
    model:
        The model.
    seed:
        berry's seed.
    architecture:
        ``"encoder"``, ``"decoder"`` or ``"encoder-decoder"`` (default: from the
        layer counts given, else ``"decoder"``).
    encoder_layers, decoder_layers:
        ``N`` and ``M``; by default the number of self-attention output
        projections found in each stack.
    preset:
        ``"auto"``, ``"fairseq"`` (torchscale's names too), ``"nanogpt"``, ``"torch"`` or a :class:`Preset`.
    roles, query_key, value, output, ffn, packed, encoder, decoder:
        fnmatch patterns replacing the preset's for that role, as
        ``roles={"ffn": [...]}`` or ``ffn=[...]`` (``encoder``/``decoder`` pick
        each stack's parameters in an encoder-decoder).
    rules:
        :func:`berry.torch.init_model` rules for the other parameters.

    Also known as: DeepNet (the scheme; :func:`deepnet` is this function).
    Not the seed's rule :func:`berry.initializations.deepnet` (He normal, fan-out).

    >>> from berry.torch.models import Transformer
    >>> model = Transformer(n_layer=4, n_embd=32, n_head=4, norm="post", naming="fairseq")
    >>> report = deepnorm(model, seed=0)
    >>> model.set_residual_scale(report.constants["decoder_alpha"])
    >>> round(report.constants["decoder_beta"], 4)
    0.4204
    """
    parameters = ModelParameters(model)
    overrides = TRANSFORMER_ROLES.overrides(roles, patterns)
    found = resolve_transformer("deepnorm", parameters, preset, overrides, architecture, encoder_layers,
                                decoder_layers)
    constants = deepnorm_constants(found.architecture, encoder_layers=found.encoder_layers,
                                   decoder_layers=found.decoder_layers)
    beta = {"encoder": constants.encoder_beta, "decoder": constants.decoder_beta}

    scheme_rules: SchemeRules = []
    role_of: dict[str, str] = {}
    for role in ("ffn", "value", "output", "query_key", "packed"):
        for name in found.roles.of(role):
            if name in role_of:
                continue
            role_of[name] = role
            b = beta[found.stack_of(name)]
            assert b is not None
            scheme_rules.append((exact(name), scaled_xavier(parameters, name, role, b if role != "query_key" else 1.0,
                                                            "normal")))
            bias = sibling_bias(name, parameters)
            if bias is not None:
                scheme_rules.append((exact(bias), "zeros"))
                role_of[bias] = f"{role} bias"
    report = apply_rules(model, scheme_rules, rules, seed)
    numbers = {k: v for k, v in dataclasses.asdict(constants).items() if v is not None}
    numbers.update(found.layer_counts())
    return SchemeReport("deepnorm", found.roles.preset, numbers, role_of, report)


#: The DeepNorm scheme under its paper's name (the seed's rule of that name is :func:`berry.initializations.deepnet`).
deepnet = deepnorm
