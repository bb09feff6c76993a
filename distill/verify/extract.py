"""Find the final answer in a response: a # Answer section, the last box or anchor, and what surrounds it.

Usage:
    from distill.verify.extract import final_answer
    final_answer("so x = 3 ... \\boxed{\\frac{1}{2}}")   # Extraction("\\frac{1}{2}", "ok", "box")
    final_answer("\\boxed{\\frac{3")                     # Extraction(None, "truncated", "box")

The result's ``status`` is one word: ok | empty | no_answer | truncated | negated | hedged | retracted
("It might be \\boxed{5}" is hedged, "The answer is not \\boxed{5}" negated). Alternatives ("72 or
76") are left to the kind checkers, which know whether the gold itself is a list.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from distill.verify.sentence import bold_answer, copula_clause

BOX_RE = re.compile(r"\\(?:boxed|fbox|framebox)\s*(?=[{ ])")
# "the final answer is X", "Answer: X", "**Answer**: X"; group "body" runs to the end of the line.
ANCHOR_RE = re.compile(
    r"(?:\b(?:final\s+answer|the\s+answer|my\s+answer|answer|result|solution)\b"
    r"(?:\s+(?:to\s+(?:the|this)\s+(?:question|problem)|for\s+(?:the|this)\s+\w+))?"
    r"\s*(?:\*\*)?\s*(?:is|would\s+be|will\s+be|should\s+be|equals|[:=])[ \t]*(?:\*\*)?:?"
    r"|^\s*#{4}(?!#))[ \t]*(?=(?P<body>[^\n]*))",  # a lookahead: "not 15; the answer is 16" has two
    re.IGNORECASE | re.MULTILINE,
)
NEGATED_RE = re.compile(r"^\s*(?:not|n't|never|definitely\s+not)\b", re.IGNORECASE)
RETRACT_RE = re.compile(
    r"\b(?:(?:that|this|it|which)(?:'s|\s+is|\s+was)\s+(?:wrong|incorrect|not\s+(?:right|correct))"
    r"|(?:my|this|that|the\s+above)\s+answer\s+is\s+(?:wrong|incorrect)"
    r"|i\s+made\s+(?:a|an)\s+(?:mistake|error)|scratch\s+that"
    r"|isn't\s+(?:right|correct)|let\s+me\s+(?:redo|recompute|recalculate|start\s+over))",
    re.IGNORECASE,
)
# Around the final answer: "It might be \\boxed{5}, but I am not sure." is a hedge, not an answer.
HEDGE_RE = re.compile(
    r"\b(?:might|perhaps|maybe|possibly|not\s+(?:sure|certain)|unsure|uncertain|i\s+guess|or\s+so)\b", re.IGNORECASE
)
NEGATION_BEFORE_RE = re.compile(r"(?:\bnot|\bnever|n't)\s*(?:\$|\\\(|\\\[)?\s*(?:\*\*)?\s*$", re.IGNORECASE)
NEGATION_AFTER_RE = re.compile(r"[\s$).*]*(?:(?:is|was)\s+not\b|isn't\b|wasn't\b)", re.IGNORECASE)
OR_AFTER_RE = re.compile(r"[\s$.,;*]*\(?\s*or\b", re.IGNORECASE)  # "The answer is 5. Or maybe 6."
# "# Answer" on a line of its own: the step-by-step MATH style; what follows it is the answer.
SECTION_RE = re.compile(r"^[ \t]*#{1,6}[ \t]*(?:\*\*)?(?:final[ \t]+)?answer(?:\*\*)?[ \t]*:?[ \t]*$", re.IGNORECASE | re.MULTILINE)
# Between two boxes of one answer: "\boxed{3} and \boxed{4}", "$\boxed{2}$, $\boxed{7}$".
BOX_JOIN_RE = re.compile(r"[\s$,;]*(?:\\\)|\\\(|\\quad|\\qquad|\\text\{\s*and\s*\}|\band\b|[\s$,;])*")
SENTENCE_END_RE = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
# A TeX span never ends in a space: "$18 and $5" is money, "$18$" is math.
TEX_SPAN_RE = re.compile(r"\$\$(.+?)\$\$|\$(?!\s)([^$]*?[^\s$\\])\$|\\\((.+?)\\\)|\\\[(.+?)\\\]", re.DOTALL)


class Extraction(NamedTuple):
    """The answer text (None when there is none), a status word and where it came from."""

    answer: str | None
    status: str
    source: str = ""
    group: tuple[str, ...] = ()  # every box of "\\boxed{3} and \\boxed{4}", when there are several


def brace_pairs(text: str) -> dict[int, int]:
    """Index of each ``{`` -> index of its ``}``, in one pass (escaped ``\{`` skipped); unclosed ones absent."""
    pairs, stack, i = {}, [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "{":
            stack.append(i)
        elif ch == "}" and stack:
            pairs[stack.pop()] = i
        i += 1
    return pairs


def find_boxes(text: str) -> tuple[list[tuple[int, int, str]], int]:
    """All complete boxes as (start, end, content) and the start of a trailing unclosed box (or -1)."""
    boxes: list[tuple[int, int, str]] = []
    unclosed = -1
    pairs = brace_pairs(text) if "\\boxed" in text or "\\fbox" in text or "\\framebox" in text else {}
    for match in BOX_RE.finditer(text):
        pos = match.end()
        while pos < len(text) and text[pos] == " ":
            pos += 1
        if pos >= len(text):
            unclosed = match.start()
            continue
        if text[pos] == "{":
            if pos not in pairs:
                unclosed = match.start()
                continue
            content, end = text[pos + 1 : pairs[pos]], pairs[pos] + 1
        else:  # "\boxed 5": one token
            token = re.match(r"[^\s$.,;]+", text[pos:])
            if not token:
                continue
            content, end = token.group(0), pos + token.end()
        boxes.append((match.start(), end, content))
    return boxes, unclosed


def trim_anchor_body(body: str) -> str:
    """Cut an anchored answer at the end of its sentence; prefer its first TeX span."""
    body = body.strip().strip("*").strip()
    span = TEX_SPAN_RE.search(body)
    if span and span.start() <= 3:
        end = span.end()
        while True:  # "$x = -1$, $x = 2$, and $x = -2$": a list of spans is one answer
            more = re.match(r"\s*,?\s*(?:and\s+)?", body[end:])
            following = TEX_SPAN_RE.match(body, end + more.end())
            if not more.group(0) or not following:
                break
            end = following.end()
        if end == span.end():
            return next(g for g in span.groups() if g is not None).strip()
        return body[span.start() : end]
    cut = re.search(r"\.(?:\s|$)(?!\d)|;|\s[-\u2013\u2014]\s|\s\(|,\s+(?:which|because|since|as|so)\b", body)
    if cut:
        body = body[: cut.start()]
    return body.strip().strip("*").rstrip(".").strip()


def anchors(text: str) -> list[tuple[int, int, str]]:
    """All anchored answers as (start, end, trimmed body), in order."""
    found = []
    for match in ANCHOR_RE.finditer(text):
        body = match.group("body")
        if not body.strip():  # "The final answer is\n\\[ ... \\]": the display on the next line
            display = re.match(r"\s*(\\\[.*?\\\]|\$\$.*?\$\$)", text[match.end():], re.DOTALL)
            body = display.group(1) if display else ""
        body = trim_anchor_body(body)
        if body:
            found.append((match.start(), match.end(), body))
    return found


def is_retracted(tail: str) -> bool:
    """Does the text after an answer take it back (and offer nothing instead)?"""
    return bool(RETRACT_RE.search(tail))


def last_tex_or_line(text: str) -> str | None:
    """Fallback answer: the last TeX span of the last paragraph, else its last line."""
    paragraphs = [p for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]
    if not paragraphs:
        return None
    last = paragraphs[-1]
    spans = [next(g for g in m.groups() if g is not None) for m in TEX_SPAN_RE.finditer(last)]
    if spans:
        return spans[-1].strip()
    return last.strip().splitlines()[-1].strip()


def final_answer(text: str | None) -> Extraction:
    """The response's final answer: a ``# Answer`` section, else the last box or anchor, checked."""
    if text is None or not text.strip():
        return Extraction(None, "empty")
    sections = list(SECTION_RE.finditer(text))
    if sections:  # what follows the last "# Answer" heading is the answer; text after it is not
        after = text[sections[-1].end():].strip()
        body = re.split(r"\n\s*\n", after, maxsplit=1)[0].strip()
        bold = bold_answer(body)
        if bold:  # "### Final Answer\nThe product ... is **6**."
            return Extraction(bold, "ok", "section")
        inner = last_answer(body)
        if inner.status != "no_answer":
            return inner
        line = body.splitlines()[0].strip().strip("*").rstrip(".").strip() if body else ""
        if line and not line.endswith(":") and (len(line.split()) <= 6 or re.search(r"[\d\\$]", line)):
            if NEGATED_RE.match(line):
                return Extraction(line, "negated", "section")
            return Extraction(line, "hedged" if HEDGE_RE.search(line) else "ok", "section")
        if after:  # "## Final Answer\n\nAfter all steps:\n\n\\boxed{5}"
            inner = last_answer(after)
            if inner.status != "no_answer":
                return inner
    found = last_answer(text)
    if found.source == "anchor":  # "The result is ... [more work] ... so the digit is **6**."
        last = re.split(r"\n\s*\n", text.strip())[-1]
        bold = bold_answer(last)
        if bold and last_answer(last).status == "no_answer":
            return Extraction(bold, "ok", "bold")
    return found


def last_answer(text: str) -> Extraction:
    """The last box or anchor of ``text``, checked for retraction, negation, hedging, truncation."""
    boxes, unclosed = find_boxes(text)
    found = [(s, e, c, "box") for s, e, c in boxes]
    box_spans = [(s, e) for s, e, _ in boxes]
    for start, end, body in anchors(text):
        # An anchor whose body holds a box ("the answer is \\boxed{5}") is that box.
        if any(s >= start and s <= end + len(body) + 8 for s, _ in box_spans):
            continue
        found.append((start, end + len(body), body, "anchor"))
    found.sort(key=lambda item: item[0])
    if unclosed >= 0 and (not found or unclosed > found[-1][0]):
        return Extraction(None, "truncated", "box")
    if not found:
        return Extraction(None, "no_answer")
    start, end, content, source = found[-1]
    group: tuple[str, ...] = ()
    if source == "box" and len(found) > 1 and found[-2][3] == "box":
        between = text[found[-2][1] : start]
        if re.fullmatch(r"[\s$,]*(?:or|and/or|\\text\{\s*or\s*\})[\s$]*", between):
            content = f"{found[-2][2]} or {content}"  # "\\boxed{72} or \\boxed{76}" is a hedge
        else:
            group = box_group(text, [item for item in found if item[3] == "box"])
    if NEGATED_RE.match(content) or (source == "box" and NEGATION_BEFORE_RE.search(sentence_before(text, start))):
        return Extraction(content, "negated", source)
    if NEGATION_AFTER_RE.match(text, end):  # "\\boxed{5} is not the answer."
        return Extraction(content, "negated", source)
    if HEDGE_RE.search(sentence_around(text, start, end)) or OR_AFTER_RE.match(text, end):
        return Extraction(content, "hedged", source)
    if is_retracted(text[end:]):
        return Extraction(content, "retracted", source)
    return Extraction(content.strip(), "ok", source, group)


def box_group(text: str, boxes: list[tuple[int, int, str, str]]) -> tuple[str, ...]:
    """The last run of boxes joined only by "and", commas or spacing: one answer in several boxes."""
    group = [boxes[-1][2].strip()]
    for before, after in zip(reversed(boxes[:-1]), reversed(boxes[1:])):
        if not BOX_JOIN_RE.fullmatch(text[before[1] : after[0]]):
            break
        group.insert(0, before[2].strip())
    return tuple(group) if len(group) > 1 else ()


def sentence_before(text: str, start: int) -> str:
    """The part of the answer's sentence before it ("The answer is not ")."""
    cut = max(text.rfind(". ", 0, start), text.rfind("\n", 0, start), text.rfind(": ", 0, start))
    return text[cut + 1 : start]


def sentence_around(text: str, start: int, end: int) -> str:
    """The answer's sentence without the answer itself (a box may hold "\\text{maybe}")."""
    after = re.search(r"\.(?:\s|$)|\n", text[end:])
    return sentence_before(text, start) + " " + text[end : end + (after.start() if after else len(text))]


def fallback_answer(text: str) -> Extraction:
    """When nothing is anchored: a bold value, the last sentence's copula, TeX span or line (weak)."""
    paragraphs = [p for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]
    if not paragraphs:
        return Extraction(None, "no_answer")
    bold = bold_answer(paragraphs[-1])  # "... is **21**." / a last line "**21**"
    if bold:
        return Extraction(bold, "ok", "bold")
    lines = [line for line in paragraphs[-1].splitlines() if line.strip()]
    sentences = [s for s in SENTENCE_END_RE.split(lines[-1].strip()) if re.search(r"[\d\\]", s)]
    sentence = sentences[-1] if sentences else lines[-1]
    if copula_clause(sentence) != sentence.strip().strip("*").rstrip(".").strip():  # "The value of $k$ is -2."
        return Extraction(sentence.strip().strip("*").rstrip(".").strip(), "ok", "fallback")  # checkers take the clause
    answer = last_tex_or_line(text)
    if not answer:
        return Extraction(None, "no_answer")
    return Extraction(answer, "ok", "fallback")


def after_copula(line: str) -> str:
    """"The circumference is 12π." -> "12π": what follows the last "is", "are", ":" or "=" of a line."""
    parts = re.split(r"\s(?:is|are|was|equals|gives|measures|becomes|totals)\s|:\s|\s=\s", line.strip())
    return parts[-1].strip().strip("*").rstrip(".").strip() if len(parts) > 1 else line.strip()


def split_alternatives(answer: str) -> list[str]:
    """Split "72 or 76" / "either 3 or 4" / "72 \\text{ or } 76" into its alternatives."""
    cleaned = re.sub(r"\\(?:text|mbox|textrm|mathrm)\{\s*(or|and/or)\s*\}", r" or ", answer)
    cleaned = re.sub(r"^\s*either\s+", "", cleaned, flags=re.IGNORECASE)
    parts = re.split(r"\s+(?:or|and/or)\s+", cleaned)
    return [p.strip() for p in parts if p.strip()]
