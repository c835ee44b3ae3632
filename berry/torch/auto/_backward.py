"""Backward propagation of gradient second moments through the recorded graph.

Every model output (or the input of a loss the model computes) starts with
unit gradient second moment per element: a random direction, the reference
the report's gradient columns are relative to. Going backwards, each op
passes ``r`` (the gradient's second moment per element) to its inputs under
the gradient-independence assumption of Schoenholz et al. (2017):

* a weight use: ``r_x = fan_out sigma^2 r_y`` (He et al. 2015, eq. 13);
* an elementwise chain: ``r_leaf = E[f'(h)^2] r_y``; a product ``a b`` of
  independent factors: ``r_a = E[b^2] r``;
* a norm: ``r_x = gamma^2 r_y (1 - k/n) / (var + eps)`` (``k`` = 2 for
  LayerNorm's projection, 1 for RMSNorm);
* attention: ``r_v = S r_y`` and, through the scores,
  ``r_q = scale^2 S (1 - S) d r_y (q_v - s_v) (q_k - s_k)``;
* averaging ``n`` positions: ``r_x = r_y / n^2`` per contribution;
* sums, copies, concatenations: ``r`` passes unchanged; several consumers add.

No gradient passes back through a weight whose input statistics the plan
did not trust (:meth:`~berry.torch.auto._policy.Policy.vouch`): what lies
before it is not modelled well enough to predict gradients either.
"""

from __future__ import annotations

import math

from berry.torch.auto import _ops
from berry.torch.auto._ops import bind, float_value
from berry.torch.auto._propagate import Forward
from berry.torch.auto._record import Ref

__all__ = ["backward"]


def backward(forward: Forward) -> list[float]:
    """Gradient second moment per element of every node (0 where no gradient flows)."""
    structure = forward.structure
    graph = forward.graph
    r = [0.0] * len(graph.nodes)
    sources = set(structure.loss_inputs) or {i for i in graph.outputs if structure.nature[i] == "data"}
    for i in sources:
        r[i] = 1.0
    for node in reversed(graph.nodes):
        index = node.index
        if r[index] == 0.0 or structure.nature[index] not in ("data",):
            continue
        _distribute(forward, index, r)
    return r


def _add(r: list[float], index: int | None, value: float) -> None:
    if index is not None and value > 0.0 and math.isfinite(value):
        r[index] += value


def _distribute(forward: Forward, index: int, r: list[float]) -> None:
    structure = forward.structure
    node = forward.graph.nodes[index]
    kind = structure.categories[index]
    out = r[index]
    data = structure.data_inputs(index)
    stat = forward.stats[index]
    scales = forward.scales.get(index, {})
    if kind in ("alias", "shape", "concat", "pad", "setitem"):
        for i in data:
            ratio = node.numel / max(forward.graph.nodes[i].numel, 1) if kind == "shape" else 1.0
            _add(r, i, out * ratio)
        return
    if kind == "part":
        parent = forward.graph.nodes[node.inputs[0]]
        share = node.numel / max(sum(forward.graph.nodes[p].numel for p in structure.users[parent.index]), 1)
        _add(r, parent.index, out * (share if structure.categories[parent.index] == "split" else 1.0))
        return
    if kind == "split":
        for i in data:
            _add(r, i, out)
        return
    if kind == "module":
        from berry.torch.auto._rnn import recurrent_backward

        _add(r, data[0] if data else None, recurrent_backward(forward, index, out))
        return
    if kind == "dropout":
        keep = scales.get("keep", 1.0)
        _add(r, data[0] if data else None, out / keep)
        return
    if index in structure.use_of:
        use = structure.use_of[index]
        if use.kind != "embedding" and use.input is not None and index not in forward.policy.distrusted:
            sigma = scales.get("w", 0.0)
            _add(r, use.input, use.fan_out * sigma * sigma * out)
        return
    if kind == "elementwise":
        _elementwise(forward, index, out, r)
        return
    if kind == "norm":
        gamma, var, eps = scales.get("gamma", 1.0), scales.get("var", 1.0), scales.get("eps", 0.0)
        n, k = scales.get("n", 1.0), scales.get("k", 0.0)
        projection = max(1.0 - k / n, 0.0) if n > k else 1.0
        _add(r, data[0] if data else None, out * gamma * gamma * projection / max(var + eps, 1e-300))
        return
    if kind == "attention":
        _attention(forward, index, out, r)
        return
    if kind == "softmax":
        n = scales.get("n", 1.0)
        factor = 1.0 if node.op == "log_softmax" else scales.get("S2", 1.0 / n) / n
        _add(r, data[0] if data else None, out * factor)
        return
    if kind == "matmul":
        _matmul(forward, index, out, r)
        return
    if kind == "reduce":
        source = data[0] if data else None
        if source is not None and stat is not None and stat.kind == "data":
            n = forward.graph.nodes[source].numel / max(node.numel, 1)
            factor = {"mean": 1.0 / (n * n), "nanmean": 1.0 / (n * n), "amax": 1.0 / n, "max": 1.0 / n}.get(node.op, 1.0)
            _add(r, source, out * factor)
        return
    if kind == "pool":
        n, n_in, n_out = scales.get("n", 1.0), scales.get("n_in", 1.0), scales.get("n_out", 1.0)
        if "max" in node.op:
            _add(r, data[0] if data else None, out * n_out / max(n_in, 1.0))
        else:
            _add(r, data[0] if data else None, out * n_out / max(n_in * n, 1e-300))
        return
    if kind == "masked_fill":
        _add(r, data[0] if data else None, out)
        return
    if kind == "glu":
        e2, d2, qa = scales.get("e2", 0.25), scales.get("d2", 0.0), scales.get("qa", 1.0)
        _add(r, data[0] if data else None, 0.5 * out * (e2 + qa * d2))
        return
    for i in data[:1]:  # not understood: the gradient is taken to pass unchanged
        _add(r, i, out)


def _elementwise(forward: Forward, index: int, out: float, r: list[float]) -> None:
    structure = forward.structure
    stat = forward.stats[index]
    leaf = structure.leaf.get(index, index)
    if leaf != index:
        if stat is not None and stat.chain is not None:
            _add(r, leaf, stat.chain[1].d2 * out)
        else:
            _add(r, leaf, out)
        return
    node = forward.graph.nodes[index]
    data = structure.data_inputs(index)
    graph = forward.graph

    def spread(i: int) -> float:  # a broadcast operand gets the sum of its copies' gradients
        return node.numel / max(graph.nodes[i].numel, 1)

    if len(data) == 2 and node.op in ("add", "sub"):
        alpha = float_value(node.kwargs.get("alpha", 1.0), 1.0)
        _add(r, data[0], out * spread(data[0]))
        _add(r, data[1], out * alpha * alpha * spread(data[1]))
        return
    if len(data) == 2 and node.op == "mul":
        a, b = forward.stat(data[0]), forward.stat(data[1])
        _add(r, data[0], out * b.q * spread(data[0]))
        _add(r, data[1], out * a.q * spread(data[1]))
        return
    if len(data) == 1 and stat is not None:
        source = forward.stat(data[0])
        ratio = stat.q / source.q if node.op in ("mul", "div") and source.q > 0 else 1.0
        _add(r, data[0], out * ratio)
        return
    for i in data[:1]:
        _add(r, i, out)


def _attention(forward: Forward, index: int, out: float, r: list[float]) -> None:
    node = forward.graph.nodes[index]
    scales = forward.scales.get(index, {})
    bound = bind(node)
    sumsq, d, scale = scales.get("S2", 1.0), scales.get("D", 1.0), scales.get("scale", 1.0)
    qq, qk, sk, qv, sv = (scales.get(k, 0.0) for k in ("qq", "qk", "sk", "qv", "sv"))
    groups = scales.get("groups", 1.0)
    if node.op == "multi_head_attention_forward":
        embed = scales.get("E", d)
        sigma_out, sigma_v = scales.get("out", 0.0), scales.get("in", 0.0)
        r_mixed = embed * sigma_out**2 * out
        r_v = sumsq * r_mixed
        r_scores = scale * scale * sumsq * (1.0 - sumsq) * d * r_mixed * max(qv - sv, 0.0)
        r_q, r_k = r_scores * max(qk - sk, 0.0), r_scores * qq
        query = bound.get("query")
        total = embed * (sigma_v**2 * r_v + scales.get("in_q", 0.0) ** 2 * r_q + scales.get("in_k", 0.0) ** 2 * r_k)
        if isinstance(query, Ref):
            _add(r, query.index, total)
        return
    r_v = sumsq * out * groups
    r_scores = scale * scale * sumsq * (1.0 - sumsq) * d * out * max(qv - sv, 0.0)
    for name, value in (("query", r_scores * max(qk - sk, 0.0)), ("key", r_scores * qq * groups), ("value", r_v)):
        ref = bound.get(name)
        if isinstance(ref, Ref):
            _add(r, ref.index, value)


def _matmul(forward: Forward, index: int, out: float, r: list[float]) -> None:
    node = forward.graph.nodes[index]
    scales = forward.scales.get(index, {})
    data = [i for i in _ops.refs(node.args) if forward.structure.nature[i] == "data"]
    if len(data) != 2:
        for i in data[:1]:
            _add(r, i, out)
        return
    a, b = (data[1], data[0]) if node.op == "rmatmul" else (data[0], data[1])
    _add(r, a, scales.get("N", 1.0) * scales.get("qb", 1.0) * out)
    _add(r, b, scales.get("M", 1.0) * scales.get("qa", 1.0) * out)
