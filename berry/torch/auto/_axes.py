"""Which axes of an activation hold features and which hold positions (batch, sequence, space).

The distinction matters for reductions and mixing: features of one position
come from different weight rows and are independent given the input, while
positions share the weights and are correlated through the input-independent
component of the signal (the pair moment ``s``). A mean over features is
therefore concentrated (a *point*: ``x.pow(2).mean(-1)`` is ``E[x**2]``),
while a mean over positions pools: ``E[mean(x)**2] = s + (q - s) / n``.

Labels: ``"F"`` feature, ``"P"`` position or batch, ``"?"`` unknown.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["for_input", "permute", "view"]

Axes = tuple[str, ...]


def for_input(shape: Sequence[int], floating: bool) -> Axes:
    """Labels of a model input: ``(N, D)``, ``(N, T, D)`` channels last, ``(N, C, *space)`` for 4-D and up."""
    n = len(shape)
    if not floating or n == 0:
        return ("P",) * n
    if n == 1:
        return ("F",)
    if n in (2, 3):
        return ("P",) * (n - 1) + ("F",)
    return ("P", "F") + ("P",) * (n - 2)


def view(in_shape: Sequence[int], in_axes: Axes, out_shape: Sequence[int]) -> Axes:
    """Labels after a reshape: dims are matched by groups with equal products; a group with a feature is one."""
    in_dims = [(int(s), a) for s, a in zip(in_shape, in_axes, strict=False)]
    out = list(int(s) for s in out_shape)
    if len(in_dims) != len(in_shape):
        return ("?",) * len(out)
    labels: list[str] = []
    i = j = 0
    while j < len(out):
        if out[j] == 1 and (i >= len(in_dims) or in_dims[i][0] != 1):
            labels.append("P")
            j += 1
            continue
        group_in: list[str] = []
        prod_in = 1
        prod_out = out[j]
        group_out = 1
        if i < len(in_dims):
            prod_in = in_dims[i][0]
            group_in.append(in_dims[i][1])
            i += 1
        while prod_in != prod_out and (i < len(in_dims) or j + group_out < len(out)):
            if prod_in < prod_out and i < len(in_dims):
                prod_in *= in_dims[i][0]
                group_in.append(in_dims[i][1])
                i += 1
            elif j + group_out < len(out):
                prod_out *= out[j + group_out]
                group_out += 1
            else:
                break
        label = "F" if "F" in group_in else ("?" if "?" in group_in or not group_in else "P")
        labels.extend([label] * group_out)
        j += group_out
    return tuple(labels[: len(out)])


def permute(axes: Axes, order: Sequence[int]) -> Axes:
    """Labels after ``permute(order)``."""
    return tuple(axes[int(k) % len(axes)] for k in order) if axes else ()


def transpose(axes: Axes, a: int, b: int) -> Axes:
    """Labels after ``transpose(a, b)``."""
    if not axes:
        return axes
    labels = list(axes)
    a, b = a % len(labels), b % len(labels)
    labels[a], labels[b] = labels[b], labels[a]
    return tuple(labels)


def broadcast(*axes_list: Axes) -> Axes:
    """Labels of an elementwise result: aligned on the right, a feature anywhere wins."""
    n = max((len(a) for a in axes_list), default=0)
    out = []
    for k in range(n):
        found = [a[len(a) - n + k] for a in axes_list if len(a) - n + k >= 0]
        out.append("F" if "F" in found else ("P" if "P" in found else "?"))
    return tuple(out)


def squeeze_like(in_shape: Sequence[int], in_axes: Axes, out_shape: Sequence[int]) -> Axes:
    """Labels when only size-1 dims were added or removed (squeeze, unsqueeze, flatten of singletons)."""
    return view(in_shape, in_axes, out_shape)


def index_result(in_axes: Axes, in_shape: Sequence[int], index: Any, out_shape: Sequence[int]) -> Axes:
    """Labels after ``x[index]``: integers drop a dim, ``None`` adds a position, slices keep."""
    items = index if isinstance(index, tuple) else (index,)
    labels: list[str] = []
    k = 0
    for item in items:
        if item is None:
            labels.append("P")
        elif item is Ellipsis:
            remaining = len(in_axes) - k - sum(1 for it in items if it not in (None, Ellipsis))
            labels.extend(in_axes[k:k + max(remaining, 0)])
            k += max(remaining, 0)
        elif isinstance(item, int):
            k += 1
        else:
            if k < len(in_axes):
                labels.append(in_axes[k])
            k += 1
    labels.extend(in_axes[k:])
    if len(labels) != len(out_shape):
        return view(in_shape, in_axes, out_shape)
    return tuple(labels)
