"""Whole-model initialization for Flax NNX and Linen: declarative rules, canonical keys, sharded arrays.

:func:`init_nnx` fills an ``nnx.Module``'s parameters in place (also an
abstract one from ``nnx.eval_shape``: berry then makes every array, and Flax
never draws its own); :func:`init_linen` builds a Linen module's variables
from its structure (``jax.eval_shape`` of ``module.init``), never running
Flax's initializers for the parameters it fills. The rules are those of
``berry.torch.init_model`` (:mod:`berry._rules`), and the values are the
canonical tensors' (:mod:`berry._canonical`): the same rule set, seed and
architecture give the same weights in PyTorch, Flax and Keras, bit for bit,
whatever each framework's kernel layout.

Keys: a parameter's values are keyed by ``(seed, canonical name)``: its
module path made dotted by ``naming`` (default: the path's names joined by
dots, ``("blocks", 0, "attn")`` -> ``"blocks.0.attn"``; Linen's auto-names such
as ``"Dense_0"`` stay as they are) plus torch's parameter name (``weight``,
``bias``, ``in_proj_weight``, ...). Adding a layer changes no other
parameter's values (in Linen, name your modules: auto-names count them).

Sharding: a parameter that is (or will be) a sharded ``jax.Array`` is made
with ``jax.make_array_from_callback``: each addressable device's shard is
computed from its own region of the canonical tensor, and nothing is
gathered. NNX parameters keep their own sharding (from
``nnx.with_partitioning`` under ``jax.set_mesh``); Linen parameters take
``flax.linen.get_sharding(variables, mesh)`` when ``mesh`` is given.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from berry import _canonical as canonical
from berry._canonical import Parameter
from berry._jax_arrays import array_from_regions
from berry._rules import Identity, InitReport, RulesLike
from berry._validation import check_seed
from berry.jax._flax_layers import Naming, default_naming, flax_pieces
from berry.sampling import InitSpec

__all__ = ["canonical_state", "init_linen", "init_nnx"]

Path = tuple[Any, ...]
_BATCH_STATS = {"mean": 0.0, "var": 1.0}  #: BatchNorm statistics, reset as torch resets running stats
_naming = functools.partial(canonical.naming, default=default_naming, path_kind="module path")


def _stream_key(seed: int, name: str) -> Any:
    """A JAX key of ``(seed, name)`` for a rule that is a JAX initializer (berry's stable hash of both)."""
    import jax

    from berry.stream import key_for

    key = key_for(seed, name)
    import jax.numpy as jnp

    return jax.random.wrap_key_data(jnp.asarray([key >> 32, key & 0xFFFFFFFF], dtype=jnp.uint32))


def _make(parameter: Parameter, values_of: Callable[[Any], np.ndarray], sharding: Any) -> Any:
    import jax.numpy as jnp

    if sharding is None:
        return jnp.asarray(values_of(None))
    return array_from_regions(parameter.shape, sharding, values_of)


def _call_initializer(fn: Any, parameter: Parameter, seed: int, sharding: Any) -> Any:
    import jax

    value = fn(_stream_key(seed, canonical.keys_of(parameter.pieces)), parameter.shape, parameter.dtype)
    if tuple(value.shape) != parameter.shape:
        raise ValueError(f"the rule's initializer gave shape {tuple(value.shape)} for {parameter.name} {parameter.shape}")
    return value if sharding is None else jax.device_put(value, sharding)


def _flax_name(path: Path) -> str:
    return "/".join(str(part) for part in path)


# ----------------------------------------------------------------------------- NNX
def _nnx_graph(model: Any) -> tuple[dict[Path, Any], Any]:
    from flax import nnx

    if not isinstance(model, nnx.Module):
        raise TypeError(f"model must be a flax.nnx.Module, got {type(model).__name__}")
    nodes = {tuple(path): node for path, node in nnx.iter_graph(model)}
    return nodes, nnx


def _nnx_parameters(model: Any, naming: Naming) -> tuple[list[tuple[Parameter, Any]], dict[Path, Any], Any]:
    nodes, nnx = _nnx_graph(model)

    def module_at(path: Path) -> Any:
        node = nodes.get(tuple(path))
        return node if isinstance(node, nnx.Module) else None

    def shape_at(path: Path) -> tuple[int, ...] | None:
        node = nodes.get(tuple(path))
        return tuple(node.get_value().shape) if isinstance(node, nnx.Param) else None

    found = []
    for path, node in nodes.items():
        if not isinstance(node, nnx.Param):
            continue
        value = node.get_value()
        owner = module_at(path[:-1])
        identity = Identity.of(_flax_name(path), str(path[-1]), owner)
        pieces = tuple(flax_pieces(path, module_at, shape_at, naming))
        found.append((Parameter(_flax_name(path), identity, tuple(value.shape), np.dtype(value.dtype), pieces), node))
    return found, nodes, nnx


def _nnx_sharding(value: Any, mesh: Any) -> Any:
    """The sharding to make a parameter with: its own, completed with a concrete mesh if abstract."""
    import jax

    sharding = getattr(value, "sharding", None)
    if sharding is None or not isinstance(sharding, jax.sharding.NamedSharding):
        return sharding
    if isinstance(sharding.mesh, jax.sharding.AbstractMesh):
        concrete = mesh if mesh is not None else jax.sharding.get_mesh()
        if concrete is None or concrete.empty:
            raise ValueError(
                f"a parameter is annotated with {sharding.spec} on an abstract mesh; pass mesh= (or call under "
                "jax.set_mesh) so berry can place each shard"
            )
        return jax.sharding.NamedSharding(concrete, sharding.spec)
    return sharding


def init_nnx(
    model: Any,
    rules: RulesLike = None,
    *,
    seed: int = 0,
    strict: bool = False,
    prefix: str = "",
    naming: Naming | None = None,
    mesh: Any = None,
    verbose: bool = False,
) -> InitReport:
    """Initialize every ``nnx.Param`` of ``model`` in place from declarative rules, reproducibly.

    Rules, defaults, fans and the report are ``berry.torch.init_model``'s
    (see :mod:`berry._rules`); a parameter matches a rule through its own
    path/class/name (``"fc/kernel"``, ``"Linear:kernel"``) or its canonical
    one (``"fc.weight"``, ``"Linear:weight"``). Values are keyed by
    ``(seed, canonical name)`` and equal ``berry.torch.init_model``'s for the
    same architecture, transposed to Flax's layout. BatchNorm statistics are
    reset (mean 0, var 1); other state (RNG counters, caches) is listed in
    ``report.other_buffers``. A rule's ``init`` may also be a JAX initializer
    ``fn(key, shape, dtype)``: it gets a key made from ``(seed, canonical name)``.
    On an abstract model, state other than parameters and statistics (RNG
    counters) stays abstract: it is listed in ``report.skipped``, with a warning.

    Parameters
    ----------
    model:
        An ``nnx.Module``, concrete or abstract (``nnx.eval_shape``).
    rules, seed, strict, prefix, verbose:
        As ``berry.torch.init_model``.
    naming:
        Module path (a tuple of names and indices) -> canonical module path
        (dotted); default :func:`berry.jax._flax_layers.default_naming`.
    mesh:
        The concrete mesh for parameters annotated on an abstract mesh
        (default: the one of ``jax.set_mesh``).

    Examples
    --------
    >>> from flax import nnx
    >>> import berry, berry.jax
    >>> model = nnx.Linear(16, 4, rngs=nnx.Rngs(0))
    >>> report = berry.jax.init_nnx(model, {"*.bias": 0.1}, seed=1, prefix="fc")
    >>> [(p.name, p.key, p.rule) for p in report]
    [('bias', 'fc.bias', '*.bias'), ('kernel', 'fc.weight', 'default Linear:weight')]
    >>> w = berry.sample((4, 16), "xavier", seed=1, name="fc.weight")     # torch's (out, in) layout
    >>> bool((model.kernel[...] == w.T).all())
    True
    """
    seed = check_seed(seed)
    found, nodes, nnx = _nnx_parameters(model, _naming(naming, prefix))
    made: dict[int, Any] = {}
    node_of = {parameter.name: node for parameter, node in found}

    def write(parameter: Parameter, spec: InitSpec) -> None:
        node = node_of[parameter.name]
        sharding = _nnx_sharding(node.get_value(), mesh)
        made[id(node)] = _make(parameter, functools.partial(parameter.values, spec, seed), sharding)

    def call(parameter: Parameter, fn: Any) -> None:
        node = node_of[parameter.name]
        made[id(node)] = _call_initializer(fn, parameter, seed, _nnx_sharding(node.get_value(), mesh))

    entries = canonical.initialize(
        [parameter for parameter, _ in found], rules, seed=seed, strict=strict, write=write, call=call,
        module_class=nnx.Module, framework="flax.nnx",
    )
    for _, node in found:  # written at the end: a failing rule leaves the model untouched
        if id(node) in made:
            node.set_value(made[id(node)])
    reset, others, abstract = _nnx_state(nodes, nnx)
    if abstract:
        warnings.warn(
            "the model is abstract and berry filled its parameters and statistics only; still abstract: "
            + ", ".join(name for name, _ in abstract) + " (create them concretely, e.g. with nnx.Rngs, before use)",
            UserWarning,
            stacklevel=2,
        )
    report = InitReport(seed, tuple(entries), tuple(reset), tuple(others), tuple(abstract))
    if verbose:
        print(report.table())
    return report


def _nnx_state(nodes: dict[Path, Any], nnx: Any) -> tuple[list[str], list[str], list[tuple[str, str]]]:
    """Reset BatchNorm statistics; list other state, and state an abstract model still lacks (RNG counters)."""
    import jax
    import jax.numpy as jnp

    reset, others, abstract = [], [], []
    for path, node in nodes.items():
        if not isinstance(node, nnx.Variable) or isinstance(node, nnx.Param):
            continue
        owner = nodes.get(tuple(path[:-1]))
        value = node.get_value()
        if isinstance(node, nnx.BatchStat) and isinstance(owner, nnx.BatchNorm) and path[-1] in _BATCH_STATS:
            node.set_value(jnp.full(value.shape, _BATCH_STATS[path[-1]], dtype=value.dtype))
            reset.append(_flax_name(path))
        elif isinstance(value, jax.ShapeDtypeStruct):
            abstract.append((_flax_name(path), f"abstract {type(node).__name__}: berry makes parameters and statistics only"))
        else:
            others.append(_flax_name(path))
    return reset, others, abstract


# ----------------------------------------------------------------------------- Linen
def _linen_structure(module: Any, args: Sequence[Any], kwargs: dict[str, Any], rngs: Any, method: Any) -> tuple[Any, dict]:
    """The abstract variables of ``module.init`` and every module instance by path (no array is made)."""
    import flax.linen as nn
    import jax

    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a flax.linen.Module, got {type(module).__name__}")
    modules: dict[Path, Any] = {}

    def interceptor(next_fun: Any, call_args: Any, call_kwargs: Any, context: Any) -> Any:
        scope = context.module.scope
        if scope is not None:
            modules.setdefault(tuple(scope.path), context.module)
        return next_fun(*call_args, **call_kwargs)

    if rngs is None:
        rngs = {"params": jax.random.key(0), "dropout": jax.random.key(0)}
    init = functools.partial(module.init, method=method, **kwargs)
    with nn.intercept_methods(interceptor):
        abstract = jax.eval_shape(init, rngs, *args)
    return abstract, modules


def _leaves(tree: Any) -> list[tuple[Path, Any]]:
    import flax.linen as nn
    import jax

    flat, _ = jax.tree_util.tree_flatten_with_path(tree, is_leaf=lambda x: isinstance(x, nn.meta.AxisMetadata))
    return [(tuple(getattr(key, "key", getattr(key, "idx", key)) for key in path), leaf) for path, leaf in flat]


def _param_paths(abstract: Any) -> list[Path]:
    """The full paths (``("params", ...)``) of the parameters, in :func:`_linen_parameters`' order."""
    return [path for path, _ in _leaves(abstract) if path and path[0] == "params"]


def _linen_parameters(abstract: Any, modules: dict[Path, Any], naming: Naming) -> list[Parameter]:
    import flax.linen as nn

    leaves = {path[1:]: leaf for path, leaf in _leaves(abstract) if path and path[0] == "params"}

    def unboxed(leaf: Any) -> Any:
        return leaf.unbox() if isinstance(leaf, nn.meta.AxisMetadata) else leaf

    def shape_at(path: Path) -> tuple[int, ...] | None:
        leaf = leaves.get(tuple(path))
        return None if leaf is None else tuple(unboxed(leaf).shape)

    parameters = []
    for path, leaf in leaves.items():
        value = unboxed(leaf)
        owner = modules.get(path[:-1])
        identity = Identity.of(_flax_name(path), str(path[-1]), owner)
        pieces = tuple(flax_pieces(path, modules.get, shape_at, naming))
        parameters.append(Parameter(_flax_name(path), identity, tuple(value.shape), np.dtype(value.dtype), pieces))
    return parameters


def init_linen(
    module: Any,
    *args: Any,
    rules: RulesLike = None,
    seed: int = 0,
    strict: bool = False,
    prefix: str = "",
    naming: Naming | None = None,
    mesh: Any = None,
    variables: Any = None,
    rngs: Any = None,
    method: Any = None,
    verbose: bool = False,
    **kwargs: Any,
) -> tuple[dict[str, Any], InitReport]:
    """A Flax Linen module's variables from declarative rules, reproducibly: ``(variables, report)``.

    The module's structure comes from ``jax.eval_shape(module.init, rngs,
    *args, **kwargs)`` (no array is made); each parameter is then made by
    berry, as :func:`init_nnx` does (same rules, keys, defaults and report),
    already sharded when ``mesh`` is given (``flax.linen.get_sharding`` of
    the ``nn.with_partitioning`` annotations; boxes are kept, as Flax's
    ``init`` keeps them). BatchNorm ``batch_stats`` are mean 0, var 1.
    Parameters a rule keeps, and collections other than ``params`` and
    ``batch_stats``, come from ``variables`` if given, else from Flax's own
    ``module.init`` (run once, only then).

    Examples
    --------
    >>> import jax.numpy as jnp, flax.linen as nn
    >>> import berry, berry.jax
    >>> variables, report = berry.jax.init_linen(nn.Dense(4, name="fc"), jnp.ones((1, 16)), seed=1)
    >>> [(p.name, p.key) for p in report]
    [('bias', 'bias'), ('kernel', 'weight')]
    >>> w = berry.sample((4, 16), "xavier", seed=1, name="weight")
    >>> bool((variables["params"]["kernel"] == w.T).all())
    True
    """
    import flax.linen as nn
    import jax
    import jax.numpy as jnp

    seed = check_seed(seed)
    if variables is not None and not isinstance(variables, Mapping):
        raise TypeError(f"variables must be the module's variables (a dict of collections), got {type(variables).__name__}")
    abstract, modules = _linen_structure(module, args, kwargs, rngs, method)
    parameters = _linen_parameters(abstract, modules, _naming(naming, prefix))
    shardings = None if mesh is None else nn.get_sharding(abstract, mesh)
    sharding_of = {path: leaf for path, leaf in _leaves(shardings)} if shardings is not None else {}
    made: dict[Path, Any] = {}
    paths = {parameter.name: path for parameter, path in zip(parameters, _param_paths(abstract), strict=True)}

    def path_of(parameter: Parameter) -> Path:
        return paths[parameter.name]

    def write(parameter: Parameter, spec: InitSpec) -> None:
        path = path_of(parameter)
        made[path] = _make(parameter, functools.partial(parameter.values, spec, seed), sharding_of.get(path))

    def call(parameter: Parameter, fn: Any) -> None:
        path = path_of(parameter)
        made[path] = _call_initializer(fn, parameter, seed, sharding_of.get(path))

    entries = canonical.initialize(
        parameters, rules, seed=seed, strict=strict, write=write, call=call, module_class=nn.Module,
        framework="flax.linen",
    )
    reset: list[str] = []
    others: list[str] = []
    fallback: dict[Path, Any] = {}
    for path, leaf in _leaves(abstract):
        if path in made:
            continue
        value = leaf.unbox() if isinstance(leaf, nn.meta.AxisMetadata) else leaf
        owner = modules.get(tuple(path[1:-1]))
        if path[0] == "batch_stats" and isinstance(owner, nn.BatchNorm) and path[-1] in _BATCH_STATS:
            values = np.full(value.shape, _BATCH_STATS[path[-1]], dtype=value.dtype)
            sharding = sharding_of.get(path)
            made[path] = jnp.asarray(values) if sharding is None else jax.device_put(values, sharding)
            reset.append(_flax_name(path))
            continue
        if path[0] != "params":
            others.append(_flax_name(path))
        if not fallback:
            fallback = dict(_leaves(variables if variables is not None else _flax_init(module, args, kwargs, rngs, method, seed)))
        made[path] = _given(fallback, path, value.shape)
    result = _rebuild(abstract, made)
    report = InitReport(seed, tuple(entries), tuple(reset), tuple(others))
    if verbose:
        print(report.table())
    return result, report


def _given(variables: dict[Path, Any], path: Path, shape: tuple[int, ...]) -> Any:
    """The leaf at ``path`` of ``variables=`` (or Flax's own), which must exist and have the module's shape."""
    import flax.linen as nn

    if path not in variables:
        raise ValueError(
            f"variables has no {_flax_name(path)}: berry keeps it (a 'keep' rule, or a collection berry does not "
            "fill), so variables= must hold it; pass the module's own variables, or a rule that fills it"
        )
    leaf = variables[path]
    found = tuple(getattr(leaf.unbox() if isinstance(leaf, nn.meta.AxisMetadata) else leaf, "shape", ()))
    if found != tuple(shape):
        raise ValueError(f"variables has {_flax_name(path)} of shape {found}, but the module's is {tuple(shape)}")
    return leaf


def _flax_init(module: Any, args: Sequence[Any], kwargs: dict[str, Any], rngs: Any, method: Any, seed: int) -> Any:
    """Flax's own variables, for what berry does not fill (kept parameters, other collections)."""
    import jax

    if rngs is None:
        key = _stream_key(seed, "flax.linen.init")
        rngs = {"params": key, "dropout": key}
    return jax.jit(functools.partial(module.init, method=method, **kwargs))(rngs, *args)


def _rebuild(abstract: Any, made: dict[Path, Any]) -> dict[str, Any]:
    import flax.linen as nn
    import jax

    def replace(path: Any, leaf: Any) -> Any:
        key = tuple(getattr(part, "key", getattr(part, "idx", part)) for part in path)
        new = made[key]
        if isinstance(leaf, nn.meta.AxisMetadata):
            return leaf.replace_boxed(new.unbox() if isinstance(new, nn.meta.AxisMetadata) else new)
        return new.unbox() if isinstance(new, nn.meta.AxisMetadata) else new

    return jax.tree_util.tree_map_with_path(replace, abstract, is_leaf=lambda x: isinstance(x, nn.meta.AxisMetadata))


# ----------------------------------------------------------------------------- canonical state
def canonical_state(
    model: Any, variables: Any = None, *args: Any, naming: Naming | None = None, prefix: str = "", **kwargs: Any
) -> dict[str, np.ndarray]:
    """The model's parameters in the canonical layout, by canonical name: a torch ``state_dict`` in NumPy.

    ``model`` is an ``nnx.Module``, or a Linen module with its ``variables``
    and the inputs ``*args, **kwargs`` that ``init`` takes (for its
    structure). Attention q/k/v kernels are packed into ``in_proj_weight``,
    recurrent gates into ``weight_ih``/``weight_hh``, kernels transposed to
    ``(out, in, *k)``: ``torch_model.load_state_dict({k: torch.from_numpy(v)
    ...})`` loads them (rows no Flax tensor holds, such as a Flax LSTM cell's
    ``bias_ih``, are zeros).

    Examples
    --------
    >>> from flax import nnx
    >>> import berry.jax
    >>> state = berry.jax.canonical_state(nnx.Linear(3, 2, rngs=nnx.Rngs(0)), prefix="fc")
    >>> sorted((name, value.shape) for name, value in state.items())
    [('fc.bias', (2,)), ('fc.weight', (2, 3))]
    """
    import flax.linen as nn
    from flax import nnx

    name = _naming(naming, prefix)
    if isinstance(model, nnx.Module):
        found, _, _ = _nnx_parameters(model, name)
        return canonical.canonical_state([(p.pieces, np.asarray(node.get_value())) for p, node in found])
    if isinstance(model, nn.Module):
        if variables is None:
            raise TypeError("canonical_state(linen_module, variables, *inputs) needs the module's variables")
        abstract, modules = _linen_structure(model, args, kwargs, None, None)
        values = dict(_leaves(variables))
        entries = []
        for parameter, path in zip(_linen_parameters(abstract, modules, name), _param_paths(abstract), strict=True):
            value = values[path]
            entries.append((parameter.pieces, np.asarray(value.unbox() if isinstance(value, nn.meta.AxisMetadata) else value)))
        return canonical.canonical_state(entries)
    raise TypeError(f"model must be a flax.nnx.Module or a flax.linen.Module, got {type(model).__name__}")
