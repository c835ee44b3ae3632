"""muP (Yang et al. 2021, Tensor Programs V): initialization and learning rates relative to a base width."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from berry._validation import check_choice, check_positive
from berry.fans import compute_fans
from berry.torch._model import RulesLike, fan_blocks
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

__all__ = ["MUP_PRESETS", "MUP_ROLES", "MupParameter", "MupReport", "mup", "mup_rules"]

MUP_ROLES = RoleTable(
    "mup",
    roles=("readout",),
    presets=(
        Preset("nanogpt", {"readout": ("lm_head.weight",)}),
        Preset("fairseq", {"readout": ("output_projection.weight",)}),
        Preset("mlp", {"readout": ("head.weight",)}),
        Preset("resnet", {"readout": ("fc.weight",)}),
        Preset("none", {"readout": ()}),  # no separate readout (tied embeddings): only taken by name
    ),
    required=(("readout",),),
)
MUP_PRESETS: dict[str, dict[str, Patterns]] = MUP_ROLES.as_dict()


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


def mup_rules(
    shape: Sequence[int],
    base_shape: Sequence[int],
    *,
    kind: str = "weight",
    init_std: float | None = None,
    readout: bool = False,
    readout_init: str = "zero",
    name: str = "",
    fan_in: int | None = None,
    base_fan_in: int | None = None,
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
    fan_in, base_fan_in:
        The layer's fan-in and its base's (default: :func:`berry.compute_fans`
        of the shapes in torch's layout). :func:`mup` passes the layer's own
        (groups, transposed convolutions), as :func:`berry.torch.init_model`
        computes them. The output width is ``numel / fan_in``, so ``r_out``
        counts output channels whatever the layout.

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
    if fan_in is None:
        fan_in = compute_fans(shape, layout="torch").fan_in
    if base_fan_in is None:
        base_fan_in = compute_fans(base_shape, layout="torch").fan_in
    in_mult = fan_in / base_fan_in
    out_mult = (math.prod(shape) // fan_in) / (math.prod(base_shape) // base_fan_in)
    std0 = 1.0 / math.sqrt(base_fan_in) if init_std is None else init_std
    grows_in, grows_out = in_mult != 1.0, out_mult != 1.0
    if readout or (grows_in and not grows_out):
        if readout and readout_init == "zero":
            return MupParameter(name, "output", in_mult, out_mult, None, "zeros", 1.0 / in_mult, 1.0 / in_mult)
        return MupParameter(name, "output", in_mult, out_mult, std0 / in_mult, "normal", 1.0 / in_mult, 1.0 / in_mult)
    if grows_in and grows_out:
        return MupParameter(name, "hidden", in_mult, out_mult, std0 / math.sqrt(in_mult), "normal", 1.0 / in_mult, 1.0)
    return MupParameter(name, "input", in_mult, out_mult, std0, "normal", 1.0, out_mult)


def _base_shapes(base: nn.Module | Mapping[str, Sequence[int]]) -> dict[str, tuple[tuple[int, ...], nn.Module | None]]:
    """The base's ``{name: (shape, module)}`` (no module when the base is given as shapes)."""
    if isinstance(base, nn.Module):
        parameters = ModelParameters(base)
        return {entry.name: (parameters.shape(entry.name), entry.module) for entry in parameters}
    if isinstance(base, Mapping):
        return {str(k): (tuple(int(d) for d in v), None) for k, v in base.items()}
    raise TypeError(f"base must be a torch.nn.Module (any device, e.g. meta) or a dict name -> shape, got {base!r}")


def _fan_in(module: nn.Module, local_name: str, shape: tuple[int, ...]) -> int:
    fans = fan_blocks(module, local_name, shape)[0].fans
    assert fans is not None
    return fans[0]


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
        for entry in ModelParameters(model):
            treatment = self.parameters.get(entry.name)
            mult = 1.0 if treatment is None else (treatment.sgd_lr_mult if optimizer == "sgd" else treatment.adam_lr_mult)
            groups.setdefault(mult, []).extend(entry.tensors)
        return [{"params": params, "lr": lr * mult} for mult, params in groups.items()]


def mup(
    model: nn.Module,
    base: nn.Module | Mapping[str, Sequence[int]],
    *,
    seed: int = 0,
    init_std: float | None = None,
    readout_init: str = "zero",
    preset: str | Preset = "auto",
    roles: Mapping[str, PatternsLike] | None = None,
    rules: RulesLike = None,
    **patterns: PatternsLike,
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
        ``"none"`` (no separate readout, e.g. tied embeddings), or a :class:`Preset`.
    roles, readout:
        Patterns of the readout weight (role ``"readout"``), instead of the
        preset's: ``roles={"readout": ...}`` or ``readout=...``.
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
    parameters = ModelParameters(model)
    found = MUP_ROLES.resolve(parameters, preset, MUP_ROLES.overrides(roles, patterns))
    readouts = set(found.of("readout"))
    missing = [n for n in parameters.names if n not in base_shapes]
    if missing:
        raise PresetError(
            f"mup: the base model has no parameters named {shown(missing)}; it must be the same architecture "
            f"at the base width. The base has: {shown(list(base_shapes))}"
        )
    scheme_rules: SchemeRules = []
    info: dict[str, MupParameter] = {}
    for entry in parameters:
        name, local, module = entry.name, entry.local_name, entry.module
        shape, (base_shape, base_module) = parameters.shape(name), base_shapes[name]
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
        fans: dict[str, int] = {}
        if kind == "weight":  # the layer's own fan-in, and its base's (the base's layer, or ours at its shape)
            fans = {"fan_in": _fan_in(module, local, shape),
                    "base_fan_in": _fan_in(module if base_module is None else base_module, local, base_shape)}
        rule = mup_rules(shape, base_shape, kind=kind, init_std=init_std, readout=name in readouts,
                         readout_init=readout_init, name=name, **fans)
        info[name] = rule
        if kind == "bias" and not (local.endswith("bias") or isinstance(module, (nn.Linear, nn.modules.conv._ConvNd))):
            continue  # a scalar or vector of another kind: leave it to the rules
        scheme_rules.append((exact(name), {"std": rule.std} if rule.init == "normal" else rule.init))
    report = apply_rules(model, scheme_rules, rules, seed)
    role_of = {name: entry.role for name, entry in info.items()}
    widths = [e.fan_in_mult for e in info.values() if e.role == "hidden"]
    constants = {"width_mult": max(widths, default=1.0)}
    return MupReport("mup", found.preset, constants, role_of, report, parameters=info)


