"""Whole-network initialization schemes: GPT-2, DeepNorm, Fixup, T-Fixup, muP, LSUV and ZerO, and the
recipes LLM trainers use (Megatron-LM, GPT-NeoX, OLMo, OLMo-core, torchtitan's Llama), Mamba and S4D,
LoRA adapters, CompleteP, the spectral condition and mimetic attention.

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
first that fits, and ``roles={role: patterns}`` (or the role as a keyword,
``ffn=[...]``) points a scheme at your own names. A preset that cannot find
what it needs raises :class:`PresetError`, naming the patterns it searched
and the model's parameters.

The pure formulas (:func:`gpt2_residual_std`, :func:`deepnorm_constants`,
:func:`fixup_scale`, :func:`t_fixup_scales`, :func:`mup_rules`,
:func:`zero_matrix`) are exposed on their own, for other frameworks and for
checking.

Names: the scheme of Wang et al. (2022) is :func:`deepnorm` (``deepnet`` is
the same function); the seed's :func:`berry.initializations.deepnet` is a
different thing, a rule (He's normal with the fan-out) for one layer.

How the package is laid out, and how to add a scheme family
-------------------------------------------------------------
* ``_roles``: :class:`Preset` (a naming convention: role -> fnmatch
  patterns), :class:`RoleTable` (a family's roles, presets and required
  roles; its ``resolve`` finds a model's :class:`Roles`, its ``overrides``
  reads ``roles=`` and role keywords), :class:`ModelParameters` (the model's
  parameters as :func:`berry.torch.init_model` names them) and pattern helpers
  (``exact``, ``matching``, ``shown``).
* ``_report``: :class:`SchemeReport` and ``apply_rules`` (the scheme's rules,
  then the user's, then berry's defaults, through ``init_model``).
* ``_transformer``: what DeepNorm and T-Fixup share (presets, stacks,
  depths, packed q/k/v weights).
* one module per family: ``_gpt2``, ``_deepnorm``, ``_fixup`` (Fixup and
  T-Fixup), ``_mup``, ``_lsuv``, ``_zero``; the training recipes ``_llm``
  (Megatron, GPT-NeoX, OLMo, OLMo-core, torchtitan), ``_ssm`` (Mamba, S4D),
  ``_lora``, ``_transfer`` (CompleteP, spectral), ``_mimetic``.
* ``_sites``: what those recipes share: values computed from a formula of
  the global tensor written shard by shard (``fill_computed``), the keyed
  stream in float64 for them, pairing parameters of one layer by name
  (a LoRA ``A`` with its ``B``, a query with its key), layer indices, norms.

A new family is one new module, ``_<family>.py``, holding

1. its pure formulas (floats from depths, widths and shapes; a docstring
   with the paper, the formula and a doctest);
2. a ``RoleTable`` of its presets (reuse ``_transformer.TRANSFORMER_ROLES``
   for attention/feed-forward roles);
3. the scheme function ``name(model, *, seed=0, ..., preset="auto",
   roles=None, rules=None, **patterns)``: ``ModelParameters(model)``, then
   ``TABLE.resolve(parameters, preset, TABLE.overrides(roles, patterns))``,
   then a list of ``(exact(name), init)`` rules in any form ``init_model``
   accepts (take fans from ``berry.torch._model.fan_blocks`` or, better, give
   a rule such as ``{"init": "he", "gain": g}`` and let ``init_model`` apply
   the layer's fans; write tensors only through ``berry.torch._tensors``), then
   ``apply_rules(model, rules_list, rules, seed)`` and a ``SchemeReport``;

then two lines here (import its public names, add them to ``__all__``), a row
in docs/schemes.md, and tests against the paper's equations in
tests/test_schemes.py.

>>> import torch
>>> from berry.torch.models import Transformer
>>> from berry.torch import schemes
>>> model = Transformer(n_layer=4, n_embd=32, n_head=4)
>>> report = schemes.gpt2(model, seed=0)
>>> round(report.constants["residual_std"], 5)
0.00707
"""

from __future__ import annotations

from berry.torch.schemes._deepnorm import DeepNormConstants, deepnet, deepnorm, deepnorm_constants
from berry.torch.schemes._fixup import (
    FIXUP_PRESETS,
    TFixupScales,
    fixup,
    fixup_scale,
    t_fixup,
    t_fixup_scales,
)
from berry.torch.schemes._gpt2 import GPT2_PRESETS, gpt2, gpt2_residual_std
from berry.torch.schemes._llm import (
    LLM_PRESETS,
    LLM_RECIPES,
    SMALL_EMBEDDING_BOUND,
    Law,
    gpt_neox,
    llama,
    llm_law,
    megatron,
    olmo,
    olmo_core,
)
from berry.torch.schemes._lora import LORA_INITS, LORA_PRESETS, lora, lora_factors
from berry.torch.schemes._lsuv import LSUVLayer, LSUVReport, lsuv
from berry.torch.schemes._mimetic import MIMETIC_PRESETS, mimetic, mimetic_factors
from berry.torch.schemes._mup import MUP_PRESETS, MupParameter, MupReport, mup, mup_rules
from berry.torch.schemes._report import SchemeReport
from berry.torch.schemes._roles import ModelParameters, Preset, PresetError, Roles, RoleTable
from berry.torch.schemes._ssm import (
    MAMBA_PRESETS,
    S4D_PRESETS,
    inverse_softplus,
    mamba,
    mamba_dt,
    s4d,
    s4d_diagonal,
)
from berry.torch.schemes._transfer import (
    COMPLETEP_PRESETS,
    CompletePParameter,
    CompletePReport,
    SpectralParameter,
    SpectralReport,
    completep,
    spectral,
    spectral_std,
)
from berry.torch.schemes._transformer import ARCHITECTURES, TRANSFORMER_PRESETS
from berry.torch.schemes._zero import ZERO_PRESETS, hadamard, zero, zero_matrix

__all__ = [
    "ARCHITECTURES",
    "COMPLETEP_PRESETS",
    "FIXUP_PRESETS",
    "GPT2_PRESETS",
    "LLM_PRESETS",
    "LLM_RECIPES",
    "LORA_INITS",
    "LORA_PRESETS",
    "MAMBA_PRESETS",
    "MIMETIC_PRESETS",
    "MUP_PRESETS",
    "S4D_PRESETS",
    "SMALL_EMBEDDING_BOUND",
    "TRANSFORMER_PRESETS",
    "ZERO_PRESETS",
    "CompletePParameter",
    "CompletePReport",
    "DeepNormConstants",
    "LSUVLayer",
    "LSUVReport",
    "Law",
    "ModelParameters",
    "MupParameter",
    "MupReport",
    "Preset",
    "PresetError",
    "RoleTable",
    "Roles",
    "SchemeReport",
    "SpectralParameter",
    "SpectralReport",
    "TFixupScales",
    "completep",
    "deepnet",
    "deepnorm",
    "deepnorm_constants",
    "fixup",
    "fixup_scale",
    "gpt2",
    "gpt2_residual_std",
    "gpt_neox",
    "hadamard",
    "inverse_softplus",
    "llama",
    "llm_law",
    "lora",
    "lora_factors",
    "lsuv",
    "mamba",
    "mamba_dt",
    "megatron",
    "mimetic",
    "mimetic_factors",
    "mup",
    "mup_rules",
    "olmo",
    "olmo_core",
    "s4d",
    "s4d_diagonal",
    "spectral",
    "spectral_std",
    "t_fixup",
    "t_fixup_scales",
    "zero",
    "zero_matrix",
]
