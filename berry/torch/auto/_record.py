"""Record the computation a model actually executes: one node per torch call that makes a tensor.

:func:`record` runs ``model(*args)`` once under a ``TorchFunctionMode`` and
global module hooks. Every torch function, method or operator call that
returns tensors becomes a :class:`Node` whose inputs are the nodes of its
tensor arguments, so the graph says which parameter feeds which op, what
follows it, where two paths meet (a residual addition) and which modules were
active. Calls are seen at the level users write them (``F.linear``,
``F.gelu``, ``x * torch.sigmoid(1.702 * x)``, ``F.scaled_dot_product_attention``),
not as the aten kernels they lower to, so an inline activation is recorded
as the elementwise ops it is made of.

By default nothing is computed: parameters, buffers and inputs are replaced
by ``meta`` tensors of the same shape and dtype for the duration of the call
(ties preserved: a tensor used at two places gets one meta twin), so
recording a 1B-parameter model costs no memory and a few milliseconds per
op. A forward whose Python control flow depends on values cannot run on
meta tensors; :func:`record` then says so, and the caller may record on
the real tensors instead (``on_meta=False``), where the graph is the path
the example inputs actually took.

Recurrent modules (``nn.LSTM``, ``nn.GRU``, ``nn.RNN``) run their gates in
one fused kernel; they are recorded as one node with the module attached.
FSDP2 modules' own hooks (which would all-gather shards) are switched off
while recording on meta tensors.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

__all__ = ["DataDependentError", "Graph", "Node", "Ref", "record"]

#: Wrapper modules that add a segment to parameter names without changing the model (as init_model drops them).
WRAPPER_SEGMENTS = frozenset({"_orig_mod", "_fsdp_wrapped_module", "_checkpoint_wrapped_module"})

#: Modules recorded as one node (their gates run in one fused kernel).
ATOMIC_MODULES: tuple[type[nn.Module], ...] = (nn.RNNBase,)

#: Largest constant tensor whose values are kept (masks, arange, small tables).
_MAX_KEPT_VALUES = 1 << 22

_DUNDER = {
    "__add__": "add", "__radd__": "add", "__iadd__": "add_",
    "__sub__": "sub", "__isub__": "sub_", "__rsub__": "rsub",
    "__mul__": "mul", "__rmul__": "mul", "__imul__": "mul_",
    "__truediv__": "div", "__div__": "div", "__itruediv__": "div_", "__idiv__": "div_",
    "__rtruediv__": "rdiv", "__rdiv__": "rdiv",
    "__floordiv__": "floor_divide", "__rfloordiv__": "rfloor_divide",
    "__pow__": "pow", "__ipow__": "pow_", "__rpow__": "rpow",
    "__neg__": "neg", "__abs__": "abs", "__pos__": "positive",
    "__matmul__": "matmul", "__rmatmul__": "rmatmul",
    "__getitem__": "getitem", "__setitem__": "setitem",
    "__and__": "logical_and", "__or__": "logical_or", "__xor__": "logical_xor", "__invert__": "logical_not",
    "__eq__": "eq", "__ne__": "ne", "__lt__": "lt", "__le__": "le", "__gt__": "gt", "__ge__": "ge",
    "__mod__": "remainder",
}


#: Ops whose meta output :meth:`_Recorder.fast_meta` makes itself (their meta kernels are slow Python).
_FAST_META = frozenset({"layer_norm", "rms_norm", "group_norm", "gelu", "silu", "relu", "tanh", "sigmoid", "linear",
                        "scaled_dot_product_attention"})

#: Conversions that may return their input unchanged (depending on dtype, device or memory layout).
_NO_OP_IF_SAME = frozenset({"float", "double", "half", "bfloat16", "type_as", "to", "contiguous", "detach",
                            "requires_grad_", "cpu", "cuda", "type", "attr_data"})


class DataDependentError(RuntimeError):
    """The forward needs tensor values (Python control flow on data) and cannot run on meta tensors."""


@dataclasses.dataclass(frozen=True)
class Ref:
    """Stands for the tensor of node ``index`` inside a recorded call's arguments."""

    index: int


@dataclasses.dataclass(eq=False)
class Node:
    """One recorded tensor: a graph input, a parameter, a buffer, a constant or the result of a call."""

    index: int
    kind: str  #: "input", "param", "buffer", "const", "op", "part" (item of a tuple result), "module"
    op: str  #: canonical op name ("linear", "add", "gelu", ... ; "input", "param", ...)
    inputs: tuple[int, ...]  #: nodes of the tensor arguments, in order
    shape: tuple[int, ...]
    dtype: torch.dtype
    module: str  #: qualified name of the innermost module running when the call was made ("" = the model)
    args: tuple[Any, ...] = ()  #: the call's arguments, tensors replaced by :class:`Ref`
    kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    func: Callable[..., Any] | None = None
    name: str | None = None  #: parameter/buffer/input name
    value: torch.Tensor | None = None  #: values of a real constant (masks, positions), when small
    part: int | None = None  #: for kind "part": which item of the tuple result
    inplace: bool = False
    nested: Any = None  #: for kind "module": the module object (an nn.LSTM ...)

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    def describe(self) -> str:
        where = f" in {self.module}" if self.module else ""
        return f"#{self.index} {self.op}{list(self.shape)}{where}"


@dataclasses.dataclass
class ModuleCall:
    """One call of a module: its qualified name, class, and the nodes it consumed and produced."""

    name: str
    module: nn.Module
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    first: int  #: first node index created during the call
    stop: int  #: one past the last node index created during the call
    training: bool


@dataclasses.dataclass
class Graph:
    """The recorded computation: nodes in execution order, named parameters, outputs and module calls."""

    nodes: list[Node]
    parameters: dict[str, int]  #: canonical parameter name -> its node (only parameters the forward used)
    parameter_objects: dict[str, nn.Parameter]  #: canonical name -> the model's parameter (all of them)
    aliases: dict[str, list[str]]  #: canonical name -> other names of the same tensor (tied weights)
    outputs: list[int]
    calls: list[ModuleCall]
    on_meta: bool
    training: bool
    input_nodes: list[int] = dataclasses.field(default_factory=list)
    captured: dict[int, torch.Tensor] = dataclasses.field(default_factory=dict)  #: outputs, when recorded with grad

    def users(self) -> list[list[int]]:
        """For each node, the nodes that take it as an input."""
        out: list[list[int]] = [[] for _ in self.nodes]
        for node in self.nodes:
            for i in node.inputs:
                out[i].append(node.index)
        return out


def canonical_name(parts: Sequence[str]) -> str:
    """A parameter's name as :func:`berry.torch.init_model` keys it (wrapper segments dropped)."""
    return ".".join(part for part in parts if part and part not in WRAPPER_SEGMENTS)


def unwrap(model: nn.Module) -> nn.Module:
    """The module under DataParallel / DistributedDataParallel / torch.compile wrappers."""
    parallel = getattr(nn.parallel, "DistributedDataParallel", None)
    while True:
        if (parallel is not None and isinstance(model, parallel)) or isinstance(model, nn.DataParallel):
            model = model.module
        elif type(model).__name__ == "OptimizedModule" and isinstance(getattr(model, "_orig_mod", None), nn.Module):
            model = model._orig_mod  # type: ignore[assignment]
        else:
            return model


def named_parameters(model: nn.Module) -> Iterator[tuple[str, str, nn.Module, nn.Parameter, list[str]]]:
    """(canonical name, local name, owning module, parameter, other names) for each distinct parameter."""
    first: dict[int, tuple[str, str, nn.Module, nn.Parameter, list[str]]] = {}
    for module_name, module in model.named_modules(remove_duplicate=False):
        for local, parameter in module._parameters.items():
            if parameter is None:
                continue
            name = canonical_name([*module_name.split("."), local])
            entry = first.get(id(parameter))
            if entry is None:
                first[id(parameter)] = (name, local, module, parameter, [])
            elif name != entry[0] and name not in entry[4]:
                entry[4].append(name)
    yield from first.values()


def operation_name(func: Callable[..., Any]) -> str:
    """The canonical name of a recorded callable: ``F.linear`` -> "linear", ``Tensor.__radd__`` -> "add"."""
    name = getattr(func, "__name__", None) or type(func).__name__
    if name == "__get__":  # a Tensor attribute such as .T, .mT, .data
        owner = getattr(func, "__self__", None)
        return "attr_" + str(getattr(owner, "__name__", "?"))
    return _DUNDER.get(name, name)


def _is_tensor(value: Any) -> bool:
    return isinstance(value, torch.Tensor)


def _flatten_tensors(value: Any) -> list[torch.Tensor]:
    """Every tensor inside nested lists, tuples, dicts and dataclasses, in order."""
    found: list[torch.Tensor] = []

    def walk(item: Any) -> None:
        if _is_tensor(item):
            found.append(item)
        elif isinstance(item, Mapping):
            for sub in item.values():
                walk(sub)
        elif isinstance(item, (list, tuple)):
            for sub in item:
                walk(sub)
        elif dataclasses.is_dataclass(item) and not isinstance(item, type):
            for field in dataclasses.fields(item):
                walk(getattr(item, field.name))

    walk(value)
    return found


class _Recorder(TorchFunctionMode):
    """The TorchFunctionMode and module hooks that build a :class:`Graph`."""

    def __init__(self, module_names: Mapping[int, str], named_twins: Mapping[int, tuple[str, str]],
                 observe: Callable[[int, torch.Tensor], None] | None = None) -> None:
        super().__init__()
        self.observe = observe
        self.on_meta = False
        self.originals: dict[int, torch.Tensor] = {}  # meta twin id -> the model's tensor
        self.nodes: list[Node] = []
        self.by_id: dict[int, int] = {}
        self.alive: list[Any] = []  # keeps recorded tensors alive so that their ids stay unique
        self.module_names = module_names
        self.named_twins = named_twins  # id(tensor) -> ("param" | "buffer", canonical name)
        self.parameters: dict[str, int] = {}
        self.stack: list[tuple[nn.Module, str, int, tuple[int, ...]]] = []
        self.calls: list[ModuleCall] = []
        self.atomic_depth = 0
        self.busy = False  # inside a hook: calls made by the recorder itself are not recorded

    # ----------------------------------------------------------------- nodes
    @property
    def current_module(self) -> str:
        return self.stack[-1][1] if self.stack else ""

    def add(self, tensor: torch.Tensor | None, **fields: Any) -> int:
        index = len(self.nodes)
        shape = tuple(tensor.shape) if tensor is not None else ()
        dtype = tensor.dtype if tensor is not None else torch.float32
        fields.setdefault("module", self.current_module)
        node = Node(index=index, shape=shape, dtype=dtype, **fields)
        self.nodes.append(node)
        if tensor is not None:
            self.by_id[id(tensor)] = index
            self.alive.append(tensor)
            if self.observe is not None:
                self.observe(index, tensor)
        return index

    def node_of(self, tensor: torch.Tensor) -> int:
        """The node of a tensor argument, creating parameter/buffer/constant nodes on first sight."""
        index = self.by_id.get(id(tensor))
        if index is not None:
            return index
        named = self.named_twins.get(id(tensor))
        if named is not None:
            kind, name = named
            original = self.originals.get(id(tensor), tensor)
            value = None
            if kind == "buffer" and not original.is_meta and original.numel() <= _MAX_KEPT_VALUES:
                from berry.torch._tensors import is_dtensor

                value = None if is_dtensor(original) else original.detach()
            index = self.add(tensor, kind=kind, op=kind, inputs=(), name=name, module="", value=value)
            if kind == "param":
                self.parameters[name] = index
            return index
        value = None
        if not tensor.is_meta and tensor.numel() <= _MAX_KEPT_VALUES:
            value = tensor.detach()
        return self.add(tensor, kind="const", op="const", inputs=(), value=value)

    def encode(self, value: Any) -> Any:
        """Arguments with every tensor replaced by a :class:`Ref` to its node."""
        if _is_tensor(value):
            return Ref(self.node_of(value))
        if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
            return type(value)(self.encode(v) for v in value)
        if isinstance(value, Mapping):
            return {k: self.encode(v) for k, v in value.items()}
        return value

    # ----------------------------------------------------------------- the mode
    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if self.atomic_depth or self.busy:
            return func(*args, **kwargs)
        try:
            result = self.fast_meta(func, args, kwargs)
            if result is None:
                result = func(*args, **kwargs)
        except RuntimeError as error:
            if "meta" in str(error) and ("item()" in str(error) or "data-dependent" in str(error)
                                         or "_local_scalar_dense" in str(error)):
                raise DataDependentError(str(error)) from error
            raise
        op = operation_name(func)
        outputs = _flatten_tensors(result) if not _is_tensor(result) else [result]
        if op == "setitem":  # x[idx] = v changes x in place; the call returns None
            outputs = [args[0]] if args and _is_tensor(args[0]) else []
        if not outputs:
            return result
        encoded_args = self.encode(tuple(args))
        encoded_kwargs = self.encode(dict(kwargs))
        inputs = tuple(dict.fromkeys(r.index for r in _refs(encoded_args) + _refs(encoded_kwargs)))
        if _is_tensor(result) or op == "setitem":
            tensor = outputs[0]
            same = bool(args) and _is_tensor(args[0]) and tensor is args[0]
            if same and op in _NO_OP_IF_SAME:  # a conversion that returned its input: still a node, so that
                same = False  # meta and real recordings (whose layouts differ) give the same graph
            kept = tensor.detach() if (not inputs or _all_const(self, inputs)) and not tensor.is_meta \
                and tensor.numel() <= _MAX_KEPT_VALUES else None
            self.add(tensor, kind="op", op=op.rstrip("_") if same and not op.startswith("__") else op,
                     inputs=inputs, args=encoded_args, kwargs=encoded_kwargs, func=func, inplace=same,
                     value=kept)
            return result
        parent = self.add(None, kind="op", op=op, inputs=inputs, args=encoded_args, kwargs=encoded_kwargs,
                          func=func)
        self.nodes[parent].shape = (len(outputs),)
        for position, tensor in enumerate(outputs):
            if id(tensor) in self.by_id and self.by_id[id(tensor)] in inputs:
                continue  # an op returning one of its inputs (max with indices returns a fresh pair; rare)
            self.add(tensor, kind="part", op="part", inputs=(parent,), part=position)
        return result

    def fast_meta(self, func: Any, args: Any, kwargs: Mapping[str, Any]) -> torch.Tensor | None:
        """The output of a common op on meta tensors without running torch's meta kernel.

        Several meta kernels are Python decompositions costing milliseconds per
        call (layer_norm, scaled_dot_product_attention, linear through addmm);
        their output's shape, dtype and layout are known, so a fresh meta tensor
        stands in. ``None``: run the op itself.
        """
        if not self.on_meta:
            return None
        name = getattr(func, "__name__", None)
        if name not in _FAST_META or not args or not _is_tensor(args[0]) or not args[0].is_meta:
            return None
        x = args[0]
        if name in ("layer_norm", "rms_norm", "group_norm"):
            return torch.empty(tuple(x.shape), dtype=x.dtype, device="meta")
        if name in ("gelu", "silu", "relu", "tanh", "sigmoid"):
            return None if kwargs.get("inplace") else torch.empty_like(x)
        if name == "linear":
            weight = args[1] if len(args) > 1 else kwargs.get("weight")
            if not isinstance(weight, torch.Tensor) or weight.dim() != 2 or x.dim() < 1 or \
                    x.shape[-1] != weight.shape[1]:
                return None
            return torch.empty((*x.shape[:-1], weight.shape[0]), dtype=x.dtype, device="meta")
        if name == "scaled_dot_product_attention":
            value = args[2] if len(args) > 2 else kwargs.get("value")
            if not isinstance(value, torch.Tensor) or x.dim() < 2 or value.dim() < 2:
                return None
            return torch.empty((*x.shape[:-1], value.shape[-1]), dtype=x.dtype, device="meta")
        return None

    # ----------------------------------------------------------------- module hooks
    def pre_hook(self, module: nn.Module, args: Any, kwargs: Any) -> None:
        self.busy = True
        try:
            self._enter(module, args, kwargs)
        finally:
            self.busy = False

    def post_hook(self, module: nn.Module, args: Any, kwargs: Any, output: Any) -> None:
        self.busy = True
        try:
            self._leave(module, output)
        finally:
            self.busy = False

    def _enter(self, module: nn.Module, args: Any, kwargs: Any) -> None:
        name = self.module_names.get(id(module), type(module).__name__)
        if self.atomic_depth:
            self.atomic_depth += 1
            return
        tensors = _flatten_tensors((args, kwargs))
        inputs = tuple(self.node_of(t) for t in tensors)
        self.stack.append((module, name, len(self.nodes), inputs))
        if isinstance(module, ATOMIC_MODULES):
            self.atomic_depth = 1

    def _leave(self, module: nn.Module, output: Any) -> None:
        if self.atomic_depth > 1:
            self.atomic_depth -= 1
            return
        if not self.stack or self.stack[-1][0] is not module:
            return  # a hook pair broken by an exception inside the module
        _, name, first, inputs = self.stack.pop()
        outputs = _flatten_tensors(output)
        if self.atomic_depth == 1:
            self.atomic_depth = 0
            own = tuple(self.node_of(p) for p in module.parameters() if id(p) in self.named_twins)
            parent = self.add(None, kind="module", op=f"module:{type(module).__name__}", inputs=inputs + own,
                              nested=module, module=name)
            self.nodes[parent].shape = (len(outputs),)
            for position, tensor in enumerate(outputs):
                self.add(tensor, kind="part", op="part", inputs=(parent,), part=position, module=name)
        out_nodes = tuple(self.by_id[id(t)] for t in outputs if id(t) in self.by_id)
        self.calls.append(ModuleCall(name, module, inputs, out_nodes, first, len(self.nodes), module.training))


def _refs(value: Any) -> list[Ref]:
    if isinstance(value, Ref):
        return [value]
    if isinstance(value, (list, tuple)):
        return [r for v in value for r in _refs(v)]
    if isinstance(value, Mapping):
        return [r for v in value.values() for r in _refs(v)]
    return []


def _all_const(recorder: _Recorder, inputs: Sequence[int]) -> bool:
    return all(recorder.nodes[i].kind == "const" or (recorder.nodes[i].kind == "op"
                                                      and recorder.nodes[i].value is not None) for i in inputs)


def _meta_twin(tensor: torch.Tensor, parameter: bool) -> torch.Tensor:
    twin = torch.empty(tuple(tensor.shape), dtype=tensor.dtype, device="meta")
    if parameter:
        return nn.Parameter(twin, requires_grad=tensor.requires_grad)
    return twin


def _is_fsdp(module: nn.Module) -> bool:
    return any(cls.__name__ == "FSDPModule" for cls in type(module).__mro__)


_HOOK_DICTS = ("_forward_pre_hooks", "_forward_hooks", "_forward_pre_hooks_with_kwargs", "_forward_hooks_with_kwargs",
               "_forward_hooks_always_called")


@contextlib.contextmanager
def kept_buffers(model: nn.Module) -> Iterator[None]:
    """Run a forward on the model's own tensors and put its buffers back after.

    A forward in training mode updates BatchNorm's running statistics (and
    ``num_batches_tracked``): recording or measuring on values must leave the
    model as :func:`berry.torch.init_model` leaves it, or ``report.rules``
    would not reproduce it bit for bit.
    """
    kept = [(buffer, buffer.detach().clone()) for buffer in unwrap(model).buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for buffer, values in kept:
                buffer.copy_(values)


def record(model: nn.Module, args: Sequence[Any], kwargs: Mapping[str, Any] | None = None, *,
           on_meta: bool = True, observe: Callable[[int, torch.Tensor], None] | None = None,
           grad: bool = False) -> Graph:
    """Run ``model(*args, **kwargs)`` once and return the :class:`Graph` of what it executed.

    With ``on_meta`` (the default), parameters, buffers and tensor arguments
    are swapped for meta twins for the duration of the call (the model's own
    tensors are untouched, restored after, and never read), so no memory is
    used and nothing is computed; a forward that needs values raises
    :class:`DataDependentError`. With ``on_meta=False`` the model runs on
    its own tensors (under ``torch.no_grad``, or with autograd on if
    ``grad``); ``observe(index, tensor)`` is then called for every node as
    it is recorded (for measurements; it may raise to stop the forward).
    """
    kwargs = dict(kwargs or {})
    model = unwrap(model)
    module_names: dict[int, str] = {}
    for module_name, module in model.named_modules(remove_duplicate=False):
        module_names.setdefault(id(module), canonical_name(module_name.split(".")))
    parameter_objects: dict[str, nn.Parameter] = {}
    aliases: dict[str, list[str]] = {}
    names_by_id: dict[int, str] = {}
    for name, _local, _module, parameter, others in named_parameters(model):
        parameter_objects[name] = parameter
        names_by_id[id(parameter)] = name
        if others:
            aliases[name] = others

    swapped: list[tuple[dict[str, Any], str, Any]] = []  # (container, key, original)
    twins: dict[int, torch.Tensor] = {}
    named_twins: dict[int, tuple[str, str]] = {}
    if on_meta:
        for module_name, module in model.named_modules(remove_duplicate=False):
            for store, is_parameter in ((module._parameters, True), (module._buffers, False)):
                for key, tensor in list(store.items()):
                    if tensor is None:
                        continue
                    twin = twins.get(id(tensor))
                    if twin is None:
                        twin = _meta_twin(tensor, is_parameter)
                        twins[id(tensor)] = twin
                        if is_parameter:
                            named_twins[id(twin)] = ("param", names_by_id[id(tensor)])
                        else:
                            named_twins[id(twin)] = ("buffer", canonical_name([*module_name.split("."), key]))
                    swapped.append((store, key, tensor))
                    store[key] = twin
            if _is_fsdp(module):  # FSDP2's hooks would all-gather shards: the twins already have the full shape
                for attribute in _HOOK_DICTS:
                    hooks = getattr(module, attribute, None)
                    if hooks:
                        swapped.append((module.__dict__, attribute, hooks))
                        module.__dict__[attribute] = type(hooks)()
    else:
        for name, parameter in parameter_objects.items():
            named_twins[id(parameter)] = ("param", name)
        for module_name, module in model.named_modules():
            for key, tensor in module._buffers.items():
                if tensor is not None:
                    named_twins[id(tensor)] = ("buffer", canonical_name([*module_name.split("."), key]))

    recorder = _Recorder(module_names, named_twins, observe)
    recorder.on_meta = on_meta
    recorder.originals = {id(twin): original for original, twin in ((o, twins[id(o)]) for _, _, o in swapped
                                                                    if id(o) in twins)}
    input_nodes: list[int] = []

    def prepare(value: Any, label: str) -> Any:
        if _is_tensor(value):
            tensor = torch.empty(tuple(value.shape), dtype=value.dtype, device="meta") if on_meta else value
            input_nodes.append(recorder.add(tensor, kind="input", op="input", inputs=(), name=label, module=""))
            return tensor
        if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
            return type(value)(prepare(v, f"{label}[{i}]") for i, v in enumerate(value))
        if isinstance(value, Mapping):
            return {k: prepare(v, f"{label}[{k!r}]") for k, v in value.items()}
        return value

    call_args = [prepare(a, f"args[{i}]") for i, a in enumerate(args)]
    call_kwargs = {k: prepare(v, k) for k, v in kwargs.items()}
    pre = nn.modules.module.register_module_forward_pre_hook
    post = nn.modules.module.register_module_forward_hook
    # Global hooks see every module call (tensors passed to a module by keyword are not among its inputs).
    handles = [
        pre(lambda module, a: recorder.pre_hook(module, a, {})),
        post(lambda module, a, output: recorder.post_hook(module, a, {}, output)),
    ]
    try:
        with torch.set_grad_enabled(grad and not on_meta), recorder:
            output = model(*call_args, **call_kwargs)
        outputs = [recorder.by_id[id(t)] for t in _flatten_tensors(output) if id(t) in recorder.by_id]
        captured = {recorder.by_id[id(t)]: t for t in _flatten_tensors(output) if id(t) in recorder.by_id} \
            if grad else {}
    finally:
        for handle in handles:
            handle.remove()
        for container, key, original in reversed(swapped):
            container[key] = original
    return Graph(
        nodes=recorder.nodes,
        parameters=recorder.parameters,
        parameter_objects=parameter_objects,
        aliases=aliases,
        outputs=outputs,
        calls=recorder.calls,
        on_meta=on_meta,
        training=model.training,
        input_nodes=input_nodes,
        captured=captured,
    )
