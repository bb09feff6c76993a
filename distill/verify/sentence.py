"""Answers written inside prose: bold spans, "X is Y" sentences, "A and B" lists, numbers in words.

Usage:
    from distill.verify.sentence import bold_answer, joined_parts, sentence_number, words_number
    bold_answer("So the total is **21** apples.")           # "21"
    joined_parts(r"\(x = 5\) and \(x = -2\)")                # "x = 5, x = -2"
    sentence_number("So Maria reads 45 pages in 3 days.")    # Num(45): "in 3" is a condition
    words_number("twelve and a half")                        # Num(Fraction(25, 2))

Real models often end without a box or an anchor phrase; these helpers find the answer in the
last sentence without guessing: when a sentence offers two candidates that are not joined as a
list, they return None and the checker says "no answer" rather than pick one.
"""

from __future__ import annotations

import re
from fractions import Fraction

from distill.verify.numbers import Num, number_tokens

BOLD_RE = re.compile(r"\*\*(?!\s)(.+?)(?<!\s)\*\*")
TEX_SPAN_RE = re.compile(r"\$\$(.+?)\$\$|\$(?!\s)([^$]*?[^\s$\\])\$|\\\((.+?)\\\)|\\\[(.+?)\\\]", re.DOTALL)
# "A and B", "A \quad \text{and} \quad B", "A, and B": the parts of one answer.
AND_RE = re.compile(r"\s*(?:\\quad|\\qquad|\\;|\\,)*\s*(?:,?\s*\\text\{\s*,?\s*and\s*\}|,?\s+and\s+|\\quad|\\qquad)\s*(?:\\quad|\\qquad)*\s*")
# A number right after one of these words is a condition of the question, not its answer.
CONDITION_WORDS = r"(?:in|for|after|per|on|at|within|over|from|every|each|than)"
UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}
TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90}
SCALES = {"hundred": 100, "thousand": 1000, "million": 10**6, "billion": 10**9, "trillion": 10**12}
FRACTIONS = {"half": Fraction(1, 2), "quarter": Fraction(1, 4), "third": Fraction(1, 3)}
NUMBER_WORD_RE = re.compile(r"\b(?:" + "|".join([*UNITS, *TENS, *SCALES, "half"]) + r")\b", re.IGNORECASE)


def bold_answer(paragraph: str) -> str | None:
    """The last bold span of a paragraph that states a value ("**21**"), not a label ("**Answer:**")."""
    spans = [m.group(1).strip() for m in BOLD_RE.finditer(paragraph)]
    values = [s for s in spans if not s.endswith(":") and re.search(r"[\d\\]", s) and len(s.split()) <= 8]
    return values[-1].strip("$ ").rstrip(".") if values else None


def unwrap_tex(text: str) -> str:
    """"are \\(x = 5\\) and \\(x = -2\\)" -> "are x = 5 and x = -2"."""
    return TEX_SPAN_RE.sub(lambda m: next(g for g in m.groups() if g is not None).strip(), text)


def copula_clause(sentence: str) -> str:
    """What a sentence says its subject is: after its last "is"/"are"/":" outside TeX (kept whole)."""
    spans: list[str] = []

    def hide(match: re.Match) -> str:
        spans.append(match.group(0))
        return f"\x00{len(spans) - 1}\x00"

    hidden = TEX_SPAN_RE.sub(hide, sentence.strip())
    parts = re.split(r"\s(?:is|are|was|were|equals|gives|measures|becomes|totals)\s|:\s|\s=\s", hidden)
    clause = parts[-1].strip().strip("*").rstrip(".").strip()
    return re.sub("\x00(\\d+)\x00", lambda m: spans[int(m.group(1))], clause)


def joined_parts(answer: str) -> str | None:
    """Several answers joined by "and" (or \\quad) as one comma list, or None if there is one part.

    Only at brace depth 0: "\\text{red and blue}" is one answer.
    """
    text, parts, start = unwrap_tex(answer), [], 0
    for match in AND_RE.finditer(text):
        before = text[: match.start()].replace("\\{", "").replace("\\}", "")
        if before.count("{") == before.count("}"):
            parts.append(text[start : match.start()])
            start = match.end()
    parts = [p.strip().strip("$").strip() for p in [*parts, text[start:]]]
    parts = [p for p in parts if p]
    return ", ".join(parts) if len(parts) > 1 else None


TOTAL_RE = re.compile(r"(?:\s+[a-z]+)?\s+(?:in\s+total|in\s+all|altogether|total)\b", re.IGNORECASE)
NEGATION_RE = re.compile(r"\b(?:not|never)\b|n't\b", re.IGNORECASE)
CONCLUSION_RE = re.compile(
    r"^\W*(?:so|thus|therefore|hence|finally|in\s+total|altogether|in\s+conclusion|the\s+(?:final\s+)?answer)\b", re.IGNORECASE
)


def sentence_number(sentence: str) -> tuple[str, Num] | None:
    """The one number a sentence states as its answer, or None when it states none or several.

    "=": the value after the last "="; otherwise numbers right after a condition word ("in 3
    days") are skipped, and exactly one candidate must remain.
    """
    if NEGATION_RE.search(sentence):  # "So x = 14 and y = 15 is not a solution."
        return None
    if "=" in sentence:
        after = number_tokens(sentence.rsplit("=", 1)[1])
        return (after[0][1], after[0][2]) if after else None
    candidates = []
    for position, written, num in number_tokens(sentence):
        scale = re.match(r"\s*(million|billion|trillion|thousand)\b", sentence[position + len(written) :], re.IGNORECASE)
        if scale and not num.is_percent:  # "1.5 million"
            written, num = written + scale.group(0), Num(num.value * SCALES[scale.group(1).lower()])
        before = sentence[:position]
        if re.search(rf"\b{CONDITION_WORDS}\s*$", before) or re.search(r"[_^{]\s*$", before):  # "\\frac{720}{K}"
            continue
        candidates.append((written, num))
    values = {num.value for _, num in candidates}
    if len(values) > 1:  # "12 apples and 5 oranges, 17 fruits in total": the total is the answer
        totals = [c for c in candidates if TOTAL_RE.match(sentence, sentence.find(c[0]) + len(c[0]))]
        return totals[0] if len(totals) == 1 else None
    return candidates[0] if values else None


def words_number(text: str) -> Num | None:
    """"twelve", "one hundred and five", "2 and a half", "1 million", "zero" as a number.

    Reads the leading number words and stops at the first other word ("twelve apples" is 12);
    None if the text does not start with one, or if two numbers follow each other ("2 and 3").
    """
    words = re.sub(r"[-,]", " ", text.lower()).split()
    total, current, last = Fraction(0), Fraction(0), ""
    for i, word in enumerate(words):
        word = word.rstrip(".")
        if word == "and" and last:
            continue
        if re.fullmatch(r"\d+(?:\.\d+)?", word) or word in UNITS:
            if last in ("unit", "fraction") or (last == "tens" and not word in UNITS):
                return None  # "2 and 3" is two numbers, not 5
            current += Fraction(word) if word[0].isdigit() else UNITS[word]
            last = "unit"
        elif word in TENS:
            if last in ("unit", "tens", "fraction"):
                return None
            current, last = current + TENS[word], "tens"
        elif word == "hundred" and last:
            current, last = current * 100, "scale"
        elif word in SCALES and last:
            total, current, last = total + current * SCALES[word], Fraction(0), "scale"
        elif word in ("a", "one") and i + 1 < len(words) and words[i + 1].rstrip(".") in FRACTIONS and last:
            continue
        elif word in FRACTIONS and last and i > 0 and words[i - 1] in ("a", "one"):
            current, last = current + FRACTIONS[word], "fraction"
        else:
            break
    return Num(total + current) if last else None


def spelled_number(sentence: str) -> Num | None:
    """The one number a sentence spells out ("He has zero apples left."), None if none or several."""
    values, run_end = set(), -1
    for match in NUMBER_WORD_RE.finditer(sentence):
        if run_end >= 0 and re.fullmatch(r"[\s-]*(?:and\s+)?(?:a\s+)?", sentence[run_end : match.start()]):
            run_end = match.end()  # "one hundred and five" is one number
            continue
        start = match.start()
        digits = re.search(r"\d[\d.]*\s+$", sentence[:start])  # "1 million": the digits belong to it
        num = words_number(sentence[digits.start() if digits else start :])
        if num is None:
            return None
        values.add(num.value)
        run_end = match.end()
    return Num(values.pop()) if len(values) == 1 else None
