"""A loopback teacher that misbehaves on demand: the faults, quotas and rate limits real providers show.

Usage:
    from faulty_teacher import FaultyTeacher
    with FaultyTeacher(dialect="deepseek", responder=respond) as srv:
        srv.add_fault("429", count=2, retry_after=0.2)      # the next 2 requests get a 429
        srv.add_fault("drop", match="number 3?")            # a request with this prompt is cut mid-body
        srv.set_ratelimit_headers(requests=10, enforce=True)
        ...
        assert srv.stats.faults["429"] == 2

Test support, kept beside the tests: distill's own server (distill.teacher.server) only serves
well-formed answers. This subclass decides per request whether to fail and how, then uses the
server's own framing for everything that still looks like an answer. Unlike distill's server it
keeps every request body (``srv.stats.bodies``) unless told ``keep_bodies=False``: tests read them.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field, replace
from typing import Any

from distill.errors import ConfigError
from distill.teacher import server_wire as wire
from distill.teacher.server import Stats, TeacherServer

# fault -> (status, message, error type, error code)
STATUS_FAULTS = {
    "429": (429, "Rate limit reached for requests per minute. Please try again later.", "requests",
            "rate_limit_exceeded"),
    "quota": (429, "You exceeded your current quota, please check your plan and billing details.",
              "insufficient_quota", "insufficient_quota"),
    "400": (400, "Invalid request.", "invalid_request_error", "invalid_request"),
    "401": (401, "Authentication Fails, your api key is invalid.", "authentication_error", "invalid_api_key"),
    "402": (402, "Insufficient Balance.", "insufficient_balance", "insufficient_balance"),
    "500": (500, "The server had an error while processing your request.", "server_error", "server_error"),
    "503": (503, "The server is overloaded, please try again later.", "server_error", "overloaded"),
}
BODY_FAULTS = ("drop", "malformed", "hang", "truncate", "empty", "stream_error", "slow_stream")
FAULTS = (*STATUS_FAULTS, *BODY_FAULTS)


def check_fault(kind: str) -> None:
    if kind not in FAULTS:
        raise ConfigError(f"unknown fault {kind!r}; choose one of: {', '.join(FAULTS)}")


@dataclass
class Fault:
    kind: str
    count: int
    match: str | None = None
    opts: dict = field(default_factory=dict)


class FaultPlan:
    """Queued faults (consumed one per matching request), then seeded random ones by rate."""

    def __init__(self, seed: int = 0, rates: dict[str, float] | None = None) -> None:
        self.rates = dict(rates or {})
        self._rng = random.Random(seed)
        self._queued: list[Fault] = []
        self._lock = threading.Lock()  # tests add faults from their thread; the server takes them on its loop

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._queued.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._queued.clear()

    def take(self, prompt: str) -> Fault | None:
        with self._lock:
            for fault in self._queued:
                if fault.count > 0 and (fault.match is None or fault.match in prompt):
                    fault.count -= 1
                    if fault.count == 0:
                        self._queued.remove(fault)
                    return fault
        for kind, rate in self.rates.items():
            if self._rng.random() < rate:
                return Fault(kind, 1, opts={"retry_after": 0.5} if kind in ("429", "503") else {})
        return None


class RateWindow:
    """A one-minute sliding window behind the x-ratelimit-* headers."""

    def __init__(self, limit: int) -> None:
        self.limit, self.events = limit, deque()

    def used(self, now: float) -> float:
        while self.events and self.events[0][0] <= now - 60.0:
            self.events.popleft()
        return sum(n for _, n in self.events)

    def reset_in(self, now: float) -> float:
        return max(0.0, self.events[0][0] + 60.0 - now) if self.events else 0.0


def truncated(choice: wire.Choice) -> wire.Choice:
    """The ``truncate`` fault: the answer cut off midway, finish_reason=length."""
    cut = choice.content[: max(1, len(choice.content) // 2)]
    return replace(choice, content=cut, finish_reason="length",
                   completion_tokens=choice.reasoning_tokens + len(wire.tokens(cut)))


class FaultStats(Stats):
    """The server's counters plus how many of each fault were served."""

    def reset(self) -> None:
        super().reset()
        self.faults: Counter = Counter()


class FaultyTeacher(TeacherServer):
    """distill's loopback teacher plus queued and random faults, and x-ratelimit headers and quotas."""

    def __init__(self, *args: Any, fault_rates: dict[str, float] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **{"keep_bodies": True, **kwargs})
        for kind in fault_rates or {}:
            check_fault(kind)
        self._faults = FaultPlan(kwargs.get("seed", 0), fault_rates)
        self._limits: dict[str, RateWindow] = {}
        self._enforce = False
        self.stats = FaultStats()

    def add_fault(self, kind: str, count: int = 1, match: str | None = None, **opts: Any) -> None:
        """The next ``count`` matching requests get fault ``kind`` (see ``FAULTS``).

        Options: ``retry_after`` (429/503), ``gap`` and ``interval`` (slow_stream).
        """
        check_fault(kind)
        self._faults.add(Fault(kind, count, match, opts))

    def clear_faults(self) -> None:
        self._faults.clear()

    def set_ratelimit_headers(self, requests: int | None = None, tokens: int | None = None,
                              enforce: bool = False) -> None:
        """Send x-ratelimit-* headers for these per-minute limits (None: no headers).

        With ``enforce`` a request over a limit gets 429 with Retry-After, like a real provider.
        """
        limits = {}
        if requests is not None:
            limits["requests"] = RateWindow(int(requests))
        if tokens is not None:
            limits["tokens"] = RateWindow(int(tokens))
        self._limits, self._enforce = limits, enforce

    def extra_headers(self) -> list[tuple[str, str]]:
        now, headers = time.monotonic(), []
        for name, window in self._limits.items():
            remaining = max(0, int(window.limit - window.used(now)))
            headers += [(f"x-ratelimit-limit-{name}", str(window.limit)),
                        (f"x-ratelimit-remaining-{name}", str(remaining)),
                        (f"x-ratelimit-reset-{name}", wire.duration(window.reset_in(now)))]
        return headers

    # ------------------------------------------------------------------ deciding (loop thread)

    async def reply(self, body: dict, prompt: str, reader: asyncio.StreamReader,
                    writer: asyncio.StreamWriter) -> bool:
        fault = self._faults.take(prompt)
        limited = self._rate_limited() if fault is None else None
        if limited is not None:
            fault = Fault("429", 1, opts={"retry_after": limited})
        if fault is None:
            return await super().reply(body, prompt, reader, writer)
        self.stats.faults[fault.kind] += 1
        if fault.kind in STATUS_FAULTS:
            return await self._status_fault(writer, fault)
        if fault.kind == "hang":  # never answer; return when the client gives up or the server stops
            while await reader.read(65536):
                pass
            return False
        choices = self.answer(body)
        if fault.kind == "truncate":
            choices = [truncated(c) for c in choices]
        if body.get("stream"):
            return await self._faulty_stream(writer, body, choices, fault)
        return await self._faulty_respond(writer, body, choices, fault)

    def _rate_limited(self) -> float | None:
        if not self._enforce:
            return None
        now = time.monotonic()
        for window in self._limits.values():
            if window.used(now) >= window.limit:
                return round(max(window.reset_in(now), 0.05), 3)
        return None

    def answer(self, body: dict) -> list[wire.Choice]:
        choices = super().answer(body)
        self._count(choices)
        return choices

    def _count(self, choices: list[wire.Choice]) -> None:
        now = time.monotonic()
        if "requests" in self._limits:
            self._limits["requests"].events.append((now, 1))
        if "tokens" in self._limits:
            self._limits["tokens"].events.append((now, sum(c.completion_tokens for c in choices)))

    # ------------------------------------------------------------------ misbehaving

    async def _status_fault(self, writer: asyncio.StreamWriter, fault: Fault) -> bool:
        await asyncio.sleep(min(self.latency, 0.05))
        status, message, type_, code = STATUS_FAULTS[fault.kind]
        extra = []
        retry_after = fault.opts.get("retry_after")
        if retry_after is not None:
            extra.append(("retry-after", wire.number(retry_after)))
        return await self._send_error(writer, status, message, type_, code, extra + self.extra_headers())

    async def _faulty_respond(self, writer: asyncio.StreamWriter, body: dict, choices: list, fault: Fault) -> bool:
        kind = fault.kind
        payload = wire.dumps(wire.completion(self.model, self.dialect, choices, body))
        if kind == "slow_stream":  # DeepSeek-style blank lines for a long while, then the JSON
            return await self.respond(writer, body, choices, payload, gap=fault.opts.get("gap", 1.0),
                                      interval=float(fault.opts.get("interval", 0.2)), is_ok=False)
        if kind == "truncate":
            return await self.respond(writer, body, choices, payload, is_ok=False)
        if not self.keepalive:
            await asyncio.sleep(self.latency)
        extra = self.extra_headers()
        if kind == "malformed":
            return await self._send(writer, 200, extra, payload[: len(payload) // 2] + b",,}")
        if kind == "empty":
            return await self._send(writer, 200, extra, b"")
        if kind == "stream_error":  # OpenRouter: 200 with the error in the body
            return await self._send_json(writer, 200, wire.error_body("upstream provider error", "server_error", 502))
        # drop: the connection dies halfway through the body
        self.stats.by_status[200] += 1
        writer.write(wire.head(200, extra + [("content-type", "application/json"),
                                             ("content-length", str(len(payload)))]) + payload[: len(payload) // 2])
        await writer.drain()
        writer.transport.abort()
        return False

    async def _faulty_stream(self, writer: asyncio.StreamWriter, body: dict, choices: list, fault: Fault) -> bool:
        kind = fault.kind
        comment = await self.open_stream(writer)
        events = wire.stream_events(self.model, self.dialect, choices[0], body)
        if kind == "empty":
            events = []
        elif kind in ("drop", "malformed", "stream_error"):
            events = events[: max(2, len(events) // 3)]
        if kind == "slow_stream":
            half = len(events) // 2
            writer.write(wire.chunk(b"".join(events[:half])))
            await self._wait(writer, fault.opts.get("gap", 1.0), comment, float(fault.opts.get("interval", 0.2)))
            events = events[half:]
        writer.write(wire.chunk(b"".join(events)) if events else b"")
        if kind == "drop":
            await writer.drain()
            writer.transport.abort()
            return False
        if kind == "malformed":
            writer.write(wire.chunk(b'data: {"id": "chatcmpl-broken", "choices": [{"delta": \n\n'))
        if kind == "stream_error":
            error = wire.error_body("upstream provider error mid-stream", "server_error", 502)
            writer.write(wire.chunk(b"data: " + wire.dumps(error) + b"\n\n"))
        if kind in ("slow_stream", "truncate"):
            writer.write(wire.chunk(b"data: [DONE]\n\n"))
        writer.write(wire.chunk(b""))
        await writer.drain()
        return True
