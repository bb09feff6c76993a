"""Exact-match answers after normalisation (case, whitespace, punctuation, articles, TeX text).

Usage:
    from distill.verify.text import check_exact
    check_exact("**Final answer:** The Pacific Ocean.", "pacific ocean")   # Verdict(True, ...)
    check_exact("It is Paris", '["Paris", "Paris, France"]')              # a JSON list of aliases

Numbers compare by value ("3.0" is "3"); "X or Y" is a hedge unless the gold itself says "or".
"""

from __future__ import annotations

import json
import re
import string
import unicodedata
from functools import lru_cache

from distill.verify.extract import after_copula, final_answer, split_alternatives
from distill.verify.numbers import parse_number
from distill.verify.verdict import Verdict

ARTICLES = re.compile(r"\b(?:a|an|the)\b")
PUNCT = str.maketrans({ch: " " for ch in string.punctuation + "\u2018\u2019\u201c\u201d\u2013\u2014"})
SHORT_WORDS = 12
LEAD_IN = re.compile(r"^(?:(?:so|thus|therefore|hence)\s*,?\s*)?(?:it|this|that)\s*(?:is|'s|was)\s+(?!not\b)", re.IGNORECASE)


def normalise_answer(text: str) -> str:
    """Lowercase, unwrap \\text{}, drop punctuation and articles, collapse whitespace."""
    text = unicodedata.normalize("NFKC", str(text))
    text = re.sub(r"\\(?:text|textbf|mathrm|mbox|emph)\s*\{([^{}]*)\}", r"\1", text)
    text = re.sub(r"\\boxed\s*\{(.*)\}", r"\1", text).replace("$", "")
    text = text.lower().translate(PUNCT)
    text = ARTICLES.sub(" ", text)
    return " ".join(text.split())


@lru_cache(maxsize=65536)
def raw_golds(gold: str) -> tuple[str, ...]:
    """One gold, or each alias of a JSON list of them."""
    text = str(gold or "").strip()
    if text.startswith("["):
        try:
            loaded = json.loads(text)
            if isinstance(loaded, list):
                return tuple(str(v) for v in loaded)
        except json.JSONDecodeError:
            pass
    return (text,)


@lru_cache(maxsize=65536)
def gold_aliases(gold: str) -> tuple[str, ...]:
    """The accepted normalised forms."""
    return tuple(a for a in (normalise_answer(v) for v in raw_golds(gold)) if a)


def same_number(gold: str, answer: str) -> bool:
    g, s = parse_number(gold), parse_number(answer)
    return g is not None and s is not None and g.value == s.value


def matches(gold: str, aliases: tuple[str, ...], answer: str) -> bool:
    return normalise_answer(answer) in aliases or any(same_number(raw, answer) for raw in raw_golds(gold))


def leading_answer(answer: str) -> str | None:
    """"Yes, because ..." -> "Yes": the answer before a comma or "because", when nothing after it
    negates, hedges or offers another answer (so "Yes, or maybe no" is not "Yes")."""
    parts = re.split(r"\s*(?:[,;:]|\s-\s|\.\s|\bbecause\b|\bsince\b)\s*", answer.strip(), maxsplit=1)
    if len(parts) < 2 or not parts[0] or len(parts[0].split()) > 4:
        return None
    if re.search(r"\b(?:not|no|never|n't|or|but|however|maybe|might|perhaps|wrong|incorrect)\b", parts[1], re.IGNORECASE):
        return None
    return parts[0]


def check_exact(response: str | None, gold: str) -> Verdict:
    """Normalised text equality against the gold (or any of its aliases)."""
    aliases = gold_aliases(gold)
    if not aliases:
        return Verdict(None, None, "unparseable_gold")
    extraction = final_answer(response)
    if extraction.status == "no_answer":
        lines = [line for line in response.strip().splitlines() if line.strip()]
        last = lines[-1].strip() if lines else ""
        if len(last.split()) > SHORT_WORDS:
            return Verdict(None, None, "no_answer")
        answer = last
    elif extraction.status != "ok":
        correct = None if extraction.status == "retracted" else False
        return Verdict(correct, extraction.answer, extraction.status)
    else:
        answer = extraction.answer
    answer = LEAD_IN.sub("", answer).strip()
    said = normalise_answer(answer)
    if not said:
        return Verdict(None, answer, "no_answer")
    if matches(gold, aliases, answer):
        return Verdict(True, answer, "correct")
    if extraction.status == "no_answer" and matches(gold, aliases, after_copula(answer)):
        return Verdict(True, after_copula(answer), "correct")  # "The sorted word is: aelpp"
    head = leading_answer(answer)
    if head and matches(gold, aliases, head):
        return Verdict(True, head, "correct")  # "Yes, because 9 is odd." / "Paris, France"
    if len(split_alternatives(answer)) > 1:
        return Verdict(False, answer, "hedged")
    return Verdict(False, answer, "wrong_answer")
