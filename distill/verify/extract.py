"""Find the final answer in a response: last box unless retracted, anchors, hedges, negations, truncation.

Usage:
    from distill.verify.extract import final_answer
    final_answer("so x = 3 ... \\boxed{\\frac{1}{2}}")   # Extraction("\\frac{1}{2}", "ok", "box")
    final_answer("\\boxed{\\frac{3")                     # Extraction(None, "truncated", "box")

The result's ``status`` is one word: ok | empty | no_answer | truncated | negated | retracted.
Hedges ("72 or 76") are left to the kind checkers, which know whether the gold itself is a list.
"""

from __future__ import annotations

import re
from typing import NamedTuple

BOX_RE = re.compile(r"\\(?:boxed|fbox|framebox)\s*(?=[{ ])")
# "the final answer is X", "Answer: X", "**Answer**: X"; group "body" runs to the end of the line.
ANCHOR_RE = re.compile(
    r"(?:\b(?:final\s+answer|the\s+answer|my\s+answer|answer|result|solution)\b"
    r"(?:\s+(?:to\s+(?:the|this)\s+(?:question|problem)|for\s+(?:the|this)\s+\w+))?"
    r"\s*(?:\*\*)?\s*(?:is|would\s+be|will\s+be|should\s+be|equals|[:=])\s*(?:\*\*)?:?"
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
# A TeX span never ends in a space: "$18 and $5" is money, "$18$" is math.
TEX_SPAN_RE = re.compile(r"\$\$(.+?)\$\$|\$(?!\s)([^$]*?[^\s$\\])\$|\\\((.+?)\\\)|\\\[(.+?)\\\]", re.DOTALL)


class Extraction(NamedTuple):
    """The answer text (None when there is none), a status word and where it came from."""

    answer: str | None
    status: str
    source: str = ""


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
        return next(g for g in span.groups() if g is not None).strip()
    cut = re.search(r"\.(?:\s|$)(?!\d)|;|\s[-\u2013\u2014]\s|\s\(|,\s+(?:which|because|since|as|so)\b", body)
    if cut:
        body = body[: cut.start()]
    return body.strip().strip("*").rstrip(".").strip()


def anchors(text: str) -> list[tuple[int, int, str]]:
    """All anchored answers as (start, end, trimmed body), in order."""
    found = []
    for match in ANCHOR_RE.finditer(text):
        body = trim_anchor_body(match.group("body"))
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
    """The response's final answer: the last box or anchor, checked for retraction and truncation."""
    if text is None or not text.strip():
        return Extraction(None, "empty")
    boxes, unclosed = find_boxes(text)
    found = [(s, e, c, "box") for s, e, c in boxes]
    box_spans = [(s, e) for s, e, _ in boxes]
    for start, end, body in anchors(text):
        # An anchor whose body holds a box ("the answer is \boxed{5}") is that box.
        if any(s >= start and s <= end + len(body) + 8 for s, _ in box_spans):
            continue
        found.append((start, end + len(body), body, "anchor"))
    found.sort(key=lambda item: item[0])
    if unclosed >= 0 and (not found or unclosed > found[-1][0]):
        return Extraction(None, "truncated", "box")
    if not found:
        return Extraction(None, "no_answer")
    start, end, content, source = found[-1]
    if source == "box" and len(found) > 1 and found[-2][3] == "box":
        between = text[found[-2][1] : start]
        if re.fullmatch(r"[\s$,]*(?:or|and/or|\\text\{\s*or\s*\})[\s$]*", between):
            content = f"{found[-2][2]} or {content}"  # "\boxed{72} or \boxed{76}" is a hedge
    if NEGATED_RE.match(content):
        return Extraction(content, "negated", source)
    if is_retracted(text[end:]):
        return Extraction(content, "retracted", source)
    return Extraction(content.strip(), "ok", source)


def fallback_answer(text: str) -> Extraction:
    """When nothing is anchored: the last TeX span or the last line, marked as a weak source."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if lines and after_copula(lines[-1]) != lines[-1].strip():
        return Extraction(after_copula(lines[-1]), "ok", "fallback")  # "The value of $k$ is -2."
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
