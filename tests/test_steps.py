"""The bad_step check: true, false, unparseable, algebra and approximate arithmetic claims."""

from __future__ import annotations

import pytest

from distill.arithmetic import evaluate, false_claims

TRUE = [
    "17 * 23 = 391", "3/4 + 1/8 = 7/8", "12 + 21 = 33", "2 + 3 = 5 = 5", "So 5 x 3 = 15 apples",
    "\\frac{3}{4} + \\frac{1}{8} = \\frac{7}{8}", "$12 + $3 = $15", "(3 + 4 = 7)", "1,000 + 2,000 = 3,000",
    "2^{10} = 1024", "7 - 10 = -3", "2(3+4) = 14", "\\(2 \\times 3 = 6\\)", "3.5 * 2 = 7.0",
    "Total = 5 × 3 = 15", "2 + 3 = 5 * 4 = 20",  # a running computation restating the last result
    "3 − 1 = 2",  # Unicode minus
]
FALSE = [
    ("17 * 23 = 381", "17 * 23 = 381 (is 391)"), ("3/4 + 1/8 = 5/8", None), ("12 + 21 = 34", None),
    ("Total = 5 × 3 = 16.", None), ("0.5 + 0.25 = 0.76", None), ("2^10 = 1000", None), ("x = 3 + 4 = 8", None),
    ("1. 3 + 4 = 8", None), ("\\frac{1}{2} + \\frac{1}{3} = \\frac{2}{5}", None), ("10/3 = 3.5", None),
    ("7 - 10 = 3", None), ("2 \\times 3 = 7", None), ("5 x 3 = 14 apples", None),
    ("so 3 + 4 = 7, 7 * 2 = 15, done", "7 * 2 = 15 (is 14)"),
]
SKIPPED = [  # algebra, approximations, rounding, labels, text that is not arithmetic
    "2x + 3 = 7", "x^2 + 4 = 13", "2x - 3 = 7", "y = 2 + 3 = 5x", "3 * 4 = 12 + x", "a_1 = 2", "f(2) = 2 + 3 = 5",
    "22/7 ≈ 3.14", "22/7 = 3.14 approximately", "roughly 7 * 8 = 50", "1/3 = 0.333...", "7 * 8 ~ 50",
    "10/3 = 3.33", "2/3 = 0.67", "10/3 = 3", "Day 3 = 12 miles", "20% of 50 = 10", "5! = 120",
    "2^99999 = 5", "1/0 = 5", "see 3 + = 4", "the ratio 3:4 = 6:8", "1, 2, 3 = 6",
]


@pytest.mark.parametrize("text", TRUE)
def test_true_claims_pass(text):
    assert false_claims(text) == []


@pytest.mark.parametrize("text,expected", FALSE)
def test_false_claims_flagged(text, expected):
    found = false_claims(text)
    assert len(found) == 1, found
    if expected:
        assert found[0] == expected


@pytest.mark.parametrize("text", SKIPPED)
def test_unjudgeable_text_is_never_flagged(text):
    assert false_claims(text) == []


def test_claims_inside_a_long_trace():
    text = ("First, 16 - 3 - 4 = 9 eggs.\nThen she earns 9 * 2 = 18 dollars.\n"
            "Let x be the price, so 2x + 3 = 7 gives x = 2.\nCheck: 18 / 2 = 8.\n")
    assert false_claims(text) == ["18 / 2 = 8 (is 9)"]


def test_evaluate_is_exact_and_bounded():
    assert evaluate("0.1 + 0.2") == evaluate("3/10")
    assert evaluate("2^3^2") == 512
    assert evaluate("2^1000000") is None
    assert evaluate("import os") is None
