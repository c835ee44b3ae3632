"""The C kernel's contract: named, validated fields; small stacks; Ctrl-C; backend selection and reporting."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from _helpers import ROOT

from berry import _recipe, stream
from berry.stream import Normal, TruncatedNormal, Uniform

needs_c = pytest.mark.skipif(stream._CSTREAM is None, reason="the C extension berry._cstream is not built")


def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=environment, timeout=300
    )


# --- the fields of the C entry -------------------------------------------------------------------------------


def good_fields(law=None, dtype="float32", shape=(6, 10)):
    """A valid call of berry._cstream.fill: (out bytes, its fields) for the whole tensor of ``shape``."""
    law = Normal(0.0, 1.0) if law is None else law
    params = stream.kernel_params(law, np.dtype(dtype))
    layout = stream.region_layout(shape, (0,) * len(shape), shape)
    out = np.empty(shape, dtype=dtype).reshape(-1).view(np.uint8)
    fields = {"dtype": _recipe.DTYPE_CODES[dtype], "key": 12345, **params._asdict(), **layout._asdict(), "threads": 2}
    return out, fields


@needs_c
def test_the_c_fields_are_the_reference_fields():
    assert set(stream._CSTREAM.FIELDS) == {"dtype", "key", *stream.KernelParams._fields, *stream.Layout._fields, "threads"}
    out, fields = good_fields()
    stream._CSTREAM.fill(out, **fields)
    expected = stream.draw((6, 10), Normal(0.0, 1.0), key=12345)
    assert np.array_equal(out.view(np.float32).reshape(6, 10), expected)


HOSTILE = [
    ("dtype", -1), ("dtype", 4), ("dtype", 2**70), ("dtype", "1"), ("dtype", 1.0),
    ("key", -1), ("key", 2**64), ("key", 1.5),
    ("law", 3), ("law", -1), ("transform", 2), ("affine32", 2), ("upper_sign", 0), ("upper_sign", 2),
    ("offset", float("nan")), ("offset", float("inf")), ("offset", "0"), ("factor", float("nan")),
    ("low", float("nan")), ("high", float("nan")),
    ("pa", -0.1), ("pa", float("nan")), ("width", 2.0), ("qb", 1.5), ("complement", 1),
    ("lower_base", 0.1), ("lower_step", float("inf")), ("upper_base", float("nan")), ("upper_step", 1e39),
    ("base", -1), ("base", 2**64 - 1), ("run", 0), ("run", 2**64), ("run", 7),
    ("counts", [6]), ("counts", (6, 1)), ("counts", (-6,)), ("counts", ("6",)), ("strides", (2**64,)),
    ("counts", (1,) * 65), ("threads", 0), ("threads", -3), ("threads", 2**40),
]  # fmt: skip


@needs_c
@pytest.mark.parametrize(("field", "value"), HOSTILE, ids=[f"{f}={v!r}"[:40] for f, v in HOSTILE])
def test_every_field_is_validated(field, value):
    out, fields = good_fields()
    fields[field] = value
    with pytest.raises((TypeError, ValueError, OverflowError), match=r"berry\._cstream\.fill"):
        stream._CSTREAM.fill(out, **fields)


@needs_c
def test_fields_that_contradict_each_other_are_refused():
    out, fields = good_fields(Uniform(-1.0, 1.0))
    with pytest.raises(ValueError, match="transform"):
        stream._CSTREAM.fill(out, **{**fields, "transform": _recipe.TRANSFORM_F32})
    out, fields = good_fields(Normal(), dtype="float64")
    with pytest.raises(ValueError, match="transform"):
        stream._CSTREAM.fill(out, **{**fields, "transform": _recipe.TRANSFORM_F32})
    out, fields = good_fields(Normal(), dtype="float16")
    with pytest.raises(ValueError, match="affine32"):
        stream._CSTREAM.fill(out, **{**fields, "affine32": 1})
    out, fields = good_fields(Uniform(-1.0, 1.0))
    with pytest.raises(ValueError, match="low"):
        stream._CSTREAM.fill(out, **{**fields, "low": 0.5, "high": 0.25})
    out, fields = good_fields(Normal())
    with pytest.raises(ValueError, match="factor"):
        stream._CSTREAM.fill(out, **{**fields, "factor": -1.0})
    with pytest.raises(ValueError, match="normal law"):
        stream._CSTREAM.fill(out, **{**fields, "lower_base": 0.5})


@needs_c
def test_missing_extra_and_positional_fields_are_refused():
    out, fields = good_fields()
    with pytest.raises(TypeError, match="missing field threads"):
        stream._CSTREAM.fill(out, **{k: v for k, v in fields.items() if k != "threads"})
    with pytest.raises(TypeError, match="exactly 23 named fields"):
        stream._CSTREAM.fill(out, **fields, fast=1)
    with pytest.raises(TypeError, match="one positional argument"):
        stream._CSTREAM.fill(out, 1, **fields)
    with pytest.raises(TypeError, match="keyword"):
        stream._CSTREAM.fill(out)


@needs_c
def test_the_region_size_arithmetic_cannot_wrap():
    # v1 computed rows * run * itemsize in 64 bits: 2**62 rows of 4 float32 wrapped to 0 bytes and the
    # kernel wrote past an empty buffer.
    out, fields = good_fields()
    empty = np.empty(0, dtype=np.uint8)
    for counts, strides, run in (((2**62,), (4,), 4), ((2**32, 2**32), (1, 1), 1), ((2**40,), (2**40,), 2**23)):
        with pytest.raises(ValueError, match=r"berry\._cstream\.fill"):
            stream._CSTREAM.fill(empty, **{**fields, "counts": counts, "strides": strides, "run": run, "base": 0})
    # global indices past 2**64 - 1
    with pytest.raises(ValueError, match="64 bits"):
        stream._CSTREAM.fill(out, **{**fields, "counts": (6,), "strides": (2**63,), "run": 10})


@needs_c
def test_the_output_buffer_is_checked():
    out, fields = good_fields()
    with pytest.raises(ValueError, match="bytes"):
        stream._CSTREAM.fill(out[:-4], **fields)
    with pytest.raises(ValueError, match="bytes"):
        stream._CSTREAM.fill(np.empty(out.size + 4, np.uint8), **fields)
    readonly = np.empty_like(out)
    readonly.flags.writeable = False
    with pytest.raises((TypeError, BufferError, ValueError)):
        stream._CSTREAM.fill(readonly, **fields)
    with pytest.raises((TypeError, BufferError, ValueError)):
        stream._CSTREAM.fill(np.empty(2 * out.size, np.uint8)[::2], **fields)  # not contiguous
    for bad in (bytes(out.size), [0] * out.size, None):
        with pytest.raises((TypeError, BufferError, ValueError)):
            stream._CSTREAM.fill(bad, **fields)


# --- crashes: small stacks, Ctrl-C ---------------------------------------------------------------------------


@needs_c
def test_a_thread_with_a_small_stack_can_fill():
    # v1 kept about 54 KB of scratch on the caller's stack: a 64 KiB thread stack segfaulted.
    result = run_python(
        """
        import threading
        from berry import stream
        from berry.stream import Normal, TruncatedNormal, Uniform, draw
        threading.stack_size(65536)
        done = []
        def run():
            for simd in stream._CSTREAM.simd_paths():
                stream._CSTREAM.set_simd(simd)
                for law in (Normal(0, 1), TruncatedNormal(0, 1, -2, 2), TruncatedNormal(0, 1, 8, 9), Uniform(-1, 1)):
                    for dtype in ("float64", "float32", "float16"):
                        draw((200_003,), law, key=1, dtype=dtype, threads=2)
                        done.append(1)
        thread = threading.Thread(target=run)
        thread.start()
        thread.join()
        print(len(done))
        """
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) == 12 * len(stream._CSTREAM.simd_paths())


@needs_c
@pytest.mark.parametrize("threads", [1, 2])
def test_ctrl_c_stops_a_long_fill(threads):
    # SIGINT 50 ms into a 256 MiB fill on the portable path (about a second of work on any CPU; the signal
    # check is the same code on every path): KeyboardInterrupt with the end never written. In v1 the fill
    # ran to its end and only then raised.
    result = run_python(
        f"""
        import os, signal, threading
        import numpy as np
        from berry.stream import Normal, fill, key_for
        out = np.full(1 << 25, np.nan)
        threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGINT)).start()
        try:
            fill(out, Normal(), key=key_for(0, "sigint"), global_shape=out.shape, threads={threads}, backend="c")
            print("completed")
        except KeyboardInterrupt:
            print("interrupted", bool(np.isnan(out[-(1 << 20):]).all()))
        """,
        BERRY_STREAM_SIMD="generic",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["interrupted", "True"]


# --- backend selection and reporting -------------------------------------------------------------------------


def test_backend_info_names_the_backend_and_simd_path():
    info = stream.backend_info()
    assert info["backend"] == stream.BACKEND and info["stream_version"] == stream.STREAM_VERSION
    if stream._CSTREAM is None:
        assert info["simd"] is None
        return
    try:
        for path in stream._CSTREAM.simd_paths():
            stream._CSTREAM.set_simd(path)
            assert stream.backend_info()["simd"] == path
    finally:
        stream._CSTREAM.set_simd("auto")
    assert "generic" in stream._CSTREAM.simd_paths()
    with pytest.raises(ValueError, match="simd mode"):
        stream._CSTREAM.set_simd("sse9")


@needs_c
def test_the_simd_path_can_be_forced_from_the_environment():
    for path in stream._CSTREAM.simd_paths():
        result = run_python("from berry import stream; print(stream.backend_info()['simd'])", BERRY_STREAM_SIMD=path)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == path
    result = run_python("import berry.stream", BERRY_STREAM_SIMD="sse9")
    assert result.returncode != 0 and "BERRY_STREAM_SIMD='sse9' is not supported" in result.stderr


MISSING_EXTENSION = """
import sys
sys.modules["berry._cstream"] = None  # as if the build had failed
from berry import stream
print(stream.BACKEND, stream.backend_info()["reason"])
"""


def test_a_missing_extension_falls_back_visibly_unless_c_is_required():
    result = run_python(MISSING_EXTENSION, BERRY_STREAM_BACKEND="auto")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("numpy the C extension berry._cstream is not available")
    result = run_python(MISSING_EXTENSION, BERRY_STREAM_BACKEND="c")
    assert result.returncode != 0
    assert "ImportError: BERRY_STREAM_BACKEND=c but the C extension berry._cstream cannot be loaded" in result.stderr


@needs_c
def test_a_stale_extension_is_not_used():
    # An extension built from another recipe version (or another field list) must not give its bits.
    code = """
    import berry._cstream as c
    c.STREAM_VERSION = 1
    from berry import stream
    print(stream.BACKEND, stream.backend_info()["reason"])
    """
    result = run_python(code, BERRY_STREAM_BACKEND="auto")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("numpy the C extension berry._cstream implements stream version 1")
    assert run_python(code, BERRY_STREAM_BACKEND="c").returncode != 0


def test_float32_and_float64_cases_run_without_ml_dtypes():
    # The cross-backend test skips bfloat16 alone when ml_dtypes is missing (issue 11).
    result = run_python(
        """
        import sys
        sys.modules["ml_dtypes"] = None
        import pytest
        sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", "tests/test_stream.py", "-k",
                              "c_kernel_equals_numpy_reference and Uniform and 2.0", "-x"]))
        """
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "skipped" in result.stdout and "passed" in result.stdout


def test_truncated_normal_laws_survive_the_c_round_trip_of_their_fields():
    # every field value the reference computes is one the C entry accepts (no false refusals)
    if stream._CSTREAM is None:
        pytest.skip("no C extension")
    for law in (TruncatedNormal(0.0, 1.0, -2.0, 2.0), TruncatedNormal(0.0, 1.0, 8.0, 9.0), Uniform(-1e-9, 0.0)):
        for dtype in ("float64", "float32", "float16"):
            out, fields = good_fields(law, dtype)
            stream._CSTREAM.fill(out, **fields)
