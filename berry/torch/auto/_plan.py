"""From a model and example inputs to an :class:`AutoInitReport`: record, analyze, propagate, decide."""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from berry.torch.auto import _inputs
from berry.torch.auto._backward import backward
from berry.torch.auto._policy import Decision, Options, Policy
from berry.torch.auto._propagate import Forward, Stat
from berry.torch.auto._record import DataDependentError, Graph, kept_buffers, record, unwrap
from berry.torch.auto._report import AutoInitReport, BlockSummary, ParameterPlan
from berry.torch.auto._structure import Structure, analyze

__all__ = ["build_plan", "exact_pattern"]

_MAX_PASSES = 8
#: Tied scales are iterated until they move by less than this (relative): far below any effect on a model.
_PIN_TOLERANCE = 1e-4


def exact_pattern(name: str) -> str:
    """An fnmatch pattern that matches exactly ``name`` (``[`` ``]`` ``*`` ``?`` escaped)."""
    return "".join(f"[{c}]" if c in "*?[]" else c for c in name)


def _has_meta_or_sharded(model: nn.Module) -> bool:
    from berry.torch._tensors import is_dtensor

    return any(p.is_meta or is_dtensor(p) for p in model.parameters())


def record_model(model: nn.Module, args: Sequence[Any], kwargs: Mapping[str, Any], seed: int,
                 on_meta: bool | None) -> tuple[Graph, list[str]]:
    """Record on meta tensors; on values only when the forward needs them (data-dependent control flow)."""
    notes: list[str] = []
    floating = next((p.dtype for p in model.parameters() if p.dtype.is_floating_point), torch.float32)
    if floating != torch.float32:  # a float spec takes the model's precision (a bfloat16 model reads bfloat16)
        args = [dataclasses.replace(a, dtype=floating) if isinstance(a, _inputs.InputSpec)
                and a.dtype == torch.float32 else a for a in args]
    recordable_args = [_inputs.as_recordable(a) for a in args]
    recordable_kwargs = {k: _inputs.as_recordable(v) for k, v in kwargs.items()}
    if on_meta is not False:
        try:
            return record(model, recordable_args, recordable_kwargs, on_meta=True), notes
        except DataDependentError as error:
            if on_meta is True or _has_meta_or_sharded(model):
                raise DataDependentError(
                    f"the forward of {type(model).__name__} needs tensor values ({error}); it cannot be recorded "
                    "on meta tensors. Plan on a materialized, unsharded copy (auto_plan(copy, inputs), then "
                    "report.apply(model)), or pass real example inputs to a materialized model") from None
            notes.append(f"the forward depends on values (Python control flow on data: {str(error)[:80]}); "
                         "recorded on the real tensors: the graph is the path the example inputs took")
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    high = _inputs.vocabulary(model)
    real_args = [_inputs.materialize(a, device=device, seed=seed + i, high=high) for i, a in enumerate(args)]
    real_kwargs = {k: _inputs.materialize(v, device=device, seed=seed, high=high) for k, v in kwargs.items()}
    with kept_buffers(model):
        return record(model, real_args, real_kwargs, on_meta=False), notes


def _input_stats(graph: Graph, args: Sequence[Any], kwargs: Mapping[str, Any]) -> tuple[dict[int, Stat], str]:
    from berry.torch.auto import _axes

    flat: list[Any] = []

    def walk(value: Any) -> None:
        if isinstance(value, (torch.Tensor, _inputs.InputSpec)):
            flat.append(value)
        elif isinstance(value, (list, tuple)):
            for v in value:
                walk(v)
        elif isinstance(value, Mapping):
            for v in value.values():
                walk(v)

    for a in args:
        walk(a)
    for v in kwargs.values():
        walk(v)
    stats: dict[int, Stat] = {}
    descriptions = []
    for index, value in zip(graph.input_nodes, flat, strict=False):
        kind, q, m, description = _inputs.statistics_of(value)
        node = graph.nodes[index]
        axes = _axes.for_input(node.shape, kind == "data")
        if kind == "data":
            stats[index] = Stat("data", q=q, m=m, s=m * m, gauss=True, axes=axes)
        else:
            stats[index] = Stat("index", axes=axes)
        descriptions.append(description)
    return stats, "; ".join(descriptions)


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """One intra-op thread while planning: the quadratures replay ops on small arrays, where torch's thread
    pool only adds latency (tens of milliseconds per op on a loaded machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def build_plan(model: nn.Module, args: Sequence[Any], kwargs: Mapping[str, Any] | None, options: Options, *,
               seed: int, on_meta: bool | None = None) -> AutoInitReport:
    """The plan (not applied): rules, per-parameter rows, blocks and notes."""
    with single_thread():
        return _build_plan(model, args, kwargs, options, seed=seed, on_meta=on_meta)


def _build_plan(model: nn.Module, args: Sequence[Any], kwargs: Mapping[str, Any] | None, options: Options, *,
                seed: int, on_meta: bool | None = None) -> AutoInitReport:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    kwargs = dict(kwargs or {})
    model = unwrap(model)
    args = _inputs.normalize_inputs(args)
    notes: list[str] = []
    input_note = ""
    if not args and not kwargs:
        args, input_note = _inputs.infer_inputs(model)
        notes.append(input_note)
    graph, record_notes = record_model(model, args, kwargs, seed, on_meta)
    notes += record_notes
    structure = analyze(graph)
    input_stats, described = _input_stats(graph, args, kwargs)
    policy = Policy(structure, options, input_stats)
    forward = _converge(structure, policy)
    r = backward(forward)
    decisions = _finalize(structure, policy, forward)
    rows = _rows(structure, policy, forward, r, decisions)
    rules = {exact_pattern(name): decision.init for name, decision in decisions.items()}
    notes += _collect_notes(forward)
    report = AutoInitReport(
        seed=seed,
        rules=rules,
        parameters=tuple(rows),
        blocks=tuple(_blocks(structure, forward, r)),
        stacks=tuple(_stack_rows(policy)),
        streams=tuple(_stream_rows(structure, forward)),
        not_understood=tuple(_unknown_rows(structure)),
        roles=_roles(structure, policy),
        notes=tuple(dict.fromkeys(notes)),
        inputs=(input_note + "; " if input_note and described else "") + described if described else input_note,
        recorded_on="meta" if graph.on_meta else "real",
        options={k: getattr(options, k) for k in options.__dataclass_fields__},
        structure=(structure, forward, r),
    )
    return report


def _converge(structure: Structure, policy: Policy) -> Forward:
    """Forward passes until the scales of tied parameters (set by their head role) are consistent."""
    forward = Forward(structure, policy)
    for _ in range(_MAX_PASSES):
        policy.start_pass()
        forward = Forward(structure, policy)
        forward.run()
        new = policy.next_pins
        if all(name in policy.pins and math.isclose(policy.pins[name], value, rel_tol=_PIN_TOLERANCE)
               for name, value in new.items()):
            break
        policy.pins = dict(new)
    return forward


def _finalize(structure: Structure, policy: Policy, forward: Forward) -> dict[str, Decision]:
    """A decision for every parameter: chosen, kept (used by an op berry does not model) or a default (unused)."""
    decisions: dict[str, Decision] = {}
    graph = structure.graph
    for name, parameter in graph.parameter_objects.items():
        decision = policy.decisions.get(name)
        if decision is None:
            uses = structure.param_uses.get(name, [])
            if name in graph.parameters:
                ops = sorted({graph.nodes[node].op for _, node in uses}) or ["an op"]
                decision = Decision(name, "keep", None, "kept",
                                    f"used by {', '.join(ops)}, which berry does not model: left as the model made it")
            else:
                shape = tuple(parameter.shape)
                if len(shape) >= 2:
                    init: Any = "xavier"
                elif name.rsplit(".", 1)[-1].startswith("bias"):
                    init = "zeros"
                else:
                    init = "ones"
                decision = Decision(name, init, None, "unused",
                                    f"not used by the recorded forward: {init} (berry's default)")
        decisions[name] = decision
    return decisions


def _feeds(structure: Structure, forward: Forward, node: int) -> str | None:
    """The elementwise function that reads an op's output, by name."""
    from berry.torch.auto._structure import _skip_shape

    for user in structure.users[node]:
        current = user
        while structure.categories[current] in ("alias", "shape", "dropout") and structure.users[current]:
            current = structure.users[current][0]
        if structure.categories[current] == "elementwise":
            leaf = structure.leaf.get(current, current)
            top = current
            while True:
                nxt = [u for u in structure.users[top] if structure.leaf.get(u) == leaf and u != top]
                if not nxt:
                    break
                top = nxt[0]
            stat = forward.stats[top]
            if stat is not None and stat.chain is not None and _skip_shape(structure, leaf) == node:
                return stat.chain[0].description
        if structure.categories[current] == "norm":
            return forward.graph.nodes[current].op
        if structure.categories[current] == "softmax" or structure.categories[current] == "attention":
            return "attention"
    return None


def _residual_text(structure: Structure, node: int) -> str | None:
    knob = structure.knob_of.get(node)
    if knob is None:
        return None
    how, add_index = knob
    add = structure.residual[add_index]
    if how == "branch" and add.stream is not None:
        stream = structure.streams[add.stream]
        if stream.chain > len(stream.adds):
            return f"branch of a {stream.chain}-addition post-norm chain"
        return f"branch {add.position}/{len(stream.adds)} of stream {add.stream}"
    if how == "shortcut":
        return f"shortcut of stream {add.stream}"
    return "summed"


def _rows(structure: Structure, policy: Policy, forward: Forward, r: list[float],
          decisions: dict[str, Decision]) -> list[ParameterPlan]:
    graph = structure.graph
    rows = []
    for name, _local, _module, parameter, others in named_parameters_of(graph):
        decision = decisions[name]
        node = _output_node(structure, decision.node)
        stat = forward.stats[node] if node is not None else None
        op = None
        predicted = predicted_grad = None
        if node is not None:
            op_node = graph.nodes[node]
            op = f"{op_node.op} in {op_node.module}" if op_node.module else op_node.op
            if stat is not None and stat.kind == "data" and decision.role in ("weight", "embedding", "recurrent input",
                                                                              "norm weight", "data"):
                predicted = math.sqrt(max(stat.q - stat.m * stat.m, 0.0))
                predicted_grad = math.sqrt(r[node]) if r[node] > 0 else None
        target = decision.target
        if decision.reason.startswith(("tied", "shared")) and predicted is not None:
            target = predicted**2  # fixed by another use: the plan expects what it predicts here
        rows.append(ParameterPlan(
            name=name, shape=tuple(parameter.shape), init=decision.init, role=decision.role, reason=decision.reason,
            op=op, fan_in=decision.fan_in,
            feeds=_feeds(structure, forward, node) if node is not None and decision.role == "weight" else None,
            residual=_residual_text(structure, node) if node is not None and decision.role in (
                "weight", "norm weight") else None,
            tie=", ".join(others) if others else None,
            target_std=math.sqrt(target) if target is not None and decision.role in ("weight", "embedding") else None,
            predicted_std=predicted, predicted_grad=predicted_grad, node=node,
        ))
    return rows


def _output_node(structure: Structure, node: int | None) -> int | None:
    """The node holding an op's (first) output: the op itself, or item 0 of a tuple result."""
    if node is None or structure.graph.nodes[node].kind not in ("op", "module") or \
            structure.categories[node] not in ("attention", "module"):
        return node
    for user in structure.users[node]:
        if structure.graph.nodes[user].kind == "part" and structure.graph.nodes[user].part == 0:
            return user
    return node


def named_parameters_of(graph: Graph) -> list[tuple[str, str, Any, Any, list[str]]]:
    return [(name, name.rsplit(".", 1)[-1], None, p, graph.aliases.get(name, []))
            for name, p in graph.parameter_objects.items()]


def _blocks(structure: Structure, forward: Forward, r: list[float]) -> list[BlockSummary]:
    """Repeated modules (siblings of one class): second moment in and out, and chi = r_in / r_out."""
    graph = structure.graph
    by_parent: dict[tuple[str, str], list[Any]] = {}
    for call in graph.calls:
        if not call.name or ("." not in call.name and not call.name.isdigit()):
            parent = ""
        else:
            parent = call.name.rsplit(".", 1)[0] if "." in call.name else ""
        by_parent.setdefault((parent, type(call.module).__name__), []).append(call)
    out = []
    for (_, kind), calls in by_parent.items():
        if len(calls) < 2 or kind in ("Linear", "ReLU", "Tanh", "GELU", "SiLU", "Dropout", "LayerNorm", "Identity"):
            continue
        for call in calls:
            ins = [i for i in call.inputs if structure.nature[i] == "data"]
            outs = [i for i in call.outputs if structure.nature[i] == "data"]
            if not ins or not outs:
                continue
            s_in, s_out = forward.stats[ins[0]], forward.stats[outs[0]]
            if s_in is None or s_out is None:
                continue
            chi = r[ins[0]] / r[outs[0]] if r[outs[0]] > 0 else float("nan")
            out.append(BlockSummary(call.name, kind, s_in.q, s_out.q, chi, stream=_stream_of(structure, ins[0])))
    return out


def _stream_of(structure: Structure, node: int) -> int | None:
    """The residual stream a node lies on (an addition of it, or its source), through shape ops."""
    current = node
    for _ in range(64):
        for stream in structure.streams:
            if current == stream.source or current in stream.adds:
                return stream.index
        data = structure.data_inputs(current)
        if structure.categories[current] not in ("alias", "shape", "dropout", "elementwise") or len(data) != 1:
            return None
        current = data[0]
    return None


def _roles(structure: Structure, policy: Policy) -> dict[str, str]:
    """What each called module is, for tools that judge signals per role (embeddings, norms and heads rescale).

    Roles: "model", "embedding", "norm", "attention", "recurrent", "block" (holds a residual addition),
    "residual branch end", "lm head", "head", "linear", "conv", "conv_transpose", "matmul", "activation",
    "container".
    """
    graph = structure.graph
    heads = set(structure.heads)
    roles: dict[str, str] = {}
    for call in graph.calls:
        own = [i for i in range(call.first, call.stop) if graph.nodes[i].kind in ("op", "module")]
        ops = {structure.categories[i] for i in own}
        uses = [structure.use_of[i] for i in own if i in structure.use_of]
        if not call.name:
            role = "model"
        elif len(uses) == 1 and uses[0].node in heads:
            role = "lm head" if uses[0].node in policy.lm_heads else "head"
        elif uses and all(u.kind == "embedding" for u in uses) and len(uses) == len(own):
            role = "embedding"
        elif "norm" in ops and ops <= {"norm", "alias", "shape", "elementwise", "reduce"}:
            role = "norm"
        elif "Norm" in type(call.module).__name__ and ops <= {"alias", "shape", "elementwise", "reduce"} and ops:
            role = "norm"  # a norm written by hand (RMSNorm)
        elif "module" in ops:
            role = "recurrent"
        elif any(i in structure.residual and structure.residual[i].skip is not None for i in own):
            role = "block"
        elif "attention" in ops or {"softmax", "matmul"} <= ops:
            role = "attention"
        elif len(uses) == 1 and (uses[0].node in structure.knob_of or any(i in structure.knob_of for i in own)):
            role = "residual branch end"
        elif len(uses) == 1:
            role = uses[0].kind
        elif ops and ops <= {"elementwise", "alias", "shape", "dropout"}:
            role = "activation"
        else:
            role = "container"
        roles[call.name] = role
    return roles


def _stack_rows(policy: Policy) -> list[dict[str, Any]]:
    seen: set[int] = set()
    rows = []
    for info in policy.stacks.values():
        if id(info) in seen:
            continue
        seen.add(id(info))
        rows.append({"depth": info.depth, "activation": info.activation, "chi_at_target": info.chi_at_target,
                     "q_star": info.q_star, "bias_var": info.bias_var, "chi": info.chi, "slope": info.slope,
                     "layers": [policy.structure.use_of[u].param for u in info.uses]})
    return rows


def _stream_rows(structure: Structure, forward: Forward) -> list[dict[str, Any]]:
    graph = structure.graph
    rows = []
    for stream in structure.streams:
        source = forward.stats[stream.source]
        last = forward.stats[stream.adds[-1]]
        rows.append({"stream": stream.index, "additions": len(stream.adds),
                     "modules": [graph.nodes[a].module for a in stream.adds],
                     "q_in": source.q if source is not None else None,
                     "q_out": last.q if last is not None else None})
    return rows


def _unknown_rows(structure: Structure) -> list[dict[str, str]]:
    graph = structure.graph
    return [{"op": graph.nodes[i].op, "module": graph.nodes[i].module, "reason": reason}
            for i, reason in sorted(structure.unknown.items())]


def _collect_notes(forward: Forward) -> list[str]:
    out = []
    for index, texts in sorted(forward.notes.items()):
        node = forward.graph.nodes[index]
        where = node.module or "the model"
        out += [f"{node.op} in {where}: {text}" for text in texts]
    return out
