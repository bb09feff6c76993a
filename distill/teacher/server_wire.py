"""Wire formats of the loopback teacher server: HTTP/1.1 framing, each dialect's JSON and SSE.

Usage:
    from distill.teacher import server_wire as wire
    choice = wire.make_choice("step 1 ...", "\\boxed{4}", budget=None)
    wire.completion("m", "deepseek", [choice], request)["choices"][0]["message"]["reasoning_content"]

Pure functions (plus ``read_request`` on an asyncio stream), so each provider's shape can be
read in one place; ``distill.teacher.server`` decides what to send when.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from dataclasses import dataclass
from http import HTTPStatus

from distill.errors import ConfigError

REASONING_FIELD = {"deepseek": "reasoning_content", "sglang": "reasoning_content", "vllm": "reasoning",
                   "together": "reasoning", "ollama": "reasoning", "openrouter": "reasoning"}
DIALECTS = (*REASONING_FIELD, "think", "think_open", "hidden", "openai")  # openai: hidden, like o-series
_TOKEN = re.compile(r"\S+\s*|\s+")
_request_ids = itertools.count(1)


def check_dialect(dialect: str) -> None:
    if dialect not in DIALECTS:
        raise ConfigError(f"unknown dialect {dialect!r}; choose one of: {', '.join(DIALECTS)}")


# ---------------------------------------------------------------- HTTP/1.1 framing


@dataclass
class Request:
    method: str
    path: str
    headers: dict
    body: bytes
    keep_alive: bool


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    """One request from a keep-alive connection; None when the client closed it."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    except asyncio.LimitOverrunError as exc:
        raise ConnectionError("request head too large") from exc
    lines = head.decode("latin-1").split("\r\n")
    method, path, version = (lines[0].split(" ", 2) + ["", ""])[:3]
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = await _read_chunked(reader)
    else:
        body = await reader.readexactly(int(headers.get("content-length") or 0))
    connection = headers.get("connection", "").lower()
    keep_alive = connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
    return Request(method, path, headers, body, keep_alive)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                pass
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


def head(status: int, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
             f"x-request-id: req_{next(_request_ids):08d}", "connection: keep-alive"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def chunk(data: bytes) -> bytes:
    """One piece of a chunked body; ``chunk(b"")`` ends the body."""
    return b"%x\r\n%s\r\n" % (len(data), data) if data else b"0\r\n\r\n"


def dumps(obj: object) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(float(value))


def duration(seconds: float) -> str:
    """OpenAI's x-ratelimit-reset-* style: ``20ms``, ``1.5s``, ``6m0s``."""
    if seconds < 1:
        return f"{int(seconds * 1000)}ms"
    if seconds < 60:
        return f"{round(seconds, 3):g}s"
    return f"{int(seconds // 60)}m{round(seconds % 60):d}s"


def keepalive_comment(dialect: str) -> bytes:
    return b": OPENROUTER PROCESSING\n\n" if dialect == "openrouter" else b": keep-alive\n\n"


# ---------------------------------------------------------------- content


@dataclass(frozen=True)
class Choice:
    reasoning: str | None
    content: str
    finish_reason: str = "stop"
    reasoning_done: bool = True  # False when the output cap cut the reasoning itself
    reasoning_tokens: int = 0
    completion_tokens: int = 0


def tokens(text: str | None) -> list[str]:
    """Whitespace tokens with their trailing space, so joining them gives the text back."""
    return _TOKEN.findall(text) if text else []


def make_choice(reasoning: str | None, content: str | None, budget: int | None) -> Choice:
    """A choice whose reasoning + content obey ``budget`` tokens (finish_reason=length if cut)."""
    r, c = tokens(reasoning), tokens(content or "")
    if budget is None or len(r) + len(c) <= int(budget):
        return Choice(reasoning, content or "", "stop", True, len(r), len(r) + len(c))
    budget = max(1, int(budget))
    if len(r) >= budget:
        return Choice("".join(r[:budget]).rstrip(), "", "length", False, budget, budget)
    return Choice(reasoning, "".join(c[: budget - len(r)]).rstrip(), "length", True, len(r), budget)


def last_user_text(messages: list) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return _text(message.get("content"))
    return ""


def _text(content: object) -> str:
    if isinstance(content, list):  # content parts
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else ""


def generic_answer(prompt: str) -> tuple[str, str]:
    """A deterministic stand-in trace for questions the offline teacher does not know."""
    words = len(prompt.split())
    reasoning = (f"The question has {words} words. Let me restate it: {prompt[:200].strip()}\n"
                 "I will work through it step by step.\n"
                 "First, identify what is asked. Then compute carefully. 6 * 7 = 42.\n"
                 "So the answer is 42.")
    return reasoning, "The answer is \\boxed{42}."


def _visible(dialect: str, choice: Choice) -> str:
    """What the dialect puts in ``content`` (think tags carry the reasoning there)."""
    if dialect not in ("think", "think_open") or choice.reasoning is None:
        return choice.content
    opening = "<think>\n" if dialect == "think" else ""
    if not choice.reasoning_done:
        return opening + choice.reasoning
    return f"{opening}{choice.reasoning}\n</think>\n\n{choice.content}"


def message(dialect: str, choice: Choice) -> dict:
    content: str | None = _visible(dialect, choice)
    if dialect == "vllm" and not content:
        content = None  # vLLM sends null content when the cap hits inside the reasoning
    msg: dict = {"role": "assistant", "content": content}
    field = REASONING_FIELD.get(dialect)
    if field and choice.reasoning is not None:
        msg[field] = choice.reasoning
        if dialect == "openrouter":
            msg["reasoning_details"] = [_detail(choice.reasoning)]
    return msg


def _detail(text: str) -> dict:
    return {"type": "reasoning.text", "text": text, "format": "unknown", "index": 0}


def usage(request: dict, choices: list[Choice]) -> dict:
    messages = request.get("messages") or []
    prompt = sum(len(tokens(_text(m.get("content")))) + 4 for m in messages if isinstance(m, dict))
    prefix = sum(len(tokens(_text(m.get("content")))) + 4 for m in messages[:-1] if isinstance(m, dict))
    completion = sum(c.completion_tokens for c in choices)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": prefix},
            "completion_tokens_details": {"reasoning_tokens": sum(c.reasoning_tokens for c in choices)}}


def completion(model: str, dialect: str, choices: list[Choice], request: dict) -> dict:
    return {
        "id": f"chatcmpl-{next(_request_ids):010d}", "object": "chat.completion",
        "created": int(time.time()), "model": model, "system_fingerprint": "fp_distill",
        "choices": [{"index": i, "message": message(dialect, c), "logprobs": None,
                     "finish_reason": c.finish_reason} for i, c in enumerate(choices)],
        "usage": usage(request, choices),
    }


def _pieces(text: str, per_piece: int = 8) -> list[str]:
    toks = tokens(text)
    return ["".join(toks[i:i + per_piece]) for i in range(0, len(toks), per_piece)]


def _reasoning_delta(dialect: str, piece: str) -> dict:
    if dialect == "openrouter":
        return {"role": "assistant", "content": "", "reasoning": piece, "reasoning_details": [_detail(piece)]}
    if dialect in ("deepseek", "sglang"):
        return {"content": None, "reasoning_content": piece}
    return {REASONING_FIELD[dialect]: piece}


def stream_events(model: str, dialect: str, choice: Choice, request: dict) -> list[bytes]:
    """The SSE ``data:`` events of one streamed completion, [DONE] excluded."""
    cid, created = f"chatcmpl-{next(_request_ids):010d}", int(time.time())

    def event(delta: dict | None, finish: str | None = None, use: dict | None = None) -> bytes:
        obj = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
               "system_fingerprint": "fp_distill",
               "choices": [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None,
                                                     "finish_reason": finish}]}
        if use is not None:
            obj["usage"] = use
        return b"data: " + dumps(obj) + b"\n\n"

    events = [event({"role": "assistant", "content": ""})]
    if REASONING_FIELD.get(dialect) and choice.reasoning:
        events += [event(_reasoning_delta(dialect, p)) for p in _pieces(choice.reasoning)]
    events += [event({"content": p}) for p in _pieces(_visible(dialect, choice))]
    events.append(event({}, choice.finish_reason))
    if (request.get("stream_options") or {}).get("include_usage"):
        events.append(event(None, use=usage(request, [choice])))
    return events


def models_body(model: str) -> dict:
    return {"object": "list", "data": [{"id": model, "object": "model", "created": 0, "owned_by": "distill"}]}


def error_body(message: str, type_: str, code: str | int | None) -> dict:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}
