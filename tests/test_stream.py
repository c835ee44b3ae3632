"""The keyed stream: golden bits, determinism, regions, backends, laws, low precision, bad input."""

from __future__ import annotations

import hashlib
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _helpers import HAS_ML_DTYPES, assert_ks, dtype_params, same_bits, shape_and_region
from hypothesis import given, settings
from hypothesis import strategies as st

from berry import _recipe, _stream_numpy, stream
from berry._lowp import resolve_dtype
from berry._special import ndtri_array
from berry._validation import check_seed
from berry.stream import Normal, TruncatedNormal, Uniform, draw, fill, key_for

INF = math.inf
HAVE_C = stream._CSTREAM is not None
needs_c = pytest.mark.skipif(not HAVE_C, reason="the C extension berry._cstream is not built")


def sha(x: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest()


# --- the generator ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("counter", "key", "expected"),
    [  # known-answer vectors of Random123's Philox4x32-10
        ((0, 0, 0, 0), 0, (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
        ((0xFFFFFFFF,) * 4, 2**64 - 1, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
        (
            (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
            0x299F31D0 << 32 | 0xA4093822,
            (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
        ),
    ],
)
def test_philox_known_answers(counter, key, expected):
    words = _stream_numpy.philox4x32(*(np.array([c], dtype=np.uint64) for c in counter), key)
    assert tuple(int(w[0]) for w in words) == expected


def test_uniforms_are_strictly_inside_and_symmetric():
    # The extreme 52-bit patterns give 2**-53 and 1 - 2**-53, and 1 - u is exact.
    lowest = (np.uint64(0) >> np.uint64(12)) | np.uint64(0x3FF0000000000000)
    assert lowest.view(np.float64) - (1.0 - 2.0**-53) == 2.0**-53
    u = _stream_numpy.uniform52(np.arange(10_000, dtype=np.uint64), key_for(0, "u"))
    assert np.all((u > 0) & (u < 1))
    assert np.array_equal((1.0 - u) + u, np.ones_like(u))


# --- keys ---------------------------------------------------------------------------------------------


def test_key_is_a_stable_hash():
    # The domain-separation prefix is frozen: it is part of every key ever made (not a version number).
    assert stream.KEY_DOMAIN == _recipe.KEY_DOMAIN == b"berry-stream-v1"
    assert key_for(0, "") == 1758005366935257042
    assert key_for(0, "golden") == 6986239477974179417
    assert key_for(0, "a") != key_for(0, "b") != key_for(1, "b")
    assert key_for(2**64 - 1, "ünï") == key_for(2**64 - 1, "ünï")


@pytest.mark.parametrize("seed", [-1, 2**64, 1.5, "0", True, None])
def test_bad_seed_is_rejected(seed):
    with pytest.raises((TypeError, ValueError), match="seed"):
        key_for(seed, "w")


@pytest.mark.parametrize("seed", [-1, 2**64, 1.5, "0", True, None, float("nan")])
def test_key_for_checks_the_seed_as_every_entry_point_does(seed):
    # One check of the seed's range (berry._validation.check_seed): same error type, same message.
    with pytest.raises((TypeError, ValueError)) as expected:
        check_seed(seed)
    with pytest.raises(type(expected.value), match=re.escape(str(expected.value))):
        key_for(seed, "w")


def test_key_for_takes_an_integral_float_seed_as_sample_does():
    assert key_for(3.0, "w") == key_for(3, "w") == key_for(np.uint64(3), "w")


def test_bad_name_and_key_are_rejected():
    with pytest.raises(TypeError, match="name"):
        key_for(0, 3)  # type: ignore[arg-type]
    for key in (-1, 2**64, 0.5, "k"):
        with pytest.raises((TypeError, ValueError), match="key"):
            draw((3,), Normal(), key=key)


# --- golden values: a change here is a deliberate STREAM_VERSION bump ---------------------------------

GOLDEN = [
    (
        0,
        "",
        (1000,),
        Normal(0.0, 1.0),
        "float64",
        "7f6dfc713c393e9e5bc0efe7e7b2fca6ff16ac39d5ee70bbdf7bc5c523897567",
    ),
    (
        0,
        "layer1.weight",
        (64, 33),
        Normal(0.0, 0.02),
        "float32",
        "db8b151837bbee4b2a646b3379ff46136f03eb8d0fd2e882118fe777cf1a1ee3",
    ),
    (
        1,
        "layer1.weight",
        (64, 33),
        Normal(0.0, 0.02),
        "float32",
        "1ebbe12975fb2e857a129e6410988e285d75afb0f189ee2452a0da591fa21b09",
    ),
    (
        2**64 - 1,
        "ünï",
        (7, 5, 3),
        Uniform(-0.5, 0.25),
        "float32",
        "f1d2224aef3d6a8e30926435690bd0e8b60d5789a5235e8735412f4f13317c69",
    ),
    (
        42,
        "w",
        (300,),
        TruncatedNormal(0.0, 1.0, -2.0, 2.0),
        "float64",
        "64d03003311e5d6c402dc2559ed5e143a48c5412cc4e3541ff473213c6896dc6",
    ),
    (
        42,
        "w",
        (300,),
        TruncatedNormal(1.0, 0.5, 5.0, 6.0),
        "float64",
        "418289d1271c17393afa7387610d454707759b32e5332aef3d259134b1bcee08",
    ),
    (
        42,
        "w",
        (300,),
        TruncatedNormal(0.0, 1.0, 2.0, INF),
        "float16",
        "3dd09a6acf710339d13c81bffb2ca6c643689892b7ac2cfcc3a7c3feea31c7c0",
    ),
    (
        3,
        "b",
        (17, 19),
        TruncatedNormal(0.0, 0.02, -2.0, 2.0),
        "bfloat16",
        "824948ff31d2281062db5af7e91e7884727c38284da583d191042435980056e3",
    ),
    (
        42,
        "w",
        (300,),
        TruncatedNormal(0.0, 1.0, -2.0, 2.0),
        "float32",
        "06f2723a9577d064eaa522ff2d5dd54b2643be1369df048f3d4900ec66301bc5",
    ),
    (
        42,
        "w",
        (300,),
        TruncatedNormal(0.0, 1.0, -3.0, -2.0),
        "float32",
        "f13031d8487e64e248bba2e2de3852572ae21474a556e7d7e9c6abed759f70e9",
    ),
    (
        7,
        "u",
        (4096,),
        Uniform(0.0, 1.0),
        "float16",
        "dd628e295a76ff52491404581137e18f327c8e28c65308b64a393c6587e7bcdc",
    ),
    (
        3,
        "b",
        (17, 19),
        Normal(0.0, 1.0),
        "float16",
        "26327af7e2aeb9fa36a77cec5d07f9428acd3652aadb24cbc49c59d8e000983e",
    ),
]


def test_stream_version():
    # Version 2: float32/float16/bfloat16 truncated normals (32-bit draws, complement form in the upper half),
    # uniform values kept off the endpoints, the clamp's order. Normal laws and float64 values are unchanged.
    assert stream.STREAM_VERSION == _recipe.STREAM_VERSION == 2
    if HAVE_C:
        assert stream._CSTREAM.STREAM_VERSION == 2


@pytest.mark.parametrize("backend", ["numpy", pytest.param("c", marks=needs_c)])
@pytest.mark.parametrize(("seed", "name", "shape", "law", "dtype", "digest"), GOLDEN)
def test_golden_hashes(backend, seed, name, shape, law, dtype, digest):
    if dtype == "bfloat16" and not HAS_ML_DTYPES:
        pytest.skip("bfloat16 needs ml_dtypes")
    out = np.empty(shape, dtype=resolve_dtype(dtype))
    fill(out, law, key=key_for(seed, name), global_shape=shape, backend=backend)
    assert sha(out) == digest


def test_golden_literal_values():
    x = draw((4,), Normal(), key=key_for(0, "golden"), dtype="float64")
    expected = [
        "0x1.11a1ef4906478p+0",
        "0x1.a3d94bbc35492p-3",
        "-0x1.1ffb1e52b2feep-3",
        "0x1.9602adac36846p-5",
    ]
    assert [float(v).hex() for v in x] == expected
    # the float64 transform of a truncated normal whose interval contains 0: u > 1/2 from the upper end (v2)
    x = draw((4,), TruncatedNormal(0.0, 1.0, -2.0, 2.0), key=key_for(0, "golden"), dtype="float64")
    assert [float(v).hex() for v in x] == [
        "0x1.ffa3898973ee7p-1",
        "0x1.907e822decae5p-3",
        "-0x1.12cc0163b18d0p-3",
        "0x1.8385d3df8647cp-5",
    ]
    # the float32 transform of the truncated normal, lower and upper triples (v2)
    x = draw((4,), TruncatedNormal(0.0, 1.0, -2.0, 2.0), key=key_for(0, "golden"), dtype="float32")
    assert [float(v).hex() for v in x] == [
        "0x1.64574c0000000p-2",
        "-0x1.f033fe0000000p-2",
        "0x1.47aee00000000p+0",
        "0x1.48a3580000000p+0",
    ]
    x = draw((4,), TruncatedNormal(0.0, 1.0, -3.0, -2.0), key=key_for(0, "golden"), dtype="float32")
    assert [float(v).hex() for v in x] == [
        "-0x1.156e7a0000000p+1",
        "-0x1.350c8c0000000p+1",
        "-0x1.04428a0000000p+1",
        "-0x1.0439040000000p+1",
    ]


# --- backends, threads, processes ---------------------------------------------------------------------

LAWS = [
    Normal(0.0, 1.0),
    Normal(-3.0, 0.02),
    Uniform(-1.0, 2.0),
    TruncatedNormal(0.0, 1.0, -2.0, 2.0),
    TruncatedNormal(0.1, 0.5, 5.0, 6.0),
    TruncatedNormal(0.0, 1.0, -1.0, 0.5),
    TruncatedNormal(0.0, 1.0, 2.0, INF),
    TruncatedNormal(0.0, 3.0, -INF, -30.0),
    TruncatedNormal(0.0, 1.0, 8.0, 9.0),
]
# Laws at the edges: clamps onto signed zeros, values that round to zero, endpoints that are representable,
# the three float32-transform triples (upper +1, upper -1, normal-like) and the float64 fallbacks.
EDGE_LAWS = [
    Uniform(-1e-9, 0.0),
    Uniform(0.0, 1e-9),
    Uniform(0.0, 1.0),
    Uniform(-1.0, 0.0),
    Normal(0.0, 1e-30),
    TruncatedNormal(0.0, 1.0, -1.0, 0.0),
    TruncatedNormal(0.0, 1.0, 0.0, 1.0),
    TruncatedNormal(0.0, 1e-30, -1.0, 0.0),
    TruncatedNormal(0.0, 1e-30, 0.0, 2.0),
    TruncatedNormal(-0.0, 1.0, 0.0, INF),
    TruncatedNormal(0.0, 1.0, -6.0, 6.0),
    TruncatedNormal(0.0, 1.0, -3.0, -2.0),
    TruncatedNormal(0.0, 1.0, -INF, 2.0),
    TruncatedNormal(0.0, 1.0, -INF, -2.4),  # r down to 2**-40, the end of G's fitted range
    TruncatedNormal(0.0, 1.0, -INF, INF),
    TruncatedNormal(0.0, 1.0, 1.0, 1.0001),
    TruncatedNormal(0.5, 1e-3, -1.0, 1.0),
]
DTYPES = dtype_params(["float64", "float32", "float16", "bfloat16"])
REGIONS = [
    ((20_003,), (slice(7, 20_000),)),
    ((37, 53), (slice(3, 30), slice(5, 41))),
    ((4, 5, 6), (slice(1, 3), slice(0, 5), slice(0, 6))),
    ((3, 1, 2050), (slice(0, 3), slice(0, 1), slice(1, 2049))),
]
SIMD_PATHS = stream._CSTREAM.simd_paths() if HAVE_C else ()


def same_bits_c_and_numpy(law, dtype, keys=(0, 12345, 2**64 - 1), regions=REGIONS):
    for key in keys:
        for shape, region in regions:
            start, rshape = stream.region_bounds(shape, region)
            c_out = np.empty(rshape, dtype=resolve_dtype(dtype))
            np_out = np.empty_like(c_out)
            fill(c_out, law, key=key, global_shape=shape, region_start=start, threads=3, backend="c")
            fill(np_out, law, key=key, global_shape=shape, region_start=start, backend="numpy")
            assert same_bits(c_out, np_out), (dtype, key, shape, region)


@needs_c
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("law", LAWS + EDGE_LAWS, ids=repr)
def test_c_kernel_equals_numpy_reference(law, dtype):
    """Every SIMD path this CPU has (and the portable one) against the NumPy reference, -0.0 included."""
    try:
        for simd in SIMD_PATHS:
            assert stream._CSTREAM.set_simd(simd) == simd
            same_bits_c_and_numpy(law, dtype)
    finally:
        stream._CSTREAM.set_simd("auto")


@pytest.mark.parametrize(
    "law", [Normal(), TruncatedNormal(0.0, 1.0, -2.0, 2.0), Uniform(-1.0, 1.0)], ids=repr
)
def test_same_bits_for_any_thread_count(law):
    shape = (700, 701)  # enough elements for 7 threads to each get a share
    reference = draw(shape, law, key=key_for(5, "t"), threads=1)
    for threads in (2, 3, 7):
        assert same_bits(draw(shape, law, key=key_for(5, "t"), threads=threads), reference)


def test_same_bits_in_another_process_and_backend():
    law = TruncatedNormal(0.0, 0.5, -1.0, 3.0)
    here = sha(draw((123, 45), law, key=key_for(9, "p")))
    code = (
        "import hashlib, numpy as np; from berry.stream import *; "
        "x = draw((123, 45), TruncatedNormal(0.0, 0.5, -1.0, 3.0), key=key_for(9, 'p')); "
        "print(BACKEND, hashlib.sha256(x.tobytes()).hexdigest())"
    )
    for backend in ("numpy", "auto"):
        env = {**os.environ, "BERRY_STREAM_BACKEND": backend, "PYTHONHASHSEED": "123"}
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
        )
        name, digest = result.stdout.split()
        assert digest == here
        if backend == "numpy":
            assert name == "numpy"


def test_no_global_random_state_is_read_or_advanced():
    # The legacy global state is exactly what must stay untouched, so it is used on purpose here.
    np.random.seed(0)  # noqa: NPY002
    before = np.random.get_state()[1].copy()  # noqa: NPY002
    a = draw((50,), Normal(), key=1)
    np.random.seed(1)  # noqa: NPY002
    b = draw((50,), Normal(), key=1)
    assert np.array_equal(a, b)
    np.random.seed(0)  # noqa: NPY002
    assert np.array_equal(np.random.get_state()[1], before)  # noqa: NPY002


# --- regions ------------------------------------------------------------------------------------------


@settings(max_examples=80, derandomize=True, deadline=None)
@given(shape_and_region(min_rank=0), st.sampled_from(LAWS[:7]), st.sampled_from(["float32", "float16"]))
def test_region_equals_slice_of_full(shape_region, law, dtype):
    shape, region = shape_region
    full = draw(shape, law, key=77, dtype=dtype)
    part = draw(shape, law, key=77, dtype=dtype, region=region)
    assert part.shape == full[region].shape
    assert same_bits(part, full[region])


def test_column_block_region():
    full = draw((64, 80), Normal(), key=3)
    block = draw((64, 80), Normal(), key=3, region=(slice(None), slice(20, 40)))
    assert np.array_equal(block, full[:, 20:40])


def test_scalar_and_zero_size():
    assert draw((), Normal(), key=1).shape == ()
    assert draw((), Normal(), key=1, dtype="float64") == draw((1,), Normal(), key=1, dtype="float64")[0]
    empty = np.empty((0, 5), dtype=np.float32)
    fill(empty, Normal(), key=1, global_shape=(0, 5))  # a no-op, not an error
    assert draw((3, 0), Uniform(), key=1).shape == (3, 0)


def test_big_endian_out():
    out = np.empty((3, 4), dtype=">f4")
    fill(out, Normal(), key=4, global_shape=(3, 4))
    assert np.array_equal(out.astype(np.float32), draw((3, 4), Normal(), key=4))


def test_non_contiguous_out():
    base = np.zeros((10, 12), dtype=np.float32)
    view = base[:, ::2]
    fill(view, Normal(), key=4, global_shape=(10, 6))
    assert np.array_equal(view, draw((10, 6), Normal(), key=4))
    assert np.all(base[:, 1::2] == 0)


# --- laws ---------------------------------------------------------------------------------------------


def test_normal_matches_its_law():
    stats = pytest.importorskip("scipy.stats")
    x = draw((200_000,), Normal(1.5, 0.02), key=key_for(0, "ks-normal"), dtype="float64")
    assert_ks(x, stats.norm(1.5, 0.02))
    assert abs(x.mean() - 1.5) < 5 * 0.02 / math.sqrt(x.size)
    assert abs(x.std() / 0.02 - 1) < 0.01


def test_uniform_matches_its_law():
    stats = pytest.importorskip("scipy.stats")
    x = draw((200_000,), Uniform(-0.3, 0.7), key=key_for(0, "ks-uniform"), dtype="float64")
    assert_ks(x, stats.uniform(-0.3, 1.0))
    assert x.min() > -0.3 and x.max() < 0.7


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (-2.0, 2.0),
        (2.0, 3.0),
        (5.0, 6.0),
        (8.0, 9.0),
        (-1.0, 0.5),
        (2.0, INF),
        (-INF, -1.0),
        (-INF, 3.0),
        (0.0, INF),
    ],
)
def test_truncated_normal_matches_its_law(a, b):
    stats = pytest.importorskip("scipy.stats")
    loc, scale = 0.25, 0.5
    law = stats.truncnorm(a, b, loc=loc, scale=scale)
    x = draw((100_000,), TruncatedNormal(loc, scale, a, b), key=key_for(1, f"ks-{a}-{b}"), dtype="float64")
    assert_ks(x, law)
    assert x.min() >= loc + a * scale and x.max() <= loc + b * scale
    assert abs(x.mean() - law.mean()) < 5 * law.std() / math.sqrt(x.size)
    assert abs(x.std() / law.std() - 1) < 0.02


def test_truncated_with_zero_scale_is_the_location():
    assert np.all(draw((10,), TruncatedNormal(0.5, 0.0, -2.0, 2.0), key=1) == np.float32(0.5))


# --- low precision ------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", dtype_params(["float16", "bfloat16", "float32"]))
@pytest.mark.parametrize("law", [Normal(0.3, 0.02), TruncatedNormal(0.0, 0.02, -2.0, 2.0)])
def test_low_precision_is_the_float32_transform_rounded_once(dtype, law):
    # float32/float16/bfloat16 come from the float32 transform: z in float32, then loc + scale * z in
    # float64, clamped, and rounded ONCE to the dtype (never float16 through float32).
    from berry._lowp import round_float64

    n = 5000
    narrow = draw((n,), law, key=8, dtype=dtype)
    params = stream.kernel_params(law, resolve_dtype(dtype))
    assert params.transform == _recipe.TRANSFORM_F32
    before = _stream_numpy.prerounded(np.arange(n, dtype=np.uint64), 8, params)
    assert same_bits(narrow, round_float64(before, resolve_dtype(dtype)))
    if dtype == "float16":
        assert same_bits(narrow, before.astype(np.float16))  # NumPy rounds float64 -> half directly


def exact_float32_transform(law, n, key=5):
    """(z of the float32 transform, the exact quantile of the same draw in float64) for n stream words."""
    word = _stream_numpy.words32(np.arange(n, dtype=np.uint64), key)
    params = stream.kernel_params(law, np.dtype("float32"))
    z = _stream_numpy.z_f32(word, params).astype(np.float64)
    m = (word & np.uint32(0x7FFFFFFF)).astype(np.int32).astype(np.float32)
    v = ((m + np.float32(0.5)) * np.float32(2.0**-32)).astype(np.float64)  # exact
    upper = word >= 2**31
    if isinstance(law, Normal):
        return z, np.where(upper, -1.0, 1.0) * ndtri_array(v)
    trunc = stream._truncation(law.a, law.b)
    if trunc.upper_positive:  # upper half measured from b': q = Phi(-b') + width * v, z = -ndtri(q)
        r = np.where(upper, trunc.qb + trunc.width * v, trunc.pa + trunc.width * v)
        return z, np.where(upper, -1.0, 1.0) * ndtri_array(r)
    r = np.where(upper, trunc.pb - trunc.width * v, trunc.pa + trunc.width * v)
    return z, ndtri_array(r)


@pytest.mark.parametrize(
    "law",
    [
        Normal(0.0, 1.0),
        TruncatedNormal(0.0, 1.0, -2.0, 2.0),
        TruncatedNormal(0.0, 1.0, -6.0, 6.0),
        TruncatedNormal(0.0, 1.0, -1.0, 0.5),
        TruncatedNormal(0.0, 1.0, 5.0, 6.0),
        TruncatedNormal(0.0, 1.0, 2.0, INF),
        TruncatedNormal(0.0, 1.0, -INF, 1.0),
        TruncatedNormal(0.0, 1.0, -3.0, -2.0),
    ],
    ids=repr,
)
def test_float32_transform_is_within_the_documented_error_of_the_exact_quantile(law):
    # The stream docstring's figures (benchmarks/accuracy.py measures them on 2**22 draws): within 4 float32
    # ulps of the exact quantile of the same draw where |z| >= 1, and within 2.5 * 2**-23 * max(|z|, 1)
    # everywhere (near 0, r near 1/2 is on float32's grid of 2**-25, an absolute floor). Before v2, the
    # upper half of a truncated normal formed 1 - p in float32 and was 30 ulps off.
    z, exact = exact_float32_transform(law, 200_000)
    error = np.abs(z - exact)
    far = np.abs(exact) >= 1.0
    ulps = error[far] / np.spacing(np.abs(exact[far]).astype(np.float32)).astype(np.float64)
    assert ulps.max(initial=0.0) <= 4.0
    assert (error / (2.0**-23 * np.maximum(np.abs(exact), 1.0))).max() <= 2.5


@pytest.mark.parametrize(("a", "b"), [(-6.0, 6.0), (-2.0, 2.0), (-8.0, 5.0), (-INF, 4.0), (-INF, INF)])
def test_float64_truncated_normal_is_exact_in_both_tails(a, b):
    # Stream v1 formed 1 - p in float64 for the upper half of an interval containing 0: at u = 1 - 2**-40
    # in TN[-6, 6] its z was 1e-7 off (1e8 ulps). v2 measures u > 1/2 from the upper end.
    mpmath = pytest.importorskip("mpmath")
    params = stream.kernel_params(TruncatedNormal(0.0, 1.0, a, b), np.dtype("float64"))
    unit = params._replace(offset=0.0, factor=1.0, low=-INF, high=INF)
    u = np.array([2.0**-50, 2.0**-40, 1e-6, 0.25, 0.5 - 2.0**-52, 0.5 + 2.0**-52, 0.75, 1 - 1e-6, 1 - 2.0**-40, 1 - 2.0**-50])
    z = _stream_numpy.values_f64(u, unit)
    with mpmath.workdps(60):
        pa, pb = mpmath.ncdf(a), mpmath.ncdf(b)
        for zi, ui in zip(z.tolist(), u.tolist(), strict=True):
            exact = float(mpmath.sqrt(2) * mpmath.erfinv(2 * (pa + (pb - pa) * mpmath.mpf(ui)) - 1))
            assert abs(zi - exact) <= 4 * 2.0**-52 * max(abs(exact), 1.0), (ui, zi, exact)


def test_narrow_truncation_intervals_use_the_float64_transform():
    # where float32 cannot resolve the interval's probabilities, float32 output is the float64 value rounded
    law = TruncatedNormal(0.0, 1.0, 1.0, 1.0001)
    assert stream.kernel_params(law, np.dtype("float32")).transform == _recipe.TRANSFORM_F64
    wide = draw((1000,), law, key=3, dtype="float64")
    assert same_bits(draw((1000,), law, key=3, dtype="float32"), wide.astype(np.float32))
    for far in (TruncatedNormal(0.0, 1.0, 8.0, 9.0), TruncatedNormal(0.0, 1.0, 3.0, INF)):
        assert stream.kernel_params(far, np.dtype("float32")).transform == _recipe.TRANSFORM_F64


@pytest.mark.parametrize("dtype", dtype_params(["float16", "bfloat16"]))
@pytest.mark.parametrize(
    ("loc", "scale", "a", "b"),
    [
        (0.0, 0.02, -2.0, 2.0),
        (0.0, 1.0, -2.0, 2.0),
        (0.0, 0.01, 0.0, 0.3),
        (1.0, 0.05, -0.2, 0.2),
        (0.0, 1.0, 2.0, 3.0),
    ],
)
def test_low_precision_truncated_stays_inside_without_piling_up(dtype, loc, scale, a, b):
    x = draw((200_000,), TruncatedNormal(loc, scale, a, b), key=key_for(2, "lowp"), dtype=dtype).astype(
        np.float64
    )
    low, high = loc + a * scale, loc + b * scale
    assert np.all(np.isfinite(x))
    assert x.min() >= low and x.max() <= high
    values, counts = np.unique(x, return_counts=True)
    assert values.size >= 3
    # No pile-up (torch issues 145498/155588): the extreme values are no more frequent than their
    # neighbours allow (a rounding cell cut by the bound holds at most 1.5 cells' mass).
    for edge, neighbours in ((counts[0], counts[1:4]), (counts[-1], counts[-4:-1])):
        assert edge <= 2.0 * neighbours.max() + 30


@pytest.mark.parametrize("dtype", dtype_params(["float16", "bfloat16"]))
def test_low_precision_normal_has_no_outliers_or_stuck_values(dtype):
    x = draw((500_000,), Normal(0.0, 1.0), key=key_for(3, "outliers"), dtype=dtype).astype(np.float64)
    assert np.all(np.isfinite(x)) and np.abs(x).max() <= 6.34  # the float32 transform: v >= 2**-33
    _, counts = np.unique(x, return_counts=True)
    assert counts.max() < 0.01 * x.size


def test_narrow_interval_without_a_representable_value_is_an_error():
    with pytest.raises(ValueError, match="no float16 value"):
        draw((3,), Uniform(1.0001, 1.0002), key=1, dtype="float16")


# --- bad input ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: TruncatedNormal(0.0, 1.0, 2.0, 2.0), r"a < b"),
        (lambda: TruncatedNormal(0.0, 1.0, 3.0, -1.0), r"a < b"),
        (lambda: TruncatedNormal(0.0, 1.0, INF, INF), r"a < b"),
        (lambda: TruncatedNormal(0.0, 1.0, math.nan, 1.0), "bound a"),
        (lambda: TruncatedNormal(math.nan, 1.0), "loc"),
        (lambda: TruncatedNormal(0.0, -1.0), "scale"),
        (lambda: TruncatedNormal(0.0, 1.0, 40.0, 41.0), "37 standard deviations"),
        (lambda: Normal(0.0, math.nan), "scale"),
        (lambda: Normal(math.inf, 1.0), "loc"),
        (lambda: Uniform(1.0, 0.0), r"low <= high"),
        (lambda: Uniform(0.0, math.inf), "high"),
    ],
)
def test_bad_law_parameters(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_fill_arguments():
    good = np.empty((2, 3), dtype=np.float32)
    with pytest.raises(TypeError, match=r"out must be a numpy\.ndarray"):
        fill([0.0], Normal(), key=1, global_shape=(1,))  # type: ignore[arg-type]
    readonly = np.empty(3, dtype=np.float32)
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match="writable"):
        fill(readonly, Normal(), key=1, global_shape=(3,))
    with pytest.raises(ValueError, match="does not fit"):
        fill(good, Normal(), key=1, global_shape=(2, 2))
    with pytest.raises(ValueError, match="does not fit"):
        fill(good, Normal(), key=1, global_shape=(3, 3), region_start=(2, 0))
    with pytest.raises(ValueError, match="dtype"):
        fill(np.empty(3, dtype=np.int32), Normal(), key=1, global_shape=(3,))
    with pytest.raises(TypeError, match="law"):
        fill(good, "normal", key=1, global_shape=(2, 3))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="threads"):
        fill(good, Normal(), key=1, global_shape=(2, 3), threads=0)
    with pytest.raises(ValueError, match="global_shape"):
        fill(good, Normal(), key=1, global_shape=(2, -3))


@pytest.mark.parametrize(
    ("region", "error"),
    [
        ((slice(0, 2, 2),), "step 1"),
        ((slice(-1, 2),), "outside axis 0"),
        ((slice(0, 5),), "outside axis 0"),
        ((slice(3, 1),), "outside axis 0"),
        ((0,), "must be a slice"),
        ((slice(None), slice(None), slice(None)), "2 axes"),
    ],
)
def test_bad_regions(region, error):
    with pytest.raises((TypeError, ValueError), match=error):
        draw((4, 4), Normal(), key=1, region=region)


@pytest.mark.parametrize("dtype", ["int8", "complex64", "float128", "half-ish"])
def test_unsupported_dtype(dtype):
    with pytest.raises((TypeError, ValueError)):
        draw((3,), Normal(), key=1, dtype=dtype)


def test_backend_environment_variable_is_checked():
    env = {**os.environ, "BERRY_STREAM_BACKEND": "fortran"}
    result = subprocess.run(
        [sys.executable, "-c", "import berry.stream"], capture_output=True, text=True, env=env
    )
    assert result.returncode != 0 and "BERRY_STREAM_BACKEND" in result.stderr


@pytest.mark.parametrize("dtype", dtype_params(["float32", "bfloat16", "float16"]))
@pytest.mark.parametrize("std", [0.001, 0.01])
def test_small_std_with_absolute_bounds_has_no_outliers(dtype, std):
    # torch issues 155588 / 145498: trunc_normal_(std=0.001, a=-2, b=2) put 1000-sigma values on the
    # bounds (erfinv of numbers next to +-1, or of a low-precision uniform that rounded to 0). Here the
    # bounds are -2/std .. 2/std standard deviations; the float64 inversion of a 52-bit uniform that
    # never reaches 0 or 1 keeps |z| <= 8.3.
    x = draw((300_000,), TruncatedNormal(0.0, std, -2.0 / std, 2.0 / std), key=key_for(4, "abs"), dtype=dtype)
    x = x.astype(np.float64)
    assert np.abs(x).max() <= 8.3 * std
    assert abs(x.mean()) < 5 * std / math.sqrt(x.size) + 1e-3 * std
    assert abs(x.std() / std - 1) < 0.01
    kurtosis = np.mean((x - x.mean()) ** 4) / x.var() ** 2
    assert abs(kurtosis - 3) < 0.1


def test_c_header_is_rendered_from_the_python_recipe():
    # The C kernel spells no constant itself: berry/_cstream_recipe.h is `python -m berry._recipe` output.
    path = Path(stream.__file__).with_name("_cstream_recipe.h")
    if not path.exists():
        pytest.skip("an installed berry without its C sources")
    header = path.read_text()
    assert header == _recipe.c_header(), "regenerate: python -m berry._recipe > berry/_cstream_recipe.h"
