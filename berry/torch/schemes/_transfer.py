"""Hyperparameter transfer across width and depth: CompleteP (depth-muP) and the spectral condition.

Like :func:`berry.torch.schemes.mup`, each is an initialization *and* a set
of per-parameter learning-rate (and AdamW epsilon / weight-decay) multipliers
the optimizer must use, returned as ``report.param_groups(model, lr)``, and
sometimes a forward multiplier the model must apply (CompleteP's residual
branch multiplier ``L^-alpha``), returned in ``report.constants``.

Why u-muP is not here
---------------------
u-muP (Blake et al. 2024, "u-muP: The Unit-Scaled Maximal Update
Parametrization") is unit scaling (Blake et al. 2023) plus muP's rules. Its
initialization part is expressible (every weight ``N(0, 1)``), and so are its
per-layer learning-rate rules. What is not expressible as initialization
plus per-op scale factors on the user's modules:

1. unit scaling gives a matmul *different* scales in the forward pass
   (``1/sqrt(fan_in)``), for the input's gradient (``1/sqrt(fan_out)``) and
   for the weight's gradient (``1/sqrt(batch)``); a forward multiplier (a
   hook, a parametrization) scales all three alike, so the backward scales
   need custom autograd functions inside every op;
2. it replaces the nonlinearities, the attention softmax and the loss with
   unit-scaled versions (``scaled_gelu``/``silu`` with ``alpha`` multipliers,
   ``softmax(alpha_attn q.k / d_head)``, a scaled cross entropy), which user
   code calls as functions (``F.gelu``, ``F.scaled_dot_product_attention``)
   where no hook can reach;
3. its residual rule rescales the skip path itself
   (``x_{l+1} = a_l x_l + b_l f(x_l)`` with ``tau``-dependent ``a_l, b_l``), a
   change to the model's ``x + f(x)`` expression, not to any parameter.

So u-muP needs the model written with its scaled ops (Graphcore's
``unit-scaling`` library provides them); berry does not pretend otherwise.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from berry._validation import check_choice, check_int, check_positive
from berry.torch._model import RulesLike
from berry.torch.schemes._report import SchemeReport, SchemeRules, apply_rules
from berry.torch.schemes._roles import (
    ModelParameters,
    Patterns,
    PatternsLike,
    Preset,
    PresetError,
    RoleTable,
    exact,
    shown,
)
from berry.torch.schemes._sites import is_norm, layer_index, linear_fans

__all__ = [
    "COMPLETEP_PRESETS",
    "COMPLETEP_ROLES",
    "CompletePParameter",
    "CompletePReport",
    "SpectralParameter",
    "SpectralReport",
    "completep",
    "spectral",
    "spectral_std",
]

COMPLETEP_ROLES = RoleTable(
    "completep",
    roles=("embedding", "blocks", "readout"),
    presets=(
        Preset("gpt2", {"embedding": ("*.wte.weight", "*.wpe.weight"), "blocks": ("*.h.*",), "readout": ("*lm_head.*",)}),
        Preset("llama", {"embedding": ("*embed_tokens.weight",), "blocks": ("*layers.*",), "readout": ("*lm_head.*",)}),
        Preset("residual_mlp", {"embedding": ("stem.*",), "blocks": ("blocks.*",), "readout": ("head.*",)}),
    ),
    required=(("blocks",),),
)
COMPLETEP_PRESETS: dict[str, dict[str, Patterns]] = COMPLETEP_ROLES.as_dict()


def _param_groups(model: nn.Module, options: Mapping[str, dict[str, float]], base: dict[str, float]) -> list[dict[str, Any]]:
    """``torch.optim`` groups: parameters with the same options together, in model order."""
    groups: dict[tuple[tuple[str, float], ...], list[nn.Parameter]] = {}
    for entry in ModelParameters(model):
        key = tuple(sorted(options.get(entry.name, base).items()))
        groups.setdefault(key, []).extend(entry.tensors)  # a parametrized weight trains through its originals
    return [{"params": params, **dict(key)} for key, params in groups.items()]


def _vector_init(entry: Any) -> str | None:
    """A norm's gain 1, a norm's or a layer's bias 0; None for other vectors (scalars, gates: the user's rules)."""
    module = entry.module
    if is_norm(module):
        return "ones" if entry.local_name == "weight" else "zeros"
    layer = isinstance(module, (nn.Linear, nn.modules.conv._ConvNd)) or type(module).__name__ == "Conv1D"
    return "zeros" if layer and entry.local_name == "bias" else None


# ----------------------------------------------------------------------------- CompleteP
@dataclasses.dataclass(frozen=True)
class CompletePParameter:
    """CompleteP's treatment of one parameter (Dey et al. 2025, Table 1), as multipliers of the base values."""

    name: str
    role: str  #: "embedding", "hidden weight", "hidden vector", "readout", "outer vector"
    std: float | None  #: initial std (None: ones or zeros)
    lr_mult: float  #: multiply the base Adam(W) learning rate by this
    eps_mult: float  #: multiply the base AdamW epsilon by this
    weight_decay_mult: float  #: multiply the base (decoupled) weight decay by this; 0 for vectors


@dataclasses.dataclass(frozen=True)
class CompletePReport(SchemeReport):
    """A :class:`SchemeReport` with CompleteP's per-parameter multipliers; ``constants`` holds the forward ones."""

    parameters: dict[str, CompletePParameter] = dataclasses.field(default_factory=dict)

    def param_groups(
        self, model: nn.Module, lr: float, *, weight_decay: float = 0.0, eps: float = 1e-8
    ) -> list[dict[str, Any]]:
        """AdamW groups with CompleteP's learning rates, epsilons and weight decays (from the base values).

        >>> # optimizer = torch.optim.AdamW(report.param_groups(model, 1e-3, weight_decay=0.1))
        """
        lr = check_positive("lr", lr)
        weight_decay = check_positive("weight_decay", weight_decay, allow_zero=True)
        eps = check_positive("eps", eps)
        options = {
            name: {"lr": lr * p.lr_mult, "eps": eps * p.eps_mult, "weight_decay": weight_decay * p.weight_decay_mult}
            for name, p in self.parameters.items()
        }
        return _param_groups(model, options, {"lr": lr, "eps": eps, "weight_decay": weight_decay})


def completep(
    model: nn.Module,
    *,
    base_depth: int,
    depth: int | None = None,
    base_width: int | None = None,
    width: int | None = None,
    alpha: float = 1.0,
    init_std: float = 0.02,
    seed: int = 0,
    preset: str | Preset = "auto",
    roles: Mapping[str, PatternsLike] | None = None,
    rules: RulesLike = None,
    **patterns: PatternsLike,
) -> CompletePReport:
    """CompleteP (Dey et al. 2025): depth-muP with ``alpha = 1``, transferring hyperparameters across depth and width.

    Dey, Zhang, Noci, Li, Bordelon, Bergsma, Pehlevan, Hanin & Hestness
    (2025), "Don't be lazy: CompleteP enables compute-efficient deep
    transformers", Table 1, as their reference nanoGPT-mup (``completep``
    branch) implements it. With ``m_L = L / L_base`` (depth), ``m_N = N /
    N_base`` (width), base std ``sigma`` and base AdamW ``eta``, ``epsilon``,
    ``lambda``:

    ======================= ============== ========================== ============================ =================
    parameter               init std       Adam(W) lr                 AdamW epsilon                weight decay
    ======================= ============== ========================== ============================ =================
    embeddings              sigma          eta                        eps / m_N                    lambda
    hidden weights          sigma/sqrt(m_N) eta m_N^-1 m_L^(alpha-1)  eps m_N^-1 m_L^-alpha        lambda m_N
    hidden norms and biases 1, 0           eta m_L^(alpha-1)          eps m_N^-1 m_L^-alpha        0
    readout, final norm     sigma; 1, 0    eta                        eps / m_N                    lambda; 0
    ======================= ============== ========================== ============================ =================

    and two forward multipliers the model must apply: every residual branch
    ``x + m_L^-alpha f(x)`` (``constants["residual_multiplier"]``) and the
    readout's input times ``1/m_N`` (``constants["output_multiplier"]``, muP's);
    attention should score ``q.k / d_head`` (muP) when the width changes.
    ``alpha = 1`` is CompleteP, ``0.5`` the depth-muP of Yang et al. (2023)
    and Bordelon et al. (2023), ``0`` plain muP.

    .. math:: h_{l+1} = h_l + m_L^{-\\alpha} F_l(h_l), \\qquad
        \\eta_{hidden} = \\eta\\, m_N^{-1} m_L^{\\alpha - 1}, \\qquad
        \\epsilon_{hidden} = \\epsilon\\, m_N^{-1} m_L^{-\\alpha}

    Parameters
    ----------
    model:
        The model (pre-LN residual blocks).
    base_depth, depth:
        ``L_base`` (the depth the hyperparameters were tuned at) and ``L``
        (default: the number of distinct block indices).
    base_width, width:
        ``N_base`` and ``N`` (default ``N``: the embedding's output size);
        without ``base_width`` the width multiplier is 1.
    alpha:
        The depth exponent (1 for CompleteP).
    init_std:
        ``sigma`` (0.02).
    seed:
        berry's seed.
    preset, roles, embedding, blocks, readout:
        ``"auto"``, ``"gpt2"``, ``"llama"``, ``"residual_mlp"`` (``stem``,
        ``blocks.*``, ``head``) or patterns: parameters of the input
        embeddings, of the residual blocks, and of the readout.
    rules:
        :func:`berry.torch.init_model` rules for parameters of other kinds.

    >>> from berry.torch.models import Transformer
    >>> report = completep(Transformer(n_layer=8, n_embd=32, n_head=4), base_depth=2, seed=0)
    >>> report.constants["residual_multiplier"], report.parameters["transformer.h.0.mlp.c_fc.weight"].eps_mult
    (0.25, 0.25)
    """
    base_depth = check_int("base_depth", base_depth, minimum=1)
    alpha = check_positive("alpha", alpha, allow_zero=True)
    init_std = check_positive("init_std", init_std)
    parameters = ModelParameters(model)
    found = COMPLETEP_ROLES.resolve(parameters, preset, COMPLETEP_ROLES.overrides(roles, patterns))
    blocks, embeddings, readouts = set(found.of("blocks")), set(found.of("embedding")), set(found.of("readout"))
    if depth is None:
        depth = len({layer_index(n) for n in blocks} - {None}) or 1
    depth = check_int("depth", depth, minimum=1)
    width_mult = 1.0
    if base_width is not None:
        if width is None:
            first = next((parameters[n] for n in parameters.names if n in embeddings and len(parameters.shape(n)) >= 2), None)
            if first is None:
                raise ValueError("completep: give width= (no embedding weight found to read it from)")
            first_shape = parameters.shape(first.name)
            width = first_shape[1] if isinstance(first.module, nn.Embedding) else linear_fans(first.module, first_shape)[1]
        width_mult = check_int("width", width, minimum=1) / check_int("base_width", base_width, minimum=1)
    depth_mult = depth / base_depth
    depth_lr = depth_mult ** (alpha - 1.0)
    hidden_eps = depth_mult ** (-alpha) / width_mult

    info: dict[str, CompletePParameter] = {}
    scheme_rules: SchemeRules = []
    for entry in parameters:
        name, vector = entry.name, len(parameters.shape(entry.name)) < 2
        init: Any
        if name in blocks:
            if vector:
                init = _vector_init(entry)  # None: a scalar or gate of another kind, left to the rules
                p = CompletePParameter(name, "hidden vector", None, depth_lr, hidden_eps, 0.0)
            else:
                std = init_std / math.sqrt(width_mult)
                init = {"std": std}
                p = CompletePParameter(name, "hidden weight", std, depth_lr / width_mult, hidden_eps, width_mult)
        elif vector:
            init = _vector_init(entry)
            p = CompletePParameter(name, "outer vector", None, 1.0, 1.0 / width_mult, 0.0)
        elif name in embeddings or name in readouts:
            init = {"std": init_std}
            p = CompletePParameter(name, "embedding" if name in embeddings else "readout", init_std, 1.0,
                                   1.0 / width_mult, 1.0)
        else:
            continue  # a weight outside the roles: the user's rules, then berry's defaults
        info[name] = p
        if init is not None:
            scheme_rules.append((exact(name), init))
    report = apply_rules(model, scheme_rules, rules, seed)
    constants = {
        "depth_multiplier": depth_mult, "width_multiplier": width_mult, "alpha": alpha,
        "residual_multiplier": depth_mult ** (-alpha), "output_multiplier": 1.0 / width_mult,
    }
    return CompletePReport("completep", found.preset, constants, {n: p.role for n, p in info.items()}, report,
                           parameters=info)


# ----------------------------------------------------------------------------- the spectral condition
def spectral_std(fan_in: int, fan_out: int, scale: float = 1.0) -> float:
    """The Gaussian std meeting the spectral condition: ``scale / sqrt(fan_in) * min(1, sqrt(fan_out / fan_in))``.

    Yang, Simon & Bernstein (2023), "A Spectral Condition for Feature
    Learning", Parametrization 1: a ``fan_out x fan_in`` Gaussian matrix of
    this std has spectral norm ``Theta(sqrt(fan_out / fan_in))``.

    >>> spectral_std(256, 64), spectral_std(64, 256)
    (0.03125, 0.125)
    """
    fan_in, fan_out = check_int("fan_in", fan_in, minimum=1), check_int("fan_out", fan_out, minimum=1)
    return check_positive("scale", scale) / math.sqrt(fan_in) * min(1.0, math.sqrt(fan_out / fan_in))


@dataclasses.dataclass(frozen=True)
class SpectralParameter:
    """How the spectral parametrization treats one parameter."""

    name: str
    fan_in: int  #: 1 for embeddings (one-hot inputs), biases and norm gains
    fan_out: int
    spectral_norm: float | None  #: the target ``scale * sqrt(fan_out / fan_in)`` of a weight matrix
    std: float | None  #: the Gaussian std (None: orthogonal, ones or zeros)
    sgd_lr_mult: float  #: ``fan_out / fan_in`` (relative to the base shape when one is given)
    adam_lr_mult: float  #: ``1 / fan_in`` (relative to the base shape when one is given)


@dataclasses.dataclass(frozen=True)
class SpectralReport(SchemeReport):
    """A :class:`SchemeReport` with the spectral learning-rate multipliers."""

    parameters: dict[str, SpectralParameter] = dataclasses.field(default_factory=dict)

    def param_groups(self, model: nn.Module, lr: float, optimizer: str = "adam") -> list[dict[str, Any]]:
        """Groups for ``torch.optim`` (``"adam"``, ``"adamw"`` or ``"sgd"``) with the spectral learning rates."""
        optimizer = check_choice("optimizer", optimizer, ("adam", "adamw", "sgd"))
        lr = check_positive("lr", lr)
        options = {name: {"lr": lr * (p.sgd_lr_mult if optimizer == "sgd" else p.adam_lr_mult)}
                   for name, p in self.parameters.items()}
        return _param_groups(model, options, {"lr": lr})


def _fans_of(entry: Any) -> tuple[int, int] | None:
    """(fan_in, fan_out) as the spectral condition reads them; None for parameters it does not treat."""
    module, shape = entry.module, entry.shape
    if isinstance(module, (nn.Embedding, nn.EmbeddingBag)) and entry.local_name == "weight":
        return 1, shape[1]  # one-hot inputs: each column is an output vector
    if len(shape) < 2:  # a norm's gain or bias, a layer's bias: a vector with fan_in 1
        return (1, shape[0]) if shape and _vector_init(entry) is not None else None
    if isinstance(module, nn.modules.conv._ConvNd):  # the flattened kernel matrix: (out, in * kernel)
        receptive = math.prod(shape[2:])
        return (shape[0], shape[1] * receptive) if module.transposed else (shape[1] * receptive, shape[0])
    if isinstance(module, nn.Linear) or type(module).__name__ == "Conv1D":
        return linear_fans(module, shape)
    return None


def spectral(
    model: nn.Module,
    *,
    seed: int = 0,
    distribution: str = "orthogonal",
    scale: float = 1.0,
    base: nn.Module | Mapping[str, Sequence[int]] | None = None,
    rules: RulesLike = None,
) -> SpectralReport:
    """The spectral condition for feature learning (Yang, Simon & Bernstein 2023), with its learning rates.

    "A Spectral Condition for Feature Learning": feature learning at every
    width needs each weight matrix ``W`` and each of its updates ``Delta W`` to
    have spectral norm ``Theta(sqrt(fan_out / fan_in))``. berry initializes

    * ``distribution="orthogonal"``: ``W = scale sqrt(fan_out/fan_in) Q`` with
      ``Q`` semi-orthogonal (every singular value exactly the target);
    * ``distribution="normal"``: ``N(0, sigma^2)`` with
      :func:`spectral_std` ``= scale/sqrt(fan_in) min(1, sqrt(fan_out/fan_in))``;

    embeddings (one-hot inputs: ``fan_in = 1``) ``N(0, scale^2)``, biases
    zero, norm gains one, and returns the learning rates that keep
    ``||Delta W||_*`` at the same scale: SGD ``eta fan_out / fan_in`` and Adam
    ``eta / fan_in`` (Adam's update has entries of size ``eta``, so spectral
    norm about ``eta sqrt(fan_in fan_out)``); vectors count as ``fan_in = 1``.
    With ``base`` (the same architecture at a base width, e.g. on the meta
    device, or its ``{name: shape}``), the multipliers are relative to it, so
    a learning rate tuned at the base width transfers.

    .. math:: \\|W_l\\|_* = \\Theta\\!\\left(\\sqrt{\\tfrac{n_l}{n_{l-1}}}\\right), \\qquad
        \\eta^{SGD}_l = \\eta\\,\\frac{n_l}{n_{l-1}}, \\qquad \\eta^{Adam}_l = \\frac{\\eta}{n_{l-1}}

    Parameters
    ----------
    model:
        The model; every ``Linear``, convolution and Hugging Face ``Conv1D``
        weight is treated from its fans. A convolution is its flattened kernel
        matrix, ``fan_in = in x kernel`` and ``fan_out = out`` channels (a
        transposed one: ``in`` and ``out x kernel``), so the target is that
        matrix's spectral norm.
    seed:
        berry's seed.
    distribution:
        ``"orthogonal"`` or ``"normal"``.
    scale:
        The constant in front of the target norm (1).
    base:
        The base model or its parameter shapes, for relative learning rates.
    rules:
        :func:`berry.torch.init_model` rules for parameters of other kinds.

    >>> import torch
    >>> model = torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.ReLU(), torch.nn.Linear(64, 4))
    >>> report = spectral(model, seed=0)
    >>> round(float(torch.linalg.matrix_norm(model[2].weight.detach(), 2)), 6), report.parameters["2.weight"].adam_lr_mult
    (0.25, 0.015625)
    """
    distribution = check_choice("distribution", distribution, ("orthogonal", "normal"))
    scale = check_positive("scale", scale)
    parameters = ModelParameters(model)
    base_shapes: dict[str, tuple[int, ...]] = {}
    if isinstance(base, nn.Module):
        base_parameters = ModelParameters(base)
        base_shapes = {name: base_parameters.shape(name) for name in base_parameters.names}
    elif isinstance(base, Mapping):
        base_shapes = {str(k): tuple(int(d) for d in v) for k, v in base.items()}
    elif base is not None:
        raise TypeError(f"base must be a torch.nn.Module (any device, e.g. meta) or a dict name -> shape, got {base!r}")
    info: dict[str, SpectralParameter] = {}
    scheme_rules: SchemeRules = []
    role_of: dict[str, str] = {}
    for entry in parameters:
        fans = _fans_of(entry)
        if fans is None:
            continue
        fan_in, fan_out = fans
        b_in, b_out = 1, 1
        if base is not None:
            if entry.name not in base_shapes:
                raise PresetError(f"spectral: the base model has no parameter {entry.name!r}; it must be the same "
                                  f"architecture at the base width. The base has: {shown(list(base_shapes))}")
            b_in, b_out = _fans_of(_Shaped(entry, base_shapes[entry.name])) or (1, 1)
        sgd, adam = (fan_out / fan_in) / (b_out / b_in), b_in / fan_in
        target, std = None, None
        if len(parameters.shape(entry.name)) < 2:
            init: Any = _vector_init(entry)
            role_of[entry.name] = "vector"
        elif isinstance(entry.module, (nn.Embedding, nn.EmbeddingBag)):
            std = scale
            init = {"std": std}
            role_of[entry.name] = "embedding"
        else:
            target = scale * math.sqrt(fan_out / fan_in)
            if distribution == "orthogonal":
                init = {"init": "orthogonal", "gain": target, "layout": "torch"}
            else:
                std = spectral_std(fan_in, fan_out, scale)
                init = {"std": std}
            role_of[entry.name] = "matrix"
        info[entry.name] = SpectralParameter(entry.name, fan_in, fan_out, target, std, sgd, adam)
        scheme_rules.append((exact(entry.name), init))
    report = apply_rules(model, scheme_rules, rules, seed)
    return SpectralReport("spectral", None, {"scale": scale}, role_of, report, parameters=info)


@dataclasses.dataclass(frozen=True)
class _Shaped:
    """A parameter entry seen with another shape (its shape in the base model)."""

    entry: Any
    shape: tuple[int, ...]

    @property
    def module(self) -> nn.Module:
        return self.entry.module

    @property
    def local_name(self) -> str:
        return self.entry.local_name
