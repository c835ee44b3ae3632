"""Regions: sample(shape, ..., region=r) == sample(shape, ...)[r], bit for bit, at the region's cost."""

from __future__ import annotations

import re

import numpy as np
import pytest
from _helpers import AVAILABLE_DTYPES, same_bits, shape_and_region
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from berry import stream
from berry.sampling import resolve_region, sample

DTYPES = AVAILABLE_DTYPES  # bfloat16 only with ml_dtypes; the others run everywhere
ELEMENTWISE = ["normal", "truncated_normal", "uniform"]
PROPERTY = settings(max_examples=60, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(
    case=shape_and_region(),
    distribution=st.sampled_from(ELEMENTWISE),
    dtype=st.sampled_from(DTYPES),
    init=st.sampled_from(["xavier", "he", "lecun"]),
    seed=st.integers(0, 2**64 - 1),
)
def test_elementwise_region_equals_slice_of_full(case, distribution, dtype, init, seed):
    shape, region = case
    options = {"distribution": distribution, "dtype": dtype, "seed": seed, "name": "w"}
    full = sample(shape, init, **options)
    part = sample(shape, init, region=region, **options)
    assert same_bits(part, full[region])


@PROPERTY
@given(case=shape_and_region(min_rank=0, max_rank=3), mean=st.floats(-3, 3, width=32), std=st.floats(0, 2))
def test_elementwise_region_with_explicit_std(case, mean, std):
    shape, region = case
    full = sample(shape, distribution="truncated_normal", mean=mean, std=std, bounds=(-1.0, 3.0), name="w")
    assert same_bits(sample(shape, distribution="truncated_normal", mean=mean, std=std, bounds=(-1.0, 3.0), region=region, name="w"), full[region])


@settings(max_examples=40, derandomize=True, deadline=None)
@given(
    case=shape_and_region(min_rank=2, max_rank=2, max_dim=12),
    distribution=st.sampled_from(ELEMENTWISE),
    dtype=st.sampled_from(DTYPES),
    sparsity=st.floats(0, 1),
)
def test_sparse_region_equals_slice_of_full(case, distribution, dtype, sparsity):
    shape, region = case
    options = {"distribution": distribution, "dtype": dtype, "sparsity": sparsity}
    assert same_bits(sample(shape, "sparse", region=region, **options, name="w"), sample(shape, "sparse", **options, name="w")[region])


STRUCTURAL = [
    ("orthogonal", 2, 4, {}),
    ("eye", 2, 4, {"gain": 0.5}),
    ("zeros", 0, 3, {}),
    ("ones", 0, 3, {}),
    ("constant", 0, 3, {"value": -1.25}),
]


@settings(max_examples=40, derandomize=True, deadline=None)
@given(
    which=st.sampled_from(STRUCTURAL),
    data=st.data(),
    dtype=st.sampled_from(DTYPES),
    layout=st.sampled_from(["channels_last", "torch"]),
)
def test_structural_region_equals_slice_of_full(which, data, dtype, layout):
    init, min_rank, max_rank, options = which
    shape, region = data.draw(shape_and_region(min_rank=min_rank, max_rank=max_rank, max_dim=7))
    full = sample(shape, init, dtype=dtype, layout=layout, **options, name="w")
    assert same_bits(sample(shape, init, region=region, dtype=dtype, layout=layout, **options, name="w"), full[region])


@st.composite
def kernel_and_region(draw):
    spatial = tuple(draw(st.integers(1, 4)) for _ in range(draw(st.integers(1, 3))))
    in_channels = draw(st.integers(1, 5))
    out_channels = draw(st.integers(in_channels, 8))
    layout = draw(st.sampled_from(["channels_last", "torch"]))
    shape = (out_channels, in_channels, *spatial) if layout == "torch" else (*spatial, in_channels, out_channels)
    region = []
    for size in shape:
        start = draw(st.integers(0, size))
        region.append(slice(start, draw(st.integers(start, size))))
    return shape, tuple(region), layout


@settings(max_examples=40, derandomize=True, deadline=None)
@given(case=kernel_and_region(), init=st.sampled_from(["delta_orthogonal", "dirac"]), dtype=st.sampled_from(DTYPES))
def test_kernel_region_equals_slice_of_full(case, init, dtype):
    shape, region, layout = case
    full = sample(shape, init, layout=layout, dtype=dtype, name="w")
    assert same_bits(sample(shape, init, layout=layout, dtype=dtype, region=region, name="w"), full[region])


@settings(max_examples=30, derandomize=True, deadline=None)
@given(data=st.data(), groups=st.integers(1, 4), per_group=st.integers(1, 3), in_channels=st.integers(1, 4))
def test_dirac_groups_region_equals_slice_of_full(data, groups, per_group, in_channels):
    shape = (groups * per_group, in_channels, 3, 2)
    region = tuple(slice(a, data.draw(st.integers(a, n))) for n in shape for a in [data.draw(st.integers(0, n))])
    full = sample(shape, "dirac", layout="torch", groups=groups)
    assert same_bits(sample(shape, "dirac", layout="torch", groups=groups, region=region), full[region])


# -- cost proportional to the region -------------------------------------------------------------


@pytest.fixture
def filled_sizes(monkeypatch):
    sizes: list[int] = []
    original = stream.fill

    def recording_fill(out, law, **kwargs):
        sizes.append(out.size)
        return original(out, law, **kwargs)

    monkeypatch.setattr(stream, "fill", recording_fill)
    return sizes


@pytest.mark.parametrize("distribution", ELEMENTWISE)
def test_region_generates_only_the_region(filled_sizes, distribution):
    region = (slice(None), slice(256, 512))  # a quarter-column block
    part = sample((1024, 1024), "he", distribution=distribution, region=region, name="w")
    assert part.shape == (1024, 256)
    assert filled_sizes == [1024 * 256]


def test_sparse_region_generates_only_its_columns(filled_sizes):
    sample((1000, 400), "sparse", region=(slice(0, 10), slice(100, 140)), name="w")
    # the region's values, then one ranking uniform per row of the region's 40 columns
    assert filled_sizes == [10 * 40, 1000 * 40]


def test_region_of_a_huge_tensor_is_cheap():
    # 2**40 elements would be 4 TiB; a 4 x 4 corner costs 16 draws.
    corner = sample((2**20, 2**20), "xavier", region=(slice(0, 4), slice(0, 4)), name="w")
    assert corner.shape == (4, 4) and np.isfinite(corner).all()


# -- the rules of a region --------------------------------------------------------------------------


def test_region_forms():
    shape = (5, 4, 3)
    full = sample(shape, "he", name="w")
    np.testing.assert_array_equal(sample(shape, "he", region=slice(1, 3), name="w"), full[1:3])
    np.testing.assert_array_equal(sample(shape, "he", region=(slice(1, 3),), name="w"), full[1:3])
    np.testing.assert_array_equal(sample(shape, "he", region=(slice(None), slice(2, None)), name="w"), full[:, 2:])
    np.testing.assert_array_equal(sample(shape, "he", region=(slice(0, 5, 1), slice(0, 4, 1), slice(0, 3)), name="w"), full)
    empty = sample(shape, "he", region=(slice(2, 2),), name="w")
    assert empty.shape == (0, 4, 3) and empty.dtype == np.float32
    assert resolve_region(None, shape) == (slice(0, 5), slice(0, 4), slice(0, 3))


@pytest.mark.parametrize(
    ("region", "error", "message"),
    [
        ((slice(0, 4, 2),), ValueError, "step"),
        ((slice(None, None, -1),), ValueError, "step"),
        ((slice(0, 6),), ValueError, "outside axis 0 of size 5"),
        ((slice(-2, None),), ValueError, "need 0 <= start <= stop <= 5"),
        ((slice(3, 1),), ValueError, "need 0 <= start <= stop"),
        ((slice(None), slice(None), slice(None), slice(None)), ValueError, "4 slices"),
        ((1, slice(None)), TypeError, "slice(i, i + 1)"),
        ([slice(0, 1)], TypeError, "tuple of slices"),
        ((slice(0.5, 2),), ValueError, "region[0].start"),
        ((slice("a", 2),), TypeError, "region[0].start"),
        ((Ellipsis,), TypeError, "must be a slice"),
    ],
)
def test_bad_regions_are_rejected(region, error, message):
    with pytest.raises(error, match=re.escape(message)):
        sample((5, 4, 3), "he", region=region, name="w")


def test_bad_region_is_rejected_for_structural_initializers_too():
    with pytest.raises(ValueError, match="outside axis 1"):
        sample((4, 4), "orthogonal", region=(slice(None), slice(0, 9)), name="w")


def test_sparse_in_column_blocks_equals_one_block(monkeypatch):
    from berry import distributions

    full = sample((50, 40), "sparse", sparsity=0.3, name="w")
    monkeypatch.setattr(distributions, "_SPARSE_SCRATCH_ELEMENTS", 120)  # blocks of 2 columns
    assert same_bits(sample((50, 40), "sparse", sparsity=0.3, name="w"), full)
    region = (slice(3, 30), slice(5, 38))
    assert same_bits(sample((50, 40), "sparse", sparsity=0.3, region=region, name="w"), full[region])
