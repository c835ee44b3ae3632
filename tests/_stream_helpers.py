"""Test helpers of the stream's tests: dtype parameters that skip bfloat16 alone when ml_dtypes is missing."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

HAVE_ML_DTYPES = importlib.util.find_spec("ml_dtypes") is not None
needs_ml_dtypes = pytest.mark.skipif(not HAVE_ML_DTYPES, reason="bfloat16 needs the ml_dtypes package")
BFLOAT16 = pytest.param("bfloat16", marks=needs_ml_dtypes)
# for Hypothesis strategies, which cannot skip one value: the dtypes this environment can make
AVAILABLE_DTYPES = ["float16", "float32", "float64"] + (["bfloat16"] if HAVE_ML_DTYPES else [])


def bits(x: np.ndarray) -> np.ndarray:
    """The bytes of ``x`` (equal bits, so -0.0 differs from 0.0)."""
    return np.ascontiguousarray(x).view(np.uint8)
