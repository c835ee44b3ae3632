"""Forward moment propagation through a recorded graph, choosing each scale on the way.

Each data node carries, per element and averaged over the elements:

* ``q``: the second moment ``E[x^2]`` (what the next weight multiplies: He
  et al. 2015 eq. 7 use the second moment, not the variance);
* ``m``: the mean ``E[x]`` (ReLU, GELU and SiLU outputs are not centred);
* ``s``: the pair moment ``E[x_a x_b]`` of two positions (or two samples)
  of the same feature, the input-independent part of the signal; ``s/q`` is
  the correlation map of Poole et al. (2016) and Xiao et al. (2018), which
  sets what pooling and attention keep: ``E[mean_j(x_j)^2] = s + (q - s)/n``.

The propagation walks the nodes in execution order. At each op that uses a
parameter it asks the policy (:mod:`berry.torch.auto._policy`) for the
scale, knowing the exact statistics of the op's input, so every choice is
made at the layer's actual operating point. Elementwise chains are
integrated as one function (:mod:`berry.torch.auto._chain`); sums and
products of independent chains (GLU) combine their moments; norms reset the
scale; attention averages values with the softmax weights of
:mod:`berry.torch.auto._softmax`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

import torch

from berry.torch.auto import _axes, _ops
from berry.torch.auto._attention import (
    activation_matmul,
    attention,
    attention_part,
    glu,
    masked_fill,
    max_of,
    pool,
    softmax,
)
from berry.torch.auto._chain import Composite, chain_moments
from berry.torch.auto._ops import bind, float_value
from berry.torch.auto._record import Ref
from berry.torch.auto._rnn import module_part, recurrent
from berry.torch.auto._stat import Stat
from berry.torch.auto._structure import Structure

if TYPE_CHECKING:
    from berry.torch.auto._policy import Policy

__all__ = ["Forward", "Stat"]


def _scalar(value: float) -> Stat:
    return Stat("point", q=value * value, m=value, s=value * value, value=value)


class Forward:
    """One forward pass of moment propagation; ``stats[i]`` for every node once :meth:`run` returns."""

    def __init__(self, structure: Structure, policy: Policy) -> None:
        self.structure = structure
        self.graph = structure.graph
        self.policy = policy
        self.stats: list[Stat | None] = [None] * len(self.graph.nodes)
        self.scales: dict[int, dict[str, float]] = {}  #: node -> scales chosen there (for the backward)
        self.notes: dict[int, list[str]] = {}
        self.visible: dict[int, list[int]] = {}  #: masked score nodes -> visible keys per row

    # ------------------------------------------------------------------------------ access
    def stat(self, index: int) -> Stat:
        """The statistics of a node, computing a deferred chain member on demand."""
        value = self.stats[index]
        if value is None:
            value = self._compute(index)
            self.stats[index] = value
        return value

    def note(self, index: int, text: str) -> None:
        self.notes.setdefault(index, [])
        if text not in self.notes[index]:
            self.notes[index].append(text)

    def scalar_value(self, index: int) -> float:
        """The single value of a non-data input: a point, a scalar constant, a parameter's constant."""
        node = self.graph.nodes[index]
        nature = self.structure.nature[index]
        if nature == "point":
            value = self.stat(index).value
            return float("nan") if value is None else float(value)
        if nature == "param":
            return self.policy.constant(self.structure.param_root[index])
        if node.value is not None and node.value.numel() >= 1:
            return float(node.value.detach().to(torch.float64).mean())
        if nature == "pcomp" and node.func is not None:
            args = _substitute_scalars(node.args, self)
            try:
                result = node.func(*args, **dict(node.kwargs))
                return float(torch.as_tensor(result, dtype=torch.float64).mean())
            except Exception:
                return float("nan")
        return float("nan")

    # ------------------------------------------------------------------------------ the pass
    def run(self) -> None:
        for node in self.graph.nodes:
            index = node.index
            if self.stats[index] is not None:
                continue
            if self._deferred(index):
                continue
            self.stats[index] = self._compute(index)

    def _deferred(self, index: int) -> bool:
        """A chain member used only inside its chain: its moments are never needed on their own."""
        structure = self.structure
        if structure.categories[index] != "elementwise" or structure.nature[index] != "data":
            return False
        leaf = structure.leaf.get(index, index)
        if leaf == index or index in self.graph.outputs:
            return False
        return all(structure.categories[u] == "elementwise" and structure.leaf.get(u, u) == leaf
                   for u in structure.users[index])

    def _compute(self, index: int) -> Stat:
        structure = self.structure
        node = self.graph.nodes[index]
        nature = structure.nature[index]
        kind = structure.categories[index]
        if nature == "param":
            return Stat("param")
        if nature in ("const", "pcomp"):
            value = node.value
            if value is not None and value.numel() == 1:
                return _scalar(float(value.detach().to(torch.float64)))
            return Stat("const")
        if nature == "index":
            return Stat("index", axes=("P",) * len(node.shape))
        if nature == "loss" or nature == "none":
            return Stat("none")
        if nature == "point" and kind != "reduce":
            return self._point(index)
        handler = getattr(self, f"_on_{kind}", None)
        if handler is None:
            return self._on_unknown(index)
        result: Stat = handler(index)
        return result

    # ------------------------------------------------------------------------------ sources
    def _on_input(self, index: int) -> Stat:
        return self.policy.input_stat(self, index)

    def _on_param(self, index: int) -> Stat:
        """A learned positional embedding added to data: it joins the signal it is added to."""
        node = self.graph.nodes[index]
        peers: list[Stat] = []
        frontier = [index]
        while frontier:
            current = frontier.pop()
            for user in self.structure.users[current]:
                if self.structure.categories[user] in ("shape", "alias"):
                    frontier.append(user)
                else:
                    peers += [self.stat(j) for j in self.structure.data_inputs(user)
                              if j != current and self.structure.categories[j] != "param" and j < user]
        sigma = self.policy.data_param(self, self.structure.param_root[index], index, peers)
        axes = ("P",) * (len(node.shape) - 1) + ("F",)
        return Stat("data", q=sigma * sigma, m=0.0, s=0.0, axes=axes, fresh=self.structure.fresh(index))

    def _on_part(self, index: int) -> Stat:
        node = self.graph.nodes[index]
        parent = self.graph.nodes[node.inputs[0]]
        if parent.kind == "module":

            return module_part(self, parent.index, node)
        kind = self.structure.categories[parent.index]
        if kind == "split":
            source = self.stat(parent.inputs[0])
            axes = source.axes if len(source.axes) == len(node.shape) else ("?",) * len(node.shape)
            return dataclasses.replace(source, axes=axes, chain=None)
        if kind == "attention":

            return attention_part(self, parent.index, node)
        if kind == "pool":  # max pooling with indices: values then indices
            return self._on_pool(parent.index) if node.part == 0 else Stat("index")
        if kind == "reduce":  # max/min along a dim: values then indices
            return self._on_reduce(parent.index) if node.part == 0 else Stat("index")
        return self._on_unknown(index)

    def _point(self, index: int) -> Stat:
        """An elementwise function of points and scalars: evaluate it."""
        node = self.graph.nodes[index]
        if node.func is None:
            return Stat("const")
        try:
            args = _substitute_scalars(node.args, self)
            kwargs = _substitute_scalars(dict(node.kwargs), self)
            kwargs.pop("out", None)
            value = float(torch.as_tensor(node.func(*args, **kwargs), dtype=torch.float64).mean())
        except Exception:
            return Stat("const")
        return _scalar(value)

    # ------------------------------------------------------------------------------ weights
    def _on_weight(self, index: int) -> Stat:
        return self._weight(index)

    def _on_matmul(self, index: int) -> Stat:
        if index in self.structure.use_of:
            return self._weight(index)

        return activation_matmul(self, index)

    def _weight(self, index: int) -> Stat:
        use = self.structure.use_of.get(index)
        node = self.graph.nodes[index]
        if use is None:
            return self._on_unknown(index)
        if use.kind == "embedding":
            sigma, _ = self.policy.weight_scales(self, use, None)
            self.scales[index] = {"w": sigma}
            axes = (*self.stat(use.input).axes, "F") if use.input is not None else ("?",) * len(node.shape)
            return Stat("data", q=sigma * sigma, m=0.0, s=0.0, axes=axes[-len(node.shape):] if node.shape else (),
                        fresh=self.structure.fresh(index))
        assert use.input is not None
        x = self.stat(use.input)
        x = self.policy.vouch(self, use, self._as_data(use.input, x))
        sigma_w, sigma_b = self.policy.weight_scales(self, use, x)
        self.scales[index] = {"w": sigma_w, "b": sigma_b}
        gain = sigma_w * sigma_w * use.fan_in
        q = gain * x.q + sigma_b * sigma_b
        s = gain * x.s + sigma_b * sigma_b
        if use.kind in ("conv", "conv_transpose"):
            axes = ("P", "F") + ("P",) * (len(node.shape) - 2) if len(node.shape) >= 3 else ("F",) + ("P",) * (
                len(node.shape) - 1)
        elif use.kind == "bilinear":
            axes = (*x.axes[:-1], "F")
        else:
            axes = (*x.axes[:-1], "F") if x.axes else ("?",) * len(node.shape)
        if len(axes) != len(node.shape):
            axes = _axes.view(self.graph.nodes[use.input].shape, x.axes, node.shape)
        return Stat("data", q=q, m=0.0, s=s, gauss=True, axes=axes, fresh=self.structure.fresh(index))

    def _as_data(self, index: int, stat: Stat) -> Stat:
        if stat.kind == "data":
            return stat
        self.note(index, "input statistics unknown here: second moment 1 assumed")
        return Stat("data", q=1.0, m=0.0, s=0.0, axes=("?",) * len(self.graph.nodes[index].shape))

    # ------------------------------------------------------------------------------ elementwise
    def _on_elementwise(self, index: int) -> Stat:
        structure = self.structure
        leaf = structure.leaf.get(index, index)
        if leaf != index:
            return self._chain(index, leaf)
        return self._combine(index)

    def composite(self, top: int, leaf: int) -> Composite:
        """The elementwise function from ``leaf`` to ``top``, with its scalar inputs' values."""
        structure = self.structure
        members: list[int] = []
        constants: dict[int, float] = {}
        stack = [top]
        seen: set[int] = set()
        while stack:
            current = stack.pop()
            if current in seen:
                continue
            seen.add(current)
            members.append(current)
            for j in self.graph.nodes[current].inputs:
                root = structure.alias_root[j]
                if root == leaf or j == leaf:
                    continue
                if structure.nature[j] == "data":
                    stack.append(j if structure.categories[j] == "elementwise" else root)
                else:
                    constants[j] = self.scalar_value(j)
        members.sort()
        aliases = {j: structure.alias_root[j] for m in members for j in self.graph.nodes[m].inputs
                   if structure.alias_root[j] != j and structure.nature[j] == "data"}
        return Composite(self.graph, leaf, top, tuple(members), constants, aliases)

    def _chain(self, index: int, leaf: int) -> Stat:
        source = self.stat(leaf)
        if source.kind == "point" and source.value is not None:  # a function of a concentrated value: a value
            composite = self.composite(index, leaf)
            with torch.no_grad():
                value = composite(torch.tensor([source.value], dtype=torch.float64))
            return _scalar(float(value[0]))
        if source.kind != "data":
            source = self._as_data(leaf, source)
        composite = self.composite(index, leaf)
        if not source.gauss:
            self.note(index, f"the input of {composite.description} is not Gaussian: a Gaussian with its mean "
                             "and variance is integrated")
        if any(math.isnan(v) for v in composite.constants.values()):
            self.note(index, "a scalar of the elementwise chain is unknown")
            return dataclasses.replace(source, chain=None, notes=("unknown scalar",))
        moments = chain_moments(composite, source.m, source.var, source.cov)
        affine = all(self.graph.nodes[i].op in ("mul", "div", "neg", "add", "sub") for i in composite.members)
        return Stat("data", q=moments.q, m=moments.m, s=moments.s, gauss=source.gauss and affine,
                    axes=source.axes if len(source.axes) == len(self.graph.nodes[index].shape)
                    else _axes.view(self.graph.nodes[leaf].shape, source.axes, self.graph.nodes[index].shape),
                    fresh=source.fresh if affine else 0, chain=(composite, moments))

    def _combine(self, index: int) -> Stat:
        """Elementwise ops of independent data (GLU products, residual sums) and of per-channel constants."""
        structure = self.structure
        node = self.graph.nodes[index]
        data = structure.data_inputs(index)
        stats = [self.stat(i) for i in data]
        shape = node.shape
        axes = _axes.broadcast(*(s.axes for s in stats))
        if len(axes) != len(shape):
            axes = ("?",) * len(shape)
        if len(data) == 1:  # one data input with a non-scalar constant (a per-channel table)
            return self._with_table(index, data[0], stats[0], axes)
        if len(data) == 2 and node.op in ("add", "sub"):
            a, b = stats
            alpha = float_value(node.kwargs.get("alpha", 1.0), 1.0)
            sign = -1.0 if node.op == "sub" else 1.0
            coefficient = sign * alpha
            cross, pair_cross = self._cross(data[0], data[1], a, b)
            q = a.q + coefficient * coefficient * b.q + 2.0 * coefficient * cross
            s = a.s + coefficient * coefficient * b.s + 2.0 * coefficient * pair_cross
            independent = cross == a.m * b.m
            return Stat("data", q=max(q, 0.0), m=a.m + coefficient * b.m, s=max(s, 0.0),
                        gauss=a.gauss and b.gauss and independent, axes=axes,
                        fresh=(a.fresh | b.fresh) if a.fresh and b.fresh else 0)
        if len(data) == 2 and node.op == "mul":
            a, b = stats
            if data[0] == data[1]:
                return self._on_unknown(index)
            if a.kind == "point" or b.kind == "point":  # scaling by a concentrated value (a norm by hand)
                signal = b if a.kind == "point" else a
                return Stat("data", q=a.q * b.q, m=a.m * b.m, s=a.s * b.s, gauss=signal.gauss, axes=axes,
                            fresh=signal.fresh)
            return Stat("data", q=a.q * b.q, m=a.m * b.m, s=a.s * b.s, gauss=False, axes=axes,
                        fresh=a.fresh | b.fresh if (a.fresh or b.fresh) else 0)
        return self._on_unknown(index)

    def _cross(self, i: int, j: int, a: Stat, b: Stat) -> tuple[float, float]:
        """E[a b] and the pair cross moment of two data nodes: zero-mean fresh signals are uncorrelated."""
        ancestors = self.structure.ancestors
        if (a.fresh and not a.fresh & ancestors[j]) or (b.fresh and not b.fresh & ancestors[i]):
            return a.m * b.m, a.m * b.m
        root_i, root_j = self.structure.alias_root[i], self.structure.alias_root[j]
        if root_i == root_j:
            return a.q, a.s
        self.note(max(i, j), "two correlated signals are added: their fluctuations are taken as uncorrelated")
        return a.m * b.m, a.m * b.m

    def _with_table(self, index: int, data: int, x: Stat, axes: tuple[str, ...]) -> Stat:
        node = self.graph.nodes[index]
        others = [j for j in node.inputs if j != data]
        values = [self.graph.nodes[j].value for j in others]
        if node.op not in ("add", "sub", "mul", "div") or len(others) != 1 or values[0] is None:
            return self._on_unknown(index)
        table = values[0].detach().to(torch.float64)
        mean, square = float(table.mean()), float((table * table).mean())
        if node.op in ("add", "sub"):
            sign = -1.0 if node.op == "sub" and node.inputs[0] == data else 1.0
            q = x.q + 2.0 * sign * x.m * mean + square
            return Stat("data", q=q, m=x.m + sign * mean, s=x.s + 2.0 * sign * x.m * mean + square, axes=axes,
                        gauss=x.gauss)
        if node.op == "div":
            if node.inputs[0] != data:
                return self._on_unknown(index)
            table = 1.0 / table
            mean, square = float(table.mean()), float((table * table).mean())
        return Stat("data", q=x.q * square, m=x.m * mean, s=x.s * square, axes=axes, gauss=x.gauss, fresh=x.fresh)

    # ------------------------------------------------------------------------------ moving values
    def _on_alias(self, index: int) -> Stat:
        return self._copy(index)

    def _copy(self, index: int, axes: tuple[str, ...] | None = None) -> Stat:
        data = self.structure.data_inputs(index)
        if not data:
            return Stat("const")
        source = self.stat(data[0])
        node = self.graph.nodes[index]
        if axes is None:
            axes = source.axes
        if len(axes) != len(node.shape):
            axes = _axes.view(self.graph.nodes[data[0]].shape, source.axes, node.shape)
        return dataclasses.replace(source, axes=axes, chain=None, sumsq=source.sumsq, count=source.count)

    def _on_shape(self, index: int) -> Stat:
        node = self.graph.nodes[index]
        data = self.structure.data_inputs(index)
        if not data:
            return Stat("const")
        source = self.stat(data[0])
        before = self.graph.nodes[data[0]].shape
        axes = source.axes
        args = node.args
        try:
            if node.op in ("permute",):
                order = args[1:] if len(args) > 1 and isinstance(args[1], int) else args[1]
                axes = _axes.permute(axes, order)
            elif node.op in ("transpose", "swapaxes", "swapdims"):
                axes = _axes.transpose(axes, int(args[1]), int(args[2]))
            elif node.op in ("t", "attr_T", "attr_mT", "attr_H", "attr_mH"):
                axes = _axes.transpose(axes, -1, -2) if len(axes) >= 2 else axes
            elif node.op == "movedim":
                order = list(range(len(axes)))
                src, dst = int(args[1]) % len(axes), int(args[2]) % len(axes)
                order.pop(src)
                order.insert(dst, src)
                axes = _axes.permute(axes, order)
            elif node.op == "getitem":
                axes = _axes.index_result(axes, before, args[1], node.shape)
            elif node.op in ("expand", "expand_as", "broadcast_to", "repeat", "tile"):
                axes = ("P",) * (len(node.shape) - len(axes)) + tuple(axes)
            else:
                axes = _axes.view(before, axes, node.shape)
        except (TypeError, ValueError, IndexError):
            axes = ("?",) * len(node.shape)
        return self._copy(index, tuple(axes))

    def _on_split(self, index: int) -> Stat:
        return Stat("none")

    def _on_concat(self, index: int) -> Stat:
        node = self.graph.nodes[index]
        parts = [i for i in _ops.refs(node.args[0] if node.args else node.kwargs.get("tensors", ()))]
        stats: list[tuple[int, Stat]] = []
        for i in parts:
            if self.structure.nature[i] == "param":
                continue
            stats.append((self.graph.nodes[i].numel, self.stat(i)))
        peers = [s for _, s in stats if s.kind == "data"]
        for i in parts:
            if self.structure.nature[i] == "param":  # a learned token joining data (a class token)
                sigma = self.policy.data_param(self, self.structure.param_root[i], index, peers)
                stats.append((self.graph.nodes[i].numel, Stat("data", q=sigma * sigma, axes=())))
        total = sum(n for n, s in stats if s.kind == "data") or 1
        if not peers and not stats:
            return Stat("const")
        q = sum(n * s.q for n, s in stats if s.kind == "data") / total
        m = sum(n * s.m for n, s in stats if s.kind == "data") / total
        s_ = sum(n * s.s for n, s in stats if s.kind == "data") / total
        axes = peers[0].axes if peers and node.op in ("cat", "concat", "concatenate") else \
            (("P", *peers[0].axes) if peers else ())
        if len(axes) != len(node.shape):
            axes = ("?",) * len(node.shape)
        return Stat("data", q=q, m=m, s=s_, gauss=all(s.gauss for _, s in stats), axes=axes)

    def _on_pad(self, index: int) -> Stat:
        node = self.graph.nodes[index]
        data = self.structure.data_inputs(index)
        source = self.stat(data[0])
        mode = node.kwargs.get("mode", node.args[2] if len(node.args) > 2 else "constant")
        value = float_value(node.kwargs.get("value", node.args[3] if len(node.args) > 3 else 0.0), 0.0)
        if mode != "constant" or value != 0.0:
            return self._copy(index)
        fraction = self.graph.nodes[data[0]].numel / max(node.numel, 1)
        return dataclasses.replace(source, q=source.q * fraction, m=source.m * fraction, s=source.s * fraction,
                                   chain=None, gauss=False)

    def _on_dropout(self, index: int) -> Stat:
        node = self.graph.nodes[index]
        bound = bind(node)
        p = float_value(bound.get("p", 0.5), 0.5)
        training = bool(bound.get("training", True))
        source = self._copy(index)
        if training and 0.0 < p < 1.0 and not node.op.startswith(("alpha", "feature_alpha")):
            self.scales[index] = {"keep": 1.0 - p}
            return dataclasses.replace(source, q=source.q / (1.0 - p))
        return source

    def _on_masked_fill(self, index: int) -> Stat:

        return masked_fill(self, index)

    def _on_setitem(self, index: int) -> Stat:
        self.note(index, "values written in place are taken to have the statistics of what they replace")
        return self._copy(index)

    # ------------------------------------------------------------------------------ reductions
    def _on_reduce(self, index: int) -> Stat:
        node = self.graph.nodes[index]
        data = self.structure.data_inputs(index)
        if not data:
            return Stat("const")
        source = self.stat(data[0])
        shape = self.graph.nodes[data[0]].shape
        dims = _ops.dims_of(bind(node).get("dim"), len(shape))
        reduced = tuple(range(len(shape))) if dims is None else dims
        n = math.prod(shape[d] for d in reduced) if reduced else 1
        labels = {source.axes[d] if d < len(source.axes) else "?" for d in reduced}
        op = node.op
        if labels <= {"F", "?"} or len(reduced) == len(shape) or "F" in labels:
            value = {"mean": source.m, "nanmean": source.m, "sum": n * source.m, "nansum": n * source.m,
                     "var": source.var, "std": math.sqrt(source.var),
                     "norm": math.sqrt(n * source.q), "vector_norm": math.sqrt(n * source.q),
                     "linalg_vector_norm": math.sqrt(n * source.q)}.get(op)
            if value is None:
                return self._on_unknown(index)
            return _scalar(value)
        keep = bool(bind(node).get("keepdim", False))
        axes = tuple(a if d not in reduced else "P" for d, a in enumerate(source.axes)) if keep else \
            tuple(a for d, a in enumerate(source.axes) if d not in reduced)
        if op in ("mean", "nanmean", "sum", "nansum"):
            factor = 1.0 if op in ("mean", "nanmean") else float(n)
            q = (source.s + (source.q - source.s) / n) * factor * factor
            return Stat("data", q=q, m=source.m * factor, s=source.s * factor * factor, axes=axes,
                        gauss=source.gauss, fresh=source.fresh)
        if op in ("amax", "max"):

            return dataclasses.replace(max_of(self, data[0], source, n), axes=axes)
        return self._on_unknown(index)

    def _on_pool(self, index: int) -> Stat:

        return pool(self, index)

    # ------------------------------------------------------------------------------ norms
    def _on_norm(self, index: int) -> Stat:
        node = self.graph.nodes[index]
        bound = bind(node)
        data = self.structure.data_inputs(index)
        source = self._as_data(data[0], self.stat(data[0]))
        shape = self.graph.nodes[data[0]].shape
        eps = float_value(bound.get("eps", 1e-5), 1e-5)
        op = node.op
        n: float
        if op == "normalize":
            dim = int(bound.get("dim", 1))
            n = float(shape[dim % len(shape)]) if shape else 1.0
            self.scales[index] = {"gamma": 1.0, "var": source.q, "eps": 0.0, "n": float(n), "k": 1.0}
            return dataclasses.replace(source, q=1.0 / n, m=source.m / math.sqrt(max(n * source.q, 1e-300)),
                                       s=source.s / max(n * source.q, 1e-300), chain=None)
        if op == "batch_norm" and not bool(bound.get("training", False)):
            var = 1.0  # running statistics at their reset values (init_model resets them)
            spread, pair, mean = source.q, source.s, source.m
            normalized_mean = mean
            k, n = 0.0, 1.0
        else:
            if op in ("batch_norm", "instance_norm"):
                spread = source.q - source.s if op == "batch_norm" else source.var
                pair, normalized_mean = 0.0, 0.0
                spread = max(spread, 1e-300)
                channels = shape[1] if len(shape) > 1 else 1
                n = max(math.prod(shape) / max(channels, 1), 1.0)
            elif op == "rms_norm":
                spread, pair, normalized_mean = source.q, source.s, source.m
                normalized = bound.get("normalized_shape", shape[-1:])
                n = float(math.prod(normalized if isinstance(normalized, (list, tuple)) else [normalized]))
            else:  # layer_norm, group_norm: the mean over features is removed
                spread, pair, normalized_mean = source.var, source.cov, 0.0
                if op == "group_norm":
                    groups = int(bound.get("num_groups", 1))
                    n = max(math.prod(shape[1:]) / max(groups, 1), 1.0)
                else:
                    normalized = bound.get("normalized_shape", shape[-1:])
                    n = float(math.prod(normalized if isinstance(normalized, (list, tuple)) else [normalized]))
            var = spread
            k = 1.0 if op == "rms_norm" else 2.0
        scale = 1.0 / math.sqrt(var + eps)
        gamma, beta = self.policy.norm_affine(self, index, bound, spread * scale * scale)
        self.scales[index] = {"gamma": gamma, "var": var, "eps": eps, "n": float(n), "k": k}
        q = gamma * gamma * spread * scale * scale + beta * beta
        m = gamma * normalized_mean * scale + beta
        s = gamma * gamma * pair * scale * scale + beta * beta
        if op == "batch_norm" and bool(bound.get("training", False)):
            s = beta * beta
        return Stat("data", q=q, m=m, s=min(s, q), gauss=source.gauss, axes=source.axes, fresh=source.fresh)

    # ------------------------------------------------------------------------------ attention, rnn
    def _on_attention(self, index: int) -> Stat:

        return attention(self, index)

    def _on_softmax(self, index: int) -> Stat:

        return softmax(self, index)

    def _on_glu(self, index: int) -> Stat:

        return glu(self, index)

    def _on_module(self, index: int) -> Stat:

        return recurrent(self, index)

    def _on_loss(self, index: int) -> Stat:
        return Stat("none")

    def _on_factory(self, index: int) -> Stat:
        return Stat("const")

    def _on_unknown(self, index: int) -> Stat:
        node = self.graph.nodes[index]
        self.structure.unknown.setdefault(index, f"op {node.op!r} is not one berry's propagation knows")
        data = self.structure.data_inputs(index)
        self.note(index, f"{node.op} not understood: its output is taken to have its input's statistics")
        if not data:
            return Stat("data", q=1.0, axes=("?",) * len(node.shape))
        source = self.stat(data[0])
        axes = source.axes if len(source.axes) == len(node.shape) else ("?",) * len(node.shape)
        return dataclasses.replace(source, axes=axes, chain=None, notes=("assumed",))


def _substitute_scalars(value: Any, forward: Forward) -> Any:
    if isinstance(value, Ref):
        return torch.tensor(forward.scalar_value(value.index), dtype=torch.float64)
    if isinstance(value, tuple):
        return tuple(_substitute_scalars(v, forward) for v in value)
    if isinstance(value, list):
        return [_substitute_scalars(v, forward) for v in value]
    if isinstance(value, dict):
        return {k: _substitute_scalars(v, forward) for k, v in value.items()}
    if isinstance(value, torch.device):
        return torch.device("cpu")
    return value
