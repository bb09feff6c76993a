"""Plain numbers, fast: separators, currency, Unicode minus, percent, fractions, mixed numbers, 1e5.

Usage:
    from distill.verify.numbers import parse_number, clean_text
    parse_number("$1,234.50")        # Num(Fraction(2469, 2), is_decimal=True, is_percent=False)
    parse_number("\\frac{3}{4}")      # Num(Fraction(3, 4), ...)
    parse_number("x^2")              # None: not a plain number (the sympy path takes it)

Exact rational arithmetic throughout: "0.1" is Fraction(1, 10), never a float.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import NamedTuple

# Minus signs and dashes models emit, thin and no-break spaces used as thousands separators.
_UNICODE = str.maketrans({
    "\u2212": "-", "\u2012": "-", "\u2013": "-", "\ufe63": "-", "\uff0d": "-",
    "\u2009": " ", "\u202f": " ", "\u00a0": " ", "\u2007": " ", "\u200a": " ",
    "\u00d7": r"\times ", "\u22c5": r"\cdot ", "\u00b7": r"\cdot ", "\u00f7": r"\div ",
    "\u03c0": r"\pi ", "\u221e": r"\infty ", "\u221a": r"\sqrt", "\u00b0": r"^\circ ",
    "\u2264": r"\le ", "\u2265": r"\ge ", "\u2260": r"\ne ", "\u222a": r"\cup ",
    "\u00b1": r"\pm ", "\u2213": r"\mp ", "\u00bd": "1/2", "\u00bc": "1/4", "\u00be": "3/4",
})
_INT = r"(?:\d{1,3}(?:,\d{3})+|\d+)"
_DEC = rf"(?:{_INT}(?:\.\d*)?|\.\d+)"
_SCI = re.compile(
    rf"^(?P<m>[+-]?{_DEC})\s*(?:[eE](?P<e1>[+-]?\d+)|(?:\\times|\\cdot|\*|x)\s*10\s*\^\s*\{{?\s*(?P<e2>[+-]?\d+)\s*\}}?)$"
)
_PLAIN = re.compile(rf"^[+-]?{_DEC}$")
_FRAC = re.compile(r"^(?P<s>[+-]?)\\frac\s*\{\s*(?P<n>[+-]?\d+)\s*\}\s*\{\s*(?P<d>[+-]?\d+)\s*\}$")
_FRAC_SHORT = re.compile(r"^(?P<s>[+-]?)\\frac\s*(?P<n>\d)\s*(?P<d>\d)$")
_SLASH = re.compile(rf"^(?P<s>[+-]?)(?P<n>{_DEC})\s*/\s*(?P<d>{_DEC})$")
_MIXED = re.compile(
    r"^(?P<s>[+-]?)(?P<w>\d+)\s*(?:\\frac\s*\{\s*(?P<n>\d+)\s*\}\s*\{\s*(?P<d>\d+)\s*\}|\s(?P<n2>\d+)\s*/\s*(?P<d2>\d+))$"
)
_REPEATING = re.compile(r"^([+-]?)(\d*)\.(\d*)\\overline\s*\{(\d+)\}$")
_MAX_EXPONENT = 400
_MAX_CHARS = 200


class Num(NamedTuple):
    """An exact value, whether it was written with a decimal point, and whether it had a %."""

    value: Fraction
    is_decimal: bool = False
    is_percent: bool = False
    decimals: int = 0


def clean_text(text: str) -> str:
    """Unicode minus/spaces/symbols to ASCII/LaTeX; thin-space and ``{,}`` thousands joined."""
    # Only typographic spaces join digit groups: "5 100-dollar bills" must stay two numbers.
    text = re.sub(r"(?<=\d)(?:\\[,;:! ]|\{,\}|~|[\u2009\u202f\u00a0\u2007\u200a])(?=\d{3}(?!\d))", "", text)
    return text.translate(_UNICODE)


def strip_wrappers(text: str) -> str:
    """Remove $, \\(, \\displaystyle, \\left/\\right, \\! and friends around and inside an answer."""
    text = text.strip()
    text = re.sub(r"^(?:\$\$?|\\\(|\\\[)|(?:\$\$?|\\\)|\\\])$", "", text).strip()
    text = text.replace("\\!", "")  # a negative thin space: "1,\\!000" is one number
    text = re.sub(r"\\(?:displaystyle|left|right|big|Big|bigg|Bigg)(?![a-zA-Z])|\\,|\\;|\\:|\\quad|\\qquad", " ", text)
    text = re.sub(r"(?<!\\)\\ ", " ", text.replace("\\$", ""))
    return re.sub(r"\s+", " ", text).strip().rstrip(".").strip()


def _decimals(text: str) -> int:
    return len(text.split(".", 1)[1]) if "." in text else 0


def _fraction(text: str) -> Fraction:
    return Fraction(text.replace(",", "").replace("+", ""))


def parse_number(text: str) -> Num | None:
    """Parse a plain number (or a numeric fraction / mixed number); None for anything else."""
    if len(text) > _MAX_CHARS:  # Fraction("9" * 5000) raises; no real answer is that long
        return None
    text, percent = _strip_marks(text)
    repeating = _REPEATING.match(text)
    if repeating:  # 0.1\overline{6} = 1/10 + 6/90
        sign, whole, fixed, cycle = repeating.groups()
        value = Fraction(int(whole or 0)) + Fraction(int(fixed or 0), 10 ** len(fixed))
        value += Fraction(int(cycle), (10 ** len(cycle) - 1) * 10 ** len(fixed))
        return Num(-value if sign == "-" else value, False, percent)
    if _PLAIN.match(text):
        return Num(_fraction(text), "." in text, percent, _decimals(text))
    match = _SCI.match(text)
    if match:
        exponent = int(match.group("e1") or match.group("e2"))
        if abs(exponent) > _MAX_EXPONENT:
            return None
        return Num(_fraction(match.group("m")) * Fraction(10) ** exponent, True, percent)
    value = _fraction_value(text)
    return None if value is None else Num(value, False, percent)


def _strip_marks(text: str) -> tuple[str, bool]:
    """Drop wrappers, a trailing % (reported), degrees, a leading currency sign, \\dfrac."""
    text = strip_wrappers(clean_text(text))
    stripped = re.sub(r"\s*(?:\\%|%|\\text\{\s*%\s*\}|\s?percent)$", "", text)
    percent = stripped != text
    text = re.sub(r"\s*(?:\^\s*\{?\\circ\}?|\\circ|\\degree)$", "", stripped).strip()
    text = re.sub(r"^\\?\$\s*", "", text)
    text = re.sub(r"\\[dtc]frac", r"\\frac", text)
    return (text.replace("{", "").replace("}", "") if _looks_braced_number(text) else text), percent


def _fraction_value(text: str) -> Fraction | None:
    """``\\frac{a}{b}``, ``\\frac12``, ``a/b`` and mixed numbers ``2\\frac{1}{2}``, ``2 1/2``."""
    for pattern in (_FRAC, _FRAC_SHORT, _SLASH):
        match = pattern.match(text)
        if match:
            den = _fraction(match.group("d"))
            if den == 0:
                return None
            value = _fraction(match.group("n")) / den
            return -value if match.group("s") == "-" else value
    match = _MIXED.match(text)
    if match:
        num, den = match.group("n") or match.group("n2"), match.group("d") or match.group("d2")
        if int(den) == 0:
            return None
        value = int(match.group("w")) + Fraction(int(num), int(den))
        return -value if match.group("s") == "-" else value
    return None


def _looks_braced_number(text: str) -> bool:
    """``{12}`` or ``-{3.5}``: braces around a plain number only."""
    return bool(re.fullmatch(r"[+-]?\{[\d.,]+\}", text))


_NUMBER_TOKEN = re.compile(
    rf"(?<![\w.])(?P<num>[-+]?\$?\s?(?:\d+\s+\d+/\d+(?![\d.])|{_DEC}(?:\s*/\s*\d+(?!\.\d))?))(?P<pct>\s*(?:%|\\%|percent))?"
)


def number_tokens(text: str) -> list[tuple[int, str, Num]]:
    """Every number in free text: (position, as written, value) ("$1,200.50", "-3", "45%", "3/4")."""
    text = clean_text(text).replace("\\$", "$")
    found = []
    for match in _NUMBER_TOKEN.finditer(text):
        raw = re.sub(r"^([-+]?)\$?\s?", r"\1", match.group("num")).strip()
        if raw.endswith("."):
            raw = raw[:-1]
        num = parse_number(raw + ("%" if match.group("pct") else ""))
        if num is not None:
            found.append((match.start(), match.group(0).strip(), num))
    return found
