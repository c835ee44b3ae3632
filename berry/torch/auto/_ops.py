"""What each recorded op is: its category, its arguments by name, the true fans of convolutions.

The propagation (:mod:`berry.torch.auto._propagate`) handles ops by category;
an op in none of these tables is *not understood*: the plan leaves the
parameters it touches as they are and says so.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from berry.torch.auto._record import Node, Ref

__all__ = ["bind", "category", "conv_counts"]

#: Elementwise ops: the output's element i depends on element i of each tensor input only.
ELEMENTWISE = frozenset({
    "add", "sub", "rsub", "mul", "div", "rdiv", "true_divide", "pow", "rpow", "neg", "positive", "abs", "exp",
    "exp2", "expm1", "log", "log2", "log10", "log1p", "sqrt", "rsqrt", "square", "reciprocal", "sigmoid", "tanh",
    "relu", "relu6", "gelu", "silu", "mish", "elu", "selu", "celu", "leaky_relu", "hardtanh", "hardswish",
    "hardsigmoid", "softplus", "softsign", "logsigmoid", "log_sigmoid", "tanhshrink", "softshrink", "hardshrink",
    "threshold", "erf", "erfc", "sin", "cos", "clamp", "clip", "clamp_min", "clamp_max", "maximum", "minimum",
    "where", "sign", "gt", "ge", "lt", "le", "eq", "ne", "logical_and", "logical_or", "logical_xor", "logical_not",
    "addcmul", "addcdiv", "lerp", "floor", "ceil", "round", "trunc", "frac", "sinh", "cosh", "atan", "asinh",
    "rrelu", "prelu", "xlogy", "nan_to_num",
})
#: Ops that keep every value and its layout, changing at most the dtype or the autograd status.
ALIAS = frozenset({"float", "double", "half", "bfloat16", "to", "type_as", "type", "contiguous", "clone", "detach",
                   "attr_data", "requires_grad_", "cpu", "cuda", "identity"})
#: Ops that move values around without changing them (their statistics are the input's).
SHAPE = frozenset({
    "view", "reshape", "view_as", "reshape_as", "transpose", "swapaxes", "swapdims", "permute", "movedim",
    "moveaxis", "t", "attr_T", "attr_mT", "attr_H", "attr_mH", "flatten", "unflatten", "squeeze", "unsqueeze",
    "expand", "expand_as", "broadcast_to", "getitem", "narrow", "select", "repeat", "tile", "repeat_interleave",
    "roll", "flip", "pixel_shuffle", "pixel_unshuffle", "channel_shuffle", "unfold", "as_strided", "ravel",
    "rearrange", "masked_select", "index_select", "gather", "take_along_dim", "diagonal", "tril", "triu",
})
#: Ops returning several tensors, each a slice of the input.
SPLIT = frozenset({"split", "chunk", "unbind", "tensor_split", "split_with_sizes", "hsplit", "vsplit"})
CONCAT = frozenset({"cat", "concat", "concatenate", "stack", "hstack", "vstack"})
WEIGHT = frozenset({"linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                    "conv_transpose3d", "embedding", "bilinear"})
MATMUL = frozenset({"matmul", "rmatmul", "mm", "bmm", "mv", "einsum", "addmm", "baddbmm", "addmv", "inner", "dot"})
NORM = frozenset({"layer_norm", "group_norm", "batch_norm", "instance_norm", "rms_norm", "normalize"})
REDUCE = frozenset({"mean", "sum", "var", "std", "norm", "amax", "amin", "max", "min", "logsumexp", "nansum",
                    "nanmean", "vector_norm", "linalg_vector_norm"})
POOL = frozenset({"avg_pool1d", "avg_pool2d", "avg_pool3d", "adaptive_avg_pool1d", "adaptive_avg_pool2d",
                  "adaptive_avg_pool3d", "max_pool1d", "max_pool2d", "max_pool3d", "adaptive_max_pool1d",
                  "adaptive_max_pool2d", "adaptive_max_pool3d", "max_pool1d_with_indices", "max_pool2d_with_indices",
                  "max_pool3d_with_indices"})
DROPOUT = frozenset({"dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout"})
SOFTMAX = frozenset({"softmax", "log_softmax"})
ATTENTION = frozenset({"scaled_dot_product_attention", "multi_head_attention_forward"})
LOSS = frozenset({"cross_entropy", "nll_loss", "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss",
                  "binary_cross_entropy", "binary_cross_entropy_with_logits", "kl_div"})
#: Ops that create tensors from nothing (positions, masks).
FACTORY = frozenset({"arange", "ones", "zeros", "full", "empty", "tensor", "as_tensor", "ones_like", "zeros_like",
                     "full_like", "empty_like", "eye", "linspace", "randn", "rand", "randint", "randn_like",
                     "rand_like", "new_ones", "new_zeros", "new_full", "new_empty", "new_tensor", "scalar_tensor",
                     "fill", "zero", "bernoulli"})

#: Positional parameter names of the ops whose arguments the propagation reads.
SIGNATURES: dict[str, tuple[str, ...]] = {
    "linear": ("input", "weight", "bias"),
    "bilinear": ("input1", "input2", "weight", "bias"),
    "conv": ("input", "weight", "bias", "stride", "padding", "dilation", "groups"),
    "conv_transpose": ("input", "weight", "bias", "stride", "padding", "output_padding", "groups", "dilation"),
    "embedding": ("input", "weight", "padding_idx", "max_norm", "norm_type", "scale_grad_by_freq", "sparse"),
    "layer_norm": ("input", "normalized_shape", "weight", "bias", "eps"),
    "rms_norm": ("input", "normalized_shape", "weight", "eps"),
    "group_norm": ("input", "num_groups", "weight", "bias", "eps"),
    "batch_norm": ("input", "running_mean", "running_var", "weight", "bias", "training", "momentum", "eps"),
    "instance_norm": ("input", "running_mean", "running_var", "weight", "bias", "use_input_stats", "momentum", "eps"),
    "normalize": ("input", "p", "dim", "eps"),
    "scaled_dot_product_attention": ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale",
                                     "enable_gqa"),
    "multi_head_attention_forward": (
        "query", "key", "value", "embed_dim_to_check", "num_heads", "in_proj_weight", "in_proj_bias", "bias_k",
        "bias_v", "add_zero_attn", "dropout_p", "out_proj_weight", "out_proj_bias", "training", "key_padding_mask",
        "need_weights", "attn_mask", "use_separate_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight",
        "static_k", "static_v", "average_attn_weights", "is_causal"),
    "dropout": ("input", "p", "training", "inplace"),
    "softmax": ("input", "dim", "_stacklevel", "dtype"),
    "avg_pool": ("input", "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override"),
    "max_pool": ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices"),
    "adaptive_pool": ("input", "output_size", "return_indices"),
    "reduce": ("input", "dim", "keepdim"),
    "split": ("input", "split_size_or_sections", "dim"),
    "cat": ("tensors", "dim"),
    "masked_fill": ("input", "mask", "value"),
    "glu": ("input", "dim"),
}


def signature_key(op: str) -> str:
    """The :data:`SIGNATURES` entry an op's arguments follow."""
    if op.startswith("conv_transpose"):
        return "conv_transpose"
    if op.startswith("conv"):
        return "conv"
    if op in DROPOUT:
        return "dropout"
    if op in SOFTMAX:
        return "softmax"
    if op.startswith("adaptive_"):
        return "adaptive_pool"
    if op.startswith("avg_pool"):
        return "avg_pool"
    if op.startswith("max_pool"):
        return "max_pool"
    if op in REDUCE:
        return "reduce"
    if op in SPLIT:
        return "split"
    if op in CONCAT:
        return "cat"
    return op


def bind(node: Node) -> dict[str, Any]:
    """The node's arguments by parameter name (positional ones named from :data:`SIGNATURES`)."""
    names = SIGNATURES.get(signature_key(node.op), ())
    bound = {name: value for name, value in zip(names, node.args, strict=False)}
    bound.update(node.kwargs)
    if "dim" not in bound and "axis" in bound:
        bound["dim"] = bound["axis"]
    return bound


def category(node: Node) -> str:
    """The propagation category of a recorded node."""
    if node.kind in ("input", "param", "buffer", "const", "part", "module"):
        return node.kind
    op = node.op
    for name, table in (("alias", ALIAS), ("shape", SHAPE), ("split", SPLIT), ("concat", CONCAT),
                        ("weight", WEIGHT), ("matmul", MATMUL), ("norm", NORM), ("pool", POOL),
                        ("dropout", DROPOUT), ("softmax", SOFTMAX), ("attention", ATTENTION), ("loss", LOSS),
                        ("factory", FACTORY), ("reduce", REDUCE), ("elementwise", ELEMENTWISE)):
        if op in table:
            return name
    if op == "glu":
        return "glu"
    if op in ("pad", "masked_fill", "setitem", "index_put", "masked_scatter"):
        return op if op in ("pad", "masked_fill", "setitem") else "setitem"
    return "unknown"


def refs(value: Any) -> list[int]:
    """Node indices referenced in a (nested) argument."""
    if isinstance(value, Ref):
        return [value.index]
    if isinstance(value, (list, tuple)):
        return [i for v in value for i in refs(v)]
    if isinstance(value, Mapping):
        return [i for v in value.values() for i in refs(v)]
    return []


def as_ints(value: Any, n: int) -> tuple[int, ...]:
    """A conv/pool size argument (int or sequence) as an n-tuple."""
    if isinstance(value, (list, tuple)):
        if len(value) == 1:
            return tuple(int(value[0]) for _ in range(n))
        return tuple(int(v) for v in value)
    return tuple(int(value) for _ in range(n))


def dims_of(value: Any, ndim: int) -> tuple[int, ...] | None:
    """Reduction dims as non-negative ints (None: all dims)."""
    if value is None:
        return None
    items = value if isinstance(value, (list, tuple)) else [value]
    return tuple(sorted({int(d) % ndim for d in items})) if ndim else ()


@functools.lru_cache(maxsize=256)
def conv_counts(transposed: bool, spatial_in: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...],
                padding: Any, dilation: tuple[int, ...], output_padding: tuple[int, ...]) -> tuple[float, float]:
    """Mean number of kernel taps that land inside the input, per output position and per input position.

    With zero padding the border positions see fewer inputs than the kernel
    has taps, which lowers the output's second moment in proportion; this is
    exact in expectation (the mean-field CNN of Xiao et al. 2018 with
    padding). Computed by convolving ones on the real spatial size (CPU, one
    channel), so every stride, dilation and padding mode counts correctly.
    """
    n = len(spatial_in)
    ones_in = torch.ones((1, 1, *spatial_in), dtype=torch.float64, requires_grad=True)
    ones_kernel = torch.ones((1, 1, *kernel), dtype=torch.float64)
    with torch.enable_grad():
        if transposed:
            transposed_convolution: Any = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[n - 1]
            out = transposed_convolution(ones_in, ones_kernel, None, stride, padding, output_padding, 1, dilation)
        else:
            convolution: Any = (F.conv1d, F.conv2d, F.conv3d)[n - 1]
            out = convolution(ones_in, ones_kernel, None, stride, padding, dilation, 1)
        out.sum().backward()
    assert ones_in.grad is not None
    per_output = float(out.detach().mean())
    per_input = float(ones_in.grad.mean())
    return per_output, per_input


def conv_fans(node: Node, input_shape: Sequence[int], weight_shape: Sequence[int]) -> tuple[float, float, int]:
    """Effective (fan_in, fan_out) of a convolution at this input size, and its groups.

    ``fan_in`` counts, per output element, the input elements it sums (input
    channels per group times the taps inside the input); ``fan_out`` counts
    the output elements each input element feeds, for the backward pass.
    """
    bound = bind(node)
    transposed = node.op.startswith("conv_transpose")
    n = len(weight_shape) - 2
    groups = int(bound.get("groups", 1) or 1)
    stride = as_ints(bound.get("stride", 1), n)
    dilation = as_ints(bound.get("dilation", 1), n)
    padding = bound.get("padding", 0)
    padding = padding if isinstance(padding, str) else as_ints(padding, n)
    output_padding = as_ints(bound.get("output_padding", 0), n) if transposed else (0,) * n
    batched = len(input_shape) == n + 2
    spatial = tuple(int(s) for s in input_shape[-n:])
    kernel = tuple(int(k) for k in weight_shape[2:])
    per_output, per_input = conv_counts(transposed, spatial, kernel, stride, padding, dilation, output_padding)
    if transposed:  # weight (in, out / groups, *k)
        channels_in, channels_out = int(weight_shape[0]) // groups, int(weight_shape[1])
    else:  # weight (out, in / groups, *k)
        channels_in, channels_out = int(weight_shape[1]), int(weight_shape[0]) // groups
    del batched
    return channels_in * per_output, channels_out * per_input, groups


def float_value(value: Any, default: float = math.nan) -> float:
    """A Python number argument as float (``default`` if it is not one)."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    return default
