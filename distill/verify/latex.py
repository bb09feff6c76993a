"""A small, fast LaTeX/plain-math expression parser that builds exact sympy expressions.

Usage:
    from distill.verify.latex import parse_expr
    parse_expr("2\\sqrt{3} + \\frac{\\pi}{2}")     # 2*sqrt(3) + pi/2
    parse_expr("3\\frac{1}{4}")                   # 13/4 (a mixed number, as MATH writes them)
    parse_expr("\\frac{3")                        # raises ParseError

Decimals become exact rationals ("1.414" is 707/500), so an approximation never equals an
irrational. Sizes are bounded (exponents, factorials, length) so no input can hang sympy.
"""

from __future__ import annotations

import re

import sympy

MAX_LENGTH = 400
MAX_POWER = 200
MAX_FACTORIAL = 200
MAX_DIGITS = 5000

TOKEN_RE = re.compile(
    r"\s*(?:(?P<num>\d+(?:\.\d*)?|\.\d+)|(?P<cmd>\\[a-zA-Z]+|\\[{}|])|(?P<word>sqrt|pi|ln|log|exp|sin|cos|tan|infinity|inf)(?![a-zA-Z])"
    r"|(?P<letter>[a-zA-Z])|(?P<op>\*\*|[-+*/^_()\[\]{}!|=,<>']))"
)
GREEK = {
    "alpha", "beta", "gamma", "delta", "epsilon", "varepsilon", "zeta", "eta", "theta", "vartheta",
    "iota", "kappa", "lambda", "mu", "nu", "xi", "rho", "sigma", "tau", "phi", "varphi", "chi",
    "psi", "omega", "Gamma", "Delta", "Theta", "Lambda", "Xi", "Sigma", "Phi", "Psi", "Omega",
}
FUNCS = {
    "sin": sympy.sin, "cos": sympy.cos, "tan": sympy.tan, "cot": sympy.cot, "sec": sympy.sec,
    "csc": sympy.csc, "arcsin": sympy.asin, "arccos": sympy.acos, "arctan": sympy.atan,
    "ln": sympy.log, "exp": sympy.exp, "sinh": sympy.sinh, "cosh": sympy.cosh, "tanh": sympy.tanh,
}
WORDS = {"sqrt", "pi", "ln", "log", "exp", "sin", "cos", "tan", "infinity", "inf"}
IGNORED_CMDS = {"displaystyle", "left", "right", "mathrm", "mathbf", "mathit", "operatorname", "textstyle"}
_SYMBOLS: dict[str, sympy.Symbol] = {}


class ParseError(ValueError):
    """The text is not an expression this parser understands (or is too large to evaluate)."""


def symbol(name: str) -> sympy.Symbol:
    """One shared Symbol per name (sympy caches too, but this skips its assumptions lookup)."""
    sym = _SYMBOLS.get(name)
    if sym is None:
        sym = _SYMBOLS[name] = sympy.Symbol(name)
    return sym


def tokenize(text: str) -> list[tuple[str, str]]:
    """Split into (kind, text) tokens; anything unknown is a ParseError."""
    if len(text) > MAX_LENGTH:
        raise ParseError("too long")
    bare = re.sub(r"\\[a-zA-Z]+", " ", text)
    for word in re.findall(r"[a-zA-Z]{3,}", bare):
        if word not in WORDS:  # prose ("The area is") is not a product of symbols
            raise ParseError(f"word {word!r}")
    tokens, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        match = TOKEN_RE.match(text, pos)
        if not match or match.end() == pos:
            raise ParseError(f"unexpected {text[pos:pos + 10]!r}")
        kind = match.lastgroup or "op"
        value = match.group(kind)
        if kind == "cmd" and value[1:] in IGNORED_CMDS:
            pos = match.end()
            continue
        tokens.append((kind, value))
        pos = match.end()
    return tokens


class Parser:
    """Recursive descent: sum > product (explicit and implicit) > unary > power > postfix > atom."""

    def __init__(self, tokens: list[tuple[str, str]]):
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None or (value is not None and token[1] != value):
            raise ParseError(f"expected {value or 'more'}")
        self.pos += 1
        return token

    def parse(self) -> sympy.Expr:
        expr = self.sum()
        if self.peek() is not None:
            raise ParseError(f"trailing {self.peek()[1]!r}")
        return expr

    def sum(self) -> sympy.Expr:
        expr = self.product()
        while self.peek() and self.peek()[1] in ("+", "-", "\\pm", "\\mp"):
            op = self.take()[1]
            if op in ("\\pm", "\\mp"):
                raise ParseError("plus-minus is a pair of values")
            right = self.product()
            expr = expr + right if op == "+" else expr - right
        return expr

    def starts_atom(self, token: tuple[str, str] | None) -> bool:
        if token is None:
            return False
        kind, value = token
        if kind in ("num", "letter", "word"):
            return True
        if kind == "cmd":
            return value not in ("\\cdot", "\\times", "\\div", "\\pm", "\\mp", "\\}", "\\cup", "\\le", "\\ge", "\\ne")
        return value in ("(", "{", "\\{", "[")

    def product(self) -> sympy.Expr:
        expr = self.unary()
        while True:
            token = self.peek()
            if token and token[1] in ("*", "\\cdot", "\\times", "/", "\\div"):
                op = self.take()[1]
                right = self.unary()
                if op in ("/", "\\div"):
                    if right == 0:
                        raise ParseError("division by zero")
                    expr = expr / right
                else:
                    expr = expr * right
            elif self.starts_atom(token):
                expr = self.implicit(expr)
            else:
                return expr

    def implicit(self, left: sympy.Expr) -> sympy.Expr:
        """Juxtaposition: "2x", "2\\pi", and a mixed number "3\\frac{1}{4}" (= 13/4)."""
        start = self.pos
        right = self.power()
        token_before = self.tokens[start - 1] if start else None
        is_mixed = (
            token_before is not None and token_before[0] == "num" and "." not in token_before[1]
            and self.tokens[start][1] == "\\frac" and isinstance(right, sympy.Rational)
            and not isinstance(right, sympy.Integer) and left.is_Integer
        )
        if is_mixed:
            return left + right if left >= 0 else left - right
        return left * right

    def unary(self) -> sympy.Expr:
        token = self.peek()
        if token and token[1] in ("-", "+"):
            self.take()
            inner = self.unary()
            return -inner if token[1] == "-" else inner
        return self.power()

    def power(self) -> sympy.Expr:
        base = self.postfix()
        if self.peek() and self.peek()[1] in ("^", "**"):
            self.take()
            exponent = self.group_or_atom() if self.peek() and self.peek()[1] == "{" else self.unary_atom()
            if exponent.is_number and abs(exponent) > MAX_POWER and base.is_number and abs(base) != 1:
                raise ParseError("exponent too large")
            if base.is_Rational and exponent.is_Rational and abs(exponent) > 1:
                digits = len(str(abs(base.p))) + len(str(base.q))
                if digits * abs(exponent) > MAX_DIGITS:  # ((2^200)^200)^200 would be millions of digits
                    raise ParseError("power too large")
            return sympy.Pow(base, exponent)
        return base

    def unary_atom(self) -> sympy.Expr:
        if self.peek() and self.peek()[1] == "-":
            self.take()
            return -self.postfix()
        return self.postfix()

    def postfix(self) -> sympy.Expr:
        expr = self.atom()
        while self.peek() and self.peek()[1] in ("!", "'"):
            if self.take()[1] == "'":
                raise ParseError("derivative marks are not values")
            if not (expr.is_Integer and 0 <= expr <= MAX_FACTORIAL):
                raise ParseError("factorial out of range")
            expr = sympy.factorial(expr)
        return expr

    def group_or_atom(self) -> sympy.Expr:
        if self.peek() and self.peek()[1] == "{":
            self.take("{")
            inner = self.sum()
            self.take("}")
            return inner
        return self.atom()

    def atom(self) -> sympy.Expr:
        kind, value = self.take()
        if kind == "num":
            return sympy.Rational(value.rstrip(".") or "0")
        if kind == "letter":
            return self.letter(value)
        if kind == "word":
            return self.command(value)
        if kind == "cmd":
            return self.command(value[1:])
        closing = {"(": ")", "{": "}", "[": "]"}.get(value)
        if closing:
            inner = self.sum()
            self.take(closing)
            return inner
        if value == "|":
            inner = self.sum()
            self.take("|")
            return sympy.Abs(inner)
        raise ParseError(f"unexpected {value!r}")

    def letter(self, name: str) -> sympy.Expr:
        if self.peek() and self.peek()[1] == "_":
            self.take()
            kind, sub = self.take()
            if sub == "{":
                parts = []
                while self.peek() and self.peek()[1] != "}":
                    parts.append(self.take()[1])
                self.take("}")
                sub = "".join(parts)
            name = f"{name}_{sub}"
        if name == "e":
            return sympy.E
        if name == "i":
            return sympy.I
        return symbol(name)

    def command(self, name: str) -> sympy.Expr:
        if name in ("frac", "dfrac", "tfrac", "cfrac"):
            num = self.group_or_digit()
            den = self.group_or_digit()
            if den == 0:
                raise ParseError("division by zero")
            return num / den
        if name == "sqrt":
            index = 2
            if self.peek() and self.peek()[1] == "[":
                self.take("[")
                index = self.sum()
                self.take("]")
            radicand = self.group_or_digit() if self.peek() and self.peek()[1] != "(" else self.atom()
            return sympy.root(radicand, index)
        if name in ("pi",):
            return sympy.pi
        if name in ("infty", "infinity", "inf"):
            return sympy.oo
        if name in GREEK:
            return symbol(name)
        if name == "log":
            return self.logarithm()
        if name == "binom":
            n, k = self.group_or_digit(), self.group_or_digit()
            if not (n.is_Integer and k.is_Integer and 0 <= n <= 1000):
                raise ParseError("binomial out of range")
            return sympy.binomial(n, k)
        if name in FUNCS:
            return FUNCS[name](self.function_argument())
        if name in ("text", "mathrm", "textbf", "mbox"):
            raise ParseError("text inside an expression")
        raise ParseError(f"unknown command \\{name}")

    def logarithm(self) -> sympy.Expr:
        base = None
        if self.peek() and self.peek()[1] == "_":
            self.take()
            base = self.group_or_digit()
        arg = self.function_argument()
        return sympy.log(arg, base) if base is not None else sympy.log(arg)

    def function_argument(self) -> sympy.Expr:
        if self.peek() and self.peek()[1] == "^":  # \sin^2 x
            raise ParseError("powers of functions are not supported")
        return self.power()

    def group_or_digit(self) -> sympy.Expr:
        """``\\frac{a}{b}`` or ``\\frac12``: a braced group or a single digit/letter."""
        token = self.peek()
        if token and token[1] == "{":
            return self.group_or_atom()
        kind, value = self.take()
        if kind == "num":
            if len(value) > 1 and value.isdigit():  # \frac12 is 1/2: split the digits
                self.tokens.insert(self.pos, ("num", value[1:]))
                return sympy.Integer(value[0])
            return sympy.Rational(value)
        if kind == "letter":
            return self.letter(value)
        if kind == "cmd":
            return self.command(value[1:])
        raise ParseError(f"unexpected {value!r}")


def parse_expr(text: str) -> sympy.Expr:
    """Parse one scalar expression; raises ParseError if it is not one."""
    tokens = tokenize(text)
    if not tokens:
        raise ParseError("empty")
    return Parser(tokens).parse()
