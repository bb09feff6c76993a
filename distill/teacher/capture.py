"""Reasoning capture: one ``(reasoning, content)`` pair from whichever dialect the teacher speaks.

Usage:
    from distill.teacher.capture import split_think, from_message, StreamCapture
    split_think("<think>r</think> a")            # -> ("r", "a")
    reasoning, content = from_message(completion.choices[0].message)
    cap = StreamCapture()
    cap.add(chunk.choices[0].delta)               # for each streamed chunk
    reasoning, content = cap.result()

Read, in order: ``reasoning_content`` (DeepSeek, SGLang, Fireworks), ``reasoning`` (vLLM >= 0.11.1,
OpenRouter, Together, Ollama), OpenRouter's ``reasoning_details`` text items, then a leading
``<think>...</think>`` block inside ``content`` (also when the opening tag is missing, as R1-style
chat templates put it in the prompt). Hidden reasoning (OpenAI) gives ``reasoning=None``.
"""

from __future__ import annotations

import re
from typing import Any

_OPEN = re.compile(r"^\s*<(think|thinking|reasoning)>", re.IGNORECASE)
_CLOSE = re.compile(r"</(think|thinking|reasoning)>", re.IGNORECASE)
REASONING_FIELDS = ("reasoning_content", "reasoning")


def split_think(text: str | None) -> tuple[str | None, str]:
    """Split a ``<think>`` block off the front of ``text``: ``(reasoning or None, content)``.

    ``"r</think> a"`` (opening tag missing) also gives ``("r", "a")``; an unclosed ``<think>r``
    (cut by ``max_tokens`` inside the reasoning) gives ``("r", "")``.
    """
    if not text:
        return None, text or ""
    opened = _OPEN.match(text)
    body = text[opened.end():] if opened else text
    closed = _CLOSE.search(body)
    if closed is None:
        if opened:
            return body.strip(), ""
        return None, text.strip()
    return body[:closed.start()].strip(), body[closed.end():].strip()


def _field(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(name)
    value = getattr(obj, name, None)
    if value is None:
        extra = getattr(obj, "model_extra", None) or {}
        value = extra.get(name)
    return value


def _details_text(details: Any) -> str | None:
    """Text of OpenRouter ``reasoning_details`` items (``reasoning.text`` / ``reasoning.summary``)."""
    if not isinstance(details, list):
        return None
    parts = []
    for item in details:
        if isinstance(item, dict):
            parts.append(item.get("text") or item.get("summary") or "")
    text = "".join(parts)
    return text or None


def reasoning_field(obj: Any) -> str | None:
    """The reasoning text carried in a dedicated field of a message or stream delta, if any."""
    for name in REASONING_FIELDS:
        value = _field(obj, name)
        if isinstance(value, str) and value:
            return value
    return _details_text(_field(obj, "reasoning_details"))


def normalise(reasoning: str | None, content: str | None) -> tuple[str | None, str | None]:
    """Combine a field reasoning with content that may still hold a ``<think>`` block."""
    if reasoning:
        if content and _CLOSE.search(content) and _OPEN.match(content):
            _, content = split_think(content)  # both given: keep the field, drop the duplicate
        return reasoning.strip(), (content.strip() if content is not None else None)
    if content is None:
        return None, None
    return split_think(content)


def from_message(message: Any) -> tuple[str | None, str | None]:
    """``(reasoning, content)`` from a non-streaming ``choices[0].message``."""
    return normalise(reasoning_field(message), _field(message, "content"))


class StreamCapture:
    """Accumulates stream deltas; ``result()`` gives the same pair as :func:`from_message`."""

    def __init__(self) -> None:
        self._reasoning: list[str] = []
        self._content: list[str] = []
        self.saw_content = False
        self.finish_reason: str | None = None

    def add(self, delta: Any) -> None:
        piece = reasoning_field(delta)
        if piece:
            self._reasoning.append(piece)
        content = _field(delta, "content")
        if content is not None:
            self.saw_content = True
            self._content.append(content)

    def result(self) -> tuple[str | None, str | None]:
        reasoning = "".join(self._reasoning) or None
        content = "".join(self._content) if self.saw_content else None
        return normalise(reasoning, content)
