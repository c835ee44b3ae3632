"""Pick a Keras backend that is installed, when the configured one cannot load.

Keras 3 defaults to TensorFlow. When nothing chose a backend (no
``KERAS_BACKEND``, a ``keras.json`` naming TensorFlow or no ``keras.json``)
and TensorFlow is not installed, importing Keras fails. berry then sets
``KERAS_BACKEND`` to the first installed of JAX and PyTorch, before Keras is
imported, so ``import berry.keras`` works in a JAX- or torch-only
environment. An explicit choice (the variable, or another backend in
``keras.json``) is never overridden, and nothing changes once Keras is imported.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys

FALLBACK_BACKENDS = ("jax", "torch")


def _configured_backend() -> str:
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    try:
        with open(os.path.join(home, "keras.json")) as handle:
            return str(json.load(handle).get("backend", "tensorflow"))
    except (OSError, ValueError, AttributeError):
        return "tensorflow"


def ensure_backend() -> None:
    """Set ``KERAS_BACKEND`` to an installed backend when Keras would otherwise try a missing TensorFlow."""
    if "keras" in sys.modules or "KERAS_BACKEND" in os.environ:
        return
    if _configured_backend() != "tensorflow" or importlib.util.find_spec("tensorflow") is not None:
        return
    for backend in FALLBACK_BACKENDS:
        if importlib.util.find_spec(backend) is not None:
            os.environ["KERAS_BACKEND"] = backend
            return
