"""check(response, gold, kind): dispatch to the kind's checker; the numeric kinds live here.

Usage:
    from distill.verify.checker import check
    check("#### 1,234\\nNote: 3 boxes left", "1234", "gsm8k")   # Verdict(True, "1,234", "correct")
    check("it is 72 or 76", "72", "gsm8k")                      # Verdict(False, "72 or 76", "hedged")

Reasons: correct, wrong_answer, no_answer, empty, hedged, negated, truncated, retracted,
unparseable_gold, checker_error, timeout (and, for code, the sandbox's
timeout/memory/crashed/forbidden).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from functools import lru_cache

from distill.artifacts import KINDS
from distill.verify.extract import HEDGE_RE, SENTENCE_END_RE, Extraction, fallback_answer, final_answer, split_alternatives
from distill.verify.guard import TimeLimit, time_limit
from distill.verify.mathexpr import Scalar, Seq, Value, as_expr, numbers_equal, parse_value, values_equal
from distill.verify.numbers import Num, number_tokens, parse_number
from distill.verify.sentence import CONCLUSION_RE, NEGATION_RE, NUMBER_WORD_RE, TEX_SPAN_RE, copula_clause, joined_parts, sentence_number, spelled_number, unwrap_tex, words_number
from distill.verify.verdict import Verdict

log = logging.getLogger(__name__)
KINDS_CHECKED = KINDS  # one list of answer kinds: distill.artifacts
CHECK_SECONDS = 3.0  # a whole check; one sympy comparison inside it gets 1 s (mathexpr)
# Statuses of an extraction that settle the verdict before any comparison.
SETTLED = {"empty": False, "truncated": False, "negated": False, "hedged": False, "retracted": None, "no_answer": None}


def check(
    response: str | None,
    gold: str,
    kind: str,
    *,
    options: Sequence[str] | dict | None = None,
    code_timeout: float = 5.0,
) -> Verdict:
    """Check ``response`` against ``gold`` for ``kind``.

    ``options`` (choice only): the option texts, a list in letter order or a {letter: text} dict,
    so an answer given as the option's text counts. ``code_timeout``: seconds for a code run.

    Never raises for odd input (only for an unknown kind): a checker failure is ``correct=None``
    with reason ``checker_error``, so one strange trace cannot stop a filter run.
    """
    if kind not in KINDS_CHECKED:
        raise ValueError(f"unknown kind {kind!r} (expected one of {', '.join(KINDS_CHECKED)})")
    if kind == "code":  # the sandbox has its own clock; an alarm must not interrupt its wait
        return dispatch(response, gold, kind, options, code_timeout)
    try:
        with time_limit(CHECK_SECONDS):
            return dispatch(response, gold, kind, options, code_timeout)
    except TimeLimit:
        log.debug("checking a %s answer took over %ss", kind, CHECK_SECONDS)
        return Verdict(None, None, "timeout")
    except (ValueError, TypeError, ArithmeticError, RecursionError, AttributeError, IndexError, KeyError):
        log.debug("checker failed on a %s answer", kind, exc_info=True)
        return Verdict(None, None, "checker_error")


def dispatch(response: str | None, gold: str, kind: str, options, code_timeout: float) -> Verdict:
    if kind == "math":
        return check_math(response, gold)
    if kind == "gsm8k":
        return check_gsm8k(response, gold)
    if kind == "choice":
        from distill.verify.choice import check_choice

        return check_choice(response, gold, options)
    if kind == "exact":
        from distill.verify.text import check_exact

        return check_exact(response, gold)
    if kind == "code":
        from distill.verify.code import check_code

        return check_code(response, gold, timeout=code_timeout)
    raise AssertionError(kind)


def settled(extraction: Extraction) -> Verdict | None:
    """The verdict for an extraction that cannot be compared (empty, truncated, negated...)."""
    if extraction.status in SETTLED:
        return Verdict(SETTLED[extraction.status], extraction.answer, extraction.status)
    return None


def unbalanced(text: str) -> bool:
    opened = text.count("(") + text.count("[")
    return text.count("{") > text.count("}") or opened > text.count(")") + text.count("]")


@lru_cache(maxsize=65536)
def gold_math(gold: str) -> Value | None:
    """Parse a math gold once (the filter checks many samples per problem)."""
    if gold is None or not str(gold).strip():
        return None
    gold = str(gold)
    boxed = final_answer(gold)
    if boxed.source == "box" and boxed.status == "ok":
        gold = boxed.answer
    if unbalanced(gold):
        return None
    return parse_value(gold)


def is_text(value: Value | None) -> bool:
    """Prose rather than a value ("Therefore, Lara read 128 pages" parses as a list of two texts)."""
    if isinstance(value, Seq) and value.kind == "assign":  # "E(2020, 1993) = 76": the name may be any text
        return is_text(value.items[1])
    if isinstance(value, Seq):
        return any(is_text(item) for item in value.items)
    return value is None or bool(value.text)


def is_multi(value: Value | None) -> bool:
    return isinstance(value, Seq) and value.kind in ("list", "set") and len(value.items) > 1


def check_math(response: str | None, gold: str) -> Verdict:
    """LaTeX or plain math answers; the last box (unless retracted), else an anchor, else a fallback."""
    gold_value = gold_math(gold)
    if gold_value is None:
        return Verdict(None, None, "unparseable_gold")
    extraction = final_answer(response)
    if extraction.status == "no_answer":
        extraction = fallback_answer(response)
    verdict = settled(extraction)
    if verdict:
        return verdict
    answer = extraction.answer
    if extraction.group and is_multi(gold_value):  # "\\boxed{3} and \\boxed{4}" for a two-part gold
        answer = ", ".join(extraction.group)
    if unbalanced(answer):
        return Verdict(False, answer, "truncated")
    answer, pred = math_answer(answer, gold_value, extraction.source in ("box", "section"))
    if answer is None:
        return Verdict(False, extraction.answer, "hedged")
    if pred is None or (is_text(pred) and not is_text(gold_value)):
        return Verdict(None, extraction.answer, "no_answer")
    if values_equal(gold_value, pred):
        return Verdict(True, extraction.answer, "correct")
    return Verdict(False, extraction.answer, "wrong_answer")


def math_answer(answer: str, gold_value: Value, is_marked: bool) -> tuple[str | None, Value | None]:
    """The value an extracted answer states: lists joined by "and", units and prose around it dropped.

    ``is_marked``: the answer was boxed or under "# Answer", so it is not searched for in prose.
    Returns (None, None) for a hedge ("72 or 76" where one value is asked for).
    """
    sentence = answer
    if not is_marked and has_prose(answer):  # "The values of $x$ are $x = 5$ and $x = -2$"
        answer = copula_clause(answer)
    alternatives = split_alternatives(answer)
    if len(alternatives) > 1:
        if not is_multi(gold_value):
            return None, None
        answer = ", ".join(alternatives)
    answer = joined_parts(answer) or unwrap_tex(answer)  # "2 \\text{ and } -6" is the list "2, -6"
    if isinstance(gold_value, Scalar) and gold_value.num is not None and gold_value.num.is_decimal:
        answer = APPROX_RE.sub("", answer)  # the gold is rounded: "approximately 18.8°" states 18.8
    pred = stated_value(parse_value(answer), gold_value)
    if not is_text(pred) or is_text(gold_value):
        return answer, pred
    trimmed = re.sub(r"(?:\s+[A-Za-z][a-z]+\.?)+$", "", answer)  # "5 apples" -> "5"
    if trimmed != answer and re.search(r"[\d\\]", trimmed) and not is_text(parse_value(trimmed)):
        return trimmed, parse_value(trimmed)
    if not is_marked and isinstance(gold_value, Scalar) and gold_value.num is not None and CONCLUSION_RE.match(sentence):
        stated = sentence_number(unwrap_tex(sentence))  # "Therefore, Lara read 128 pages on the first day."
        if stated:
            return stated[0], Scalar(num=stated[1])
    return answer, pred


APPROX_RE = re.compile(r"^\s*(?:approximately|about|roughly|around|nearly|\\approx|≈)\s*", re.IGNORECASE)


def has_prose(answer: str) -> bool:
    """Words outside TeX: "The value of $k$ is $-2$" (prose) vs "-2" or "\\frac{1}{2}" (a value)."""
    bare = re.sub(r"\\[a-zA-Z]+(?:\{[^{}]*\})?", " ", TEX_SPAN_RE.sub(" ", answer))
    return bool(re.search(r"[A-Za-z]{3,}", bare))


def stated_value(pred: Value | None, gold_value: Value) -> Value | None:
    """"|r - s| = 16" or "3 + 3 = 6" answers with its right side when the gold is a plain value."""
    gold_is_equation = isinstance(gold_value, Seq) and gold_value.kind in ("equation", "assign")
    if gold_is_equation or not (isinstance(pred, Seq) and pred.kind == "equation"):
        return pred
    left, right = (as_expr(side) if isinstance(side, Scalar) else None for side in pred.items)
    if left is None or right is None or right.free_symbols:
        return pred
    if left.free_symbols and right != 0:  # "a + b = 17"; "x^2 - 4 = 0" stays an equation
        return pred.items[1]
    if not left.free_symbols and values_equal(pred.items[0], pred.items[1]):  # "3 + 3 = 6"
        return pred.items[1]
    return pred


@lru_cache(maxsize=65536)
def gold_number(gold: str) -> Num | None:
    """A GSM8K gold: "72", "1,234", "$5", or a whole solution ending in "#### 72"."""
    if gold is None:
        return None
    text = str(gold)
    if "####" in text:
        text = text.rsplit("####", 1)[1]
    num = parse_number(text)
    if num is not None:
        return num
    tokens = number_tokens(text)
    return tokens[0][2] if len(tokens) == 1 else None


def answer_number(answer: str) -> tuple[Num | None, str]:
    """The number an extracted answer states, and a reason word if it states none or several."""
    num = parse_number(answer)
    if num is not None:
        return num, "ok"
    alternatives = split_alternatives(answer)
    if len(alternatives) > 1:
        values = {n.value for alt in alternatives for _, _, n in number_tokens(alt)[:1]}
        if len(values) > 1:
            return None, "hedged"
    if "=" in answer:  # "5 + 3 = 8": the result is after the last equals sign
        answer = answer.rsplit("=", 1)[1]
    if NUMBER_WORD_RE.search(answer):  # "twelve", "1 million", "2 and a half"
        spelled = words_number(answer.strip().lstrip("$")) or words_number(copula_clause(answer).lstrip("$"))
        if spelled is not None:
            return spelled, "ok"
    tokens = number_tokens(answer)
    if not tokens:
        return None, "no_answer"
    return tokens[0][2], "ok"


def check_gsm8k(response: str | None, gold: str) -> Verdict:
    """Grade-school numbers: currency, units, separators, ``#### N`` (notes after it ignored)."""
    gold_num = gold_number(gold)
    if gold_num is None:
        return Verdict(None, None, "unparseable_gold")
    extraction = final_answer(response)
    if extraction.status == "no_answer":
        return last_number_verdict(response, gold_num)
    verdict = settled(extraction)
    if verdict:
        return verdict
    if unbalanced(extraction.answer):
        return Verdict(False, extraction.answer, "truncated")
    num, status = answer_number(extraction.answer)
    if num is None:
        return Verdict(False if status == "hedged" else None, extraction.answer, status)
    return number_verdict(gold_num, num, extraction.answer)


def last_number_verdict(response: str, gold_num: Num) -> Verdict:
    """No anchor and no box: GSM8K's convention, the last number of the response."""
    tokens = number_tokens(response)
    if not tokens:
        clause = copula_clause(response.strip().splitlines()[-1]) if response.strip() else ""
        spelled = spelled_number(clause)
        if spelled is not None:  # "So she has twelve."
            return number_verdict(gold_num, spelled, clause)
        return Verdict(None, None, "no_answer")
    last_paragraph = response.strip().rsplit("\n", 1)[-1]
    if re.search(r"\d\s+or\s+\$?\d", last_paragraph):
        return Verdict(False, last_paragraph.strip(), "hedged")
    sentences = [s for s in SENTENCE_END_RE.split(last_paragraph.strip()) if re.search(r"\d", s)]
    if sentences and HEDGE_RE.search(sentences[-1]):
        return Verdict(False, sentences[-1].strip(), "hedged")
    if sentences and re.search(r"\b(?:is|are|was)\s+not\b|\b(?:isn't|aren't|wasn't)\b", sentences[-1], re.IGNORECASE):
        return Verdict(False, sentences[-1].strip(), "negated")  # "So 15 is not the answer."
    stated = sentence_number(sentences[-1]) if sentences else None
    if stated:  # "So Maria reads 45 pages in 3 days.": 45, not the last number
        return number_verdict(gold_num, stated[1], stated[0])
    if sentences and CONCLUSION_RE.match(sentences[-1]) and not NEGATION_RE.search(sentences[-1]):
        return Verdict(None, sentences[-1].strip(), "no_answer")  # "So, 12 apples and 5 oranges.": which?
    _, written, num = tokens[-1]
    return number_verdict(gold_num, num, written)


def number_verdict(gold_num: Num, num: Num, extracted: str) -> Verdict:
    if numbers_equal(gold_num, num):
        return Verdict(True, extracted, "correct")
    return Verdict(False, extracted, "wrong_answer")
