"""The comparator's numbers and diagnoses, and the report's wording (pinned)."""

from __future__ import annotations

import numpy as np
import pytest

from verifier.case.model import Tolerance
from verifier.compare import compare
from verifier.report.text import diagnosis_text
from verifier.values import Exact

TOL = Tolerance(1e-11, 1e-13)


def ex(a):
    a = np.asarray(a, dtype=np.float64)
    return Exact(a, a.copy())


def run(exact, got, dtype="float64"):
    return compare(ex(exact), np.asarray(got, dtype=np.float64), check="backward", label="grad wrt x",
                   path="y.backward()", wrt="x", tolerance=TOL, dtype=dtype)


def test_pass_and_numbers():
    c = run([1.0, 2.0], [1.0, 2.0 + 1e-15])
    assert c.passed and c.n == 2 and c.ulps == pytest.approx(2.25, abs=0.3)


def test_relative_error_1e_10_is_caught_in_float64():
    c = run([1.5, -2.5], [1.5 * (1 + 1e-10), -2.5])
    assert not c.passed and c.worst == (0,) and c.rel_err == pytest.approx(1e-10, rel=1e-3)


@pytest.mark.parametrize("factor, kind, text", [
    # an integer factor is a wrong factor to the comparator; only a check that made k calls, the first one right,
    # calls it accumulation (tests/test_user_code.py)
    (3.0, "factor", "3x expected: a constant factor is wrong"),
    (2.0, "factor", "2x expected: a constant factor is wrong"),
    (-1.0, "sign", "-1x expected: the sign is flipped"),
    (0.5, "factor", "0.5x expected: a factor of 1/2 is wrong"),
    (0.0, "zero", "got 0 where the exact derivative is non-zero (3 element(s))"),
    (1.7, "factor", "1.7x expected: a constant factor is wrong"),
])
def test_diagnoses(factor, kind, text):
    exact = np.array([1.0, -2.0, 0.5, 0.0])
    c = run(exact, exact * factor)
    assert c.diagnosis.kind == kind
    assert diagnosis_text(c.diagnosis, c).startswith(text)


def test_a_single_element_gets_no_generic_factor():
    assert run([6.0], [7.0]).diagnosis.kind == "partial"
    assert run([5.0], [15.0]).diagnosis.kind == "partial"


def test_uniform_tiny_relative_error_is_named():
    exact = np.array([1.0, -2.0, 0.5])
    c = run(exact, exact * (1 + 1e-9))
    assert c.diagnosis.kind == "relative"
    assert diagnosis_text(c.diagnosis, c).startswith("(1 + 1e-09)x expected: every element off by the same relative")


def test_nonfinite_and_transpose_and_partial():
    assert run([1.0, 2.0], [np.nan, 2.0]).diagnosis.kind == "nonfinite"
    m = np.array([[1.0, 2.0], [3.0, 4.0]])
    assert run(m, m.T).diagnosis.kind == "transpose"
    assert run([1.0, 2.0, 3.0], [1.0, 2.5, 3.0]).diagnosis.kind == "partial"
    shape = compare(ex(np.ones((2, 3))), np.arange(6.0).reshape(3, 2), check="c", label="l", path="p", wrt=None,
                    tolerance=TOL, dtype="float64")
    assert shape.diagnosis.kind == "shape" and not shape.passed


def test_float32_ulps_and_interval():
    c = run([1.0], [np.float32(1.0) + np.float32(2**-23)], dtype="float32")
    assert c.ulps == pytest.approx(1.0)
    kink = compare(Exact(np.array([-1.0]), np.array([1.0])), np.array([0.0]), check="c", label="l", path="p",
                   wrt=None, tolerance=TOL, dtype="float64")
    assert kink.passed and kink.kink_side == "between"
    outside = compare(Exact(np.array([-1.0]), np.array([1.0])), np.array([2.0]), check="c", label="l", path="p",
                      wrt=None, tolerance=TOL, dtype="float64")
    assert not outside.passed and outside.kink_side == "outside"


def test_scattered_tiny_relative_errors_are_called_inaccurate():
    c = run([2.0, 3.0, 5.0], [2.0 * (1 + 3e-10), 3.0, 5.0 * (1 - 1e-10)])
    assert c.diagnosis.kind == "inaccurate"
    assert diagnosis_text(c.diagnosis, c).startswith("2 of 3 element(s) differ by small relative errors (up to 3e-10)")


def _full_path(exact, got, slack=None, dtype="float64"):
    """The same comparison down the full path (the fast path switched off)."""
    from verifier import compare as module

    fast, module._all_close = module._all_close, lambda *a, **k: False
    try:
        return compare(Exact(exact, exact, slack=slack), got, check="backward", label="grad wrt x", path="p",
                       wrt="x", tolerance=TOL, dtype=dtype)
    finally:
        module._all_close = fast


@pytest.mark.parametrize("where", [0, 131071, 131072, 299_999])  # both sides of a chunk boundary, the last element
@pytest.mark.parametrize("what", ["worst", "mismatch", "nan"])
def test_large_comparisons_match_the_full_path(where, what):
    """Large all-close arrays take a chunked fast path: it names the same worst element and verdict as the full path,
    wherever in the array the worst (or the one wrong, or the NaN) element lies, slack included."""
    rng = np.random.default_rng(where)
    exact = rng.standard_normal((300, 1000)).reshape(300_000)
    got = exact * (1 + rng.uniform(-1e-15, 1e-15, exact.size))
    got[where] = exact[where] * (1 + {"worst": 5e-12, "mismatch": 1e-9, "nan": 0.0}[what])
    if what == "nan":
        got[where] = np.nan
    slack = np.full(exact.size, 1e-16)
    fast = compare(Exact(exact, exact, slack=slack), got, check="backward", label="grad wrt x", path="p", wrt="x",
                   tolerance=TOL, dtype="float64")
    full = _full_path(exact, got, slack)
    assert repr((fast.passed, fast.worst, fast.got, fast.abs_err, fast.diagnosis)) == \
        repr((full.passed, full.worst, full.got, full.abs_err, full.diagnosis))  # repr: NaN equals NaN
    assert fast.passed == (what == "worst") and fast.worst == (where,)


@pytest.mark.parametrize("exact, got", [
    (2.0, 2.0 + 1e-15), (np.array([1.0, -3.0, 0.5]), np.array([1.0, -3.0 + 1e-14, 0.5])),
    (np.array([[0.0, 1.0], [2.0, 3.0]]), np.array([[1e-14, 1.0], [2.0, 3.0]])), (1.0, 1.0 + 1e-9), (1.0, np.inf),
    (np.arange(1.0, 13.0).reshape(2, 3, 2), np.arange(1.0, 13.0).reshape(2, 3, 2) + 4e-12 * (np.arange(12) == 7)
     .reshape(2, 3, 2)), (0.0, 1e-300), (2.0**-1070, 2.0**-1070),
])
@pytest.mark.parametrize("dtype", ["float64", "float32", "float16", "bfloat16"])
def test_small_comparisons_match_the_full_path(exact, got, dtype):
    """Small arrays and scalars take the same fast path when every element is close: the same figures as the full
    path (the ULPs in each format too); anything else (a mismatch, a non-finite value) goes down the full path."""
    exact, got = np.asarray(exact, dtype=np.float64), np.asarray(got, dtype=np.float64)
    fast = compare(Exact(exact, exact), got, check="backward", label="grad wrt x", path="p", wrt="x", tolerance=TOL,
                   dtype=dtype)
    full = _full_path(exact, got, dtype=dtype)
    assert repr((fast.passed, fast.worst, fast.got, fast.abs_err, fast.rel_err, fast.ulps, fast.diagnosis)) == \
        repr((full.passed, full.worst, full.got, full.abs_err, full.rel_err, full.ulps, full.diagnosis))


@pytest.mark.parametrize("dtype", ["float64", "float32", "float16", "bfloat16"])
def test_the_spacing_of_one_number_is_the_arrays(dtype):
    """ulp_of (the fast path's, one number) gives ulp()'s spacing: at 0, subnormals, powers of two, large values."""
    from verifier.dtypes import ulp, ulp_of

    for v in (0.0, 5e-324, 2.0**-1070, 1e-40, 2.0**-14, 0.1, -1.0, 1.0, 3.0, 2.0**52, -6.5e4, 1e300):
        assert repr(ulp_of(v, dtype)) == repr(float(ulp(np.array(v), dtype))), v
