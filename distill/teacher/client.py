"""One client for any OpenAI-compatible teacher: retries, rate limits, replicas, reasoning capture, cost.

Usage:
    client = TeacherClient(TeacherConfig(model="deepseek-reasoner", base_url="https://api.deepseek.com"))
    c = await client.complete([{"role": "user", "content": "2+2?"}])
    c.reasoning, c.content, c.truncated, c.usage, c.cost_usd, c.error
    results = client.complete_many([messages1, messages2])   # synchronous helper
    await client.aclose()

``AsyncOpenAI(max_retries=0)`` per base URL (a list spreads load over replicas, least busy
first, a failing one taken out for a while: :mod:`distill.teacher.replicas`);
:mod:`distill.teacher.retry` decides what to retry, :mod:`distill.teacher.ratelimit` what to send when. A 401/402 (or quota 429) raises :class:`TeacherFatalError`; every other
failure that survives ``max_attempts`` comes back as a ``Completion`` with ``error`` set.
The API key is read from the variable named by ``api_key_env`` and scrubbed from every message.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import httpx2
import openai

from distill.errors import ConfigError, TeacherFatalError
from distill.teacher import retry as retry_policy
from distill.teacher.capture import StreamCapture, from_message
from distill.teacher.config import TeacherConfig
from distill.teacher.pricing import _is_local, cost_usd, resolve_prices
from distill.teacher.ratelimit import Limiter
from distill.teacher.replicas import Replicas
from distill.teacher.dialects import build_params, clean_messages, detect_provider, estimate_tokens

log = logging.getLogger(__name__)
if logging.getLogger("httpx2").level == logging.NOTSET:  # one INFO line per request drowns the bar
    logging.getLogger("httpx2").setLevel(logging.WARNING)
RETRY_FINISH = {"insufficient_system_resource"}
_KEYLIKE = re.compile(r"\b(sk|pk|key|api)[-_][A-Za-z0-9_\-]{12,}")


@dataclass
class Completion:
    """What one sample came back as (after retries); ``error`` set means it failed."""

    reasoning: str | None = None
    content: str | None = None
    finish_reason: str | None = None
    truncated: bool = False
    usage: dict[str, int] = field(default_factory=dict)
    cost_usd: float = 0.0
    latency_s: float = 0.0
    attempts: int = 0
    error: dict[str, str] | None = None
    model: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _usage(raw: Any) -> dict[str, int]:
    """Normalised usage: prompt, completion, reasoning and cached token counts (0 when absent)."""
    data = raw if isinstance(raw, dict) else getattr(raw, "model_dump", lambda: None)()
    if not isinstance(data, dict):  # absent, or a server sending usage that is not an object: estimate it
        return {}
    cdetails = _mapping(data.get("completion_tokens_details"))
    pdetails = _mapping(data.get("prompt_tokens_details"))
    if not _count(data.get("prompt_tokens")) and not _count(data.get("completion_tokens")):
        return {}  # no usable counts: estimated from the text instead (a zero would under-count the cap)
    return {
        "prompt_tokens": _count(data.get("prompt_tokens")),
        "completion_tokens": _count(data.get("completion_tokens")),
        "reasoning_tokens": _count(cdetails.get("reasoning_tokens")),
        "cached_tokens": _count(pdetails.get("cached_tokens") or data.get("prompt_cache_hit_tokens")),
    }


def _mapping(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _count(value: Any) -> int:
    """A token count from a server's usage; anything that is not a non-negative number counts as 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        return 0
    return int(value)


class TeacherClient:
    """Async teacher calls with one retry policy, rate limits and cost accounting."""

    def __init__(self, cfg: TeacherConfig, prices: dict[str, float] | None = None):
        self.cfg = cfg
        self.urls = [u.rstrip("/") for u in (cfg.base_url if isinstance(cfg.base_url, list) else [cfg.base_url])]
        if not self.urls or not all(self.urls):
            raise ConfigError("base_url: give an endpoint URL (or a list of them)")
        self.provider = detect_provider(cfg.provider, self.urls[0], cfg.model)
        self.prices = prices if prices is not None else resolve_prices(cfg.model, cfg.prices, self.urls)
        self.limiter = Limiter(cfg.concurrency, cfg.rpm, cfg.tpm, cfg.adaptive)
        self._key = self._resolve_key()
        self._clients: list[openai.AsyncOpenAI] = []
        self.replicas = self._replicas()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.fatal: TeacherFatalError | None = None

    # ------------------------------------------------------------ setup

    def _resolve_key(self) -> str:
        name = self.cfg.api_key_env
        key = os.environ.get(name) if name else None
        if key:
            return key
        if name and not _is_local(self.urls) and self.provider != "offline":
            raise ConfigError(f"api_key_env: environment variable {name} is not set "
                              f"(it must hold the API key for {urlparse(self.urls[0]).hostname})")
        return "EMPTY"  # local servers ignore the key, but the SDK wants one

    def scrub(self, text: str) -> str:
        """``text`` with the API key (and anything key-shaped) masked."""
        if self._key and self._key != "EMPTY" and len(self._key) >= 4:
            text = text.replace(self._key, "***")
        return _KEYLIKE.sub(lambda m: m.group(0)[:6] + "***", text)

    def _ensure_clients(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is loop and self._clients:
            return
        # httpx pools and asyncio conditions belong to one loop: rebuild for a new one.
        self._loop = loop
        self.limiter.reset_loop()
        timeout = httpx2.Timeout(self.cfg.request_timeout, connect=10.0)
        limits = httpx2.Limits(max_connections=max(1000, 2 * self.cfg.concurrency),
                               max_keepalive_connections=max(100, self.cfg.concurrency))
        self._clients = [
            openai.AsyncOpenAI(api_key=self._key, base_url=url, max_retries=0, timeout=timeout,
                               http_client=openai.DefaultAsyncHttpxClient(timeout=timeout, limits=limits))
            for url in self.urls
        ]
        self.replicas = self._replicas()

    def _replicas(self) -> Replicas:
        return Replicas(self.urls, self.cfg.replica_concurrency, self.cfg.replica_failures, self.cfg.replica_cooldown)

    async def aclose(self) -> None:
        clients, self._clients = self._clients, []
        for c in clients:
            await c.close()
        self._loop = None

    # ------------------------------------------------------------ calls

    async def complete(self, messages: list[dict], max_tokens: int | None = None, sample: int = 0) -> Completion:
        """One sample for ``messages``, retried per the policy; raises only TeacherFatalError."""
        self._ensure_clients()
        messages = clean_messages(messages)
        params = build_params(self.cfg, self.provider, messages, max_tokens or self.cfg.max_tokens)
        est = estimate_tokens(messages)
        attempt, avoid = 0, set()
        while True:
            if self.fatal is not None:
                raise self.fatal
            attempt += 1
            try:
                done = await self._attempt(params, est, avoid)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - every failure is classified below
                decision = retry_policy.classify(exc)
                message = self.scrub(_describe(exc))
                if decision.action == "fatal":
                    self.fatal = TeacherFatalError(_fatal_text(decision.kind, self.cfg, message))
                    raise self.fatal from None
                self._signal(decision)
                if decision.action == "fail" or attempt >= self.cfg.max_attempts:
                    log.debug("sample %s failed after %d attempts: %s", sample, attempt, message)
                    return Completion(attempts=attempt, model=self.cfg.model,
                                      error={"type": decision.kind, "message": message[:500]})
                delay = retry_policy.backoff_delay(attempt, self.cfg.backoff_base, self.cfg.backoff_max,
                                                   decision.retry_after)
                if avoid and self.replicas.has_other(avoid) and decision.kind != "http_429":
                    delay = 0.0  # the replica failed, not the request: another one answers at once
                log.debug("attempt %d (%s) failed, retrying in %.2fs", attempt, decision.kind, delay)
                await asyncio.sleep(delay)
                continue
            self.limiter.on_success()
            done.attempts = attempt
            return done

    def _signal(self, decision: retry_policy.Decision) -> None:
        if decision.overload:
            self.limiter.on_overload()
        if decision.retry_after and decision.kind == "http_429":
            self.limiter.pause(min(decision.retry_after, 900.0))  # everyone waits, not only this sample

    async def _attempt(self, params: dict, est: int, avoid: set[int]) -> Completion:
        async with self.limiter.slot(est) as slot, self.replicas.use(avoid) as idx:
            started = time.monotonic()
            if params.get("stream"):
                reasoning, content, finish, usage, model = await self._send_stream(idx, params)
            else:
                reasoning, content, finish, usage, model = await self._send(idx, params)
            latency = time.monotonic() - started
            slot.settle(usage.get("prompt_tokens", est) + usage.get("completion_tokens", 0))
            # Inside the replica's block: a replica answering empty bodies is as unwell as one refusing.
            if finish in RETRY_FINISH:
                raise retry_policy.RetryableFinish(f"finish_reason={finish}")
            if not content and not reasoning and finish != "length":
                raise retry_policy.MalformedResponse(f"empty completion (finish_reason={finish})")
        if not usage:
            usage = _estimated_usage(params["messages"], reasoning, content)
        return Completion(reasoning=reasoning, content=content, finish_reason=finish,
                          truncated=finish == "length", usage=usage, cost_usd=cost_usd(usage, self.prices),
                          latency_s=round(latency, 3), model=model or self.cfg.model)

    async def _send(self, idx: int, params: dict) -> tuple:
        raw = await self._clients[idx].chat.completions.with_raw_response.create(**params)
        self.limiter.observe_headers(raw.headers)
        resp = raw.parse()
        if not isinstance(resp, openai.types.chat.ChatCompletion):
            raise retry_policy.MalformedResponse(f"not a chat completion: {str(resp)[:80]!r}")
        _raise_body_error(resp, raw.http_request)
        if not resp.choices:
            raise retry_policy.MalformedResponse("response has no choices")
        choice = resp.choices[0]
        reasoning, content = from_message(choice.message)
        return reasoning, content, choice.finish_reason, _usage(resp.usage), resp.model

    async def _send_stream(self, idx: int, params: dict) -> tuple:
        raw = await self._clients[idx].chat.completions.with_raw_response.create(**params)
        self.limiter.observe_headers(raw.headers)
        stream = raw.parse()
        capture, usage, finish, model = StreamCapture(), {}, None, None
        async with stream:
            async for chunk in stream:
                _raise_body_error(chunk, raw.http_request)
                model = model or getattr(chunk, "model", None)
                if getattr(chunk, "usage", None):
                    usage = _usage(chunk.usage)
                for choice in chunk.choices or ():
                    if choice.delta is not None:
                        capture.add(choice.delta)
                    finish = choice.finish_reason or finish
        if finish is None:
            raise retry_policy.MalformedResponse("stream ended without a finish_reason")
        reasoning, content = capture.result()
        return reasoning, content, finish, usage, model

    def complete_many(self, batch: list[list[dict]], max_tokens: int | None = None) -> list[Completion]:
        """Synchronous helper: all of ``batch`` concurrently, results in input order."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError("complete_many() is synchronous; inside async code, await complete()")

        async def _all() -> list[Completion]:
            try:
                return list(await asyncio.gather(
                    *(self.complete(m, max_tokens, sample=i) for i, m in enumerate(batch))))
            finally:
                await self.aclose()

        return asyncio.run(_all())


def _raise_body_error(obj: Any, request: httpx2.Request) -> None:
    """OpenRouter and others send ``{"error": ...}`` inside a 200 body or stream chunk."""
    extra = getattr(obj, "model_extra", None) or {}
    err = extra.get("error")
    if err:  # the SDK's APIError reads the request's headers (to drop secrets): give it the real one
        raise openai.APIError(str(err.get("message") if isinstance(err, dict) else err)[:300],
                              request=request, body=err)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, openai.APIStatusError):
        body = exc.body if isinstance(exc.body, (dict, str)) else None
        detail = body.get("message") if isinstance(body, dict) else body
        return f"HTTP {exc.status_code}: {detail or exc.message}"[:500]
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:500]


def _fatal_text(kind: str, cfg: TeacherConfig, message: str) -> str:
    where = cfg.base_url if isinstance(cfg.base_url, str) else cfg.base_url[0]
    if kind == "unauthorized":
        hint = f"check the key in ${cfg.api_key_env}" if cfg.api_key_env else "set api_key_env"
        return f"teacher at {where} rejected the API key ({message}); {hint}. Everything received is kept."
    return (f"teacher at {where} refused for lack of balance or quota ({message}); "
            "top up and re-run to resume. Everything received is kept.")


def _estimated_usage(messages: list[dict], reasoning: str | None, content: str | None) -> dict[str, int]:
    """Rough counts (~4 characters a token) for servers that report no usage."""
    r = len(reasoning or "") // 4
    return {"prompt_tokens": estimate_tokens(messages), "completion_tokens": r + len(content or "") // 4,
            "reasoning_tokens": r, "cached_tokens": 0}
