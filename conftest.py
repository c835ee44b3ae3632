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
#: What must import for an adapter's doctests to run (berry.keras picks Keras' backend before importing it).
_FRAMEWORKS = {"torch": ("berry.torch",), "jax": ("jax", "berry.jax"), "keras": ("berry.keras",)}


@functools.cache
def _adapter_runs(adapter: str) -> bool:
    for module in _FRAMEWORKS[adapter]:
        try:
            importlib.import_module(module)
        except ImportError:
            return False
    return True


def pytest_ignore_collect(collection_path: Path, config: object) -> bool | None:
    try:
        parts = collection_path.resolve().relative_to(_ROOT / "berry").parts
    except ValueError:
        return None
    if parts and parts[0] in _FRAMEWORKS and not _adapter_runs(parts[0]):
        return True
    if parts == ("_device", "_kernel.py") and importlib.util.find_spec("triton") is None:
        return True  # the device kernel's Triton source
    return None


if importlib.util.find_spec("torch") is None:
    collect_ignore_glob = ["docs/probe.md"]  # its doctests probe a torch model too
