"""Argument checks shared by every layer of berry.

Each check raises an error that names the argument, the value received and
what is allowed, so that bad input never turns into a silent wrong number or
a crash deep inside NumPy.
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = [
    "UnknownNameError",
    "check_choice",
    "check_finite",
    "check_int",
    "check_positive",
    "check_shape",
    "closest",
]


class UnknownNameError(NotImplementedError, ValueError):
    """A name that is not in a registry.

    It is both a ``NotImplementedError`` (what the seed module raised for an
    unknown initialization, so old ``except`` clauses keep working) and a
    ``ValueError`` (what a bad argument value is in Python).
    """


def closest(name: str, choices: Iterable[str]) -> str | None:
    """The choice nearest to ``name`` by spelling, or ``None`` if none is close."""
    matches = difflib.get_close_matches(str(name).lower(), [c.lower() for c in choices], n=1, cutoff=0.6)
    if not matches:
        return None
    by_lower = {c.lower(): c for c in choices}
    return by_lower[matches[0]]


def unknown_name(argument: str, value: Any, choices: Sequence[str]) -> UnknownNameError:
    """The error for a name outside ``choices``, with a did-you-mean hint."""
    message = f"{argument}={value!r} is not supported; supported: {', '.join(sorted(choices))}"
    hint = closest(str(value), choices) if isinstance(value, str) else None
    if hint is not None:
        message += f". Did you mean {hint!r}?"
    return UnknownNameError(message)


def check_choice(argument: str, value: Any, choices: Sequence[str]) -> str:
    """``value`` if it is one of ``choices`` (case-insensitive), else a clear error."""
    if isinstance(value, str):
        lowered = value.lower()
        for choice in choices:
            if choice.lower() == lowered:
                return choice
    raise unknown_name(argument, value, choices)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_finite(argument: str, value: Any) -> float:
    """``value`` as a float if it is a finite real number."""
    if not _is_real(value):
        raise TypeError(f"{argument} must be a real number, got {value!r} of type {type(value).__name__}")
    result = float(value)
    if not math.isfinite(result):
        raise ValueError(f"{argument} must be finite, got {value!r}")
    return result


def check_positive(argument: str, value: Any, *, allow_zero: bool = False) -> float:
    """``value`` as a float if it is finite and > 0 (or >= 0 with ``allow_zero``)."""
    result = check_finite(argument, value)
    if result < 0 or (result == 0 and not allow_zero):
        allowed = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{argument} must be {allowed}, got {value!r}")
    return result


def check_int(argument: str, value: Any, *, minimum: int | None = None) -> int:
    """``value`` as an int if it is integral (an int, or a float/NumPy scalar with no fraction)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{argument} must be an integer, got {value!r} of type {type(value).__name__}")
    if isinstance(value, numbers.Integral):
        result = int(value)
    else:
        as_float = float(value)
        if not math.isfinite(as_float) or as_float != math.floor(as_float):
            raise ValueError(f"{argument} must be an integer, got {value!r}")
        result = int(as_float)
    if minimum is not None and result < minimum:
        raise ValueError(f"{argument} must be >= {minimum}, got {value!r}")
    return result


def check_shape(argument: str, shape: Any) -> tuple[int, ...]:
    """``shape`` as a tuple of non-negative ints; an int is a 1-D shape."""
    if isinstance(shape, numbers.Integral) and not isinstance(shape, bool):
        shape = (shape,)
    if isinstance(shape, (str, bytes)) or not isinstance(shape, Iterable):
        raise TypeError(f"{argument} must be a sequence of non-negative integers, got {shape!r}")
    dims = tuple(shape)
    result = []
    for axis, dim in enumerate(dims):
        try:
            result.append(check_int(f"{argument}[{axis}]", dim, minimum=0))
        except (TypeError, ValueError) as error:
            raise type(error)(f"{error} (in {argument}={shape!r}; dimensions must be non-negative integers)") from None
    return tuple(result)
