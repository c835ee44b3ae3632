"""The seed API, exactly, and every scale rule from the one variance core."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import berry
from berry.initializations import (
    deepnet,
    geometric,
    get_initialization,
    get_initialzation,
    he,
    lecun,
    list_initializations,
    register_initialization,
    small_init,
    unregister_initialization,
    variance_scaling,
    xavier,
)

fans = st.integers(1, 10**9)


def test_seed_examples_verbatim():
    func = get_initialzation("deepnet")
    params = {"shape": [1500, 500], "fan_out": 500}
    stddev = func(**params)
    assert stddev == math.sqrt(2 / 500)

    params = {"shape": [1500, 500], "fan_out": 500, "fan_in": 1500}
    stddev = xavier(**params)
    assert stddev == math.sqrt(2 / (1500 + 500))


@settings(max_examples=300, derandomize=True)
@given(fans, fans)
def test_seed_rules_are_bit_exact_python_floats(fan_in, fan_out):
    std = xavier(fan_in=fan_in, fan_out=fan_out)
    assert type(std) is float and std == math.sqrt(2 / (fan_in + fan_out))
    std = deepnet(fan_out=fan_out)
    assert type(std) is float and std == math.sqrt(2 / fan_out)
    assert xavier(None, fan_in, fan_out) == math.sqrt(2 / (fan_in + fan_out))  # positional, as the seed
    assert deepnet(None, fan_out) == math.sqrt(2 / fan_out)


def test_seed_rules_ignore_extra_keywords():
    # The seed's layer class passes shape, fan_in and fan_out to every rule, plus whatever else it has.
    assert deepnet(shape=[3, 4], fan_in=3, fan_out=4, name="fc1", dtype="float32") == math.sqrt(2 / 4)
    assert xavier(shape=[3, 4], fan_in=3, fan_out=4, activation="relu") == math.sqrt(2 / 7)


def test_fans_come_from_the_shape_unless_explicit():
    assert xavier(shape=[1500, 500]) == math.sqrt(2 / 2000)  # the seed would give 1.0
    assert deepnet(shape=[1500, 500]) == math.sqrt(2 / 500)
    assert xavier(shape=(3, 3, 64, 128)) == math.sqrt(2 / (576 + 1152))
    assert xavier(shape=(128, 64, 3, 3), layout="torch") == math.sqrt(2 / (576 + 1152))
    assert xavier(shape=[1500, 500], fan_in=10) == math.sqrt(2 / 510)  # explicit wins
    assert xavier() == 1.0 and deepnet() == math.sqrt(2)  # neither: the seed's default of 1


def test_registry_lookup_and_aliases():
    assert get_initialzation is get_initialization
    assert get_initialization("xavier") is xavier is get_initialization("glorot") is get_initialization("XAVIER")
    assert get_initialization("deepnet") is deepnet
    assert get_initialization("kaiming") is he and get_initialization("he") is he
    assert get_initialization("lecun") is lecun
    names = list_initializations()
    assert {"xavier", "glorot", "deepnet", "he", "kaiming", "lecun", "small_init", "geometric"} <= set(names)
    assert set(list_initializations(aliases=False)) == {"xavier", "deepnet", "he", "lecun", "small_init", "geometric"}


@pytest.mark.parametrize("key", ["xavir", "deepnt", "nonsense", "", None, 3])
def test_unknown_key_is_both_not_implemented_and_value_error(key):
    with pytest.raises(NotImplementedError) as info:
        get_initialzation(key)
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    assert repr(key) in message and "xavier" in message and "deepnet" in message


def test_unknown_key_suggests_the_closest():
    with pytest.raises(ValueError, match="Did you mean 'xavier'"):
        get_initialization("xavir")
    with pytest.raises(ValueError, match="Did you mean 'deepnet'"):
        get_initialization("deepnt")


@settings(max_examples=200, derandomize=True)
@given(fans, fans, st.floats(1e-3, 1e3), st.floats(1e-3, 1e3))
def test_variance_scaling_modes(fan_in, fan_out, scale, gain):
    def vs(mode):
        return variance_scaling(scale, mode, fan_in=fan_in, fan_out=fan_out, gain=gain)

    assert vs("fan_in") == pytest.approx(gain * math.sqrt(scale / fan_in), rel=1e-15)
    assert vs("fan_out") == pytest.approx(gain * math.sqrt(scale / fan_out), rel=1e-15)
    assert vs("fan_avg") == pytest.approx(gain * math.sqrt(scale / ((fan_in + fan_out) / 2)), rel=1e-15)
    assert vs("fan_geo_avg") == pytest.approx(gain * math.sqrt(scale / math.sqrt(fan_in * fan_out)), rel=1e-15)


def test_named_rules_are_variance_scaling():
    shape = (3, 3, 32, 64)
    fi, fo = 288, 576
    assert he(shape=shape) == math.sqrt(2 / fi)
    assert he(shape=shape, negative_slope=0.2) == pytest.approx(math.sqrt(2 / (1.04 * fi)), rel=1e-15)
    assert lecun(shape=shape) == math.sqrt(1 / fi)
    assert small_init(shape=shape) == pytest.approx(math.sqrt(2 / (5 * fi)), rel=1e-15)
    assert geometric(shape=shape) == pytest.approx(math.sqrt(1 / math.sqrt(fi * fo)), rel=1e-15)
    assert deepnet(shape=shape) == he(shape=shape, mode="ignored", fan_in=fo)
    for rule in (xavier, deepnet, he, lecun, small_init, geometric):
        assert rule(shape=shape, gain=3.0) == pytest.approx(3.0 * rule(shape=shape), rel=1e-15)


@pytest.mark.parametrize(
    ("call", "error", "fragment"),
    [
        (lambda: xavier(fan_in=0, fan_out=5), ValueError, "fan_in must be a positive integer, got 0"),
        (lambda: xavier(fan_in=-3, fan_out=5), ValueError, "fan_in must be a positive integer, got -3"),
        (lambda: xavier(fan_in=2.5, fan_out=5), ValueError, "fan_in must be an integer, got 2.5"),
        (lambda: xavier(fan_in=float("nan"), fan_out=5), ValueError, "fan_in must be an integer, got nan"),
        (lambda: deepnet(fan_out=float("inf")), ValueError, "fan_out must be an integer, got inf"),
        (lambda: deepnet(fan_out="500"), TypeError, "fan_out must be an integer, got '500'"),
        (lambda: xavier(fan_in=3, fan_out=4, gain=0), ValueError, "gain must be > 0, got 0"),
        (lambda: xavier(fan_in=3, fan_out=4, gain=-1.0), ValueError, "gain must be > 0, got -1.0"),
        (lambda: xavier(fan_in=3, fan_out=4, gain=float("nan")), ValueError, "gain must be finite, got nan"),
        (lambda: variance_scaling(0.0, fan_in=3), ValueError, "scale must be > 0, got 0.0"),
        (lambda: variance_scaling(float("inf"), fan_in=3), ValueError, "scale must be finite, got inf"),
        (lambda: variance_scaling(1.0, "fan_sum", fan_in=3), ValueError, "mode='fan_sum' is not supported"),
        (lambda: variance_scaling(1.0, "fanin", fan_in=3), ValueError, "Did you mean 'fan_in'"),
        (lambda: xavier(shape=(3, -4)), ValueError, "shape[1] must be >= 0"),
        (lambda: xavier(shape=(0, 4)), ValueError, "has a zero fan"),
        (lambda: xavier(shape=(3, 4), layout="nhwc"), ValueError, "layout='nhwc' is not supported"),
        (lambda: he(fan_in=4, negative_slope=float("nan")), ValueError, "negative_slope must be finite"),
        # A fan beyond float64 was a bare OverflowError from the division.
        (lambda: xavier(fan_in=10**400, fan_out=3), ValueError, "fan_in=1e+400 (an integer of 401 digits) and fan_out=3"),
        (lambda: he(fan_in=10**400), ValueError, "fan_in=1e+400 (an integer of 401 digits) (mode='fan_in') is beyond"),
        (lambda: deepnet(fan_out=10**400), ValueError, "fan_out=1e+400 (an integer of 401 digits) (mode='fan_out')"),
        (lambda: berry.sample((4, 3), fan_out=10**400, name="w"), ValueError, "beyond float64's range"),
    ],
)
def test_bad_input(call, error, fragment):
    with pytest.raises(error) as info:
        call()
    assert fragment in str(info.value)


def test_register_initialization_roundtrip():
    def constant_std(shape=None, fan_in=None, fan_out=None, gain=1.0, **kwargs):
        return 0.02 * gain

    register_initialization("gpt_std", constant_std, aliases=("gpt2_std",))
    try:
        assert get_initialization("gpt_std") is constant_std is get_initialization("gpt2_std")
        assert "gpt_std" in list_initializations() and "gpt_std" in berry.list_initializations()
        with pytest.raises(ValueError, match="already registered"):
            register_initialization("gpt_std", constant_std)
        with pytest.raises(ValueError, match="already registered"):
            register_initialization("glorot", constant_std)
    finally:
        unregister_initialization("gpt_std")
    with pytest.raises(NotImplementedError):
        get_initialization("gpt2_std")


@pytest.mark.parametrize(("name", "rule"), [("bad name", lambda **k: 1.0), ("ok_name", 3.0)])
def test_register_rejects_bad_arguments(name, rule):
    with pytest.raises((TypeError, ValueError)):
        register_initialization(name, rule)
