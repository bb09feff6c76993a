"""Batch request and result lines: what one sample looks like in a batch file, and what comes back.

Usage:
    from distill.generate.batch_files import BatchRequest, request_line, split_parts, completion_of
    req = BatchRequest("p-1", sample=0, max_tokens=4096)
    line = request_line(req, {"model": "m", "messages": [...], "max_tokens": 4096})
    parts = list(split_parts([line], max_requests=50000, max_bytes=200_000_000))   # lists of encoded lines
    encode_line(line, max_bytes=200_000_000)           # its bytes; ConfigError when it alone is too big
    c = completion_of({"custom_id": req.custom_id, "response": {"status_code": 200, "body": {...}}},
                      prices, messages)

The request line is the OpenAI batch format that ``vllm run-batch`` reads too: ``custom_id``,
``method``, ``url``, ``body``. The ``custom_id`` names the (problem id, sample) pair, the output
budget and whether the answer was given as a hint, so a result can be matched back without any
state but the file. A result line (output or error file) becomes the same
:class:`~distill.teacher.client.Completion` the online client returns, its reasoning read by
:mod:`distill.teacher.capture` and its usage and cost by the client's own helpers. Pure: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from distill.errors import ConfigError
from distill.teacher.capture import from_message
from distill.teacher.client import RETRY_FINISH, Completion, _estimated_usage, _usage
from distill.teacher.dialects import estimate_tokens
from distill.teacher.pricing import cost_usd

URL = "/v1/chat/completions"
# Per-request results worth sending again in the next wave (the rest are written as failed at once).
RETRY_STATUSES = {408, 409, 429, 500, 502, 503, 504, 529}

__all__ = ["BatchRequest", "request_line", "split_parts", "encode_line", "completion_of", "is_retryable", "worst_request_cost"]


@dataclass(frozen=True)
class BatchRequest:
    """One request of a batch: which pair it answers, with how many output tokens, hinted or not."""

    problem_id: str
    sample: int
    max_tokens: int
    is_hinted: bool = False

    @property
    def custom_id(self) -> str:
        # The id goes last, so an id holding ":" still parses.
        return f"{self.sample}:{self.max_tokens}:{'h' if self.is_hinted else 's'}:{self.problem_id}"

    @classmethod
    def parse(cls, custom_id: str) -> BatchRequest:
        """The request a ``custom_id`` names; ValueError for one this module did not write."""
        sample, max_tokens, kind, problem_id = custom_id.split(":", 3)
        if kind not in ("h", "s"):
            raise ValueError(f"custom_id {custom_id!r}: not written by distill")
        return cls(problem_id, int(sample), int(max_tokens), kind == "h")


def request_line(req: BatchRequest, params: dict[str, Any]) -> dict:
    """The batch line for ``req``: ``params`` as built for the online call, ``extra_body`` merged in
    (a batch body is the JSON itself) and streaming dropped (a batch result is one body)."""
    body = {k: v for k, v in params.items() if k not in ("extra_body", "stream", "stream_options")}
    body.update(params.get("extra_body") or {})
    return {"custom_id": req.custom_id, "method": "POST", "url": URL, "body": body}


def split_parts(lines: Iterable[dict], max_requests: int, max_bytes: int) -> Iterator[list[bytes]]:
    """Encoded lines cut into files of at most ``max_requests`` lines and ``max_bytes`` bytes, each
    yielded as soon as it is full (so a wave of a million requests is never held whole)."""
    part: list[bytes] = []
    size = 0
    for line in lines:
        data = encode_line(line, max_bytes)
        if part and (len(part) >= max_requests or size + len(data) > max_bytes):
            yield part
            part, size = [], 0
        part.append(data)
        size += len(data)
    if part:
        yield part


def encode_line(line: dict, max_bytes: int) -> bytes:
    """One request as its file's bytes; ConfigError when it alone is more than ``max_bytes``."""
    data = (json.dumps(line, ensure_ascii=False) + "\n").encode()
    if len(data) > max_bytes:
        raise ConfigError(f"batch.max_bytes={max_bytes}: the request {line['custom_id']!r} alone is {len(data)} "
                          "bytes; raise the limit (the provider's is 200 MB) or shorten the problem")
    return data


def worst_request_cost(prices: dict[str, float] | None, messages: list[dict], max_tokens: int) -> float:
    """The most one batch request can cost: its prompt (counted generously) and every output token."""
    if not prices:
        return 0.0
    prompt = 2 * estimate_tokens(messages) + 16  # chars/4 undercounts some scripts, as the online cap assumes
    return cost_usd({"prompt_tokens": prompt, "completion_tokens": max_tokens}, prices)


def completion_of(result: dict | None, prices: dict[str, float] | None, messages: list[dict],
                  missing: str = "batch_incomplete") -> Completion:
    """The :class:`Completion` one output/error line stands for; ``None`` (no line came back for the
    request, as when a batch expires) gives an error of type ``missing``."""
    if result is None:
        return Completion(attempts=1, error={"type": missing, "message": "no result for this request in the batch"})
    response = result.get("response") if isinstance(result.get("response"), dict) else {}
    status, body = response.get("status_code"), response.get("body")
    if result.get("error") or status != 200 or not isinstance(body, dict):
        return Completion(attempts=1, error=_error_of(result.get("error"), status, body))
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return Completion(attempts=1, error={"type": "malformed", "message": "response has no choices"})
    choice = choices[0]
    reasoning, content = from_message(choice.get("message") or {})
    finish = choice.get("finish_reason")
    usage = _usage(body.get("usage")) or _estimated_usage(messages, reasoning, content)
    # The same checks the online client makes before accepting an answer (an empty body is a failure).
    if finish in RETRY_FINISH:
        error = {"type": "server_stopped", "message": f"finish_reason={finish}"}
    elif not content and not reasoning and finish != "length":
        error = {"type": "malformed", "message": f"empty completion (finish_reason={finish})"}
    else:
        error = None
    return Completion(reasoning=reasoning, content=content, finish_reason=finish, truncated=finish == "length",
                      usage=usage, cost_usd=cost_usd(usage, prices), attempts=1, error=error,
                      model=body.get("model"))


def _error_of(error: Any, status: Any, body: Any) -> dict[str, str]:
    """``{"type": "http_429" | <provider code>, "message": ...}`` from a failed result line."""
    detail = body.get("error", body) if isinstance(body, dict) else None
    if isinstance(error, dict):
        kind, message = str(error.get("code") or "batch_error"), str(error.get("message") or error)
    elif isinstance(status, int) and status != 200:
        kind = f"http_{status}"
        message = str(detail.get("message") if isinstance(detail, dict) else detail or error or "")
    else:
        kind, message = "batch_error", str(error or "malformed result line")
    return {"type": kind, "message": message[:500]}


def is_retryable(error: dict | None) -> bool:
    """Whether a failed result is worth another wave: overload, server errors, an expired or failed batch."""
    if not error:
        return False
    kind = str(error.get("type", ""))
    if kind.startswith("http_"):
        return kind[5:].isdigit() and int(kind[5:]) in RETRY_STATUSES
    return kind in ("malformed", "server_stopped", "batch_expired", "batch_failed", "batch_cancelled",
                    "batch_incomplete", "rate_limit_exceeded", "server_error")
