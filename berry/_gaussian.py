"""Gaussian expectations: E[g(x)] for x ~ N(0, q), the one quadrature of berry.

:func:`berry.gains.gain` needs ``E[f(z)**2]`` and ``E[f'(z)**2]`` at unit
variance; the probe's mean field (:mod:`berry.probe.mean_field`) needs
``E[f]``, ``E[f**2]`` and ``E[f'**2]`` at each layer's variance. Both come
from :func:`gaussian_expectation`, for any elementwise ``g`` with kinks, any
number of integrands at once, and any array of variances.

The method: adaptive composite Clenshaw-Curtis quadrature (33 points per
panel) of ``g(sqrt(q) z) phi(z)`` over ``z`` in [-40, 40], where the density
is not 0 in float64. The line is cut at every integer of [-10, 10] (wider
panels beyond) and at the kinks (mapped to ``z = kink / sqrt(q)``; a panel's
ends are evaluated a few ulps inside it, so a kink gives its one-sided
limits), and each panel whose value disagrees with the sum
over its two halves by more than 1e-15 of the total is bisected, up to 60
times. Cut at its kinks, each piece is smooth and the first pass is already
exact to rounding; a kink that is not declared is found by the bisection,
which converges more slowly there.

Why not plain Gauss-Hermite: its error decays only algebraically for a function
with a kink (relu, hardtanh) and slowly for poles near the real axis (tanh),
and cutting it at kinks needs half-range rules; panels do both well. Why a
closed (Clenshaw-Curtis) rather than a Gauss-Legendre panel rule: it samples
the panel ends, so an undeclared kink just inside a panel is seen (Clenshaw &
Curtis 1960; weights by Waldvogel 2006, eq. 2.4).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from berry._special import npdf_array

__all__ = ["gaussian_expectation"]


def _clenshaw_curtis(n: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Nodes cos(k pi / n), k = 0..n, and weights of the (n+1)-point Clenshaw-Curtis rule on [-1, 1].

    Weights by the cosine-sum formula (Clenshaw & Curtis 1960; Waldvogel 2006, eq. 2.4), n even.
    """
    theta = np.arange(n + 1) * np.pi / n
    j = np.arange(1, n // 2 + 1)
    b = np.where(j == n // 2, 1.0, 2.0)
    sums = (b / (4.0 * j * j - 1.0)) @ np.cos(2.0 * np.outer(j, theta))
    c = np.where((np.arange(n + 1) == 0) | (np.arange(n + 1) == n), 1.0, 2.0)
    return np.cos(theta), c / n * (1.0 - sums)


# A closed rule: it samples the panel's ends, so a kink between an end and the first interior
# node (which a Gauss rule never sees, on either side) makes the whole-panel and half-panel
# values disagree, and the bisection then finds it.
_PANEL_POINTS = 32
_NODES, _WEIGHTS = _clenshaw_curtis(_PANEL_POINTS)
# Beyond |z| = 38.5 the density underflows to 0 in float64.
_CUTOFF = 40.0
# The density and any integrand growing slower than exp(z**2 / 4) are below 1e-150 there:
# a visible contribution from beyond this point means the expectation diverges.
_TAIL_CHECK = 34.0
_RELATIVE_TOLERANCE = 1e-15
_MAX_LEVELS = 60
_MAX_PANELS = 20_000  # per level: bounds the work at about 2 million evaluations a level
# Unit panels where the density is large, wider ones in the tails (bisected if they matter there).
_GRID = np.concatenate([[-_CUTOFF, -30.0, -20.0, -15.0], np.arange(-10.0, 11.0), [15.0, 20.0, 30.0, _CUTOFF]])
# The ends of a panel are evaluated this many ulps inside it: at a declared kink the function takes its
# one-sided limit there, not its value at the kink (relu'(0)), which would look like a jump to refine.
_END_NUDGE = 4.0


class _Integrand:
    """``g(scale * z) * phi(z)`` on panels, each panel belonging to one variance (its ``owner``)."""

    def __init__(self, g: Callable[[NDArray[np.float64]], Any], scales: NDArray[np.float64], what: str,
                 finite: bool) -> None:
        self.g, self.scales, self.what, self.finite = g, scales, what, finite
        self.count: int | None = None  # integrands per call of g, learned at the first call

    def values(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """g at the points x, as k rows (k functions integrated at once)."""
        values = np.asarray(self.g(x), dtype=np.float64)
        if values.ndim == 1:
            values = values[None, :]
        if values.ndim != 2 or values.shape[1] != x.size:
            raise ValueError(f"{self.what}: g must map an array of n points to n values (or to k rows of "
                             f"n values), got shape {values.shape} for {x.size} points")
        if self.count is None:
            self.count = values.shape[0]
        return values

    def panels(self, left: NDArray[np.float64], right: NDArray[np.float64],
               owner: NDArray[np.intp]) -> NDArray[np.float64]:
        """Clenshaw-Curtis integrals over each panel ``[left, right]`` in z: shape (integrands, panels)."""
        center = 0.5 * (left + right)
        half = 0.5 * (right - left)
        z = center[:, None] + half[:, None] * _NODES[None, :]
        x = self.scales[owner][:, None] * z
        inward = np.sign(center[:, None] - z[:, [0, -1]])  # nodes 0 and -1 are the panel's right and left ends
        x[:, [0, -1]] += inward * _END_NUDGE * np.spacing(x[:, [0, -1]])
        with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
            values = self.values(x.ravel()).reshape(-1, *x.shape)
            density = _density(left.tobytes(), right.tobytes(), z)
            integrand = np.where(density > 0, values * density, 0.0)
        if self.finite and not np.all(np.isfinite(integrand)):
            row, panel, node = (int(i[0]) for i in np.nonzero(~np.isfinite(integrand)))
            where = float(x[panel, node])
            raise ValueError(
                f"{self.what} cannot be computed: the integrand is not finite at x = {where:.6g} (it is "
                f"{float(values[row, panel, node])!r} there); the function must be finite wherever the Gaussian "
                "density is not 0 (within 38.5 standard deviations) and grow slower than exp(z**2 / 4)"
            )
        return half * (integrand @ _WEIGHTS)


_DENSITIES: dict[tuple[bytes, bytes], NDArray[np.float64]] = {}


def _density(left: bytes, right: bytes, z: NDArray[np.float64]) -> NDArray[np.float64]:
    """phi(z) at the nodes of the panels (left, right): remembered, since the same panels recur.

    Every variance without a kink off the grid shares the first level's panels, and every call the tail
    check's: the mean field of a deep network integrates over the same panels at each layer.
    """
    key = (left, right)
    if key not in _DENSITIES:
        if len(_DENSITIES) >= 64:
            _DENSITIES.clear()
        _DENSITIES[key] = npdf_array(z)
    return _DENSITIES[key]


def _initial_panels(kinks: Sequence[float], scales: NDArray[np.float64]) -> tuple[NDArray[np.float64], ...]:
    """Panels between consecutive integers of [-40, 40], cut at each variance's kinks ``kink / scale``."""
    lefts, rights, owners = [], [], []
    for index, scale in enumerate(scales):
        cuts = [k / scale for k in kinks if scale > 0 and -_CUTOFF < k / scale < _CUTOFF]
        breaks = np.union1d(_GRID, cuts) if cuts else _GRID
        lefts.append(breaks[:-1])
        rights.append(breaks[1:])
        owners.append(np.full(breaks.size - 1, index))
    return np.concatenate(lefts), np.concatenate(rights), np.concatenate(owners)


def gaussian_expectation(
    g: Callable[[NDArray[np.float64]], Any],
    kinks: Sequence[float] = (),
    *,
    variance: ArrayLike = 1.0,
    what: str = "E[g(x)]",
    finite: bool = True,
) -> Any:
    """E[g(x)] for x ~ N(0, variance) and g piecewise smooth with breaks at ``kinks``, to about 1e-14 relative.

    .. math:: \\mathbb{E}[g(x)] = \\int g(\\sqrt{q}\\, z)\\, \\varphi(z)\\, dz, \\qquad q = \\text{variance}

    by adaptive composite Clenshaw-Curtis quadrature (see the module
    documentation). Also known as a Gaussian integral or Gaussian moment.

    Parameters
    ----------
    g:
        An elementwise function of a float64 array of points ``x``. It may
        return ``k`` rows (an array of shape ``(k, n)``) to integrate ``k``
        functions at the same points at once (the mean field integrates
        ``f``, ``f**2`` and ``f'**2`` together).
    kinks:
        Points ``x`` where ``g`` is not smooth (relu's 0, hardtanh's +-1).
        Undeclared kinks are found by bisection, at more evaluations.
    variance:
        ``q >= 0``, a number or an array of them (one expectation each,
        computed in one vectorized pass).
    what:
        How errors name the expectation (e.g. ``"E[f(z)**2] of gelu"``).
    finite:
        True (default): an integrand that is not finite is an error. False:
        its inf or nan is the result (the mean field of a network whose
        variance has overflowed).

    Returns
    -------
    A float for a scalar variance and one integrand; else an array of shape
    ``(k, *variance.shape)`` (``k`` dropped for a one-row ``g``).

    Raises
    ------
    ValueError
        A variance that is negative or NaN; an integrand that is not finite
        where the density is not 0 (unless ``finite=False``); an expectation
        that diverges.

    Examples
    --------
    >>> import numpy as np
    >>> from berry._gaussian import gaussian_expectation
    >>> round(gaussian_expectation(lambda x: np.maximum(x, 0) ** 2, (0.0,)), 15)    # relu: 1/2
    0.5
    >>> np.round(gaussian_expectation(lambda x: x ** 2, variance=[0.5, 2.0]), 15).tolist()
    [0.5, 2.0]
    >>> np.round(gaussian_expectation(lambda x: np.stack([np.tanh(x), np.tanh(x) ** 2]), variance=1.0), 6).tolist()
    [0.0, 0.394294]
    """
    q = np.asarray(variance, dtype=np.float64)
    if np.any(np.isnan(q)) or np.any(q < 0) or (finite and not np.all(np.isfinite(q))):
        raise ValueError(f"variance must be {'finite and ' if finite else ''}>= 0, got {variance!r}")
    scales = np.sqrt(q.reshape(-1))
    integrand = _Integrand(g, scales, what, finite)
    points = [float(k) for k in kinks]
    # A zero variance is a point mass at 0: E[g] = g(0), no quadrature (its panels would all be one point).
    degenerate = scales == 0
    at_zero = integrand.values(np.zeros(1)) if degenerate.any() else None
    left, right, owner = _initial_panels(points, scales)
    live = ~degenerate[owner]
    left, right, owner = left[live], right[live], owner[live]
    accepted: list[tuple[NDArray[np.float64], NDArray[Any]]] = []
    scale = np.zeros((integrand.count or 1, scales.size))
    for level in range(_MAX_LEVELS if left.size else 0):
        middle = 0.5 * (left + right)
        # The whole panels and both halves in one call of g (a call has a fixed cost: NumPy, ndtr's loops).
        count = left.size
        parts = integrand.panels(np.concatenate([left, left, middle]), np.concatenate([right, middle, right]),
                                 np.tile(owner, 3))
        whole, halves = parts[:, :count], parts[:, count:2 * count] + parts[:, 2 * count:]
        if level == 0:
            # The size of each expectation (per integrand and variance) that the tolerance is relative to.
            scale = np.stack([np.bincount(owner, np.abs(row), minlength=scales.size) for row in halves])
        with np.errstate(invalid="ignore"):  # inf - inf where finite=False: such panels are accepted below
            converged = np.all(np.abs(whole - halves) <= _RELATIVE_TOLERANCE * scale[:, owner], axis=0)
        # A panel too narrow to bisect further, or not finite (finite=False), is accepted as it is.
        converged |= (right - left) <= 1e-12 * np.maximum(1.0, np.abs(left))
        converged |= ~np.all(np.isfinite(whole) & np.isfinite(halves), axis=0)
        # The last level, or too many unresolved panels (a pathological callable): accept the estimate.
        if level == _MAX_LEVELS - 1 or np.count_nonzero(~converged) > _MAX_PANELS:
            converged[:] = True
        accepted.append((halves[:, converged], owner[converged]))
        if converged.all():
            break
        keep = ~converged
        left, middle, right, owner = left[keep], middle[keep], right[keep], owner[keep]
        left, right, owner = np.concatenate([left, middle]), np.concatenate([middle, right]), np.tile(owner, 2)
    totals = np.zeros((integrand.count or 1, scales.size))
    if accepted:
        values = np.concatenate([piece for piece, _ in accepted], axis=1)
        owners = np.concatenate([which for _, which in accepted])
        # Each expectation summed exactly (fsum) over its panels, so the order of the panels does not matter.
        order = np.argsort(owners, kind="stable")
        bounds = np.searchsorted(owners[order], np.arange(scales.size + 1))
        totals = np.array([[_sum(row[order[bounds[i]:bounds[i + 1]]]) for i in range(scales.size)]
                           for row in values])
        _check_tail(integrand, scales, scale)
    if at_zero is not None:
        totals[:, degenerate] = at_zero
    shaped = totals.reshape(totals.shape[0], *q.shape)
    if integrand.count == 1:
        shaped = shaped[0]
    return float(shaped) if shaped.ndim == 0 else shaped


def _sum(pieces: NDArray[np.float64]) -> float:
    """The exact sum of finite pieces (fsum); inf or nan where a piece is not finite (finite=False)."""
    if np.all(np.isfinite(pieces)):
        return math.fsum(pieces)
    with np.errstate(invalid="ignore"):
        return float(np.sum(pieces))


def _check_tail(integrand: _Integrand, scales: NDArray[np.float64], scale: NDArray[np.float64]) -> None:
    """A visible contribution from beyond |z| = 34 means the expectation diverges."""
    count = scales.size
    owner = np.repeat(np.arange(count), 2)
    left = np.tile([-_CUTOFF, _TAIL_CHECK], count)
    right = np.tile([-_TAIL_CHECK, _CUTOFF], count)
    tail = np.abs(integrand.panels(left, right, owner))
    per_variance = tail[:, 0::2] + tail[:, 1::2]
    diverging = (scale > 0) & (per_variance > 1e-12 * scale)
    if diverging.any():
        row, index = (int(i[0]) for i in np.nonzero(diverging))
        raise ValueError(
            f"{integrand.what} does not converge for x ~ N(0, {float(scales[index]) ** 2:.6g}): the function grows "
            f"too fast (the integrand is still {float(per_variance[row, index]):.3g} beyond |z| = {_TAIL_CHECK:g})"
        )
