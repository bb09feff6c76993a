"""Sound answers: right for the right reasons. Every step of a trace that can be checked must be true.

Usage:
    from distill.soundness import false_steps, is_sound
    problem = {"question": "Which is greater, 14.99 or 14.7?", "family": "decimal_compare"}
    false_steps("Tenths: 7 > 9, so 14.99 is the greater.", problem)   # -> ["7 > 9", ...]
    is_sound(True, "Tenths: 9 > 7, so 14.99 is the greater.", problem)  # -> True

Three kinds of check, all pure and conservative (what cannot be read is skipped, never flagged):

- arithmetic equalities (``17 * 23 = 381``): the filter's exact ``bad_step`` machinery;
- numeric comparisons (``7 > 9``, ``3.2 <= 3.19``), evaluated exactly;
- the problem family's own check, looked up by the problem's ``family`` field in :data:`FAMILY_CHECKS`
  (``register`` adds one). The offline families bring theirs (distill.offline.checks):
  the spelled letters are the word's, the padded decimals equal the numbers, each place comparison
  reads the right digits and is true, each rewritten expression keeps the value.

An answer is sound when it is correct and no check finds a false step: ``None`` when correctness
is undecided, ``False`` when the answer is wrong.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from fractions import Fraction

from distill.artifacts import Problem
from distill.arithmetic import evaluate, false_claims

__all__ = ["FAMILY_CHECKS", "register", "false_comparisons", "false_steps", "is_sound"]

StepCheck = Callable[[str, dict], list[str]]
FAMILY_CHECKS: dict[str, StepCheck] = {}

# "a < b" with numeric expressions either side; "->" / "=>" arrows are not comparisons.
_SIDE = r"-?\d+(?:\.\d+)?(?:[ \t]*[-+*/][ \t]*\d+(?:\.\d+)?)*"
# (a number inside a time, a date or a thousands group is not a side: "1:05 < 1:30", "1,000 > 999")
_COMPARISON = re.compile(rf"(?<![\w.\-+*/^:,])({_SIDE})[ \t]*(<=|>=|≤|≥|!=|≠|(?<![-=])>|<(?![-=]))[ \t]*({_SIDE})"
                         r"(?![\w%:/]|[.,]\d)")
_APPROX = re.compile(r"≈|~|about|approx|roughly")
_HOLDS = {"<": lambda a, b: a < b, ">": lambda a, b: a > b, "<=": lambda a, b: a <= b, "≤": lambda a, b: a <= b,
          ">=": lambda a, b: a >= b, "≥": lambda a, b: a >= b, "!=": lambda a, b: a != b, "≠": lambda a, b: a != b}


def register(family: str, check: StepCheck) -> None:
    """Give a problem family its own step check: ``check(text, problem) -> [false steps]``."""
    FAMILY_CHECKS[family] = check


def false_comparisons(text: str | None) -> list[str]:
    """The numeric comparisons in ``text`` that are false (``7 > 9``), exact, as written."""
    found = []
    for line in (text or "").splitlines():
        if not any(op in line for op in "<>≤≥≠"):
            continue
        for m in _COMPARISON.finditer(line):
            if _APPROX.search(line[max(0, m.start() - 16):m.start()].lower()):
                continue
            left, right = evaluate(m.group(1)), evaluate(m.group(3))
            if left is not None and right is not None and not _HOLDS[m.group(2)](Fraction(left), Fraction(right)):
                found.append(m.group(0).strip())
    return found


def false_steps(text: str | None, problem: Problem | None = None, arithmetic: bool = True) -> list[str]:
    """Every false step found in ``text``: arithmetic (unless ``arithmetic=False``: the filter's
    ``bad_step`` check has it), comparisons, then the family's own check."""
    text = text or ""
    found = (false_claims(text) if arithmetic else []) + false_comparisons(text)
    family = (problem or {}).get("family")
    check = _family_check(family) if isinstance(family, str) else None
    if check is not None:
        found += [s for s in check(text, problem) if s not in found]
    return found


def is_sound(correct: bool | None, text: str | None, problem: Problem | None = None) -> bool | None:
    """Correct and no false step: True/False; None while correctness is undecided."""
    if correct is None:
        return None
    return bool(correct) and not false_steps(text, problem)


_BUILT_IN_LOADED = False


def _family_check(family: str) -> StepCheck | None:
    global _BUILT_IN_LOADED
    if not _BUILT_IN_LOADED:  # the built-in families register on first use (no import cycle at load)
        from distill.offline import checks as offline_checks

        for name, check in offline_checks.CHECKS.items():
            FAMILY_CHECKS.setdefault(name, check)  # a family registered by the user wins
        _BUILT_IN_LOADED = True
    return FAMILY_CHECKS.get(family)
