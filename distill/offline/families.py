"""The built-in offline teacher: procedural task families, each with a genuine step-by-step solver.

Usage:
    from distill.offline import families as offline
    problems = offline.make_problems("letter_count", 200, seed=0)             # training problems
    held_out = offline.make_problems("letter_count", 50, seed=0, split="eval")  # never in training
    dev = offline.make_problems("letter_count", 30, seed=0, split="dev")        # for choosing settings
    # mixed and weighted sets, and the specs (offline:train?n=...&mix=...): distill.offline.sets
    reasoning, content = offline.respond(messages, random.Random(0), mistake_rate=0.15)

It is a teacher for trying the pipeline with no API key and for tests, not a model: it recognises
the question of each family in the last user message, solves it by the family's procedure (spell
and count, align the decimals, reduce the expression), and writes that procedure as a short,
regular trace ending in ``\\boxed{ANSWER}``. With probability ``mistake_rate`` it makes one
deliberate, realistic mistake, so the filter has real work:

- ``answer``: the mistake propagates and the final answer is wrong (the answer check catches it);
- ``step``: a false step while the final answer stays right (the "right answer, wrong rationale"
  case): a false arithmetic claim, a padding slip (``9.8 = 9.08``), a misspelt letter that is
  not the one counted. The filter's ``bad_step`` (arithmetic) and ``unsound_step`` (comparisons
  and the families' own checks, distill.offline.checks) checks catch them.

Train, dev and held-out evaluation problems are disjoint by construction: every problem has a
split key (the word, the pair of numbers, the expression) and a key belongs to exactly one split by
its hash, so no held-out or dev word, pair or expression can ever appear in training, whatever the
seeds.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable
from fractions import Fraction
from typing import Literal, get_args

from distill.artifacts import Problem
from distill.records import stable_id

FAMILIES = ("letter_count", "decimal_compare", "arithmetic")
# How traces are written (compared on offline:dev, README):
# - "plain": one letter a line; decimals place by place ("Tenths: 8 > 1"), the first default.
# - "positions": numbered letters ("3. r -> 1"), each digit read right after its number
#   ("Tenths: 9.11 has 1, 9.80 has 8, 1 < 8"). Arithmetic is written as in "plain" (adding
#   two-digit terms tens first, then ones, measured worse on offline:dev: the student split terms
#   that needed no split and lost its place).
# - "compact": letters as in "positions"; decimals padded to the same places, then compared whole,
#   the answer first ("9.8 = 9.80", "9.80 > 9.11"): a third of the tokens, and no place-by-place
#   reading for a 135M student to slip on (trained on bare answers it compares decimals well,
#   ablation README).
# - "mixed": a teacher whose samples of one problem differ (for selection among them, README,
#   learnability): each response draws one of the three styles above from its own seeded RNG and,
#   each with probability 1/2, writes a filler sentence after every line (the long, rambling shape
#   small students learn worse from, Li et al. 2502.12143) and leaves out arithmetic's "Now:" lines.
TraceStyle = Literal["plain", "positions", "compact", "mixed"]
STYLES: tuple[str, ...] = get_args(TraceStyle)
WRITTEN = STYLES[:3]  # the styles a trace is written in; "mixed" draws one of them per response
FILLER = "Let me make sure I am following the question carefully before I go on."
SPLITS = ("train", "dev", "eval")
EVAL_SHARE = 5  # one key in EVAL_SHARE belongs to the held-out split
DEV_SHARE = 10  # one key in DEV_SHARE (of those not held out) belongs to the dev split
SOURCE = "distill-offline"

LETTER_Q = re.compile(r"How many ([A-Za-z])'s are in (?:the word )?\"?([A-Za-z]+)\"?\s*\?", re.I)
DECIMAL_Q = re.compile(r"Which is (greater|larger|bigger|smaller), (\d+(?:\.\d+)?) or (\d+(?:\.\d+)?)\s*\?", re.I)
ARITH_Q = re.compile(r"(?:Compute|Calculate|Evaluate|What is) (\d+(?:\s*[-+*/]\s*\d+)+)\s*[.?=]", re.I)
_TOKEN = re.compile(r"\d+|[-+*/]")
_SPELT = re.compile(r"(?:\d+\. )?[A-Za-z](?: -> \d+)?$")  # one spelled letter: "r", "3. r -> 1"


def split_of(key: str) -> str:
    """The split ('train', 'dev' or 'eval') a problem key belongs to, fixed by its hash.

    The held-out rule is the one of the first release (so its held-out problems are unchanged);
    dev takes one key in ten of the rest.
    """
    digest = int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:8], 16)
    if digest % EVAL_SHARE == 0:
        return "eval"
    return "dev" if digest % DEV_SHARE == 1 else "train"


# ---------------------------------------------------------------- letter counting

_WORDS: list[str] | None = None


def _reasoning_gym_text(name: str) -> str:
    # Read the file without importing reasoning_gym, whose import loads every generator (~4 s).
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("reasoning_gym")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("reasoning-gym is needed for the offline letter-counting words")
    return (Path(spec.submodule_search_locations[0]) / "data" / name).read_text(encoding="utf-8")


def _words() -> list[str]:
    """Distinct common words of 4-10 letters from the novel reasoning-gym ships (offline, fixed)."""
    global _WORDS
    if _WORDS is None:
        text = _reasoning_gym_text("in_the_year_2889.txt")
        seen = dict.fromkeys(w.lower() for w in re.findall(r"[A-Za-z]+", text) if 4 <= len(w) <= 10)
        _WORDS = sorted(seen)
    return _WORDS


def _letter_problem(rng: random.Random, split: str) -> tuple[str, str, str] | None:
    word = rng.choice(_words())
    if split_of(word) != split:
        return None
    roll = rng.random()
    repeated = sorted({c for c in word if word.count(c) > 1})
    if roll < 0.15:  # a letter that is absent: the answer is 0
        letter = rng.choice(sorted(set("abcdefghijklmnopqrstuvwxyz") - set(word)))
    elif roll < 0.75 and repeated:
        letter = rng.choice(repeated)
    else:
        letter = rng.choice(sorted(set(word)))
    return word, f"How many {letter}'s are in {word}?", str(word.count(letter))


def _solve_letters(match: re.Match, mistake: str | None, rng: random.Random, style: str) -> tuple[str, str]:
    letter, word = match.group(1).lower(), match.group(2)
    positions = [i for i, c in enumerate(word.lower()) if c == letter]
    others = [i for i, c in enumerate(word.lower()) if c != letter]
    spelt = list(word)
    if mistake == "answer":  # a miscount: skip a matching letter, or count one that does not match
        if positions and (not others or rng.random() < 0.5):
            positions.remove(rng.choice(positions))
        else:
            positions.append(rng.choice(others))
    elif mistake == "step" and others:  # a misspelt letter that is not counted: the count stays right
        i = rng.choice(others)
        spelt[i] = rng.choice(sorted(set("abcdefghijklmnopqrstuvwxyz") - {letter, word[i].lower()}))
    lines = [f"Spell {word} and count the {letter}'s:"]
    for i, c in enumerate(spelt):  # numbered letters (all but "plain"), so the student keeps its place
        number = f"{i + 1}. " if style != "plain" else ""
        lines.append(f"{number}{c} -> {positions.index(i) + 1}" if i in positions else f"{number}{c}")
    lines.append(f"Total: {len(positions)}")
    return "\n".join(lines), f"The answer is \\boxed{{{len(positions)}}}"


# ---------------------------------------------------------------- decimal comparison

def _decimal(whole: int, digits: str) -> str:
    return f"{whole}.{digits}" if digits else str(whole)


def _decimal_problem(rng: random.Random, split: str) -> tuple[str, str, str] | None:
    roll, whole = rng.random(), rng.randint(0, 20)
    if roll < 0.45:  # the trap: the longer decimal is the smaller number (9.11 vs 9.8)
        short = rng.randint(2, 9)
        a, b = _decimal(whole, str(short)), _decimal(whole, f"{rng.randint(0, short - 1)}{rng.randint(1, 9)}")
    elif roll < 0.65:  # the longer decimal is the larger one (3.45 vs 3.2)
        short = rng.randint(1, 8)
        a, b = _decimal(whole, str(short)), _decimal(whole, f"{rng.randint(short, 9)}{rng.randint(1, 9)}")
    elif roll < 0.85:  # same number of decimals
        a, b = _decimal(whole, f"{rng.randint(0, 9)}{rng.randint(1, 9)}"), _decimal(whole, f"{rng.randint(0, 9)}{rng.randint(1, 9)}")
    else:  # different whole parts
        other = rng.choice([w for w in range(0, 21) if w != whole])
        a, b = _decimal(whole, str(rng.randint(1, 9))), _decimal(other, f"{rng.randint(0, 9)}{rng.randint(1, 9)}")
    if Fraction(a) == Fraction(b) or split_of("|".join(sorted((a, b)))) != split:
        return None
    if rng.random() < 0.5:
        a, b = b, a
    return "|".join(sorted((a, b))), f"Which is greater, {a} or {b}?", max(a, b, key=Fraction)


def _solve_decimals(match: re.Match, mistake: str | None, rng: random.Random, style: str) -> tuple[str, str] | None:
    want_smaller = match.group(1).lower() == "smaller"
    a, b = match.group(2), match.group(3)
    if Fraction(a) == Fraction(b):  # "which is greater" has no answer
        return None
    places = max(len(x.partition(".")[2]) for x in (a, b))
    pa, pb = _pad(a, places), _pad(b, places)
    if mistake == "step" and (pa, pb) == (a, b):  # nothing to pad: the slip goes into the answer
        mistake = "answer"
    lines = []
    for raw, padded in ((a, pa), (b, pb)):
        if padded != raw:  # a slip in the padding is not carried on: a false step only
            lines.append(f"{raw} = {_misplace_zero(raw, places) if mistake == 'step' else padded}")
    if style == "compact":
        # The padded numbers compared whole, the answer written first: "9.80 > 9.11". With the
        # operator fixed, the student decides at the first number, as it does when trained on bare
        # answers; in "9.11 < 9.80" order it chose the operator wrongly and the answer rightly
        # (offline:dev, README).
        answer = _decimal_answer(a, b, a if Fraction(a) > Fraction(b) else b, want_smaller, mistake)
        first, second = (pa, pb) if answer == a else (pb, pa)
        lines.append(f"{first} {'<' if want_smaller else '>'} {second}")  # false when the answer is wrong
        return _decimal_verdict(lines, answer, want_smaller)
    lines.append(f"Compare {pa} and {pb}:")
    wa, da = pa.partition(".")[::2]
    wb, db = pb.partition(".")[::2]
    names = ["Whole parts"] + [_PLACE_NAMES[i] if i < len(_PLACE_NAMES) else f"Place {i + 1}" for i in range(places)]
    for name, x, y in zip(names, [wa, *da], [wb, *db]):
        op = "=" if x == y else ">" if int(x) > int(y) else "<"
        if style == "positions":  # each digit read right after its number: copied from next door
            lines.append(f"{name}: {pa} has {x}, {pb} has {y}, {x} {op} {y}")
        else:
            lines.append(f"{name}: {x} {op} {y}")
        if op != "=":
            bigger = a if op == ">" else b
            break
    return _decimal_verdict(lines, _decimal_answer(a, b, bigger, want_smaller, mistake), want_smaller)


def _decimal_answer(a: str, b: str, bigger: str, want_smaller: bool, mistake: str | None) -> str:
    answer = (b if bigger == a else a) if want_smaller else bigger
    if mistake == "answer":  # the comparison read the wrong way round
        answer = b if answer == a else a
    return answer


def _decimal_verdict(lines: list[str], answer: str, want_smaller: bool) -> tuple[str, str]:
    lines.append(f"So {answer} is the {'smaller' if want_smaller else 'greater'}.")
    return "\n".join(lines), f"The answer is \\boxed{{{answer}}}"


_PLACE_NAMES = ("Tenths", "Hundredths", "Thousandths", "Ten-thousandths", "Hundred-thousandths")


def _pad(x: str, places: int) -> str:
    whole, _, digits = x.partition(".")
    return f"{whole}.{digits.ljust(places, '0')}" if places else whole


def _misplace_zero(x: str, places: int) -> str:
    """The classic slip: the zeros go in front of the digits (9.8 -> 9.08), a false equality."""
    whole, _, digits = x.partition(".")
    return f"{whole}.{digits.rjust(places, '0')}" if digits else f"{whole}.{'0' * (places - 1)}1"


# ---------------------------------------------------------------- multi-step arithmetic

def _arith_problem(rng: random.Random, split: str) -> tuple[str, str, str] | None:
    n_ops = rng.choice((2, 2, 3))
    ops = [rng.choice("+-") for _ in range(n_ops)]
    if rng.random() < 0.8:  # mostly problems where precedence matters; one product at most
        ops[rng.randrange(n_ops)] = "*"
    nums = [rng.randint(2, 30) for _ in range(n_ops + 1)]
    for i, op in enumerate(ops):
        if op == "*":  # times tables only: a 135M model knows them, the gain is the procedure
            nums[i], nums[i + 1] = rng.randint(2, 9), rng.randint(2, 9)
    expr = str(nums[0]) + "".join(f" {op} {n}" for op, n in zip(ops, nums[1:]))
    steps = _reduce(_tokens(expr))
    if any(value < 0 for _, _, _, value, _ in steps) or split_of(expr) != split:
        return None
    return expr, f"Compute {expr}.", str(steps[-1][3])


def _tokens(expr: str) -> list:
    return [t if t in "+-*/" else Fraction(t) for t in _TOKEN.findall(expr)]


def _apply(x: Fraction, op: str, y: Fraction) -> Fraction | None:
    if op == "/":
        return x / y if y else None
    return {"+": x + y, "-": x - y, "*": x * y}[op]


def _reduce(tokens: list, *, precedence: bool = True, slip: int = -1, delta: int = 0,
            carry: bool = True) -> list[tuple]:
    """Reduce one operation a step: [(x, op, y, stated value, tokens left)]; [] on a division by 0.

    ``slip``/``delta`` state a wrong value at that step; ``carry`` decides whether the wrong value
    is carried on (a wrong answer) or the true one is (a false step, right answer).
    ``precedence=False`` is the classic slip of working strictly left to right.
    """
    steps = []
    while len(tokens) > 1:
        ops = tokens[1::2]
        k = next((j for j, op in enumerate(ops) if op in "*/"), 0) if precedence else 0
        x, op, y = tokens[2 * k: 2 * k + 3]
        value = _apply(x, op, y)
        if value is None:
            return []
        stated = value + delta if len(steps) == slip else value
        tokens = tokens[: 2 * k] + [stated if carry else value] + tokens[2 * k + 3:]
        steps.append((x, op, y, stated, tokens))
    return steps


def _num(x: Fraction) -> str:
    return str(x.numerator) if x.denominator == 1 else f"{x.numerator}/{x.denominator}"


def _solve_arith(match: re.Match, mistake: str | None, rng: random.Random, style: str) -> tuple[str, str] | None:
    tokens = _tokens(match.group(1))
    steps = _reduce(tokens)
    if not steps:
        return None
    if mistake:
        is_mixed = len(steps) > 1 and _reduce(tokens, precedence=False)[-1][3] != steps[-1][3]
        if mistake == "answer" and is_mixed and rng.random() < 0.5:
            steps = _reduce(tokens, precedence=False)  # every step true, the answer wrong
        else:
            delta = rng.choice((-2, -1, 1, 2))
            steps = _reduce(tokens, slip=rng.randrange(len(steps)), delta=delta, carry=mistake == "answer")
    lines = []
    for x, op, y, stated, rest in steps:
        lines.append(f"{_num(x)} {op} {_num(y)} = {_num(stated)}")
        if len(rest) > 1:
            lines.append("Now: " + " ".join(t if isinstance(t, str) else _num(t) for t in rest))
    return "\n".join(lines), f"The answer is \\boxed{{{_num(steps[-1][4][0])}}}"


# ---------------------------------------------------------------- problems and responses

_MAKERS: dict[str, Callable] = {
    "letter_count": _letter_problem, "decimal_compare": _decimal_problem, "arithmetic": _arith_problem}
_SOLVERS: tuple[tuple[re.Pattern, Callable], ...] = (
    (LETTER_Q, _solve_letters), (DECIMAL_Q, _solve_decimals), (ARITH_Q, _solve_arith))


def make_problems(family: str, n: int, seed: int, split: str = "train") -> list[Problem]:
    """``n`` distinct Problem records of one family, reproducible by ``seed``, all from ``split``."""
    if family not in _MAKERS:
        raise ValueError(f"unknown family {family!r} (expected one of {', '.join(FAMILIES)})")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r} (expected one of {', '.join(SPLITS)})")
    # the seed stream is offset per split and family, so eval and train draws are unrelated
    rng = random.Random(f"{family}:{split}:{seed}")
    problems: dict[str, dict] = {}
    for _ in range(n * 200):
        if len(problems) == n:
            break
        made = _MAKERS[family](rng, split)
        if made is None:
            continue
        key, question, answer = made
        if question not in problems:
            problems[question] = {"id": stable_id(question, prefix=family), "question": question,
                                  "answer": answer, "kind": "math", "source": SOURCE,
                                  "family": family, "split": split, "split_key": key}
    if len(problems) < n:
        raise ValueError(f"{family}: only {len(problems)} distinct {split} problems, asked for {n}")
    return list(problems.values())


def family_of(question: str) -> str | None:
    """The family whose question pattern ``question`` matches, or None."""
    for (pattern, _), family in zip(_SOLVERS, FAMILIES):
        if pattern.search(question):
            return family
    return None


def solve(question: str, mistake: str | None = None, rng: random.Random | None = None,
          style: str = "plain") -> tuple[str, str] | None:
    """(reasoning, content) for a recognised question; ``mistake`` in None | "step" | "answer";
    ``style`` one of :data:`STYLES`."""
    if style not in STYLES:
        raise ValueError(f"unknown trace style {style!r} (expected one of {', '.join(STYLES)})")
    rng = rng or random.Random(0)
    if style == "mixed":  # the shape is drawn first, so it varies with the response's RNG alone
        style, is_wordy, is_terse = rng.choice(WRITTEN), rng.random() < 0.5, rng.random() < 0.5
        answer = solve(question, mistake, rng, style)
        return answer and (reshape(answer[0], is_wordy, is_terse), answer[1])
    for pattern, solver in _SOLVERS:
        match = pattern.search(question)
        if match:
            return solver(match, mistake, rng, style)
    return None


def reshape(reasoning: str, is_wordy: bool, is_terse: bool) -> str:
    """A trace with :data:`FILLER` after every line (wordy) and without arithmetic's "Now:" lines (terse).

    A spelled word stays one run of lines (the filler goes before and after it): the letter check
    reads the spelling as consecutive lines, and a word cut by sentences is no spelling of it."""
    lines = [line for line in reasoning.split("\n") if not (is_terse and line.startswith("Now: "))]
    out = []
    for line, after in zip(lines, [*lines[1:], ""]):
        out.append(line)
        if is_wordy and not (_SPELT.match(line) and _SPELT.match(after)):
            out.append(FILLER)
    return "\n".join(out)


def respond(messages: list[dict], rng: random.Random, mistake_rate: float,
            style: str = "plain") -> tuple[str, str] | None:
    """The offline teacher's answer to a chat request, or None when the question is not recognised.

    The question is looked for in the last user message (any prompt template around it is fine).
    With probability ``mistake_rate`` the trace has one mistake: half of them an error that makes
    the answer wrong, half a false step with the right answer. ``style``: see :data:`STYLES`.
    """
    user = next((m.get("content") for m in reversed(messages) if m.get("role") == "user"), None)
    if isinstance(user, list):  # content parts
        user = " ".join(p.get("text", "") for p in user if isinstance(p, dict))
    if not isinstance(user, str):
        return None
    family = family_of(user)
    if family is None:
        return None
    mistake = None
    if rng.random() < mistake_rate:
        mistake = "step" if rng.random() < 0.5 else "answer"
    return solve(user, mistake, rng, style)
