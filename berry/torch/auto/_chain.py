"""Elementwise chains: the composite function between a linear op and the next, integrated as one.

A model rarely calls a named activation only: ``x * torch.sigmoid(1.702 * x)``,
``0.5 * x * (1 + torch.tanh(...))``, ``F.relu(x) ** 2`` and ``F.silu(a) * b``
are written inline. The recorder sees the elementwise ops they are made of;
this module groups the ones that depend on a single random tensor (the
*leaf*, usually a pre-activation) into a :class:`Composite` and integrates
the composite as one function ``f`` of its leaf, by replaying the recorded
torch calls on float64 sample points:

.. math::

    m = \\mathbb{E} f(h), \\quad q = \\mathbb{E} f(h)^2, \\quad
    d_2 = \\mathbb{E} f'(h)^2, \\quad h \\sim \\mathcal{N}(\\mu, v),

with :func:`berry.gains.gaussian_expectation` (adaptive Clenshaw-Curtis
panels that find kinks by bisection, about 1e-14 relative) and ``f'`` from
autograd through the replay. The correlation map of Poole et al. (2016),
``s = E[f(h) f(h')]`` for two pre-activations with covariance ``c``, is a
nested integral, ``E_w[(E_z f(mu + sqrt(c) w + sqrt(v - c) z))^2]``, computed
with a fixed 96-point Gauss-Hermite rule outside and a 2001-point panel
rule inside (about 1e-6 relative: it only feeds pooling and attention).

Products and sums of chains with different leaves (GLU, SwiGLU: ``silu(a) *
b``) are combined by the propagation, under independence, not here.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from berry.gains import gaussian_expectation
from berry.torch.auto._record import Graph, Node, Ref

__all__ = ["ChainMoments", "Composite", "chain_moments"]


@dataclasses.dataclass(frozen=True)
class ChainMoments:
    """Moments of ``f(h)``, ``h ~ N(mean, var)``: mean, second moment, pair moment and E[f'(h)**2]."""

    m: float
    q: float
    s: float
    d2: float


@dataclasses.dataclass(eq=False)
class Composite:
    """The elementwise function from ``leaf`` to ``top``: recorded calls replayed on sample points.

    ``constants`` gives the scalar value that each non-random input of the
    chain takes (a point value such as ``rsqrt(mean(x**2) + eps)``, a scalar
    parameter at its planned value, a 0-d constant).
    """

    graph: Graph
    leaf: int
    top: int
    members: tuple[int, ...]  #: chain nodes in execution order, ``top`` last
    constants: Mapping[int, float]
    aliases: Mapping[int, int] = dataclasses.field(default_factory=dict)  #: dtype casts -> the node they copy

    @functools.cached_property
    def signature(self) -> tuple[Any, ...]:
        """A hashable description of the function, equal for equal chains anywhere in the graph."""
        local = {self.leaf: "leaf", **{index: f"n{i}" for i, index in enumerate(self.members)}}
        for alias, root in self.aliases.items():
            if root in local:
                local[alias] = local[root]

        def describe(value: Any) -> Any:
            if isinstance(value, Ref):
                if value.index in local:
                    return local[value.index]
                return ("c", round(float(self.constants[value.index]), 12))
            if isinstance(value, (list, tuple)):
                return tuple(describe(v) for v in value)
            if isinstance(value, Mapping):
                return tuple(sorted((k, describe(v)) for k, v in value.items() if k != "inplace"))
            if isinstance(value, float):
                return round(value, 12)
            return repr(value) if not isinstance(value, (int, str, bool, type(None))) else value

        return tuple((self.graph.nodes[i].op, describe(self.graph.nodes[i].args),
                      describe(self.graph.nodes[i].kwargs)) for i in self.members)

    @functools.cached_property
    def description(self) -> str:
        """A readable name: the named activation when the chain is one call, else the ops in order."""
        ops = [self.graph.nodes[i].op for i in self.members]
        if len(ops) == 1:
            node = self.graph.nodes[self.members[0]]
            approximate = node.kwargs.get("approximate") if isinstance(node.kwargs, Mapping) else None
            return ops[0] + (f"[{approximate}]" if approximate not in (None, "none") else "")
        return "(" + " -> ".join(ops) + ")"

    def __call__(self, values: torch.Tensor, capture: dict[int, torch.Tensor] | None = None) -> torch.Tensor:
        """``f(values)``, elementwise, by replaying the recorded calls (``capture``: kinked ops' arguments)."""
        memo: dict[int, Any] = {self.leaf: values}
        for index in self.members:
            for j in self.graph.nodes[index].inputs:
                if j in self.aliases and self.aliases[j] in memo:
                    memo[j] = memo[self.aliases[j]]
            node = self.graph.nodes[index]
            args = _substitute(node.args, memo, self.constants)
            if capture is not None and node.op in _KINKED and args and isinstance(args[0], torch.Tensor):
                capture[index] = args[0].to(torch.float64).expand_as(values)
            kwargs = _substitute(node.kwargs, memo, self.constants)
            if isinstance(kwargs, dict) and kwargs.get("inplace"):
                kwargs["inplace"] = False
            if node.inplace and args and isinstance(args[0], torch.Tensor):
                args = (args[0].clone(), *args[1:])
            assert node.func is not None
            result = node.func(*args, **kwargs)
            if not isinstance(result, torch.Tensor):
                result = torch.as_tensor(result, dtype=torch.float64)
            memo[index] = result.to(torch.float64) if result.dtype != torch.bool else result
        out = memo[self.top]
        return out.to(torch.float64).expand_as(values)

    def kinks(self, mean: float, sd: float) -> tuple[float, ...]:
        """Points (in units of ``z``, with the leaf ``mean + sd z``) where the composite is not smooth.

        Found where the argument of a kinked op of the chain (relu, clamp,
        abs, a comparison, ...) crosses its breakpoint, on a grid of 80001
        points over ``[-40, 40]``, located to the grid's linear interpolation;
        the quadrature's bisection resolves what is left.
        """
        kinked = [i for i in self.members if self.graph.nodes[i].op in _KINKED]
        if not kinked or sd == 0.0:
            return ()
        z = np.linspace(-40.0, 40.0, 80001)
        values: dict[int, torch.Tensor] = {}
        with torch.no_grad():
            self(torch.from_numpy(mean + sd * z), capture=values)
        found: list[float] = []
        for index in kinked:
            argument = values.get(index)
            if argument is None:
                continue
            for point in _breakpoints(self.graph.nodes[index], self.constants):
                diff = argument.numpy() - point
                sign = np.sign(diff)
                exact = np.nonzero((sign[1:-1] == 0) & (sign[:-2] * sign[2:] < 0))[0] + 1
                found += [float(z[k]) for k in exact[:64]]
                change = np.nonzero(sign[:-1] * sign[1:] < 0)[0]
                for k in change[:64]:
                    left, right = diff[k], diff[k + 1]
                    found.append(float(z[k] + (z[k + 1] - z[k]) * left / (left - right)))
        return tuple(sorted(set(found)))

    def numpy(self, x: np.ndarray) -> np.ndarray:
        """``f`` on a NumPy array (float64), for the quadrature."""
        with torch.no_grad():
            return self(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64))).numpy()

    def derivative(self, x: np.ndarray) -> np.ndarray:
        """``f'`` on a NumPy array, by autograd through the replay (0 where the chain is flat)."""
        leaf = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64)).requires_grad_(True)
        with torch.enable_grad():
            out = self(leaf)
            if not out.requires_grad:
                return np.zeros_like(x)
            (grad,) = torch.autograd.grad(out.sum(), leaf, allow_unused=True)
        return np.zeros_like(x) if grad is None else grad.detach().numpy()


#: Ops whose result is not smooth where their first argument crosses a breakpoint.
_KINKED = frozenset({"relu", "relu6", "leaky_relu", "elu", "selu", "celu", "abs", "sign", "threshold", "hardtanh",
                     "hardswish", "hardsigmoid", "clamp", "clip", "clamp_min", "clamp_max", "maximum", "minimum",
                     "gt", "ge", "lt", "le", "softshrink", "hardshrink", "rrelu", "prelu", "floor", "ceil", "round",
                     "trunc"})


def _breakpoints(node: Node, constants: Mapping[int, float]) -> list[float]:
    """Where a kinked op's first argument makes it non-smooth."""
    op = node.op

    def number(value: Any) -> float | None:
        if isinstance(value, Ref):
            return constants.get(value.index)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        return None

    rest = [number(v) for v in node.args[1:]] + [number(v) for k, v in node.kwargs.items()
                                                   if k in ("min", "max", "other", "threshold", "min_val",
                                                            "max_val", "lambd")]
    points = {"relu": [0.0], "relu6": [0.0, 6.0], "leaky_relu": [0.0], "elu": [0.0], "selu": [0.0],
              "celu": [0.0], "abs": [0.0], "sign": [0.0], "prelu": [0.0], "rrelu": [0.0],
              "hardswish": [-3.0, 3.0], "hardsigmoid": [-3.0, 3.0]}.get(op)
    if points is not None:
        return points
    if op == "hardtanh":
        return [v for v in rest if v is not None] or [-1.0, 1.0]
    if op in ("softshrink", "hardshrink"):
        lambd = next((v for v in rest if v is not None), 0.5)
        return [-lambd, lambd]
    if op in ("floor", "ceil", "round", "trunc"):
        return []
    return [v for v in rest if v is not None]


def _substitute(value: Any, memo: Mapping[int, Any], constants: Mapping[int, float]) -> Any:
    if isinstance(value, Ref):
        if value.index in memo:
            return memo[value.index]
        return torch.tensor(constants[value.index], dtype=torch.float64)
    if isinstance(value, tuple):
        return tuple(_substitute(v, memo, constants) for v in value)
    if isinstance(value, list):
        return [_substitute(v, memo, constants) for v in value]
    if isinstance(value, Mapping):
        return {k: _substitute(v, memo, constants) for k, v in value.items()}
    if isinstance(value, torch.dtype):
        return torch.float64 if value.is_floating_point else value
    return value


# ---------------------------------------------------------------------------------------------- moments
_CACHE: dict[tuple[Any, ...], ChainMoments] = {}
_CACHE_LIMIT = 4096
_HERMITE_NODES, _HERMITE_WEIGHTS = np.polynomial.hermite_e.hermegauss(96)
_HERMITE_WEIGHTS = _HERMITE_WEIGHTS / math.sqrt(2.0 * math.pi)
_INNER = np.linspace(-10.0, 10.0, 2001)
_INNER_WEIGHTS = np.full(_INNER.size, 2.0)
_INNER_WEIGHTS[1::2] = 4.0
_INNER_WEIGHTS[0] = _INNER_WEIGHTS[-1] = 1.0
_INNER_WEIGHTS *= (_INNER[1] - _INNER[0]) / 3.0 * np.exp(-0.5 * _INNER**2) / math.sqrt(2.0 * math.pi)


def chain_moments(composite: Composite, mean: float, var: float, cov: float) -> ChainMoments:
    """Moments of the composite at a Gaussian leaf ``N(mean, var)`` whose pairs have covariance ``cov``.

    Cached by the composite's signature and the leaf's statistics (rounded to
    1e-9 relative), so the repeated blocks of a deep model integrate each
    distinct chain once.
    """
    var = max(float(var), 0.0)
    cov = min(max(float(cov), 0.0), var)
    mean, var, cov = _round(float(mean)), _round(var), _round(cov)
    key = (composite.signature, mean, var)
    single = _CACHE.get(key)
    if single is None:
        sd = math.sqrt(var)
        if sd == 0.0:
            point = np.array([float(mean)])
            value = float(composite.numpy(point)[0])
            slope = float(composite.derivative(point)[0])
            single = ChainMoments(value, value * value, value * value, slope * slope)
        else:
            kinks = composite.kinks(mean, sd)

            def at(z: np.ndarray) -> np.ndarray:
                return mean + sd * z

            m = gaussian_expectation(lambda z: composite.numpy(at(z)), kinks)
            q = gaussian_expectation(lambda z: composite.numpy(at(z)) ** 2, kinks)
            d2 = gaussian_expectation(lambda z: composite.derivative(at(z)) ** 2, kinks)
            single = ChainMoments(m, q, m * m, d2)
        _store(key, single)
    if cov <= 1e-12 * var or var == 0.0:
        return single
    pair_key = (*key, cov)
    pair = _CACHE.get(pair_key)
    if pair is None:
        pair = dataclasses.replace(single, s=_pair_moment(composite, mean, var, cov, single.m, single.q))
        _store(pair_key, pair)
    return pair


def _store(key: tuple[Any, ...], value: ChainMoments) -> None:
    if len(_CACHE) >= _CACHE_LIMIT:
        _CACHE.clear()
    _CACHE[key] = value


def _pair_moment(composite: Composite, mean: float, var: float, cov: float, m: float, q: float) -> float:
    """E[f(h) f(h')] for h, h' ~ N(mean, var) with covariance ``cov`` (the c-map of Poole et al. 2016)."""
    if cov <= 1e-12 * var:
        return m * m
    if cov >= (1.0 - 1e-12) * var:
        return q
    shared, own = math.sqrt(cov), math.sqrt(var - cov)
    points = mean + shared * _HERMITE_NODES[:, None] + own * _INNER[None, :]
    inner = composite.numpy(points.ravel()).reshape(points.shape) @ _INNER_WEIGHTS
    return float(np.dot(_HERMITE_WEIGHTS, inner * inner))


def _round(value: float) -> float:
    if value == 0.0 or not math.isfinite(value):
        return value
    return round(value, 7 - math.floor(math.log10(abs(value))))


def is_scalar_constant(node: Node) -> bool:
    """A constant whose single value can stand in a replayed chain."""
    return node.value is not None and node.value.numel() == 1
