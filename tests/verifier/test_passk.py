"""The unbiased pass@k estimator against its closed form and its edge cases."""

from __future__ import annotations

from math import comb

import pytest

from instructforge.runtime.errors import InvalidArgument
from instructforge.verifier.passk import mean_pass_at_k, pass_at_k


@pytest.mark.parametrize(("n", "c", "k"), [(10, 3, 1), (10, 3, 5), (200, 17, 10), (5, 0, 2), (7, 7, 3), (20, 19, 2)])
def test_matches_the_binomial_form(n, c, k):
    expected = 1.0 - comb(n - c, k) / comb(n, k)
    assert pass_at_k(n, c, k) == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_pass_at_1_is_the_pass_rate_and_certain_when_too_few_fail():
    assert pass_at_k(8, 2, 1) == pytest.approx(0.25)
    assert pass_at_k(10, 8, 3) == 1.0


def test_large_n_stays_finite():
    assert 0.0 < pass_at_k(10_000, 3, 100) < 1.0


def test_bad_arguments_name_the_field():
    for args, field in [((0, 0, 1), "n"), ((5, 6, 1), "c"), ((5, 1, 6), "k"), ((5, 1, 0), "k"), ((5.0, 1, 1), "n")]:
        with pytest.raises(InvalidArgument) as err:
            pass_at_k(*args)
        assert err.value.violations[0].field == field


def test_mean_over_problems_skips_ks_larger_than_the_sample_count():
    got = mean_pass_at_k({"a": [True, False, False, False], "b": [False] * 4}, ks=(1, 2, 10))
    assert set(got) == {1, 2}
    assert got[1] == pytest.approx(0.125)
    assert got[2] == pytest.approx((1 - comb(3, 2) / comb(4, 2)) / 2)
    with pytest.raises(InvalidArgument):
        mean_pass_at_k({"a": []})
