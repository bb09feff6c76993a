"""Exact arithmetic over numeric claims in text (the `bad_step` check and the offline families' step checks).

Usage:
    from distill.arithmetic import false_claims
    false_claims("So 17 * 23 = 381, and 3/4 + 1/8 = 7/8.")   # -> ["17 * 23 = 381 (is 391)"]

A claim is a purely numeric expression followed by ``= value`` (also chains ``a = b = c``).
Everything that is not unambiguously numeric is skipped, never flagged: algebra (``2x + 3 = 7``,
``x^2 + 4 = 13``), approximations (``≈``, ``~``, "about", ``0.333...``), percentages, labels
(``Day 3 = 12 miles``), text the parser cannot read. A decimal result written with ``d`` places
is accepted when it is the value rounded or cut to ``d`` places. Evaluation is exact
(:class:`fractions.Fraction`) by a small recursive-descent parser: no ``eval``, powers bounded.
"""

from __future__ import annotations

import re
from fractions import Fraction
from functools import lru_cache

__all__ = ["false_claims", "evaluate"]

# Plain-text forms of the LaTeX and Unicode an arithmetic step is written in.
_FRAC = re.compile(r"\\[dt]?frac\s*\{\s*([^{}]*)\}\s*\{\s*([^{}]*)\}")
_POW_BRACE = re.compile(r"\^\s*\{([^{}]*)\}")
_TIMES_X = re.compile(r"(\d)[ \t]*x[ \t]*(?=\d)")  # only spaced "5 x 3" is read as times
_REPLACE = [
    ("\\times", "*"), ("\\cdot", "*"), ("\\div", "/"), ("\\left", ""), ("\\right", ""),
    ("\\,", ""), ("\\!", ""), ("\\;", " "), ("\\ ", " "), ("\\$", ""), ("\\%", "%"),
    ("\\(", " "), ("\\)", " "), ("\\[", " "), ("\\]", " "), ("{,}", ","), ("&=", "="), ("**", " "),
    ("\u2212", "-"), ("\u2013", "-"), ("×", "*"), ("·", "*"), ("⋅", "*"), ("∙", "*"), ("÷", "/"),
    ("\u2009", ""), ("\u202f", ""), ("$", ""),
]
# A run of numeric-expression characters containing at least one '='; no newlines inside.
_CLAIM = re.compile(r"[\d(\-](?:[\d \t.+\-*/^()]|,(?=\d))*(?:=(?![=>])(?:[\d \t.+\-*/^()]|,(?=\d))*)+")
# (a comma joins digits only: "1,000" is a number, "= 7, 8 + 1 = 9" is two claims)
_APPROX = re.compile(r"≈|~|∼|≅|\\approx|\\sim|\.\.\.|…|about|approx|roughly|around|nearly|almost|estimat|round")
_LIST_MARK = re.compile(r"[ \t]*(?:\d+[.)]|[-*•])[ \t]+")
_NUMBER = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+")
_OPERATORS = set("+-*/^(=<>≤≥")
_ATTACHED = re.compile(r"[\w.\\_}\]^'′]")
_MAX_EXPONENT = 64
_MAX_DIGITS = 400


def false_claims(text: str | None, limit: int = 5) -> list[str]:
    """The arithmetic claims in ``text`` that are false, as short strings (at most ``limit``)."""
    if not text or "=" not in text:
        return []
    found: list[str] = []
    for line in text.split("\n"):
        if "=" not in line:  # most of a trace: skip it before any regex runs
            continue
        plain = _normalise(line)
        for match in _CLAIM.finditer(plain):
            claim = _judge(plain, match)
            if claim:
                found.append(claim)
                if len(found) >= limit:
                    return found
    return found


def _normalise(text: str) -> str:
    """One line in plain notation: LaTeX fractions and operators, Unicode signs, list markers gone."""
    for old, new in _REPLACE:
        if old in text:
            text = text.replace(old, new)
    if "\\" in text:
        for _ in range(3):  # nested \frac, innermost first
            text, n = _FRAC.subn(r"((\1)/(\2))", text)
            if not n:
                break
    if "^" in text:
        text = _POW_BRACE.sub(r"^(\1)", text)
    if " x " in text:  # "5 x 3": a cheap test before the regex
        text = _TIMES_X.sub(r"\1*", text)
    mark = _LIST_MARK.match(text)
    return text[mark.end():] if mark else text


def _judge(text: str, match: re.Match) -> str | None:
    """The claim as a string if it is false, None if true or not a claim we may judge."""
    start, end = match.span()
    if _is_attached_before(text, start) or _is_attached_after(text, end):
        return None
    window = (text[max(0, start - 24):start] + text[end:end + 24]).lower()
    if _APPROX.search(window):
        return None
    parts = [p.strip() for p in match.group().split("=")]
    parts[-1] = parts[-1].rstrip(".,")
    if "(" in match.group() or ")" in match.group():
        parts = _balance(parts)
    if parts is None or any(not p for p in parts):
        return None
    values = [evaluate(p) for p in parts]
    # A first part that is a bare number is a label ("Day 3 = 2 * 6 = 12"), not a claim.
    while len(parts) > 1 and _is_number(parts[0]):
        parts, values = parts[1:], values[1:]
    for i in range(len(parts) - 1):
        bad = _check_pair(parts[i], values[i], parts[i + 1], values[i + 1])
        if bad:
            return bad
    return None


def _is_attached_before(text: str, start: int) -> bool:
    if start == 0:
        return False
    prev = text[start - 1]
    if prev not in " \t":
        return bool(_ATTACHED.match(prev)) or prev in _OPERATORS
    i = start - 1
    while i >= 0 and text[i] in " \t":
        i -= 1
    return i >= 0 and text[i] in _OPERATORS - {"=", "("}


def _is_attached_after(text: str, end: int) -> bool:
    if end >= len(text):
        return False
    nxt = text[end]
    if text[end - 1] in " \t":  # "= 12 apples" is fine unless the claim ended on an operator
        i = end - 1
        while i >= 0 and text[i] in " \t":
            i -= 1
        return i >= 0 and text[i] in "+-*/^(" and (nxt.isalpha() or nxt in "\\{")
    return nxt.isalpha() or nxt in "%\\_{!'′" or (nxt == "." and text[end + 1:end + 2].isalnum())


def _balance(parts: list[str]) -> list[str] | None:
    """Drop a bracket the claim merely sits inside: "(3 + 4 = 7)" -> ["3 + 4", "7"]."""
    if parts[0].count("(") > parts[0].count(")") and parts[0].startswith("("):
        parts[0] = parts[0][1:].strip()
    if parts[-1].count(")") > parts[-1].count("(") and parts[-1].endswith(")"):
        parts[-1] = parts[-1][:-1].strip()
    return parts if all(p.count("(") == p.count(")") for p in parts) else None


def _check_pair(left: str, lv: Fraction | None, right: str, rv: Fraction | None) -> str | None:
    if lv is None or rv is None:
        return None
    if _is_number(right):
        if _agrees(lv, rv, right):
            return None
        return f"{left} = {right} (is {_show(lv)})"
    if lv == rv:
        return None
    # A running computation "2 + 3 = 5 * 4 = 20" restates the last result, then goes on.
    lead = _NUMBER.search(right)
    if lead and evaluate(lead.group()) == lv and right.startswith(lead.group()):
        return None
    return f"{left} = {right} ({_show(lv)} vs {_show(rv)})"


def _agrees(value: Fraction, stated: Fraction, text: str) -> bool:
    if value == stated:
        return True
    places = len(text.split(".", 1)[1]) if "." in text else 0
    scale = Fraction(10) ** places
    if (value * scale).denominator == 1:  # representable exactly at this precision: must be exact
        return False
    return abs(value - stated) < 1 / scale  # rounded or cut to the places written


def _is_number(text: str) -> bool:
    text = text.strip()
    if text.startswith("-"):
        text = text[1:].strip()
    m = _NUMBER.fullmatch(text)
    return m is not None


def _show(value: Fraction) -> str:
    if value.denominator == 1:
        return str(value.numerator)
    as_float = float(value)
    return f"{value.numerator}/{value.denominator}" if abs(as_float) < 1e-4 else f"{as_float:.6g}"


# ---------------------------------------------------------------- exact evaluation


@lru_cache(maxsize=8192)  # traces restate the same sums when they double-check
def evaluate(expr: str) -> Fraction | int | None:
    """The exact value of a numeric expression (+ - * / ^, brackets, implicit ``2(3)``), or None."""
    tokens = _tokenize(expr)
    if not tokens:
        return None
    if len(tokens) == 1:
        return tokens[0] if type(tokens[0]) is not str else None
    if "(" not in tokens and "^" not in tokens:
        return _flat(tokens)
    parser = _Parser(tokens)
    try:
        value = parser.expression()
    except (ValueError, ZeroDivisionError, OverflowError, IndexError):
        return None
    return value if parser.pos == len(tokens) else None


def _flat(tokens: list) -> Fraction | int | None:
    """Fast path for expressions without brackets or powers (most steps): * and / bind first."""
    terms: list = []
    pending, negate, want_number = "+", False, True
    for tok in tokens:
        if want_number:
            if tok == "-" or tok == "+":
                negate ^= tok == "-"
                continue
            if type(tok) is str:
                return None
            value = -tok if negate else tok
            negate, want_number = False, False
            if pending == "+" or pending == "-":
                terms.append(value if pending == "+" else -value)
            elif pending == "*":
                terms[-1] = terms[-1] * value
            elif value == 0:
                return None
            else:
                terms[-1] = Fraction(terms[-1]) / value
        elif type(tok) is str and tok in "+-*/":
            pending, want_number = tok, True
        else:
            return None
    return None if want_number else sum(terms)


_TOKEN = re.compile(r"(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)|([-+*/^()])|(\S)")


def _tokenize(expr: str) -> list | None:
    """Numbers become ints (or exact Fractions for decimals); operators stay one-character strings."""
    tokens: list = []
    last_is_number = False
    for number, op, junk in _TOKEN.findall(expr):
        if junk:
            return None
        if number:
            if last_is_number:
                return None  # two numbers in a row: "1, 2" or "3 4", not arithmetic
            tokens.append(_number(number))
            last_is_number = True
        else:
            tokens.append(op)
            last_is_number = False
    return tokens


def _number(text: str) -> int | Fraction:
    text = text.replace(",", "")
    whole, dot, frac = text.partition(".")
    if not dot:
        return int(text)
    return Fraction(int(whole or "0") * 10 ** len(frac) + int(frac), 10 ** len(frac))


class _Parser:
    """expression := term (('+'|'-') term)* ; term := power (('*'|'/'|implicit) power)* ;
    power := unary ('^' power)? ; unary := '-' unary | atom ; atom := number | '(' expression ')'"""

    def __init__(self, tokens: list):
        self.tokens, self.pos = tokens, 0

    def peek(self):
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self):
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def expression(self) -> Fraction:
        value = self.term()
        while self.peek() in ("+", "-"):
            value = value + self.term() if self.take() == "+" else value - self.term()
        return value

    def term(self) -> Fraction:
        value = self.power()
        while True:
            tok = self.peek()
            if tok in ("*", "/"):
                self.take()
                rhs = self.power()
                value = value * rhs if tok == "*" else Fraction(value) / rhs
            elif tok == "(":  # implicit multiplication: 2(3 + 4)
                value = value * self.power()
            else:
                return value

    def power(self) -> Fraction:
        base = self.unary()
        if self.peek() != "^":
            return base
        self.take()
        exponent = self.power()
        if Fraction(exponent).denominator != 1 or abs(exponent) > _MAX_EXPONENT:
            raise ValueError("exponent out of range")
        if abs(Fraction(base).numerator).bit_length() * abs(exponent) > _MAX_DIGITS * 4:
            raise OverflowError("result too large")
        return Fraction(base) ** int(exponent)

    def unary(self) -> Fraction:
        if self.peek() == "-":
            self.take()
            return -self.unary()
        if self.peek() == "+":
            self.take()
            return self.unary()
        return self.atom()

    def atom(self) -> Fraction:
        tok = self.take()
        if type(tok) is not str:
            return tok
        if tok == "(":
            value = self.expression()
            if self.take() != ")":
                raise ValueError("unbalanced")
            return value
        raise ValueError(f"unexpected {tok!r}")
