"""Table tests for distill.verify.check: every kind, right and wrong, the hard shapes included."""

from __future__ import annotations

import pytest

from distill.verify import Verdict, check

MATH = [
    # (response, gold, correct, reason)
    (r"So the answer is $\boxed{\frac{1}{2}}$.", "0.5", True, "correct"),
    (r"\boxed{\dfrac{3}{8}}", r"\frac38", True, "correct"),
    (r"\boxed{\frac{\sqrt{3}}{2}}", r"\frac{\sqrt3}{2}", True, "correct"),  # nested braces
    (r"\boxed{\frac{\sqrt{2}}{2}}", r"\frac{\sqrt3}{2}", False, "wrong_answer"),
    (r"First \boxed{12}, then recomputing: \boxed{15}.", "15", True, "correct"),  # last box
    (r"\boxed{24}. Wait, that's wrong: I double-counted.", "24", None, "retracted"),
    (r"\boxed{20}, but that is incorrect. The final answer is 24.", "24", True, "correct"),
    (r"Therefore $\fbox{17}$.", "17", True, "correct"),
    (r"\boxed{2\frac{1}{2}}", r"\frac52", True, "correct"),  # mixed number
    ("The answer is 1 3/4.", r"\frac{7}{4}", True, "correct"),
    (r"\boxed{\sqrt{50}}", r"5\sqrt2", True, "correct"),
    (r"\boxed{7.0710678}", r"5\sqrt2", False, "wrong_answer"),  # approximation of an irrational
    (r"\boxed{50.27}", r"16\pi", False, "wrong_answer"),
    (r"\boxed{\frac{4\pi}{3}}", r"\frac43\pi", True, "correct"),
    ("The circumference is 12\u03c0.", r"12\pi", True, "correct"),
    (r"\boxed{30^\circ}", "30", True, "correct"),
    ("The angle measures 45\u00b0.", "45", True, "correct"),
    (r"\boxed{25\%}", "25", True, "correct"),
    (r"\boxed{40\%}", "0.4", True, "correct"),
    (r"\boxed{(-2, 3]}", "(-2,3]", True, "correct"),
    (r"\boxed{(-2, 3)}", "(-2,3]", False, "wrong_answer"),  # interval brackets matter
    (r"\boxed{(2, \infty) \cup (-\infty, 0)}", r"(-\infty,0)\cup(2,\infty)", True, "correct"),
    (r"\boxed{\{2, -3\}}", r"\{-3, 2\}", True, "correct"),  # sets are unordered
    (r"\boxed{(-1, 3)}", "(3,-1)", False, "wrong_answer"),  # tuples are ordered
    (r"\boxed{\{3, -1\}}", "(3,-1)", False, "wrong_answer"),  # a set is not a tuple
    (r"\boxed{x = 5}", "5", True, "correct"),
    (r"\boxed{5}", "x=5", True, "correct"),
    (r"\boxed{2x - y + 3 = 0}", "y=2x+3", True, "correct"),
    (r"\boxed{y = 2x - 3}", "y=2x+3", False, "wrong_answer"),
    (r"\boxed{3 \times 10^{5}}", "300000", True, "correct"),
    ("The answer is 2.5e-3.", "0.0025", True, "correct"),
    (r"\boxed{10,080}", "10080", True, "correct"),
    (r"\boxed{10\,080}", "10080", True, "correct"),  # thin-space separator
    (r"\boxed{10\,800}", "10080", False, "wrong_answer"),
    ("The minimum value is \u22127.", "-7", True, "correct"),  # Unicode minus
    ("The minimum value is 7.", "-7", False, "wrong_answer"),
    (r"\boxed{(x-2)(x+3)}", "x^2+x-6", True, "correct"),  # sympy equivalence
    (r"\boxed{(x+2)(x-3)}", "x^2+x-6", False, "wrong_answer"),
    (r"\boxed{\frac{a+b}{ab}}", r"\frac1a+\frac1b", True, "correct"),
    (r"\boxed{6 \text{ or } 8}", "8", False, "hedged"),
    (r"The answer is either $\boxed{6}$ or $\boxed{8}$.", "8", False, "hedged"),
    ("The answer is 72 or 76.", "76", False, "hedged"),
    (r"\boxed{2 \text{ or } -3}", "-3, 2", True, "correct"),  # "or" lists the gold's two roots
    ("The answer is not 15.", "15", False, "negated"),
    ("The answer is not 15; the answer is 16.", "16", True, "correct"),
    (r"So the probability is \boxed{\frac{3", r"\frac34", False, "truncated"),
    ("", "5", False, "empty"),
    ("I could not determine the value.", "5", None, "no_answer"),
    (r"\boxed{5}", "", None, "unparseable_gold"),
    (r"\boxed{5}", r"\frac{5", None, "unparseable_gold"),
    (r"\boxed{\sqrt{2}}", "1.41", True, "correct"),  # a rounded gold accepts the exact value
    (r"\boxed{24\text{ cm}}", "24", True, "correct"),
    (r"\boxed{\text{Tuesday}}", r"\text{Tuesday}", True, "correct"),
    (r"\boxed{f(2) = -3}", "-3", True, "correct"),
    (r"\boxed{\$1,\!000}", "1000", True, "correct"),
    (r"\boxed{0.\overline{3}}", r"\frac13", True, "correct"),
    (r"\boxed{(3, \infty)}", "x>3", True, "correct"),  # an inequality is its interval
    (r"\boxed{x \ge 3}", "x>3", False, "wrong_answer"),
    (r"\boxed{\begin{pmatrix} 1 \\ 2 \end{pmatrix}}", "(1,2)", True, "correct"),
    (r"\boxed{\begin{pmatrix} 1 & 2 \\ 0 & 1 \end{pmatrix}}", r"\begin{pmatrix}1&0\\2&1\end{pmatrix}", False, "wrong_answer"),
]

GSM8K = [
    ("48 + 24 = 72 clips.\n#### 72", "72", True, "correct"),
    ("#### 60\nNote: this assumes 5 days, not 7.", "60", True, "correct"),  # note after #### N
    ("#### 60\nNote: this assumes 5 days, not 7.", "7", False, "wrong_answer"),
    ("The total is $1,234.50.", "1234.5", True, "correct"),
    ("The answer is 1\u2009250.", "1250", True, "correct"),  # thin space
    ("The answer is 1\\,250 sheep.", "1250", True, "correct"),
    ("The answer is \u22123.", "-3", True, "correct"),
    ("The answer is 1,200 meters.", "1200", True, "correct"),
    ("**Answer: $12**", "12", True, "correct"),
    ("So Jenna has 5 + 7 = 12 marbles.", "12", True, "correct"),
    ("The answer is 25. Then he buys 10 more: 25 + 10 = 35.", "35", False, "wrong_answer"),
    ("The answer is 72 or 76.", "72", False, "hedged"),
    ("I think the answer is 45, or maybe 54.", "45", False, "hedged"),
    ("The answer is not 30.", "30", False, "negated"),
    ("The answer is \\boxed{3", "36", False, "truncated"),
    ("", "30", False, "empty"),
    ("The answer is 36.", "Step 1: 6*6 = 36\n#### 36", True, "correct"),
    ("The answer is 36.", "thirty-six", None, "unparseable_gold"),
    ("The answer is 3/4 of a pizza.", "0.75", True, "correct"),
    ("The answer is 1 1/2 cups.", "1.5", True, "correct"),
    ("The answer is 50%.", "50", True, "correct"),
    ("The answer is $5.00.", "5", True, "correct"),
    ("The answer is 12.000 dollars.", "12000", False, "wrong_answer"),
]

CHOICE = [
    ("The answer is C", "C", True, "correct"),
    ("(C)", "C", True, "correct"),
    ("C) Mitochondria", "C", True, "correct"),
    ("c", "C", True, "correct"),
    ("The answer is (c).", "C", True, "correct"),
    ("C. Mitochondria, because it produces ATP.", "C", True, "correct"),
    ("so the answer is \\boxed{D}.", "D", True, "correct"),
    ("Therefore $\\boxed{\\text{(B)}}$.", "B", True, "correct"),
    ("Not A, since iron is a metal; the answer is C.", "C", True, "correct"),
    ("The answer is not D.", "D", False, "negated"),
    ("The answer is A or C.", "C", False, "hedged"),
    ("Answer: D or maybe B", "D", False, "hedged"),
    ("The answer is a prime number, so the correct choice is B.", "B", True, "correct"),
    ("The answer is a prime number, so the correct choice is B.", "A", False, "wrong_answer"),
    ("We can eliminate A and B. Thus C.", "C", True, "correct"),
    ("Answer: Paris", "B) Paris", True, "correct"),  # the option text
    ("Answer: Lyon", "B) Paris", None, "no_answer"),
    ("The answer is B", "C", False, "wrong_answer"),
    ("", "A", False, "empty"),
    ("The answer is \\boxed{", "A", False, "truncated"),
    ("The answer is C", "Z", None, "unparseable_gold"),
    ("A) 3\nB) 4\nC) 5", "C", None, "no_answer"),  # the options listed, none chosen
    ("Answer: B\n\nA) 3 is wrong because it ignores friction.", "B", True, "correct"),
]

EXACT = [
    ("**Final answer:** The Pacific Ocean.", "pacific ocean", True, "correct"),
    ("The answer is: marie   curie!", "Marie Curie", True, "correct"),
    ("It is Paris", '["Paris", "Paris, France"]', True, "correct"),
    ("Answer: Lyon, France", '["Paris", "Paris, France"]', False, "wrong_answer"),
    ("Answer: Paris or Rome", "Paris", False, "hedged"),
    ("The answer is not Paris.", "Paris", False, "negated"),
    ("Answer: 3.0", "3", True, "correct"),
    ("\\boxed{\\text{octagon}}", "octagon", True, "correct"),
    ("The sorted word is: aelpp", "aelpp", True, "correct"),
    ("Answer: New York City", "New York", False, "wrong_answer"),
    ("", "Blue", False, "empty"),
]


def _table(rows, kind):
    return [pytest.param(r, g, c, why, kind, id=f"{kind}-{i}") for i, (r, g, c, why) in enumerate(rows)]


@pytest.mark.parametrize(
    "response,gold,correct,reason,kind",
    _table(MATH, "math") + _table(GSM8K, "gsm8k") + _table(CHOICE, "choice") + _table(EXACT, "exact"),
)
def test_check_table(response, gold, correct, reason, kind):
    verdict = check(response, gold, kind)
    assert (verdict.correct, verdict.reason) == (correct, reason), verdict


def test_verdict_shape_and_extracted_answer():
    verdict = check(r"so \boxed{\frac{1}{2}}", "0.5", "math")
    assert isinstance(verdict, Verdict)
    assert verdict.extracted == r"\frac{1}{2}"
    assert verdict.as_dict() == {"correct": True, "extracted": r"\frac{1}{2}", "reason": "correct"}


def test_choice_options_passed_by_the_caller():
    assert check("The answer is Paris.", "B", "choice", options=["Rome", "Paris", "Lyon"]).correct is True
    assert check("The answer is Rome.", "B", "choice", options={"A": "Rome", "B": "Paris"}).correct is False


def test_unknown_kind_is_an_error():
    with pytest.raises(ValueError, match="unknown kind 'poetry'"):
        check("x", "y", "poetry")


def test_response_none_is_empty_not_a_crash():
    for kind in ("math", "gsm8k", "choice", "exact", "code"):
        assert check(None, "1" if kind != "choice" else "A", kind).correct is False
