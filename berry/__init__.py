"""berry: weight initialization for deep networks.

The seed API lives in :mod:`berry.initializations` (``xavier``, ``deepnet``,
``get_initialzation``). Everything else is reachable from here and loaded on
first use, so ``import berry`` costs little and imports no deep-learning
framework and no SciPy.

>>> import berry
>>> berry.xavier(fan_in=1500, fan_out=500) == (2 / 2000) ** 0.5
True
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from berry._version import __version__
from berry.initializations import (
    deepnet,
    fan_geo_avg,
    geometric,
    get_initialization,
    get_initialzation,
    glorot,
    he,
    he_fan_out,
    kaiming,
    kaiming_fan_out,
    lecun,
    list_initializations,
    msra,
    register_initialization,
    selu,
    small_init,
    unregister_initialization,
    variance_scaling,
    xavier,
)

# Public names defined in submodules that are imported on first access.
_LAZY: dict[str, str] = {
    "compute_fans": "berry.fans",
    "Fans": "berry.fans",
    "calculate_gain": "berry.gains",
    "gain": "berry.gains",
    "get_activation": "berry.activations",
    "list_activations": "berry.activations",
    "sample": "berry.sampling",
    "InitSpec": "berry.sampling",
    "register_kind": "berry.sampling",
    "unregister_kind": "berry.sampling",
}

# Subpackages that are imported on attribute access (``berry.torch`` ...).
_LAZY_SUBMODULES = {
    "activations", "cli", "distributions", "fans", "gains", "jax", "keras", "kinds", "probe", "sampling", "stream",
    "torch",
}

__all__ = [
    "__version__",
    "deepnet",
    "fan_geo_avg",
    "geometric",
    "get_initialization",
    "get_initialzation",
    "glorot",
    "he",
    "he_fan_out",
    "kaiming",
    "kaiming_fan_out",
    "lecun",
    "list_initializations",
    "msra",
    "register_initialization",
    "selu",
    "small_init",
    "unregister_initialization",
    "variance_scaling",
    "xavier",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(f"berry.{name}")
    raise AttributeError(f"module 'berry' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | _LAZY_SUBMODULES)


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from berry.activations import get_activation as get_activation
    from berry.activations import list_activations as list_activations
    from berry.fans import Fans as Fans
    from berry.fans import compute_fans as compute_fans
    from berry.gains import calculate_gain as calculate_gain
    from berry.gains import gain as gain
    from berry.sampling import InitSpec as InitSpec
    from berry.sampling import register_kind as register_kind
    from berry.sampling import sample as sample
    from berry.sampling import unregister_kind as unregister_kind
