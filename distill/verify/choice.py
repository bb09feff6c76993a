"""Multiple-choice answers: a letter A-J in every common shape, or the option's text.

Usage:
    from distill.verify.choice import check_choice
    check_choice("Not A: the answer is (c).", "C")                  # Verdict(True, "C", "correct")
    check_choice("The answer is Paris.", "B", {"A": "Rome", "B": "Paris"})

The last stated letter counts; a letter after "not" is skipped ("not A, it's C" is C); "A or C"
is a hedge; the option text counts when the options are known (passed in, or in the gold "B) Paris").
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence

from distill.verify.extract import find_boxes
from distill.verify.text import normalise_answer
from distill.verify.verdict import Verdict

LETTERS = "ABCDEFGHIJ"
_L = r"[A-Ja-j]"
# A letter must stand alone: "(C)", "C)", "C.", "C:", "**C**", "C" at a line end; a lowercase
# letter only before punctuation or the end, so the article "a" in "a prime" is never read.
_UPPER_END = r"(?![A-Za-z0-9'\u2019-])"
_LOWER_END = r"(?=\s*(?:[).:,*]|$|\n))"
# Lead words are case-insensitive, the letter itself is not ("the answer is a prime" has no letter).
ANCHORED_RE = re.compile(
    r"(?P<lead>\b(?i:final\s+answer|correct\s+(?:answer|option|choice)|answer|option|choice|i\s+(?:choose|pick|select|go\s+with)"
    r"|i'd\s+(?:choose|pick|go\s+with))\b(?i:\s+(?:is|would\s+be|will\s+be|should\s+be))?\s*[:=]?\s*\**\s*)"
    r"(?P<neg>(?i:not|n't)\s+)?(?i:(?:option|choice|letter)\s+)?\**\(?(?P<letter>[A-J]"
    + _UPPER_END + r"|[a-j]" + _LOWER_END + r")\)?"
)
CONCLUDE_RE = re.compile(
    r"\b(?i:thus|so|therefore|hence|it's|it\s+is)\s*,?\s*(?i:the\s+answer\s+is\s+)?\**\(?(?P<letter>[A-J])\)?\**\s*[.!]?\s*$",
    re.MULTILINE,
)
LINE_RE = re.compile(r"^\s*\**\s*\(?(?P<letter>[A-J])(?:\)|\.|:|\*\*|\))(?:\s|$)|^\s*\**\(?(?P<alone>" + _L + r")\)?\**\s*\.?\s*$", re.MULTILINE)
PAREN_RE = re.compile(r"(?<![\w(])\((?P<letter>[A-J])\)(?!\w)")
NEGATION_BEFORE = re.compile(r"(?:\bnot|n't|\bnor|\bexclude|\brule\s+out|\beliminate)\s+(?:option\s+|choice\s+)?\(?$", re.IGNORECASE)
HEDGE_AFTER = re.compile(r"^\)?\s*(?:or|and/or|/)\s*(?:maybe\s+|perhaps\s+|possibly\s+)?(?:option\s+)?\(?[A-J]\b", re.IGNORECASE)


def parse_gold(gold: str) -> tuple[str | None, str | None]:
    """The gold letter and, if given ("B) Paris", "(B) Paris", "B. Paris"), the option text."""
    text = str(gold or "").strip()
    boxes, _ = find_boxes(text)
    if boxes:
        text = boxes[-1][2]
    text = re.sub(r"^\\text\{(.*)\}$", r"\1", text).strip()
    match = re.match(r"^\(?([A-Ja-j])\)?(?:\s*[.):]\s*(.*))?$", text, re.DOTALL)
    if not match:
        return None, None
    return match.group(1).upper(), (match.group(2) or "").strip() or None


def option_texts(options: Sequence[str] | dict | None, gold_letter: str, gold_text: str | None) -> dict[str, str]:
    """Letter -> normalised option text from a list, a dict, or the gold itself."""
    texts: dict[str, str] = {}
    if isinstance(options, dict):
        texts = {str(k).strip().upper(): str(v) for k, v in options.items()}
    elif options:
        texts = {LETTERS[i]: re.sub(r"^\(?[A-J]\)?[.):]\s*", "", str(v)) for i, v in enumerate(options[:10])}
    if gold_text and gold_letter not in texts:
        texts[gold_letter] = gold_text
    return {k: normalise_answer(v) for k, v in texts.items() if normalise_answer(v)}


def candidates(text: str) -> list[tuple[int, str, str]]:
    """(position, letter, status) for each stated letter; status ok | negated | hedged.

    Stated answers (boxes, "the answer is", "thus C") outrank bare mentions ("(A) fails", a line
    starting "A) 3"): when there is any stated one, the bare mentions are ignored.
    """
    found: list[tuple[int, str, str]] = []
    for start, end, content in find_boxes(text)[0]:
        letter = re.fullmatch(r"\s*(?:\\text(?:bf)?\{)?\s*\(?([A-Ja-j])\)?(?:[.):][^}]*)?\s*\}?\s*", content)
        if letter:
            found.append((start, letter.group(1).upper(), "ok"))
    for match in ANCHORED_RE.finditer(text):
        status = "negated" if match.group("neg") else "ok"
        found.append((match.start("letter"), match.group("letter").upper(), status))
    for match in CONCLUDE_RE.finditer(text):
        found.append((match.start("letter"), match.group("letter"), "ok"))
    if not found or all(status == "negated" for _, _, status in found):
        mentions = [
            (match.start(key), match.group(key).upper(), "ok")
            for pattern in (LINE_RE, PAREN_RE)
            for match in pattern.finditer(text)
            for key in ["letter" if match.group("letter") else "alone"]
        ]
        if len({letter for _, letter, _ in mentions}) > 1:
            return found  # only bare mentions of several letters (a list of the options): no answer
        found += mentions
    marked = []
    for pos, letter, status in sorted(set(found)):
        if status == "ok" and NEGATION_BEFORE.search(text[max(0, pos - 25) : pos]):
            status = "negated"
        if status == "ok" and HEDGE_AFTER.match(text[pos + 1 : pos + 30]):
            status = "hedged"
        marked.append((pos, letter, status))
    return marked


def check_choice(response: str | None, gold: str, options: Sequence[str] | dict | None = None) -> Verdict:
    """Grade a multiple-choice response against a gold letter."""
    gold_letter, gold_text = parse_gold(gold)
    if gold_letter is None:
        return Verdict(None, None, "unparseable_gold")
    if response is None or not response.strip():
        return Verdict(False, None, "empty")
    _, unclosed = find_boxes(response)
    found = candidates(response)
    if unclosed >= 0 and (not found or unclosed > found[-1][0]):
        return Verdict(False, None, "truncated")
    letter, status = last_letter(found)
    if letter is None:
        letter = letter_from_text(response, option_texts(options, gold_letter, gold_text))
        if letter is None:
            return Verdict(None, None, status or "no_answer")
        status = "ok"
    if status != "ok":
        return Verdict(False, letter, status)
    return Verdict(letter == gold_letter, letter, "correct" if letter == gold_letter else "wrong_answer")


def last_letter(found: list[tuple[int, str, str]]) -> tuple[str | None, str | None]:
    """The last letter that is not negated; a trailing hedge or negation wins over earlier letters."""
    if not found:
        return None, None
    _, letter, status = found[-1]
    if status == "hedged":
        return letter, "hedged"
    for _, letter, status in reversed(found):
        if status == "ok":
            return letter, "ok"
    return found[-1][1], "negated"


def letter_from_text(response: str, texts: dict[str, str]) -> str | None:
    """The option whose text is the response's answer (its last line, or an "answer is" phrase)."""
    if not texts:
        return None
    lines = [line for line in response.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    anchored = re.search(r"answer\s*(?:is|:)\s*(.+)$", response, re.IGNORECASE | re.MULTILINE)
    for candidate in filter(None, [anchored.group(1) if anchored else None, last]):
        said = normalise_answer(candidate.strip(string.whitespace + "*."))
        hits = [k for k, v in texts.items() if said == v]
        if len(hits) == 1:
            return hits[0]
    return None
