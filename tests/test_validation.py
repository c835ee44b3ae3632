"""berry._validation: every check names the argument, shows the value (shortened) and says what is allowed.

The cases here are the values Python's own conversions choke on: integers beyond float64 (``float(10**400)``
raises OverflowError), integers too long for ``repr`` (more than 4300 digits) and exact fractions.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

import numpy as np
import pytest

import berry
from berry._validation import (
    check_bool,
    check_finite,
    check_int,
    check_positive,
    check_real,
    check_seed,
    check_shape,
    shown,
)
from berry.stream import TruncatedNormal, Uniform

HUGE = 10**400  # a Python int float64 cannot hold
SHOWN_HUGE = "1e+400 (an integer of 401 digits)"


@pytest.mark.parametrize("check", [check_finite, check_positive, check_real])
@pytest.mark.parametrize("sign", [1, -1])
def test_an_integer_beyond_float64_is_a_clear_error_not_an_overflow(check, sign):
    with pytest.raises(ValueError) as error:
        check("std", sign * HUGE)
    message = str(error.value)
    assert message.startswith("std must be ")
    assert ("-" if sign < 0 else "") + SHOWN_HUGE in message
    assert "beyond float64's range" in message
    assert len(message) < 200


def test_what_is_allowed_is_said():
    with pytest.raises(ValueError, match=re.escape("std must be a finite real number, got 1e+400")):
        check_finite("std", HUGE)
    with pytest.raises(ValueError, match=re.escape("a must be a real number or +-inf, got -1e+400")):
        check_real("a", -HUGE)


@pytest.mark.parametrize("check", [check_int, check_seed])
def test_a_huge_fraction_is_not_an_integer_and_does_not_overflow(check):
    with pytest.raises(ValueError, match="must be an integer") as error:
        check(Fraction(HUGE, 3)) if check is check_seed else check("n", Fraction(HUGE, 3))
    assert len(str(error.value)) < 200


def test_integral_values_are_read_exactly_at_any_size():
    assert check_int("n", Fraction(HUGE)) == HUGE
    assert check_int("n", np.float32(3.0)) == 3
    assert check_seed(Fraction(2**64 - 1)) == 2**64 - 1
    for bad in (math.inf, -math.inf, math.nan, 2.5):
        with pytest.raises(ValueError, match="n must be an integer"):
            check_int("n", bad)


def test_an_integer_too_long_to_print_is_still_described():
    # repr() of an int of more than 4300 digits raises ValueError; the message must not.
    with pytest.raises(ValueError, match=re.escape("shape[0] must be >= 0, got -1e+5000 (an integer of 5001 digits)")):
        check_shape("shape", (-(10**5000),))
    with pytest.raises(ValueError, match=re.escape("seed must be an integer in [0, 2**64), got 1e+5000")):
        check_seed(10**5000)


def test_short_values_are_shown_as_their_repr():
    assert shown(2**64) == "18446744073709551616"
    assert shown(-1.5) == "-1.5"
    assert shown("he") == "'he'"
    assert shown(list(range(100))).endswith("...(390 characters)")


def test_the_public_entry_points_give_the_clear_error():
    with pytest.raises(ValueError, match=re.escape(f"std must be a finite real number, got {SHOWN_HUGE}")):
        berry.sample((2, 2), std=HUGE, seed=0, name="w")
    with pytest.raises(ValueError, match=re.escape(f"truncation bound a must be a real number or +-inf, got -{SHOWN_HUGE}")):
        TruncatedNormal(0.0, 1.0, -HUGE, 1.0)
    with pytest.raises(ValueError, match="high must be a finite real number"):
        Uniform(0.0, HUGE)
    with pytest.raises(ValueError, match=re.escape(f"bounds[0] must be a real number or +-inf, got -{SHOWN_HUGE}")):
        berry.sample((2, 2), distribution="truncated_normal", bounds=(-HUGE, 2.0), seed=0, name="w")


def test_check_bool_refuses_truthy_values():
    assert check_bool("strict", True) is True and check_bool("strict", np.bool_(False)) is False
    assert check_bool("on_meta", None, allow_none=True) is None
    for value in ("no", 1, 0.0, None, np.int64(1)):
        with pytest.raises(TypeError, match=r"^strict must be True or False, got "):
            check_bool("strict", value)
    with pytest.raises(TypeError, match=r"^on_meta must be True, False or None, got 'x' of type str$"):
        check_bool("on_meta", "x", allow_none=True)


def test_a_name_that_is_not_utf8_is_a_clear_error():
    # A lone surrogate (what os.fsdecode makes of undecodable bytes) was a UnicodeEncodeError from the hash.
    from berry.stream import key_for

    message = re.escape(r"name='w\udcff' cannot be encoded as UTF-8 (surrogates not allowed at position 1)")
    with pytest.raises(ValueError, match=message):
        berry.sample((3,), name="w\udcff")
    with pytest.raises(ValueError, match=message):
        key_for(0, "w\udcff")
    assert key_for(0, "w\u00e9") == key_for(0, "w\u00e9")  # any encodable name keeps its key


def test_a_huge_group_count_or_region_bound_is_shown_short():
    # These messages wrote the integer's 401 digits (and one of more than 4300 cannot be written at all).
    with pytest.raises(ValueError, match=re.escape(f"groups={SHOWN_HUGE} must divide the out channels (3)")):
        berry.sample((4, 3), groups=HUGE, name="w")
    with pytest.raises(ValueError, match=re.escape(f"groups={SHOWN_HUGE} must divide")):
        berry.compute_fans((4, 3), groups=HUGE)
    with pytest.raises(ValueError, match=r"^region\[0\]=slice\(0, 1000.{0,60}\(\d+ characters\) is outside axis 0") as info:
        berry.sample((4, 3), region=(slice(0, HUGE),), name="w")
    assert len(str(info.value)) < 200

    with pytest.raises(ValueError, match=r"^global_shape=\(1000.{0,60}\(\d+ characters\) has more than 2\*\*63 elements$"):
        berry.sample((10**200, 10**200), region=(slice(0, 1), slice(0, 1)), name="w", std=1.0)
