"""Which teacher failures to retry, how long to wait, and which ones stop the whole run.

Usage:
    decision = classify(exc)            # Decision(action="retry"|"fail"|"fatal", kind, retry_after, overload)
    delay = backoff_delay(attempt, base=1.0, cap=60.0, retry_after=decision.retry_after)

The SDK's own retries are off (``max_retries=0``) so this one policy rules: retry 408, 409,
429 (rate), 5xx, dropped connections, timeouts, malformed or empty bodies (the SDK raises a bare
``json.JSONDecodeError`` for those) and mid-stream error events; give up on other 4xx (the
request itself is wrong); stop the run on 401, 402/403-for-billing and 429 ``insufficient_quota``.
"""

from __future__ import annotations

import email.utils
import json
import random
import time
from dataclasses import dataclass
from typing import Any, Literal

import openai

QUOTA_CODES = {"insufficient_quota", "credit_balance_exhausted", "organization_spend_limit_exceeded",
               "project_spend_limit_exceeded", "organization_usage_limit_exceeded", "billing_hard_limit_reached"}
RETRY_STATUSES = {408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529}


class MalformedResponse(Exception):
    """A 200 response that carries no usable completion (empty body, no choices, no text)."""


class RetryableFinish(Exception):
    """The server stopped for its own reasons (e.g. DeepSeek ``insufficient_system_resource``)."""


@dataclass(frozen=True)
class Decision:
    action: Literal["retry", "fail", "fatal"]
    kind: str  # short machine word stored in the record's error.type
    retry_after: float | None = None
    overload: bool = False  # a signal to lower concurrency (429, 503, empty body)


def _error_code(exc: openai.APIError) -> str:
    body: Any = exc.body
    parts = [str(exc.code or ""), str(getattr(exc, "type", "") or "")]
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            parts += [str(inner.get("code") or ""), str(inner.get("type") or "")]
    return " ".join(parts).lower()


def retry_after_seconds(headers: Any) -> float | None:
    """Seconds from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date)."""
    if headers is None:
        return None
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def classify(exc: BaseException) -> Decision:
    """Decide what one failed attempt means for the sample and for the run."""
    if isinstance(exc, openai.APIStatusError):
        return _classify_status(exc)
    if isinstance(exc, openai.APITimeoutError):
        return Decision("retry", "timeout")
    if isinstance(exc, openai.APIConnectionError):
        return Decision("retry", "connection")
    if isinstance(exc, (json.JSONDecodeError, MalformedResponse)):
        return Decision("retry", "malformed", overload=True)
    if isinstance(exc, RetryableFinish):
        return Decision("retry", "server_stopped", overload=True)
    if isinstance(exc, openai.APIError):  # an error event inside a 200 stream
        code = _error_code(exc)
        if any(q in code for q in QUOTA_CODES) or code.split(" ")[0] == "402":
            return Decision("fatal", "insufficient_quota")
        if code.split(" ")[0] == "401":
            return Decision("fatal", "unauthorized")
        return Decision("retry", "stream_error")
    if isinstance(exc, (ConnectionError, TimeoutError, OSError)):
        return Decision("retry", "connection")
    return Decision("fail", type(exc).__name__)


def _classify_status(exc: openai.APIStatusError) -> Decision:
    status = exc.status_code
    code = _error_code(exc)
    after = retry_after_seconds(getattr(exc.response, "headers", None))
    should = (exc.response.headers.get("x-should-retry") or "").lower() if exc.response is not None else ""
    if status == 401:
        return Decision("fatal", "unauthorized")
    if status == 402 or any(q in code for q in QUOTA_CODES):
        return Decision("fatal", "insufficient_quota" if status != 402 else "insufficient_balance")
    if should == "false":
        return Decision("fail", f"http_{status}")
    if status in RETRY_STATUSES or status >= 500 or should == "true":
        return Decision("retry", f"http_{status}", after, overload=status in (429, 503, 529))
    return Decision("fail", f"http_{status}")


def backoff_delay(attempt: int, base: float = 1.0, cap: float = 60.0, retry_after: float | None = None,
                  rng: random.Random | None = None) -> float:
    """Wait before attempt ``attempt + 1``: full-jitter exponential, never less than Retry-After.

    Retry-After is honoured even above ``cap`` (the server knows best), but bounded at 15 min
    so a bogus header cannot park the run.
    """
    rng = rng or random
    ceiling = min(cap, base * (2 ** max(0, attempt - 1)))
    delay = ceiling * (0.5 + 0.5 * rng.random())  # "equal jitter": spread, but never ~0
    if retry_after is not None:
        delay = max(min(retry_after, 900.0), 0.0) + rng.random() * min(0.1 * base, 1.0)
    return delay
