"""Step checks of the offline task families: is each step of a trace true for *this* problem?

Usage:
    from distill.offline.checks import CHECKS
    problem = {"question": "How many o's are in ebooks?", "family": "letter_count"}
    CHECKS["letter_count"]("e, o, e\\nTotal: 2", problem)   # -> ["spelled ebooks as e, o, e"]

Each check takes any text (the teacher's trace or a student's own reasoning, whatever its format)
and returns the false steps it finds, as short strings; what it cannot read it skips, except that
a letter count with no spelling of the word is refused: the spelling is the only reason a count can
have, and without it a 135M student's right count is a guess. distill.soundness runs these beside
the generic arithmetic and comparison checks, in `distill eval` and in the filter.
"""

from __future__ import annotations

import re
from fractions import Fraction

from distill.artifacts import Problem
from distill.arithmetic import evaluate
from distill.offline.families import ARITH_Q, DECIMAL_Q, LETTER_Q

__all__ = ["CHECKS", "spelled_runs", "check_letters", "check_decimals", "check_arithmetic"]

# ---------------------------------------------------------------- letters

# One spelled letter, quoted or bare (not the r of "r's"), with an optional count mark after it
# ("r -> 1", "r (1)", "r: 1").
_UNIT = re.compile(r"(?:(?<=['\"‘“])([A-Za-z])(?=['\"’”])|(?<![A-Za-z'’])([A-Za-z])(?![A-Za-z'’]))['\"’”]?"
                   r"(?:[ \t]*(?:->|→|=>|:|=)?[ \t]*\(?#?(\d+)\)?)?")
# What may stand between two spelled letters: separators, quotes, a list number ("2. ").
_GAP = re.compile(r"[\s,;.\-–—|/+\"'*]*(?:\d+[.):][ \t]*)?[\s\"'*]*")
_TOTAL = re.compile(r"\btotal\b\s*(?:count\s*)?[:=]?\s*(\d+)", re.I)
_MIN_RUN = 3


def spelled_runs(text: str) -> list[list[tuple[str, int | None]]]:
    """Runs of at least three single letters (a spelling), each letter with its count mark or None."""
    runs, run, last_end = [], [], None
    for m in _UNIT.finditer(text):
        unit = (m.group(1) or m.group(2), int(m.group(3)) if m.group(3) else None)
        if run and _GAP.fullmatch(text[last_end:m.start()]):
            run.append(unit)
        else:
            if len(run) >= _MIN_RUN:
                runs.append(run)
            run = [unit]
        last_end = m.end()
    if len(run) >= _MIN_RUN:
        runs.append(run)
    return runs


def check_letters(text: str, problem: Problem) -> list[str]:
    """The spelling is the word's letters in order; marks number exactly the asked letter; totals match."""
    m = LETTER_Q.search(str(problem.get("question") or ""))
    if not m:
        return []
    letter, word = m.group(1).lower(), m.group(2).lower()
    runs = spelled_runs(text)
    if not runs:
        return [f"no spelling of {word}"]
    bad = []
    for run in runs:
        letters = "".join(c.lower() for c, _ in run)
        if set(letters) == {letter} and letters != word:  # "the r's: r, r, r" lists matches, not the word
            continue
        if letters != word:
            bad.append(f"spelled {word} as {', '.join(letters)}")
            continue
        marks = [(i, n) for i, (_, n) in enumerate(run) if n is not None]
        if marks:  # a counting style: the marks must fall on the asked letter and count 1, 2, ...
            wanted = [i for i, c in enumerate(word) if c == letter]
            if [i for i, _ in marks] != wanted or [n for _, n in marks] != list(range(1, len(marks) + 1)):
                bad.append(f"marked {', '.join(f'{run[i][0]}={n}' for i, n in marks)} counting the {letter}'s")
    true_count = word.count(letter)
    bad += [f"total {t.group(1)} (is {true_count})" for t in _TOTAL.finditer(text) if int(t.group(1)) != true_count]
    return bad


# ---------------------------------------------------------------- decimals

_NUM = r"\d+(?:\.\d+)?"
_BARE_EQ = re.compile(rf"(?<![\w.])({_NUM})[ \t]*=[ \t]*({_NUM})(?![\w]|\.\d)")
_OPERATOR = re.compile(r"[-+*/^×÷(=]")
_COMPARE = re.compile(rf"\bCompare ({_NUM}) (?:and|with|to) ({_NUM})", re.I)
_PLACE = re.compile(r"\b(Whole(?: parts?| numbers?)?|Ones|Tenths|Hundredths|Thousandths|Ten-thousandths|"
                    r"Hundred-thousandths|Place (\d+))\s*:\s*(\d+)[ \t]*([<>=])[ \t]*(\d+)", re.I)
_HAS = re.compile(r"\b(Whole(?: parts?| numbers?)?|Ones|Tenths|Hundredths|Thousandths|Ten-thousandths|"
                  rf"Hundred-thousandths|Place (\d+))\s*:\s*{_NUM} has \d+.*", re.I)
_HAS_PAIR = re.compile(rf"({_NUM}) has (\d+)")
_PLACES = ("tenths", "hundredths", "thousandths", "ten-thousandths", "hundred-thousandths")
_VERDICT = re.compile(rf"(?<![\d.])({_NUM}) is (?:the )?(greater|larger|bigger|smaller)(?! than)", re.I)
_VERBAL = re.compile(rf"(?<![\d.])({_NUM}) is (?:greater|larger|bigger|more|smaller|less) than ({_NUM})", re.I)


def check_decimals(text: str, problem: Problem) -> list[str]:
    """Padded numbers equal the originals; compared numbers are the question's; each place
    comparison reads the right digits and is true; the stated greater (smaller) one is."""
    m = DECIMAL_Q.search(str(problem.get("question") or ""))
    if not m:
        return []
    pair = (m.group(2), m.group(3))
    values = {Fraction(x) for x in pair}
    bad = [f"{e.group(1)} = {e.group(2)}" for e in _BARE_EQ.finditer(text)
           if _is_bare(text, e) and Fraction(e.group(1)) != Fraction(e.group(2))]
    shown = _COMPARE.search(text)
    order = (shown.group(1), shown.group(2)) if shown else pair
    if {Fraction(x) for x in order} != values:
        bad.append(f"compares {order[0]} and {order[1]}, not {pair[0]} and {pair[1]}")
        order = pair
    places = max(len(x.partition(".")[2]) for x in order)
    digits = [_places(x, places) for x in order]
    for p in _PLACE.finditer(text):
        index = _place_index(p.group(1), p.group(2))
        x, op, y = p.group(3), p.group(4), p.group(5)
        holds = {"<": int(x) < int(y), ">": int(x) > int(y), "=": int(x) == int(y)}[op]
        right = index is not None and index < len(digits[0]) and (digits[0][index], digits[1][index]) == (x, y)
        if not holds or not right:
            bad.append(p.group(0))
    for h in _HAS.finditer(text):  # "Tenths: 14.99 has 9, 14.70 has 7": each digit is its number's
        index = _place_index(h.group(1), h.group(2))
        for number, digit in _HAS_PAIR.findall(h.group(0)):
            if Fraction(number) not in values:
                bad.append(f"{number} is not {pair[0]} or {pair[1]}")
            elif index is not None and _digit(number, index) != digit:
                bad.append(f"{h.group(1)}: {number} has {digit}")
    for v in _VERDICT.finditer(text):
        want = min(values) if v.group(2).lower() == "smaller" else max(values)
        if Fraction(v.group(1)) in values and Fraction(v.group(1)) != want:
            bad.append(v.group(0))
    for v in _VERBAL.finditer(text):
        a, b, word = Fraction(v.group(1)), Fraction(v.group(2)), v.group(0).lower()
        if (a > b) != any(w in word for w in ("greater", "larger", "bigger", "more")) or a == b:
            bad.append(v.group(0))
    return list(dict.fromkeys(bad))


def _is_bare(text: str, match: re.Match) -> bool:
    """Both sides stand alone: "9.8 = 9.80", not "9.11 = 9 + 0.11" (an expression is bad_step's)."""
    before, after = text[:match.start()].rstrip(" \t"), text[match.end():].lstrip(" \t")
    return not (before and _OPERATOR.fullmatch(before[-1])) and not (after and _OPERATOR.fullmatch(after[0]))


def _digit(number: str, index: int) -> str:
    whole, _, frac = number.partition(".")
    return str(int(whole)) if index == 0 else (frac[index - 1] if index <= len(frac) else "0")


def _places(x: str, places: int) -> list[str]:
    whole, _, frac = x.partition(".")
    return [str(int(whole))] + list(frac.ljust(places, "0"))


def _place_index(name: str, number: str | None) -> int | None:
    name = name.lower()
    if name.startswith("whole") or name == "ones":
        return 0
    if number:
        return int(number)
    return _PLACES.index(name) + 1 if name in _PLACES else None


# ---------------------------------------------------------------- arithmetic

_NOW = re.compile(r"\b(?:Now|So|Then)\s*:?\s*(\d+(?:[ \t]*[-+*/][ \t]*\d+)+)[ \t]*(?:$|[.,;\n])", re.I | re.M)


def check_arithmetic(text: str, problem: dict) -> list[str]:
    """Each rewritten expression ("Now: 45 + 19") keeps the value of the question's expression."""
    m = ARITH_Q.search(str(problem.get("question") or ""))
    if not m:
        return []
    target = evaluate(m.group(1))
    if target is None:
        return []
    bad = []
    for now in _NOW.finditer(text):
        value = evaluate(now.group(1))
        if value is not None and value != target:
            bad.append(f"{now.group(1)} (is {value}, the expression is {target})")
    return bad


CHECKS = {"letter_count": check_letters, "decimal_compare": check_decimals, "arithmetic": check_arithmetic}
