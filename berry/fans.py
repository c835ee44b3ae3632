"""Fan-in and fan-out of a weight tensor, for every kernel layout.

A layer's *fan-in* is the number of inputs that feed one output unit and its
*fan-out* the number of outputs that one input unit feeds. Scale rules turn
them into a standard deviation (see :mod:`berry.initializations`).

Layouts
-------
``"channels_last"`` (the default, and the seed's): ``(..., in, out)``, as in
Keras, JAX/Flax and TensorFlow. ``[1500, 500]`` is a dense kernel with
1500 inputs and 500 outputs; ``(kh, kw, in, out)`` is a 2-D convolution.

``"torch"``: ``(out, in, *kernel)``, as in ``torch.nn.Linear`` and
``torch.nn.Conv*d``. For ``torch.nn.ConvTranspose*d`` the weight is
``(in, out // groups, *kernel)``: pass ``transposed=True``.

In both, every axis that is neither the input nor the output axis is a
receptive-field axis and multiplies both fans (JAX's ``_compute_fans`` and
Keras' ``compute_fans`` do the same). ``in_axis``, ``out_axis`` and
``batch_axis`` override the layout with explicit axes, exactly as in
``jax.nn.initializers.variance_scaling``: batch axes (stacked layers,
experts) count in neither fan, and several input or output axes (einsum or
attention kernels such as ``(d_model, heads, head_dim)``) multiply.

Rank 0 and rank 1
-----------------
The libraries disagree: torch refuses tensors under 2-D, JAX indexes axis -2
and fails, Keras takes ``fan_in = fan_out = n`` for a vector and 1 for a
scalar. berry follows Keras: a scalar has fans ``(1, 1)`` and a vector of
length ``n`` has fans ``(n, n)``, so every rule gives a number for a bias or
a gain vector; pass explicit fans if you mean something else.

Zero-size dimensions
--------------------
Fans are the plain products, so a zero-size dimension gives a zero fan.
The scale rules reject a zero fan with a clear error (a std of ``1/sqrt(0)``
is meaningless); :func:`berry.sample` never asks for it, because sampling a
zero-size tensor is a no-op.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

from berry._validation import check_choice, check_int, check_shape, shown

__all__ = ["CONVENTIONS", "LAYOUTS", "Fans", "compute_fans", "fans_for", "normalize_axes"]

#: Whose rules read fans from axes: berry's, ``jax.nn.initializers``' or Keras' (see :func:`compute_fans`).
CONVENTIONS = ("berry", "jax", "keras")

#: Accepted layout names; aliases name the frameworks that use each layout.
LAYOUTS: dict[str, str] = {
    "channels_last": "channels_last",
    "keras": "channels_last",
    "jax": "channels_last",
    "flax": "channels_last",
    "tensorflow": "channels_last",
    "torch": "torch",
    "pytorch": "torch",
}


class Fans(NamedTuple):
    """The fans of a weight tensor: inputs per output unit, outputs per input unit."""

    fan_in: int
    fan_out: int


def normalize_axes(argument: str, value: int | Sequence[int], rank: int) -> tuple[int, ...]:
    """Normalize an axis or a sequence of axes to non-negative indices."""
    raw = (value,) if isinstance(value, int) or not isinstance(value, Sequence) else tuple(value)
    result = []
    for axis in raw:
        index = check_int(argument, axis)
        if not -rank <= index < rank:
            raise ValueError(
                f"{argument}={value!r} is out of range for a shape of rank {rank}; "
                f"allowed axes are {-rank}..{rank - 1}"
            )
        result.append(index % rank)
    if len(set(result)) != len(result):
        raise ValueError(f"{argument}={value!r} names the same axis twice")
    return tuple(result)


def compute_fans(
    shape: Sequence[int],
    *,
    layout: str = "channels_last",
    in_axis: int | Sequence[int] | None = None,
    out_axis: int | Sequence[int] | None = None,
    batch_axis: int | Sequence[int] = (),
    groups: int = 1,
    transposed: bool = False,
    convention: str = "berry",
) -> Fans:
    """Fan-in and fan-out of a weight tensor of the given shape.

    The one fan engine of berry: the scale rules, :func:`berry.sample`, the
    schemes and every adapter read their fans here, each framework through
    its own ``convention``.

    Parameters
    ----------
    shape:
        The weight tensor's shape.
    layout:
        ``"channels_last"`` ``(..., in, out)`` (aliases ``keras``, ``jax``,
        ``flax``, ``tensorflow``) or ``"torch"`` ``(out, in, *kernel)``
        (alias ``pytorch``). See the module documentation.
    in_axis, out_axis:
        Explicit input and output axes (an int or a sequence of ints); each
        overrides the layout's own. Sizes along several axes multiply.
    batch_axis:
        Axes of stacked layers or experts, counted in neither fan.
    groups:
        Convolution groups. The channel axis that holds all channels (out
        for a convolution, in for a transposed one) is divided by
        ``groups``; depthwise convolution is ``groups = in_channels``.
        For a Keras ``DepthwiseConv2D`` kernel ``(kh, kw, in, multiplier)``
        use ``in_axis=(), out_axis=-1, batch_axis=-2`` instead.
    transposed:
        The tensor is a transposed convolution's weight, whose input and
        output axes are swapped relative to the layout: torch stores
        ``(in, out // groups, *kernel)`` and Keras ``(*kernel, out, in)``.
    convention:
        Whose rules read the axes (:data:`CONVENTIONS`):

        * ``"berry"`` (default): everything above; in, out and batch axes
          must be different axes (naming one twice is usually a typo).
        * ``"jax"``: ``jax.nn.initializers``' ``_compute_fans``: ``in_axis``
          defaults to ``-2`` and ``out_axis`` to ``-1``, a shape of rank < 2
          needs explicit axes, and ``in_axis`` and ``out_axis`` may share an
          axis (Flax ``Embed``'s ``out_axis=0`` on a ``(vocab, features)``
          table gives both fans ``features``). In general ``fan_in`` is the
          product of the sizes of every axis outside ``out_axis`` and
          ``batch_axis`` (and ``fan_out`` likewise), which is JAX's
          ``in * receptive field`` where the axes are disjoint.
        * ``"keras"``: Keras 3's ``compute_fans``: with both ``in_axis`` and
          ``out_axis`` (Keras' ``input_axes``/``output_axes``) the fans are
          the plain products of those axes (no receptive field); otherwise
          the channels-last default, as if neither were given.

        ``layout``, ``groups`` and ``transposed`` belong to ``"berry"``.

    Returns
    -------
    Fans
        ``(fan_in, fan_out)`` as integers.

    Examples
    --------
    >>> compute_fans([1500, 500])
    Fans(fan_in=1500, fan_out=500)
    >>> compute_fans((3, 3, 64, 128))                      # Keras/JAX Conv2D kernel
    Fans(fan_in=576, fan_out=1152)
    >>> compute_fans((128, 64, 3, 3), layout="torch")      # torch Conv2d weight
    Fans(fan_in=576, fan_out=1152)
    >>> compute_fans((128, 16, 3, 3), layout="torch", groups=4)
    Fans(fan_in=144, fan_out=288)
    >>> compute_fans((512, 8, 64), in_axis=0, out_axis=(1, 2))   # attention query kernel
    Fans(fan_in=512, fan_out=512)
    >>> compute_fans((4, 256, 1024), batch_axis=0)              # 4 stacked experts
    Fans(fan_in=256, fan_out=1024)
    >>> compute_fans((50257, 768), out_axis=0, convention="jax")  # Flax Embed
    Fans(fan_in=768, fan_out=768)
    >>> compute_fans((4, 64, 96), in_axis=[1], out_axis=[2], convention="keras")
    Fans(fan_in=64, fan_out=96)
    """
    dims = check_shape("shape", shape)
    convention = check_choice("convention", convention, CONVENTIONS)
    layout = LAYOUTS[check_choice("layout", layout, tuple(LAYOUTS))]
    groups = check_int("groups", groups, minimum=1)
    if not isinstance(transposed, bool):
        raise TypeError(f"transposed must be a bool, got {transposed!r}")
    if convention != "berry" and (layout != "channels_last" or groups != 1 or transposed):
        raise ValueError(
            f"convention={convention!r} reads fans from the axes only; layout={layout!r}, groups={groups} and "
            f"transposed={transposed} belong to convention='berry'"
        )
    if convention == "jax":
        return _jax_fans(dims, -2 if in_axis is None else in_axis, -1 if out_axis is None else out_axis, batch_axis)
    if convention == "keras":
        if batch_axis not in ((), []):
            raise ValueError(f"convention='keras' has no batch axes, got batch_axis={batch_axis!r}")
        if in_axis is not None and out_axis is not None:
            rank = len(dims)
            ins = normalize_axes("in_axis", in_axis, rank)
            outs = normalize_axes("out_axis", out_axis, rank)
            return Fans(math.prod(dims[a] for a in ins), math.prod(dims[a] for a in outs))
        in_axis = out_axis = None  # Keras uses its axes only when both are given
    rank = len(dims)

    if rank < 2 and in_axis is None and out_axis is None:
        if groups != 1 or transposed:
            raise ValueError(
                f"groups={groups} and transposed={transposed} need a convolution kernel of rank >= 3, "
                f"got shape={tuple(dims)!r}"
            )
        size = dims[0] if rank == 1 else 1
        return Fans(size, size)

    if layout == "torch":
        default_in, default_out = (0, 1) if transposed else (1, 0)
    else:
        default_in, default_out = (rank - 1, rank - 2) if transposed else (rank - 2, rank - 1)
    if rank < 2 and (in_axis is None or out_axis is None):
        raise ValueError(f"give both in_axis and out_axis for a shape of rank {rank}, got shape={tuple(dims)!r}")
    ins = normalize_axes("in_axis", default_in if in_axis is None else in_axis, rank)
    outs = normalize_axes("out_axis", default_out if out_axis is None else out_axis, rank)
    batch = normalize_axes("batch_axis", batch_axis, rank)
    if set(ins) & set(outs) or set(batch) & (set(ins) | set(outs)):
        raise ValueError(
            f"in_axis={ins}, out_axis={outs} and batch_axis={batch} must name different axes of shape={tuple(dims)!r}"
            + ("; convention='jax' lets in_axis and out_axis share an axis, as Flax's Embed does"
               if set(ins) & set(outs) else "")
        )
    fan_in, fan_out = _products_outside(dims, ins, outs, batch)

    if groups > 1:
        # The grouped axis holds every channel; each unit connects to one group of it.
        full_name, full_size = ("in", math.prod(dims[a] for a in ins)) if transposed else (
            "out", math.prod(dims[a] for a in outs))
        if full_size % groups:
            raise ValueError(
                f"groups={shown(groups)} must divide the {full_name} channels ({full_size}) of shape={shown(tuple(dims))}"
            )
        if transposed:
            fan_in //= groups
        else:
            fan_out //= groups
    return Fans(fan_in, fan_out)


def _products_outside(
    dims: tuple[int, ...], ins: tuple[int, ...], outs: tuple[int, ...], batch: tuple[int, ...]
) -> tuple[int, int]:
    """``fan_in`` = product of the axes outside out and batch, ``fan_out`` of those outside in and batch.

    Where the axes are disjoint that is ``in * receptive`` and ``out * receptive``; where in and
    out share an axis it is JAX's ``in * (total / (in * out * batch))``, in exact integers.
    """
    fan_in = math.prod(d for a, d in enumerate(dims) if a not in outs and a not in batch)
    fan_out = math.prod(d for a, d in enumerate(dims) if a not in ins and a not in batch)
    return fan_in, fan_out


def _jax_fans(dims: tuple[int, ...], in_axis: Any, out_axis: Any, batch_axis: Any) -> Fans:
    rank = len(dims)
    if rank < 2 and isinstance(in_axis, int) and in_axis == -2:
        raise ValueError(
            f"Can't compute input and output sizes of a {rank}-dimensional weights tensor with default "
            f"in_axis. Must be at least 2D or specify in_axis explicitly (shape={dims}; "
            "berry follows jax.nn.initializers here)"
        )
    ins = normalize_axes("in_axis", in_axis, rank)
    outs = normalize_axes("out_axis", out_axis, rank)
    batch = normalize_axes("batch_axis", batch_axis, rank)
    if set(batch) & (set(ins) | set(outs)):
        raise ValueError(
            f"batch_axis={batch_axis!r} shares axes with in_axis={in_axis!r} or out_axis={out_axis!r} "
            f"of shape={dims}"
        )
    return Fans(*_products_outside(dims, ins, outs, batch))


def fans_for(shape: Any, fan_in: Any, fan_out: Any, **fan_options: Any) -> Fans:
    """Explicit fans where given, else those of ``shape``, else the seed's default of 1.

    This is the one place that decides where a rule's fans come from.
    """
    from_shape = compute_fans(shape, **fan_options) if shape is not None else Fans(1, 1)
    return Fans(
        from_shape.fan_in if fan_in is None else _check_fan("fan_in", fan_in),
        from_shape.fan_out if fan_out is None else _check_fan("fan_out", fan_out),
    )


def _check_fan(argument: str, value: Any) -> int:
    fan = check_int(argument, value)
    if fan <= 0:
        raise ValueError(f"{argument} must be a positive integer, got {value!r}")
    return fan
