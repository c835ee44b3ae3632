"""Flax (Linen and NNX) parameters as pieces of canonical tensors (:mod:`berry._canonical`).

Given a parameter's path, its owning module and the modules above it, say
which torch tensor (and which rows of it) the parameter holds: ``Dense`` /
``Linear`` kernels are ``weight.T``, ``Conv`` kernels ``weight`` with its
axes moved (``feature_group_count`` is torch's ``groups``), ``ConvTranspose``
kernels ``(*k, in, out)`` (``(*k, out, in)`` with ``transpose_kernel=True``) torch's ``(in, out, *k)``, ``Embed`` tables ``weight``, norms'
``scale``/``bias`` ``weight``/``bias``, attention projections rows of
``in_proj_weight`` and ``out_proj``, recurrent cells' gate kernels rows of
``weight_ih``/``weight_hh`` (``weight_ih_l0`` under ``nnx.RNN``). Anything
else keeps its own layout and name (``layout="channels_last"`` fans).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from typing import Any

from berry import _canonical as canonical
from berry._canonical import AttentionDims, Piece

__all__ = ["ModuleAt", "Naming", "default_naming", "flax_pieces"]

Path = tuple[Any, ...]
#: The module at a module path (``()`` is the root), or ``None`` if unknown.
ModuleAt = Callable[[Path], Any]
#: A parameter's shape by its full path (module path + local name), or ``None``.
ShapeAt = Callable[[Path], "tuple[int, ...] | None"]
#: Framework module path -> canonical module path (dotted).
Naming = Callable[[Path], str]


def default_naming(path: Path) -> str:
    """The canonical module path of a Flax module path: its names joined by dots (``("layers", 0)`` -> ``"layers.0"``)."""
    return ".".join(str(part) for part in path)


def _classes() -> dict[str, tuple[type, ...]]:
    import flax.linen as nn
    from flax import nnx

    return {
        "dense": (nn.Dense, nnx.Linear),
        "dense_general": (nn.DenseGeneral, nnx.LinearGeneral),
        "conv": (nn.Conv, nnx.Conv),
        "conv_transpose": (nn.ConvTranspose, nnx.ConvTranspose),
        "embed": (nn.Embed, nnx.Embed),
        "LayerNorm": (nn.LayerNorm, nnx.LayerNorm),
        "BatchNorm": (nn.BatchNorm, nnx.BatchNorm),
        "GroupNorm": (nn.GroupNorm, nnx.GroupNorm),
        "RMSNorm": (nn.RMSNorm, nnx.RMSNorm),
        "attention": (nn.MultiHeadDotProductAttention, nnx.MultiHeadAttention),
        "LSTM": (nn.LSTMCell, nn.OptimizedLSTMCell, nnx.LSTMCell, nnx.OptimizedLSTMCell),
        "GRU": (nn.GRUCell, nnx.GRUCell),
        "RNN": (nn.SimpleCell, nnx.SimpleCell),
        "wrapper": (nnx.RNN,),
    }


_NORM_TYPES = {
    "LayerNorm": ("LayerNorm",),
    "BatchNorm": ("BatchNorm", "_BatchNorm", "_NormBase"),
    "GroupNorm": ("GroupNorm",),
    "RMSNorm": ("RMSNorm",),
}
_NORM_LOCAL = {"scale": "weight", "bias": "bias"}
_ATTENTION_ROLES = {"query": "q", "key": "k", "value": "v", "out": "out"}


def _kind(module: Any, classes: dict[str, tuple[type, ...]]) -> str | None:
    for kind, types in classes.items():
        if isinstance(module, types):
            return kind
    return None


def flax_pieces(path: Path, module_at: ModuleAt, shape_at: ShapeAt, naming: Naming) -> list[Piece]:
    """The canonical pieces of the parameter at ``path`` (module path + local name).

    A stacked layer (``nnx.vmap``, ``nn.vmap`` or ``nn.scan`` over a layer:
    its parameters have leading axes its layer type does not have) is one
    layer per index: ``layers.kernel`` of shape ``(L, in, out)`` holds the
    canonical ``layers.0.weight`` ... ``layers.{L-1}.weight``, each with the
    fans of one layer (torch's ``nn.ModuleList`` of the same layers).
    """
    classes = _classes()
    shape = shape_at(path)
    assert shape is not None
    stacked = _stacked_axes(path, module_at, shape_at, classes)
    if not stacked:
        return _pieces(path, module_at, shape_at, naming, classes)

    def layer_shape_at(at: Path) -> tuple[int, ...] | None:
        found = shape_at(at)
        return None if found is None else tuple(found[stacked:])

    pieces = []
    for index in itertools.product(*(range(n) for n in shape[:stacked])):
        suffix = ".".join(str(i) for i in index)

        def layer_naming(at: Path, suffix: str = suffix) -> str:
            return canonical.join(naming(at), suffix)

        for piece in _pieces(path, module_at, layer_shape_at, layer_naming, classes):
            target = (*(slice(i, i + 1) for i in index), *piece.target)
            split = ((*(1,) * stacked, *piece.split[0]), *piece.split[1:])
            pieces.append(dataclasses.replace(piece, target=target, split=split))
    return pieces


def _stacked_axes(path: Path, module_at: ModuleAt, shape_at: ShapeAt, classes: dict[str, tuple[type, ...]]) -> int:
    """How many leading axes the parameter at ``path`` has beyond what its layer type holds (0: not stacked)."""
    *module_path, local = path
    owner_path = tuple(module_path)
    owner = module_at(owner_path)
    parent = module_at(owner_path[:-1]) if owner_path else None
    parent_kind = _kind(parent, classes) if parent is not None else None
    kind = _kind(owner, classes) if owner is not None else None
    shape = shape_at(path)
    assert shape is not None
    if parent_kind == "attention" and owner_path[-1] in _ATTENTION_ROLES:
        query = shape_at((*owner_path[:-1], "query", "kernel"))
        return max(len(query) - 3, 0) if query is not None else 0  # (in, heads, head_dim) per layer
    if parent_kind in ("LSTM", "GRU", "RNN"):
        expected = 2 if local == "kernel" else 1
    elif kind == "dense" or kind == "embed":
        expected = 2 if local in ("kernel", "embedding") else 1
    elif kind in ("conv", "conv_transpose"):
        size = getattr(owner, "kernel_size", ())
        expected = (1 if isinstance(size, int) else len(size)) + 2 if local == "kernel" else 1
    elif kind in _NORM_TYPES:
        axes = getattr(owner, "feature_axes", -1)
        expected = len(axes) if isinstance(axes, (tuple, list)) else 1
    else:  # DenseGeneral, unknown layers: their rank says nothing
        return 0
    return max(len(shape) - expected, 0)


def _pieces(path: Path, module_at: ModuleAt, shape_at: ShapeAt, naming: Naming,
            classes: dict[str, tuple[type, ...]]) -> list[Piece]:
    """:func:`flax_pieces` of one (unstacked) layer."""
    *module_path, local = path
    owner_path = tuple(module_path)
    shape = shape_at(path)
    assert shape is not None
    owner = module_at(owner_path)
    parent_path = owner_path[:-1]
    parent = module_at(parent_path) if owner_path else None
    parent_kind = _kind(parent, classes) if parent is not None else None
    if parent_kind == "attention" and owner_path[-1] in _ATTENTION_ROLES:
        return _attention(parent_path, owner_path[-1], local, shape, shape_at, naming)
    if parent_kind in ("LSTM", "GRU", "RNN"):
        pieces = _recurrent(parent_kind, parent_path, owner_path[-1], local, shape, module_at, classes, naming)
        if pieces is not None:
            return pieces
    kind = _kind(owner, classes) if owner is not None else None
    prefix = naming(owner_path)
    pieces = _layer(kind, owner, prefix, local, shape)
    if pieces is not None:
        return pieces
    types = tuple(cls.__name__ for cls in type(owner).__mro__) if owner is not None else ()
    return canonical.same_layout(prefix, str(local), shape, types, layout="channels_last")


def _layer(kind: str | None, owner: Any, prefix: str, local: Any, shape: tuple[int, ...]) -> list[Piece] | None:
    if kind in ("dense", "dense_general") and local == "kernel":
        n_in = _dense_inputs(owner, shape) if kind == "dense_general" else 1
        return None if n_in is None else canonical.linear_weight(prefix, shape, n_in)
    if kind in ("dense", "dense_general") and local == "bias":
        return canonical.vector(prefix, "bias", shape, ("Linear",))
    if kind == "conv" and local == "kernel" and len(shape) >= 3:
        return canonical.conv_weight(prefix, shape, int(getattr(owner, "feature_group_count", 1)))
    if kind == "conv_transpose" and local == "kernel" and len(shape) >= 3:
        # transpose_kernel=True stores (*k, out, in) and computes torch's operation; False stores (*k, in, out)
        return canonical.conv_transpose_weight(prefix, shape, out_before_in=bool(getattr(owner, "transpose_kernel", False)))
    if kind in ("conv", "conv_transpose") and local == "bias":
        spatial = len(getattr(owner, "kernel_size", ())) or 2
        return canonical.vector(prefix, "bias", shape, canonical.conv_types(spatial, transposed=kind != "conv"))
    if kind == "embed" and local == "embedding":
        return canonical.same_layout(prefix, "weight", shape, ("Embedding",))
    if kind in _NORM_TYPES and local in _NORM_LOCAL:
        return canonical.vector(prefix, _NORM_LOCAL[local], shape, _NORM_TYPES[kind])
    return None


def _dense_inputs(owner: Any, shape: tuple[int, ...]) -> int | None:
    """How many leading kernel axes a DenseGeneral/LinearGeneral contracts (``None``: batched, kept as is)."""
    if getattr(owner, "batch_dims", ()) or getattr(owner, "batch_axis", {}):
        return None
    features = getattr(owner, "features", None)
    if features is None:
        features = getattr(owner, "out_features", None)
    n_out = len(features) if isinstance(features, (tuple, list)) else 1
    return len(shape) - n_out


def _attention(
    prefix_path: Path, role_name: str, local: Any, shape: tuple[int, ...], shape_at: ShapeAt, naming: Naming
) -> list[Piece]:
    """A ``query``/``key``/``value``/``out`` kernel or bias of a multi-head attention."""
    kernels = {name: shape_at((*prefix_path, name, "kernel")) for name in ("query", "key", "value", "out")}
    query, key, value = kernels["query"], kernels["key"], kernels["value"]
    if query is None or key is None or value is None or len(query) != 3:
        return canonical.same_layout(naming((*prefix_path, role_name)), str(local), shape, (), layout="channels_last")
    dims = AttentionDims(query[0], key[0], value[0], query[1], query[2], value[2])
    return canonical.attention_param(naming(prefix_path), _ATTENTION_ROLES[role_name], local == "bias", shape, dims)


def _recurrent(
    cell_kind: str,
    cell_path: Path,
    child: Any,
    local: Any,
    shape: tuple[int, ...],
    module_at: ModuleAt,
    classes: dict[str, tuple[type, ...]],
    naming: Naming,
) -> list[Piece] | None:
    """A gate Dense of a Flax cell (``ii``, ``if_``, ``hn``, ``dense_i``, ``dense_h``, ``i``, ``h``)."""
    child = str(child)
    wrapper = module_at(cell_path[:-1]) if cell_path else None
    wrapped = wrapper is not None and _kind(wrapper, classes) == "wrapper"
    prefix = naming(cell_path[:-1] if wrapped else cell_path)
    if child in ("dense_i", "dense_h", "i", "h"):  # packed gates (NNX OptimizedLSTMCell, GRUCell, SimpleCells)
        matrix = "ih" if child in ("dense_i", "i") else "hh"
        order = {"LSTM": "ifgo", "GRU": "rzn", "RNN": "h"}[cell_kind]
    elif len(child) >= 2 and child[0] in "ih" and child[1] in "ifgorzn":
        matrix, order = ("ih" if child[0] == "i" else "hh"), child[1]
    else:
        return None
    if local not in ("kernel", "bias") or (local == "kernel" and len(shape) != 2):
        return None
    return canonical.gate_param(prefix, cell_kind, matrix, shape, order, wrapped=wrapped, bias=local == "bias")
