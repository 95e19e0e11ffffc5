"""core/validate.py: each validator returns the checked value and names the parameter otherwise."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import PrismError
from core.validate import check_budget, check_choice, check_int, check_number


def test_check_number_takes_finite_reals_within_open_or_closed_bounds() -> None:
    assert check_number(1, param="x", above=0, maximum=1) == 1.0
    assert check_number(np.float32(0.5), param="x", above=0, maximum=1) == 0.5
    assert check_number(0, param="t", minimum=0, maximum=2) == 0.0
    for bad in (0, 1.5, True, float("nan"), float("inf"), "0.5", None):
        with pytest.raises(PrismError, match=r"^x must be a number > 0 and ≤ 1; got ") as caught:
            check_number(bad, param="x", above=0, maximum=1)
        assert caught.value.param == "x"


def test_check_choice_and_check_int_name_the_parameter() -> None:
    assert check_choice("float32", ("float32", "bfloat16"), param="dtype") == "float32"
    with pytest.raises(PrismError, match="dtype must be one of float32, bfloat16; got 'float8'"):
        check_choice("float8", ("float32", "bfloat16"), param="dtype")
    assert check_int(np.int64(3), param="n", minimum=1) == 3
    with pytest.raises(PrismError, match=r"dim must be an integer from 1 to 4 \(why\); got 5"):
        check_int(5, param="dim", minimum=1, maximum=4, why=" (why)")


def test_check_budget_reads_a_count_or_a_fraction() -> None:
    assert check_budget(0.25, 10) == 2 and check_budget(3, 10) == 3
    assert check_budget(None, 10, allow_none=True) is None
    for bad in (None, 0, 2.5, True, "3"):
        with pytest.raises(PrismError) as caught:
            check_budget(bad, 10)
        assert caught.value.param == "budget"
