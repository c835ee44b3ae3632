"""berry's Triton kernel, run by Triton's interpreter on CPU, gives the host's bits for every law and dtype.

The interpreter executes the very source that is compiled for the GPU (berry/_device/_kernel.py) with
NumPy, one program at a time, so these tests prove the device recipe without a device: Philox counters
and keys, both transforms, the clamp, the rounding to float16/bfloat16 and the region addressing
(outer axes, rows split into chunks, element offsets beyond 2**32 and Philox counters whose high word is
set). tests/test_triton_ptx.py checks that the compiled form keeps every operation IEEE-exact.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from _helpers import assert_same_bits, shape_and_region
from _triton_helpers import DTYPES, device_fill, host_fill, requires_triton, torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from berry import _device, stream
from berry.stream import Normal, TruncatedNormal, Uniform

pytestmark = requires_triton
tl = pytest.importorskip("triton.language", reason="Triton is not installed (pip install triton)")

KEY = stream.key_for(0, "layer.weight")
OTHER_KEYS = [0, 2**64 - 1, stream.key_for(2**63 + 5, "emb")]

#: Every branch of the kernel: both transforms, each truncated-normal form (mirrored, with and without the
#: complement, a one-sided tail, a float64 fallback of a float32 output), uniform laws and affine maps.
LAWS = {
    "normal": Normal(0.25, 0.02),
    "tn_centered": TruncatedNormal(0.0, 1.0, -2.0, 2.0),  # contains 0: the upper half from its own end
    "tn_skewed": TruncatedNormal(-1.0, 3.0, -1.0, 0.5),
    "tn_mirrored": TruncatedNormal(0.5, 2.0, 2.0, 3.0),  # a + b > 0: mirrored
    "tn_far_tail": TruncatedNormal(0.0, 1.0, 8.0, 9.0),  # beyond the float32 transform: float64 for every dtype
    "tn_one_sided": TruncatedNormal(0.0, 0.5, -math.inf, 1.0),
    "uniform": Uniform(-0.1, 0.3),
}
# A huge virtual tensor (2**40 elements) and a small region of it: element offsets beyond 2**32 and Philox
# block indices (offset // 4, // 2) beyond 2**32, so the counter's high word is exercised.
HUGE = (2**30, 2**10)
HUGE_START = (2**29 + 3, 501)
REGION = (3, 37)  # 37 columns: no multiple of a Philox block or of the kernel's block


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("law", LAWS.values(), ids=LAWS.keys())
def test_every_law_and_dtype_far_into_a_huge_tensor(law, dtype):
    assert HUGE_START[0] * HUGE[1] // 4 > 2**32
    device = device_fill(law, dtype, KEY, HUGE, HUGE_START, REGION)
    assert_same_bits(device, host_fill(law, dtype, KEY, HUGE, HUGE_START, REGION))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("key", OTHER_KEYS)
def test_other_keys(key, dtype):
    law = TruncatedNormal(0.0, 0.02, -2.0, 2.0)
    device = device_fill(law, dtype, key, (5, 11), (0, 0), (5, 11))
    assert_same_bits(device, host_fill(law, dtype, key, (5, 11), (0, 0), (5, 11)))


@pytest.mark.parametrize(
    ("global_shape", "start", "shape"),
    [
        ((300,), (0,), (300,)),  # one row over several programs (block 64 below)
        ((7, 45), (2, 3), (4, 37)),  # rows starting at every offset modulo a Philox block
        ((3, 4, 5, 6), (1, 1, 2, 1), (2, 2, 3, 4)),  # three outer axes
        ((3, 3, 3, 3, 7), (1, 0, 1, 1, 2), (2, 2, 2, 2, 3)),  # four outer axes
        ((2, 2, 2, 2, 2, 7), (0, 0, 0, 0, 0, 1), (2, 2, 2, 2, 2, 3)),  # five: the outermost looped on the host
        ((2**31, 2**31), (2**31 - 2, 2**31 - 9), (2, 9)),  # the last elements of a 2**62-element tensor
        ((), (), ()),  # a 0-d tensor
    ],
)
@pytest.mark.parametrize(
    ("law", "dtype"),
    [(LAWS["tn_centered"], "float32"), (LAWS["uniform"], "float64")],  # 4 and 2 values per Philox block
    ids=["float32_transform", "float64_transform"],
)
def test_regions(global_shape, start, shape, law, dtype):
    device = device_fill(law, dtype, KEY, global_shape, start, shape, block=64)
    assert_same_bits(device, host_fill(law, dtype, KEY, global_shape, start, shape))


def test_launch_plan_splits_outer_axes_and_grids():
    params = stream.kernel_params(Normal(0.0, 1.0), np.dtype("float32"))
    layout = stream.region_layout((2, 2, 2, 2, 2, 7), (0, 0, 0, 0, 0, 1), (2, 2, 2, 2, 2, 3))
    assert len(layout.counts) == 5
    plan = list(_device.launches(params, dtype="float32", key=KEY, layout=layout, block=64))
    assert [launch.out_offset for launch in plan] == [0, 48]  # the outermost axis (2 indices) is looped
    assert [launch.args[1] for launch in plan] == [1, 1 + 2**4 * 7]  # each launch's first global index
    assert all(launch.constants["N_OUTER"] == 4 for launch in plan)
    assert all(launch.programs == 16 for launch in plan)  # 2**4 rows of one chunk each
    with pytest.raises(ValueError, match="power of two"):
        list(_device.launches(params, dtype="float32", key=KEY, layout=layout, block=96))


@pytest.mark.parametrize(
    "law",
    [
        Normal(0.0, 1e-40),  # float32 scale and values subnormal: no flush to zero
        Normal(1e4, 1.0),  # float16 rounding of large values (ulp 8)
        TruncatedNormal(0.0, 1.0, -1e-5, 1e-5),  # a narrow interval: the float64 transform, clamped
        TruncatedNormal(0.0, 1.0, -30.0, -29.5),  # a far lower tail: log of tiny probabilities
        Uniform(1.0, 1.0 + 2.0**-20),  # values crowd the open endpoints: the clamp and the rounding decide
        TruncatedNormal(0.0, 1e-300, -2.0, 2.0),  # float64 subnormal-range probabilities times a tiny scale
    ],
    ids=["subnormal", "large", "narrow", "far_lower", "uniform_ulps", "tiny_scale"],
)
def test_edges(law):
    for dtype in DTYPES:
        try:
            host = host_fill(law, dtype, KEY, (64, 33), (1, 0), (63, 33))
        except ValueError:  # the law is not representable in this dtype: the device path raises the same
            continue
        assert_same_bits(device_fill(law, dtype, KEY, (64, 33), (1, 0), (63, 33), block=1024), host)


@st.composite
def shape_start_size(draw):
    """A non-empty region of a non-empty shape (the shared strategy) as the kernel's (shape, start, size)."""
    shape, region = draw(shape_and_region(min_dim=1, nonempty=True))
    return (shape, *stream.region_bounds(shape, region))


@settings(max_examples=12, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    case=shape_start_size(),
    law=st.sampled_from(list(LAWS.values())),
    dtype=st.sampled_from(DTYPES),
    seed=st.integers(0, 2**64 - 1),
)
def test_property_any_region(case, law, dtype, seed):
    shape, start, size = case
    key = stream.key_for(seed, "p")
    assert_same_bits(device_fill(law, dtype, key, shape, start, size), host_fill(law, dtype, key, shape, start, size))


def _rounding_probe(x_ptr, out_ptr, N: tl.constexpr, FORMAT: tl.constexpr):
    """Stores the kernel's 16-bit rounding of N float64 values (run by the interpreter, test below)."""
    offsets = tl.arange(0, N)
    tl.store(out_ptr + offsets, _device._kernel_module(True)._round_small(tl.load(x_ptr + offsets), FORMAT))


def test_rounding_to_16_bits_on_ties_subnormals_and_overflow():
    """The kernel's float64 -> float16/bfloat16 rounding on values random draws almost never hit."""
    from triton.runtime.interpreter import InterpretedFunction

    from berry._lowp import resolve_dtype, round_float64

    module = _device._kernel_module(True)
    run = InterpretedFunction(_rounding_probe)
    for dtype, small in (("float16", module.FLOAT16), ("bfloat16", module.BFLOAT16)):
        target = resolve_dtype(dtype)
        ulp = 2.0**-10 if dtype == "float16" else 2.0**-7
        tiny = float(np.finfo(np.float16).smallest_subnormal) if dtype == "float16" else 2.0**-133
        biggest = 65504.0 if dtype == "float16" else float.fromhex("0x1.fep127")
        values = [
            1.0 + ulp / 2, 1.0 + 3 * ulp / 2, -(1.0 + ulp / 2),  # ties: to even
            1.0 + ulp / 2 + 2.0**-40, 1.0 + ulp / 2 - 2.0**-40,  # just off a tie
            tiny / 2, tiny * 1.5, tiny / 2 + 2.0**-1000, -tiny * 2.5,  # subnormal ties and neighbours
            biggest, biggest * (1 + ulp / 4), biggest * (1 + ulp / 2), 1e300,  # overflow to infinity
            0.0, -0.0, math.inf, -math.inf, math.nan, 5e-324, 3.0,
        ]
        values += [0.0] * (32 - len(values))
        x = torch.tensor(values, dtype=torch.float64)
        out = torch.empty(32, dtype=torch.int16)
        run[(1,)](x, out, N=32, FORMAT=small)
        want = round_float64(np.array(values), target).view(np.uint16)
        assert out.numpy().view(np.uint16).tolist() == want.tolist(), dtype
