"""Gaussian expectations of softmax rows and of maxima, for attention and max pooling.

Attention mixes values with the rows of ``p = softmax(scores)``; at
initialization the scores of one row are close to independent Gaussians, so
the mixed output's second moment is set by ``S(n, v) = E[sum_j p_j^2]`` for
``n`` visible keys with i.i.d. ``N(0, v)`` scores. It is computed exactly
(to quadrature accuracy, about 1e-10) with the identity ``1/a^2 =
int_0^inf t e^{-t a} dt``, which turns the expectation of a ratio into one
integral over ``t`` of products of one-dimensional Gaussian expectations:

.. math::

    S(n, v) = n \\int_0^\\infty t\\, A(t)\\, B(t)^{n-1}\\, dt, \\quad
    A(t) = \\mathbb{E}\\, e^{2x - t e^{x}}, \\quad B(t) = \\mathbb{E}\\, e^{-t e^{x}}, \\quad x \\sim N(0, v).

``S(1, v) = 1``, ``S(n, 0) = 1/n`` and ``S(n, v) ~ e^v / n`` for large ``n``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np

from berry._special import ndtr_array, npdf_array

__all__ = ["expected_max_moments", "softmax_sum_squares"]

_HERMITE_NODES, _HERMITE_WEIGHTS = np.polynomial.hermite_e.hermegauss(120)
_HERMITE_WEIGHTS = _HERMITE_WEIGHTS / math.sqrt(2.0 * math.pi)
#: Up to this many distinct row lengths are integrated one by one; beyond, on a geometric grid.
_EXACT_COUNTS = 48


@functools.lru_cache(maxsize=1024)
def _sum_squares(counts: tuple[int, ...], var: float) -> tuple[float, ...]:
    n = np.asarray(counts, dtype=np.float64)
    if var <= 1e-14:
        return tuple(1.0 / n)
    sd = math.sqrt(var)
    x = sd * _HERMITE_NODES
    top = math.log(max(n.max(), 1.0)) + 12.0 * sd + 12.0
    u = np.linspace(-top, 8.0 + 12.0 * sd, 1601)
    t = np.exp(u)
    exponent = np.exp(np.clip(x, -700.0, 700.0))
    with np.errstate(over="ignore", under="ignore"):
        decay = np.exp(-np.outer(t, exponent))  # (grid, nodes)
        a = decay @ (_HERMITE_WEIGHTS * np.exp(2.0 * x))
        b = decay @ _HERMITE_WEIGHTS
        log_b = np.log(np.maximum(b, 1e-300))
        # integrand in u: t^2 A(t) B(t)^(n-1), for every n at once
        integrand = (t * t * a)[None, :] * np.exp(np.outer(n - 1.0, log_b))
    du = u[1] - u[0]
    weights = np.full(u.size, 2.0)
    weights[1::2] = 4.0
    weights[0] = weights[-1] = 1.0
    values = n * (integrand @ weights) * du / 3.0
    return tuple(float(min(max(v, 1.0 / k), 1.0)) for v, k in zip(values, n, strict=True))


def softmax_sum_squares(counts: Sequence[int], var: float) -> float:
    """Mean over rows of ``E[sum_j p_j**2]`` for rows of ``counts[i]`` i.i.d. ``N(0, var)`` scores.

    >>> round(softmax_sum_squares([1], 1.0), 12), round(softmax_sum_squares([8], 0.0), 12)
    (1.0, 0.125)
    """
    if not counts:
        return 1.0
    return _mean_sum_squares(tuple(int(c) for c in counts), round(float(var), 12))


@functools.lru_cache(maxsize=256)
def _mean_sum_squares(counts: tuple[int, ...], var: float) -> float:
    unique, inverse = np.unique(np.maximum(np.asarray(counts, dtype=np.int64), 1), return_inverse=True)
    var = round(float(var), 12)
    if unique.size <= _EXACT_COUNTS:
        values = np.asarray(_sum_squares(tuple(int(c) for c in unique), var))
    else:  # many row lengths (a long causal mask): S is smooth in n, interpolate log S in log n
        grid = np.unique(np.round(np.geomspace(unique[0], unique[-1], _EXACT_COUNTS)).astype(np.int64))
        at_grid = np.asarray(_sum_squares(tuple(int(c) for c in grid), var))
        values = np.exp(np.interp(np.log(unique), np.log(grid), np.log(at_grid)))
    return float(values[inverse].mean())


@functools.lru_cache(maxsize=256)
def _max_density(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of the law of the maximum of ``n`` standard normals (density n phi Phi^(n-1))."""
    t = np.linspace(-8.0, 8.0 + math.sqrt(2.0 * math.log(max(n, 2))), 3201)
    density = n * npdf_array(t) * np.power(ndtr_array(t), n - 1)
    weights = np.full(t.size, 2.0)
    weights[1::2] = 4.0
    weights[0] = weights[-1] = 1.0
    weights *= (t[1] - t[0]) / 3.0 * density
    return t, weights / weights.sum()


def expected_max_moments(n: int, mean: float, var: float, cov: float, f: object = None) -> tuple[float, float]:
    """Mean and second moment of ``f(max_j h_j)`` for ``n`` Gaussians of variance ``var`` and pair covariance ``cov``.

    ``h_j = mean + sqrt(cov) w + sqrt(var - cov) e_j``; the maximum is
    ``mean + sqrt(cov) w + sqrt(var - cov) max_j e_j``. ``f`` (a NumPy
    callable, nondecreasing so that ``max f = f(max)``) defaults to the identity.
    """
    t, wt = _max_density(max(int(n), 1))
    shared, own = math.sqrt(max(cov, 0.0)), math.sqrt(max(var - cov, 0.0))
    points = mean + shared * _HERMITE_NODES[:, None] + own * t[None, :]
    values = points if f is None else f(points.ravel()).reshape(points.shape)  # type: ignore[operator]
    first = float(_HERMITE_WEIGHTS @ (values @ wt))
    second = float(_HERMITE_WEIGHTS @ ((values * values) @ wt))
    return first, second
