"""Doctest collection: an adapter's examples run only where its framework can be imported.

``pytest`` collects the doctests of every module under ``berry/``; those of
``berry/torch``, ``berry/jax`` and ``berry/keras`` need PyTorch, JAX and Keras
(with a backend). Where one cannot be imported (not installed, or a dependency
such as ml_dtypes missing) its doctests are not collected, as its test files
skip, instead of failing on the first ``import``.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
from pathlib import Path

_ROOT = Path(__file__).resolve().parent
_FRAMEWORKS = {"torch": ("torch",), "jax": ("jax",), "keras": ("keras",)}


@functools.cache
def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


@functools.cache
def _adapter_runs(adapter: str) -> bool:
    if adapter == "keras":  # importing Keras here would fix its backend: check that one can load instead
        return importlib.util.find_spec("keras") is not None and (
            _importable("jax") or _importable("torch") or importlib.util.find_spec("tensorflow") is not None
        )
    return all(_importable(module) for module in _FRAMEWORKS[adapter])


def pytest_ignore_collect(collection_path: Path, config: object) -> bool | None:
    try:
        parts = collection_path.resolve().relative_to(_ROOT / "berry").parts
    except ValueError:
        return None
    if parts and parts[0] in _FRAMEWORKS and not _adapter_runs(parts[0]):
        return True
    return None
