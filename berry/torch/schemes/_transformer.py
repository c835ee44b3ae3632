"""What the transformer schemes (DeepNorm, T-Fixup) share: presets, stacks, depths, packed q/k/v weights."""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import torch
from torch import nn

from berry._validation import check_choice, check_int
from berry.fans import Fans, compute_fans
from berry.initializations import xavier
from berry.sampling import InitSpec
from berry.torch._tensors import fill_from_sampler, scale_blocks
from berry.torch.schemes._roles import ModelParameters, Patterns, Preset, PresetError, Roles, RoleTable

__all__ = [
    "ARCHITECTURES",
    "TRANSFORMER_PRESETS",
    "TransformerRoles",
    "layer_counts",
    "packed_qkv",
    "packed_qkv_fill",
    "resolve_transformer",
    "scaled_xavier",
    "sibling_bias",
]

#: Transformer families for DeepNet and T-Fixup.
ARCHITECTURES = ("encoder", "decoder", "encoder-decoder")

#: Attention and feed-forward weights by naming convention. ``packed``: q, k, v stacked along dim 0.
TRANSFORMER_ROLES = RoleTable(
    "transformer",
    roles=("query_key", "value", "output", "ffn", "packed", "embedding", "encoder", "decoder"),
    presets=(
        Preset("fairseq", {
            "query_key": ("*.q_proj.weight", "*.k_proj.weight"),
            "value": ("*.v_proj.weight",),
            "output": ("*.out_proj.weight",),
            "ffn": ("*.fc1.weight", "*.fc2.weight"),
            "embedding": ("*embed_tokens.weight", "*embed_positions.weight"),
            "encoder": ("encoder.*",),
            "decoder": ("decoder.*",),
        }),
        Preset("nanogpt", {
            "packed": ("*.attn.c_attn.weight",),
            "output": ("*.attn.c_proj.weight",),
            "ffn": ("*.mlp.c_fc.weight", "*.mlp.c_proj.weight"),
            "embedding": ("*.wte.weight", "*.wpe.weight"),
            "encoder": ("encoder.*",),
            "decoder": ("decoder.*",),
        }),
        Preset("torch", {
            "packed": ("*.in_proj_weight",),
            "output": ("*.out_proj.weight",),
            "ffn": ("*.linear1.weight", "*.linear2.weight"),
            "embedding": ("*.embedding.weight",),
            "encoder": ("encoder.*",),
            "decoder": ("decoder.*",),
        }),
    ),
    required=(("ffn",), ("output",), ("value", "packed")),
)
TRANSFORMER_PRESETS: dict[str, dict[str, Patterns]] = TRANSFORMER_ROLES.as_dict()


# ----------------------------------------------------------------------------- architectures and depths
def check_architecture(architecture: str | None, encoder_layers: int | None, decoder_layers: int | None) -> str:
    """The architecture given, else the one the layer counts imply (``"decoder"`` when none is given)."""
    if architecture is None:
        if encoder_layers is not None and decoder_layers is not None:
            return "encoder-decoder"
        return "encoder" if encoder_layers is not None else "decoder"
    return check_choice("architecture", architecture, ARCHITECTURES)


def layer_counts(
    architecture: str, encoder_layers: int | None, decoder_layers: int | None
) -> tuple[int | None, int | None]:
    """``(N, M)``: the stacks the architecture has must be given, the others are ``None``."""
    need_encoder = architecture in ("encoder", "encoder-decoder")
    need_decoder = architecture in ("decoder", "encoder-decoder")
    if need_encoder and encoder_layers is None:
        raise ValueError(f"architecture={architecture!r} needs encoder_layers (N), got None")
    if need_decoder and decoder_layers is None:
        raise ValueError(f"architecture={architecture!r} needs decoder_layers (M), got None")
    n = check_int("encoder_layers", encoder_layers, minimum=1) if need_encoder else None
    m = check_int("decoder_layers", decoder_layers, minimum=1) if need_decoder else None
    return n, m


@dataclasses.dataclass(frozen=True)
class TransformerRoles:
    """A transformer's roles, its architecture and the depth of each stack."""

    roles: Roles
    architecture: str
    encoder_layers: int | None
    decoder_layers: int | None

    def stack_of(self, name: str) -> str:
        """Which stack a parameter is in: the architecture's only stack, or encoder/decoder by pattern."""
        if self.architecture in ("encoder", "decoder"):
            return self.architecture
        if self.roles.plays(name, "decoder"):
            return "decoder"
        if self.roles.plays(name, "encoder"):
            return "encoder"
        raise PresetError(
            f"parameter {name!r} is in neither the encoder (patterns {self.roles.patterns.get('encoder')}) nor the "
            f"decoder (patterns {self.roles.patterns.get('decoder')}); pass encoder=/decoder= patterns"
        )

    def layer_counts(self) -> dict[str, float]:
        """The depths, for a report's constants."""
        counts = (("encoder_layers", self.encoder_layers), ("decoder_layers", self.decoder_layers))
        return {k: float(v) for k, v in counts if v is not None}


def resolve_transformer(
    scheme: str,
    parameters: ModelParameters,
    preset: str | Preset,
    overrides: dict[str, Patterns],
    architecture: str | None,
    encoder_layers: int | None,
    decoder_layers: int | None,
) -> TransformerRoles:
    """The roles of a transformer for ``scheme``, with each stack's depth given or counted."""
    architecture = check_architecture(architecture, encoder_layers, decoder_layers)
    required = [("encoder",), ("decoder",)] if architecture == "encoder-decoder" else []
    table = dataclasses.replace(TRANSFORMER_ROLES, scheme=scheme)
    roles = table.resolve(parameters, preset, overrides, required=required)
    found = TransformerRoles(roles, architecture, encoder_layers, decoder_layers)
    if architecture in ("encoder", "encoder-decoder") and encoder_layers is None:
        encoder_layers = _count_layers(scheme, found, "encoder")
    if architecture in ("decoder", "encoder-decoder") and decoder_layers is None:
        decoder_layers = _count_layers(scheme, found, "decoder")
    return dataclasses.replace(found, encoder_layers=encoder_layers, decoder_layers=decoder_layers)


def _count_layers(scheme: str, found: TransformerRoles, stack: str) -> int:
    """Depth of a stack: its number of output projections that are self-attention (one per layer)."""
    outputs = [n for n in found.roles.of("output") if found.stack_of(n) == stack]
    self_attention = [n for n in outputs if "encoder_attn" not in n and "multihead_attn" not in n]
    if not self_attention:
        raise PresetError(f"{scheme}: cannot infer the {stack}'s depth: no output projection found; pass it")
    return len(self_attention)


# ----------------------------------------------------------------------------- weights
def packed_qkv(module: nn.Module, shape: tuple[int, ...]) -> tuple[int, Fans]:
    """(axis of the q/k/v blocks, fans of one block) of a packed projection weight.

    torch's layout is ``(3 d, d)`` (``(out, in)``); Hugging Face's GPT-2
    ``Conv1D`` stores ``(d, 3 d)`` (``(in, out)``, channels last).
    """
    if type(module).__name__ == "Conv1D":
        return 1, compute_fans((shape[0], shape[1] // 3), layout="channels_last")
    return 0, compute_fans((shape[0] // 3, shape[1]), layout="torch")


def packed_qkv_fill(
    tensor: torch.Tensor, *, seed: int, name: str, stds: tuple[float, ...], axis: int, distribution: str
) -> None:
    """Zero-mean values of std ``stds[i]`` on the i-th of ``len(stds)`` equal blocks along ``axis``, one stream.

    For packed q/k/v weights: the whole tensor is one keyed draw of unit variance, each block then scaled.
    """
    if distribution == "normal":
        unit = InitSpec(distribution="normal", mean=0.0, std=1.0)
    else:
        unit = InitSpec(distribution="uniform", low=-math.sqrt(3.0), high=math.sqrt(3.0))
    fill_from_sampler(tensor, unit, seed=seed, name=name)
    scale_blocks(tensor, stds, axis)


def sibling_bias(weight_name: str, parameters: ModelParameters) -> str | None:
    """The bias next to a weight: ``x.weight`` -> ``x.bias``, ``in_proj_weight`` -> ``in_proj_bias``."""
    for suffix, bias in (("weight", "bias"), ("_weight", "_bias")):
        if weight_name.endswith(suffix):
            candidate = weight_name[: -len(suffix)] + bias
            if candidate in parameters:
                return candidate
    return None


def scaled_xavier(parameters: ModelParameters, name: str, role: str, gain: float, distribution: str) -> Any:
    """The rule of an attention or feed-forward weight: Xavier of gain ``gain``.

    A packed q/k/v weight gets each third with its own fans, only the value third scaled by ``gain``.
    """
    if role != "packed":
        return {"init": "xavier", "gain": gain, "distribution": distribution}
    entry = parameters[name]
    axis, fans = packed_qkv(entry.module, parameters.shape(name))
    std = xavier(fan_in=fans.fan_in, fan_out=fans.fan_out)
    return functools.partial(packed_qkv_fill, stds=(std, std, std * gain), axis=axis, distribution=distribution)
