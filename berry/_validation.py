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
from typing import TYPE_CHECKING, Any, Literal, overload

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "FLOAT_DTYPES",
    "MAX_THREADS",
    "SEED_BOUND",
    "MissingNameError",
    "UnknownNameError",
    "check_bool",
    "check_choice",
    "check_distinct_elements",
    "check_finite",
    "check_int",
    "check_key",
    "check_positive",
    "check_real",
    "check_seed",
    "check_shape",
    "closest",
    "exact_dtype",
    "name_bytes",
    "resolve_dtype",
    "shown",
]

#: Seeds are integers in ``[0, SEED_BOUND)``: the stream hashes them as 64-bit words.
SEED_BOUND = 2**64

#: The most threads a fill may be given (the C kernel counts them in an ``int``; it uses at most one per 64 Ki values).
MAX_THREADS = 2**31 - 1

#: The floating dtypes berry's stream writes (bfloat16 through the optional ml_dtypes package).
FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")


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
    message = f"{argument}={shown(value)} is not supported; supported: {', '.join(sorted(choices))}"
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


@overload
def check_bool(argument: str, value: Any, *, allow_none: Literal[False] = ...) -> bool: ...
@overload
def check_bool(argument: str, value: Any, *, allow_none: bool) -> bool | None: ...
def check_bool(argument: str, value: Any, *, allow_none: bool = False) -> bool | None:
    """``value`` as a bool if it is ``True`` or ``False`` (a NumPy bool too; ``None`` with ``allow_none``).

    A string or a number is refused rather than taken by its truth: ``"no"`` is true.

    >>> check_bool("strict", "no")
    Traceback (most recent call last):
    ...
    TypeError: strict must be True or False, got 'no' of type str
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or (type(value).__module__ == "numpy" and type(value).__name__ in ("bool", "bool_")):
        return bool(value)
    allowed = "True, False or None" if allow_none else "True or False"
    raise TypeError(f"{argument} must be {allowed}, got {shown(value)} of type {type(value).__name__}")


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


#: Integers longer than this many bits are shown in scientific form (their repr floods a message, and
#: Python refuses to write one of more than 4300 digits at all).
_SHOWN_INT_BITS = 200
_SHOWN_CHARS = 60


def shown(value: Any) -> str:
    """``repr(value)`` for an error message, shortened so that a ``10**400`` or a long list cannot flood it.

    >>> shown(10**400)
    '1e+400 (an integer of 401 digits)'
    >>> shown(list(range(100)))
    '[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 1...(390 characters)'
    """
    if _is_real(value) and isinstance(value, numbers.Integral) and abs(int(value)).bit_length() > _SHOWN_INT_BITS:
        exponent = math.log10(abs(int(value)))  # exact enough to name the size; never writes the digits
        sign = "-" if value < 0 else ""
        return f"{sign}{10 ** (exponent % 1):.4g}e+{int(exponent)} (an integer of {int(exponent) + 1} digits)"
    try:
        text = repr(value)
    except ValueError:  # an integer inside that Python refuses to write
        return f"<{type(value).__name__} too long to show>"
    if len(text) > _SHOWN_CHARS:
        text = f"{text[:40]}...({len(text)} characters)"
    return text


def _to_float(argument: str, value: Any, allowed: str) -> float:
    """``float(value)`` of a real number; a clear error where it lies beyond float64 (``float`` overflows)."""
    try:
        return float(value)
    except OverflowError:
        raise ValueError(
            f"{argument} must be {allowed}, got {shown(value)}, which is beyond float64's range (|x| < 1.8e308)"
        ) from None


def _integral(value: Any) -> int | None:
    """``value`` as an int if it is a real number with no fraction (exactly, at any size), else ``None``."""
    if isinstance(value, numbers.Integral):
        return int(value)
    try:
        whole = math.floor(value)  # exact for floats and fractions; inf and NaN have none
    except (OverflowError, ValueError):
        return None
    return int(whole) if whole == value else None


def check_finite(argument: str, value: Any) -> float:
    """``value`` as a float if it is a finite real number that float64 holds.

    >>> check_finite("std", 10**400)
    Traceback (most recent call last):
    ...
    ValueError: std must be a finite real number, got 1e+400 (an integer of 401 digits), which is beyond float64's range (|x| < 1.8e308)
    """
    if not _is_real(value):
        raise TypeError(f"{argument} must be a real number, got {shown(value)} of type {type(value).__name__}")
    result = _to_float(argument, value, "a finite real number")
    if not math.isfinite(result):
        raise ValueError(f"{argument} must be finite, got {shown(value)}")
    return result


def check_real(argument: str, value: Any) -> float:
    """``value`` as a float if it is a real number or an infinity (not NaN), such as a truncation bound."""
    allowed = "a real number or +-inf"
    if not _is_real(value):
        raise TypeError(f"{argument} must be {allowed}, got {shown(value)} of type {type(value).__name__}")
    result = _to_float(argument, value, allowed)
    if math.isnan(result):
        raise ValueError(f"{argument} must be {allowed}, got {shown(value)}")
    return result


def check_positive(argument: str, value: Any, *, allow_zero: bool = False) -> float:
    """``value`` as a float if it is finite and > 0 (or >= 0 with ``allow_zero``)."""
    result = check_finite(argument, value)
    if result < 0 or (result == 0 and not allow_zero):
        allowed = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{argument} must be {allowed}, got {shown(value)}")
    return result


def check_int(argument: str, value: Any, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as an int if it is integral (an int, or a float/NumPy scalar with no fraction), within the bounds given."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{argument} must be an integer, got {shown(value)} of type {type(value).__name__}")
    result = _integral(value)
    if result is None:
        raise ValueError(f"{argument} must be an integer, got {shown(value)}")
    if minimum is not None and result < minimum:
        raise ValueError(f"{argument} must be >= {minimum}, got {shown(value)}")
    if maximum is not None and result > maximum:
        raise ValueError(f"{argument} must be <= {maximum}, got {shown(value)}")
    return result


def check_shape(argument: str, shape: Any) -> tuple[int, ...]:
    """``shape`` as a tuple of non-negative ints; an int is a 1-D shape."""
    if isinstance(shape, numbers.Integral) and not isinstance(shape, bool):
        shape = (shape,)
    if isinstance(shape, (str, bytes)) or not isinstance(shape, Iterable):
        raise TypeError(f"{argument} must be a sequence of non-negative integers, got {shown(shape)}")
    try:
        dims = tuple(shape)
    except TypeError:  # iterable by type, not by value: a 0-d NumPy array
        raise TypeError(
            f"{argument} must be a sequence of non-negative integers, got {shown(shape)} of type {type(shape).__name__}"
        ) from None
    result = []
    for axis, dim in enumerate(dims):
        try:
            result.append(check_int(f"{argument}[{axis}]", dim, minimum=0))
        except (TypeError, ValueError) as error:
            raise type(error)(
                f"{error} (in {argument}={shown(shape)}; dimensions must be non-negative integers)"
            ) from None
    return tuple(result)


def check_seed(value: Any, argument: str = "seed") -> int:
    """``value`` as an int if it is an integer in ``[0, 2**64)``: the one check of a seed's range.

    >>> check_seed(7)
    7
    >>> check_seed(-1)
    Traceback (most recent call last):
    ...
    ValueError: seed must be an integer in [0, 2**64), got -1
    """
    allowed = f"{argument} must be an integer in [0, 2**64)"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{allowed}, got {shown(value)} of type {type(value).__name__}")
    result = _integral(value)  # 3.0 is a seed, 1.5 is not
    if result is None or not 0 <= result < SEED_BOUND:
        raise ValueError(f"{allowed}, got {shown(value)}")
    return result


class MissingNameError(ValueError):
    """A keyed draw without a parameter name (see :func:`check_key`)."""


def check_key(seed: Any, name: Any, *, keyed: bool, what: str) -> tuple[int, str]:
    """``(seed, name)`` of a draw from berry's keyed stream, checked once for every entry point.

    The values of a keyed draw depend on ``(seed, name, flat index)`` only, so a
    name must identify one tensor. ``name=None`` (nothing said) is therefore an
    error where the draw uses the key (``keyed``): two unnamed tensors with the
    same seed would be identical, and a smaller one would be a prefix of a
    larger one. ``name=""`` is accepted as a deliberate choice of the anonymous
    stream. Draws that use no key (zeros, eye, ...) need no name.

    Parameters
    ----------
    seed, name:
        What the caller passed (``name`` may be ``None``).
    keyed:
        Whether the values come from the stream (else the key is unused).
    what:
        The call, for the message (e.g. ``"berry.sample(init='he')"``).
    """
    seed = check_seed(seed)
    if name is None:
        if keyed:
            raise MissingNameError(
                f"{what} draws from berry's keyed stream, so it needs name= (the parameter's name, "
                "e.g. name='encoder.0.weight'): the values depend only on (seed, name, flat index), so two "
                "tensors drawn without a name would be identical, and a smaller one would be a prefix of a "
                "larger one. Give every tensor its own name (name='' chooses the shared anonymous stream "
                "on purpose)."
            )
        name = ""
    if not isinstance(name, str):
        raise TypeError(
            f"name must be a str (the parameter's name), got {shown(name)} of type {type(name).__name__}"
        )
    name_bytes(name)
    return seed, name


def name_bytes(name: str) -> bytes:
    """A parameter name's UTF-8 bytes, which the key hashes; a clear error for a lone surrogate (``"\\udcff"``)."""
    try:
        return name.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError(
            f"name={shown(name)} cannot be encoded as UTF-8 ({error.reason} at position {error.start}), and the key "
            "hashes the name's UTF-8 bytes; pass a name without lone surrogates"
        ) from None


def _bfloat16() -> np.dtype:
    import numpy as np

    try:
        import ml_dtypes
    except ImportError:
        raise ImportError(
            "dtype='bfloat16' needs the ml_dtypes package; install it with: pip install 'berry[bfloat16]'"
        ) from None
    return np.dtype(ml_dtypes.bfloat16)


def resolve_dtype(dtype: Any, *, floating_only: bool = True) -> np.dtype:
    """The NumPy dtype of ``dtype`` (a name, NumPy dtype or scalar type): berry's one dtype table.

    With ``floating_only`` (random values) only :data:`FLOAT_DTYPES` are
    allowed; without it (exact values such as zeros or the identity) any real
    NumPy dtype is, integers and bool included.

    >>> import numpy as np
    >>> resolve_dtype("float32"), resolve_dtype(np.float16)
    (dtype('float32'), dtype('float16'))
    >>> resolve_dtype("int8", floating_only=False)
    dtype('int8')
    """
    import numpy as np  # imported here: ``import berry`` stays free of NumPy until something is sampled

    is_bfloat16 = (isinstance(dtype, str) and dtype.lower() == "bfloat16") or getattr(dtype, "__name__", "") == "bfloat16"
    if is_bfloat16:
        return _bfloat16()
    if dtype is None or isinstance(dtype, bool):  # np.dtype(None) would silently be float64
        raise TypeError(f"dtype must be one of {', '.join(FLOAT_DTYPES)}, got {shown(dtype)}")
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        raise unknown_name("dtype", dtype, FLOAT_DTYPES) from None
    if resolved.name in FLOAT_DTYPES:
        return resolved
    if not floating_only and resolved.kind in "biuf" and resolved.name != "float128":
        return resolved
    raise unknown_name("dtype", dtype, FLOAT_DTYPES)


def exact_dtype(dtype: Any) -> np.dtype:
    """The NumPy dtype of exact values (zeros, ones, a constant, the identity): any numeric dtype.

    :func:`resolve_dtype` without ``floating_only``, plus what only an exact
    value can fill: complex dtypes and ml_dtypes' narrow types (``float8_*``,
    ``int4``, ...), as the frameworks' own constant initializers do.

    >>> exact_dtype("complex64")
    dtype('complex64')
    """
    import numpy as np

    try:
        return resolve_dtype(dtype, floating_only=False)
    except ValueError as error:
        try:
            resolved = np.dtype(dtype)
        except TypeError:
            raise error from None
        if resolved.name in ("complex64", "complex128") or resolved.type.__module__.startswith("ml_dtypes"):
            return resolved
        raise


def check_distinct_elements(argument: str, array: np.ndarray) -> None:
    """A clear error if elements of ``array`` share memory through a zero stride (a broadcast made writable).

    Such an array cannot hold different values: writing a tensor into it keeps the last value written to
    each location, a silently wrong result.
    """
    if array.size == 0:  # nothing to write (NumPy gives empty arrays zero strides)
        return
    for axis, (size, step) in enumerate(zip(array.shape, array.strides, strict=True)):
        if size > 1 and step == 0:
            raise ValueError(
                f"{argument} has stride 0 on axis {axis} of size {size} (strides={array.strides}), so its elements "
                "share memory and cannot hold different values; pass an array of its own, e.g. numpy.empty"
            )
