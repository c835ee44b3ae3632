"""What the test modules share: constants, KS helpers, region strategies, dtype marks, subprocesses.

One copy of each, so the tests of the core and of every adapter use the same
thresholds and the same definitions (import as ``from _helpers import ...``;
pytest puts ``tests/`` on the path).
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]

#: Smallest p-value a KS test may give (fixed seeds make every test deterministic).
P_MIN = 1e-4
#: Standard deviation of N(0, 1) truncated to [-2, 2] (the constant JAX and Keras divide by).
TRUNC_STD_2 = 0.87962566103423978

# ---------------------------------------------------------------------------- dtypes

#: Whether ml_dtypes (bfloat16 for NumPy) is installed.
HAS_ML_DTYPES = importlib.util.find_spec("ml_dtypes") is not None
needs_ml_dtypes = pytest.mark.skipif(not HAS_ML_DTYPES, reason="bfloat16 needs ml_dtypes")

FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")
#: The float dtypes this machine can test (bfloat16 only with ml_dtypes): for Hypothesis strategies.
AVAILABLE_DTYPES = tuple(d for d in FLOAT_DTYPES if d != "bfloat16" or HAS_ML_DTYPES)


def dtype_params(dtypes: Iterable[Any] = FLOAT_DTYPES) -> list[Any]:
    """``pytest.mark.parametrize`` values where only the bfloat16 cases skip without ml_dtypes.

    Accepts names, NumPy dtypes or framework dtypes (anything whose ``str`` ends in ``bfloat16``).
    """
    return [
        pytest.param(dtype, marks=needs_ml_dtypes, id=_dtype_id(dtype)) if _is_bfloat16(dtype)
        else pytest.param(dtype, id=_dtype_id(dtype))
        for dtype in dtypes
    ]


def _is_bfloat16(dtype: Any) -> bool:
    return str(dtype).endswith("bfloat16")


def _dtype_id(dtype: Any) -> str:
    return str(dtype).rsplit(".", 1)[-1]


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal bit patterns (so -0.0 differs from 0.0), with equal shapes and dtypes."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    unsigned = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[a.dtype.itemsize]
    return bool(np.array_equal(np.ascontiguousarray(a).view(unsigned), np.ascontiguousarray(b).view(unsigned)))


def assert_same_bits(actual: Any, expected: np.ndarray, label: str = "") -> None:
    """``actual`` (any array-like) has exactly ``expected``'s dtype, shape and bits; says where it differs."""
    actual = np.asarray(actual)
    assert actual.dtype == expected.dtype, (label, actual.dtype, expected.dtype)
    assert actual.shape == expected.shape, (label, actual.shape, expected.shape)
    if same_bits(actual, expected):
        return
    unsigned = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[expected.dtype.itemsize]
    got, want = np.ascontiguousarray(actual).view(unsigned).ravel(), np.ascontiguousarray(expected).view(unsigned).ravel()
    differ = np.flatnonzero(got != want)
    raise AssertionError(
        f"{label + ': ' if label else ''}{differ.size} of {expected.size} values differ, first at flat position "
        f"{differ[0]}: {actual.ravel()[differ[0]]!r} vs expected {expected.ravel()[differ[0]]!r}"
    )


# ---------------------------------------------------------------------------- KS tests


def as_float64(values: Any) -> np.ndarray:
    """Any array-like (a torch tensor with grad, a JAX array, a list) as a flat float64 NumPy array."""
    if hasattr(values, "detach"):  # torch: no grad, on the host, bfloat16 widened first
        values = values.detach().double().cpu()
    return np.asarray(values, dtype=np.float64).ravel()


def ks_pvalue(values: Any, law: Any) -> float:
    """Kolmogorov-Smirnov p-value of ``values`` against a frozen SciPy law (or a CDF callable)."""
    from scipy import stats

    cdf = law.cdf if hasattr(law, "cdf") else law
    return float(stats.kstest(as_float64(values), cdf).pvalue)


def assert_ks(values: Any, law: Any, where: str = "") -> None:
    """``values`` pass a KS test against ``law`` (a frozen SciPy law or a CDF) at :data:`P_MIN`."""
    p = ks_pvalue(values, law)
    assert p > P_MIN, f"{where}: KS p={p:.2e} against {law}"


def ks_two_sample(a: Any, b: Any) -> float:
    """Two-sample KS p-value (same law?) of two arrays of values."""
    from scipy import stats

    return float(stats.ks_2samp(as_float64(a), as_float64(b)).pvalue)


# ---------------------------------------------------------------------------- regions


@st.composite
def shape_and_region(draw: Any, min_rank: int = 1, max_rank: int = 4, min_dim: int = 0, max_dim: int = 9,
                     nonempty: bool = False) -> tuple[tuple[int, ...], tuple[slice, ...]]:
    """A shape and a region of it (slices with step 1, possibly open-ended, possibly fewer than axes)."""
    rank = draw(st.integers(min_rank, max_rank))
    shape = tuple(draw(st.integers(min_dim, max_dim)) for _ in range(rank))
    pieces = []
    for size in shape:
        start = draw(st.integers(0, max(size - 1, 0) if nonempty else size))
        stop = draw(st.integers(min(start + 1, size) if nonempty else start, size))
        pieces.append(draw(st.sampled_from([slice(start, stop), slice(None, stop), slice(start, None), slice(None)])))
    trailing_whole = draw(st.integers(0, rank))  # fewer slices than axes: the rest are whole
    return shape, tuple(pieces[: rank - trailing_whole])


# ---------------------------------------------------------------------------- subprocesses

#: Python source that makes ``import NAME`` fail with ModuleNotFoundError for the given names, as on a
#: machine where they are not installed (pass the names in ``BERRY_TEST_HIDE``, comma-separated).
_HIDE_SOURCE = textwrap.dedent(
    """
    import importlib.util, os, sys

    _HIDDEN = tuple(n for n in os.environ.get("BERRY_TEST_HIDE", "").split(",") if n)


    def _hidden(name):
        return any(name == hidden or name.startswith(hidden + ".") for hidden in _HIDDEN)


    class _Hide:  # `import NAME` fails as for a module that is not installed
        def find_spec(self, name, path=None, target=None):
            if _hidden(name):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None


    _find_spec = importlib.util.find_spec


    def _find_spec_unless_hidden(name, package=None):  # importlib.util.find_spec says "not installed" too
        return None if _hidden(name) else _find_spec(name, package)


    sys.meta_path.insert(0, _Hide())
    importlib.util.find_spec = _find_spec_unless_hidden
    """
)


def hide_modules_dir(tmp_path: Path) -> Path:
    """A directory whose ``sitecustomize.py`` hides the modules named in ``BERRY_TEST_HIDE``."""
    directory = tmp_path / "hide_modules"
    directory.mkdir(exist_ok=True)
    (directory / "sitecustomize.py").write_text(_HIDE_SOURCE)
    return directory


def run_python(
    code: str,
    *,
    hide: Sequence[str] = (),
    env: Mapping[str, str | None] | None = None,
    tmp_path: Path | None = None,
    cwd: Path = ROOT,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter with berry and tests/ on the path; ``hide`` makes modules uninstalled.

    ``env`` entries set (or, with ``None``, remove) environment variables.
    """
    environment = dict(os.environ)
    paths = [str(ROOT), str(ROOT / "tests")]  # berry, and the test modules (``import _helpers``)
    if hide:
        if tmp_path is None:
            raise ValueError("hiding modules needs tmp_path for the sitecustomize directory")
        paths.insert(0, str(hide_modules_dir(tmp_path)))
        environment["BERRY_TEST_HIDE"] = ",".join(hide)
    environment["PYTHONPATH"] = os.pathsep.join([*paths, environment.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    for key, value in (env or {}).items():
        if value is None:
            environment.pop(key, None)
        else:
            environment[key] = value
    return subprocess.run(
        [sys.executable, "-c", code], env=environment, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


# ---------------------------------------------------------------------------- processes of one job


def free_port() -> int:
    """A TCP port free on the loopback address now (a process group's rendezvous)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def leave_worker() -> None:
    """End a spawned worker without the interpreter's teardown, once its process group is destroyed.

    After FSDP/DTensor work, a gloo worker's teardown aborted about one run in ten on a 2-core machine
    ("terminate called without an active exception", SIGABRT) after its results were saved, failing
    the test; ``os._exit(0)`` skips that teardown. Called only when the work succeeded: an exception
    must still reach ``torch.multiprocessing.spawn``.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def spawn_gathered(worker: Any, world: int, tmp_path: Path) -> Any:
    """Run ``worker(rank, world, port, result_path)`` in ``world`` processes; what rank 0 saved there.

    Each worker joins a gloo process group at ``127.0.0.1:port`` and rank 0 ``torch.save``s its results
    to ``result_path`` before the group ends.
    """
    import torch

    result_path = str(tmp_path / "gathered.pt")
    torch.multiprocessing.spawn(worker, args=(world, free_port(), result_path), nprocs=world, join=True)
    return torch.load(result_path)
