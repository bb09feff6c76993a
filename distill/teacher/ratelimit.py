"""Politeness: token buckets for requests/tokens per minute, limits learnt from ``x-ratelimit-*``
headers, and adaptive (AIMD) concurrency for providers that send no headers (DeepSeek).

Usage:
    limits = Limiter(concurrency=64, rpm=None, tpm=None, adaptive=True)
    async with limits.slot(est_tokens=800) as slot:   # waits for a free slot and the buckets
        ...                                            # send the request
        slot.settle(used_tokens=3100)                  # charge what was really used
    limits.observe_headers(raw.headers)                # learn rpm/tpm and pause when exhausted
    limits.on_overload() / limits.on_success()

Token buckets may go into debt (a request bigger than the bucket still goes, later ones wait),
so one long prompt never deadlocks a small tpm.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator
from typing import Any

log = logging.getLogger(__name__)
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def parse_duration(text: str | None) -> float | None:
    """``"6m0s"`` -> 360.0, ``"12ms"`` -> 0.012, ``"1.5"`` -> 1.5 (OpenAI's reset headers)."""
    if not text:
        return None
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    parts = _DURATION.findall(text)
    if not parts:
        return None
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(float(n) * scale[u] for n, u in parts)


class TokenBucket:
    """``per_minute`` units refilled continuously; holds at most ``burst_s`` seconds' worth."""

    def __init__(self, per_minute: float, burst_s: float = 6.0):
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate * burst_s)
        self.level = self.capacity
        self._stamp = time.monotonic()

    def set_rate(self, per_minute: float) -> None:
        self._refill()
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate * 6.0)
        self.level = min(self.level, self.capacity)

    def _refill(self) -> None:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self._stamp) * self.rate)
        self._stamp = now

    def wait_time(self, amount: float) -> float:
        """Seconds until ``amount`` (capped at capacity) is available; 0 if now."""
        self._refill()
        need = min(amount, self.capacity)
        return 0.0 if self.level >= need else (need - self.level) / self.rate

    def take(self, amount: float) -> None:
        self._refill()
        self.level -= amount


class Slot:
    """One admitted request; ``settle`` charges the tokens it really used."""

    def __init__(self, limiter: Limiter, est_tokens: int):
        self._limiter, self._est = limiter, est_tokens

    def settle(self, used_tokens: int) -> None:
        if self._limiter.tokens is not None:
            self._limiter.tokens.take(used_tokens - self._est)
        self._est = used_tokens


class Limiter:
    """Admission control for one teacher: concurrency (adaptive), rpm and tpm."""

    def __init__(self, concurrency: int, rpm: int | None = None, tpm: int | None = None,
                 adaptive: bool = True, min_concurrency: int = 1):
        self.max_concurrency = max(1, concurrency)
        self.limit = float(self.max_concurrency)
        self.min_concurrency = max(1, min(min_concurrency, self.max_concurrency))
        self.adaptive = adaptive
        self.requests = TokenBucket(rpm) if rpm else None
        self.tokens = TokenBucket(tpm) if tpm else None
        self._user_rpm, self._user_tpm = rpm, tpm
        self.in_flight = 0
        self.paused_until = 0.0
        self._last_cut = 0.0
        self._cond: asyncio.Condition | None = None

    def _condition(self) -> asyncio.Condition:
        if self._cond is None:
            self._cond = asyncio.Condition()
        return self._cond

    def reset_loop(self) -> None:
        """Forget loop-bound state (a new event loop is about to use this limiter)."""
        self._cond = None
        self.in_flight = 0

    @contextlib.asynccontextmanager
    async def slot(self, est_tokens: int = 0) -> AsyncIterator[Slot]:
        cond = self._condition()
        async with cond:
            await cond.wait_for(lambda: self.in_flight < max(self.min_concurrency, int(self.limit)))
            self.in_flight += 1
        try:
            await self._wait_buckets(est_tokens)
            yield Slot(self, est_tokens)
        finally:
            async with cond:
                self.in_flight -= 1
                cond.notify_all()

    async def _wait_buckets(self, est_tokens: int) -> None:
        while True:
            delay = self.paused_until - time.monotonic()
            if self.requests is not None:
                delay = max(delay, self.requests.wait_time(1))
            if self.tokens is not None:
                delay = max(delay, self.tokens.wait_time(est_tokens))
            if delay <= 0:
                break
            await asyncio.sleep(min(delay, 5.0))
        if self.requests is not None:
            self.requests.take(1)
        if self.tokens is not None:
            self.tokens.take(est_tokens)

    def on_success(self) -> None:
        """Additive increase: about +1 slot per ``limit`` successes (one round trip)."""
        if self.adaptive and self.limit < self.max_concurrency:
            self.limit = min(self.max_concurrency, self.limit + 1.0 / max(self.limit, 1.0))

    def on_overload(self) -> None:
        """Multiplicative decrease, at most once a second so one burst of 429s counts once."""
        if not self.adaptive:
            return
        now = time.monotonic()
        if now - self._last_cut < 1.0:
            return
        self._last_cut = now
        old = self.limit
        self.limit = max(float(self.min_concurrency), self.limit * 0.5)
        if int(old) != int(self.limit):
            log.info("teacher overloaded: concurrency %d -> %d", int(old), int(self.limit))

    def pause(self, seconds: float) -> None:
        """Hold every new request for ``seconds`` (Retry-After on a 429, exhausted header budget)."""
        self.paused_until = max(self.paused_until, time.monotonic() + seconds)

    def observe_headers(self, headers: Any) -> None:
        """Learn rpm/tpm from ``x-ratelimit-limit-*``; pause when ``remaining`` hits zero."""
        if headers is None:
            return
        for kind, user in (("requests", self._user_rpm), ("tokens", self._user_tpm)):
            limit = _int(headers.get(f"x-ratelimit-limit-{kind}"))
            if limit and not user:
                bucket = getattr(self, kind)
                if bucket is None:
                    setattr(self, kind, TokenBucket(limit))
                elif abs(bucket.rate * 60 - limit) > 0.5:
                    bucket.set_rate(limit)
            remaining = _int(headers.get(f"x-ratelimit-remaining-{kind}"))
            if remaining is not None and remaining <= 0:
                reset = parse_duration(headers.get(f"x-ratelimit-reset-{kind}"))
                if reset:
                    self.pause(min(reset, 120.0))


def _int(value: Any) -> int | None:
    try:
        return int(float(value)) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
