"""The initializations LLM trainers actually use: Megatron-LM, GPT-NeoX, OLMo, OLMo-core, torchtitan's Llama.

Each recipe is the reference trainer's code turned into one law per
parameter role (what the trainer takes the parameter for: the token
embedding, an attention input projection, the attention output projection
that adds into the residual stream, ...). The laws are exact: the same
distribution, standard deviation and truncation as the trainer's code, with
the trainer's own quirks (OLMo's ``mitchell`` uses the feed-forward output's
own fan-in; torchtitan and OLMo-core's ``llama`` scale the SwiGLU up
projection ``w3`` like the output projections; torchtitan truncates at
``+-2`` absolute, i.e. effectively not at all for ``std = 0.02``).

Presets name the roles for Hugging Face ``LlamaForCausalLM`` /
``MistralForCausalLM`` (``"llama"``), ``GPT2LMHeadModel`` and nanoGPT
(``"gpt2"``), torchtitan (``"torchtitan"``), Megatron-Core (``"megatron"``),
Hugging Face ``GPTNeoXForCausalLM`` (``"gpt_neox"``), OLMo
(``"olmo"``) and OLMo-core (``"olmo_core"``): any recipe applies to any of
them, so ``schemes.olmo(hf_llama, init_fn="mitchell")`` is OLMo's recipe on a
Llama model.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from torch import nn

from berry._validation import check_choice, check_int, check_positive
from berry.torch._model import RulesLike
from berry.torch.schemes._report import SchemeReport, SchemeRules, apply_rules
from berry.torch.schemes._roles import ModelParameters, Patterns, PatternsLike, Preset, RoleTable, exact
from berry.torch.schemes._sites import layer_index, linear_fans, norm_rules

__all__ = [
    "LLM_PRESETS",
    "LLM_RECIPES",
    "LLM_ROLES",
    "SMALL_EMBEDDING_BOUND",
    "Law",
    "gpt_neox",
    "llama",
    "llm_law",
    "megatron",
    "olmo",
    "olmo_core",
]

#: The roles, most specific first: a parameter matching several takes the first.
ROLE_ORDER = (
    "lm_head", "position", "embedding", "attention_output", "ffn_output", "ffn_up", "ffn_input", "attention_input",
)

LLM_ROLES = RoleTable(
    "llm",
    roles=ROLE_ORDER,
    presets=(
        Preset("llama", {  # Hugging Face LlamaForCausalLM, MistralForCausalLM, Qwen2, OLMo-HF
            "embedding": ("*embed_tokens.weight",),
            "attention_input": ("*.self_attn.q_proj.weight", "*.self_attn.k_proj.weight", "*.self_attn.v_proj.weight"),
            "attention_output": ("*.self_attn.o_proj.weight",),
            "ffn_input": ("*.mlp.gate_proj.weight",),
            "ffn_up": ("*.mlp.up_proj.weight",),
            "ffn_output": ("*.mlp.down_proj.weight",),
            "lm_head": ("*lm_head.weight",),
        }),
        Preset("gpt2", {  # Hugging Face GPT2LMHeadModel (Conv1D layers) and nanoGPT
            "embedding": ("*.wte.weight",),
            "position": ("*.wpe.weight",),
            "attention_input": ("*.attn.c_attn.weight",),
            "attention_output": ("*.attn.c_proj.weight",),
            "ffn_input": ("*.mlp.c_fc.weight",),
            "ffn_output": ("*.mlp.c_proj.weight",),
            "lm_head": ("*lm_head.weight",),
        }),
        Preset("torchtitan", {
            "embedding": ("*tok_embeddings.weight",),
            "attention_input": ("*.attention.wq.weight", "*.attention.wk.weight", "*.attention.wv.weight"),
            "attention_output": ("*.attention.wo.weight",),
            "ffn_input": ("*.feed_forward.w1.weight",),
            "ffn_up": ("*.feed_forward.w3.weight",),
            "ffn_output": ("*.feed_forward.w2.weight",),
            "lm_head": ("output.weight",),
        }),
        Preset("megatron", {  # Megatron-Core GPTModel
            "embedding": ("*embedding.word_embeddings.weight",),
            "position": ("*embedding.position_embeddings.weight",),
            "attention_input": ("*.self_attention.linear_qkv.weight",),
            "attention_output": ("*.self_attention.linear_proj.weight",),
            "ffn_input": ("*.mlp.linear_fc1.weight",),
            "ffn_output": ("*.mlp.linear_fc2.weight",),
            "lm_head": ("*output_layer.weight",),
        }),
        Preset("gpt_neox", {  # Hugging Face GPTNeoXForCausalLM (Pythia)
            "embedding": ("*embed_in.weight",),
            "attention_input": ("*.attention.query_key_value.weight",),
            "attention_output": ("*.attention.dense.weight",),
            "ffn_input": ("*.mlp.dense_h_to_4h.weight",),
            "ffn_output": ("*.mlp.dense_4h_to_h.weight",),
            "lm_head": ("*embed_out.weight", "*lm_head.weight"),  # transformers 5 renamed embed_out to lm_head
        }),
        Preset("olmo", {  # OLMo (v1) native names
            "embedding": ("*transformer.wte.weight",),
            "position": ("*transformer.wpe.weight",),
            "attention_input": ("*.att_proj.weight",),
            "attention_output": ("*.attn_out.weight",),
            "ffn_input": ("*.ff_proj.weight",),
            "ffn_output": ("*blocks.*.ff_out.weight",),
            "lm_head": ("*transformer.ff_out.weight",),
        }),
        Preset("olmo_core", {
            "embedding": ("*embeddings.weight",),
            "attention_input": ("*.attention.w_q.weight", "*.attention.w_k.weight", "*.attention.w_v.weight",
                                "*.attention.w_qkv.weight"),
            "attention_output": ("*.attention.w_out.weight",),
            "ffn_input": ("*.feed_forward.w1.weight",),
            "ffn_up": ("*.feed_forward.w3.weight",),
            "ffn_output": ("*.feed_forward.w2.weight",),
            "lm_head": ("*lm_head.w_out.weight",),
        }),
    ),
    required=(("attention_output",), ("ffn_output",)),
)
LLM_PRESETS: dict[str, dict[str, Patterns]] = LLM_ROLES.as_dict()

#: RWKV's "small init embedding" (Peng et al. 2023, section 3.4): U(-1e-4, 1e-4), then a LayerNorm.
SMALL_EMBEDDING_BOUND = 1e-4


# ----------------------------------------------------------------------------- laws
@dataclasses.dataclass(frozen=True)
class Law:
    """One parameter's law: ``normal``, ``truncated_normal`` or ``uniform``.

    ``std`` is the (parent) normal's standard deviation, or the uniform's;
    ``bound`` is the absolute truncation (``|w| <= bound``, torch's
    ``trunc_normal_(a=-bound, b=bound)``) or the uniform's half-width.
    """

    distribution: str
    std: float
    bound: float | None = None

    @classmethod
    def normal(cls, std: float) -> Law:
        return cls("normal", std)

    @classmethod
    def truncated(cls, std: float, bound: float) -> Law:
        return cls("truncated_normal", std, bound)

    @classmethod
    def uniform(cls, bound: float) -> Law:
        return cls("uniform", bound / math.sqrt(3.0), bound)

    def rule(self) -> dict[str, Any]:
        """The :func:`berry.torch.init_model` spec of this law."""
        if self.distribution == "uniform":
            assert self.bound is not None
            return {"distribution": "uniform", "low": -self.bound, "high": self.bound}
        if self.distribution == "truncated_normal":
            assert self.bound is not None
            cut = self.bound / self.std  # berry's bounds are in units of the parent normal's std
            return {"std": self.std, "distribution": "truncated_normal", "bounds": (-cut, cut), "correct_variance": False}
        return {"std": self.std}


@dataclasses.dataclass(frozen=True)
class _Shape:
    """What a law may depend on: depth, width, the layer's index and its fan-in."""

    n_layers: int
    d_model: int
    layer: int = 0
    in_features: int = 0


_IN = ("embedding", "position", "attention_input", "ffn_input", "ffn_up", "lm_head")


def _megatron(role: str, at: _Shape, init_method_std: float = 0.02) -> Law:
    # init_method_normal(sigma); scaled_init_method_normal(sigma, num_layers) for linear_proj / linear_fc2.
    if role in ("attention_output", "ffn_output"):
        return Law.normal(init_method_std / math.sqrt(2.0 * at.n_layers))
    return Law.normal(init_method_std)


_NEOX_METHODS = ("normal", "scaled_normal", "small_init", "wang_init")


def _neox_std(method: str, at: _Shape, init_method_std: float) -> float:
    if method == "normal":
        return init_method_std
    if method == "scaled_normal":
        return init_method_std / math.sqrt(2.0 * at.n_layers)
    if method == "small_init":  # Nguyen & Salazar 2019, "Transformers without Tears"
        return math.sqrt(2.0 / (5.0 * at.d_model))
    return 2.0 / at.n_layers / math.sqrt(at.d_model)  # wang_init (Wang 2021, GPT-J / Mesh Transformer JAX)


def _gpt_neox(
    role: str, at: _Shape, init_method: str = "normal", output_layer_init_method: str = "scaled_normal",
    init_method_std: float = 0.02,
) -> Law:
    method = output_layer_init_method if role in ("attention_output", "ffn_output") else init_method
    return Law.normal(_neox_std(method, at, init_method_std))


def _olmo(
    role: str, at: _Shape, init_fn: str = "mitchell", init_std: float = 0.02, init_cutoff_factor: float | None = None,
    emb_init_std: float | None = None, scale_emb_init: bool = False,
) -> Law:
    d = at.d_model
    if init_fn == "normal":  # OLMo's "normal": no depth scaling, truncated only if init_cutoff_factor is set
        std = (emb_init_std or init_std) if role == "embedding" else init_std
        return Law.truncated(std, init_cutoff_factor * std) if init_cutoff_factor is not None else Law.normal(std)
    cutoff = init_cutoff_factor or 3.0
    if init_fn == "mitchell":
        if role == "attention_output":
            std = 1.0 / math.sqrt(2.0 * d * (at.layer + 1))
        elif role == "ffn_output":  # the feed-forward output's own fan-in (the hidden size), as OLMo writes it
            std = 1.0 / math.sqrt(2.0 * at.in_features * (at.layer + 1))
        elif role == "embedding":
            std = emb_init_std or 1.0 / math.sqrt(d)
        else:
            std = 1.0 / math.sqrt(d)
        return Law.truncated(std, cutoff * std)
    # full_megatron
    if role in ("attention_output", "ffn_output"):
        std = init_std / math.sqrt(2.0 * at.n_layers)
    elif role == "embedding":
        std = emb_init_std if emb_init_std is not None else init_std * (math.sqrt(d) if scale_emb_init else 1.0)
    elif role == "lm_head":
        std = 1.0 / math.sqrt(d)
    else:
        std = init_std
    return Law.truncated(std, cutoff * std)


def _olmo_core(role: str, at: _Shape, init_method: str = "normal", init_std: float = 0.02) -> Law:
    if init_method == "normal":
        return Law.truncated(init_std, 3.0 * init_std)
    if role in ("embedding", "position"):
        return Law.normal(1.0)  # llama / llama_depth: nn.init.normal_ (std 1, not truncated)
    if role == "lm_head":
        std = at.d_model**-0.5
    elif role in ("attention_output", "ffn_output", "ffn_up"):
        depth = at.n_layers if init_method == "llama" else at.layer + 1
        std = init_std / math.sqrt(2.0 * depth)
    else:
        std = init_std
    return Law.truncated(std, 3.0 * std)


def _llama(role: str, at: _Shape, depth_init: bool = True, init_std: float = 0.02) -> Law:
    if role in ("embedding", "position"):
        return Law.normal(1.0)  # nn.init.normal_ on tok_embeddings
    if role == "lm_head":
        std = at.d_model**-0.5
        return Law.truncated(std, 3.0 * std)
    if role in ("attention_output", "ffn_output", "ffn_up"):
        depth = at.layer + 1 if depth_init else at.n_layers
        return Law.truncated(init_std / math.sqrt(2.0 * depth), 2.0)  # trunc_normal_'s default a=-2, b=2
    return Law.truncated(init_std, 2.0)


_RECIPES: dict[str, Any] = {
    "megatron": _megatron, "gpt_neox": _gpt_neox, "olmo": _olmo, "olmo_core": _olmo_core, "llama": _llama,
}
#: The recipe names :func:`llm_law` knows.
LLM_RECIPES = tuple(_RECIPES)


def llm_law(
    recipe: str,
    role: str,
    *,
    n_layers: int,
    d_model: int,
    layer: int = 0,
    in_features: int | None = None,
    **options: Any,
) -> Law:
    """The law of one parameter under an LLM recipe (the formula the scheme functions apply).

    ``recipe``: one of :data:`LLM_RECIPES`; ``role``: one of the roles of
    :data:`LLM_ROLES` (or ``"other"``: a weight no role names, which gets the
    recipe's input law); ``layer``: the 0-based block index; ``in_features``:
    the weight's fan-in (OLMo's ``mitchell`` feed-forward output needs it);
    ``options``: the recipe function's keyword arguments (``init_method_std``,
    ``init_fn``, ``depth_init``, ...). See each recipe for its formulas.

    >>> llm_law("megatron", "ffn_output", n_layers=24, d_model=1024)
    Law(distribution='normal', std=0.002886751345948129, bound=None)
    >>> law = llm_law("olmo", "attention_output", n_layers=16, d_model=2048, layer=3, init_fn="mitchell")
    >>> round(law.std * math.sqrt(2 * 2048 * 4), 6), round(law.bound / law.std, 6)
    (1.0, 3.0)
    """
    recipe = check_choice("recipe", recipe, LLM_RECIPES)
    role = check_choice("role", "attention_input" if role == "other" else role, ROLE_ORDER)
    at = _Shape(check_int("n_layers", n_layers, minimum=1), check_int("d_model", d_model, minimum=1),
                check_int("layer", layer, minimum=0), in_features or d_model)
    return _RECIPES[recipe](role, at, **options)


# ----------------------------------------------------------------------------- the scheme engine
def _is_linear_weight(entry: Any) -> bool:
    module = entry.module
    return entry.local_name == "weight" and (isinstance(module, nn.Linear) or type(module).__name__ == "Conv1D")


def _apply_recipe(
    model: nn.Module,
    recipe: str,
    options: Mapping[str, Any],
    *,
    seed: int,
    n_layers: int | None,
    d_model: int | None,
    small_embedding: bool | float,
    preset: str | Preset,
    roles: Mapping[str, PatternsLike] | None,
    rules: RulesLike,
    patterns: Mapping[str, PatternsLike],
) -> SchemeReport:
    parameters = ModelParameters(model)
    table = dataclasses.replace(LLM_ROLES, scheme=recipe)
    found = table.resolve(parameters, preset, table.overrides(roles, patterns))
    role_of: dict[str, str] = {}
    for role in ROLE_ORDER:
        for name in found.of(role):
            role_of.setdefault(name, role)
    outputs = [n for n in found.of("attention_output") if role_of[n] == "attention_output"]
    if n_layers is None:
        indices = {layer_index(n) for n in outputs}
        n_layers = len(indices) if None not in indices else len(outputs)
    n_layers = check_int("n_layers", n_layers, minimum=1)
    if d_model is None:
        first = parameters[outputs[0]]
        d_model = linear_fans(first.module, parameters.shape(first.name))[1]
    d_model = check_int("d_model", d_model, minimum=1)
    bound = _small_embedding_bound(small_embedding)

    scheme_rules: SchemeRules = []
    seen: dict[str, int] = {}
    for entry in parameters:
        named = role_of.get(entry.name)
        if named is not None:
            role = named
        else:
            if isinstance(entry.module, nn.Embedding) and entry.local_name == "weight":
                role = "embedding"
            elif _is_linear_weight(entry):
                role = "attention_input"  # a weight no role names gets the recipe's input law
            else:
                continue
            role_of[entry.name] = "other"
        position = seen[role] = seen.get(role, -1) + 1
        layer = layer_index(entry.name)
        fan_in = linear_fans(entry.module, parameters.shape(entry.name))[0]
        at = _Shape(n_layers, d_model, position if layer is None else layer, fan_in)
        if bound is not None and role_of[entry.name] == "embedding":
            law = Law.uniform(bound)
        else:
            law = _RECIPES[recipe](role, at, **options)
        scheme_rules.append((exact(entry.name), law.rule()))
    for entry in parameters:
        module = entry.module
        biased = isinstance(module, nn.Linear) or type(module).__name__ == "Conv1D"
        if biased and entry.local_name == "bias" and entry.name not in role_of:
            scheme_rules.append((exact(entry.name), "zeros"))
            role_of[entry.name] = "bias"
    for pattern, init in norm_rules(parameters, skip=set(role_of)):
        scheme_rules.append((pattern, init))
    report = apply_rules(model, scheme_rules, rules, seed)
    constants = {"n_layers": float(n_layers), "d_model": float(d_model)}
    constants.update({k: float(v) for k, v in options.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
    if bound is not None:
        constants["small_embedding_bound"] = bound
    return SchemeReport(recipe, found.preset, constants, role_of, report)


def _small_embedding_bound(small_embedding: bool | float) -> float | None:
    if small_embedding is False or small_embedding is None:
        return None
    if small_embedding is True:
        return SMALL_EMBEDDING_BOUND
    return check_positive("small_embedding", small_embedding)


_COMMON_DOC = """n_layers, d_model:
        Depth and width; by default the number of attention output
        projections and their output size. Give ``n_layers`` for a pipeline
        stage that holds only some of the layers (the layer index of a
        parameter is the first integer in its name).
    small_embedding:
        ``True`` (bound ``1e-4``) or a bound: the token embedding gets
        ``U(-bound, bound)`` instead, RWKV's "small init embedding" (Peng et
        al. 2023, "RWKV: Reinventing RNNs for the Transformer Era", section
        3.4), meant to be followed by a LayerNorm.
    preset:
        ``"auto"`` or one of ``"llama"`` (Hugging Face Llama/Mistral),
        ``"gpt2"``, ``"torchtitan"``, ``"megatron"``, ``"gpt_neox"``,
        ``"olmo"``, ``"olmo_core"``, or a :class:`Preset`.
    roles, embedding, position, attention_input, attention_output, ffn_input, ffn_up, ffn_output, lm_head:
        fnmatch patterns replacing the preset's for a role.
    rules:
        :func:`berry.torch.init_model` rules for parameters the recipe does
        not name (biases of named layers are zero, norms one and zero, other
        ``Linear`` weights get the recipe's input law, other embeddings its
        embedding law).
"""


def _with_common_parameters(function: Any) -> Any:
    """Put the parameters every recipe shares into the recipe's docstring."""
    function.__doc__ = function.__doc__.replace("<<common parameters>>", _COMMON_DOC.rstrip() + "\n")
    return function


@_with_common_parameters
def megatron(
    model: nn.Module,
    *,
    seed: int = 0,
    init_method_std: float = 0.02,
    n_layers: int | None = None,
    d_model: int | None = None,
    small_embedding: bool | float = False,
    preset: str | Preset = "auto",
    roles: Mapping[str, PatternsLike] | None = None,
    rules: RulesLike = None,
    **patterns: PatternsLike,
) -> SchemeReport:
    """Megatron-LM's initialization (Shoeybi et al. 2019; Megatron-Core ``init_method_normal``).

    Every weight ``N(0, sigma^2)`` with ``sigma = init_method_std``, the
    output layers that add into the residual stream (attention
    ``linear_proj``, MLP ``linear_fc2``) ``scaled_init_method_normal``:

    .. math:: W \\sim \\mathcal{N}(0, \\sigma^2), \\qquad
        W_{out} \\sim \\mathcal{N}\\!\\left(0, \\frac{\\sigma^2}{2 L}\\right)

    biases zero, norms one (Megatron-LM ``megatron/core/utils.py``).

    Parameters
    ----------
    model:
        The model.
    seed:
        berry's seed; each parameter is keyed by its fully qualified name.
    init_method_std:
        ``sigma`` (Megatron's ``--init-method-std``, 0.02).
    <<common parameters>>
    >>> from berry.torch.models import Transformer
    >>> report = megatron(Transformer(n_layer=8, n_embd=32, n_head=4), seed=0)
    >>> report.preset, round(report["transformer.h.0.mlp.c_proj.weight"].std, 6)
    ('gpt2', 0.005)
    """
    options = {"init_method_std": check_positive("init_method_std", init_method_std)}
    return _apply_recipe(model, "megatron", options, seed=seed, n_layers=n_layers, d_model=d_model,
                         small_embedding=small_embedding, preset=preset, roles=roles, rules=rules, patterns=patterns)


@_with_common_parameters
def gpt_neox(
    model: nn.Module,
    *,
    seed: int = 0,
    init_method: str = "normal",
    output_layer_init_method: str = "scaled_normal",
    init_method_std: float = 0.02,
    n_layers: int | None = None,
    d_model: int | None = None,
    small_embedding: bool | float = False,
    preset: str | Preset = "auto",
    roles: Mapping[str, PatternsLike] | None = None,
    rules: RulesLike = None,
    **patterns: PatternsLike,
) -> SchemeReport:
    """GPT-NeoX's initialization (Black et al. 2022; ``megatron/model/init_functions.py``).

    ``init_method`` for embeddings, attention ``query_key_value``, MLP
    ``dense_h_to_4h`` and the output ``embed_out``; ``output_layer_init_method``
    for attention ``dense`` and MLP ``dense_4h_to_h``. Each is a normal law:

    .. math:: \\text{normal}: \\sigma, \\quad \\text{scaled\\_normal}: \\frac{\\sigma}{\\sqrt{2L}}, \\quad
        \\text{small\\_init}: \\sqrt{\\frac{2}{5d}}, \\quad \\text{wang\\_init}: \\frac{2}{L\\sqrt{d}}

    (``small_init``: Nguyen & Salazar 2019, "Transformers without Tears";
    ``wang_init``: Ben Wang's Mesh Transformer JAX). GPT-NeoX-20B and Pythia
    train with ``init_method="small_init"``, ``output_layer_init_method="wang_init"``.

    Parameters
    ----------
    model:
        The model.
    seed:
        berry's seed; each parameter is keyed by its fully qualified name.
    init_method, output_layer_init_method:
        ``"normal"``, ``"scaled_normal"``, ``"small_init"`` or ``"wang_init"``.
    init_method_std:
        ``sigma`` (``--init-method-std``, 0.02).
    <<common parameters>>
    >>> from berry.torch.models import Transformer
    >>> report = gpt_neox(Transformer(n_layer=4, n_embd=40, n_head=4), init_method="small_init",
    ...                   output_layer_init_method="wang_init", seed=0)
    >>> round(report["transformer.h.0.attn.c_attn.weight"].std, 6), round(report["transformer.h.0.attn.c_proj.weight"].std, 6)
    (0.1, 0.079057)
    """
    options = {
        "init_method": check_choice("init_method", init_method, _NEOX_METHODS),
        "output_layer_init_method": check_choice("output_layer_init_method", output_layer_init_method, _NEOX_METHODS),
        "init_method_std": check_positive("init_method_std", init_method_std),
    }
    return _apply_recipe(model, "gpt_neox", options, seed=seed, n_layers=n_layers, d_model=d_model,
                         small_embedding=small_embedding, preset=preset, roles=roles, rules=rules, patterns=patterns)


@_with_common_parameters
def olmo(
    model: nn.Module,
    *,
    seed: int = 0,
    init_fn: str = "mitchell",
    init_std: float = 0.02,
    init_cutoff_factor: float | None = None,
    emb_init_std: float | None = None,
    scale_emb_init: bool = False,
    n_layers: int | None = None,
    d_model: int | None = None,
    small_embedding: bool | float = False,
    preset: str | Preset = "auto",
    roles: Mapping[str, PatternsLike] | None = None,
    rules: RulesLike = None,
    **patterns: PatternsLike,
) -> SchemeReport:
    """OLMo's initializations (Groeneveld et al. 2024; ``olmo/model.py`` ``reset_parameters``).

    With ``d = d_model``, ``l`` the 0-based block index, ``L`` the depth, ``c``
    the cutoff (``init_cutoff_factor``, default 3) and truncation at ``+-c``
    standard deviations:

    * ``"mitchell"``: input projections (``att_proj``, ``ff_proj``), the
      token and position embeddings and the untied output ``1/sqrt(d)``;
      ``attn_out`` ``1/sqrt(2 d (l+1))``; ``ff_out`` ``1/sqrt(2 n (l+1))`` with
      ``n`` its own fan-in (the hidden size);
    * ``"full_megatron"``: inputs ``init_std``, outputs ``init_std/sqrt(2L)``,
      token embedding ``init_std`` (``emb_init_std`` if given, else
      ``init_std * sqrt(d)`` with ``scale_emb_init``), untied output ``1/sqrt(d)``;
    * ``"normal"``: every weight ``init_std`` (the token embedding
      ``emb_init_std`` if given), truncated only if ``init_cutoff_factor`` is set.

    .. math:: \\text{mitchell:}\\ \\sigma_{in} = \\frac{1}{\\sqrt d},\\
        \\sigma_{attn\\_out} = \\frac{1}{\\sqrt{2 d (l+1)}}, \\qquad
        \\text{full\\_megatron:}\\ \\sigma_{out} = \\frac{\\sigma}{\\sqrt{2L}}

    Parameters
    ----------
    model:
        The model.
    seed:
        berry's seed; each parameter is keyed by its fully qualified name.
    init_fn:
        ``"mitchell"``, ``"full_megatron"`` or ``"normal"`` (OLMo's ``init_fn``).
    init_std, init_cutoff_factor, emb_init_std, scale_emb_init:
        OLMo's config fields of the same names (0.02, None, None, False).
    <<common parameters>>
    >>> from berry.torch.models import Transformer
    >>> report = olmo(Transformer(n_layer=4, n_embd=64, n_head=4), init_fn="mitchell", seed=0)
    >>> round(report["transformer.h.1.attn.c_proj.weight"].std * (2 * 64 * 2) ** 0.5, 6)
    1.0
    """
    init_fn = check_choice("init_fn", init_fn, ("mitchell", "full_megatron", "normal"))
    options: dict[str, Any] = {"init_fn": init_fn, "init_std": check_positive("init_std", init_std),
                               "scale_emb_init": bool(scale_emb_init)}
    if init_cutoff_factor is not None:
        options["init_cutoff_factor"] = check_positive("init_cutoff_factor", init_cutoff_factor)
    if emb_init_std is not None:
        options["emb_init_std"] = check_positive("emb_init_std", emb_init_std)
    return _apply_recipe(model, "olmo", options, seed=seed, n_layers=n_layers, d_model=d_model,
                         small_embedding=small_embedding, preset=preset, roles=roles, rules=rules, patterns=patterns)


@_with_common_parameters
def olmo_core(
    model: nn.Module,
    *,
    seed: int = 0,
    init_method: str = "normal",
    init_std: float = 0.02,
    n_layers: int | None = None,
    d_model: int | None = None,
    small_embedding: bool | float = False,
    preset: str | Preset = "auto",
    roles: Mapping[str, PatternsLike] | None = None,
    rules: RulesLike = None,
    **patterns: PatternsLike,
) -> SchemeReport:
    """OLMo-core's ``InitMethod`` (``olmo_core/nn/transformer/init.py``).

    Every weight truncated at ``+-3`` standard deviations:

    * ``"normal"``: every weight and the embeddings ``std``;
    * ``"llama"``: embeddings ``N(0, 1)`` (not truncated), ``w_q``, ``w_k``,
      ``w_v``, ``w1`` ``std``; ``w_out``, ``w2`` and ``w3``
      ``std/sqrt(2L)``; the final ``w_out`` ``1/sqrt(d)``;
    * ``"llama_depth"``: as ``"llama"`` with ``std/sqrt(2 (l+1))``.

    .. math:: \\text{llama:}\\ \\sigma_{out} = \\frac{\\sigma}{\\sqrt{2L}}, \\qquad
        \\text{llama\\_depth:}\\ \\sigma_{out} = \\frac{\\sigma}{\\sqrt{2(l+1)}}, \\qquad \\sigma_{emb} = 1

    Parameters
    ----------
    model:
        The model.
    seed:
        berry's seed; each parameter is keyed by its fully qualified name.
    init_method:
        ``"normal"``, ``"llama"`` or ``"llama_depth"``.
    init_std:
        ``std`` (OLMo-core's ``init_std``, 0.02).
    <<common parameters>>
    >>> from berry.torch.models import Transformer
    >>> report = olmo_core(Transformer(n_layer=2, n_embd=32, n_head=4), init_method="llama", seed=0)
    >>> round(report["transformer.h.0.mlp.c_proj.weight"].std, 6), report["transformer.wte.weight"].std
    (0.01, 1.0)
    """
    options = {"init_method": check_choice("init_method", init_method, ("normal", "llama", "llama_depth")),
               "init_std": check_positive("init_std", init_std)}
    return _apply_recipe(model, "olmo_core", options, seed=seed, n_layers=n_layers, d_model=d_model,
                         small_embedding=small_embedding, preset=preset, roles=roles, rules=rules, patterns=patterns)


@_with_common_parameters
def llama(
    model: nn.Module,
    *,
    seed: int = 0,
    depth_init: bool = True,
    init_std: float = 0.02,
    n_layers: int | None = None,
    d_model: int | None = None,
    small_embedding: bool | float = False,
    preset: str | Preset = "auto",
    roles: Mapping[str, PatternsLike] | None = None,
    rules: RulesLike = None,
    **patterns: PatternsLike,
) -> SchemeReport:
    """Llama-style initialization as torchtitan trains it (``torchtitan/models/llama3/model.py`` ``init_weights``).

    Token embeddings ``N(0, 1)``; ``wq``, ``wk``, ``wv``, ``w1`` truncated
    normal of std 0.02; ``wo``, ``w2`` and ``w3`` std ``init_std``; both
    truncated at torch's default ``+-2`` (absolute); norms one; the output
    layer truncated normal of std ``1/sqrt(d)`` at ``+-3`` std:

    .. math:: \\sigma_{out} = \\frac{0.02}{\\sqrt{2 (l+1)}}\\ (\\text{depth\\_init}),
        \\quad \\frac{0.02}{\\sqrt{2L}}\\ \\text{otherwise}, \\qquad \\sigma_{output} = d^{-1/2}

    Parameters
    ----------
    model:
        The model.
    seed:
        berry's seed; each parameter is keyed by its fully qualified name.
    depth_init:
        torchtitan's ``depth_init`` (default True): scale by the layer's index instead of the depth.
    init_std:
        The 0.02 torchtitan writes as a literal.
    <<common parameters>>
    >>> from berry.torch.models import Transformer
    >>> report = llama(Transformer(n_layer=4, n_embd=64, n_head=4), seed=0)
    >>> round(report["transformer.h.1.attn.c_proj.weight"].std, 6), round(report["lm_head.weight"].std, 6)
    (0.01, 0.125)
    """
    options = {"depth_init": bool(depth_init), "init_std": check_positive("init_std", init_std)}
    return _apply_recipe(model, "llama", options, seed=seed, n_layers=n_layers, d_model=d_model,
                         small_embedding=small_embedding, preset=preset, roles=roles, rules=rules, patterns=patterns)
