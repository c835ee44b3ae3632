"""Optional extras: a clear message when an adapter's framework is not installed."""

from __future__ import annotations

import importlib.util

__all__ = ["missing_extra", "require"]


def missing_extra(module: str, *, extra: str, adapter: str) -> ModuleNotFoundError:
    """The error for an adapter whose framework ``module`` is not installed, naming the extra to install."""
    return ModuleNotFoundError(
        f"{adapter} needs {module}, which is not installed; install it with: pip install 'berry[{extra}]'",
        name=module,
    )


def require(module: str, *, extra: str, adapter: str) -> None:
    """Raise :func:`missing_extra`'s error unless ``module`` can be found (without importing it)."""
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken or hidden installation counts as missing
        found = False
    if not found:
        raise missing_extra(module, extra=extra, adapter=adapter)
