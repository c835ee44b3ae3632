"""A drop-in for ``torch.nn.init``: the same functions, signatures, defaults, errors and warnings.

Every function takes the tensor first and fills it in place, like torch's.
The values come from berry's sampler instead of torch's random generator:

* by default (and with ``generator=``) a 64-bit berry seed is drawn from the
  torch generator (the default one when none is given), so
  ``torch.manual_seed(42)`` followed by a call equals a call with a generator
  seeded with 42, and successive calls give fresh values;
* with the keyword-only ``seed=`` and/or ``name=``, the values come from
  berry's keyed stream instead: a pure function of (seed, name, shape,
  initializer), whatever the call order, thread count or sharding, and no
  generator is consumed.

Scale formulas are torch's (and the papers'): see each function.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable
from typing import Any, Literal, TypeVar

import torch
from torch import Tensor

from berry._validation import check_finite, check_int
from berry.fans import compute_fans
from berry.gains import calculate_gain
from berry.initializations import variance_scaling
from berry.sampling import InitSpec
from berry.torch._tensors import fill_from_sampler, resolve_key

__all__ = [
    "InitArgumentError",
    "calculate_gain",
    "constant",
    "constant_",
    "dirac",
    "dirac_",
    "eye",
    "eye_",
    "kaiming_normal",
    "kaiming_normal_",
    "kaiming_uniform",
    "kaiming_uniform_",
    "normal",
    "normal_",
    "ones_",
    "orthogonal",
    "orthogonal_",
    "sparse",
    "sparse_",
    "trunc_normal_",
    "uniform",
    "uniform_",
    "xavier_normal",
    "xavier_normal_",
    "xavier_uniform",
    "xavier_uniform_",
    "zeros_",
]

FanMode = Literal["fan_in", "fan_out"]
_T = TypeVar("_T", bound=Callable[..., Any])


class InitArgumentError(ValueError, RuntimeError):
    """A bad argument where torch's tensor op would raise ``RuntimeError``.

    It is both, so ``except ValueError`` (Python's convention) and
    ``except RuntimeError`` (what code written for torch catches) both work.
    """


def _overridable(function: _T) -> _T:
    """Let tensor subclasses with ``__torch_function__`` intercept the call, as torch.nn.init does."""

    @functools.wraps(function)
    def dispatch(tensor: Tensor, *args: Any, **kwargs: Any) -> Any:
        if torch.overrides.has_torch_function_variadic(tensor):
            return torch.overrides.handle_torch_function(dispatch, (tensor,), tensor, *args, **kwargs)
        return function(tensor, *args, **kwargs)

    return dispatch  # type: ignore[return-value]


def _fill(
    tensor: Tensor,
    generator: torch.Generator | None,
    seed: int | None,
    name: str | None,
    **options: Any,
) -> Tensor:
    """Fill ``tensor`` with :func:`berry.sample` values (``options``), keyed by seed/name or the generator."""
    spec = InitSpec(**options)  # validated before the generator is drawn from
    keyed = seed is not None or name is not None
    if keyed:  # berry's keyed stream: checked even where nothing is drawn (meta and empty tensors)
        key = resolve_key(tensor, generator, seed, name, keyed=spec.init_kind.keyed)
    if tensor.is_meta or tensor.numel() == 0:
        return tensor
    if not keyed:  # a seed drawn from torch's generator, fresh for every call
        key = resolve_key(tensor, generator, None, None)
    fill_from_sampler(tensor, spec, seed=key[0], name=key[1])
    return tensor


def _check_keyed(tensor: Tensor, generator: torch.Generator | None, seed: int | None, name: str | None) -> None:
    """Check berry's key arguments even where a call returns before drawing (empty tensors)."""
    if seed is not None or name is not None:
        resolve_key(tensor, generator, seed, name)


def _fans(tensor: Tensor) -> tuple[int, int]:
    """torch's fans: ``(out, in, *kernel)`` with the kernel's size multiplying both."""
    if tensor.dim() < 2:
        raise ValueError(
            f"fan-based initializers need a tensor of at least 2 dimensions (out, in, *kernel), "
            f"got shape {tuple(tensor.shape)}"
        )
    fans = compute_fans(tuple(tensor.shape), layout="torch")
    return int(fans.fan_in), int(fans.fan_out)


def _calculate_fan_in_and_fan_out(tensor: Tensor) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight in torch's ``(out, in, *kernel)`` layout.

    Kept under torch's private name because layer code often calls it
    (``init._calculate_fan_in_and_fan_out(self.weight)``).

    >>> _calculate_fan_in_and_fan_out(torch.empty(16, 8, 3, 3))
    (72, 144)
    """
    return _fans(tensor)


def _calculate_correct_fan(tensor: Tensor, mode: FanMode) -> int:
    mode_name = mode.lower() if isinstance(mode, str) else mode
    if mode_name not in ("fan_in", "fan_out"):
        raise ValueError(f"mode={mode!r} is not supported; supported: 'fan_in', 'fan_out'")
    fan_in, fan_out = _fans(tensor)
    return fan_in if mode_name == "fan_in" else fan_out


def _check_gain(gain: float) -> float:
    return check_finite("gain", gain)


# ------------------------------------------------------------------ distributions
@_overridable
def uniform_(
    tensor: Tensor,
    a: float = 0.0,
    b: float = 1.0,
    generator: torch.Generator | None = None,
    *,
    seed: int | None = None,
    name: str | None = None,
) -> Tensor:
    r"""Fill ``tensor`` with values from the uniform law on ``[a, b)``.

    .. math:: w \sim \mathcal{U}(a, b)

    Parameters
    ----------
    tensor:
        Any floating tensor (CPU, CUDA, meta, a view, a DTensor).
    a, b:
        The bounds, ``a <= b``, both finite.
    generator:
        torch generator the berry seed is drawn from (default: torch's default generator).
    seed, name:
        Keyword-only: use berry's keyed stream instead; the generator is then
        left untouched. ``seed`` needs ``name`` (the parameter's name): the
        values depend on ``(seed, name, flat index)`` only, so two tensors with
        the same seed and no name would be identical. ``name`` alone means seed 0.

    Examples
    --------
    >>> import berry.torch as init
    >>> w = init.uniform_(torch.empty(2, 3), -1.0, 1.0, seed=0, name="w")
    >>> bool(((w >= -1) & (w < 1)).all())
    True
    """
    low, high = check_finite("a", a), check_finite("b", b)
    if low > high:
        raise InitArgumentError(f"uniform_ needs a <= b, got a={a!r}, b={b!r}")
    if low == high:
        return constant_(tensor, low)
    return _fill(tensor, generator, seed, name, distribution="uniform", low=low, high=high)


@_overridable
def normal_(
    tensor: Tensor,
    mean: float = 0.0,
    std: float = 1.0,
    generator: torch.Generator | None = None,
    *,
    seed: int | None = None,
    name: str | None = None,
) -> Tensor:
    r"""Fill ``tensor`` with values from the normal law.

    .. math:: w \sim \mathcal{N}(\text{mean}, \text{std}^2)

    Parameters
    ----------
    tensor:
        Any floating tensor.
    mean, std:
        Mean and standard deviation (``std >= 0``; 0 fills with ``mean``).
    generator, seed, name:
        As in :func:`uniform_`.

    Examples
    --------
    >>> import berry.torch as init
    >>> w = init.normal_(torch.empty(1000), std=0.02, seed=1, name="w")
    >>> round(float(w.std()), 2)
    0.02
    """
    mean = check_finite("mean", mean)
    std = check_finite("std", std)
    if std < 0:
        raise InitArgumentError(f"normal_ needs std >= 0, got std={std!r}")
    if std == 0:
        return constant_(tensor, mean)
    return _fill(tensor, generator, seed, name, distribution="normal", mean=mean, std=std)


def _trunc_normal(
    tensor: Tensor,
    mean: float,
    std: float,
    a: float,
    b: float,
    generator: torch.Generator | None,
    seed: int | None,
    name: str | None,
) -> Tensor:
    mean, std = check_finite("mean", mean), check_finite("std", std)
    low, high = float(a), float(b)
    if math.isnan(low) or math.isnan(high):
        raise ValueError(f"trunc_normal_ needs bounds that are numbers, got a={a!r}, b={b!r}")
    if std <= 0:
        raise InitArgumentError(f"trunc_normal_ needs std > 0, got std={std!r}")
    if not low < high:
        raise InitArgumentError(f"trunc_normal_ needs a < b, got a={a!r}, b={b!r}")
    # torch's a, b are absolute; berry's bounds are in units of std around the mean.
    bounds = (_inner_bound(low, mean, std, up=True), _inner_bound(high, mean, std, up=False))
    return _fill(
        tensor, generator, seed, name,
        distribution="truncated_normal", mean=mean, std=std, bounds=bounds, correct_variance=False,
    )


def _inner_bound(bound: float, mean: float, std: float, *, up: bool) -> float:
    """``(bound - mean) / std``, nudged so that ``mean + result * std`` stays inside ``bound``.

    Rounding can put ``mean + ((bound - mean) / std) * std`` one ulp outside
    the absolute bound torch promises; a one-ulp nudge inward fixes that.
    """
    if math.isinf(bound):
        return bound
    scaled = (bound - mean) / std
    toward = math.inf if up else -math.inf
    for _ in range(4):
        edge = mean + scaled * std
        if (edge >= bound) if up else (edge <= bound):
            break
        scaled = math.nextafter(scaled, toward)
    return scaled


def trunc_normal_(
    tensor: Tensor,
    mean: float = 0.0,
    std: float = 1.0,
    a: float = -2.0,
    b: float = 2.0,
    generator: torch.Generator | None = None,
    *,
    seed: int | None = None,
    name: str | None = None,
) -> Tensor:
    r"""Fill ``tensor`` with values from a normal law truncated to ``[a, b]``.

    As in torch, ``mean`` and ``std`` are those of the parent normal
    :math:`\mathcal{N}(\text{mean}, \text{std}^2)` and ``a``, ``b`` are absolute
    bounds (not in units of ``std``), so the values' own standard deviation is
    smaller than ``std``. Sampling is exact for any interval, even one far
    from the mean, and every value lies in ``[a, b]`` after rounding to the
    tensor's dtype.

    .. math:: w \sim \mathcal{N}(\text{mean}, \text{std}^2) \mid a \le w \le b

    Parameters
    ----------
    tensor:
        Any floating tensor.
    mean, std:
        Mean and standard deviation (> 0) of the parent normal.
    a, b:
        Absolute bounds, ``a < b`` (one may be infinite).
    generator, seed, name:
        As in :func:`uniform_`.

    Examples
    --------
    >>> import berry.torch as init
    >>> w = init.trunc_normal_(torch.empty(1000), std=0.02, a=-0.04, b=0.04, seed=0, name="w")
    >>> bool((w.abs() <= 0.04).all())
    True
    """
    return _trunc_normal(tensor, mean, std, a, b, generator, seed, name)


# ------------------------------------------------------------------ constants
@_overridable
def constant_(tensor: Tensor, val: float) -> Tensor:
    """Fill ``tensor`` with ``val``.

    Examples
    --------
    >>> import berry.torch as init
    >>> init.constant_(torch.empty(2), 0.5).tolist()
    [0.5, 0.5]
    """
    with torch.no_grad():
        return tensor.fill_(val)


def ones_(tensor: Tensor) -> Tensor:
    """Fill ``tensor`` with ones.

    >>> import berry.torch as init
    >>> init.ones_(torch.empty(2)).tolist()
    [1.0, 1.0]
    """
    with torch.no_grad():
        return tensor.fill_(1.0)


def zeros_(tensor: Tensor) -> Tensor:
    """Fill ``tensor`` with zeros.

    >>> import berry.torch as init
    >>> init.zeros_(torch.empty(2)).tolist()
    [0.0, 0.0]
    """
    with torch.no_grad():
        return tensor.zero_()


# ------------------------------------------------------------------ structure
def eye_(tensor: Tensor) -> Tensor:
    """Fill a 2-D ``tensor`` with the identity matrix (ones on the main diagonal).

    A ``Linear`` layer so initialized passes through as many inputs as it can.

    Examples
    --------
    >>> import berry.torch as init
    >>> init.eye_(torch.empty(2, 3)).tolist()
    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    """
    if tensor.dim() != 2:
        raise ValueError(f"eye_ needs a 2-dimensional tensor, got shape {tuple(tensor.shape)}")
    fill_from_sampler(tensor, InitSpec("eye"), seed=0, name="")  # deterministic: the key is unused
    return tensor


def dirac_(tensor: Tensor, groups: int = 1) -> Tensor:
    """Fill a 3-, 4- or 5-D convolution weight with the Dirac delta.

    Weight ``(out, in, *kernel)``: in each of the ``groups`` groups of output
    channels, channel ``g * out // groups + d`` copies input channel ``d`` at
    the kernel's centre, for as many channels as both sides have.

    Parameters
    ----------
    tensor:
        A 3-, 4- or 5-dimensional tensor.
    groups:
        Convolution groups; must divide ``tensor.shape[0]``.

    Examples
    --------
    >>> import berry.torch as init
    >>> w = init.dirac_(torch.empty(4, 2, 3), groups=2)
    >>> [tuple(i) for i in w.nonzero().tolist()]
    [(0, 0, 1), (1, 1, 1), (2, 0, 1), (3, 1, 1)]
    """
    if tensor.dim() not in (3, 4, 5):
        raise ValueError(f"dirac_ needs a 3-, 4- or 5-dimensional tensor, got shape {tuple(tensor.shape)}")
    groups = check_int("groups", groups, minimum=1)
    if tensor.shape[0] % groups:
        raise ValueError(f"groups={groups} must divide dim 0 of the tensor, got shape {tuple(tensor.shape)}")
    fill_from_sampler(tensor, InitSpec("dirac", groups=groups, layout="torch"), seed=0, name="")
    return tensor


def orthogonal_(
    tensor: Tensor,
    gain: float = 1,
    generator: torch.Generator | None = None,
    *,
    seed: int | None = None,
    name: str | None = None,
) -> Tensor:
    r"""Fill ``tensor`` with a (semi-)orthogonal matrix times ``gain``.

    Saxe, McClelland & Ganguli (2014), *Exact solutions to the nonlinear
    dynamics of learning in deep linear neural networks*. As in torch, a
    tensor of rank > 2 is seen as the matrix ``(shape[0], prod(shape[1:]))``;
    its rows (or columns, whichever are fewer) are orthonormal, drawn from
    the Haar measure (Householder reflectors from fresh Gaussian vectors, Stewart 1980,
    with Mezzadri's 2007 sign correction; see :func:`berry.distributions.orthogonal_matrix`).

    .. math:: W W^\top = \text{gain}^2 I \quad (\text{rows} \le \text{cols})

    Parameters
    ----------
    tensor:
        A tensor of at least 2 dimensions.
    gain:
        Scale factor.
    generator, seed, name:
        As in :func:`uniform_`.

    Examples
    --------
    >>> import berry.torch as init
    >>> w = init.orthogonal_(torch.empty(3, 5), seed=0, name="w")
    >>> torch.allclose(w @ w.T, torch.eye(3), atol=1e-6)
    True
    """
    if tensor.dim() < 2:
        raise ValueError(f"orthogonal_ needs a tensor of at least 2 dimensions, got shape {tuple(tensor.shape)}")
    return _fill(tensor, generator, seed, name, init="orthogonal", gain=_check_gain(gain), layout="torch")


def sparse_(
    tensor: Tensor,
    sparsity: float,
    std: float = 0.01,
    generator: torch.Generator | None = None,
    *,
    seed: int | None = None,
    name: str | None = None,
) -> Tensor:
    r"""Fill a 2-D ``tensor`` as a sparse matrix: in each column, a fraction of the entries is zero.

    Martens (2010), *Deep learning via Hessian-free optimization*. In each
    column, ``ceil(sparsity * rows)`` entries are zero; the others are drawn
    from :math:`\mathcal{N}(0, \text{std}^2)`.

    Parameters
    ----------
    tensor:
        A 2-dimensional tensor.
    sparsity:
        Fraction of each column set to zero, in ``[0, 1]``.
    std:
        Standard deviation of the non-zero entries.
    generator, seed, name:
        As in :func:`uniform_`.

    Examples
    --------
    >>> import berry.torch as init
    >>> w = init.sparse_(torch.empty(10, 4), sparsity=0.3, seed=0, name="w")
    >>> (w == 0).sum(dim=0).tolist()
    [3, 3, 3, 3]
    """
    if tensor.dim() != 2:
        raise ValueError(f"sparse_ needs a 2-dimensional tensor, got shape {tuple(tensor.shape)}")
    sparsity = check_finite("sparsity", sparsity)
    if not 0 <= sparsity <= 1:
        raise ValueError(f"sparsity must be in [0, 1], got {sparsity!r}")
    std = check_finite("std", std)
    if std < 0:
        raise InitArgumentError(f"sparse_ needs std >= 0, got std={std!r}")
    return _fill(tensor, generator, seed, name, init="sparse", sparsity=sparsity, std=std, layout="torch")


# ------------------------------------------------------------------ fan-based
def xavier_uniform_(
    tensor: Tensor,
    gain: float = 1.0,
    generator: torch.Generator | None = None,
    *,
    seed: int | None = None,
    name: str | None = None,
) -> Tensor:
    r"""Fill ``tensor`` with Xavier/Glorot uniform values.

    Glorot & Bengio (2010), *Understanding the difficulty of training deep
    feedforward neural networks*. Also known as Glorot uniform. Fans are
    torch's: ``fan_in = in * k``, ``fan_out = out * k`` for a weight
    ``(out, in, *kernel)`` with ``k = prod(kernel)``.

    .. math:: w \sim \mathcal{U}(-\sqrt{3}\sigma, \sqrt{3}\sigma), \quad
        \sigma = \text{gain} \sqrt{\frac{2}{\text{fan\_in} + \text{fan\_out}}}

    Parameters
    ----------
    tensor:
        A tensor of at least 2 dimensions.
    gain:
        Scale factor, e.g. :func:`calculate_gain`.
    generator, seed, name:
        As in :func:`uniform_`.

    Examples
    --------
    >>> import berry.torch as init
    >>> w = init.xavier_uniform_(torch.empty(300, 200), seed=0, name="w")
    >>> bool(w.abs().max() <= (6 / 500) ** 0.5)
    True
    """
    return _fan_based(tensor, "fan_avg", gain, "uniform", generator, seed, name)


def xavier_normal_(
    tensor: Tensor,
    gain: float = 1.0,
    generator: torch.Generator | None = None,
    *,
    seed: int | None = None,
    name: str | None = None,
) -> Tensor:
    r"""Fill ``tensor`` with Xavier/Glorot normal values.

    Glorot & Bengio (2010). Also known as Glorot normal. Fans as in
    :func:`xavier_uniform_`.

    .. math:: w \sim \mathcal{N}(0, \sigma^2), \quad
        \sigma = \text{gain} \sqrt{\frac{2}{\text{fan\_in} + \text{fan\_out}}}

    Parameters
    ----------
    tensor:
        A tensor of at least 2 dimensions.
    gain:
        Scale factor.
    generator, seed, name:
        As in :func:`uniform_`.

    Examples
    --------
    >>> import berry.torch as init
    >>> w = init.xavier_normal_(torch.empty(500, 500), seed=0, name="w")
    >>> round(float(w.std()) * 500 ** 0.5, 1)
    1.0
    """
    return _fan_based(tensor, "fan_avg", gain, "normal", generator, seed, name)


def _fan_based(
    tensor: Tensor,
    mode: str,
    gain: float,
    distribution: str,
    generator: torch.Generator | None,
    seed: int | None,
    name: str | None,
) -> Tensor:
    fan_in, fan_out = _fans(tensor)
    gain = _check_gain(gain)
    if gain < 0:
        raise InitArgumentError(f"gain must be >= 0 (it scales a standard deviation), got {gain!r}")
    _check_keyed(tensor, generator, seed, name)
    if tensor.numel() == 0:
        return tensor
    if gain == 0:
        return zeros_(tensor)
    std = variance_scaling(1.0, mode, fan_in=fan_in, fan_out=fan_out, gain=gain)
    return _fill(tensor, generator, seed, name, distribution=distribution, std=std)


def _kaiming(
    tensor: Tensor,
    a: float,
    mode: FanMode,
    nonlinearity: str,
    distribution: str,
    generator: torch.Generator | None,
    seed: int | None,
    name: str | None,
) -> Tensor:
    _check_keyed(tensor, generator, seed, name)
    if 0 in tensor.shape:
        warnings.warn("Initializing zero-element tensors is a no-op", UserWarning, stacklevel=3)
        return tensor
    fan = _calculate_correct_fan(tensor, mode)
    gain = calculate_gain(nonlinearity, a)
    std = variance_scaling(1.0, "fan_in", fan_in=fan, gain=gain)
    return _fill(tensor, generator, seed, name, distribution=distribution, std=std)


@_overridable
def kaiming_uniform_(
    tensor: Tensor,
    a: float = 0,
    mode: FanMode = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator: torch.Generator | None = None,
    *,
    seed: int | None = None,
    name: str | None = None,
) -> Tensor:
    r"""Fill ``tensor`` with Kaiming/He uniform values.

    He, Zhang, Ren & Sun (2015), *Delving deep into rectifiers*. Also known
    as He uniform. ``fan`` is torch's ``fan_in`` (default; keeps the forward
    variance) or ``fan_out`` (keeps the backward variance), and ``gain`` is
    ``calculate_gain(nonlinearity, a)``: with torch's defaults
    (``leaky_relu``, ``a=0``) that is :math:`\sqrt{2}`.

    .. math:: w \sim \mathcal{U}(-\sqrt{3}\sigma, \sqrt{3}\sigma), \quad
        \sigma = \frac{\text{gain}}{\sqrt{\text{fan}}}

    Parameters
    ----------
    tensor:
        A tensor of at least 2 dimensions (a zero-element tensor warns and is left alone).
    a:
        Negative slope of the leaky ReLU after this layer.
    mode:
        ``"fan_in"`` or ``"fan_out"``.
    nonlinearity:
        Name accepted by :func:`calculate_gain`.
    generator, seed, name:
        As in :func:`uniform_`.

    Examples
    --------
    >>> import berry.torch as init
    >>> w = init.kaiming_uniform_(torch.empty(64, 50), nonlinearity="relu", seed=0, name="w")
    >>> bool(w.abs().max() <= (6 / 50) ** 0.5)
    True
    """
    return _kaiming(tensor, a, mode, nonlinearity, "uniform", generator, seed, name)


def kaiming_normal_(
    tensor: Tensor,
    a: float = 0,
    mode: FanMode = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator: torch.Generator | None = None,
    *,
    seed: int | None = None,
    name: str | None = None,
) -> Tensor:
    r"""Fill ``tensor`` with Kaiming/He normal values.

    He et al. (2015). Also known as He normal. Fans and gain as in
    :func:`kaiming_uniform_`.

    .. math:: w \sim \mathcal{N}(0, \sigma^2), \quad \sigma = \frac{\text{gain}}{\sqrt{\text{fan}}}

    Parameters
    ----------
    tensor:
        A tensor of at least 2 dimensions (a zero-element tensor warns and is left alone).
    a, mode, nonlinearity:
        As in :func:`kaiming_uniform_`.
    generator, seed, name:
        As in :func:`uniform_`.

    Examples
    --------
    >>> import berry.torch as init
    >>> w = init.kaiming_normal_(torch.empty(200, 800), mode="fan_in", nonlinearity="relu", seed=0, name="w")
    >>> round(float(w.std()) * (800 / 2) ** 0.5, 1)
    1.0
    """
    return _kaiming(tensor, a, mode, nonlinearity, "normal", generator, seed, name)


# ------------------------------------------------------------------ deprecated names
def _deprecated(function: _T) -> _T:
    new_name = function.__name__
    old_name = new_name.rstrip("_")

    @functools.wraps(function)
    def old(*args: Any, **kwargs: Any) -> Any:
        warnings.warn(
            f"berry.torch.{old_name} is deprecated, as torch.nn.init.{old_name} is; use {new_name}",
            FutureWarning,
            stacklevel=2,
        )
        return function(*args, **kwargs)

    old.__name__ = old.__qualname__ = old_name
    old.__doc__ = f"Deprecated alias of :func:`{new_name}` (warns with ``FutureWarning``), kept as torch keeps it."
    return old  # type: ignore[return-value]


uniform = _deprecated(uniform_)
normal = _deprecated(normal_)
constant = _deprecated(constant_)
eye = _deprecated(eye_)
dirac = _deprecated(dirac_)
xavier_uniform = _deprecated(xavier_uniform_)
xavier_normal = _deprecated(xavier_normal_)
kaiming_uniform = _deprecated(kaiming_uniform_)
kaiming_normal = _deprecated(kaiming_normal_)
orthogonal = _deprecated(orthogonal_)
sparse = _deprecated(sparse_)
