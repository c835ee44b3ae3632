"""Fans per layout, cross-checked against torch, JAX and Keras where installed."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from berry import compute_fans
from berry.fans import Fans, fans_for

# (shape, options, expected fans): one row per layout people use.
TABLE = [
    # dense
    ((1500, 500), {}, (1500, 500)),
    ((500, 1500), {"layout": "torch"}, (1500, 500)),
    # conv 1/2/3-D, channels-last (..., in, out) and torch (out, in, *k)
    ((5, 16, 32), {}, (80, 160)),
    ((3, 3, 64, 128), {}, (576, 1152)),
    ((3, 3, 3, 8, 16), {}, (216, 432)),
    ((32, 16, 5), {"layout": "torch"}, (80, 160)),
    ((128, 64, 3, 3), {"layout": "pytorch"}, (576, 1152)),
    ((16, 8, 3, 3, 3), {"layout": "torch"}, (216, 432)),
    # grouped and depthwise convolution
    ((128, 16, 3, 3), {"layout": "torch", "groups": 4}, (144, 288)),
    ((3, 3, 16, 128), {"groups": 4}, (144, 288)),
    ((64, 1, 3, 3), {"layout": "torch", "groups": 64}, (9, 9)),  # depthwise, multiplier 1
    ((128, 1, 3, 3), {"layout": "torch", "groups": 64}, (9, 18)),  # depthwise, multiplier 2
    ((3, 3, 64, 2), {"in_axis": (), "out_axis": -1, "batch_axis": -2}, (9, 18)),  # Keras DepthwiseConv2D
    # transposed convolution: torch (in, out/groups, *k), Keras (*k, out, in)
    ((64, 32, 4, 4), {"layout": "torch", "transposed": True}, (1024, 512)),
    ((64, 8, 4, 4), {"layout": "torch", "transposed": True, "groups": 4}, (256, 128)),
    ((4, 4, 32, 64), {"transposed": True}, (1024, 512)),
    # einsum / attention kernels with several input or output axes
    ((512, 8, 64), {"in_axis": 0, "out_axis": (1, 2)}, (512, 512)),
    ((8, 64, 512), {"in_axis": (0, 1), "out_axis": 2}, (512, 512)),
    # batch axes: stacked layers or experts
    ((4, 256, 1024), {"batch_axis": 0}, (256, 1024)),
    ((6, 4, 3, 3, 8, 16), {"batch_axis": (0, 1)}, (72, 144)),
    # rank 0 and 1 (Keras' convention), and zero-size dimensions
    ((), {}, (1, 1)),
    ((7,), {}, (7, 7)),
    ((7,), {"layout": "torch"}, (7, 7)),
    ((0, 5), {}, (0, 5)),
    ((3, 3, 0, 8), {}, (0, 72)),
]


@pytest.mark.parametrize(("shape", "options", "expected"), TABLE)
def test_fans_table(shape, options, expected):
    fans = compute_fans(shape, **options)
    assert fans == Fans(*expected)
    assert all(isinstance(f, int) for f in fans)


def test_layout_is_case_insensitive_and_aliased():
    assert compute_fans((3, 4), layout="Keras") == compute_fans((3, 4), layout="JAX") == (3, 4)


shapes = st.lists(st.integers(1, 9), min_size=2, max_size=6).map(tuple)


@settings(max_examples=200, derandomize=True, deadline=None)
@given(shapes)
def test_torch_layout_matches_torch(shape):
    torch = pytest.importorskip("torch")
    from torch.nn.init import _calculate_fan_in_and_fan_out

    expected = _calculate_fan_in_and_fan_out(torch.empty(shape, device="meta"))
    assert compute_fans(shape, layout="torch") == expected


@settings(max_examples=200, derandomize=True, deadline=None)
@given(shapes)
def test_channels_last_matches_keras(shape):
    pytest.importorskip("keras")
    from keras.src.initializers.random_initializers import compute_fans as keras_fans

    assert compute_fans(shape) == keras_fans(shape)


@settings(max_examples=200, derandomize=True, deadline=None)
@given(st.data())
def test_explicit_axes_match_jax(data):
    pytest.importorskip("jax")
    from jax._src.nn.initializers import _compute_fans as jax_fans

    shape = data.draw(st.lists(st.integers(1, 7), min_size=2, max_size=5).map(tuple))
    axes = data.draw(st.permutations(range(len(shape))))
    n_in = data.draw(st.integers(1, len(shape) - 1))
    n_out = data.draw(st.integers(1, len(shape) - n_in))
    n_batch = data.draw(st.integers(0, len(shape) - n_in - n_out))
    ins = tuple(axes[:n_in])
    outs = tuple(axes[n_in : n_in + n_out])
    batch = tuple(axes[n_in + n_out : n_in + n_out + n_batch])
    fan_in, fan_out = jax_fans(shape, ins, outs, batch)
    assert compute_fans(shape, in_axis=ins, out_axis=outs, batch_axis=batch) == (fan_in, fan_out)


def test_fans_for_priority():
    assert fans_for([1500, 500], None, None) == (1500, 500)  # from the shape
    assert fans_for([1500, 500], 10, None) == (10, 500)  # explicit wins
    assert fans_for(None, None, 20) == (1, 20)  # the seed's default of 1
    assert fans_for((8, 4), None, None, layout="torch") == (4, 8)


@pytest.mark.parametrize(
    ("shape", "options", "error", "fragment"),
    [
        ((3, -1), {}, ValueError, "shape[1] must be >= 0"),
        ((3, 2.5), {}, ValueError, "shape[1] must be an integer"),
        ((3, float("nan")), {}, ValueError, "shape[1]"),
        ("3,4", {}, TypeError, "shape must be a sequence"),
        ((3, 4), {"layout": "nchw"}, ValueError, "layout='nchw' is not supported"),
        ((3, 4), {"layout": "toch"}, ValueError, "Did you mean 'torch'"),
        ((3, 4), {"in_axis": 2}, ValueError, "in_axis=2 is out of range"),
        ((3, 4, 5), {"in_axis": 0, "out_axis": 0}, ValueError, "must name different axes"),
        ((3, 4, 5), {"in_axis": 0, "out_axis": 1, "batch_axis": 1}, ValueError, "must name different axes"),
        ((3, 4, 5), {"in_axis": (0, 0)}, ValueError, "names the same axis twice"),
        ((10, 3, 3, 3), {"layout": "torch", "groups": 3}, ValueError, "groups=3 must divide the out channels (10)"),
        ((3, 3), {"groups": 0}, ValueError, "groups must be >= 1"),
        ((3, 3), {"groups": 1.5}, ValueError, "groups must be an integer"),
        ((5,), {"groups": 2}, ValueError, "need a convolution kernel"),
        ((3, 3), {"transposed": "yes"}, TypeError, "transposed must be a bool"),
    ],
)
def test_bad_input(shape, options, error, fragment):
    with pytest.raises(error) as info:
        compute_fans(shape, **options)
    assert fragment in str(info.value)


def test_receptive_field_multiplies_both_fans():
    for rank in range(3, 6):
        kernel = (3,) * (rank - 2)
        fans = compute_fans((*kernel, 4, 5))
        assert fans == (4 * math.prod(kernel), 5 * math.prod(kernel))


# -- the frameworks' conventions are modes of the one engine ------------------------------------------


@settings(max_examples=200, derandomize=True, deadline=None)
@given(st.data())
def test_jax_convention_matches_jax_even_where_in_and_out_share_axes(data):
    pytest.importorskip("jax")
    from jax._src.nn.initializers import _compute_fans as jax_fans

    shape = data.draw(st.lists(st.integers(1, 7), min_size=2, max_size=5).map(tuple))
    rank = len(shape)
    ins = tuple(data.draw(st.lists(st.integers(0, rank - 1), min_size=1, max_size=2, unique=True)))
    outs = tuple(data.draw(st.lists(st.integers(0, rank - 1), min_size=1, max_size=2, unique=True)))
    free = [axis for axis in range(rank) if axis not in ins and axis not in outs]
    batch = tuple(data.draw(st.lists(st.sampled_from(free), max_size=len(free), unique=True))) if free else ()
    expected = jax_fans(shape, ins, outs, batch)
    fans = compute_fans(shape, in_axis=ins, out_axis=outs, batch_axis=batch, convention="jax")
    assert fans == tuple(round(f) for f in expected)
    assert all(isinstance(f, int) for f in fans)


@settings(max_examples=200, derandomize=True, deadline=None)
@given(st.data())
def test_keras_convention_matches_keras(data):
    pytest.importorskip("keras")
    from keras.src.initializers.random_initializers import compute_fans as keras_fans

    shape = data.draw(st.lists(st.integers(0, 7), min_size=0, max_size=5).map(tuple))
    rank = len(shape)
    axes = st.lists(st.integers(-rank, rank - 1), max_size=2, unique_by=lambda a: a % rank) if rank else st.just([])
    ins = data.draw(st.none() | axes)
    outs = data.draw(st.none() | axes)
    expected = keras_fans(shape, input_axes=ins, output_axes=outs)
    assert compute_fans(shape, in_axis=ins, out_axis=outs, convention="keras") == expected


def test_jax_convention_defaults_and_flax_embed():
    assert compute_fans((3, 3, 16, 32), convention="jax") == compute_fans((3, 3, 16, 32))
    assert compute_fans((50257, 768), out_axis=0, convention="jax") == (768, 768)  # Flax Embed
    with pytest.raises(ValueError, match="Can't compute input and output sizes of a 1-dimensional"):
        compute_fans((5,), convention="jax")
    assert compute_fans((5,), in_axis=0, out_axis=0, convention="jax") == (1, 1)


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"convention": "flax"}, "convention='flax' is not supported"),
        ({"convention": "jax", "layout": "torch"}, "belong to convention='berry'"),
        ({"convention": "keras", "groups": 2}, "belong to convention='berry'"),
        ({"convention": "keras", "batch_axis": 0}, "no batch axes"),
        ({"convention": "jax", "in_axis": 0, "out_axis": 1, "batch_axis": 1}, "shares axes"),
        ({"in_axis": 0, "out_axis": 0}, "convention='jax' lets in_axis and out_axis share an axis"),
    ],
)
def test_bad_conventions(options, fragment):
    with pytest.raises(ValueError) as info:
        compute_fans((4, 6, 8), **options)
    assert fragment in str(info.value)
