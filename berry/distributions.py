"""Arrays from the keyed stream: the elementwise laws and the structural initializers.

This module turns validated arguments into values; :func:`berry.sample` (in
:mod:`berry.sampling`) is the front door that checks the arguments, picks the
scale from a rule and calls these functions. Every function here writes the
values of one *region* (a box of the global tensor, given as a tuple of
slices with explicit, in-bounds starts and stops) into an array ``out`` of the
region's shape.

Two families
------------
*Elementwise* laws (normal, truncated normal, uniform, and the nonzeros of
:func:`sparse`) are generated straight from the keyed stream
(:func:`berry.stream.fill`): element ``i`` of the global tensor depends only on
``(key, i, law)``, so a region costs its own size and equals the slice of the
full tensor bit for bit, on every machine and for any thread count.

*Whole-matrix* initializers (:func:`orthogonal`, :func:`delta_orthogonal`)
draw Gaussian vectors from the stream (bit-exact everywhere) and turn them
into a Haar orthogonal matrix with Householder reflectors (Stewart 1980, see
:func:`orthogonal_matrix`), using NumPy's matrix products (in float64 for
float64 outputs, in float32 for the others) and a small ``numpy.linalg.inv``.
They compute the full matrix and slice it. Only the last bits of those
products can depend on the BLAS build, the CPU kernel and the BLAS thread
count (``threads=`` sets the stream's threads only). berry promises
agreement to ``1e-6`` (absolute, every entry) between any two machines, BLAS
builds and thread counts, not identical bits. Measured on an AMD EPYC with
NumPy 2.4's bundled OpenBLAS 0.3.31 (n x n for n = 64 ... 2048, 1024 x 256,
1000 x 300 and their transposes), against one OpenBLAS thread:

* 2 and 4 OpenBLAS threads: float64 identical bits for most shapes, entries
  differing by up to ``2e-16`` for some (300 x 300, 700 x 700); float32
  entries differ by up to ``1.7e-7`` (most entries differ in the last bits);
* other CPU kernels of OpenBLAS (``OPENBLAS_CORETYPE`` Sandybridge, Prescott
  against Haswell): float64 entries differ by up to ``1.4e-15``, float32
  entries by up to ``2.1e-7``.
* MKL (the same algorithm with torch's matrix products and inverse, 1 and 2
  threads): float64 entries differ by up to ``4.2e-15``, float32 entries by
  up to ``1.8e-7``.

Deterministic initializers (:func:`eye`, :func:`dirac`, :func:`constant`)
compute each region directly, and :func:`sparse` uses only keyed values and
a keyed ranking (no LAPACK), so they are exact everywhere.

Layouts
-------
``"channels_last"`` is ``(..., in, out)`` (Keras, JAX, TensorFlow) and
``"torch"`` is ``(out, in, *kernel)`` (see :mod:`berry.fans`). The output axis
is ``-1`` in the first and ``0`` in the second; :func:`orthogonal` makes the
output units' weight vectors orthonormal (or the input units', whichever side
is smaller), :func:`delta_orthogonal` and :func:`dirac` put their matrix on the
(in, out) plane of the kernel's spatial center.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from berry import _lowp, _special, stream

__all__ = [
    "DISTRIBUTIONS",
    "constant",
    "constant_value",
    "delta_orthogonal",
    "dirac",
    "elementwise_law",
    "eye",
    "fill_elementwise",
    "orthogonal",
    "orthogonal_matrix",
    "out_axis_for",
    "sparse",
    "sparse_zero_count",
    "uniform_bound",
]

#: The elementwise distributions, by canonical name.
DISTRIBUTIONS = ("normal", "truncated_normal", "uniform")

Region = tuple[slice, ...]


def uniform_bound(std: float) -> float:
    """Half-width of the zero-mean uniform law with standard deviation ``std``.

    The variance of ``U(-h, h)`` is ``h^2 / 3``, so the half-width for a
    standard deviation :math:`\\sigma` is

    .. math::

        h = \\sqrt{3}\\, \\sigma

    This is the one place berry derives a uniform bound from a std.

    Examples
    --------
    >>> round(uniform_bound(1.0), 6)
    1.732051
    """
    return math.sqrt(3.0) * std


def elementwise_law(
    distribution: str,
    *,
    mean: float = 0.0,
    std: float = 1.0,
    bounds: tuple[float, float] = (-2.0, 2.0),
    correct_variance: bool = True,
    low: float | None = None,
    high: float | None = None,
) -> Any:
    """The stream law for an elementwise distribution at a given scale.

    ``normal``: :math:`N(\\mu, \\sigma)`.

    ``uniform``: :math:`U(\\mu - \\sqrt{3}\\sigma, \\mu + \\sqrt{3}\\sigma)`, or
    :math:`U(low, high)` when both bounds are given.

    ``truncated_normal``: a normal of location :math:`\\mu` and scale :math:`s`
    truncated to :math:`[\\mu + a s, \\mu + b s]`, with ``(a, b) = bounds`` in
    units of the parent scale ``s`` (as TensorFlow, JAX and Keras). With
    ``correct_variance`` the parent scale is divided by the standard deviation
    of the standard normal truncated to ``[a, b]`` (computed by berry's own
    deterministic special functions), so the samples' std is :math:`\\sigma`:

    .. math::

        s = \\sigma / \\operatorname{sd}(Z \\mid a \\le Z \\le b), \\quad Z \\sim N(0, 1)

    Without it, :math:`s = \\sigma` is the parent normal's std, as
    ``torch.nn.init.trunc_normal_`` and TensorFlow's ``truncated_normal``
    (for bounds ``(-2, 2)`` the samples' std is then ``0.88 * sigma``).

    Examples
    --------
    >>> law = elementwise_law("truncated_normal", std=1.0)
    >>> round(law.scale, 4)       # 1 / 0.8796, the std of N(0, 1) truncated to [-2, 2]
    1.1368
    """
    if distribution == "normal":
        return stream.Normal(mean, std)
    if distribution == "uniform":
        if low is not None and high is not None:
            return stream.Uniform(low, high)
        half_width = uniform_bound(std)
        if not math.isfinite(abs(mean) + 2.0 * half_width):
            raise ValueError(
                f"a uniform law of mean={mean!r} and std={std!r} has the half-width sqrt(3) * std = {half_width!r}: "
                f"its bounds or its width overflow float64; use a smaller std"
            )
        return stream.Uniform(mean - half_width, mean + half_width)
    if distribution == "truncated_normal":
        a, b = bounds
        scale = std
        if correct_variance and std > 0:
            try:
                truncated_std = _special.truncnorm_std(a, b)
            except ValueError as error:
                raise ValueError(f"bounds={bounds!r} cannot be sampled: {error}") from None
            if not (math.isfinite(truncated_std) and truncated_std > 0):
                raise ValueError(
                    f"bounds={bounds!r} is too narrow or too far in the tail to correct the variance "
                    f"(the truncated std is {truncated_std!r}); widen the interval or pass correct_variance=False"
                )
            scale = std / truncated_std
            if not math.isfinite(scale):
                raise ValueError(
                    f"std={std!r} divided by the std of N(0, 1) on bounds={bounds!r} ({truncated_std!r}) overflows "
                    f"float64; use a smaller std"
                )
        try:
            return stream.TruncatedNormal(mean, scale, a, b)
        except ValueError as error:
            raise ValueError(f"bounds={bounds!r} cannot be sampled (mean={mean!r}, std={std!r}): {error}") from None
    raise ValueError(f"distribution={distribution!r} is not elementwise; allowed: {', '.join(DISTRIBUTIONS)}")


def _starts(region: Region) -> tuple[int, ...]:
    return tuple(int(piece.start) for piece in region)


def fill_elementwise(
    out: np.ndarray,
    law: Any,
    *,
    key: int,
    shape: tuple[int, ...],
    region: Region,
    threads: int | None = None,
) -> None:
    """Write the region ``region`` of the global tensor of law ``law`` into ``out``.

    Costs time proportional to ``out.size``; equals the same slice of the full
    tensor bit for bit.
    """
    value = constant_value(law)
    if value is not None:
        # A zero-width law is a constant; the stream would insist that it be representable in the dtype.
        check_fits("low" if isinstance(law, stream.Uniform) else "mean", value, out.dtype)
        store(out, np.float64(value))
        return
    stream.fill(out, law, key=key, global_shape=shape, region_start=_starts(region), threads=threads)


def constant_value(law: stream.Law) -> float | None:
    """The one value of a law of zero width (``low == high``, or ``scale == 0``), else ``None``.

    Such a law is a constant, written as one (rounded once to the dtype) by every path: the host's
    :func:`fill_elementwise` and the device kernels' adapter (:mod:`berry.torch._device`).

    >>> from berry.stream import Normal, Uniform
    >>> constant_value(Uniform(0.5, 0.5)), constant_value(Normal(1.0, 0.0)), constant_value(Normal(0.0, 1.0))
    (0.5, 1.0, None)
    """
    if isinstance(law, stream.Uniform):
        return law.low if law.high - law.low == 0 else None
    return law.loc if law.scale == 0 else None


def store(out: np.ndarray, values: Any, where: Any = Ellipsis) -> None:
    """Round float64 ``values`` once to ``out``'s dtype and write them to ``out[where]``."""
    if _lowp.small_format(out.dtype) is None:
        out[where] = values
    else:
        # float16/bfloat16 straight from the float64 bits, never through float32 (double rounding).
        out[where] = _lowp.round_float64(np.atleast_1d(np.asarray(values, dtype=np.float64)), out.dtype)


def check_fits(argument: str, value: float, dtype: np.dtype) -> None:
    """An error naming ``argument`` when ``value`` (the largest magnitude written) overflows ``dtype``."""
    largest = _lowp.largest_finite(np.dtype(dtype))
    if abs(float(value)) > largest:
        raise ValueError(
            f"{argument}={value!r} gives values beyond the largest finite {np.dtype(dtype).name} ({largest:.4g}); "
            f"use a smaller {argument} or a wider dtype"
        )


def out_axis_for(layout: str, rank: int) -> int:
    """The output-unit axis of a kernel: ``0`` in torch layout, ``rank - 1`` in channels-last."""
    return 0 if layout == "torch" else rank - 1


# -- whole-matrix initializers ------------------------------------------------------------------



def _orthogonal_dtype(out: np.ndarray) -> np.dtype:
    """Float64 for float64 outputs; float32 (orthonormal to about 3e-7, twice as fast) for the others."""
    return np.dtype(np.float64 if out.dtype == np.float64 else np.float32)


def _orthogonal_block(m: int) -> int:
    """Reflectors per block in :func:`orthogonal_matrix` (compact WY), measured fastest for ``m`` reflectors."""
    return 32 if m < 384 else 64 if m < 1024 else 128


def orthogonal_matrix(
    rows: int, cols: int, *, key: int, threads: int | None = None, dtype: Any = np.float64
) -> np.ndarray:
    """A Haar-distributed ``(rows, cols)`` matrix with orthonormal rows or columns (float64 or float32).

    The smaller side is orthonormal: ``Q Q^T = I`` when ``rows <= cols``,
    ``Q^T Q = I`` when ``rows >= cols``. With ``n = max(rows, cols)`` and
    ``m = min(rows, cols)``, the tall ``(n, m)`` matrix is the first ``m``
    columns of a Haar-distributed (uniform) matrix of the orthogonal group
    ``O(n)``, i.e. a Haar point of the Stiefel manifold; wide matrices are its
    transpose.

    Algorithm (Stewart 1980, "The efficient generation of random orthogonal
    matrices with an application to condition estimators", SIAM J. Numer.
    Anal. 17(3)). The classic recipe factors a Gaussian matrix ``G = QR`` and
    fixes the signs so that ``R`` has a positive diagonal (Mezzadri 2007, "How
    to generate random matrices from the classical compact groups", Notices of
    the AMS); that ``Q`` is Haar. Run Householder QR on ``G``: the first
    reflector ``H_1`` depends only on the first column, and by the rotational
    invariance of the Gaussian law the transformed remaining columns ``H_1
    G[:, 1:]`` are again independent standard Gaussians. So the ``k``-th
    reflector is built from a *fresh* Gaussian vector
    :math:`x_k \\in \\mathbb{R}^{n-k+1}` and no factorization is needed:

    .. math::

        Q = H_1 H_2 \\cdots H_m \\begin{bmatrix} I_m \\\\ 0 \\end{bmatrix} D, \\qquad
        H_k = I - \\tau_k v_k v_k^T, \\qquad D = \\operatorname{diag}(\\operatorname{sign} r_{kk})

    where :math:`H_k` (acting on coordinates ``k..n``) maps :math:`x_k` to
    :math:`r_{kk} e_1` with :math:`r_{kk} = -\\operatorname{sign}(x_{k,1}) \\lVert x_k \\rVert`
    (LAPACK's ``dlarfg`` convention, :math:`v_{k,1} = 1`), and ``D`` is
    Mezzadri's sign correction. The law of ``Q`` is exactly Haar; for
    instance its first column is :math:`x_1 / \\lVert x_1 \\rVert`, uniform on
    the sphere. (For ``n = m`` the last "reflector" acts on one coordinate:
    :math:`H_m d_m = \\operatorname{sign}(x_m)`, a fair random sign, so both
    signs of the determinant are equally likely.)

    ``Q`` is formed by backward accumulation of blocks of 32 to 128 reflectors
    in compact WY form, :math:`H_j \\cdots H_{j+b-1} = I - V T V^T` (Schreiber and
    Van Loan 1989), with :math:`T^{-1} = \\operatorname{striu}(V^T V) +
    \\tfrac12 \\operatorname{diag}(V^T V)` (the UT transform of Joffrain, Low,
    Quintana-Ortí, van de Geijn and Van Zee 2006; :math:`\\tau_k = 2 / v_k^T v_k`),
    as LAPACK's ``dorgqr``, so almost all of the :math:`2 n m^2 - \\tfrac{2}{3} m^3`
    flops are matrix products: half the work of QR-factoring ``G`` and then
    forming ``Q`` (``geqrf`` and ``orgqr``), and none of ``geqrf``'s
    matrix-vector panels.

    ``dtype`` is float64 or float32: the reflectors are rounded to ``dtype``
    and the products computed in it, while :math:`T^{-1}` is formed in float64
    from the rounded reflectors, so every block reflector is orthogonal to
    float64 precision. Measured for n up to 4096: float64 results are
    orthonormal to ``5e-15``; float32 results to ``3e-7``, and within
    ``1.5e-7`` of the float64 matrix, at twice the speed.

    Stream layout: one keyed draw, in float64, of
    ``N = n m - m (m - 1) / 2`` standard normals (a 1-D tensor of length
    ``N``); :math:`x_k` is the ``n - k + 1`` values at offset
    ``(k - 1) n - (k - 1)(k - 2) / 2``, i.e. the lower trapezoid (diagonal
    included) of an ``(n, m)`` Gaussian matrix read column by column.

    Examples
    --------
    >>> from berry import stream
    >>> q = orthogonal_matrix(5, 3, key=stream.key_for(0, "w"))
    >>> bool(np.allclose(q.T @ q, np.eye(3)))
    True
    """
    tall = rows >= cols
    n, m = (rows, cols) if tall else (cols, rows)
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"orthogonal_matrix computes in float32 or float64, not {dtype}")
    if m == 0:
        return np.zeros((rows, cols), dtype=dtype)
    lengths = n - np.arange(m, dtype=np.int64)
    offsets = np.zeros(m + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    x = stream.draw((int(offsets[-1]),), stream.Normal(0.0, 1.0), key=key, dtype="float64", threads=threads)
    alpha = x[offsets[:-1]]
    sign = np.where(alpha < 0, -1.0, 1.0)
    # v_k = x_k / (alpha_k - r_kk) with r_kk = -sign(alpha_k) |x_k|, then v_k[0] = 1 (LAPACK's dlarfg)
    v = x  # in place
    v /= np.repeat(alpha + sign * np.sqrt(np.add.reduceat(x * x, offsets[:-1])), lengths)
    v[offsets[:-1]] = 1.0
    q = np.zeros((n, m), dtype=dtype)
    scratch = np.empty(n * m, dtype=dtype)  # V T V^T C, reused: a fresh temporary per block costs page faults
    block = _orthogonal_block(m)
    for j in reversed(range(0, m, block)):
        b = min(block, m - j)
        w = np.zeros((b, n - j), dtype=dtype)  # V^T: row i holds v_{j+i} on coordinates j+i .. n-1
        for i in range(b):
            w[i, i:] = v[offsets[j + i] : offsets[j + i + 1]]
        # T^{-1} from the reflectors as stored (rounded to dtype), in float64: H_k = I - 2 v v^T / (v^T v)
        w64 = w.astype(np.float64, copy=False)
        gram = w64 @ w64.T
        t_inverse = np.triu(gram, 1)
        t_inverse[np.diag_indices(b)] = 0.5 * np.diagonal(gram)
        t = np.triu(np.linalg.inv(t_inverse)).astype(dtype, copy=False)
        # The columns j.. are C = [[I, 0], [0, Q[j+b:, j+b:]]] so far; apply I - V T V^T to them.
        q[range(j, j + b), range(j, j + b)] = 1.0
        y = np.empty((b, m - j), dtype=dtype)
        y[:, :b] = w[:, :b]
        np.matmul(w[:, b:], q[j + b :, j + b :], out=y[:, b:])
        q[j:, j:] -= np.matmul(w.T, t @ y, out=scratch[: (n - j) * (m - j)].reshape(n - j, m - j))
    q *= (-sign).astype(dtype)  # D: sign(r_kk) = -sign(alpha_k)
    return q if tall else q.T


def orthogonal(
    out: np.ndarray,
    *,
    shape: tuple[int, ...],
    region: Region,
    key: int,
    gain: float = 1.0,
    out_axis: int = -1,
    threads: int | None = None,
) -> None:
    """Orthogonal initialization of a tensor of rank >= 2, times ``gain``.

    Saxe et al. 2014, "Exact solutions to the nonlinear dynamics of learning
    in deep linear neural networks". The tensor is read as a matrix with the
    output axis ``out_axis`` as rows and every other axis flattened (C order)
    as columns, the convention of ``torch.nn.init.orthogonal_`` (``out_axis=0``
    for ``(out, in, *k)``) and of ``jax.nn.initializers.orthogonal``
    (``column_axis=-1`` for ``(..., in, out)``). That matrix is
    :func:`orthogonal_matrix`, so

    .. math::

        W_{mat} W_{mat}^T = g^2 I \\ (out \\le rest), \\qquad W_{mat}^T W_{mat} = g^2 I \\ (out \\ge rest)

    Also known as: ``orthogonal_`` (torch), ``Orthogonal`` (Keras),
    ``orthogonal`` (JAX).

    Computes the full matrix in float64 (in float32 for float32, float16 and
    bfloat16 outputs, rounded once) and slices the region; see the module
    documentation for what the last bits guarantee.

    Examples
    --------
    >>> import berry
    >>> w = berry.sample((3, 3, 16, 32), "orthogonal", seed=0, name="conv", dtype="float64")
    >>> m = w.reshape(-1, 32)                    # (kh * kw * in, out): 32 orthonormal columns
    >>> bool(np.allclose(m.T @ m, np.eye(32)))
    True
    """
    check_fits("gain", gain, out.dtype)  # |entries| <= 1
    rank = len(shape)
    axis = out_axis % rank
    units = shape[axis]
    rest_shape = shape[:axis] + shape[axis + 1 :]
    matrix = orthogonal_matrix(units, math.prod(rest_shape), key=key, threads=threads, dtype=_orthogonal_dtype(out))
    full = np.moveaxis(matrix.reshape((units, *rest_shape)), 0, axis)
    store(out, full[region] * gain)


def delta_orthogonal(
    out: np.ndarray,
    *,
    shape: tuple[int, ...],
    region: Region,
    key: int,
    gain: float = 1.0,
    layout: str = "channels_last",
    threads: int | None = None,
) -> None:
    """Delta-orthogonal initialization of a 1-, 2- or 3-D convolution kernel, times ``gain``.

    Xiao et al. 2018, "Dynamical isometry and a mean field theory of CNNs:
    how to train 10,000-layer vanilla convolutional neural networks" (ICML).
    The kernel is zero except at the spatial center, where it holds an
    orthogonal ``(in, out)`` matrix with orthonormal rows, so the convolution
    is a norm-preserving map from the input channels (requires ``in <= out``,
    as the paper and ``jax.nn.initializers.delta_orthogonal``):

    .. math::

        W_{c, :, :} = g\\, H, \\quad H H^T = I_{in}, \\qquad W_{k, :, :} = 0 \\ (k \\ne c)

    The center is ``(k - 1) // 2`` along each spatial axis (JAX's choice; the
    lower middle for even ``k``). Layouts: ``(*k, in, out)`` or, with
    ``layout="torch"``, ``(out, in, *k)`` holding the transpose ``H^T``.

    Also known as: ``delta_orthogonal`` (JAX), ConvDelta-orthogonal.

    Examples
    --------
    >>> import berry
    >>> w = berry.sample((3, 3, 4, 8), "delta_orthogonal", seed=0, name="w", dtype="float64")
    >>> bool(np.allclose(w[1, 1] @ w[1, 1].T, np.eye(4))), bool(w[0].any())
    (True, False)
    """
    check_fits("gain", gain, out.dtype)  # |entries| <= 1
    torch_layout = layout == "torch"
    spatial_axes = range(2, len(shape)) if torch_layout else range(len(shape) - 2)
    in_channels, out_channels = (shape[1], shape[0]) if torch_layout else (shape[-2], shape[-1])
    center = [(shape[axis] - 1) // 2 for axis in spatial_axes]
    out[...] = 0
    spatial_region = [region[axis] for axis in spatial_axes]
    if not all(piece.start <= c < piece.stop for piece, c in zip(spatial_region, center, strict=True)):
        return
    local_center = tuple(c - piece.start for piece, c in zip(spatial_region, center, strict=True))
    matrix = orthogonal_matrix(out_channels, in_channels, key=key, threads=threads, dtype=_orthogonal_dtype(out))  # H^T
    if torch_layout:
        store(out, matrix[region[0], region[1]] * gain, (slice(None), slice(None), *local_center))
    else:
        store(out, matrix.T[region[-2], region[-1]] * gain, (*local_center, slice(None), slice(None)))


# -- deterministic initializers -----------------------------------------------------------------


def eye(out: np.ndarray, *, shape: tuple[int, ...], region: Region, gain: float = 1.0) -> None:
    """Identity matrices on the last two axes (leading axes are a batch), times ``gain``.

    .. math::

        W_{\\dots, i, j} = g\\, \\delta_{ij}

    Non-square matrices get ones on the main diagonal, as ``torch.nn.init.eye_``.
    Also known as: ``eye_`` (torch), ``Identity`` (Keras), identity init
    (Le et al. 2015, "A simple way to initialize recurrent networks of
    rectified linear units").

    Examples
    --------
    >>> import berry
    >>> berry.sample((2, 3), "eye", gain=2.0)
    array([[2., 0., 0.],
           [0., 2., 0.]], dtype=float32)
    """
    check_fits("gain", gain, out.dtype)
    out[...] = 0
    rows, cols = region[-2], region[-1]
    diagonal = np.arange(max(rows.start, cols.start), min(rows.stop, cols.stop))
    if diagonal.size:
        store(out, np.float64(gain), (..., diagonal - rows.start, diagonal - cols.start))


def dirac(
    out: np.ndarray,
    *,
    shape: tuple[int, ...],
    region: Region,
    groups: int = 1,
    layout: str = "channels_last",
    gain: float = 1.0,
) -> None:
    """Dirac delta kernel of a 1-, 2- or 3-D convolution: the identity map, per group, times ``gain``.

    ``torch.nn.init.dirac_`` semantics in torch layout ``(out, in, *k)``: with
    ``m = out // groups`` output channels per group, the weight is zero except

    .. math::

        W_{gm + d,\\, d,\\, c} = g \\quad (0 \\le d < \\min(m, in),\\ 0 \\le g' < groups)

    at the spatial center ``c = k // 2``, so each group's first channels copy
    their inputs. In channels-last layout ``(*k, in, out)`` the same kernel is
    stored transposed: ``W[c, d, gm + d] = g``.

    Also known as: ``dirac_`` (torch), identity convolution.

    Examples
    --------
    >>> import berry
    >>> w = berry.sample((4, 2, 3), "dirac", layout="torch", groups=2)
    >>> w[:, :, 1]                             # the center tap: each group copies its inputs
    array([[1., 0.],
           [0., 1.],
           [1., 0.],
           [0., 1.]], dtype=float32)
    """
    check_fits("gain", gain, out.dtype)
    torch_layout = layout == "torch"
    rank = len(shape)
    out_axis, in_axis = (0, 1) if torch_layout else (rank - 1, rank - 2)
    spatial_axes = list(range(2, rank)) if torch_layout else list(range(rank - 2))
    per_group = shape[out_axis] // groups
    copies = min(per_group, shape[in_axis])
    out[...] = 0
    if per_group == 0 or not all(region[axis].start <= shape[axis] // 2 < region[axis].stop for axis in spatial_axes):
        return
    # Only the region's own nonzeros, W[g m + d, d, centre] for d < copies: group g meets the region's output
    # rows [o0, o1) for d in [o0 - g m, o1 - g m), so the work is proportional to the region, not the kernel.
    o0, o1 = region[out_axis].start, region[out_axis].stop
    i0, i1 = region[in_axis].start, min(region[in_axis].stop, copies)
    if o0 >= o1 or i0 >= i1:
        return
    group = np.arange(o0 // per_group, min((o1 - 1) // per_group, groups - 1) + 1, dtype=np.int64)
    first = np.maximum(i0, o0 - group * per_group)
    counts = np.maximum(np.minimum(i1, o1 - group * per_group) - first, 0)
    starts = np.cumsum(counts) - counts  # where each group's run begins in the flat list
    channel = np.repeat(first - starts, counts) + np.arange(int(counts.sum()), dtype=np.int64)
    coordinates: list[Any] = [None] * rank
    coordinates[out_axis] = np.repeat(group * per_group, counts) + channel - o0
    coordinates[in_axis] = channel - region[in_axis].start
    for axis in spatial_axes:
        coordinates[axis] = shape[axis] // 2 - region[axis].start
    store(out, np.float64(gain), tuple(coordinates))


def constant(out: np.ndarray, value: float) -> None:
    """Every element equal to ``value`` (rounded once to the output dtype).

    Also known as: ``constant_``/``zeros_``/``ones_`` (torch), ``Constant``/``Zeros``/``Ones`` (Keras).

    Examples
    --------
    >>> import berry
    >>> berry.sample((2, 2), "constant", value=0.5, dtype="float16")
    array([[0.5, 0.5],
           [0.5, 0.5]], dtype=float16)
    """
    check_fits("value", value, out.dtype)
    store(out, np.float64(value))


# -- sparse ------------------------------------------------------------------------------------


def sparse_zero_count(rows: int, sparsity: float) -> int:
    """Zeros per column: ``ceil(sparsity * rows)``, as ``torch.nn.init.sparse_``.

    Examples
    --------
    >>> sparse_zero_count(10, 0.1), sparse_zero_count(10, 0.15), sparse_zero_count(7, 0.0)
    (1, 2, 0)
    """
    return math.ceil(sparsity * rows)


def sparse(
    out: np.ndarray,
    law: Any,
    *,
    shape: tuple[int, ...],
    region: Region,
    key: int,
    sparsity: float,
    threads: int | None = None,
) -> None:
    """Sparse initialization of a 2-D matrix: a fixed number of zeros in every column.

    Martens 2010, "Deep learning via Hessian-free optimization" (ICML), with
    ``torch.nn.init.sparse_``'s meaning of ``sparsity``: each column of the
    ``(rows, cols)`` array gets exactly

    .. math::

        n_0 = \\lceil sparsity \\cdot rows \\rceil

    zeros at rows chosen uniformly at random, and the other entries are drawn
    from ``law`` (torch: :math:`N(0, 0.01)`). In channels-last layout
    ``(in, out)`` a column is one output unit, so each unit has a fixed number
    of nonzero incoming weights, Martens' original scheme; in torch layout
    ``(out, in)`` it is one input unit's outgoing weights, exactly as torch.

    The zero rows of column ``j`` are the ``n_0`` smallest of ``rows`` keyed
    uniforms in that column (from a key derived from ``key``), so a region
    computes only its own columns (all rows of them) and equals the slice of
    the full matrix bit for bit.

    Also known as: ``sparse_`` (torch), sparse initialization (Martens).

    Examples
    --------
    >>> import berry
    >>> w = berry.sample((10, 6), "sparse", sparsity=0.3, seed=0, name="w")
    >>> (w == 0).sum(axis=0)                   # ceil(0.3 * 10) zeros in every column
    array([3, 3, 3, 3, 3, 3])
    """
    fill_elementwise(out, law, key=key, shape=shape, region=region, threads=threads)
    rows = shape[0]
    zeros_per_column = sparse_zero_count(rows, sparsity)
    row_piece, column_piece = region
    columns = column_piece.stop - column_piece.start
    if zeros_per_column == 0 or out.size == 0:
        return
    # Column blocks keep the scratch (ranking uniforms, their order, the mask) near 32 MiB.
    block = max(1, _SPARSE_SCRATCH_ELEMENTS // rows)
    for first in range(0, columns, block):
        width = min(block, columns - first)
        ranks = np.empty((rows, width), dtype=np.float64)
        stream.fill(
            ranks,
            stream.Uniform(0.0, 1.0),
            key=stream.key_for(key, "berry.sparse.zero-rows"),
            global_shape=shape,
            region_start=(0, column_piece.start + first),
            threads=threads,
        )
        zero_rows = np.argsort(ranks, axis=0, kind="stable")[:zeros_per_column]
        is_zero = np.zeros((rows, width), dtype=bool)
        is_zero[zero_rows, np.arange(width)] = True
        out[:, first : first + width][is_zero[row_piece.start : row_piece.stop]] = 0


_SPARSE_SCRATCH_ELEMENTS = 1 << 21


def region_shape(region: Sequence[slice]) -> tuple[int, ...]:
    """The shape of a region with explicit starts and stops."""
    return tuple(int(piece.stop) - int(piece.start) for piece in region)
