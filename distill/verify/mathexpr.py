"""Math answers as values (numbers, expressions, sets, tuples, intervals) and their equality.

Usage:
    from distill.verify.mathexpr import parse_value, values_equal
    values_equal(parse_value("\\{1, 2\\}"), parse_value("\\{2,1\\}"))           # True: sets
    values_equal(parse_value("(1, 2]"), parse_value("(1, 2)"))                 # False: brackets
    values_equal(parse_value("\\sqrt{2}"), parse_value("1.41421"))            # False: approximation

Plain numbers go through exact Fractions (microseconds); anything else through the small parser in
distill.verify.latex and a numeric comparison at fixed sample points, under a time limit.
"""

from __future__ import annotations

import logging
import re
from fractions import Fraction
from typing import NamedTuple, Union

import sympy

from distill.verify.guard import TimeLimit, time_limit
from distill.verify.latex import ParseError, parse_expr
from distill.verify.numbers import Num, clean_text, parse_number, strip_wrappers

log = logging.getLogger(__name__)

SIMPLE_VAR = re.compile(r"^(?:[a-zA-Z]|\\[a-zA-Z]+)(?:_\{?\w+\}?)?(?:\([^()=]{1,12}\))?$")  # x, a_1, f(x), f(2)
TEXT_CMD = re.compile(r"\\(?:text|textbf|textrm|mbox|mathrm|mathbf|operatorname)\s*\{([^{}]*)\}")
MATRIX_RE = re.compile(r"\\begin\{([pbvB]?matrix)\}(.*?)\\end\{\1\}", re.DOTALL)
SAMPLE_POINTS = (Fraction(7, 13), Fraction(23, 17), Fraction(-11, 19))
COMPARE_SECONDS = 1.0


class Scalar(NamedTuple):
    """One value: an exact number (fast path), a sympy expression, or normalised text."""

    num: Num | None = None
    expr: sympy.Expr | None = None
    text: str = ""


class Seq(NamedTuple):
    """Several values: kind is set | list (unordered), bracket (tuple or interval), union."""

    kind: str
    items: tuple
    brackets: str = ""


Value = Union[Scalar, Seq]


def normalise(text: str) -> str:
    """Strip wrappers, units in \\text{}, degrees, ``x \\in``; \\dfrac -> \\frac."""
    text = strip_wrappers(clean_text(text))
    text = re.sub(r"\\[dtc]frac", r"\\frac", text)
    text = re.sub(r"(?<=\S)\s*\\(?:text|mbox|mathrm|textrm)\s*\{\s*[a-zA-Z][a-zA-Z .]*\}\s*(?:\^\s*\{?\d\}?)?$", "", text)
    text = re.sub(r"\^\s*\{?\s*\\circ\s*\}?|\\circ|\\degree|\s*degrees?$", "", text)
    text = re.sub(r"^[a-zA-Z]\s*\\in\s*", "", text)
    # "\\frac{\\pi}{6} + k\\pi \\text{ for } k \\in \\mathbb{Z}": the qualifier is not part of the value
    text = re.sub(r"[\s,]*(?:\\quad\s*)*(?:\\text\{\s*(?:for|where)\s*(?:all|any|some)?\s*\}|\\forall)\s*[a-zA-Z]\s*\\in\s*\\mathbb\{[ZN]\}$", "", text)
    text = re.sub(r"^(\d+)_\{?\(?(\d{1,2})\)?\}?$", r"\1", text)  # "4210_{5}": the digits, in the base asked for
    text = MATRIX_RE.sub(matrix_as_tuple, text)
    text = inequality_as_interval(text)
    whole_text = TEXT_CMD.fullmatch(text)
    if whole_text:
        text = whole_text.group(1).strip()
    return text.strip()


def matrix_as_tuple(match: re.Match) -> str:
    """A matrix as nested tuples (a column vector as one tuple), so entries compare by value."""
    rows = [row.strip() for row in match.group(2).split("\\\\") if row.strip()]
    cells = [[cell.strip() for cell in row.split("&")] for row in rows]
    if all(len(row) == 1 for row in cells):
        return "(" + ", ".join(row[0] for row in cells) + ")"
    return "(" + ", ".join("(" + ", ".join(row) + ")" for row in cells) + ")"


_LESS = {"<": False, "\\lt": False, "\\le": True, "\\leq": True, "\\leqslant": True}
_MORE = {">": False, "\\gt": False, "\\ge": True, "\\geq": True, "\\geqslant": True}
_OP = r"(<|>|\\lt|\\gt|\\leq?(?:slant)?|\\geq?(?:slant)?)"


def inequality_as_interval(text: str) -> str:
    """"x > 3" -> "(3, \\infty)", "-1 \\le x < 2" -> "[-1, 2)": inequalities compare as intervals."""
    double = re.fullmatch(rf"(.+?)\s*{_OP}\s*[a-zA-Z]\s*{_OP}\s*(.+)", text)
    if double and double.group(2) in _LESS and double.group(3) in _LESS:
        low, high = double.group(1), double.group(4)
        return f"{'[' if _LESS[double.group(2)] else '('}{low}, {high}{']' if _LESS[double.group(3)] else ')'}"
    single = re.fullmatch(rf"[a-zA-Z]\s*{_OP}\s*(.+)", text)
    if single:
        op, bound = single.group(1), single.group(2)
        if op in _MORE:
            return f"{'[' if _MORE[op] else '('}{bound}, \\infty)"
        return f"(-\\infty, {bound}{']' if _LESS[op] else ')'}"
    return text


def split_top(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside (), [], {} (and \\{ \\})."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(text):
        if text.startswith("\\{", i) or text.startswith("\\}", i):
            depth += 1 if text[i + 1] == "{" else -1
            i += 2
            continue
        ch = text[i]
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif depth == 0 and text.startswith(sep, i):
            parts.append(text[start:i])
            start = i + len(sep)
            i = start
            continue
        i += 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


def encloses(text: str, open_len: int) -> bool:
    """Does the bracket opening at 0 close exactly at the end (not "(1)(2)")?"""
    depth = 0
    for i, ch in enumerate(text):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth == 0 and i < len(text) - 1:
                return False
    return True


def parse_value(text: str) -> Value | None:
    """Parse an answer string into a Value; None if it is empty."""
    text = normalise(text)
    if not text:
        return None
    num = parse_number(text)
    if num is not None:
        return Scalar(num=num)
    union = split_top(text, "\\cup")
    if len(union) > 1:
        return Seq("union", tuple(parse_value(part) for part in union))
    if text.startswith("\\{") and text.endswith("\\}"):
        return Seq("set", tuple(parse_items(text[2:-2])))
    if len(text) > 2 and text[0] in "([" and text[-1] in ")]" and encloses(text, 1):
        items = split_top(text[1:-1], ",")
        if len(items) > 1:
            return Seq("bracket", tuple(parse_items(text[1:-1])), text[0] + text[-1])
    items = split_top(text, ",")
    if len(items) > 1:
        return Seq("list", tuple(parse_items(text)))
    return parse_scalar(text)


def parse_items(text: str) -> list[Value]:
    """The items of a list; "\\pm 2, \\pm 5" is the four values 2, -2, 5, -5."""
    items: list[Value] = []
    for value in (parse_value(part) for part in split_top(text, ",")):
        if isinstance(value, Seq) and value.kind == "list":
            items.extend(value.items)
        elif value is not None:
            items.append(value)
    return items


def parse_scalar(text: str) -> Value:
    """One value; ``x = 5`` is 5, ``a \\pm b`` is the pair, an equation is lhs - rhs."""
    sides = split_top(text, "=")
    if len(sides) > 1:
        if len(sides) == 2 and SIMPLE_VAR.match(sides[1]) and not SIMPLE_VAR.match(sides[0]):
            sides = sides[::-1]
        if SIMPLE_VAR.match(sides[0]) or re.fullmatch(r"\(\s*[a-z](?:\s*,\s*[a-z])+\s*\)", sides[0]):
            value = parse_value(sides[-1]) or Scalar(text=text)
            # Keep the name: "y = 2x + 3" is the value 2x + 3, and also an equation in x and y.
            return Seq("assign", (parse_scalar(sides[0]), value)) if len(sides) == 2 else value
        return Seq("equation", tuple(parse_scalar(side) for side in sides[:2]))
    plus_minus = split_top(text, "\\pm")
    if len(plus_minus) == 2 and plus_minus[1]:
        left = plus_minus[0] or "0"
        return Seq("list", (parse_scalar(f"{left}+({plus_minus[1]})"), parse_scalar(f"{left}-({plus_minus[1]})")))
    try:
        return Scalar(expr=parse_expr(text))
    except (ParseError, TypeError, ValueError, ZeroDivisionError):
        return Scalar(text=normalise_text(text))


def normalise_text(text: str) -> str:
    text = TEXT_CMD.sub(r"\1", text)
    return re.sub(r"[\s{}]", "", text).lower()


def values_equal(gold: Value, pred: Value) -> bool:
    """Is ``pred`` the same answer as ``gold``? Never raises; a timeout is 'not equal'."""
    try:
        with time_limit(COMPARE_SECONDS):
            return _equal(gold, pred)
    except TimeLimit:
        log.debug("comparison timed out")
        return False
    except (TypeError, ValueError, ArithmeticError, RecursionError, AttributeError):
        return False


def _equal(gold: Value, pred: Value) -> bool:
    if is_assign(gold) and is_assign(pred):
        gold, pred = gold.items[1], renamed_argument(gold.items[0], pred.items[0], pred.items[1])
    elif is_assign(gold) or is_assign(pred):
        other = pred if is_assign(gold) else gold
        if isinstance(other, Seq) and other.kind == "equation":
            as_eq = Seq("equation", gold.items if is_assign(gold) else pred.items)
            return equations_equal(as_eq, other) if is_assign(gold) else equations_equal(gold, as_eq)
        gold = gold.items[1] if is_assign(gold) else gold
        pred = pred.items[1] if is_assign(pred) else pred
    if isinstance(gold, Seq) and gold.kind in ("set", "list", "union") and len(gold.items) == 1:
        gold = gold.items[0]
    if isinstance(pred, Seq) and pred.kind in ("set", "list", "union") and len(pred.items) == 1:
        pred = pred.items[0]
    if isinstance(gold, Scalar) and isinstance(pred, Scalar):
        return scalars_equal(gold, pred)
    if not (isinstance(gold, Seq) and isinstance(pred, Seq)):
        return False
    return seqs_equal(gold, pred)


def renamed_argument(gold_name: Value, pred_name: Value, pred_value: Value) -> Value:
    """"f(n) = n" answers "f(z) = z": rename the one argument that differs between f(z) and f(n)."""
    g = gold_name.expr if isinstance(gold_name, Scalar) else None
    p = pred_name.expr if isinstance(pred_name, Scalar) else None
    if g is None or p is None or not isinstance(pred_value, Scalar) or pred_value.expr is None:
        return pred_value
    extra_gold, extra_pred = g.free_symbols - p.free_symbols, p.free_symbols - g.free_symbols
    if len(g.free_symbols) < 2 or len(extra_gold) != 1 or len(extra_pred) != 1:
        return pred_value
    old, new = extra_pred.pop(), extra_gold.pop()
    if p.subs(old, new) != g:
        return pred_value
    return Scalar(expr=pred_value.expr.subs(old, new))


def is_assign(value: Value) -> bool:
    return isinstance(value, Seq) and value.kind == "assign"


def seqs_equal(gold: Seq, pred: Seq) -> bool:
    if len(gold.items) != len(pred.items):
        return False
    if gold.kind in ("equation", "assign") or pred.kind in ("equation", "assign"):
        return gold.kind == pred.kind and equations_equal(gold, pred)
    if gold.kind == "bracket" or pred.kind == "bracket":
        if "set" in (gold.kind, pred.kind) or "union" in (gold.kind, pred.kind):
            return False
        if gold.kind == pred.kind and gold.brackets != pred.brackets:
            return False
        return all(_equal(g, p) for g, p in zip(gold.items, pred.items))
    if (gold.kind == "union") != (pred.kind == "union"):
        return False
    remaining = list(pred.items)
    for g in gold.items:
        match = next((i for i, p in enumerate(remaining) if _equal(g, p)), None)
        if match is None:
            return False
        remaining.pop(match)
    return True


def as_expr(value: Scalar) -> sympy.Expr | None:
    if value.num is not None:
        return sympy.Rational(value.num.value.numerator, value.num.value.denominator)
    return value.expr


def scalars_equal(gold: Scalar, pred: Scalar) -> bool:
    if gold.num is not None and pred.num is not None:
        return numbers_equal(gold.num, pred.num)
    g, p = as_expr(gold), as_expr(pred)
    if g is None or p is None:
        if gold.text and pred.text:
            return gold.text == pred.text
        return False
    if gold.num is not None and gold.num.is_decimal and p.is_number:
        # The gold was rounded: an exact prediction counts if it rounds to it (never a decimal one).
        value = sympy.N(p, 30)
        return value.is_real and round(Fraction(str(value)), gold.num.decimals) == gold.num.value
    return exprs_equal(g, p)


def numbers_equal(gold: Num, pred: Num) -> bool:
    if gold.value == pred.value:
        return True
    if pred.is_percent and not gold.is_percent:
        return pred.value / 100 == gold.value
    if gold.is_percent and not pred.is_percent:
        return pred.value * 100 == gold.value
    if gold.is_decimal and not pred.is_decimal and gold.decimals:
        return round(pred.value, gold.decimals) == gold.value
    return False


def exprs_equal(gold: sympy.Expr, pred: sympy.Expr) -> bool:
    """Exact-valued comparison: high-precision numerics, then sample points for symbols."""
    if gold == pred:
        return True
    symbols = gold.free_symbols
    if symbols != pred.free_symbols:
        return False
    if len(symbols) == 1 and next(iter(symbols)).name in ("k", "n", "m") and same_angle_family(gold, pred):
        return True
    if not symbols:
        return numbers_close(gold, pred, 1e-20)
    agreed = 0
    for point in sample_points(symbols):
        a, b = gold.subs(point), pred.subs(point)
        if a.has(sympy.nan, sympy.zoo) or b.has(sympy.nan, sympy.zoo):
            continue
        if not numbers_close(a, b, 1e-12):
            return False
        agreed += 1
    return agreed >= 2 or sympy.simplify(gold - pred) == 0


def same_angle_family(gold: sympy.Expr, pred: sympy.Expr) -> bool:
    """"-\\frac{\\pi}{6} + k\\pi" is "\\frac{5\\pi}{6} + k\\pi": one period (a multiple of π) apart.

    Only for an integer parameter (k, n, m) with a period that is a rational multiple of π, so a
    formula in n ("n + 1" vs "n") is never a family.
    """
    k = next(iter(gold.free_symbols))
    period, other = sympy.diff(gold, k), sympy.diff(pred, k)
    if period.free_symbols or period != other or period == 0:
        return False
    multiple = sympy.nsimplify(period / sympy.pi)
    if not (multiple.is_Rational and multiple != 0):
        return False
    shift = sympy.nsimplify((gold.subs(k, 0) - pred.subs(k, 0)) / period)
    return bool(shift.is_Integer) and sympy.simplify(gold - pred - shift * period) == 0


def _ratio(value: Fraction) -> tuple[int, int]:
    return value.numerator, value.denominator


def numbers_close(a: sympy.Expr, b: sympy.Expr, tolerance: float) -> bool:
    if a.has(sympy.oo, -sympy.oo) or b.has(sympy.oo, -sympy.oo):
        return a == b
    x, y = sympy.N(a, 40), sympy.N(b, 40)
    if not (x.is_number and y.is_number):
        return False
    scale = max(1, abs(x), abs(y))
    return bool(abs(x - y) <= tolerance * scale)


def equations_equal(gold: Seq, pred: Seq) -> bool:
    """Equations agree if lhs - rhs of one is a non-zero constant multiple of the other's."""
    g = [as_expr(side) for side in gold.items]
    p = [as_expr(side) for side in pred.items]
    if None in g or None in p:
        return False
    dg, dp = g[0] - g[1], p[0] - p[1]
    if dg.free_symbols != dp.free_symbols or not dg.free_symbols:
        return False
    ratios = []
    for point in sample_points(dg.free_symbols):
        a, b = dg.subs(point), dp.subs(point)
        if b == 0 or a.has(sympy.nan, sympy.zoo) or b.has(sympy.nan, sympy.zoo):
            continue
        ratios.append(a / b)
    return len(ratios) >= 2 and ratios[0] != 0 and all(numbers_close(r, ratios[0], 1e-12) for r in ratios)


def sample_points(symbols: set) -> list[dict]:
    """Three fixed rational points, each symbol at a different one (deterministic, no special values)."""
    ordered = sorted(symbols, key=lambda s: s.name)
    return [
        {s: sympy.Rational(*_ratio(SAMPLE_POINTS[(i + shift) % len(SAMPLE_POINTS)])) for i, s in enumerate(ordered)}
        for shift in range(len(SAMPLE_POINTS))
    ]
