"""The answer shapes real models write (issue #12): each shape right, and wrong, in a table.

Every example was written for this table; each shape has negative rows (a wrong value, a hedge,
a negation, a partial list) so that handling a shape cannot let a wrong trace through.
"""

from __future__ import annotations

import pytest

from distill.verify import check

# (shape, response, gold, kind, expected correct)
CASES = [
    # A final answer in a plain sentence, no box and no bold.
    ("sentence", "Each day she reads 15 pages.\n\nSo Maria reads 45 pages in 3 days.", "45", "gsm8k", True),
    ("sentence", "Each day she reads 15 pages.\n\nIn 3 days, Maria reads 45 pages.", "45", "gsm8k", True),
    ("sentence", "Each day she reads 15 pages.\n\nSo Maria reads 45 pages in 3 days.", "3", "gsm8k", False),
    ("sentence", "Each day she reads 15 pages.\n\nSo Maria reads 40 pages in 3 days.", "45", "gsm8k", False),
    ("sentence", "Therefore, Lara read 128 pages on the first day.", "128", "math", True),
    ("sentence", "Therefore, Lara read 127 pages on the first day.", "128", "math", False),
    ("sentence", r"Thus the values of \(x\) that satisfy it are \(x = -1\), \(x = 2\), and \(x = -2\).", "-1,2,-2", "math", True),
    ("sentence", r"Thus the values of \(x\) that satisfy it are \(x = -1\) and \(x = 2\).", "-1,2,-2", "math", False),
    ("sentence", r"The range of $f$ is \(\left[-\frac{\pi}{2}, \frac{\pi}{2}\right]\). This covers all cases.", r"\left[-\frac{\pi}{2}, \frac{\pi}{2}\right]", "math", True),
    ("sentence", r"The range of $f$ is \(\left(-\frac{\pi}{2}, \frac{\pi}{2}\right)\). This covers all cases.", r"\left[-\frac{\pi}{2}, \frac{\pi}{2}\right]", "math", False),
    ("sentence", r"**Final Answer**: The probability that both are aces, given the rest, is \(\frac{1}{2}\).", r"\frac12", "math", True),
    ("sentence", r"**Final Answer**: The probability that both are aces, given the rest, is \(\frac{1}{3}\).", r"\frac12", "math", False),
    # "# Answer" sections (step-by-step MATH style).
    ("section", "So x = 17.\n\n# Answer\n\n17", "17", "math", True),
    ("section", "So the answer is 12. Wait, I dropped a term.\n\n# Answer\n\n17", "17", "math", True),
    ("section", "So the answer is 12. Wait, I dropped a term.\n\n# Answer\n\n17", "12", "math", False),
    ("section", "Answer: 4, no, recount.\n\n# Answer\n\n17\n\nI hope that helps! Another try gave 9.", "17", "math", True),
    ("section", "# Answer\n\n16", "17", "math", False),
    ("section", "### Final Answer\nThe product of the last two digits is **6**.", "6", "math", True),
    ("section", "### Final Answer\nThe product of the last two digits is **8**.", "6", "math", False),
    # Several answers: joined by "and", \text{ and }, or one per box.
    ("and", r"The possible values are \(\boxed{2 \text{ and } -6 - 4\sqrt{2}}\).", r"a=2, a=-6-4 \sqrt{2}", "math", True),
    ("and", r"The possible values are \(\boxed{2 \text{ and } -6 + 4\sqrt{2}}\).", r"a=2, a=-6-4 \sqrt{2}", "math", False),
    ("and", r"\boxed{f(x) = x \quad \text{and} \quad f(x) = -x}", "f(x)=x,f(x)=-x", "math", True),
    ("and", r"\boxed{f(x) = x}", "f(x)=x,f(x)=-x", "math", False),
    ("and", r"\boxed{7 \text{ and } -5}", "-5,7", "math", True),
    ("and", r"\boxed{7 \text{ and } 5}", "-5,7", "math", False),
    ("and", r"\boxed{2 \text{ and } 7}", "2", "math", False),  # two answers to a one-value question
    ("boxes", r"Therefore $p$ and $q$ are \( \boxed{3} \) and \( \boxed{4} \), respectively.", "3,4", "math", True),
    ("boxes", r"Therefore $p$ and $q$ are \( \boxed{3} \) and \( \boxed{5} \), respectively.", "3,4", "math", False),
    ("boxes", r"Thus: \[ \boxed{10, 11, 12} \quad \text{and} \quad \boxed{-2, -1, 0} \]", "10,11,12,-2,-1,0", "math", True),
    ("boxes", r"First \boxed{2}. Then, after more work, we find the answer \boxed{7}.", "2,7", "math", False),
    ("boxes", r"\boxed{3} and \boxed{4}", "4", "math", True),  # a one-value gold keeps the last box
    # Bold answers without a box or an anchor phrase.
    ("bold", "Adding the three groups gives 21.\n\n**21**", "21", "math", True),
    ("bold", "Adding the three groups gives 21.\n\n**21**", "21", "gsm8k", True),
    ("bold", "Adding the three groups gives 21.\n\n**20**", "21", "math", False),
    ("bold", "So the minimum is **12**. This balances the handshakes between people.", "12", "math", True),
    ("bold", "So the minimum is **12**. This balances the handshakes between people.", "13", "math", False),
    # An equation or assignment inside the box whose value answers the question.
    ("equation", r"\boxed{a + b = 17}", "17", "math", True),
    ("equation", r"\boxed{a + b = 16}", "17", "math", False),
    ("equation", r"\boxed{|p-q| = 9}", "9", "math", True),
    ("equation", r"\boxed{3+3=6}", "6", "math", True),
    ("equation", r"\boxed{3+3=7}", "7", "math", False),  # a false equation states nothing
    ("equation", r"\boxed{\sin \theta = \frac{-1 + \sqrt{5}}{2}}", r"\frac{-1+\sqrt{5}}{2}", "math", True),
    ("equation", r"\boxed{x^2 - 4 = 0}", "0", "math", False),  # an equation to solve, not a value
    ("equation", r"**Final Answer:** \(x + y = 4027\).", "4027", "math", True),
    ("equation", r"Hence the only solution is \(\boxed{f(n) = n}\).", "f(z)=z", "math", True),  # argument renamed
    ("equation", r"Hence the only solution is \(\boxed{f(n) = 2n}\).", "f(z)=z", "math", False),
    ("equation", r"\boxed{f(x) = x^2 + 1}", "f(t)=x^2+1", "math", False),
    # ± lists and equivalent forms.
    ("pm", r"Thus the possible values for \(m\) are \(\boxed{±1, ±7}\).", "1,-1,7,-7", "math", True),
    ("pm", r"\boxed{\pm 2, \pm 5}", "2,-2,5,-5", "math", True),
    ("pm", r"\boxed{\pm 2, \pm 5}", "2,-2,5", "math", False),
    ("pm", r"\boxed{x = \pm 3}", "3,-3", "math", True),
    ("pm", r"\boxed{\pm 3}", "3", "math", False),
    # Numbers in words.
    ("words", "The answer is twelve.", "12", "gsm8k", True),
    ("words", "The answer is eleven.", "12", "gsm8k", False),
    ("words", "So the city has 1 million people.", "1000000", "gsm8k", True),
    ("words", "So the city has 1 million people.", "1", "gsm8k", False),
    ("words", "The answer is 2 and a half.", "2.5", "gsm8k", True),
    ("words", "The answer is 2 and 3.", "5", "gsm8k", False),
    ("words", "After all that, he has zero apples left.", "0", "gsm8k", True),
    ("words", "It costs one hundred and five dollars.", "105", "gsm8k", True),
    ("words", "It costs one hundred and five dollars.", "100", "gsm8k", False),
    ("words", "He gave one to his sister and kept twelve.", "1", "gsm8k", False),
    # Exact answers inside a short sentence.
    ("short", "Yes, because 9 is odd.", "yes", "exact", True),
    ("short", "No, because 9 is odd.", "yes", "exact", False),
    ("short", "Yes, but it is not prime.", "yes", "exact", False),
    ("short", "Paris, France", "Paris", "exact", True),
    ("short", "Lyon, not Paris", "Paris", "exact", False),
    # Odd golds.
    ("odd_gold", r"So the number in base 5 is \boxed{4210_5}.", "4210_{5}", "math", True),
    ("odd_gold", r"So the number in base 5 is \boxed{4210}.", "4210_{5}", "math", True),
    ("odd_gold", r"So the number in base 5 is \boxed{4211_5}.", "4210_{5}", "math", False),
    # Negations, hedges, retractions and truncations are never correct, with or without a box.
    ("negated", r"The answer is not \boxed{5}.", "5", "math", False),
    ("negated", r"The answer isn't \boxed{5}.", "5", "math", False),
    ("negated", "The answer is not 5.", "5", "gsm8k", False),
    ("negated", r"It is not \boxed{4}; the answer is \boxed{5}.", "5", "math", True),
    ("hedged", r"It might be \boxed{5}, but I am not sure.", "5", "math", False),
    ("hedged", r"Perhaps the answer is \boxed{5}.", "5", "math", False),
    ("hedged", "The answer is 5 or 6.", "5", "gsm8k", False),
    ("hedged", "It might be 12.", "12", "gsm8k", False),
    ("hedged", "# Answer\n\nmaybe 17", "17", "math", False),
    ("retracted", r"So \boxed{5}. Wait, that's wrong.", "5", "math", False),
    ("truncated", r"So the answer is \boxed{\frac{5", r"\frac{5}{2}", "math", False),
    # Probes written while attacking the new shapes: none of these may pass.
    ("probe", "We need 3 more steps to find x.", "3", "math", False),  # not a conclusion
    ("probe", "**Step 2**", "2", "math", False),  # a bold heading is not an answer
    ("probe", r"\boxed{\text{red and blue}}", r"\text{red and blue}", "math", True),  # "and" inside \text
    ("probe", r"\boxed{\text{red and green}}", r"\text{red and blue}", "math", False),
    ("probe", "## Final Answer\n\nAfter all steps:\n\n\\boxed{5}", "5", "math", True),
    ("probe", "## Final Answer\n\nAfter all steps:\n\n\\boxed{6}", "5", "math", False),
    ("probe", r"So $a = \boxed{3}$, and then $b = \boxed{4}$.", "3,4", "math", False),  # not one answer
    # Bugs found on the holdout split after its frozen scoring (fixed afterwards, see the README).
    ("holdout_bug", r"Thus, \(\boxed{E(2020, 1993) = 76}\).", "76", "math", True),
    ("holdout_bug", r"Thus, \(\boxed{E(2020, 1993) = 75}\).", "76", "math", False),
    ("holdout_bug", r"The solution to the system is \((x, y) = (1000, 10)\).", "10^{3},10", "math", True),
    ("holdout_bug", r"The solution to the system is \((x, y) = (10, 1000)\).", "10^{3},10", "math", False),
    ("holdout_bug", "The final answer is\n\\[\n\\begin{pmatrix}0&1\\\\1&0\\end{pmatrix}.\n\\]", r"\begin{pmatrix} 0 & 1 \\ 1 & 0 \end{pmatrix}", "math", True),
    ("holdout_bug", "The final answer is\n\\[\n\\begin{pmatrix}1&0\\\\0&1\\end{pmatrix}.\n\\]", r"\begin{pmatrix} 0 & 1 \\ 1 & 0 \end{pmatrix}", "math", False),
    ("holdout_bug", r"Therefore, 20 workers are needed to produce \(\frac{720}{K}\) widgets in 4 hours.", "20", "math", True),
    ("holdout_bug", r"Therefore, 20 workers are needed to produce \(\frac{720}{K}\) widgets in 4 hours.", "720", "math", False),
    ("holdout_bug", r"So, \( x = 14 \) and \( y = 15 \) is not a solution.", "15", "math", False),
    ("holdout_bug", "So 15 is not the answer.", "15", "gsm8k", False),
    ("holdout_bug", "Since he didn't eat any, he has 15 left.", "15", "gsm8k", True),
    ("probe", "The answer is 5. Or maybe 6.", "5", "gsm8k", False),
    ("probe", r"\boxed{5} is not the answer.", "5", "math", False),
    ("probe", "So, 12 apples and 5 oranges.", "5", "gsm8k", False),  # which one? not the last by default
    ("sentence", "So she has 12 apples and 5 oranges left, 17 fruits in total.", "17", "gsm8k", True),
    ("sentence", "So she has 12 apples and 5 oranges left, 17 fruits in total.", "5", "gsm8k", False),
    # Fixed after the frozen holdout scoring too: general solutions, qualifiers, rounded golds, late bold.
    ("family", r"\boxed{\frac{\pi}{6} + k\pi, -\frac{\pi}{6} + k\pi}", r"\frac{1}{6}\pi+\pi k, \frac{5}{6}\pi+\pi k", "math", True),
    ("family", r"\boxed{\frac{\pi}{6} + k\pi, -\frac{\pi}{4} + k\pi}", r"\frac{1}{6}\pi+\pi k, \frac{5}{6}\pi+\pi k", "math", False),
    ("family", r"\boxed{\frac{7\pi}{6} + 2k\pi}", r"\frac{\pi}{6} + 2k\pi", "math", False),  # half a period off
    ("family", r"\boxed{n}", "n+1", "math", False),  # a formula in n is not a family
    ("family", r"\boxed{\frac{\pi}{6} + k\pi \text{ for } k \in \mathbb{Z}}", r"\frac{\pi}{6}+k\pi", "math", True),
    ("approx", r"The value of \(x\) is approximately \(18.8^\circ\).", r"18.8^{\circ}", "math", True),
    ("approx", r"The value of \(x\) is approximately \(18.9^\circ\).", r"18.8^{\circ}", "math", False),
    ("approx", r"The ratio is approximately \(0.33\).", r"\frac{1}{3}", "math", False),  # an exact gold
    ("bold", "The result is a repeating decimal 0.3650.\n\nSo the 20th digit is **6**.", "6", "math", True),
    ("bold", "The result is a repeating decimal 0.3650.\n\nSo the 20th digit is **5**.", "6", "math", False),
    # A set must match the whole set; order matters for ordered tuples.
    ("set", r"\boxed{\{1, 2, 3\}}", "3, 2, 1", "math", True),
    ("set", r"\boxed{\{1, 2\}}", "1, 2, 3", "math", False),
    ("tuple", r"\boxed{(1, 2)}", "(1, 2)", "math", True),
    ("tuple", r"\boxed{(2, 1)}", "(1, 2)", "math", False),
]


@pytest.mark.parametrize(
    ("shape", "response", "gold", "kind", "expected"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)]
)
def test_answer_shape(shape, response, gold, kind, expected):
    verdict = check(response, gold, kind)
    assert (verdict.correct is True) == expected, verdict


def test_every_shape_has_a_negative_row():
    positives = {c[0] for c in CASES if c[4]}
    negatives = {c[0] for c in CASES if not c[4]}
    assert positives <= negatives, positives - negatives


def test_hedge_and_negation_reasons_name_the_problem():
    assert check(r"The answer is not \boxed{5}.", "5", "math").reason == "negated"
    assert check(r"It might be \boxed{5}, but I am not sure.", "5", "math").reason == "hedged"
    assert check("# Answer\n\n17", "17", "math").extracted == "17"
