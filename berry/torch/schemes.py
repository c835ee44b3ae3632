"""Whole-network initialization schemes: GPT-2, DeepNet, Fixup, T-Fixup, muP, LSUV and ZerO.

Each scheme scales a network's initialization with its depth, its width or its
data, the way one paper prescribes, and applies it to a whole
``torch.nn.Module`` through :func:`berry.torch.init_model`: the scheme turns
its formulas into one rule per parameter (found by fnmatch patterns on fully
qualified names and by module type) and every parameter is then filled from
berry's keyed stream, keyed by ``(seed, fully qualified name)``. So a scheme

* gives the same values on any device, for any order of layers, and for a
  model built on the meta device and materialized later;
* is idempotent: applying it twice gives the same weights;
* leaves what it does not prescribe to ``rules=`` (your own
  :func:`~berry.torch.init_model` rules) and then to berry's defaults.

Presets name the parameters of common architectures (nanoGPT / Hugging Face
GPT-2, fairseq / torchscale, ``torch.nn.Transformer``, torchvision's ResNet,
and the models in :mod:`berry.torch.models`); ``preset="auto"`` picks the
first that fits, and keyword arguments point a scheme at your own names. A
preset that cannot find what it needs raises :class:`PresetError`, naming the
patterns it searched and the model's parameters.

The pure formulas (:func:`gpt2_residual_std`, :func:`deepnorm_constants`,
:func:`fixup_scale`, :func:`t_fixup_scales`, :func:`mup_rules`,
:func:`zero_matrix`) are exposed on their own, for other frameworks and for
checking.

>>> import torch
>>> from berry.torch.models import Transformer
>>> from berry.torch import schemes
>>> model = Transformer(n_layer=4, n_embd=32, n_head=4)
>>> report = schemes.gpt2(model, seed=0)
>>> round(report.constants["residual_std"], 5)
0.00707
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import logging
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from berry._validation import check_choice, check_int, check_positive
from berry.torch._model import InitReport, RulesLike, init_model

__all__ = [
    "ARCHITECTURES",
    "DeepNormConstants",
    "LSUVLayer",
    "LSUVReport",
    "MupParameter",
    "PresetError",
    "SchemeReport",
    "TFixupScales",
    "deepnet",
    "deepnorm_constants",
    "fixup",
    "fixup_scale",
    "gpt2",
    "gpt2_residual_std",
    "hadamard",
    "lsuv",
    "mup",
    "mup_rules",
    "t_fixup",
    "t_fixup_scales",
    "zero",
    "zero_matrix",
]

logger = logging.getLogger(__name__)

#: Transformer families for DeepNet and T-Fixup.
ARCHITECTURES = ("encoder", "decoder", "encoder-decoder")

_WRAPPER_SEGMENTS = frozenset({"_orig_mod", "_fsdp_wrapped_module", "_checkpoint_wrapped_module"})


class PresetError(LookupError, ValueError):
    """A scheme's preset (or the patterns given) does not fit the model's parameter names."""


# =============================================================================== the formulas
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

    (torchscale writes the encoder's ``0.87`` as ``1/1.15``, 0.04% apart; the
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
    """
    architecture = check_choice("architecture", architecture, ARCHITECTURES)
    n, m = _layer_counts(architecture, encoder_layers, decoder_layers)
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


def _layer_counts(
    architecture: str, encoder_layers: int | None, decoder_layers: int | None
) -> tuple[int | None, int | None]:
    need_encoder = architecture in ("encoder", "encoder-decoder")
    need_decoder = architecture in ("decoder", "encoder-decoder")
    if need_encoder and encoder_layers is None:
        raise ValueError(f"architecture={architecture!r} needs encoder_layers (N), got None")
    if need_decoder and decoder_layers is None:
        raise ValueError(f"architecture={architecture!r} needs decoder_layers (M), got None")
    n = check_int("encoder_layers", encoder_layers, minimum=1) if need_encoder else None
    m = check_int("decoder_layers", decoder_layers, minimum=1) if need_decoder else None
    return n, m


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
    n, m = _layer_counts(architecture, encoder_layers, decoder_layers)
    return TFixupScales(
        None if n is None else 0.67 * n**-0.25,
        None if m is None else (9 * m) ** -0.25,
        None if n is None else (9 * n) ** -0.25,
        None if m is None else (9 * m) ** -0.25,
    )


def hadamard(order: int) -> np.ndarray:
    """The ``2^order x 2^order`` Sylvester Hadamard matrix of +-1 entries: ``H[i, j] = (-1)^popcount(i & j)``.

    >>> hadamard(2).astype(int).tolist()
    [[1, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]]
    """
    order = check_int("order", order, minimum=0)
    index = np.arange(2**order)
    bits = np.bitwise_and.outer(index, index)
    parity = np.zeros_like(bits)
    while bits.any():
        parity ^= bits & 1
        bits >>= 1
    return np.where(parity == 1, -1.0, 1.0)


def zero_matrix(out_features: int, in_features: int, *, hadamard_scale: str = "paper") -> np.ndarray:
    """ZerO's deterministic matrix for a ``(out, in)`` weight (Zhao et al. 2021, Algorithm 1).

    "ZerO Initialization: Initializing Neural Networks with only Zeros and
    Ones". With ``P`` outputs and ``Q`` inputs (``y = W x``):

    .. math::

        W = I \\ (P = Q), \\qquad W = I^* \\ (P < Q), \\qquad
        W = c\\, I^* H_m I^* \\ (P > Q),\\ m = \\lceil \\log_2 P \\rceil,\\ c = 2^{-(m-1)/2}

    where ``I*`` is the partial identity (ones on the main diagonal of a
    rectangular matrix) and ``H_m`` the Sylvester Hadamard matrix: an
    expanding layer spreads its inputs over all outputs instead of leaving
    ``P - Q`` of them at zero. ``hadamard_scale="orthonormal"`` uses
    ``c = 2^{-m/2}`` instead (``H_m`` normalized to an orthogonal matrix, as
    the authors' published MNIST example does).

    >>> zero_matrix(2, 3).tolist()
    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    >>> (zero_matrix(3, 2) * 2**0.5).round(6).tolist()
    [[1.0, 1.0], [1.0, -1.0], [1.0, 1.0]]
    """
    out_features = check_int("out_features", out_features, minimum=1)
    in_features = check_int("in_features", in_features, minimum=1)
    hadamard_scale = check_choice("hadamard_scale", hadamard_scale, ("paper", "orthonormal"))
    if out_features <= in_features:
        return np.eye(out_features, in_features)
    order = math.ceil(math.log2(out_features))
    c = 2.0 ** (-(order - 1) / 2) if hadamard_scale == "paper" else 2.0 ** (-order / 2)
    return c * hadamard(order)[:out_features, :in_features]


@dataclasses.dataclass(frozen=True)
class MupParameter:
    """How muP treats one parameter, relative to the base model (Yang et al. 2021, Table 3).

    ``role``: ``"hidden"`` (both fans grow with width), ``"output"`` (only
    fan-in grows: readout-like), ``"input"`` (only fan-out grows, or neither:
    input weights, embeddings), ``"vector"`` (biases, norms, scalars).
    """

    name: str
    role: str
    fan_in_mult: float  #: fan-in / base fan-in
    fan_out_mult: float  #: fan-out / base fan-out
    std: float | None  #: the initial std (None: a constant, see ``init``)
    init: str  #: "normal", "zeros" or "ones"
    adam_lr_mult: float  #: multiply Adam's (and AdamW's) learning rate by this
    sgd_lr_mult: float  #: multiply SGD's learning rate by this


# =============================================================================== parameters and presets
def _canonical(parts: Sequence[str]) -> str:
    return ".".join(part for part in parts if part and part not in _WRAPPER_SEGMENTS)


def _parameters(model: nn.Module) -> Iterator[tuple[str, str, nn.Module, nn.Parameter]]:
    """(qualified name, local name, owning module, parameter), each shared parameter once, in model order.

    Names are the ones :func:`berry.torch.init_model` keys by (wrapper segments dropped).
    """
    seen: set[int] = set()
    for module_name, module in model.named_modules(remove_duplicate=False):
        for local_name, parameter in module._parameters.items():
            if parameter is None or id(parameter) in seen:
                continue
            seen.add(id(parameter))
            yield _canonical([*module_name.split("."), local_name]), local_name, module, parameter


def _exact(name: str) -> str:
    """An fnmatch pattern matching exactly ``name``."""
    return "".join(f"[{c}]" if c in "*?[]" else c for c in name)


def _matching(names: Sequence[str], patterns: Sequence[str]) -> list[str]:
    return [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]


def _patterns(argument: str, value: str | Sequence[str] | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    if not all(isinstance(v, str) for v in value):
        raise TypeError(f"{argument} must be an fnmatch pattern or a sequence of them, got {value!r}")
    return tuple(value)


def _shown(names: Sequence[str], limit: int = 16) -> str:
    return ", ".join(names[:limit]) + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def _resolve_preset(
    scheme: str,
    presets: Mapping[str, Mapping[str, tuple[str, ...]]],
    preset: str,
    overrides: Mapping[str, tuple[str, ...] | None],
    required: Sequence[Sequence[str]],
    names: Sequence[str],
) -> tuple[str, dict[str, tuple[str, ...]]]:
    """The preset's role patterns with the user's overrides; ``required``: alternatives of roles that must match."""
    choices = ("auto", *presets)
    preset = check_choice("preset", preset, choices)
    candidates = list(presets) if preset == "auto" else [preset]
    failures = []
    for candidate in candidates:
        roles = dict(presets[candidate])
        roles.update({role: patterns for role, patterns in overrides.items() if patterns is not None})
        missing = _missing_roles(roles, required, names)
        if not missing:
            return candidate, roles
        failures.append(f"preset {candidate!r}: no parameter matches {missing}")
    raise PresetError(
        f"{scheme}: cannot find the parameters it needs ({'; '.join(failures)}). "
        f"The model's parameters are: {_shown(list(names))}. "
        f"Pass preset= one of {list(presets)} or point the scheme at your names with its pattern arguments."
    )


def _missing_roles(
    roles: Mapping[str, tuple[str, ...]], required: Sequence[Sequence[str]], names: Sequence[str]
) -> dict[str, tuple[str, ...]]:
    """For each requirement (roles of which one must match), the patterns searched in vain.

    A role matches when every one of its patterns matches some parameter, so a
    preset that fits only part of a model (attention but not feed-forward
    names) is not taken for a fit.
    """
    missing: dict[str, tuple[str, ...]] = {}

    def fits(role: str) -> bool:
        patterns = roles.get(role, ())
        return bool(patterns) and all(_matching(names, (pattern,)) for pattern in patterns)

    for alternatives in required:
        if not any(fits(role) for role in alternatives):
            for role in alternatives:
                missing[role] = roles.get(role, ())
    return missing


# =============================================================================== the report
@dataclasses.dataclass(frozen=True)
class SchemeReport:
    """What a scheme did: its constants, each parameter's role, and :func:`init_model`'s report."""

    scheme: str
    preset: str | None
    constants: dict[str, float]  #: the scheme's numbers (alpha, beta, scales, depths)
    roles: dict[str, str]  #: parameter name -> the role the scheme gave it
    init: InitReport  #: what each parameter got (rule, initializer, std)

    def __getitem__(self, name: str) -> Any:
        return self.init[name]

    def table(self) -> str:
        """The constants, then one line per parameter: name, role, initializer and std."""
        lines = [f"{self.scheme} (preset {self.preset})" if self.preset else self.scheme]
        lines += [f"  {key} = {value:.6g}" for key, value in self.constants.items()]
        width = max((len(p.name) for p in self.init), default=9)
        for p in self.init:
            std = "" if p.std is None else f"{p.std:.4g}"
            lines.append(f"  {p.name.ljust(width)}  {self.roles.get(p.name, '-'):<12} {p.init:<18} {std}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def _run(
    model: nn.Module,
    scheme_rules: list[tuple[str, Any]],
    rules: RulesLike,
    seed: int,
) -> InitReport:
    """Apply ``scheme_rules`` (exact names first), then the user's ``rules``, then berry's defaults."""
    extra: list[Any] = []
    if isinstance(rules, Mapping):
        extra = list(rules.items())
    elif rules is not None:
        extra = list(rules)
    # Fixup-style multipliers named "scale" start at 1 (berry's defaults would warn about them).
    return init_model(model, [*scheme_rules, *extra, ("*:scale", "ones")], seed=seed)


# --- fills that a plain rule cannot say: blocks with their own scales, deterministic matrices
def _blocks_fill(
    tensor: torch.Tensor, *, seed: int, name: str, stds: tuple[float, ...], axis: int, distribution: str
) -> None:
    """Zero-mean values of std ``stds[i]`` on the i-th of ``len(stds)`` equal blocks along ``axis``, one stream.

    For packed q/k/v weights: the whole tensor is one keyed draw of unit variance, each block then scaled.
    """
    import berry.torch as init

    if distribution == "normal":
        init.normal_(tensor, 0.0, 1.0, seed=seed, name=name)
    else:
        init.uniform_(tensor, -math.sqrt(3.0), math.sqrt(3.0), seed=seed, name=name)
    size = tensor.shape[axis] // len(stds)
    with torch.no_grad():
        for i, std in enumerate(stds):
            tensor.narrow(axis, i * size, size).mul_(std)


def _packed_qkv(module: nn.Module, shape: tuple[int, ...]) -> tuple[int, int, int]:
    """(axis of the q/k/v blocks, fan-in, fan-out of one block) of a packed projection weight.

    torch's layout is ``(3 d, d)``; Hugging Face's GPT-2 ``Conv1D`` stores ``(d, 3 d)``.
    """
    if type(module).__name__ == "Conv1D":
        return 1, shape[0], shape[1] // 3
    return 0, shape[1], shape[0] // 3


def _zero_fill(tensor: torch.Tensor, *, seed: int, name: str, hadamard_scale: str) -> None:
    """ZerO's matrix on the (out, in) plane of the kernel's center, zeros elsewhere (deterministic)."""
    del seed, name  # ZerO uses no randomness
    matrix = torch.from_numpy(zero_matrix(tensor.shape[0], tensor.shape[1], hadamard_scale=hadamard_scale))
    full = torch.zeros(tensor.shape, dtype=torch.float64)
    center = tuple(k // 2 for k in tensor.shape[2:])
    index: tuple[Any, ...] = (slice(None), slice(None), *center)
    full[index] = matrix
    with torch.no_grad():
        tensor.copy_(full)


def _xavier_std(fan_in: int, fan_out: int, gain: float = 1.0) -> float:
    return gain * math.sqrt(2.0 / (fan_in + fan_out))


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) of a torch-layout weight ``(out, in, *kernel)``."""
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


# =============================================================================== GPT-2
GPT2_PRESETS: dict[str, dict[str, tuple[str, ...]]] = {
    "nanogpt": {"residual": ("*.attn.c_proj.weight", "*.mlp.c_proj.weight")},
    "fairseq": {"residual": ("*.self_attn.out_proj.weight", "*.fc2.weight")},
    "torch": {"residual": ("*.self_attn.out_proj.weight", "*.linear2.weight")},
}


def gpt2(
    model: nn.Module,
    *,
    seed: int = 0,
    std: float = 0.02,
    n_layer: int | None = None,
    preset: str = "auto",
    residual: str | Sequence[str] | None = None,
    rules: RulesLike = None,
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
        (``*.self_attn.out_proj.weight``, ``*.fc2.weight``) or ``"torch"``
        (``torch.nn.TransformerEncoderLayer``: ``out_proj``, ``linear2``).
    residual:
        fnmatch patterns of the residual projections, instead of the preset's.
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
    entries = list(_parameters(model))
    names = [e[0] for e in entries]
    chosen, roles = _resolve_preset(
        "gpt2", GPT2_PRESETS, preset, {"residual": _patterns("residual", residual)}, [["residual"]], names
    )
    residuals = _matching(names, roles["residual"])
    if n_layer is None:
        if len(residuals) % 2:
            raise ValueError(
                f"gpt2: found {len(residuals)} residual projections (an odd number), so n_layer cannot be "
                f"inferred as half of them; pass n_layer=. Found: {_shown(residuals)}"
            )
        n_layer = len(residuals) // 2
    residual_std = gpt2_residual_std(n_layer, std)
    scheme_rules: list[tuple[str, Any]] = [(_exact(n), {"std": residual_std}) for n in residuals]
    scheme_rules += [
        ("Linear:weight", {"std": std}),
        ("Conv1D:weight", {"std": std}),  # Hugging Face GPT-2's linear layers
        ("Embedding:weight", {"std": std}),
        ("Linear:bias", "zeros"),
        ("Conv1D:bias", "zeros"),
    ]
    report = _run(model, scheme_rules, rules, seed)
    role_of = {n: "residual" for n in residuals}
    for name, local, module, _ in entries:
        if name not in role_of and (isinstance(module, (nn.Linear, nn.Embedding)) or type(module).__name__ == "Conv1D"):
            role_of[name] = "weight" if local == "weight" else "bias"
    return SchemeReport("gpt2", chosen, {"std": std, "n_layer": float(n_layer), "residual_std": residual_std},
                        role_of, report)


# =============================================================================== DeepNet and T-Fixup
#: Attention and feed-forward weights by naming convention. ``packed``: q, k, v stacked along dim 0.
TRANSFORMER_PRESETS: dict[str, dict[str, tuple[str, ...]]] = {
    "fairseq": {
        "query_key": ("*.q_proj.weight", "*.k_proj.weight"),
        "value": ("*.v_proj.weight",),
        "output": ("*.out_proj.weight",),
        "ffn": ("*.fc1.weight", "*.fc2.weight"),
        "embedding": ("*embed_tokens.weight", "*embed_positions.weight"),
        "encoder": ("encoder.*",),
        "decoder": ("decoder.*",),
    },
    "nanogpt": {
        "packed": ("*.attn.c_attn.weight",),
        "output": ("*.attn.c_proj.weight",),
        "ffn": ("*.mlp.c_fc.weight", "*.mlp.c_proj.weight"),
        "embedding": ("*.wte.weight", "*.wpe.weight"),
        "encoder": ("encoder.*",),
        "decoder": ("decoder.*",),
    },
    "torch": {
        "packed": ("*.in_proj_weight",),
        "output": ("*.out_proj.weight",),
        "ffn": ("*.linear1.weight", "*.linear2.weight"),
        "embedding": ("*.embedding.weight",),
        "encoder": ("encoder.*",),
        "decoder": ("decoder.*",),
    },
}

_TRANSFORMER_REQUIRED = [["ffn"], ["output"], ["value", "packed"]]


def _transformer_roles(
    scheme: str,
    model: nn.Module,
    preset: str,
    overrides: Mapping[str, tuple[str, ...] | None],
    architecture: str,
    needs_embedding: bool = False,
) -> tuple[str, dict[str, tuple[str, ...]], list[tuple[str, str, nn.Module, nn.Parameter]]]:
    entries = list(_parameters(model))
    names = [e[0] for e in entries]
    required = list(_TRANSFORMER_REQUIRED)
    if architecture == "encoder-decoder":
        required += [["encoder"], ["decoder"]]
    if needs_embedding:
        required.append(["embedding"])
    chosen, roles = _resolve_preset(scheme, TRANSFORMER_PRESETS, preset, overrides, required, names)
    return chosen, roles, entries


def _stack_of(name: str, roles: Mapping[str, tuple[str, ...]], architecture: str) -> str:
    """Which stack a parameter is in: the architecture's only stack, or encoder/decoder by pattern."""
    if architecture == "encoder":
        return "encoder"
    if architecture == "decoder":
        return "decoder"
    if _matching([name], roles.get("decoder", ())):
        return "decoder"
    if _matching([name], roles.get("encoder", ())):
        return "encoder"
    raise PresetError(
        f"parameter {name!r} is in neither the encoder (patterns {roles.get('encoder')}) nor the decoder "
        f"(patterns {roles.get('decoder')}); pass encoder=/decoder= patterns"
    )


def _infer_layers(
    scheme: str, names: Sequence[str], roles: Mapping[str, tuple[str, ...]], architecture: str, stack: str
) -> int:
    """Depth of a stack: its number of output projections that are self-attention (one per layer)."""
    outputs = [n for n in _matching(names, roles["output"]) if _stack_of(n, roles, architecture) == stack]
    self_attention = [n for n in outputs if "encoder_attn" not in n and "multihead_attn" not in n]
    if not self_attention:
        raise PresetError(f"{scheme}: cannot infer the {stack}'s depth: no output projection found; pass it")
    return len(self_attention)


def _check_architecture(architecture: str | None, encoder_layers: int | None, decoder_layers: int | None) -> str:
    if architecture is None:
        if encoder_layers is not None and decoder_layers is not None:
            return "encoder-decoder"
        return "encoder" if encoder_layers is not None else "decoder"
    return check_choice("architecture", architecture, ARCHITECTURES)


def deepnet(
    model: nn.Module,
    *,
    seed: int = 0,
    architecture: str | None = None,
    encoder_layers: int | None = None,
    decoder_layers: int | None = None,
    preset: str = "auto",
    query_key: str | Sequence[str] | None = None,
    value: str | Sequence[str] | None = None,
    output: str | Sequence[str] | None = None,
    ffn: str | Sequence[str] | None = None,
    packed: str | Sequence[str] | None = None,
    encoder: str | Sequence[str] | None = None,
    decoder: str | Sequence[str] | None = None,
    rules: RulesLike = None,
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
        ``"auto"``, ``"fairseq"`` (torchscale's names too), ``"nanogpt"`` or ``"torch"``.
    query_key, value, output, ffn, packed, encoder, decoder:
        fnmatch patterns replacing the preset's for that role (``encoder``/``decoder``
        pick each stack's parameters in an encoder-decoder).
    rules:
        :func:`berry.torch.init_model` rules for the other parameters.

    Also known as: DeepNorm.

    >>> from berry.torch.models import Transformer
    >>> model = Transformer(n_layer=4, n_embd=32, n_head=4, norm="post", naming="fairseq")
    >>> report = deepnet(model, seed=0)
    >>> model.set_residual_scale(report.constants["decoder_alpha"])
    >>> round(report.constants["decoder_beta"], 4)
    0.4204
    """
    architecture = _check_architecture(architecture, encoder_layers, decoder_layers)
    overrides = {
        "query_key": _patterns("query_key", query_key), "value": _patterns("value", value),
        "output": _patterns("output", output), "ffn": _patterns("ffn", ffn),
        "packed": _patterns("packed", packed), "encoder": _patterns("encoder", encoder),
        "decoder": _patterns("decoder", decoder),
    }
    chosen, roles, entries = _transformer_roles("deepnet", model, preset, overrides, architecture)
    names = [e[0] for e in entries]
    if architecture in ("encoder", "encoder-decoder") and encoder_layers is None:
        encoder_layers = _infer_layers("deepnet", names, roles, architecture, "encoder")
    if architecture in ("decoder", "encoder-decoder") and decoder_layers is None:
        decoder_layers = _infer_layers("deepnet", names, roles, architecture, "decoder")
    constants = deepnorm_constants(architecture, encoder_layers=encoder_layers, decoder_layers=decoder_layers)
    beta = {"encoder": constants.encoder_beta, "decoder": constants.decoder_beta}

    scheme_rules: list[tuple[str, Any]] = []
    role_of: dict[str, str] = {}
    by_name = {e[0]: e for e in entries}
    for role in ("ffn", "value", "output", "query_key", "packed"):
        for name in _matching(names, roles.get(role, ())):
            if name in role_of:
                continue
            role_of[name] = role
            b = beta[_stack_of(name, roles, architecture)]
            assert b is not None
            shape = tuple(by_name[name][3].shape)
            if role == "packed":
                axis, fan_in, fan_out = _packed_qkv(by_name[name][2], shape)
                std = _xavier_std(fan_in, fan_out)
                action: Any = functools.partial(
                    _blocks_fill, stds=(std, std, std * b), axis=axis, distribution="normal"
                )
            else:
                action = {"init": "xavier", "gain": b if role != "query_key" else 1.0}
            scheme_rules.append((_exact(name), action))
            bias = _sibling_bias(name, by_name)
            if bias is not None:
                scheme_rules.append((_exact(bias), "zeros"))
                role_of[bias] = f"{role} bias"
    report = _run(model, scheme_rules, rules, seed)
    numbers = {k: v for k, v in dataclasses.asdict(constants).items() if v is not None}
    numbers.update({k: float(v) for k, v in (("encoder_layers", encoder_layers), ("decoder_layers", decoder_layers))
                    if v is not None})
    return SchemeReport("deepnet", chosen, numbers, role_of, report)


def _sibling_bias(weight_name: str, by_name: Mapping[str, Any]) -> str | None:
    """The bias next to a weight: ``x.weight`` -> ``x.bias``, ``in_proj_weight`` -> ``in_proj_bias``."""
    for suffix, bias in (("weight", "bias"), ("_weight", "_bias")):
        if weight_name.endswith(suffix):
            candidate = weight_name[: -len(suffix)] + bias
            if candidate in by_name:
                return candidate
    return None


def t_fixup(
    model: nn.Module,
    *,
    seed: int = 0,
    architecture: str | None = None,
    encoder_layers: int | None = None,
    decoder_layers: int | None = None,
    preset: str = "auto",
    distribution: str = "uniform",
    query_key: str | Sequence[str] | None = None,
    value: str | Sequence[str] | None = None,
    output: str | Sequence[str] | None = None,
    ffn: str | Sequence[str] | None = None,
    packed: str | Sequence[str] | None = None,
    embedding: str | Sequence[str] | None = None,
    encoder: str | Sequence[str] | None = None,
    decoder: str | Sequence[str] | None = None,
    rules: RulesLike = None,
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

    Parameters are as in :func:`deepnet`, plus ``embedding`` (patterns of the
    input embeddings, token and learned positions) and ``distribution``.

    >>> from berry.torch.models import Transformer
    >>> model = Transformer(n_layer=4, n_embd=32, n_head=4, norm="none", naming="fairseq", causal=False)
    >>> report = t_fixup(model, architecture="encoder", seed=0)
    >>> round(report.constants["encoder"], 4)
    0.4738
    """
    architecture = _check_architecture(architecture, encoder_layers, decoder_layers)
    distribution = check_choice("distribution", distribution, ("uniform", "normal"))
    overrides = {
        "query_key": _patterns("query_key", query_key), "value": _patterns("value", value),
        "output": _patterns("output", output), "ffn": _patterns("ffn", ffn),
        "packed": _patterns("packed", packed), "embedding": _patterns("embedding", embedding),
        "encoder": _patterns("encoder", encoder), "decoder": _patterns("decoder", decoder),
    }
    chosen, roles, entries = _transformer_roles("t_fixup", model, preset, overrides, architecture)
    names = [e[0] for e in entries]
    if architecture in ("encoder", "encoder-decoder") and encoder_layers is None:
        encoder_layers = _infer_layers("t_fixup", names, roles, architecture, "encoder")
    if architecture in ("decoder", "encoder-decoder") and decoder_layers is None:
        decoder_layers = _infer_layers("t_fixup", names, roles, architecture, "decoder")
    scales = t_fixup_scales(architecture, encoder_layers=encoder_layers, decoder_layers=decoder_layers)
    layer_scale = {"encoder": scales.encoder, "decoder": scales.decoder}
    embedding_scale = {"encoder": scales.encoder_embedding, "decoder": scales.decoder_embedding}

    by_name = {e[0]: e for e in entries}
    scheme_rules: list[tuple[str, Any]] = []
    role_of: dict[str, str] = {}
    for role in ("embedding", "ffn", "value", "output", "query_key", "packed"):
        for name in _matching(names, roles.get(role, ())):
            if name in role_of:
                continue
            role_of[name] = role
            stack = _stack_of(name, roles, architecture)
            shape = tuple(by_name[name][3].shape)
            if role == "embedding":
                e_scale = embedding_scale[stack]
                assert e_scale is not None
                scheme_rules.append((_exact(name), {"std": shape[-1] ** -0.5 * e_scale}))
                continue
            scale = layer_scale[stack] if role != "query_key" else 1.0
            assert scale is not None
            if role == "packed":
                axis, fan_in, fan_out = _packed_qkv(by_name[name][2], shape)
                std = _xavier_std(fan_in, fan_out)
                action: Any = functools.partial(
                    _blocks_fill, stds=(std, std, std * scale), axis=axis, distribution=distribution
                )
            else:
                action = {"init": "xavier", "gain": scale, "distribution": distribution}
            scheme_rules.append((_exact(name), action))
    scheme_rules += [
        ("Linear:weight", {"init": "xavier", "distribution": distribution}),
        ("Conv1D:weight", {"init": "xavier", "distribution": distribution}),
        ("Linear:bias", "zeros"),
        ("Conv1D:bias", "zeros"),
        ("MultiheadAttention:*bias*", "zeros"),
    ]
    report = _run(model, scheme_rules, rules, seed)
    numbers = {k: v for k, v in dataclasses.asdict(scales).items() if v is not None}
    numbers.update({k: float(v) for k, v in (("encoder_layers", encoder_layers), ("decoder_layers", decoder_layers))
                    if v is not None})
    return SchemeReport("t_fixup", chosen, numbers, role_of, report)


# =============================================================================== Fixup
FIXUP_PRESETS: dict[str, dict[str, tuple[str, ...]]] = {
    "residual_mlp": {
        "branch": ("blocks.*.layers.*.weight",),
        "classifier": ("head.weight", "head.bias"),
        "scalar_bias": ("blocks.*.bias[0-9]*",),
        "multiplier": ("blocks.*.scale",),
    },
    "resnet": {  # torchvision names; Fixup's scalars as the authors name them (bias1a, scale, ...)
        "branch": ("layer*.*.conv*.weight",),
        "classifier": ("fc.weight", "fc.bias"),
        "scalar_bias": ("*bias[12][ab]", "bias[12]"),
        "multiplier": ("*.scale",),
    },
}


def fixup(
    model: nn.Module,
    *,
    seed: int = 0,
    preset: str = "auto",
    branch: str | Sequence[str] | None = None,
    classifier: str | Sequence[str] | None = None,
    scalar_bias: str | Sequence[str] | None = None,
    multiplier: str | Sequence[str] | None = None,
    branch_depth: int = 2,
    mode: str = "fan_in",
    rules: RulesLike = None,
) -> SchemeReport:
    """Fixup (Zhang et al. 2019, "Fixup Initialization: Residual Learning Without Normalization").

    Trains deep residual networks without normalization:

    1. the classification layer and the last layer of each residual branch start at 0;
    2. the other layers of each branch get He normal, scaled by :func:`fixup_scale`;
    3. the scalar biases start at 0 and the scalar multipliers at 1 (the model adds them).

    .. math:: W_{branch, i<m} \\sim \\mathcal{N}\\!\\left(0, \\frac{2}{n} L^{-\\frac{2}{2m-2}}\\right),
        \\qquad W_{branch, m} = 0, \\qquad W_{classifier} = 0

    with ``L`` the number of residual branches and ``m`` the layers of each
    (counted per branch). Other weights (stem, shortcut projections) get He
    normal unscaled; other biases zero.

    Parameters
    ----------
    model:
        A residual network, e.g. :class:`berry.torch.models.ResidualMLP` with
        ``fixup=True`` or :class:`berry.torch.models.ResNet` with ``norm="none"``.
    seed:
        berry's seed.
    preset:
        ``"auto"``, ``"residual_mlp"`` or ``"resnet"`` (torchvision's names).
    branch:
        fnmatch patterns of the weights inside residual branches, in forward order.
    classifier:
        Patterns of the classification layer's parameters (set to zero).
    scalar_bias, multiplier:
        Patterns of Fixup's scalar biases (0) and multipliers (1).
    branch_depth:
        How many leading components of a branch weight's name identify its
        branch (``"layer1.0.conv2.weight"`` -> ``"layer1.0"`` with 2).
    mode:
        He's fan, ``"fan_in"`` (default) or ``"fan_out"`` (what the authors'
        ResNet code uses for convolutions).
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
    entries = list(_parameters(model))
    names = [e[0] for e in entries]
    overrides = {
        "branch": _patterns("branch", branch), "classifier": _patterns("classifier", classifier),
        "scalar_bias": _patterns("scalar_bias", scalar_bias), "multiplier": _patterns("multiplier", multiplier),
    }
    chosen, roles = _resolve_preset("fixup", FIXUP_PRESETS, preset, overrides, [["branch"], ["classifier"]], names)
    branches: dict[str, list[str]] = {}
    for name in _matching(names, roles["branch"]):
        branches.setdefault(".".join(name.split(".")[:branch_depth]), []).append(name)
    n_branches = len(branches)
    by_name = {e[0]: e for e in entries}
    scheme_rules: list[tuple[str, Any]] = []
    role_of: dict[str, str] = {}
    depths = set()
    for layers in branches.values():
        depths.add(len(layers))
        scale = fixup_scale(n_branches, len(layers))
        for i, name in enumerate(layers):
            if i == len(layers) - 1:
                scheme_rules.append((_exact(name), "zeros"))
                role_of[name] = "branch last"
            else:
                fan_in, fan_out = _fans(tuple(by_name[name][3].shape))
                std = math.sqrt(2.0 / (fan_in if mode == "fan_in" else fan_out)) * scale
                scheme_rules.append((_exact(name), {"std": std}))
                role_of[name] = "branch"
    for role, action in (("classifier", "zeros"), ("scalar_bias", "zeros"), ("multiplier", "ones")):
        for name in _matching(names, roles.get(role, ())):
            if name not in role_of:
                scheme_rules.append((_exact(name), action))
                role_of[name] = role
    for name, local, module, parameter in entries:
        if name in role_of or not isinstance(module, (nn.Linear, nn.modules.conv._ConvNd)):
            continue
        if local == "weight":
            fan_in, fan_out = _fans(tuple(parameter.shape))
            scheme_rules.append((_exact(name), {"std": math.sqrt(2.0 / (fan_in if mode == "fan_in" else fan_out))}))
            role_of[name] = "he"
        elif local == "bias":
            scheme_rules.append((_exact(name), "zeros"))
            role_of[name] = "bias"
    report = _run(model, scheme_rules, rules, seed)
    constants = {"n_branches": float(n_branches), "branch_layers": float(max(depths, default=0))}
    if len(depths) == 1:
        constants["scale"] = fixup_scale(n_branches, depths.pop())
    return SchemeReport("fixup", chosen, constants, role_of, report)


# =============================================================================== muP
MUP_PRESETS: dict[str, dict[str, tuple[str, ...]]] = {
    "nanogpt": {"readout": ("lm_head.weight",)},
    "fairseq": {"readout": ("output_projection.weight",)},
    "mlp": {"readout": ("head.weight",)},
    "resnet": {"readout": ("fc.weight",)},
    "none": {"readout": ()},
}


def mup_rules(
    shape: Sequence[int],
    base_shape: Sequence[int],
    *,
    kind: str = "weight",
    init_std: float | None = None,
    readout: bool = False,
    readout_init: str = "zero",
    name: str = "",
) -> MupParameter:
    """muP's treatment of one parameter from its shape and its base model's shape (Tensor Programs V, Table 3).

    Yang et al. (2021), "Tensor Programs V: Tuning Large Neural Networks via
    Zero-Shot Hyperparameter Transfer". A dimension that differs from the base
    model's grows with width; with ``r_in``, ``r_out`` the fan-in and fan-out
    width multipliers (1 when a fan does not grow) and ``sigma_0`` the
    standard deviation at the base shape (``init_std``, else ``1/sqrt(fan_in)``
    at the base; an embedding's 1):

    .. math::

        \\text{hidden (both fans grow):}\\ \\sigma = \\sigma_0 / \\sqrt{r_{in}},\\
        \\eta_{Adam} \\propto 1/r_{in},\\ \\eta_{SGD} \\propto 1 \\\\
        \\text{output (only fan-in grows):}\\ \\sigma = \\sigma_0 / r_{in}\\ \\text{(or 0)},\\
        \\eta_{Adam} \\propto 1/r_{in},\\ \\eta_{SGD} \\propto 1/r_{in} \\\\
        \\text{input, biases, vectors:}\\ \\sigma = \\sigma_0,\\
        \\eta_{Adam} \\propto 1,\\ \\eta_{SGD} \\propto r_{out}

    At the base shape every rule is the standard parametrization, so a model
    tuned at the base width transfers its hyperparameters.

    Parameters
    ----------
    shape, base_shape:
        The parameter's shape and its shape in the base model (torch layout ``(out, in, *kernel)``).
    kind:
        ``"weight"``, ``"embedding"`` (layout ``(vocab, dim)``), ``"bias"`` or ``"norm"``.
    init_std:
        ``sigma_0`` (e.g. 0.02 for GPT-style models); default as above.
    readout:
        Whether this is the readout (output) layer, which ``readout_init="zero"`` zeroes.
    readout_init:
        ``"zero"`` or ``"scaled"``.
    name:
        The parameter's name, carried into the result.

    >>> rule = mup_rules((256, 256), (64, 64))
    >>> rule.role, rule.fan_in_mult, round(rule.std, 4), rule.adam_lr_mult
    ('hidden', 4.0, 0.0625, 0.25)
    """
    shape, base_shape = tuple(shape), tuple(base_shape)
    kind = check_choice("kind", kind, ("weight", "embedding", "bias", "norm"))
    readout_init = check_choice("readout_init", readout_init, ("zero", "scaled"))
    if len(shape) != len(base_shape):
        raise ValueError(f"shape {shape} and base_shape {base_shape} must have the same number of dimensions")
    if kind in ("bias", "norm") or len(shape) < 2:
        out_mult = shape[0] / base_shape[0] if shape else 1.0
        init = "ones" if kind == "norm" else "zeros"
        return MupParameter(name, "vector", 1.0, out_mult, None, init, 1.0, out_mult)
    if kind == "embedding":  # (vocab, dim): vocab is the fan-in, dim the fan-out
        out_mult = shape[1] / base_shape[1]
        return MupParameter(name, "input", 1.0, out_mult, 1.0 if init_std is None else init_std, "normal", 1.0, out_mult)
    receptive, base_receptive = math.prod(shape[2:]), math.prod(base_shape[2:])
    in_mult = (shape[1] * receptive) / (base_shape[1] * base_receptive)
    out_mult = shape[0] / base_shape[0]
    std0 = 1.0 / math.sqrt(base_shape[1] * base_receptive) if init_std is None else init_std
    grows_in, grows_out = in_mult != 1.0, out_mult != 1.0
    if readout or (grows_in and not grows_out):
        if readout and readout_init == "zero":
            return MupParameter(name, "output", in_mult, out_mult, None, "zeros", 1.0 / in_mult, 1.0 / in_mult)
        return MupParameter(name, "output", in_mult, out_mult, std0 / in_mult, "normal", 1.0 / in_mult, 1.0 / in_mult)
    if grows_in and grows_out:
        return MupParameter(name, "hidden", in_mult, out_mult, std0 / math.sqrt(in_mult), "normal", 1.0 / in_mult, 1.0)
    return MupParameter(name, "input", in_mult, out_mult, std0, "normal", 1.0, out_mult)


def _base_shapes(base: nn.Module | Mapping[str, Sequence[int]]) -> dict[str, tuple[int, ...]]:
    if isinstance(base, nn.Module):
        return {name: tuple(p.shape) for name, _, _, p in _parameters(base)}
    if isinstance(base, Mapping):
        return {str(k): tuple(int(d) for d in v) for k, v in base.items()}
    raise TypeError(f"base must be a torch.nn.Module (any device, e.g. meta) or a dict name -> shape, got {base!r}")


@dataclasses.dataclass(frozen=True)
class MupReport(SchemeReport):
    """A :class:`SchemeReport` with muP's per-parameter treatment and learning-rate multipliers."""

    parameters: dict[str, MupParameter] = dataclasses.field(default_factory=dict)

    def param_groups(self, model: nn.Module, lr: float, optimizer: str = "adam") -> list[dict[str, Any]]:
        """Parameter groups with muP's per-layer learning rates for ``torch.optim`` (``"adam"``/``"adamw"``/``"sgd"``).

        >>> # optimizer = torch.optim.AdamW(report.param_groups(model, 1e-3, "adamw"))
        """
        optimizer = check_choice("optimizer", optimizer, ("adam", "adamw", "sgd"))
        lr = check_positive("lr", lr)
        groups: dict[float, list[nn.Parameter]] = {}
        for name, _, _, parameter in _parameters(model):
            entry = self.parameters.get(name)
            mult = 1.0 if entry is None else (entry.sgd_lr_mult if optimizer == "sgd" else entry.adam_lr_mult)
            groups.setdefault(mult, []).append(parameter)
        return [{"params": params, "lr": lr * mult} for mult, params in groups.items()]


def mup(
    model: nn.Module,
    base: nn.Module | Mapping[str, Sequence[int]],
    *,
    seed: int = 0,
    init_std: float | None = None,
    readout_init: str = "zero",
    preset: str = "auto",
    readout: str | Sequence[str] | None = None,
    rules: RulesLike = None,
) -> MupReport:
    """muP's initialization (Yang et al. 2021, "Tensor Programs V"), relative to a base model.

    Give the same architecture at the base width as ``base`` (built on
    ``torch.device("meta")`` it costs nothing) or its ``{name: shape}``; every
    dimension that differs grows with width. Each parameter then gets the
    standard deviation of :func:`mup_rules` (hidden weights
    ``sigma_0/sqrt(r)``, readout zero or ``sigma_0/r``, input weights and
    embeddings unchanged), biases zero and norms one.

    .. math:: \\sigma_{hidden} = \\frac{\\sigma_0}{\\sqrt{r_{in}}}, \\qquad
        \\sigma_{out} = \\frac{\\sigma_0}{r_{in}}\\ \\text{or}\\ 0, \\qquad \\sigma_{in} = \\sigma_0

    muP is more than an initialization. The model and the optimizer must also:

    * score attention by ``q.k / d_head`` instead of ``q.k / sqrt(d_head)``
      (``Transformer(attention_scale="mup")`` in :mod:`berry.torch.models`);
    * use per-layer learning rates: Adam's divided by ``r_in`` for hidden and
      output weights, SGD's multiplied by ``r_out`` for input weights and
      biases and divided by ``r_in`` for the readout. ``report.param_groups(model, lr)``
      builds the groups for ``torch.optim``.

    Parameters
    ----------
    model:
        The model to initialize (the target width).
    base:
        The base model or its parameter shapes.
    seed:
        berry's seed.
    init_std:
        ``sigma_0``; by default ``1/sqrt(fan_in)`` at the base shape (1 for embeddings).
    readout_init:
        ``"zero"`` (the paper's recommendation) or ``"scaled"`` (``sigma_0 / r_in``).
    preset:
        ``"auto"``, ``"nanogpt"`` (``lm_head``), ``"fairseq"``
        (``output_projection``), ``"mlp"`` (``head``), ``"resnet"`` (``fc``) or
        ``"none"`` (no separate readout, e.g. tied embeddings).
    readout:
        Patterns of the readout weight, instead of the preset's.
    rules:
        :func:`berry.torch.init_model` rules for parameters of other module types.

    >>> import torch
    >>> from berry.torch.models import Transformer
    >>> with torch.device("meta"):
    ...     base = Transformer(n_embd=32, n_head=4, attention_scale="mup")
    >>> model = Transformer(n_embd=128, n_head=4, attention_scale="mup")
    >>> report = mup(model, base, seed=0)
    >>> report.parameters["transformer.h.0.mlp.c_fc.weight"].role
    'hidden'
    >>> float(model.lm_head.weight.detach().abs().max())
    0.0
    """
    readout_init = check_choice("readout_init", readout_init, ("zero", "scaled"))
    if init_std is not None:
        init_std = check_positive("init_std", init_std)
    base_shapes = _base_shapes(base)
    entries = list(_parameters(model))
    names = [e[0] for e in entries]
    chosen, roles = _resolve_preset(
        "mup", MUP_PRESETS, preset, {"readout": _patterns("readout", readout)}, [["readout"]], names
    ) if preset != "none" else ("none", {"readout": ()})
    readouts = set(_matching(names, roles["readout"]))
    missing = [n for n in names if n not in base_shapes]
    if missing:
        raise PresetError(
            f"mup: the base model has no parameters named {_shown(missing)}; it must be the same architecture "
            f"at the base width. The base has: {_shown(list(base_shapes))}"
        )
    scheme_rules: list[tuple[str, Any]] = []
    info: dict[str, MupParameter] = {}
    for name, local, module, parameter in entries:
        shape, base_shape = tuple(parameter.shape), base_shapes[name]
        if len(shape) != len(base_shape):
            raise ValueError(f"mup: {name} has shape {shape} but shape {base_shape} in the base model")
        if isinstance(module, (nn.Embedding, nn.EmbeddingBag)):
            kind = "embedding"
        elif isinstance(module, (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._NormBase)) and local == "weight":
            kind = "norm"
        elif len(shape) < 2:
            kind = "bias"
        else:
            kind = "weight"
        if kind == "weight" and not isinstance(module, (nn.Linear, nn.modules.conv._ConvNd)) and name not in readouts:
            continue  # other module types: the user's rules, then berry's defaults
        rule = mup_rules(shape, base_shape, kind=kind, init_std=init_std, readout=name in readouts,
                         readout_init=readout_init, name=name)
        info[name] = rule
        if kind == "bias" and not (local.endswith("bias") or isinstance(module, (nn.Linear, nn.modules.conv._ConvNd))):
            continue  # a scalar or vector of another kind: leave it to the rules
        scheme_rules.append((_exact(name), {"std": rule.std} if rule.init == "normal" else rule.init))
    report = _run(model, scheme_rules, rules, seed)
    role_of = {name: entry.role for name, entry in info.items()}
    widths = [e.fan_in_mult for e in info.values() if e.role == "hidden"]
    constants = {"width_mult": max(widths, default=1.0)}
    return MupReport("mup", chosen, constants, role_of, report, parameters=info)


# =============================================================================== LSUV
@dataclasses.dataclass(frozen=True)
class LSUVLayer:
    """LSUV's progress on one layer."""

    name: str  #: the module's qualified name
    iterations: int  #: rescalings applied
    std_before: float  #: output std after the orthonormal start
    std_after: float  #: output std at the end
    variance: float  #: output variance at the end
    converged: bool  #: whether ``|variance - 1| < tol``


@dataclasses.dataclass(frozen=True)
class LSUVReport:
    """What :func:`lsuv` did: the orthonormal start and each layer's rescaling, in forward order."""

    tol: float
    max_iter: int
    layers: tuple[LSUVLayer, ...]
    init: InitReport

    @property
    def converged(self) -> bool:
        """Whether every layer ended within the tolerance."""
        return all(layer.converged for layer in self.layers)

    def table(self) -> str:
        """One line per layer: name, iterations, output std before and after, converged."""
        width = max((len(layer.name) for layer in self.layers), default=5)
        lines = [f"{'layer'.ljust(width)}  iters  std before  std after  ok"]
        for layer in self.layers:
            lines.append(
                f"{layer.name.ljust(width)}  {layer.iterations:5d}  {layer.std_before:10.4f}  "
                f"{layer.std_after:9.4f}  {'yes' if layer.converged else 'NO'}"
            )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


class _Stop(Exception):
    """Raised by a hook to end a forward pass once the layer of interest has run."""


def lsuv(
    model: nn.Module,
    batch: Any,
    *,
    seed: int = 0,
    tol: float = 0.1,
    max_iter: int = 10,
    layer_types: tuple[type[nn.Module], ...] = (nn.Linear, nn.modules.conv._ConvNd),
    rules: RulesLike = None,
    verbose: bool = False,
    callback: Callable[[LSUVLayer], None] | None = None,
) -> LSUVReport:
    """Layer-sequential unit-variance initialization (Mishkin & Matas 2016, "All you need is a good init").

    1. Every weight of ``layer_types`` starts orthonormal (Saxe et al. 2014),
       keyed by berry's seed and its name; their biases start at zero.
    2. For each such layer in forward order, forward ``batch`` through the
       model and divide the layer's weight by the standard deviation of its
       output, until the output variance is within ``tol`` of 1 or
       ``max_iter`` rescalings are done:

    .. math:: W_l \\leftarrow \\frac{W_l}{\\sqrt{\\operatorname{Var}(B_l)}}
        \\quad \\text{until} \\quad |\\operatorname{Var}(B_l) - 1| < t_{var}

    The forward passes run without gradients in eval mode (the mode is
    restored) and stop at the layer being scaled, so the cost is about
    ``layers x (iterations + 1)`` partial forward passes. The result depends
    on the batch: the same model, seed and batch give the same weights
    (applying twice changes nothing).

    Parameters
    ----------
    model:
        The model.
    batch:
        Its input (a tensor, or a tuple of positional arguments).
    seed:
        berry's seed for the orthonormal start.
    tol:
        Tolerance on the output variance (the paper's ``t_var``, 0.1).
    max_iter:
        Most rescalings per layer (the paper's ``T_max``, 10).
    layer_types:
        Module types whose output is normalized.
    rules:
        :func:`berry.torch.init_model` rules for other parameters.
    verbose:
        Print each layer's line as it finishes (also logged at INFO on ``berry.torch.schemes``).
    callback:
        Called with each :class:`LSUVLayer` as it finishes.

    Also known as: LSUV.

    >>> import torch
    >>> from berry.torch.models import ResidualMLP
    >>> model = ResidualMLP(in_features=8, width=32, depth=3, out_features=4)
    >>> report = lsuv(model, torch.randn(256, 8, generator=torch.Generator().manual_seed(0)), seed=0)
    >>> report.converged
    True
    """
    tol = check_positive("tol", tol)
    max_iter = check_int("max_iter", max_iter, minimum=1)
    if not (isinstance(layer_types, tuple) and all(isinstance(t, type) for t in layer_types)):
        raise TypeError(f"layer_types must be a tuple of nn.Module classes, got {layer_types!r}")
    arguments = batch if isinstance(batch, tuple) else (batch,)
    scheme_rules: list[tuple[str, Any]] = []
    targets = [(name, module) for name, module in model.named_modules() if isinstance(module, layer_types)]
    for module_name, module in targets:
        weight = getattr(module, "weight", None)
        if isinstance(weight, nn.Parameter):
            scheme_rules.append((_exact(_canonical([module_name, "weight"])), {"init": "orthogonal", "layout": "torch"}))
        bias = getattr(module, "bias", None)
        if isinstance(bias, nn.Parameter):
            scheme_rules.append((_exact(_canonical([module_name, "bias"])), "zeros"))
    if not targets:
        raise PresetError(
            f"lsuv: the model has no layers of types {[t.__name__ for t in layer_types]}; "
            f"its modules are: {_shown([type(m).__name__ for _, m in model.named_modules()])}"
        )
    report = _run(model, scheme_rules, rules, seed)

    order = _forward_order(model, targets, arguments)
    was_training = model.training
    model.eval()
    records = []
    try:
        with torch.no_grad():
            for name, module in order:
                weight = cast(torch.Tensor, module.weight)
                variance = _output_variance(model, module, arguments)
                std_before, iterations = math.sqrt(variance), 0
                while abs(variance - 1.0) >= tol and iterations < max_iter and math.isfinite(variance) and variance > 0:
                    weight.div_(math.sqrt(variance))
                    iterations += 1
                    variance = _output_variance(model, module, arguments)
                record = LSUVLayer(name, iterations, std_before, math.sqrt(max(variance, 0.0)), variance,
                                   abs(variance - 1.0) < tol)
                records.append(record)
                logger.info("lsuv %s: %d iterations, std %.4g -> %.4g", name, iterations, std_before, record.std_after)
                if verbose:
                    print(f"lsuv {name}: {iterations} iterations, std {std_before:.4g} -> {record.std_after:.4g}")
                if callback is not None:
                    callback(record)
    finally:
        model.train(was_training)
    return LSUVReport(tol, max_iter, tuple(records), report)


def _forward_order(
    model: nn.Module, targets: list[tuple[str, nn.Module]], arguments: tuple[Any, ...]
) -> list[tuple[str, nn.Module]]:
    """The target layers in the order the forward pass first calls them (layers never called are skipped)."""
    order: list[tuple[str, nn.Module]] = []
    seen: set[int] = set()

    def hook_for(name: str) -> Callable[..., None]:
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            if id(module) not in seen:
                seen.add(id(module))
                order.append((name, module))

        return hook

    handles = [module.register_forward_hook(hook_for(name)) for name, module in targets]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(*arguments)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return order


def _output_variance(model: nn.Module, module: nn.Module, arguments: tuple[Any, ...]) -> float:
    captured: list[torch.Tensor] = []

    def hook(_: nn.Module, inputs: Any, output: Any) -> None:
        captured.append(output.detach())
        raise _Stop

    handle = module.register_forward_hook(hook)
    try:
        model(*arguments)
    except _Stop:
        pass
    finally:
        handle.remove()
    if not captured:
        raise RuntimeError(f"lsuv: the layer {module} was not called by the forward pass")
    return float(captured[0].double().var())


# =============================================================================== ZerO
ZERO_PRESETS: dict[str, dict[str, tuple[str, ...]]] = {
    "residual_mlp": {"zero": ("blocks.*.layers.*.weight",), "classifier": ("head.weight", "head.bias")},
    "resnet": {"zero": ("layer*.*.conv*.weight",), "classifier": ("fc.weight", "fc.bias")},
    "mlp": {"zero": (), "classifier": ()},
}


def zero(
    model: nn.Module,
    *,
    preset: str = "auto",
    zero: str | Sequence[str] | None = None,
    classifier: str | Sequence[str] | None = None,
    branch_depth: int = 2,
    hadamard_scale: str = "paper",
    rules: RulesLike = None,
) -> SchemeReport:
    """ZerO initialization (Zhao et al. 2021, "ZerO Initialization: Initializing Neural Networks with only Zeros and Ones").

    Deterministic: every ``Linear`` and convolution weight gets
    :func:`zero_matrix` (identity, partial identity, or a scaled Hadamard
    transform where the layer expands; on a convolution, at the kernel's
    center), except that the last layer of each residual branch and the
    classifier start at zero, as the paper does for ResNets; biases zero.

    .. math:: W = I,\\ I^*\\ \\text{or}\\ c\\, I^* H_m I^*, \\qquad W_{branch, last} = 0

    Parameters
    ----------
    model:
        The model.
    preset:
        ``"auto"``, ``"residual_mlp"``, ``"resnet"`` (torchvision names) or
        ``"mlp"`` (no residual branches: every layer gets Algorithm 1).
    zero:
        Patterns of residual-branch weights; the last of each branch is zeroed.
    classifier:
        Patterns of the classifier's parameters (zeroed).
    branch_depth:
        Leading name components that identify a branch (as in :func:`fixup`).
    hadamard_scale:
        ``"paper"`` (``c = 2^{-(m-1)/2}``) or ``"orthonormal"`` (``2^{-m/2}``).
    rules:
        :func:`berry.torch.init_model` rules for other parameters.

    There is no seed: ZerO uses no randomness.

    >>> from berry.torch.models import ResidualMLP
    >>> model = ResidualMLP(in_features=4, width=8, depth=2, out_features=3)
    >>> report = zero(model)
    >>> model.blocks[0].layers[0].weight.diagonal().tolist() == [1.0] * 8, float(model.blocks[0].layers[1].weight.detach().abs().max())
    (True, 0.0)
    """
    branch_depth = check_int("branch_depth", branch_depth, minimum=1)
    hadamard_scale = check_choice("hadamard_scale", hadamard_scale, ("paper", "orthonormal"))
    entries = list(_parameters(model))
    names = [e[0] for e in entries]
    overrides = {"zero": _patterns("zero", zero), "classifier": _patterns("classifier", classifier)}
    if preset == "mlp":
        chosen, roles = "mlp", {**ZERO_PRESETS["mlp"], **{k: v for k, v in overrides.items() if v is not None}}
    else:
        chosen, roles = _resolve_preset("zero", ZERO_PRESETS, preset, overrides, [["zero"]], names)
    branches: dict[str, list[str]] = {}
    for name in _matching(names, roles["zero"]):
        branches.setdefault(".".join(name.split(".")[:branch_depth]), []).append(name)
    role_of = {layers[-1]: "branch last" for layers in branches.values()}
    role_of.update({name: "classifier" for name in _matching(names, roles["classifier"])})
    scheme_rules: list[tuple[str, Any]] = [(_exact(name), "zeros") for name in role_of]
    fill = functools.partial(_zero_fill, hadamard_scale=hadamard_scale)
    for name, local, module, _ in entries:
        if name in role_of or not isinstance(module, (nn.Linear, nn.modules.conv._ConvNd)):
            continue
        if local == "weight":
            scheme_rules.append((_exact(name), fill))
            role_of[name] = "zero_matrix"
        elif local == "bias":
            scheme_rules.append((_exact(name), "zeros"))
            role_of[name] = "bias"
    report = _run(model, scheme_rules, rules, 0)
    return SchemeReport("zero", chosen, {"n_branches": float(len(branches))}, role_of, report)
