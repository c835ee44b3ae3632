"""State-space models: Mamba-1 and Mamba-2 (Gu & Dao 2023; Dao & Gu 2024) and S4D (Gu et al. 2022).

A selective SSM layer has parameters no generic rule understands: the time
step bias ``dt_bias`` (``softplus(dt_bias)`` must fall in ``[dt_min,
dt_max]``), the state matrix ``A_log`` and the skip ``D``. mamba_ssm
initializes them in the layer's constructor and marks the ``dt`` bias
``_no_reinit`` so that the whole-model init after it (which zeroes every
``Linear`` bias) leaves it alone. berry follows the same convention: the
scheme marks ``dt_bias``, ``A_log`` and ``D`` ``_no_reinit``, and
:func:`berry.torch.init_model` keeps parameters so marked. Every value is
keyed by ``(seed, parameter name)`` like the rest of berry.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from berry._validation import check_choice, check_int, check_positive
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
from berry.torch.schemes._sites import (
    fill_computed,
    layer_index,
    linear_fans,
    norm_rules,
    stream_normal,
    stream_uniform,
)

__all__ = [
    "MAMBA_PRESETS",
    "MAMBA_ROLES",
    "S4D_PRESETS",
    "S4D_ROLES",
    "inverse_softplus",
    "mamba",
    "mamba_dt",
    "s4d",
    "s4d_diagonal",
]

_MIXER = {
    "in_proj": ("*.mixer.in_proj.weight",),
    "conv_weight": ("*.mixer.conv1d.weight",),
    "conv_bias": ("*.mixer.conv1d.bias",),
    "x_proj": ("*.mixer.x_proj.weight",),
    "dt_weight": ("*.mixer.dt_proj.weight",),
    "dt_proj_bias": ("*.mixer.dt_proj.bias",),  # Mamba-1: the dt projection's bias
    "dt_bias": ("*.mixer.dt_bias",),  # Mamba-2: a parameter of its own, per head
    "a_log": ("*.mixer.A_log",),
    "d": ("*.mixer.D",),
    "out_proj": ("*.mixer.out_proj.weight",),
    "mlp_in": ("*.mlp.fc1.weight",),
    "mlp_out": ("*.mlp.fc2.weight",),
    "lm_head": ("lm_head.weight",),
}
MAMBA_ROLES = RoleTable(
    "mamba",
    roles=(*_MIXER, "embedding"),
    presets=(
        # mamba_ssm's MambaLMHeadModel / MixerModel and Hugging Face's MambaForCausalLM / Mamba2ForCausalLM
        # share the mixer's names; only the embedding differs (``embedding`` vs ``embeddings``), so one
        # preset names both. Which library's *laws* to follow is ``convention=``, not the names.
        Preset("mamba", {**_MIXER, "embedding": ("*backbone.embedding.weight", "*backbone.embeddings.weight")}),
    ),
    required=(("a_log",), ("dt_proj_bias", "dt_bias")),
)
MAMBA_PRESETS: dict[str, dict[str, Patterns]] = MAMBA_ROLES.as_dict()

S4D_ROLES = RoleTable(
    "s4d",
    roles=("log_dt", "c", "log_a_real", "a_imag", "d"),
    presets=(Preset("s4", {  # state-spaces/s4 models/s4/s4d.py: S4D and S4DKernel
        "log_dt": ("*kernel.log_dt",), "c": ("*kernel.C",), "log_a_real": ("*kernel.log_A_real",),
        "a_imag": ("*kernel.A_imag",), "d": ("*.D", "D"),
    }),),
    required=(("log_a_real",), ("a_imag",)),
)
S4D_PRESETS: dict[str, dict[str, Patterns]] = S4D_ROLES.as_dict()


# ----------------------------------------------------------------------------- formulas
def inverse_softplus(x: np.ndarray) -> np.ndarray:
    """``y`` with ``softplus(y) = x``: ``x + log(-expm1(-x))``, stable for small ``x`` (mamba_ssm's form).

    >>> float(np.log1p(np.exp(inverse_softplus(np.array(0.01)))).round(12))
    0.01
    """
    x = np.asarray(x, dtype=np.float64)
    return x + np.log(-np.expm1(-x))


def mamba_dt(u: np.ndarray, *, dt_min: float = 0.001, dt_max: float = 0.1, dt_init_floor: float = 1e-4) -> np.ndarray:
    """Mamba's initial time steps from uniforms ``u`` in ``[0, 1)``: log-uniform in ``[dt_min, dt_max]``, floored.

    Gu & Dao (2023), "Mamba: Linear-Time Sequence Modeling with Selective
    State Spaces", section 3.6 and mamba_ssm's ``Mamba.__init__``:

    .. math:: \\Delta = \\max\\left(\\exp\\big(u (\\log \\Delta_{max} - \\log \\Delta_{min}) + \\log \\Delta_{min}\\big),
        \\ \\Delta_{floor}\\right), \\qquad b_\\Delta = \\Delta + \\log(-\\mathrm{expm1}(-\\Delta))

    and the bias is :func:`inverse_softplus` of it, so ``softplus(b) = Delta``.

    >>> mamba_dt(np.array([0.0, 0.5])).round(6).tolist()
    [0.001, 0.01]
    """
    u = np.asarray(u, dtype=np.float64)
    dt = np.exp(u * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
    return np.maximum(dt, dt_init_floor)


def s4d_diagonal(n_state: int, kind: str = "lin") -> np.ndarray:
    """The diagonal state matrix of S4D, one of each conjugate pair: ``n_state // 2`` complex values.

    Gu, Gupta, Goel & Ré (2022), "On the Parameterization and Initialization
    of Diagonal State Space Models", section 4 (and state-spaces/s4
    ``dplr.py``), with ``n = 0 .. N/2 - 1``:

    .. math:: \\text{S4D-Lin: } A_n = -\\tfrac12 + i \\pi n, \\qquad
        \\text{S4D-Inv: } A_n = -\\tfrac12 + i \\frac{N}{\\pi}\\left(\\frac{N}{2n+1} - 1\\right), \\qquad
        \\text{S4D-Real: } A_n = -(n + 1)

    (the reference code stores the negated imaginary part; the conjugate
    pair makes the two conventions one model). Mamba's ``A`` is S4D-Real over
    all ``N`` states: ``-(1 .. N)``.

    >>> s4d_diagonal(4, "lin").round(4).tolist()
    [(-0.5+0j), (-0.5+3.1416j)]
    >>> s4d_diagonal(4, "inv").imag.round(4).tolist()
    [3.8197, 0.4244]
    """
    n_state = check_int("n_state", n_state, minimum=2)
    kind = check_choice("kind", kind, ("lin", "inv", "real"))
    n = np.arange(n_state // 2, dtype=np.float64)
    if kind == "real":
        return -(n + 1) + 0j
    imag = math.pi * n if kind == "lin" else n_state / math.pi * (n_state / (2 * n + 1) - 1)
    return -0.5 + 1j * imag


# ----------------------------------------------------------------------------- fills (keyed, shard-exact)
def _dt_bias_fill(tensor: torch.Tensor, *, seed: int, name: str, dt_min: float, dt_max: float, floor: float) -> None:
    def compute(shape: tuple[int, ...], region: Region) -> np.ndarray:
        u = stream_uniform(shape, region, seed=seed, name=name)
        return inverse_softplus(mamba_dt(u, dt_min=dt_min, dt_max=dt_max, dt_init_floor=floor))

    fill_computed(tensor, compute)


def _a_log_fill(tensor: torch.Tensor, *, seed: int, name: str, low: float, high: float) -> None:
    """Mamba-1 (2-D ``(d_inner, N)``): ``log(1 .. N)`` on every row; Mamba-2 (1-D, per head): ``log U(low, high)``."""

    def compute(shape: tuple[int, ...], region: Region) -> np.ndarray:
        if len(shape) == 2:
            rows, cols = region
            row = np.log(np.arange(cols.start + 1, cols.stop + 1, dtype=np.float64))
            return np.broadcast_to(row, (rows.stop - rows.start, cols.stop - cols.start))
        u = stream_uniform(shape, region, seed=seed, name=name)
        return np.log(low + (high - low) * u)

    fill_computed(tensor, compute)


def _arange_log_fill(tensor: torch.Tensor, *, seed: int, name: str) -> None:
    """Hugging Face's Mamba-2: ``A_log = log(1 .. n_heads)`` (deterministic)."""
    del seed, name
    fill_computed(tensor, lambda shape, region: np.log(np.arange(region[0].start + 1, region[0].stop + 1, dtype=np.float64)))


@dataclasses.dataclass(frozen=True)
class _Conventions:
    """Where mamba_ssm and Hugging Face transformers differ (everything else is the same)."""

    initializer_range: float
    rescale_prenorm_residual: bool
    n_residuals_per_layer: int


_CONVENTIONS = {
    "mamba_ssm": _Conventions(0.02, True, 1),
    "transformers": _Conventions(0.1, False, 1),
}


def _kaiming_uniform(shape: tuple[int, ...], module: nn.Module, divisor: float = 1.0) -> dict[str, Any]:
    """torch's default weight init, ``kaiming_uniform_(a=sqrt(5))``: ``U(+-1/sqrt(fan_in))``, over ``divisor``."""
    bound = 1.0 / math.sqrt(linear_fans(module, shape)[0]) / divisor
    return {"distribution": "uniform", "low": -bound, "high": bound}


def _config(model: nn.Module, field: str, default: Any) -> Any:
    config = getattr(model, "config", None)
    value = getattr(config, field, None)
    return default if value is None else value


def mamba(
    model: nn.Module,
    *,
    seed: int = 0,
    convention: str = "mamba_ssm",
    dt_min: float | None = None,
    dt_max: float | None = None,
    dt_init_floor: float | None = None,
    dt_init: str | None = None,
    dt_scale: float | None = None,
    a_init_range: tuple[float, float] = (1.0, 16.0),
    conv_init: float | None = None,
    initializer_range: float | None = None,
    rescale_prenorm_residual: bool | None = None,
    n_residuals_per_layer: int | None = None,
    n_layers: int | None = None,
    preset: str | Preset = "auto",
    roles: Mapping[str, PatternsLike] | None = None,
    rules: RulesLike = None,
    **patterns: PatternsLike,
) -> SchemeReport:
    """Mamba-1 / Mamba-2 initialization, as mamba_ssm (or Hugging Face transformers) writes it.

    Gu & Dao (2023), "Mamba: Linear-Time Sequence Modeling with Selective
    State Spaces"; Dao & Gu (2024), "Transformers are SSMs" (Mamba-2);
    mamba_ssm ``Mamba.__init__``, ``Mamba2.__init__`` and
    ``mixer_seq_simple._init_weights``. Per layer (the version is read from
    ``A_log``: 2-D is Mamba-1, 1-D per head is Mamba-2):

    * ``dt`` bias: :func:`inverse_softplus` of :func:`mamba_dt` (log-uniform
      in ``[dt_min, dt_max]`` = ``[0.001, 0.1]``, floor ``1e-4``), so
      ``softplus(dt_bias)`` starts in that range;
    * ``A_log``: ``log(1 .. N)`` on every channel (Mamba-1, S4D-Real),
      ``log U(1, 16)`` per head (Mamba-2; Hugging Face's Mamba-2 uses
      ``log(1 .. n_heads)``, which ``convention="transformers"`` follows);
    * ``D = 1``; ``dt_proj.weight`` ``U(+-dt_rank^-1/2 dt_scale)`` (or the
      constant, ``dt_init="constant"``);
    * ``in_proj``, ``x_proj``, ``conv1d`` and MLP weights torch's default
      ``U(+-1/sqrt(fan_in))`` (conv: ``U(+-conv_init)`` for Mamba-2 when
      given); the conv bias torch's default ``U(+-1/sqrt(fan_in))``;
      ``Linear`` biases zero; ``out_proj`` (and the MLP's ``fc2``)
      ``U(+-1/sqrt(fan_in)) / sqrt(n_residuals_per_layer * n_layers)``
      (``rescale_prenorm_residual``); embeddings ``N(0, 0.02^2)``; norms one.

    .. math:: b_\\Delta = \\Delta + \\log(-\\mathrm{expm1}(-\\Delta)),\\quad
        \\log\\Delta \\sim U[\\log\\Delta_{min}, \\log\\Delta_{max}], \\qquad
        A_{\\log} = \\log(1..N), \\quad D = 1

    ``convention="transformers"`` reproduces Hugging Face's
    ``MambaPreTrainedModel._init_weights`` instead: ``in_proj``, ``x_proj``,
    ``lm_head`` and embeddings ``N(0, initializer_range^2)`` (0.1), conv bias
    zero, ``rescale_prenorm_residual`` off, and the ``time_step_*`` values of
    ``model.config`` when it has them.

    The ``dt`` bias, ``A_log`` and ``D`` are marked ``_no_reinit`` (and
    ``_no_weight_decay``, as mamba_ssm does): a later
    :func:`berry.torch.init_model` on the whole model keeps them.

    Parameters
    ----------
    model:
        The model (mamba_ssm's ``MambaLMHeadModel`` or Hugging Face's
        ``MambaForCausalLM`` / ``Mamba2ForCausalLM`` names, or your own via ``roles=``).
    seed:
        berry's seed; each parameter is keyed by its fully qualified name.
    convention:
        ``"mamba_ssm"`` (the reference implementation) or ``"transformers"``.
    dt_min, dt_max, dt_init_floor, dt_init, dt_scale:
        The time-step initialization (0.001, 0.1, 1e-4, ``"random"``, 1.0).
    a_init_range:
        Mamba-2's ``A_init_range`` (1, 16).
    conv_init:
        Mamba-2's ``conv_init``: ``U(+-conv_init)`` for the conv weight.
    initializer_range, rescale_prenorm_residual, n_residuals_per_layer:
        ``_init_weights``' options (the convention's defaults: 0.02, True, 1 for
        mamba_ssm; 0.1, False, 1 for transformers). Use
        ``n_residuals_per_layer=2`` for blocks with an MLP, as mamba_ssm says.
    n_layers:
        The depth for the residual rescaling; by default the number of ``out_proj`` weights.
    preset, roles, <role>=:
        ``"auto"`` or ``"mamba"`` (the names of mamba_ssm's ``MambaLMHeadModel``
        and of Hugging Face's ``MambaForCausalLM`` / ``Mamba2ForCausalLM``:
        ``backbone.layers.<i>.mixer.in_proj`` ..., ``backbone.embedding(s)``), or patterns for the
        roles ``in_proj``, ``conv_weight``, ``conv_bias``, ``x_proj``,
        ``dt_weight``, ``dt_proj_bias`` (Mamba-1), ``dt_bias`` (Mamba-2),
        ``a_log``, ``d``, ``out_proj``, ``mlp_in``,
        ``mlp_out``, ``lm_head``, ``embedding``.
    rules:
        :func:`berry.torch.init_model` rules for other parameters.

    >>> import torch
    >>> from torch import nn
    >>> mixer = nn.Module()
    >>> mixer.dt_proj, mixer.A_log, mixer.D = nn.Linear(2, 8), nn.Parameter(torch.empty(8, 4)), nn.Parameter(torch.empty(8))
    >>> model = nn.Module(); model.mixer = mixer
    >>> report = mamba(model, seed=0, roles={"dt_proj_bias": "mixer.dt_proj.bias", "a_log": "mixer.A_log", "d": "mixer.D",
    ...                                      "dt_weight": "mixer.dt_proj.weight"})
    >>> dt = torch.nn.functional.softplus(mixer.dt_proj.bias)
    >>> bool(dt.min() >= 0.001 and dt.max() <= 0.1), mixer.A_log[0].exp().round().tolist()
    (True, [1.0, 2.0, 3.0, 4.0])
    """
    convention = check_choice("convention", convention, tuple(_CONVENTIONS))
    rules_of = _CONVENTIONS[convention]
    hf = convention == "transformers"
    cfg = functools.partial(_config, model) if hf else (lambda field, default: default)
    dt_min = check_positive("dt_min", dt_min if dt_min is not None else cfg("time_step_min", 0.001))
    dt_max = check_positive("dt_max", dt_max if dt_max is not None else cfg("time_step_max", 0.1))
    floor = check_positive("dt_init_floor", dt_init_floor if dt_init_floor is not None else cfg("time_step_floor", 1e-4))
    if not dt_min <= dt_max:
        raise ValueError(f"dt_min must be <= dt_max, got dt_min={dt_min!r}, dt_max={dt_max!r}")
    dt_init = check_choice("dt_init", dt_init if dt_init is not None else cfg("time_step_init_scheme", "random"),
                           ("random", "constant"))
    dt_scale = check_positive("dt_scale", dt_scale if dt_scale is not None else cfg("time_step_scale", 1.0))
    low, high = (check_positive("a_init_range", float(v)) for v in a_init_range)
    if not low <= high:
        raise ValueError(f"a_init_range must be (low, high) with 0 < low <= high, got {a_init_range!r}")
    std = check_positive("initializer_range", initializer_range if initializer_range is not None
                         else cfg("initializer_range", rules_of.initializer_range))
    rescale = bool(rescale_prenorm_residual if rescale_prenorm_residual is not None
                   else cfg("rescale_prenorm_residual", rules_of.rescale_prenorm_residual))
    per_layer = check_int("n_residuals_per_layer", n_residuals_per_layer or rules_of.n_residuals_per_layer, minimum=1)

    parameters = ModelParameters(model)
    found = MAMBA_ROLES.resolve(parameters, preset, MAMBA_ROLES.overrides(roles, patterns))
    outputs = found.of("out_proj")
    if n_layers is None:
        indices = {layer_index(n) for n in outputs}
        n_layers = len(indices) if None not in indices else len(outputs)
    n_layers = check_int("n_layers", max(n_layers, 1), minimum=1)
    residual = math.sqrt(per_layer * n_layers) if rescale else 1.0

    role_of: dict[str, str] = {}
    for role in MAMBA_ROLES.roles:
        for name in found.of(role):
            role_of.setdefault(name, role)
    versions = {len(parameters.shape(n)) for n in found.of("a_log")}
    if versions - {1, 2}:
        raise PresetError(f"mamba: A_log must be 2-D (Mamba-1) or 1-D (Mamba-2), got shapes {sorted(versions)}")
    scheme_rules: SchemeRules = []
    for name, role in role_of.items():
        entry = parameters[name]
        shape, module = parameters.shape(name), entry.module
        init: Any
        if role in ("dt_bias", "dt_proj_bias"):
            init = functools.partial(_dt_bias_fill, dt_min=dt_min, dt_max=dt_max, floor=floor)
        elif role == "a_log":
            mamba2_hf = hf and len(shape) == 1
            init = _arange_log_fill if mamba2_hf else functools.partial(_a_log_fill, low=low, high=high)
        elif role == "d":
            init = "ones"
        elif role == "dt_weight":
            dt_std = shape[1] ** -0.5 * dt_scale  # dt_rank^-1/2 * dt_scale
            init = {"init": "constant", "value": dt_std} if dt_init == "constant" else {
                "distribution": "uniform", "low": -dt_std, "high": dt_std}
        elif role == "conv_weight":
            init = {"distribution": "uniform", "low": -conv_init, "high": conv_init} if conv_init is not None \
                else _kaiming_uniform(shape, module)
        elif role == "conv_bias":
            init = "zeros" if hf else _kaiming_uniform(parameters.shape(name.removesuffix("bias") + "weight"), module)
        elif role in ("out_proj", "mlp_out"):
            init = _kaiming_uniform(shape, module, residual)
        elif role in ("in_proj", "x_proj", "lm_head"):
            init = {"std": std} if hf else _kaiming_uniform(shape, module)
        elif role == "mlp_in":
            init = _kaiming_uniform(shape, module)
        else:  # embedding
            init = {"std": std}
        scheme_rules.append((exact(name), init))
    for entry in parameters:
        if isinstance(entry.module, nn.Linear) and entry.local_name == "bias" and entry.name not in role_of:
            scheme_rules.append((exact(entry.name), "zeros"))
            role_of[entry.name] = "bias"
    scheme_rules += norm_rules(parameters, skip=set(role_of))
    report = apply_rules(model, scheme_rules, rules, seed, respect_no_reinit=False)
    for name, role in role_of.items():
        if role in ("dt_bias", "dt_proj_bias", "a_log", "d"):
            parameter = parameters.tensor(name)
            parameter._no_reinit = True  # type: ignore[attr-defined]  # mamba_ssm's marker: init_model keeps it
            parameter._no_weight_decay = True  # type: ignore[attr-defined]
    constants = {"dt_min": dt_min, "dt_max": dt_max, "dt_init_floor": floor, "n_layers": float(n_layers),
                 "residual_divisor": residual, "initializer_range": std, "mamba_version": float(3 - max(versions))}
    return SchemeReport("mamba", found.preset, constants, role_of, report)


# ----------------------------------------------------------------------------- S4D
def _s4d_fill(tensor: torch.Tensor, *, seed: int, name: str, role: str, kind: str, dt_min: float, dt_max: float) -> None:
    def compute(shape: tuple[int, ...], region: Region) -> np.ndarray:
        if role == "log_dt":
            u = stream_uniform(shape, region, seed=seed, name=name)
            return u * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
        if role == "c":  # torch.randn(..., dtype=cfloat) viewed as real: each part N(0, 1/2)
            return stream_normal(shape, region, seed=seed, name=name) * math.sqrt(0.5)
        half = shape[-1]
        diagonal = s4d_diagonal(2 * half, kind)[region[-1]]
        values = np.log(-diagonal.real) if role == "log_a_real" else diagonal.imag
        return np.broadcast_to(values, tuple(s.stop - s.start for s in region))

    fill_computed(tensor, compute)


def s4d(
    model: nn.Module,
    *,
    seed: int = 0,
    kind: str = "lin",
    dt_min: float = 0.001,
    dt_max: float = 0.1,
    preset: str | Preset = "auto",
    roles: Mapping[str, PatternsLike] | None = None,
    rules: RulesLike = None,
    **patterns: PatternsLike,
) -> SchemeReport:
    """S4D's diagonal initializations (Gu et al. 2022) for the reference ``S4DKernel``'s parameters.

    "On the Parameterization and Initialization of Diagonal State Space
    Models"; state-spaces/s4 ``models/s4/s4d.py``. With ``A = -exp(log_A_real)
    + i A_imag`` (``H`` channels, ``N/2`` conjugate pairs each):

    * ``log_A_real = log(1/2)`` and ``A_imag`` from :func:`s4d_diagonal`
      (``kind="lin"``: ``pi n``; ``"inv"``: ``N/pi (N/(2n+1) - 1)``;
      ``"real"``: ``log_A_real = log(n+1)``, ``A_imag = 0``);
    * ``log_dt`` uniform in ``[log dt_min, log dt_max]``;
    * ``C`` complex standard normal (real and imaginary parts ``N(0, 1/2)``),
      ``D`` standard normal.

    .. math:: A_n = -\\tfrac12 + i\\pi n\\ (\\text{Lin}), \\qquad
        A_n = -\\tfrac12 + i\\tfrac{N}{\\pi}\\big(\\tfrac{N}{2n+1} - 1\\big)\\ (\\text{Inv}), \\qquad
        \\log\\Delta \\sim U[\\log\\Delta_{min}, \\log\\Delta_{max}]

    ``log_dt``, ``log_A_real`` and ``A_imag`` are marked ``_no_reinit``.
    Tensors the reference registers as buffers (``lr=0``) are not parameters
    and are left alone.

    Parameters
    ----------
    model:
        The model.
    seed:
        berry's seed.
    kind:
        ``"lin"`` (S4D-Lin), ``"inv"`` (S4D-Inv) or ``"real"`` (S4D-Real).
    dt_min, dt_max:
        The time-step range (0.001, 0.1).
    preset, roles, <role>=:
        ``"auto"``/``"s4"``, or patterns for ``log_dt``, ``c``, ``log_a_real``, ``a_imag``, ``d``.
    rules:
        :func:`berry.torch.init_model` rules for other parameters.

    >>> import torch
    >>> from torch import nn
    >>> kernel = nn.Module()
    >>> for n, shape in [("log_dt", (2,)), ("C", (2, 3, 2)), ("log_A_real", (2, 3)), ("A_imag", (2, 3))]:
    ...     kernel.register_parameter(n, nn.Parameter(torch.empty(shape)))
    >>> layer = nn.Module(); layer.kernel = kernel; layer.D = nn.Parameter(torch.empty(2))
    >>> report = s4d(layer, kind="lin", seed=0)
    >>> (kernel.A_imag[1] / torch.pi).round().tolist(), kernel.log_A_real.exp().unique().tolist()
    ([0.0, 1.0, 2.0], [0.5])
    """
    kind = check_choice("kind", kind, ("lin", "inv", "real"))
    dt_min, dt_max = check_positive("dt_min", dt_min), check_positive("dt_max", dt_max)
    if not dt_min <= dt_max:
        raise ValueError(f"dt_min must be <= dt_max, got dt_min={dt_min!r}, dt_max={dt_max!r}")
    parameters = ModelParameters(model)
    found = S4D_ROLES.resolve(parameters, preset, S4D_ROLES.overrides(roles, patterns))
    role_of: dict[str, str] = {}
    scheme_rules: SchemeRules = []
    for role in S4D_ROLES.roles:
        for name in found.of(role):
            if name in role_of:
                continue
            role_of[name] = role
            init: Any = {"std": 1.0} if role == "d" else functools.partial(
                _s4d_fill, role=role, kind=kind, dt_min=dt_min, dt_max=dt_max)
            scheme_rules.append((exact(name), init))
    report = apply_rules(model, scheme_rules, rules, seed, respect_no_reinit=False)
    for name, role in role_of.items():
        if role in ("log_dt", "log_a_real", "a_imag"):
            parameters.tensor(name)._no_reinit = True  # type: ignore[attr-defined]
    return SchemeReport("s4d", found.preset, {"dt_min": dt_min, "dt_max": dt_max}, role_of, report)
