"""Complex weights with ``jax.nn.initializers``' meaning, drawn from berry's keyed stream.

JAX gives complex dtypes (``complex64``, ``complex128``) to ``normal``,
``variance_scaling`` and its named rules (``glorot_*``, ``he_*``,
``lecun_*``), ``orthogonal`` and ``delta_orthogonal``; "variance" then means
:math:`E|w|^2`. berry reproduces each law (checked by KS tests against the
exact laws in ``tests/test_jax_complex.py``), with :math:`\\sigma` the real
rule's std:

* ``"normal"`` (``normal``, ``variance_scaling(..., "normal")``): real and
  imaginary parts independent :math:`N(0, \\sigma^2/2)`, so
  :math:`E|w|^2 = \\sigma^2` (JAX's ``random.normal`` for complex dtypes).
* ``"uniform"`` (``variance_scaling(..., "uniform")``, ``*_uniform``):
  uniform on the disk of radius :math:`\\sqrt{2}\\sigma`,
  :math:`w = \\sigma \\sqrt{2 u_1}\\, e^{2\\pi i u_2}`, so :math:`E|w|^2 = \\sigma^2`
  (JAX's ``_complex_uniform``).
* ``"truncated_normal"`` (``variance_scaling``'s default, ``*_normal``): the
  complex normal of unit :math:`E|z|^2` with its modulus truncated to 2,
  :math:`|z|^2 = -\\log(1 - (1 - e^{-4}) u_1)` and angle :math:`2\\pi u_2`,
  times :math:`\\sigma / 0.95311164380491208` (JAX's
  ``_complex_truncated_normal`` and constant). That constant is
  :math:`\\sqrt{1 - 5e^{-4}}`, the second moment of the truncated modulus
  *before* renormalization, so JAX's (and berry's) :math:`E|w|^2` is
  :math:`\\sigma^2 / (1 - e^{-4}) \\approx 1.0187\\,\\sigma^2`, not
  :math:`\\sigma^2`; berry keeps JAX's law rather than correct it.
* ``"orthogonal"``: a Haar-distributed unitary (semi-unitary) matrix: a
  complex Gaussian matrix's QR factor with the phases of ``R``'s diagonal
  divided out (Mezzadri 2007, "How to generate random matrices from the
  classical compact groups", Notices of the AMS), times ``scale``. Unlike the
  real orthogonal (:func:`berry.distributions.orthogonal_matrix`), this uses
  LAPACK's QR, so its last bits may depend on the LAPACK build.

Stream layout (region-addressable): a complex tensor of shape ``S`` reads the
real tensor of shape ``(*S, 2)`` under the same name, element ``(*i, 0)`` and
``(*i, 1)`` for element ``i``: the real and imaginary parts for ``"normal"``
(so the complex tensor is that float tensor viewed as complex), the radius
and angle uniforms for the two disk laws. A region ``R`` of the complex
tensor is the region ``(*R, 0:2)`` of that real tensor, so each shard draws
only its own values. The values are computed in float64 (the normal parts in
the real dtype, as :func:`berry.sample` does) and rounded once.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from berry.sampling import InitSpec

__all__ = ["COMPLEX_LAWS", "TRUNCATED_COMPLEX_STD", "complex_values", "real_dtype_of"]

#: The laws a complex initializer can draw (see the module documentation).
COMPLEX_LAWS = ("normal", "uniform", "truncated_normal", "orthogonal", "delta_orthogonal")

#: JAX's divisor for the complex truncated normal: sqrt(1 - 5 e^-4) (see the module documentation).
TRUNCATED_COMPLEX_STD = 0.95311164380491208
#: The complex truncated normal's modulus is at most 2: its squared modulus is at most 4.
_TRUNCATED_SQUARED_RADIUS = 4.0

Region = tuple[slice, ...]


def real_dtype_of(dtype: np.dtype) -> np.dtype:
    """``float32`` for ``complex64``, ``float64`` for ``complex128``."""
    return np.dtype(np.float32 if np.dtype(dtype) == np.complex64 else np.float64)


def _pair_region(shape: tuple[int, ...], region: Region | None) -> tuple[slice, ...]:
    given = () if region is None else tuple(region)
    return (*given, *(slice(0, n) for n in shape[len(given) :]), slice(0, 2))


def _uniform_pairs(shape: tuple[int, ...], region: Region | None, seed: int, name: str) -> np.ndarray:
    """Two uniforms on (0, 1) per element, float64: ``[..., 0]`` the radius', ``[..., 1]`` the angle's."""
    spec = InitSpec(distribution="uniform", low=0.0, high=1.0)
    return spec((*shape, 2), seed=seed, name=name, region=_pair_region(shape, region), dtype="float64")


def _polar(radius: np.ndarray, turns: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``radius * exp(2 pi i turns)`` in complex128, rounded once to ``dtype``."""
    angle = 2.0 * math.pi * turns
    return (radius * np.cos(angle) + 1j * (radius * np.sin(angle))).astype(dtype)


def complex_values(
    law: str,
    *,
    sigma: float,
    shape: tuple[int, ...],
    seed: int,
    name: str,
    dtype: np.dtype,
    region: Region | None = None,
    column_axis: int = -1,
) -> np.ndarray:
    """The complex values of ``law`` (see the module documentation) for one region, in ``dtype``.

    ``sigma`` is the real rule's std (or ``normal``'s stddev, ``orthogonal``'s
    scale); ``column_axis`` places the columns of an orthogonal matrix as in JAX.
    """
    if law == "normal":
        real = real_dtype_of(dtype)
        spec = InitSpec(distribution="normal", std=abs(sigma) / math.sqrt(2.0))
        parts = spec((*shape, 2), seed=seed, name=name, region=_pair_region(shape, region), dtype=real)
        values = np.ascontiguousarray(parts).view(dtype)[..., 0]
        return -values if sigma < 0 else values
    if law == "uniform":
        u = _uniform_pairs(shape, region, seed, name)
        return _polar(sigma * np.sqrt(2.0 * u[..., 0]), u[..., 1], dtype)
    if law == "truncated_normal":
        u = _uniform_pairs(shape, region, seed, name)
        mass = -math.expm1(-_TRUNCATED_SQUARED_RADIUS)  # 1 - e^-4: P(|z| <= 2) for the unit complex normal
        squared = -np.log1p(-mass * u[..., 0])
        return _polar((sigma / TRUNCATED_COMPLEX_STD) * np.sqrt(squared), u[..., 1], dtype)
    if law in ("orthogonal", "delta_orthogonal"):
        whole = _unitary(shape, sigma, seed, name, dtype, column_axis, delta=law == "delta_orthogonal")
        return whole if region is None else np.ascontiguousarray(whole[region])
    raise ValueError(f"law={law!r} has no complex form; complex laws: {', '.join(COMPLEX_LAWS)}")


def _haar_unitary(rows: int, cols: int, seed: int, name: str) -> np.ndarray:
    """A Haar ``(rows, cols)`` complex128 matrix with orthonormal rows or columns (the smaller side)."""
    n, m = max(rows, cols), min(rows, cols)
    gaussian = InitSpec(distribution="normal", std=1.0)((n, m, 2), seed=seed, name=name, dtype="float64")
    q, r = np.linalg.qr(np.ascontiguousarray(gaussian).view(np.complex128)[..., 0])
    diagonal = np.diagonal(r)
    magnitude = np.abs(diagonal)
    q = q * np.where(magnitude > 0, diagonal / np.where(magnitude > 0, magnitude, 1.0), 1.0)
    return q if rows >= cols else q.T


def _unitary(
    shape: tuple[int, ...], scale: float, seed: int, name: str, dtype: np.dtype, column_axis: int, *, delta: bool
) -> Any:
    if delta:  # the (in, out) matrix at the kernel's spatial centre, zeros elsewhere (JAX's delta_orthogonal)
        out = np.zeros(shape, dtype=dtype)
        center = tuple((k - 1) // 2 for k in shape[:-2])
        out[center] = _unitary(shape[-2:], scale, seed, name, dtype, column_axis, delta=False)
        return out
    if 0 in shape:
        return np.zeros(shape, dtype=dtype)
    axis = column_axis % len(shape)
    cols = shape[axis]
    others = shape[:axis] + shape[axis + 1 :]
    matrix = _haar_unitary(math.prod(others), cols, seed, name) * scale
    return np.moveaxis(matrix.reshape((*others, cols)), -1, axis).astype(dtype)
