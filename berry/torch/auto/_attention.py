"""Propagation rules for ops that mix positions: attention, softmax, activation products, pooling.

Attention at initialization averages the values of each row with weights
``p = softmax(q k^T * scale)``. With scores close to independent Gaussians
of variance ``v`` along a row (``v = scale^2 d q_q (q_k - s_k)``: the
component of the keys shared by all positions shifts a row and leaves the
softmax unchanged), the output's second moment is

.. math:: q_{out} = s_v + S(n, v)\\, (q_v - s_v), \\qquad S(n, v) = \\mathbb{E}\\textstyle\\sum_j p_j^2,

averaged over the rows' visible key counts ``n`` (a causal mask gives
``n = 1 .. T``), with ``S`` from :mod:`berry.torch.auto._softmax`. Average
pooling is the same with uniform weights, ``S = 1/n``; max pooling takes the
expected maximum of ``n`` correlated Gaussians.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from berry.gains import gaussian_expectation
from berry.torch.auto import _axes, _ops
from berry.torch.auto._ops import bind, float_value
from berry.torch.auto._record import Node, Ref
from berry.torch.auto._softmax import expected_max_moments, softmax_sum_squares
from berry.torch.auto._stat import Stat
from berry.torch.auto._structure import WeightUse

if TYPE_CHECKING:
    from berry.torch.auto._propagate import Forward

__all__ = ["activation_matmul", "attention", "const_value", "pool", "softmax"]



# ---------------------------------------------------------------------------------------- constants
def const_value(forward: Forward, index: int, depth: int = 0) -> torch.Tensor | None:
    """The real values of a constant node (a mask, positions), re-executing its recorded ops on the CPU."""
    cache: dict[int, torch.Tensor | None] = forward.__dict__.setdefault("_const_cache", {})
    if index in cache:
        return cache[index]
    node = forward.graph.nodes[index]
    value: torch.Tensor | None = node.value
    if value is None and depth < 64 and node.func is not None and forward.structure.nature[index] == "const":
        try:
            args = _real_args(forward, node.args, depth)
            kwargs = _real_args(forward, dict(node.kwargs), depth)
            if isinstance(kwargs, dict):
                kwargs.pop("out", None)
            result = node.func(*args, **kwargs)
            if isinstance(result, (tuple, list)):
                result = None
            value = result if isinstance(result, torch.Tensor) and result.numel() <= 1 << 22 else None
        except _Unknown:
            value = None
        except Exception:
            value = None
    if value is not None and node.kind == "part":
        value = None
    cache[index] = value
    return value


class _Unknown(Exception):
    pass


def _real_args(forward: Forward, value: Any, depth: int) -> Any:
    if isinstance(value, Ref):
        found = const_value(forward, value.index, depth + 1)
        if found is None:
            raise _Unknown
        return found
    if isinstance(value, tuple):
        return tuple(_real_args(forward, v, depth) for v in value)
    if isinstance(value, list):
        return [_real_args(forward, v, depth) for v in value]
    if isinstance(value, dict):
        return {k: _real_args(forward, v, depth) for k, v in value.items()}
    if isinstance(value, torch.device) or (isinstance(value, str) and value == "meta"):
        return torch.device("cpu")
    return value


def _row_counts(mask: torch.Tensor, rows: int, keys: int, allowed: bool) -> list[int] | None:
    """Visible keys per row of a boolean mask (``allowed``: True marks visible) or a float mask (-inf hides)."""
    if mask.dtype == torch.bool:
        visible = mask if allowed else ~mask
    else:
        visible = mask > -1e4
    try:
        visible = visible.expand(*visible.shape[:-2], rows, keys) if visible.dim() >= 2 else \
            visible.expand(rows, keys)
    except RuntimeError:
        return None
    counts = visible.reshape(-1, rows, keys).sum(-1).reshape(-1)
    return [int(c) for c in counts.tolist()]


# ---------------------------------------------------------------------------------------- products
def activation_matmul(forward: Forward, index: int) -> Stat:
    """``a @ b`` of two activations: independent factors, pair moments along the contraction."""
    node = forward.graph.nodes[index]
    data = [i for i in _ops.refs(node.args) if forward.structure.nature[i] == "data"]
    if node.op not in ("matmul", "rmatmul", "mm", "bmm") or len(data) != 2:
        return forward._on_unknown(index)
    a_index, b_index = (data[1], data[0]) if node.op == "rmatmul" else (data[0], data[1])
    a, b = forward.stat(a_index), forward.stat(b_index)
    a_shape, b_shape = forward.graph.nodes[a_index].shape, forward.graph.nodes[b_index].shape
    if len(a_shape) < 2 or len(b_shape) < 2:
        return forward._on_unknown(index)
    k = a_shape[-1]
    pair_a = a.s if a.axes and a.axes[-1] == "P" else a.m * a.m
    pair_b = b.s if len(b.axes) >= 2 and b.axes[-2] == "P" else b.m * b.m
    out_axes = _axes.broadcast(a.axes[:-2], b.axes[:-2]) + (a.axes[-2:-1] or ("?",)) + (b.axes[-1:] or ("?",))
    if len(out_axes) != len(node.shape):
        out_axes = ("?",) * len(node.shape)
    forward.scales[index] = {"K": float(k), "M": float(a_shape[-2]), "N": float(b_shape[-1]), "qa": a.q, "qb": b.q}
    if a.sumsq is not None:  # softmax weights times values: attention written by hand
        q = b.s + a.sumsq * (b.q - b.s)
        return Stat("data", q=q, m=b.m, s=b.s, gauss=b.gauss, axes=out_axes, fresh=b.fresh)
    q = k * a.q * b.q + k * (k - 1) * pair_a * pair_b
    row_pair_b = b.s if b.axes and b.axes[-1] == "P" else b.m * b.m
    s = k * a.q * row_pair_b + k * (k - 1) * pair_a * pair_b
    return Stat("data", q=q, m=k * a.m * b.m, s=min(s, q), gauss=True, axes=out_axes)


# ---------------------------------------------------------------------------------------- attention
@functools.lru_cache(maxsize=64)
def _causal(rows: int, keys: int) -> tuple[int, ...]:
    return tuple(min(i + 1, keys) for i in range(rows))


def _counts(forward: Forward, mask: Any, causal: bool, rows: int, keys: int, where: int) -> Sequence[int]:
    if causal:
        return _causal(rows, keys)
    if isinstance(mask, Ref):
        value = const_value(forward, mask.index)
        counts = _row_counts(value, rows, keys, allowed=True) if value is not None else None
        if counts is not None:
            return counts
        forward.note(where, "attention mask values unknown (recorded on meta tensors): every key taken as visible")
    return (keys,) * rows


def attention(forward: Forward, index: int) -> Stat:
    node = forward.graph.nodes[index]
    if node.op == "multi_head_attention_forward":
        return _multi_head(forward, index)
    bound = bind(node)
    refs = {name: bound.get(name) for name in ("query", "key", "value")}
    if not all(isinstance(r, Ref) for r in refs.values()):
        return forward._on_unknown(index)
    q_index, k_index, v_index = (r.index for r in refs.values())  # type: ignore[union-attr]
    query, key, value = forward.stat(q_index), forward.stat(k_index), forward.stat(v_index)
    q_shape, k_shape = forward.graph.nodes[q_index].shape, forward.graph.nodes[k_index].shape
    d = q_shape[-1]
    scale = bound.get("scale")
    scale = 1.0 / math.sqrt(d) if scale is None else float(scale)
    dropout = float_value(bound.get("dropout_p", 0.0), 0.0)
    counts = _counts(forward, bound.get("attn_mask"), bool(bound.get("is_causal", False)), q_shape[-2],
                     k_shape[-2], index)
    score_var = scale * scale * d * query.q * max(key.q - key.s, 0.0)
    sumsq = softmax_sum_squares(counts, score_var) / (1.0 - dropout if 0.0 < dropout < 1.0 else 1.0)
    groups = (q_shape[-3] // k_shape[-3]) if len(q_shape) >= 3 and len(k_shape) >= 3 and k_shape[-3] else 1
    forward.scales[index] = {"S2": sumsq, "D": float(d), "scale": scale, "qq": query.q, "qk": key.q, "sk": key.s,
                             "qv": value.q, "sv": value.s, "groups": float(max(groups, 1))}
    q = value.s + sumsq * (value.q - value.s)
    axes = tuple(query.axes[:-1]) + tuple(value.axes[-1:])
    if len(axes) != len(node.shape):
        axes = ("?",) * len(node.shape)
    return Stat("data", q=q, m=value.m, s=value.s, gauss=value.gauss, axes=axes, fresh=value.fresh)


def _multi_head(forward: Forward, index: int) -> Stat:
    """``F.multi_head_attention_forward``: packed or separate q/k/v projections, attention, output projection."""
    node = forward.graph.nodes[index]
    bound = bind(node)
    structure = forward.structure
    refs = [bound.get(name) for name in ("query", "key", "value")]
    if not all(isinstance(r, Ref) for r in refs):
        return forward._on_unknown(index)
    x_query, x_key, x_value = (forward._as_data(r.index, forward.stat(r.index)) for r in refs)  # type: ignore[union-attr]
    embed = int(bound.get("embed_dim_to_check", forward.graph.nodes[refs[0].index].shape[-1]))  # type: ignore[union-attr]
    heads = int(bound.get("num_heads", 1))
    separate = bool(bound.get("use_separate_proj_weight", False))
    names = ("q_proj_weight", "k_proj_weight", "v_proj_weight") if separate else ("in_proj_weight",) * 3
    sigmas = []
    vouched = []
    for role, (name, x) in enumerate(zip(names, (x_query, x_key, x_value), strict=True)):
        ref = bound.get(name)
        if not isinstance(ref, Ref) or structure.nature[ref.index] != "param":
            return forward._on_unknown(index)
        param = structure.param_root[ref.index]
        use = WeightUse(index, -1, param, "linear", refs[role].index, None, float(embed),  # type: ignore[union-attr]
                        float(embed if separate else 3 * embed))
        vouched.append(forward.policy.vouch(forward, use, x))
        sigma, _ = forward.policy.weight_scales(forward, use, vouched[-1], role="in_proj")
        sigmas.append(sigma)
    x_query, x_key, x_value = vouched
    for name in ("in_proj_bias", "out_proj_bias", "bias_k", "bias_v"):
        ref = bound.get(name)
        if isinstance(ref, Ref) and structure.nature[ref.index] == "param":
            if name.startswith("bias_"):
                forward.note(index, f"{name} (a learned key/value appended to the sequence) not modelled: zeros")
            forward.policy.record(structure.param_root[ref.index], "zeros", 0.0, "bias", "bias: zeros", index)
    q_q = sigmas[0] ** 2 * embed * x_query.q
    q_k, s_k = sigmas[1] ** 2 * embed * x_key.q, sigmas[1] ** 2 * embed * x_key.s
    q_v, s_v = sigmas[2] ** 2 * embed * x_value.q, sigmas[2] ** 2 * embed * x_value.s
    d = embed // max(heads, 1)
    rows = forward.graph.nodes[refs[0].index].shape[0]  # type: ignore[union-attr]
    keys = forward.graph.nodes[refs[1].index].shape[0]  # type: ignore[union-attr]
    counts = _counts(forward, bound.get("attn_mask"), bool(bound.get("is_causal", False)), rows, keys, index)
    if isinstance(bound.get("key_padding_mask"), Ref):
        forward.note(index, "key padding mask not modelled: every key taken as visible")
    dropout = float_value(bound.get("dropout_p", 0.0), 0.0) if bool(bound.get("training", True)) else 0.0
    score_var = q_q * max(q_k - s_k, 0.0) / 1.0  # scale^2 * d = 1 with scale = 1/sqrt(d)
    sumsq = softmax_sum_squares(counts, score_var) / (1.0 - dropout if 0.0 < dropout < 1.0 else 1.0)
    mixed_q = s_v + sumsq * (q_v - s_v)
    out_ref = bound.get("out_proj_weight")
    if not isinstance(out_ref, Ref) or structure.nature[out_ref.index] != "param":
        return forward._on_unknown(index)
    out_use = WeightUse(index, -1, structure.param_root[out_ref.index], "linear", None, None, float(embed),
                        float(embed))
    mixed = forward.policy.vouch(forward, out_use, Stat("data", q=mixed_q, m=0.0, s=s_v))
    sigma_out, _ = forward.policy.weight_scales(forward, out_use, mixed, role="out_proj")
    forward.scales[index] = {"S2": sumsq, "D": float(d), "scale": 1.0 / math.sqrt(max(d, 1)), "qq": q_q, "qk": q_k,
                             "sk": s_k, "qv": q_v, "sv": s_v, "in": sigmas[2], "in_q": sigmas[0], "in_k": sigmas[1],
                             "out": sigma_out, "E": float(embed), "groups": 1.0}
    gain = sigma_out ** 2 * embed
    return Stat("data", q=gain * mixed.q, m=0.0, s=gain * mixed.s, axes=x_query.axes, fresh=structure.fresh(index))


def attention_part(forward: Forward, parent: int, node: Node) -> Stat:
    """Items of ``multi_head_attention_forward``'s result: the output, then the averaged weights."""
    out = forward.stat(parent)
    if node.part == 0:
        return dataclasses.replace(out, axes=out.axes if len(out.axes) == len(node.shape) else
                                   ("?",) * len(node.shape))
    sumsq = forward.scales.get(parent, {}).get("S2", 1.0)
    n = float(node.shape[-1]) if node.shape else 1.0
    return Stat("data", q=sumsq / n, m=1.0 / n, axes=("?",) * len(node.shape), sumsq=sumsq, count=n)


def masked_fill(forward: Forward, index: int) -> Stat:
    node = forward.graph.nodes[index]
    bound = bind(node)
    fill = float_value(bound.get("value", 0.0), 0.0)
    source = forward._copy(index)
    mask = bound.get("mask")
    shape = node.shape
    if isinstance(mask, Ref) and len(shape) >= 2:
        value = const_value(forward, mask.index)
        if value is not None:
            counts = _row_counts(value, shape[-2], shape[-1], allowed=False)
            if counts is not None:
                forward.visible[index] = counts
                if fill > -1e4:  # a finite fill value: the hidden entries hold it
                    keep = sum(counts) / (len(counts) * shape[-1])
                    return dataclasses.replace(source, q=keep * source.q + (1 - keep) * fill * fill,
                                               m=keep * source.m + (1 - keep) * fill)
        elif fill <= -1e4:
            forward.note(index, "attention mask values unknown (recorded on meta tensors): every key taken as visible")
    return source


def _visible_counts(forward: Forward, index: int, rows: int, keys: int) -> list[int]:
    """Row counts of the masked scores a softmax reads (through shape and scalar ops), else all keys."""
    current = index
    for _ in range(16):
        if current in forward.visible:
            counts = forward.visible[current]
            return counts if len(counts) % max(rows, 1) == 0 else [keys] * rows
        data = forward.structure.data_inputs(current)
        if len(data) != 1 or forward.structure.categories[current] not in ("shape", "alias", "elementwise",
                                                                            "masked_fill", "dropout"):
            break
        current = data[0]
    return [keys] * rows


def softmax(forward: Forward, index: int) -> Stat:
    node = forward.graph.nodes[index]
    bound = bind(node)
    data = forward.structure.data_inputs(index)
    source = forward.stat(data[0])
    shape = node.shape
    dim = int(bound.get("dim", -1) if bound.get("dim") is not None else -1) % max(len(shape), 1)
    n = shape[dim] if shape else 1
    along = source.axes[dim] if dim < len(source.axes) else "?"
    row_var = max(source.q - source.s, 0.0) if along == "P" else source.var
    if node.op == "log_softmax":
        m = -math.log(n) - row_var / 2.0
        return Stat("data", q=m * m + row_var, m=m, s=m * m, axes=source.axes)
    rows = max(node.numel // max(n, 1), 1)
    counts = _visible_counts(forward, data[0], shape[-2] if len(shape) >= 2 and dim == len(shape) - 1 else rows, n)
    sumsq = softmax_sum_squares(counts, row_var)
    forward.scales[index] = {"S2": sumsq, "n": float(n)}
    mean_count = float(np.mean(counts))
    pair = (1.0 - sumsq) / max(n * (n - 1), 1)
    return Stat("data", q=sumsq / n, m=1.0 / n, s=pair, gauss=False, axes=source.axes, sumsq=sumsq,
                count=mean_count)


def glu(forward: Forward, index: int) -> Stat:
    """``F.glu(x, dim)``: ``a * sigmoid(b)`` for the two halves, independent."""
    data = forward.structure.data_inputs(index)
    x = forward.stat(data[0])
    sd = math.sqrt(x.var)

    def sigmoid(z: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(x.m + sd * z)))

    e1 = gaussian_expectation(sigmoid)
    e2 = gaussian_expectation(lambda z: sigmoid(z) ** 2)
    d2 = gaussian_expectation(lambda z: (sigmoid(z) * (1.0 - sigmoid(z))) ** 2)
    forward.scales[index] = {"e2": e2, "d2": d2, "qa": x.q}
    return Stat("data", q=x.q * e2, m=x.m * e1, s=x.s * e1 * e1, gauss=False, axes=x.axes)


# ---------------------------------------------------------------------------------------- pooling
def max_of(forward: Forward, index: int, source: Stat, n: int) -> Stat:
    """The maximum of ``n`` positions: exact for a Gaussian, or a nondecreasing function of one (ReLU)."""
    function = None
    mean, var, cov = source.m, source.var, source.cov
    if source.chain is not None:
        composite, _ = source.chain
        grid = np.linspace(-6.0, 6.0, 241)
        leaf = forward.stat(composite.leaf)
        if np.all(composite.derivative(leaf.m + math.sqrt(leaf.var) * grid) >= -1e-12):
            function = composite.numpy
            mean, var, cov = leaf.m, leaf.var, leaf.cov
    if function is None and not source.gauss:
        forward.note(index, "max over a non-Gaussian signal: a Gaussian with its mean and variance is used")
    first, second = expected_max_moments(n, mean, var, cov, function)
    spread = max(source.q - source.m * source.m, 1e-300)
    s = first * first + source.cov * max(second - first * first, 0.0) / spread
    return Stat("data", q=second, m=first, s=min(s, second), gauss=False, axes=source.axes)


def pool(forward: Forward, index: int) -> Stat:
    node = forward.graph.nodes[index]
    data = forward.structure.data_inputs(index)
    source = forward.stat(data[0])
    in_shape = forward.graph.nodes[data[0]].shape
    out_shape = node.shape if node.kind != "op" or node.shape else in_shape
    if node.kind == "op" and len(node.shape) == 1 and node.shape[0] == 2 and node.op.endswith("with_indices"):
        out_shape = in_shape
    bound = bind(node)
    spatial = 3 if node.op.endswith("3d") else 2 if node.op.endswith("2d") else 1
    if node.op.startswith("adaptive"):
        target = _ops.as_ints(bound.get("output_size"), spatial)
        sizes = in_shape[-spatial:]
        window = math.prod(max(int(s) // max(int(t or s), 1), 1) for s, t in zip(sizes, target, strict=False))
    else:
        window = math.prod(_ops.as_ints(bound.get("kernel_size", 1), spatial))
    n_in = math.prod(in_shape)
    n_out = math.prod(out_shape) if out_shape else 1
    forward.scales[index] = {"n": float(window), "n_in": float(n_in), "n_out": float(n_out)}
    axes = source.axes if len(source.axes) == len(out_shape) else ("?",) * len(out_shape)
    if "max" in node.op:
        return dataclasses.replace(max_of(forward, index, source, window), axes=axes)
    q = source.s + (source.q - source.s) / window
    return dataclasses.replace(source, q=q, chain=None, axes=axes)
