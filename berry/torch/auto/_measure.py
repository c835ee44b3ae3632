"""Measurements on real inputs: each op's output and gradient std beside the prediction, and LSUV refinement.

:func:`measure` runs one forward and one backward pass on the example inputs,
recorded the same way as the plan, and reads the std of every planned op's
output and of the loss gradient there (relative to the output gradient, a
random direction ``r ~ N(0, 1)``, or to the gradient at the logits when the
model computes its loss itself).

:func:`refine` is LSUV (Mishkin & Matas 2016, "All you need is a good
init"), on the recorded graph: in execution order, each weight whose op's
measured output second moment differs from the plan's by more than 2% is
rescaled by ``sqrt(planned / measured)`` (at most 4 times), with the forward
stopped right after that op. It corrects what the analytic pass cannot see:
correlations in real data, finite width, ops it does not model.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from berry.torch.auto import _inputs
from berry.torch.auto._record import Graph, kept_buffers, record
from berry.torch.auto._report import AutoInitReport, BlockSummary

__all__ = ["has_real_inputs", "holds_values", "measure", "refine"]

_TOLERANCE = 0.02
_MAX_ROUNDS = 4


class _Stop(Exception):
    pass


def has_real_inputs(args: Sequence[Any], kwargs: Mapping[str, Any] | None) -> bool:
    """Whether every example tensor holds values (no spec, no meta or empty tensor) and there is at least one."""
    found: list[Any] = []

    def walk(value: Any) -> None:
        if isinstance(value, (torch.Tensor, _inputs.InputSpec)):
            found.append(value)
        elif isinstance(value, (list, tuple)) and not all(isinstance(v, int) for v in value):
            for v in value:
                walk(v)
        elif isinstance(value, (list, tuple)) and value:
            found.append(_inputs.InputSpec(tuple(value)))
        elif isinstance(value, Mapping):
            for v in value.values():
                walk(v)

    for a in args:
        walk(a)
    for v in (kwargs or {}).values():
        walk(v)
    return bool(found) and all(isinstance(v, torch.Tensor) and not v.is_meta and v.numel() > 0 for v in found)


def holds_values(model: nn.Module) -> bool:
    from berry.torch._tensors import is_dtensor

    return not any(p.is_meta or is_dtensor(p) for p in model.parameters())


def _std(tensor: torch.Tensor) -> float:
    x = tensor.detach().to(torch.float64)
    return float(x.std(unbiased=False)) if x.numel() > 1 else float(x.abs().mean())


def _analysis(report: AutoInitReport) -> tuple[Any, Any, list[float]]:
    structure, forward, r = report.structure
    return structure, forward, r


def _same_path(planned: Graph, measured: Graph) -> bool:
    return len(planned.nodes) == len(measured.nodes) and all(
        a.op == b.op and a.shape == b.shape for a, b in zip(planned.nodes, measured.nodes, strict=True))


def measure(model: nn.Module, report: AutoInitReport, args: Sequence[Any],
            kwargs: Mapping[str, Any] | None) -> None:
    """Fill the report's measured columns from one forward and backward pass on the example inputs."""
    structure, _forward, _ = _analysis(report)
    wanted = {p.node for p in report.parameters if p.node is not None}
    wanted |= _block_nodes(report, structure)
    references = set(structure.loss_inputs) or {i for i in structure.graph.outputs
                                                 if structure.nature[i] == "data"}
    stds: dict[int, float] = {}
    grads: dict[int, list[float]] = {}

    def observe(index: int, tensor: torch.Tensor) -> None:
        if index in wanted or index in references:
            if tensor.is_floating_point():
                stds[index] = _std(tensor)
            if tensor.requires_grad:
                tensor.register_hook(lambda g, i=index: grads.setdefault(i, []).append(
                    float((g.detach().to(torch.float64) ** 2).mean())))

    kwargs = dict(kwargs or {})
    training = model.training
    saved = {p: p.grad for p in model.parameters()}
    with kept_buffers(model):  # the forward must not leave BatchNorm's running statistics updated
        try:
            graph = record(model, list(args), kwargs, on_meta=False, observe=observe, grad=True)
            if not _same_path(structure.graph, graph):
                report.notes = (*report.notes, "measurement: the forward took another path than the recorded one; "
                                               "measured columns left empty")
                return
            loss_node = next((i for i in graph.outputs if structure.nature[i] == "loss"), None)
            objective = _objective(graph, loss_node)
            if objective is None or not objective.requires_grad:
                return
            objective.backward()
        finally:
            for parameter, grad in saved.items():
                parameter.grad = grad
            model.train(training)
    reference = [sum(grads[i]) for i in references if i in grads]
    scale = math.sqrt(sum(reference) / len(reference)) if reference else float("nan")
    rows = []
    for p in report.parameters:
        node = p.node
        if node is None or node not in stds or p.predicted_std is None:
            rows.append(p)
            continue
        measured_grad = math.sqrt(sum(grads[node])) / scale if node in grads and scale > 0 else None
        rows.append(dataclasses.replace(p, measured_std=stds[node], measured_grad=measured_grad))
    report.parameters = tuple(rows)
    report.blocks = tuple(_measured_blocks(report, structure, grads))
    report.measured = True


def _objective(graph: Graph, loss_node: int | None) -> torch.Tensor | None:
    """The scalar to differentiate: the model's loss, or sum(output * r) with r ~ N(0, 1) from berry's stream."""
    from berry.sampling import sample

    outputs = graph.captured
    if loss_node is not None and loss_node in outputs:
        return outputs[loss_node]
    total = None
    for index, tensor in outputs.items():
        if not tensor.is_floating_point() or not tensor.requires_grad:
            continue
        direction = sample(tuple(tensor.shape), "lecun", std=1.0, seed=0, name=f"auto.output{index}", dtype="float64")
        term = (tensor.to(torch.float64) * torch.from_numpy(direction).to(tensor.device)).sum()
        total = term if total is None else total + term
    return total


def _node_of(report: AutoInitReport, name: str) -> int | None:
    structure, _forward, _ = _analysis(report)
    for use in structure.uses:
        if use.param == name:
            return use.node
    return None


def _block_nodes(report: AutoInitReport, structure: Any) -> set[int]:
    nodes: set[int] = set()
    names = {b.name for b in report.blocks}
    for call in structure.graph.calls:
        if call.name in names:
            nodes |= {i for i in (*call.inputs[:1], *call.outputs[:1])}
    return nodes


def _measured_blocks(report: AutoInitReport, structure: Any, grads: dict[int, list[float]]) -> list[BlockSummary]:
    calls = {call.name: call for call in structure.graph.calls}
    out = []
    for block in report.blocks:
        call = calls.get(block.name)
        chi = None
        if call is not None and call.inputs and call.outputs:
            i, o = call.inputs[0], call.outputs[0]
            if i in grads and o in grads and sum(grads[o]) > 0:
                chi = sum(grads[i]) / sum(grads[o])
        out.append(dataclasses.replace(block, measured_chi=chi))
    return out


def refine(model: nn.Module, report: AutoInitReport, args: Sequence[Any], kwargs: Mapping[str, Any] | None) -> None:
    """LSUV on the recorded graph: rescale each weight until its op's output matches the plan (see module doc)."""
    from berry.torch import init_model

    structure, forward, _ = _analysis(report)
    kwargs = dict(kwargs or {})
    factors: dict[str, float] = {}
    done: set[str] = set()
    for use in structure.uses:
        name = use.param
        if name in done or report[name].role not in ("weight", "embedding"):
            continue
        done.add(name)
        stat = forward.stats[use.node]
        init = report.rules.get(_pattern(report, name))
        if stat is None or not isinstance(init, dict) or "std" not in init or init["std"] <= 0:
            continue
        planned = stat.q
        factor = 1.0
        for _ in range(_MAX_ROUNDS):
            seen: dict[str, float] = {}

            def observe(index: int, tensor: torch.Tensor, node: int = use.node, seen: dict[str, float] = seen) -> None:
                if index == node:
                    seen["q"] = float((tensor.detach().to(torch.float64) ** 2).mean())
                    raise _Stop

            try:
                with kept_buffers(model):
                    record(model, list(args), kwargs, on_meta=False, observe=observe)
            except _Stop:
                pass
            measured = seen.get("q")
            if measured is None or measured <= 0 or not math.isfinite(measured):
                break
            step = math.sqrt(planned / measured)
            if abs(step - 1.0) <= _TOLERANCE:
                break
            factor *= step
            spec = dict(init, std=float(init["std"]) * step)
            init = spec
            report.rules[_pattern(report, name)] = spec
            init_model(model, {_pattern(report, name): spec, "*": "keep"}, seed=report.seed)
        factors[name] = factor
    report.parameters = tuple(
        dataclasses.replace(p, refined=factors[p.name], init=report.rules.get(_pattern(report, p.name), p.init))
        if p.name in factors else p for p in report.parameters)
    report.notes = (*report.notes, "measured refinement (LSUV on the recorded graph): column 'refined' is the "
                                   "factor applied to each analytic std")


def _pattern(report: AutoInitReport, name: str) -> str:
    from berry.torch.auto._plan import exact_pattern

    return exact_pattern(name)
