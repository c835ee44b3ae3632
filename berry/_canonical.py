"""The canonical layout: one set of weights for the same architecture in PyTorch, Flax and Keras.

A weight's values are keyed by ``(seed, canonical name)`` and computed in the
canonical layout, which is PyTorch's:

* dense and convolution weights are ``(out, in, *kernel)`` (transposed
  convolutions ``(in, out // groups, *kernel)``), embeddings
  ``(num_embeddings, dim)``, norms and biases vectors;
* canonical names are dotted module paths plus torch's parameter names:
  ``"fc1.weight"``, ``"blocks.0.attn.in_proj_weight"``, ``"lstm.weight_hh_l0"``.

A Flax or Keras parameter is one or more *pieces* of canonical tensors, each
a block of rows read through a transpose and a reshape (:class:`Piece`): a
``Dense`` kernel ``(in, out)`` is ``weight.T``; a ``Conv`` kernel
``(*k, in // g, out)`` is ``weight`` with its axes moved; an attention
query kernel ``(E, heads, head_dim)`` is rows ``0:E`` of ``in_proj_weight``,
transposed and reshaped; a Keras GRU kernel is three row blocks of
``weight_ih_l0`` in Keras' gate order. The values are exactly the canonical
tensor's, so torch == Flax == Keras bit for bit, and a region of a Flax or
Keras tensor is computed from the matching region of the canonical one (each
device fills its own shard).

Fans and blocks follow the canonical tensor (:func:`fan_blocks`, the rules of
``berry.torch.init_model``): groups and transposed convolutions, each of
q/k/v in ``in_proj_weight``, each recurrent gate; whole-matrix initializers
(orthogonal, ...) make each block from its own stream ``name[label]``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from berry._rules import (
    FALLBACK_VECTOR,
    Identity,
    ParameterInit,
    Rule,
    RulesLike,
    check_unused,
    choose,
    default_rules,
    describe_action,
    parse_rules,
    warn_vector_fallbacks,
)
from berry.fans import compute_fans
from berry.sampling import InitSpec

__all__ = [
    "AttentionDims",
    "Block",
    "CanonicalTensor",
    "Piece",
    "attention_param",
    "canonical_state",
    "canonical_values",
    "conv_transpose_weight",
    "conv_types",
    "conv_weight",
    "depthwise_weight",
    "fan_blocks",
    "framework_values",
    "gate_param",
    "initialize",
    "join",
    "keys_of",
    "linear_weight",
    "piece_values",
    "recurrent_types",
    "same_layout",
    "vector",
    "whole",
]

Region = tuple[slice, ...]

#: Gate labels of torch's recurrent layers, in torch's row order.
GATES = {"LSTM": "ifgo", "LSTMCell": "ifgo", "GRU": "rzn", "GRUCell": "rzn"}


def join(prefix: str, name: str) -> str:
    """``prefix.name`` (just ``name`` at the top level)."""
    return f"{prefix}.{name}" if prefix else name


def naming(
    custom: Callable[[tuple[Any, ...]], str] | None,
    prefix: str,
    default: Callable[[tuple[Any, ...]], str],
    *,
    path_kind: str,
) -> Callable[[tuple[Any, ...]], str]:
    """A framework path -> canonical module path function: ``custom`` (or the adapter's ``default``) under ``prefix``.

    ``custom`` and ``prefix`` are the user's ``naming=`` and ``prefix=``
    arguments, checked here; ``path_kind`` says what a path is in the error
    messages (``"module path"`` for Flax, ``"layer path"`` for Keras).
    """
    if custom is not None and not callable(custom):
        raise TypeError(f"naming must be a callable ({path_kind} -> canonical module path), got {custom!r}")
    if not isinstance(prefix, str):
        raise TypeError(f"prefix must be a str, got {prefix!r}")
    base = custom or default

    def name(path: tuple[Any, ...]) -> str:
        inner = base(tuple(path))
        if not isinstance(inner, str):
            raise TypeError(f"naming returned {inner!r} for {path!r}; it must return a str (a dotted module path)")
        return join(prefix, inner) if inner else prefix

    return name


@dataclasses.dataclass(frozen=True)
class Block:
    """Rows ``[start, stop)`` of a canonical tensor that get their own fans (a gate, one of q/k/v)."""

    start: int
    stop: int
    label: str | None = None  #: names the block's own stream for whole-matrix initializers
    fans: tuple[int, int] | None = None


@dataclasses.dataclass(frozen=True)
class CanonicalTensor:
    """A tensor in the canonical layout: its key, shape, and what its fans depend on."""

    key: str  #: the canonical name, e.g. ``"fc1.weight"``: the stream's key with the seed
    shape: tuple[int, ...]
    types: tuple[str, ...]  #: torch's class names for rules (``("Linear",)``, ``("Conv2d", "_ConvNd")``)
    local: str  #: torch's parameter name (``"weight"``, ``"in_proj_weight"``, ``"weight_hh_l0"``)
    groups: int = 1
    transposed: bool = False
    layout: str = "torch"  #: ``"channels_last"`` for a framework tensor kept as it is (unknown layers)

    def identity(self) -> Identity:
        return Identity(self.key, self.local, self.types)


def fan_blocks(tensor: CanonicalTensor) -> list[Block]:
    """Rows of ``tensor`` that get their own fans: ``berry.torch.init_model``'s rules, on canonical types."""
    shape, types = tensor.shape, tensor.types
    if len(shape) == 0:
        return [Block(0, 1, fans=(1, 1))]
    rows = shape[0]
    if tensor.layout != "torch":
        fans = compute_fans(shape)
        return [Block(0, rows, fans=(int(fans.fan_in), int(fans.fan_out)))]
    if len(shape) >= 3 and "_ConvNd" in types and tensor.local == "weight":
        fans = compute_fans(shape, layout="torch", groups=tensor.groups, transposed=tensor.transposed)
        return [Block(0, rows, fans=(int(fans.fan_in), int(fans.fan_out)))]
    if len(shape) == 2 and "MultiheadAttention" in types and tensor.local == "in_proj_weight":
        third = rows // 3
        return [Block(i * third, (i + 1) * third, label, fans=(shape[1], third)) for i, label in enumerate("qkv")]
    gates = next((GATES[name] for name in types if name in GATES), None)
    if len(shape) == 2 and gates and tensor.local.startswith(("weight_ih", "weight_hh")):
        size = rows // len(gates)
        return [Block(i * size, (i + 1) * size, gate, fans=(shape[1], size)) for i, gate in enumerate(gates)]
    fans = compute_fans(shape, layout="torch") if len(shape) >= 2 else compute_fans(shape)
    return [Block(0, rows, fans=(int(fans.fan_in), int(fans.fan_out)))]


def _compute_dtype(spec: InitSpec, dtype: np.dtype) -> np.dtype:
    """The dtype berry samples in: ``dtype`` when it is a float berry writes, else float64 (exact kinds)."""
    return dtype if dtype.name in ("float16", "bfloat16", "float32", "float64") else np.dtype(np.float64)


def canonical_values(spec: InitSpec, *, seed: int, tensor: CanonicalTensor, region: Region, dtype: np.dtype) -> np.ndarray:
    """The values of ``region`` of the canonical tensor, as ``berry.torch.init_model`` writes them.

    Each block of rows gets its own fans (a scale rule without an explicit
    ``std``); elementwise laws read one stream over the whole tensor, keyed by
    its name, whole-matrix ones make each partial block from its own stream
    ``name[label]``.
    """
    shape = tensor.shape
    work = _compute_dtype(spec, dtype)
    if work != dtype and not spec.init_kind.exact:
        what = "draws random values" if spec.init_kind.keyed else "is computed in floating point"  # constant(v)
        raise TypeError(
            f"{tensor.key} has dtype {dtype.name}; {spec.describe()} {what} and fills floating tensors only "
            f"(float16, bfloat16, float32, float64): give {tensor.key} the rule 'keep'"
        )
    if not shape:
        return np.asarray(spec((), seed=seed, name=tensor.key, dtype=work)).astype(dtype)
    out = np.empty(tuple(piece.stop - piece.start for piece in region), dtype=work)
    kind = spec.init_kind
    for block in fan_blocks(tensor):
        block_spec = spec
        if spec.takes_fans and block.fans is not None:
            fan_in = block.fans[0] if spec.fan_in is None else spec.fan_in
            fan_out = block.fans[1] if spec.fan_out is None else spec.fan_out
            block_spec = dataclasses.replace(spec, fan_in=fan_in, fan_out=fan_out)
        low, high = max(block.start, region[0].start), min(block.stop, region[0].stop)
        if low >= high or out.size == 0:
            continue
        part = (slice(low, high), *region[1:])
        target = out[low - region[0].start : high - region[0].start]
        if not kind.whole_matrix or (block.start, block.stop) == (0, shape[0]):
            block_spec(shape, seed=seed, name=tensor.key, region=part, out=target)
        else:
            block_shape = (block.stop - block.start, *shape[1:])
            name = tensor.key if block.label is None else f"{tensor.key}[{block.label}]"
            in_block = (slice(low - block.start, high - block.start), *region[1:])
            block_spec(block_shape, seed=seed, name=name, region=in_block, out=target)
    return out if out.dtype == dtype else out.astype(dtype)


@dataclasses.dataclass(frozen=True)
class Piece:
    """A box of a framework tensor that holds rows of a canonical tensor, transposed and reshaped.

    ``framework[target] == canonical[rows].transpose(perm)`` with each of the
    transposed axes split into the framework dimensions ``split[i]`` (an
    empty split drops a canonical axis of size 1).
    """

    target: Region  #: explicit ``slice(start, stop)`` per framework axis
    tensor: CanonicalTensor
    rows: tuple[int, int]
    perm: tuple[int, ...]
    split: tuple[tuple[int, ...], ...]

    def __post_init__(self) -> None:
        block = (self.rows[1] - self.rows[0], *self.tensor.shape[1:]) if self.tensor.shape else ()
        mid = tuple(block[axis] for axis in self.perm)
        target = tuple(piece.stop - piece.start for piece in self.target)
        grouped = tuple(math.prod(dims) for dims in self.split)
        flat = tuple(d for dims in self.split for d in dims)
        if sorted(self.perm) != list(range(len(block))) or mid != grouped or flat != target:
            raise ValueError(
                f"piece of {self.tensor.key} {self.tensor.shape} rows {self.rows} does not fit the framework box "
                f"{target} through perm={self.perm}, split={self.split}"
            )

    @property
    def mid_shape(self) -> tuple[int, ...]:
        return tuple(math.prod(dims) for dims in self.split)


def whole(
    tensor: CanonicalTensor,
    perm: Sequence[int],
    split: Sequence[Sequence[int]],
    *,
    rows: tuple[int, int] | None = None,
    at: Sequence[int] | None = None,
) -> Piece:
    """A piece holding ``rows`` (default: all) of ``tensor``, at framework offset ``at`` (default: 0)."""
    groups = tuple(tuple(int(d) for d in dims) for dims in split)
    dims = [d for group in groups for d in group]
    start = [0] * len(dims) if at is None else list(at)
    target = tuple(slice(s, s + d) for s, d in zip(start, dims, strict=True))
    rows = (0, tensor.shape[0]) if rows is None and tensor.shape else rows or (0, 0)
    return Piece(target, tensor, rows, tuple(perm), groups)


def _group_indices(local: Sequence[slice], dims: tuple[int, ...]) -> np.ndarray:
    """Flat (C-order) indices, within one transposed canonical axis, of a box of its framework dimensions."""
    if not dims:
        return np.zeros(1, dtype=np.int64)
    grids = np.ix_(*(np.arange(piece.start, piece.stop, dtype=np.int64) for piece in local))
    return np.asarray(np.ravel_multi_index(grids, dims)).reshape(-1)


def piece_values(piece: Piece, spec: InitSpec, *, seed: int, region: Region, dtype: np.dtype) -> np.ndarray:
    """The framework values of ``region`` (a box inside ``piece.target``, global framework coordinates)."""
    shape = tuple(r.stop - r.start for r in region)
    if 0 in shape:
        return np.empty(shape, dtype=dtype)
    if not piece.tensor.shape:
        return canonical_values(spec, seed=seed, tensor=piece.tensor, region=(), dtype=dtype).reshape(shape)
    local = [slice(r.start - t.start, r.stop - t.start) for r, t in zip(region, piece.target, strict=True)]
    indices, position = [], 0
    for dims in piece.split:
        indices.append(_group_indices(local[position : position + len(dims)], dims))
        position += len(dims)
    bounds = [(int(index.min()), int(index.max()) + 1) for index in indices]
    box: list[slice] = [slice(0, 0)] * len(piece.perm)
    for mid_axis, axis in enumerate(piece.perm):
        low, high = bounds[mid_axis]
        box[axis] = slice(low, high)
    box[0] = slice(box[0].start + piece.rows[0], box[0].stop + piece.rows[0])
    values = canonical_values(spec, seed=seed, tensor=piece.tensor, region=tuple(box), dtype=dtype)
    mid = values.transpose(piece.perm)
    picked = mid[np.ix_(*(index - low for index, (low, _) in zip(indices, bounds, strict=True)))]
    return np.ascontiguousarray(picked.reshape(shape))


def framework_values(
    pieces: Sequence[Piece], spec: InitSpec, *, seed: int, shape: tuple[int, ...], region: Region | None, dtype: np.dtype
) -> np.ndarray:
    """The values of ``region`` (``None``: all) of a framework tensor of ``shape`` made of ``pieces``."""
    box = tuple(slice(0, n) for n in shape) if region is None else region
    out = np.empty(tuple(piece.stop - piece.start for piece in box), dtype=dtype)
    covered = 0
    for piece in pieces:
        part = tuple(slice(max(a.start, b.start), min(a.stop, b.stop)) for a, b in zip(box, piece.target, strict=True))
        if any(p.start >= p.stop for p in part):
            continue
        where = tuple(slice(p.start - b.start, p.stop - b.start) for p, b in zip(part, box, strict=True))
        out[where] = piece_values(piece, spec, seed=seed, region=part, dtype=dtype)
        covered += math.prod(p.stop - p.start for p in part)
    if covered != out.size:  # pragma: no cover - a layer mapping that misses part of its tensor is a bug
        raise RuntimeError(f"the canonical pieces cover {covered} of the {out.size} values of a tensor of shape {shape}")
    return out


def to_canonical(piece: Piece, framework: np.ndarray) -> np.ndarray:
    """The canonical rows ``piece.rows`` from the framework tensor's values (the inverse of :func:`piece_values`)."""
    mid = np.asarray(framework)[piece.target].reshape(piece.mid_shape)
    return np.transpose(mid, np.argsort(piece.perm))


def canonical_state(entries: Sequence[tuple[Sequence[Piece], np.ndarray]]) -> dict[str, np.ndarray]:
    """``{canonical name: array in the canonical layout}`` assembled from framework tensors and their pieces.

    Rows no framework tensor holds (torch's ``bias_ih`` of a Flax LSTM cell,
    which has ``bias_hh`` only) stay zero; tensors with no piece are absent.
    """
    state: dict[str, np.ndarray] = {}
    for pieces, values in entries:
        for piece in pieces:
            tensor = piece.tensor
            if tensor.key not in state:
                state[tensor.key] = np.zeros(tensor.shape, dtype=np.asarray(values).dtype)
            if tensor.shape:
                state[tensor.key][piece.rows[0] : piece.rows[1]] = to_canonical(piece, values)
            else:
                state[tensor.key][()] = to_canonical(piece, values)
    return state


def keys_of(pieces: Sequence[Piece]) -> str:
    """The canonical keys of a framework tensor's pieces, for reports (one key, or several joined by ``+``).

    A stacked layer's many keys are shown by the first and the last.
    """
    keys: list[str] = []
    for piece in pieces:
        if piece.tensor.key not in keys:
            keys.append(piece.tensor.key)
    if len(keys) > 4:
        return f"{keys[0]}+...+{keys[-1]} ({len(keys)} tensors)"
    return "+".join(keys)


# ----------------------------------------------------------------------------- the walk, for Flax and Keras
@dataclasses.dataclass(frozen=True)
class Parameter:
    """A framework parameter as the walk sees it: names, shape, dtype, and its canonical pieces."""

    name: str  #: the framework's name ("Dense_0/kernel", "fc/kernel"), for the report and name rules
    identity: Identity  #: the framework's own identity (its path, class and local name)
    shape: tuple[int, ...]
    dtype: np.dtype
    pieces: tuple[Piece, ...]

    @property
    def identities(self) -> tuple[Identity, ...]:
        seen = [self.identity]
        for piece in self.pieces:
            if piece.tensor.identity() not in seen:
                seen.append(piece.tensor.identity())
        return tuple(seen)

    def values(self, spec: InitSpec, seed: int, region: Region | None = None) -> np.ndarray:
        """The values of ``region`` (``None``: all) for ``spec``, computed in the canonical layout."""
        return framework_values(self.pieces, spec, seed=seed, shape=self.shape, region=region, dtype=self.dtype)

    def std(self, spec: InitSpec) -> float | None:
        """The values' scale for the report (the fans of the block holding the first piece's first row)."""
        piece = self.pieces[0]
        blocks = fan_blocks(piece.tensor)
        block = next((b for b in blocks if b.start <= piece.rows[0] < b.stop), blocks[0])
        std = spec.std_for(piece.tensor.shape, fans=block.fans)
        return None if std is None else float(std)


#: How each framework's ``init_model`` calls a rule that is a callable (named in its errors).
_CALLABLE_FORMS = {
    "flax.nnx": "a JAX initializer fn(key, shape, dtype)",
    "flax.linen": "a JAX initializer fn(key, shape, dtype)",
    "Keras": "a Keras initializer fn(shape, dtype=dtype)",
}


def initialize(
    parameters: Sequence[Parameter],
    rules: RulesLike,
    *,
    seed: int,
    strict: bool,
    write: Any,
    call: Any,
    module_class: type | tuple[type, ...] = object,
    framework: str = "",
) -> list[ParameterInit]:
    """Choose each parameter's rule and fill it: ``write(parameter, spec)`` or ``call(parameter, callable)``.

    Returns the report's entries; raises for ``strict`` rules that matched
    nothing and warns about 1-D parameters of unknown layers filled with ones.
    """
    user_rules: list[Rule] = parse_rules(rules, module_class=module_class, framework=framework)
    defaults = default_rules()
    used: set[int] = set()
    entries: list[ParameterInit] = []
    vector_fallbacks: list[str] = []
    for parameter in parameters:
        rule, source, action = choose(parameter.identities, len(parameter.shape), user_rules, defaults)
        used.add(id(rule))
        if rule is FALLBACK_VECTOR:
            vector_fallbacks.append(parameter.name)
        std = None
        if isinstance(action, InitSpec):
            write(parameter, action)
            std = parameter.std(action)
        elif action is not None:
            try:
                call(parameter, action)
            except TypeError as error:  # often another framework's initializer: JAX's take a key first, Keras' not
                form = _CALLABLE_FORMS.get(framework, "fn(shape, dtype)")
                raise TypeError(
                    f"{error} (rule {source!r}: calling {describe_action(action)} for {parameter.name} of shape "
                    f"{parameter.shape} failed; a {framework} rule's callable is {form})"
                ) from error
        entries.append(ParameterInit(
            parameter.name, parameter.shape, parameter.dtype.name, source, describe_action(action), std,
            keys_of(parameter.pieces),
        ))
    if strict:
        check_unused(user_rules, used, [entry.name for entry in entries])
    warn_vector_fallbacks(vector_fallbacks, stacklevel=4)
    return entries


# ----------------------------------------------------------------------------- layers, channels-last kernels
# What Flax and Keras layers hold, as pieces of torch's tensors. Kernels are (in..., out...), as both store them.


def linear_weight(prefix: str, shape: Sequence[int], n_in: int = 1, *, types: tuple[str, ...] = ("Linear",),
                  local: str = "weight") -> list[Piece]:
    """A dense kernel ``(*in, *out)`` (``Dense``, ``DenseGeneral``, ``EinsumDense``): ``weight.T``, reshaped."""
    ins, outs = tuple(shape[:n_in]), tuple(shape[n_in:])
    tensor = CanonicalTensor(join(prefix, local), (math.prod(outs), math.prod(ins)), types, local)
    return [whole(tensor, (1, 0), (ins, outs))]


def vector(prefix: str, local: str, shape: Sequence[int], types: tuple[str, ...]) -> list[Piece]:
    """A bias or a norm's scale, any shape, as torch's 1-D tensor ``local`` of ``prefix``."""
    dims = tuple(shape)
    tensor = CanonicalTensor(join(prefix, local), (math.prod(dims),), types, local)
    return [whole(tensor, (0,), (dims,))]


def conv_types(spatial: int, *, transposed: bool = False) -> tuple[str, ...]:
    """torch's class names for a convolution with ``spatial`` kernel axes."""
    if transposed:
        return (f"ConvTranspose{spatial}d", "_ConvTransposeNd", "_ConvNd")
    return (f"Conv{spatial}d", "_ConvNd")


def conv_weight(prefix: str, shape: Sequence[int], groups: int = 1, *, local: str = "weight") -> list[Piece]:
    """A convolution kernel ``(*k, in // groups, out)``: torch's ``(out, in // groups, *k)``."""
    spatial = len(shape) - 2
    *kernel, ins, outs = (int(d) for d in shape)
    tensor = CanonicalTensor(join(prefix, local), (outs, ins, *kernel), conv_types(spatial), local, groups=groups)
    perm = (*range(2, spatial + 2), 1, 0)
    return [whole(tensor, perm, [(k,) for k in kernel] + [(ins,), (outs,)])]


def conv_transpose_weight(
    prefix: str, shape: Sequence[int], groups: int = 1, *, out_before_in: bool = False
) -> list[Piece]:
    """A transposed convolution's kernel, ``(*k, in, out)`` (Flax) or ``(*k, out, in)`` (Keras): torch's ``(in, out, *k)``."""
    spatial = len(shape) - 2
    *kernel, first, second = (int(d) for d in shape)
    ins, outs = (second, first) if out_before_in else (first, second)
    types = conv_types(spatial, transposed=True)
    tensor = CanonicalTensor(join(prefix, "weight"), (ins, outs, *kernel), types, "weight", groups=groups, transposed=True)
    last = (1, 0) if out_before_in else (0, 1)
    return [whole(tensor, (*range(2, spatial + 2), *last), [(k,) for k in kernel] + [(first,), (second,)])]


def depthwise_weight(prefix: str, shape: Sequence[int]) -> list[Piece]:
    """A depthwise kernel ``(*k, channels, multiplier)``: torch's grouped ``(channels * multiplier, 1, *k)``."""
    spatial = len(shape) - 2
    *kernel, channels, multiplier = (int(d) for d in shape)
    tensor = CanonicalTensor(
        join(prefix, "weight"), (channels * multiplier, 1, *kernel), conv_types(spatial), "weight", groups=channels
    )
    return [whole(tensor, (*range(2, spatial + 2), 0, 1), [(k,) for k in kernel] + [(channels, multiplier), ()])]


def same_layout(prefix: str, local: str, shape: Sequence[int], types: tuple[str, ...], *,
                layout: str = "torch") -> list[Piece]:
    """A tensor whose layout is torch's already (embeddings), or kept as it is (``layout="channels_last"``)."""
    dims = tuple(int(d) for d in shape)
    tensor = CanonicalTensor(join(prefix, local), dims, types, local, layout=layout)
    return [whole(tensor, tuple(range(len(dims))), [(d,) for d in dims])]


@dataclasses.dataclass(frozen=True)
class AttentionDims:
    """The sizes of a multi-head attention's projections (Flax and Keras store them the same way)."""

    query_in: int
    key_in: int
    value_in: int
    heads: int
    head_dim: int
    value_head_dim: int

    @property
    def packed(self) -> bool:
        """Whether torch packs q, k and v in one ``in_proj_weight`` (self-attention sizes)."""
        inner = self.heads * self.head_dim
        return self.query_in == self.key_in == self.value_in == inner == self.heads * self.value_head_dim


_ATTENTION = ("MultiheadAttention",)
_OUT_PROJ = ("NonDynamicallyQuantizableLinear", "Linear")


def attention_param(prefix: str, role: str, bias: bool, shape: Sequence[int], dims: AttentionDims) -> list[Piece]:
    """A q/k/v/out kernel ``(E, H, D)`` / ``(H, D, E)`` or bias ``(H, D)`` / ``(E,)`` as torch's attention tensors.

    q, k and v are rows of the packed ``in_proj_weight`` (or ``q_proj_weight``,
    ``k_proj_weight``, ``v_proj_weight`` when their input sizes differ, as in
    torch) and of ``in_proj_bias``; the output is ``out_proj.weight``/``.bias``.
    """
    if role == "out":
        out_prefix = join(prefix, "out_proj")
        return vector(out_prefix, "bias", shape, _OUT_PROJ) if bias else linear_weight(out_prefix, shape, 2, types=_OUT_PROJ)
    index = "qkv".index(role)
    inner = dims.heads * dims.head_dim
    sizes = (inner, inner, dims.heads * dims.value_head_dim)
    start = sum(sizes[:index])
    rows = (start, start + sizes[index])
    heads = tuple(int(d) for d in shape[-2:])
    if bias:
        tensor = CanonicalTensor(join(prefix, "in_proj_bias"), (sum(sizes),), _ATTENTION, "in_proj_bias")
        return [whole(tensor, (0,), (heads,), rows=rows)]
    features = int(shape[0])
    if dims.packed:
        tensor = CanonicalTensor(join(prefix, "in_proj_weight"), (sum(sizes), features), _ATTENTION, "in_proj_weight")
        return [whole(tensor, (1, 0), ((features,), heads), rows=rows)]
    local = f"{role}_proj_weight"
    tensor = CanonicalTensor(join(prefix, local), (sizes[index], features), _ATTENTION, local)
    return [whole(tensor, (1, 0), ((features,), heads))]


def recurrent_types(cell: str, *, wrapped: bool) -> tuple[str, ...]:
    """torch's names for a recurrent layer (``LSTM``, ``GRU``, ``RNN``): the layer if wrapped, else its cell."""
    return (cell, "RNNBase") if wrapped else (f"{cell}Cell", "RNNCellBase")


def gate_param(
    prefix: str,
    cell: str,
    matrix: str,
    shape: Sequence[int],
    order: str,
    *,
    wrapped: bool,
    bias: bool = False,
    leading: int | None = None,
) -> list[Piece]:
    """Gates of a recurrent kernel ``(in, len(order) * H)`` or bias ``(len(order) * H,)`` as torch's rows.

    ``order`` names the framework's gates in its own order with torch's
    letters (``"ifgo"``, ``"rzn"``; Keras' GRU is ``"zrn"``, a single Flax
    gate ``"f"``); ``matrix`` is ``"ih"`` or ``"hh"``. ``leading`` fills one
    row of a framework tensor with an extra leading axis (Keras' GRU bias
    ``(2, 3H)``). Canonical names are torch's: ``weight_ih_l0`` for a layer
    (``wrapped``), ``weight_ih`` for a cell.
    """
    torch_order = GATES.get(cell, "h")
    suffix = "_l0" if wrapped else ""
    local = f"{'bias' if bias else 'weight'}_{matrix}{suffix}"
    types = recurrent_types(cell, wrapped=wrapped)
    dims = [int(d) for d in shape]
    if leading is not None:
        dims = dims[1:]
    units = dims[-1] // len(order)
    pieces = []
    for j, gate in enumerate(order):
        t = torch_order.index(gate)
        rows = (t * units, (t + 1) * units)
        if bias:
            tensor = CanonicalTensor(join(prefix, local), (len(torch_order) * units,), types, local)
            split: list[tuple[int, ...]] = [(units,)]
            perm: tuple[int, ...] = (0,)
            at = [j * units]
        else:
            tensor = CanonicalTensor(join(prefix, local), (len(torch_order) * units, dims[0]), types, local)
            split, perm, at = [(dims[0],), (units,)], (1, 0), [0, j * units]
        if leading is not None:
            split[0] = (1, *split[0])
            at = [leading, *at]
        pieces.append(whole(tensor, perm, split, rows=rows, at=at))
    return pieces
