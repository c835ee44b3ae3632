"""Whole-model initialization for Keras 3: declarative rules, canonical keys, sharded variables.

:func:`init_model` assigns every weight of a built Keras model (any backend)
from the rules of ``berry.torch.init_model`` (:mod:`berry._rules`), with the
canonical layout's values (:mod:`berry._canonical`): the same rule set, seed
and architecture give the same weights in PyTorch, Flax and Keras, bit for
bit, whatever each framework's kernel layout.

How Keras layers map to torch's tensors: ``Dense`` and ``EinsumDense``
kernels ``(in..., out...)`` are ``weight.T``; ``Conv*D`` kernels
``(*k, in // groups, out)`` are ``weight`` (``(out, in // groups, *k)``),
``Conv*DTranspose`` kernels ``(*k, out, in)`` torch's ``(in, out, *k)``,
``DepthwiseConv*D`` kernels ``(*k, C, M)`` a grouped ``(C * M, 1, *k)``
weight, ``SeparableConv*D`` a ``depthwise`` and a ``pointwise`` convolution;
``Embedding`` tables ``weight``; norms' ``gamma``/``beta`` ``weight``/``bias``;
``MultiHeadAttention``'s query/key/value kernels rows of ``in_proj_weight``
(``q_proj_weight``... when their input sizes differ) and its output
``out_proj``; ``LSTM``/``GRU``/``SimpleRNN`` cells' kernels the gate rows of
torch's ``weight_ih_l0``/``weight_hh_l0``/``bias_ih_l0``/``bias_hh_l0``
(Keras' GRU gate order ``z, r, h`` mapped to torch's ``r, z, n``;
``reset_after`` biases to both); ``PReLU``'s ``alpha`` ``weight``. Other
layers keep their layout and their own names.

Keys are ``(seed, canonical name)``: the variable's path (``"fc/kernel"``)
without the model's own name, its layer path made dotted by ``naming``, plus
torch's parameter name (``"fc.weight"``). Keras names layers by creation
order (``dense``, ``dense_1``): name your layers for keys that do not move
when a layer is added.

On the JAX backend, a variable laid out by a ``keras.distribution`` (a
sharded ``jax.Array``) is made with ``jax.make_array_from_callback``: each
device's shard computed from its own region, nothing gathered.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from berry import _canonical as canonical
from berry._canonical import AttentionDims, Parameter, Piece
from berry._rules import (
    Identity,
    InitReport,
    ParameterInit,
    Rule,
    RulesLike,
    UnmatchedRuleError,
    default_rules,
)
from berry._validation import check_seed, resolve_dtype
from berry.keras.initializers import _to_tensor
from berry.sampling import InitSpec

__all__ = [
    "InitReport",
    "ParameterInit",
    "Rule",
    "UnmatchedRuleError",
    "canonical_state",
    "default_naming",
    "default_rules",
    "init_model",
]

Path = tuple[str, ...]
Naming = Callable[[Path], str]
_STATISTICS = {"moving_mean": 0.0, "moving_variance": 1.0}  #: BatchNormalization's, reset as torch resets them
_NORMS = {
    "LayerNormalization": ("LayerNorm",),
    "RMSNormalization": ("RMSNorm",),
    "GroupNormalization": ("GroupNorm",),
    "BatchNormalization": ("BatchNorm", "_BatchNorm", "_NormBase"),
}
_NORM_LOCAL = {"gamma": "weight", "beta": "bias", "scale": "weight"}


def default_naming(path: Path) -> str:
    """The canonical module path of a Keras layer path: its names joined by dots (``("blocks_0", "attn")``)."""
    return ".".join(path)


_naming = functools.partial(canonical.naming, default=default_naming, path_kind="layer path")


def _layer_classes() -> dict[str, type]:
    from keras.src.layers.convolutional.base_conv import BaseConv
    from keras.src.layers.convolutional.base_conv_transpose import BaseConvTranspose
    from keras.src.layers.convolutional.base_depthwise_conv import BaseDepthwiseConv
    from keras.src.layers.convolutional.base_separable_conv import BaseSeparableConv

    layers = keras.layers
    return {
        "dense": layers.Dense, "einsum": layers.EinsumDense, "conv": BaseConv, "conv_transpose": BaseConvTranspose,
        "depthwise": BaseDepthwiseConv, "separable": BaseSeparableConv, "embedding": layers.Embedding,
        "attention": layers.MultiHeadAttention, "LSTM": layers.LSTMCell, "GRU": layers.GRUCell,
        "RNN": layers.SimpleRNNCell, "wrapper": layers.RNN, "prelu": layers.PReLU,
    }


def _kind(layer: Any, classes: dict[str, type]) -> str | None:
    for kind, cls in classes.items():
        if isinstance(layer, cls):
            return kind
    return None


class _Walk:
    """The model's layers, who owns each variable, and each layer's parent and path."""

    def __init__(self, model: Any) -> None:
        if not isinstance(model, keras.layers.Layer):
            raise TypeError(f"model must be a Keras model or layer, got {type(model).__name__}")
        if not model.built:
            raise ValueError(f"{model.name} is not built: call it on data or build() it first, so its weights exist")
        self.model = model
        self.owner: dict[int, Any] = {}
        self.parent: dict[int, Any] = {}
        self.layer_path: dict[int, Path] = {id(model): ()}
        for layer in model._flatten_layers(include_self=True, recursive=True):
            for child in layer._flatten_layers(include_self=False, recursive=False):
                self.parent.setdefault(id(child), layer)
                self.layer_path.setdefault(id(child), (*self.layer_path.get(id(layer), ()), child.name))
            for variable in [*layer._trainable_variables, *layer._non_trainable_variables]:
                self.owner.setdefault(id(variable), layer)

    def path(self, variable: Any) -> Path:
        """The variable's path as segments: the names of the layers that hold it, from the model's child down.

        Keras' own ``variable.path`` is the name scope the variable was made
        in, which leaves out a nested functional model (its layers are made
        before it): two sub-models with a layer ``fc`` would both give
        ``fc/kernel``, one key for two tensors. The model's own name is left
        out (torch's names have none).
        """
        owner = self.owner.get(id(variable))
        if owner is not None and id(owner) in self.layer_path:
            return (*self.layer_path[id(owner)], str(variable.name))
        parts = tuple(str(variable.path).split("/"))
        if len(parts) > 1 and parts[0] == self.model.name:
            parts = parts[1:]
        return parts

    def parent_of(self, layer: Any) -> Any:
        return self.parent.get(id(layer))


def _einsum_inputs(layer: Any, shape: tuple[int, ...]) -> int | None:
    """How many leading kernel axes an EinsumDense contracts, if its kernel is ``(in..., out...)``."""
    match = re.fullmatch(r"\s*([a-z.]+)\s*,\s*([a-z]+)\s*->\s*([a-z.]+)\s*", str(getattr(layer, "equation", "")))
    if match is None:
        return None
    inputs, kernel, outputs = match.groups()
    if len(kernel) != len(shape):
        return None
    roles = ["in" if axis in inputs and axis not in outputs else "out" if axis in outputs and axis not in inputs
             else "batch" for axis in kernel]
    n_in = roles.count("in")
    return n_in if "batch" not in roles and roles == ["in"] * n_in + ["out"] * (len(roles) - n_in) else None


def _attention(owner: Any, parent: Any, parent_path: Path, local: str, shape: tuple[int, ...],
               naming: Naming) -> list[Piece] | None:
    roles = {id(parent._query_dense): "q", id(parent._key_dense): "k", id(parent._value_dense): "v",
             id(parent._output_dense): "out"}
    role = roles.get(id(owner))
    kernels = [tuple(layer.kernel.shape) for layer in (parent._query_dense, parent._key_dense, parent._value_dense)]
    if role is None or local not in ("kernel", "bias") or any(len(k) != 3 for k in kernels):
        return None
    query, key, value = kernels
    dims = AttentionDims(query[0], key[0], value[0], query[1], query[2], value[2])
    return canonical.attention_param(naming(parent_path), role, local == "bias", shape, dims)


def _recurrent(kind: str, wrapped: bool, prefix: str, local: str, shape: tuple[int, ...]) -> list[Piece] | None:
    order = {"LSTM": "ifgo", "GRU": "zrn", "RNN": "h"}[kind]  # Keras' gate order, in torch's letters
    if local in ("kernel", "recurrent_kernel"):
        matrix = "ih" if local == "kernel" else "hh"
        return canonical.gate_param(prefix, kind, matrix, shape, order, wrapped=wrapped)
    if local != "bias":
        return None
    if len(shape) == 2:  # GRU with reset_after: one input and one recurrent bias
        return [piece for row, matrix in enumerate(("ih", "hh")) for piece in
                canonical.gate_param(prefix, kind, matrix, shape, order, wrapped=wrapped, bias=True, leading=row)]
    return canonical.gate_param(prefix, kind, "ih", shape, order, wrapped=wrapped, bias=True)


def _pieces(walk: _Walk, variable: Any, naming: Naming, classes: dict[str, type]) -> list[Piece]:
    path = walk.path(variable)
    layer_path, local = path[:-1], path[-1]
    shape = tuple(int(d) for d in variable.shape)
    owner = walk.owner.get(id(variable))
    parent = walk.parent_of(owner) if owner is not None else None
    parent_kind = _kind(parent, classes) if parent is not None else None
    if parent_kind == "attention" and layer_path:
        pieces = _attention(owner, parent, layer_path[:-1], local, shape, naming)
        if pieces is not None:
            return pieces
    kind = _kind(owner, classes) if owner is not None else None
    prefix = naming(layer_path)
    if kind in ("LSTM", "GRU", "RNN"):
        wrapped = parent_kind == "wrapper"
        pieces = _recurrent(kind, wrapped, naming(layer_path[:-1]) if wrapped else prefix, local, shape)
        if pieces is not None:
            return pieces
    pieces = _layer(kind, owner, prefix, local, shape)
    if pieces is not None:
        return pieces
    types = tuple(cls.__name__ for cls in type(owner).__mro__) if owner is not None else ()
    return canonical.same_layout(prefix, local, shape, types, layout="channels_last")


def _layer(kind: str | None, owner: Any, prefix: str, local: str, shape: tuple[int, ...]) -> list[Piece] | None:
    spatial = len(shape) - 2
    if kind in ("dense", "einsum") and local == "kernel":
        n_in = 1 if kind == "dense" else _einsum_inputs(owner, shape)
        return None if n_in is None else canonical.linear_weight(prefix, shape, n_in)
    if kind in ("dense", "einsum") and local == "bias":
        return canonical.vector(prefix, "bias", shape, ("Linear",))
    if kind == "separable" and local in ("depthwise_kernel", "pointwise_kernel"):
        if local == "depthwise_kernel":
            return canonical.depthwise_weight(canonical.join(prefix, "depthwise"), shape)
        return canonical.conv_weight(canonical.join(prefix, "pointwise"), shape)
    if kind == "separable" and local == "bias":
        spatial = len(getattr(owner, "kernel_size", ())) or 2
        return canonical.vector(canonical.join(prefix, "pointwise"), "bias", shape, canonical.conv_types(spatial))
    if kind == "depthwise" and local == "kernel" and spatial >= 1:
        return canonical.depthwise_weight(prefix, shape)
    if kind == "conv_transpose" and local == "kernel" and spatial >= 1:
        return canonical.conv_transpose_weight(prefix, shape, out_before_in=True)
    if kind == "conv" and local == "kernel" and spatial >= 1:
        return canonical.conv_weight(prefix, shape, int(getattr(owner, "groups", 1)))
    if kind in ("conv", "conv_transpose", "depthwise") and local == "bias":
        spatial = len(getattr(owner, "kernel_size", ())) or 2
        return canonical.vector(prefix, "bias", shape, canonical.conv_types(spatial, transposed=kind == "conv_transpose"))
    if kind == "embedding" and local == "embeddings":
        return canonical.same_layout(prefix, "weight", shape, ("Embedding",))
    if kind == "prelu" and local == "alpha":
        return canonical.same_layout(prefix, "weight", shape, ("PReLU",))
    norm = type(owner).__name__ if owner is not None else ""
    if norm in _NORMS and local in _NORM_LOCAL:
        return canonical.vector(prefix, _NORM_LOCAL[local], shape, _NORMS[norm])
    return None


def _is_parameter(walk: _Walk, variable: Any) -> bool:
    """Weights berry initializes: trainable ones, and every weight of a frozen layer (not statistics)."""
    owner = walk.owner.get(id(variable))
    return bool(variable.trainable) or (owner is not None and not owner.trainable)


def _parameters(model: Any, naming: Naming) -> tuple[_Walk, list[tuple[Parameter, Any]]]:
    walk = _Walk(model)
    classes = _layer_classes()
    found = []
    for variable in model.weights:
        if not _is_parameter(walk, variable):
            continue
        owner = walk.owner.get(id(variable))
        path = walk.path(variable)
        identity = Identity.of("/".join(path), path[-1], owner)
        dtype = resolve_dtype(keras.backend.standardize_dtype(variable.dtype), floating_only=False)
        pieces = tuple(_pieces(walk, variable, naming, classes))
        found.append((Parameter("/".join(path), identity, tuple(int(d) for d in variable.shape), dtype, pieces), variable))
    return walk, found


def _value(variable: Any, parameter: Parameter, values_of: Callable[[Any], np.ndarray]) -> Any:
    """The new value of ``variable``: sharded shard by shard on the JAX backend, else one array."""
    if keras.backend.backend() == "jax":
        import jax

        sharding = getattr(variable.value, "sharding", None)
        if sharding is not None and not isinstance(sharding, jax.sharding.SingleDeviceSharding):
            from berry._jax_arrays import array_from_regions

            return array_from_regions(parameter.shape, sharding, values_of)
    return _to_tensor(values_of(None), keras.backend.standardize_dtype(variable.dtype))


def init_model(
    model: Any,
    rules: RulesLike = None,
    *,
    seed: int = 0,
    strict: bool = False,
    prefix: str = "",
    naming: Naming | None = None,
    verbose: bool = False,
) -> InitReport:
    """Initialize every weight of a built Keras model in place from declarative rules, reproducibly.

    Each weight gets the first of ``rules`` that matches it (name patterns
    before layer-type rules), else :func:`default_rules`: the format and
    defaults of ``berry.torch.init_model``. A weight answers to its own
    identity (``"fc/kernel"``, ``"Dense:kernel"``) and to its canonical one
    (``"fc.weight"``, ``"Linear:weight"``). Values are keyed by ``(seed,
    canonical name)`` and equal ``berry.torch.init_model``'s for the same
    architecture, in Keras' layout. ``BatchNormalization`` statistics are
    reset (mean 0, variance 1); other non-trainable state (``Normalization``
    statistics, seed generators) is left as it is and listed. A rule's
    ``init`` may also be a Keras initializer (or ``fn(shape, dtype)``): it is
    called with the weight's shape and dtype.

    Parameters
    ----------
    model:
        A built Keras model or layer (any backend).
    rules, seed, strict, prefix, verbose:
        As ``berry.torch.init_model``.
    naming:
        Layer path (a tuple of layer names) -> canonical module path
        (dotted); default :func:`default_naming`.

    Examples
    --------
    >>> import keras, berry, berry.keras
    >>> model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(4, name="fc")])
    >>> report = berry.keras.init_model(model, {"*.bias": 0.1}, seed=1)
    >>> [(p.name, p.key, p.rule) for p in report]
    [('fc/kernel', 'fc.weight', 'default Linear:weight'), ('fc/bias', 'fc.bias', '*.bias')]
    >>> w = berry.sample((4, 16), "xavier", seed=1, name="fc.weight")     # torch's (out, in) layout
    >>> bool((keras.ops.convert_to_numpy(model.layers[0].kernel.value) == w.T).all())
    True
    """
    seed = check_seed(seed)
    walk, found = _parameters(model, _naming(naming, prefix))
    variable_of = {parameter.name: variable for parameter, variable in found}
    made: dict[str, Any] = {}

    def write(parameter: Parameter, spec: InitSpec) -> None:
        made[parameter.name] = _value(variable_of[parameter.name], parameter, functools.partial(parameter.values, spec, seed))

    def call(parameter: Parameter, fn: Any) -> None:
        made[parameter.name] = fn(parameter.shape, dtype=keras.backend.standardize_dtype(variable_of[parameter.name].dtype))

    entries = canonical.initialize(
        [parameter for parameter, _ in found], rules, seed=seed, strict=strict, write=write, call=call,
        module_class=keras.layers.Layer, framework="Keras",
    )
    for name, value in made.items():  # assigned at the end: a failing rule leaves the model untouched
        variable_of[name].assign(value)
    reset, others = _state(walk, model)
    report = InitReport(seed, tuple(entries), tuple(reset), tuple(others))
    if verbose:
        print(report.table())
    return report


def _state(walk: _Walk, model: Any) -> tuple[list[str], list[str]]:
    reset, others = [], []
    weights = {id(variable) for variable in model.weights}
    for variable in model.variables:
        if id(variable) in weights and _is_parameter(walk, variable):
            continue
        owner = walk.owner.get(id(variable))
        local = str(variable.path).rsplit("/", 1)[-1]
        if isinstance(owner, keras.layers.BatchNormalization) and local in _STATISTICS:
            values = np.full(tuple(variable.shape), _STATISTICS[local])
            variable.assign(_to_tensor(values.astype(np.float32), keras.backend.standardize_dtype(variable.dtype)))
            reset.append(str(variable.path))
        else:
            others.append(str(variable.path))
    return reset, others


def canonical_state(model: Any, *, prefix: str = "", naming: Naming | None = None) -> dict[str, np.ndarray]:
    """The model's weights in the canonical layout, by canonical name: a torch ``state_dict`` in NumPy.

    Examples
    --------
    >>> import keras, berry.keras
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="fc")])
    >>> sorted((name, value.shape) for name, value in berry.keras.canonical_state(model).items())
    [('fc.bias', (2,)), ('fc.weight', (2, 3))]
    """
    _, found = _parameters(model, _naming(naming, prefix))
    entries = [(parameter.pieces, np.asarray(keras.ops.convert_to_numpy(variable.value))) for parameter, variable in found]
    return canonical.canonical_state(entries)
