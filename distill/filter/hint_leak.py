"""Does a rationalized trace give away that its writer was shown the answer? (STaR's hint leak)

Usage:
    from distill.filter.hint_leak import hint_leak
    hint_leak("We are told the answer is 12, so ...", answer="12", question="Compute 3 * 4.")
    # -> 'says it was given the answer: "We are told the answer"'
    hint_leak("3 * 4 = 12.", answer="12", question="Compute 3 * 4.")          # -> None

A rationalized trace is written with the reference answer in the prompt and trained *without* it,
so a trace that mentions the hint ("the hint says", "working backwards from the given answer") or
states the answer before doing any work teaches the student to produce answers from nowhere.
Telling the teacher not to mention the hint is not enough (it makes anchoring worse, Peng et al.
2026): this check reads the trace itself. Pure: no I/O, no state.
"""

from __future__ import annotations

import re
from fractions import Fraction

__all__ = ["hint_leak"]

# Phrases that only a writer who was handed the answer would use. Each is matched case-insensitively
# on the reasoning (and the final content), anywhere in it.
_ADMISSIONS = [
    r"\b(?:we|i|you)(?:'re|'m| are| am| were| was| have been| had been)? (?:told|given|shown|provided|handed)\b"
    r"[^.\n]{0,40}\b(?:answer|result|solution)\b",
    r"\b(?:the|a|this|that|given|provided) hint\b",
    r"\bhint (?:says|said|states|stated|tells|told|is|was|gives|gave|suggests|indicates)\b",
    r"\b(?:as|per) (?:the )?hint(?:ed)?\b",
    r"\bhinted\b",
    r"\b(?:given|provided|expected|reference|target|supplied|stated|known|official|gold) (?:final |correct )?"
    r"(?:answer|solution|result)\b",
    r"\bwork(?:ing|ed)? backwards? from (?:the )?(?:given |provided |expected |known |final |correct |target )?"
    r"(?:answer|result)\b",
    r"\b(?:answer|result) (?:is|was) (?:already )?(?:given|provided|supplied|known|stated)\b",
    r"\bwe (?:already )?know (?:that )?the (?:final |correct |right )?answer\b",
    r"\b(?:matches|match|matching|consistent with|agrees with|in line with) (?:the )?"
    r"(?:given|expected|provided|hinted|reference|known|stated|target) (?:answer|result|value)\b",
    r"\b(?:to|must|should|need to|have to) (?:justify|confirm|verify|reach|arrive at|get to|end up with) "
    r"(?:the )?(?:given|provided|expected|stated|known|target) ",
]
_ADMISSION = re.compile("|".join(f"(?:{p})" for p in _ADMISSIONS), re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:[.,]\d+)*(?:/\d+)?(?![\w])")
_OPENING_CHARS = 240
# The first sign of work: an equation, a comparison, or an operation between two numbers.
_WORK = re.compile(r"[=<>≈≤≥]|\d\s*[-+*/×÷^]\s*\(?\d")


def hint_leak(reasoning: str | None, answer: str, question: str = "", hint: str | None = None,
              content: str | None = None) -> str | None:
    """Why the trace shows it was given ``answer`` (a short detail), or None when it reads clean.

    Looks for (1) the hint's own words copied into the trace, (2) phrases that admit a given answer,
    (3) the answer stated in the trace's first sentence, before any work, when the question itself
    does not contain it (so "Which is greater, 9.11 or 9.8?" may name 9.8 at once).
    """
    text = "\n".join(part for part in (reasoning, content) if part)
    if not text.strip():
        return None
    if hint and _copies_hint(text, hint, answer):
        return "copies the hint into the trace"
    found = _ADMISSION.search(text)
    if found:
        return f'says it was given the answer: "{found.group(0).strip()}"'
    opening = _opening(reasoning or text)
    if answer.strip() and _mentions(opening, answer) and not _mentions(question, answer):
        return f"states the answer {answer.strip()!r} before any work"
    return None


def _copies_hint(text: str, hint: str, answer: str = "") -> bool:
    """Five words of the hint in a row appear in the trace. Windows holding the answer are left out:
    "so the correct answer is 72" is how a clean trace ends, not a copy of "Hint: the correct answer is 72"."""
    gold = set(re.findall(r"\w+", answer.lower()))
    runs, run = [], []
    for word in re.findall(r"\w+", hint.lower()):
        if word in gold:
            runs.append(run)
            run = []
        else:
            run.append(word)
    runs.append(run)
    flat = " ".join(re.findall(r"\w+", text.lower()))
    return any(" ".join(words[i:i + 5]) in flat for words in runs for i in range(len(words) - 4))


def _opening(text: str) -> str:
    """The trace's first sentence up to its first sign of work: what is said before any work is done."""
    first = _SENTENCE_END.split(text.strip(), maxsplit=1)[0][:_OPENING_CHARS]
    work = _WORK.search(first)
    return first[:work.start()] if work else first


def _mentions(text: str, answer: str) -> bool:
    """``answer`` appears in ``text``: numerically for numbers, as a whole word otherwise."""
    if not text:
        return False
    gold = answer.strip().strip("$").strip()
    value = _as_number(gold)
    if value is not None:
        return any(_as_number(n) == value for n in _NUMBER.findall(text))
    return re.search(rf"(?<!\w){re.escape(gold)}(?!\w)", text, re.IGNORECASE) is not None


def _as_number(text: str) -> Fraction | None:
    try:
        return Fraction(text.replace(",", ""))
    except (ValueError, ZeroDivisionError):
        return None
