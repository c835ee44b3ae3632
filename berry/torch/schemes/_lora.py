"""LoRA adapters (Hu et al. 2021) initialized as PEFT does, keyed by name and with the global fans.

PEFT initializes each adapter with torch's generator on whatever tensor
each process holds. Under tensor parallelism an adapter's ``A`` may be
sharded along its input dimension, and ``kaiming_uniform_`` on the local
shard then uses the local fan-in: the std grows by ``sqrt(tp)`` and every
rank draws different values. berry computes every law from the *global*
shape and fills each shard with its slice of the global tensor, keyed by the
adapter's parameter name: the same std and the same values on one process
and on any number.
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

import berry
from berry._validation import check_choice, check_positive
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
from berry.torch.schemes._sites import fill_computed, full_values, paired, stream_normal

__all__ = ["LORA_INITS", "LORA_PRESETS", "LORA_ROLES", "lora", "lora_factors"]

LORA_ROLES = RoleTable(
    "lora",
    roles=("lora_A", "lora_B", "base", "embedding_A", "embedding_B", "magnitude"),
    presets=(
        Preset("peft", {  # PEFT's LoraLayer: <site>.lora_A.<adapter>.weight, <site>.base_layer.weight
            "lora_A": ("*.lora_A.*.weight",), "lora_B": ("*.lora_B.*.weight",), "base": ("*.base_layer.weight",),
            "embedding_A": ("*.lora_embedding_A.*",), "embedding_B": ("*.lora_embedding_B.*",),
            "magnitude": ("*.lora_magnitude_vector.*.weight",),  # DoRA
        }),
        Preset("loralib", {  # Microsoft loralib, and adapters written by hand: <site>.lora_A next to <site>.weight
            "lora_A": ("*lora_A",), "lora_B": ("*lora_B",), "base": ("*weight",),
        }),
        Preset("modules", {  # hand-written adapters holding nn.Linear / nn.Conv: <site>.lora_A.weight
            "lora_A": ("*lora_A.weight",), "lora_B": ("*lora_B.weight",), "base": ("*weight",),
        }),
    ),
    required=(("lora_A", "embedding_A"),),
)
LORA_PRESETS: dict[str, dict[str, Patterns]] = LORA_ROLES.as_dict()

#: PEFT's ``init_lora_weights`` options berry implements (``True`` is ``"kaiming"``).
LORA_INITS = ("kaiming", "gaussian", "orthogonal", "pissa", "olora")


# ----------------------------------------------------------------------------- PiSSA / OLoRA / orthogonal
def lora_factors(weight: np.ndarray, rank: int, init: str, scaling: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(A, B, residual)`` of PiSSA or OLoRA for a base weight ``(out, in)``: ``residual + scaling * B @ A = weight``.

    * PiSSA (Meng et al. 2024, "PiSSA: Principal Singular Values and Singular
      Vectors Adaptation of Large Language Models"; PEFT ``pissa_init``): with
      ``W = U S V^T``, ``A = diag(sqrt(S_r / s)) V_r^T``, ``B = U_r diag(sqrt(S_r / s))``;
    * OLoRA (Büyükakyüz 2024, "OLoRA: Orthonormal Low-Rank Adaptation of
      Large Language Models"; PEFT ``olora_init``): with ``W = Q R``,
      ``B = Q_{:, :r}``, ``A = R_{:r}``;

    and in both the residual ``W - s B A`` replaces the base weight, so the
    adapted layer equals the base one at step 0. Computed in float64 with
    NumPy's LAPACK (the same on every process).

    .. math:: W = U S V^\\top,\\quad A = \\sqrt{S_r/s}\\, V_r^\\top,\\quad B = U_r \\sqrt{S_r/s},\\quad
        W_{res} = W - s\\, B A

    >>> w = np.arange(12.0).reshape(3, 4)
    >>> a, b, res = lora_factors(w, 1, "pissa", scaling=2.0)
    >>> bool(np.allclose(res + 2.0 * b @ a, w)), a.shape, b.shape
    (True, (1, 4), (3, 1))
    """
    init = check_choice("init", init, ("pissa", "olora"))
    weight = np.asarray(weight, dtype=np.float64)
    if rank > min(weight.shape):
        raise ValueError(f"{init} needs rank <= min(out, in) = {min(weight.shape)} of the base weight, got rank {rank}")
    if init == "pissa":
        u, s, vh = np.linalg.svd(weight, full_matrices=False)
        root = np.sqrt(s[:rank] / scaling)
        a, b = root[:, None] * vh[:rank], u[:, :rank] * root[None, :]
    else:
        q, r = np.linalg.qr(weight)
        a, b = r[:rank], q[:, :rank]
    return a, b, weight - scaling * b @ a


def _orthogonal_factors(rank: int, fan_in: int, fan_out: int, *, seed: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    """PEFT's ``orthogonal_init``: ``A = (G_A Q_odd)^T / 10``, ``B = G_B^T Q_even / 10``, so ``B A = 0``.

    ``Q`` is a random ``r x r`` orthogonal matrix (berry's Haar orthogonal,
    keyed ``name[Q]``), ``Q_odd``/``Q_even`` its rows 0, 2, ... and 1, 3, ...;
    ``G_A`` ``(in, r/2)`` and ``G_B`` ``(r/2, out)`` standard normal (keyed
    ``name[G_A]``, ``name[G_B]``), ``name`` being the ``A`` parameter's.
    """
    q = berry.sample((rank, rank), "orthogonal", seed=seed, name=f"{name}[Q]", dtype="float64")
    g_a = stream_normal((fan_in, rank // 2), None, seed=seed, name=f"{name}[G_A]")
    g_b = stream_normal((rank // 2, fan_out), None, seed=seed, name=f"{name}[G_B]")
    return (g_a @ q[0::2]).T / 10.0, g_b.T @ q[1::2] / 10.0


# ----------------------------------------------------------------------------- sites
@dataclasses.dataclass
class _Site:
    """One adapted layer: its A, B and base weight names, rank and scaling; the factors once computed."""

    a: str
    b: str
    base: str | None
    rank: int
    scaling: float
    transposed: bool  #: the base stores (in, out) (Hugging Face Conv1D, PEFT's fan_in_fan_out)
    factors: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None


def _scaling_of(model_modules: Mapping[str, nn.Module], a_name: str, given: float | None) -> float | None:
    """PEFT's ``scaling[adapter]`` (``lora_alpha / r`` or rsLoRA's ``/sqrt(r)``) from the layer owning ``A``."""
    if given is not None:
        return given
    parts = a_name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        module = model_modules.get(".".join(parts[:cut]))
        scaling = getattr(module, "scaling", None)
        if isinstance(scaling, Mapping):
            adapter = parts[cut + 1] if cut + 1 < len(parts) else None
            if adapter in scaling:
                return float(scaling[adapter])
        elif isinstance(scaling, (int, float)) and not isinstance(scaling, bool):
            return float(scaling)
    return None


def _matrix(shape: tuple[int, ...]) -> tuple[int, int]:
    return shape[0], int(np.prod(shape[1:]))


def _site_values(site: _Site, parameters: ModelParameters, init: str, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The site's ``(A, B, residual)`` as flat matrices, computed once (the base is read before it is rewritten)."""
    if site.factors is None:
        a_shape, b_shape = parameters.shape(site.a), parameters.shape(site.b)
        if init == "orthogonal":
            a, b = _orthogonal_factors(site.rank, _matrix(a_shape)[1], b_shape[0], seed=seed, name=site.a)
            site.factors = (a, b, np.empty(0))
        else:
            assert site.base is not None
            weight = full_values(parameters.tensor(site.base))
            weight = weight.T if site.transposed else weight.reshape(weight.shape[0], -1)
            site.factors = lora_factors(weight, site.rank, init, site.scaling)
    return site.factors


def _weight_norms(weight: np.ndarray, module: nn.Module) -> np.ndarray:
    """DoRA's magnitude at step 0 (PEFT ``get_weight_norm`` of ``W + s B A = W``): the norm of each output's weights.

    Per row of ``(out, in, *kernel)``; per column of Hugging Face ``Conv1D``'s
    ``(in, out)`` and of an embedding's ``(vocab, dim)`` (PEFT's ``fan_in_fan_out``).
    """
    if type(module).__name__ == "Conv1D" or isinstance(module, (nn.Embedding, nn.EmbeddingBag)):
        return np.linalg.norm(weight, axis=0)
    return np.linalg.norm(weight.reshape(weight.shape[0], -1), axis=1)


def _site_fill(tensor: torch.Tensor, *, seed: int, name: str, site: _Site, part: int, parameters: ModelParameters,
               init: str) -> None:
    if tensor.is_meta:
        return  # nothing to fill (and a meta base weight has no values to decompose)
    values = _site_values(site, parameters, init, seed)[part]
    if part == 2 and site.transposed:
        values = values.T

    def compute(shape: tuple[int, ...], region: Region) -> np.ndarray:
        return values.reshape(shape)[region]

    fill_computed(tensor, compute)


def _values_fill(tensor: torch.Tensor, *, seed: int, name: str, values: np.ndarray) -> None:
    del seed, name
    fill_computed(tensor, lambda shape, region: values.reshape(shape)[region])


# ----------------------------------------------------------------------------- the scheme
def lora(
    model: nn.Module,
    *,
    init: bool | str = True,
    seed: int = 0,
    scaling: float | None = None,
    preset: str | Preset = "auto",
    roles: Mapping[str, PatternsLike] | None = None,
    rules: RulesLike = None,
    **patterns: PatternsLike,
) -> SchemeReport:
    """Initialize a model's LoRA adapters the way PEFT's ``init_lora_weights`` does, reproducibly and TP-exact.

    Hu et al. (2021), "LoRA: Low-Rank Adaptation of Large Language Models";
    PEFT ``LoraLayer.reset_lora_parameters``, ``orthogonal_init``,
    ``pissa_init``, ``olora_init``. For each adapter ``W + s B A`` (``A``:
    ``(r, in, *kernel)``, ``B``: ``(out, r, ...)``, ``s`` the scaling):

    * ``True`` / ``"kaiming"``: ``A`` ``kaiming_uniform_(a=sqrt(5))``, i.e.
      ``U(+-1/sqrt(fan_in))`` with the *global* fan-in, ``B = 0``;
    * ``"gaussian"``: ``A ~ N(0, 1/r^2)``, ``B = 0``;
    * ``"orthogonal"``: PEFT's orthogonal pair with ``B A = 0`` (``r`` even);
    * ``"pissa"`` / ``"olora"``: from the base weight's SVD / QR
      (:func:`lora_factors`); the residual ``W - s B A`` is written back to the
      base weight. This consumes the base weight: applying it twice adapts
      the residual again, as in PEFT. Under DTensor the base weight is
      gathered on every process (a collective, in the same order everywhere).

    Embedding adapters (PEFT's ``lora_embedding_A``/``B``, or ``A``/``B`` on an
    ``nn.Embedding``) get ``A = 0`` and ``B ~ N(0, 1)``, as PEFT and loralib do.
    Biases of ``B`` are zero. DoRA's magnitudes (PEFT's ``lora_magnitude_vector``)
    get the norm of each output's weights in ``W + s B A``, which every
    ``init`` leaves equal to the base weight ``W``. Every other parameter of the model is kept.

    .. math:: A \\sim U\\!\\left(-\\tfrac{1}{\\sqrt{fan_{in}}}, \\tfrac{1}{\\sqrt{fan_{in}}}\\right),\\ B = 0
        \\qquad\\text{or}\\qquad A \\sim \\mathcal N(0, r^{-2}),\\ B = 0

    Parameters
    ----------
    model:
        The model with its adapters (a PEFT ``PeftModel`` or any module).
    init:
        ``True``, ``"kaiming"``, ``"gaussian"``, ``"orthogonal"``, ``"pissa"`` or ``"olora"``.
    seed:
        berry's seed; each adapter is keyed by its parameter's name.
    scaling:
        ``s`` for PiSSA/OLoRA; by default the ``scaling[adapter]`` of the PEFT
        layer (or a ``scaling`` number on the adapter's module).
    preset:
        ``"auto"``, ``"peft"``, ``"loralib"`` (``<site>.lora_A`` parameters
        next to ``<site>.weight``), ``"modules"`` (``<site>.lora_A.weight``),
        or a :class:`Preset`. ``A``, ``B`` and the base weight of one site are
        paired by their longest shared name prefix.
    roles, lora_A, lora_B, base, embedding_A, embedding_B:
        fnmatch patterns replacing the preset's.
    rules:
        :func:`berry.torch.init_model` rules for other parameters (default: keep them).

    >>> import torch
    >>> from torch import nn
    >>> layer = nn.Module()
    >>> layer.base = nn.Linear(64, 32)
    >>> layer.lora_A, layer.lora_B = nn.Parameter(torch.empty(8, 64)), nn.Parameter(torch.empty(32, 8))
    >>> report = lora(layer, seed=0)
    >>> report.preset, report["lora_A"].init, float(layer.lora_B.detach().abs().max())
    ('loralib', 'uniform(-0.125, 0.125)', 0.0)
    """
    init = "kaiming" if init is True else init
    if init is False:
        raise ValueError("init=False leaves the adapters as they are: do not call lora() then")
    init = check_choice("init", init, LORA_INITS)
    if scaling is not None:
        scaling = check_positive("scaling", scaling)
    parameters = ModelParameters(model)
    found = LORA_ROLES.resolve(parameters, preset, LORA_ROLES.overrides(roles, patterns))
    a_names, b_names = found.of("lora_A"), found.of("lora_B")
    magnitudes = found.of("magnitude")
    adapters = set(a_names) | set(b_names) | set(found.of("embedding_A")) | set(found.of("embedding_B")) | set(magnitudes)
    bases = [n for n in found.of("base") if n not in adapters]
    modules = {name: module for name, module in model.named_modules()}
    b_of = paired("lora", a_names, b_names, "lora_B") if a_names else {}
    base_of = paired("lora", a_names, bases, "base weight") if init in ("pissa", "olora") else {}
    magnitude_base = paired("lora", magnitudes, bases, "base weight") if magnitudes else {}

    role_of: dict[str, str] = {}
    scheme_rules: SchemeRules = []
    for a_name in a_names:
        a, b_name = parameters[a_name], b_of[a_name]
        rank, fan_in = _matrix(parameters.shape(a_name))
        if isinstance(a.module, (nn.Embedding, nn.EmbeddingBag)):  # loralib's Embedding: A (r, vocab), B (dim, r)
            scheme_rules += [(exact(a_name), "zeros"), (exact(b_name), {"std": 1.0})]
            role_of.update({a_name: "embedding_A", b_name: "embedding_B"})
            continue
        role_of.update({a_name: "lora_A", b_name: "lora_B"})
        if init == "kaiming":
            bound = 1.0 / math.sqrt(fan_in)  # kaiming_uniform_(a=sqrt(5)): gain sqrt(1/3), bound sqrt(3) * gain / sqrt(fan_in)
            scheme_rules += [(exact(a_name), {"distribution": "uniform", "low": -bound, "high": bound}),
                             (exact(b_name), "zeros")]
            continue
        if init == "gaussian":
            scheme_rules += [(exact(a_name), {"std": 1.0 / rank}), (exact(b_name), "zeros")]
            continue
        b_shape = parameters.shape(b_name)
        if _matrix(b_shape) != (b_shape[0], rank):
            raise PresetError(f"lora: {b_name} has shape {b_shape}; init={init!r} needs B of shape (out, r={rank}) "
                              "(grouped or kernel-sized B are not supported)")
        if init == "orthogonal" and rank % 2:
            raise ValueError(f"init='orthogonal' needs an even rank (PEFT's rule), got r={rank} for {a_name}")
        base_name = base_of.get(a_name)
        site_scaling = _scaling_of(modules, a_name, scaling)
        if init in ("pissa", "olora") and site_scaling is None:
            raise ValueError(f"lora: init={init!r} needs the adapter's scaling (lora_alpha / r); {a_name} has no "
                             "PEFT scaling to read, pass scaling=")
        transposed = base_name is not None and type(parameters[base_name].module).__name__ == "Conv1D"
        site = _Site(a_name, b_name, base_name, rank, site_scaling or 1.0, transposed)
        fill = functools.partial(_site_fill, site=site, parameters=parameters, init=init)
        scheme_rules += [(exact(a_name), functools.partial(fill, part=0)), (exact(b_name), functools.partial(fill, part=1))]
        if base_name is not None:
            scheme_rules.append((exact(base_name), functools.partial(fill, part=2)))
            role_of[base_name] = "base (residual)"
    for name in found.of("embedding_A"):
        scheme_rules.append((exact(name), "zeros"))
        role_of[name] = "embedding_A"
    for name in found.of("embedding_B"):
        scheme_rules.append((exact(name), {"std": 1.0}))
        role_of[name] = "embedding_B"
    for name, base_name in magnitude_base.items():  # read now: PiSSA and OLoRA rewrite the base weight
        base = parameters.tensor(base_name)
        if not base.is_meta:
            norms = _weight_norms(full_values(base), parameters[base_name].module)
            scheme_rules.append((exact(name), functools.partial(_values_fill, values=norms)))
        role_of[name] = "magnitude"
    for name in list(role_of):
        if role_of[name] == "lora_B" and name.endswith("weight") and name[: -len("weight")] + "bias" in parameters:
            scheme_rules.append((exact(name[: -len("weight")] + "bias"), "zeros"))
            role_of[name[: -len("weight")] + "bias"] = "lora_B bias"
    extra: list[Any] = list(rules.items()) if isinstance(rules, Mapping) else list(rules or [])
    report = apply_rules(model, scheme_rules, [*extra, ("*:*", "keep")], seed)
    constants = {"n_adapters": float(len(a_names) + len(found.of("embedding_A")))}
    if scaling is not None:
        constants["scaling"] = scaling
    return SchemeReport(f"lora ({init})", found.preset, constants, role_of, report)
