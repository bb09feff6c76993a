"""A loopback OpenAI-compatible teacher: every reasoning dialect, streaming or not, faults on demand.

Usage:
    from distill.teacher.server import TeacherServer
    with TeacherServer(dialect="deepseek", latency=0.0) as srv:
        srv.add_fault("429", count=2, retry_after=0.2)
        client = OpenAI(base_url=srv.base_url, api_key="x")
        ...
        assert srv.stats.max_in_flight <= 8

    distill teacher serve port=0 dialect=vllm      # prints "serving http://127.0.0.1:PORT/v1"

Plain HTTP/1.1 on asyncio streams (keep-alive, Content-Length or chunked) so one process serves
hundreds of concurrent requests; the server runs in a background thread with its own loop, or in
the foreground for ``distill teacher serve``. Answers come from the offline teacher
(``distill.teacher.offline``) when it knows the question, else a generic trace ending in
``\\boxed{42}`` (``distill.teacher.server_responder``). The wire formats live in
``distill.teacher.server_wire``, fault bookkeeping in ``distill.teacher.server_faults``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
import threading
import time
from collections import Counter, deque
from typing import Any, Callable

from distill.errors import ConfigError
from distill.teacher import server_wire as wire
from distill.teacher.server_faults import Fault, FaultPlan
from distill.teacher.server_responder import DefaultResponder, Responder
from distill.teacher.server_config import ServeConfig

log = logging.getLogger(__name__)

LOOPBACK = ("127.0.0.1", "localhost", "::1")


class Stats:
    """What the server saw; read by tests. Updated only on the server's loop thread."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.requests = 0            # /chat/completions requests received
        self.ok = 0                  # complete, well-formed completions sent (no fault)
        self.connections = 0         # TCP connections accepted (keep-alive reuses them)
        self.in_flight = 0
        self.max_in_flight = 0
        self.by_status: Counter = Counter()
        self.prompts: Counter = Counter()
        self.faults: Counter = Counter()
        self.bodies: list[dict] = []


class _RateWindow:
    """A one-minute sliding window behind the x-ratelimit-* headers."""

    def __init__(self, limit: int) -> None:
        self.limit, self.events = limit, deque()

    def used(self, now: float) -> float:
        while self.events and self.events[0][0] <= now - 60.0:
            self.events.popleft()
        return sum(n for _, n in self.events)

    def reset_in(self, now: float) -> float:
        return max(0.0, self.events[0][0] + 60.0 - now) if self.events else 0.0


class TeacherServer:
    """An OpenAI-compatible /v1 server on 127.0.0.1 with counters and fault injection."""

    def __init__(self, dialect: str = "deepseek", latency: float = 0.0, responder: Responder | None = None,
                 model: str = "test-teacher", *, host: str = "127.0.0.1", port: int = 0,
                 mistake_rate: float = 0.0, seed: int = 0, keepalive: float | None = None,
                 fault_rates: dict[str, float] | None = None, keep_bodies: bool = True) -> None:
        if host not in LOOPBACK:
            raise ConfigError(f"host={host!r}: the teacher server binds loopback addresses only")
        wire.check_dialect(dialect)
        self.dialect, self.latency, self.model = dialect, float(latency), model
        self.responder = responder or DefaultResponder(seed, mistake_rate)
        self.host, self.port, self.keepalive = host, port, keepalive
        for kind in fault_rates or {}:
            wire.check_fault(kind)
        self._faults = FaultPlan(seed, fault_rates)
        self.stats = Stats()
        self.keep_bodies = keep_bodies  # off for long-running `distill teacher serve`: memory stays flat
        self._limits: dict[str, _RateWindow] = {}
        self._enforce = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task] = set()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ control (any thread)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def add_fault(self, kind: str, count: int = 1, match: str | None = None, **opts: Any) -> None:
        """The next ``count`` matching requests get fault ``kind`` (see ``wire.FAULTS``).

        Options: ``retry_after`` (429/503), ``gap`` and ``interval`` (slow_stream).
        """
        wire.check_fault(kind)
        self._faults.add(Fault(kind, count, match, opts))

    def clear_faults(self) -> None:
        self._faults.clear()

    def set_latency(self, seconds: float) -> None:
        self.latency = float(seconds)

    def set_dialect(self, dialect: str) -> None:
        wire.check_dialect(dialect)
        self.dialect = dialect

    def set_ratelimit_headers(self, requests: int | None = None, tokens: int | None = None,
                              enforce: bool = False) -> None:
        """Send x-ratelimit-* headers for these per-minute limits (None: no headers).

        With ``enforce`` a request over a limit gets 429 with Retry-After, like a real provider.
        """
        limits = {}
        if requests is not None:
            limits["requests"] = _RateWindow(int(requests))
        if tokens is not None:
            limits["tokens"] = _RateWindow(int(tokens))
        self._limits, self._enforce = limits, enforce

    def start(self) -> "TeacherServer":
        ready = threading.Event()
        failure: list[BaseException] = []

        def main() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._listen())
            except BaseException as exc:  # reported to the starting thread
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.close()

        self._thread = threading.Thread(target=main, name="teacher-server", daemon=True)
        self._thread.start()
        # Generous: the responder's first import can take long on a loaded machine. Carrying on
        # without a bound port would turn every request into "connection refused".
        if not ready.wait(300):
            raise RuntimeError("teacher server did not start within 300 s")
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        if self._thread is None or self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._thread = None

    close = stop

    def __enter__(self) -> "TeacherServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ serving (loop thread)

    async def _listen(self) -> None:
        preload = getattr(self.responder, "preload", None)
        if preload is not None:
            preload()
        self._server = await asyncio.start_server(
            self._on_connection, self.host, self.port, backlog=2048, limit=1 << 20)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        self.stats.connections += 1
        try:
            while True:
                req = await wire.read_request(reader)
                if req is None:
                    break
                keep = await self._dispatch(req, reader, writer)
                if not keep or not req.keep_alive:
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        except Exception:
            log.exception("teacher server: connection failed")
        finally:
            self._tasks.discard(task)
            writer.transport.abort() if writer.transport.is_closing() else writer.close()

    async def _dispatch(self, req: "wire.Request", reader: asyncio.StreamReader,
                        writer: asyncio.StreamWriter) -> bool:
        path = req.path.split("?", 1)[0].rstrip("/")
        if req.method == "GET" and path.endswith("/models"):
            return await self._send_json(writer, 200, wire.models_body(self.model))
        if req.method == "GET" and path in ("", "/health", "/v1/health"):
            return await self._send_json(writer, 200, {"status": "ok"})
        if req.method == "POST" and path.endswith("/chat/completions"):
            stats = self.stats
            stats.requests += 1
            stats.in_flight += 1
            stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
            try:
                return await self._chat(req, reader, writer)
            finally:
                stats.in_flight -= 1
        return await self._send_error(writer, 404, f"no route {req.method} {path}", "invalid_request_error",
                                      "not_found")

    async def _chat(self, req: "wire.Request", reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        try:
            body = json.loads(req.body or b"null")
            if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body["messages"]:
                raise ValueError("'messages' must be a non-empty list")
        except ValueError as exc:
            return await self._send_error(writer, 400, f"invalid request body: {exc}", "invalid_request_error",
                                          "invalid_request")
        if self.keep_bodies:
            self.stats.bodies.append(body)
        prompt = wire.last_user_text(body["messages"])
        self.stats.prompts[prompt] += 1
        fault = self._faults.take(prompt)
        limited = self._rate_limited() if fault is None else None
        if limited is not None:
            fault = Fault("429", 1, opts={"retry_after": limited})
        if fault is not None:
            self.stats.faults[fault.kind] += 1
            if fault.kind in wire.STATUS_FAULTS:
                return await self._send_status_fault(writer, fault)
            if fault.kind == "hang":
                await self._hang(reader)
                return False
        stream = bool(body.get("stream"))
        try:
            choices = self._answer(body, fault)
        except Exception as exc:
            log.exception("teacher server: responder failed")
            return await self._send_error(writer, 500, f"responder failed: {type(exc).__name__}", "server_error",
                                          "responder_error")
        self._count_tokens(choices)
        if stream:
            return await self._stream(writer, body, choices, fault)
        return await self._respond(writer, body, choices, fault)

    def _rate_limited(self) -> float | None:
        if not self._enforce:
            return None
        now = time.monotonic()
        for window in self._limits.values():
            if window.used(now) >= window.limit:
                return round(max(window.reset_in(now), 0.05), 3)
        return None

    def _answer(self, body: dict, fault: Fault | None) -> list[wire.Choice]:
        n = 1 if body.get("stream") else max(1, int(body.get("n") or 1))
        budget = body.get("max_completion_tokens") or body.get("max_tokens")
        choices = []
        for _ in range(n):
            reasoning, content = self.responder(body["messages"], body)
            choice = wire.make_choice(reasoning, content, budget)
            if fault is not None and fault.kind == "truncate":
                choice = wire.truncated(choice)
            choices.append(choice)
        return choices

    def _count_tokens(self, choices: list[wire.Choice]) -> None:
        now = time.monotonic()
        if "requests" in self._limits:
            self._limits["requests"].events.append((now, 1))
        if "tokens" in self._limits:
            self._limits["tokens"].events.append((now, sum(c.completion_tokens for c in choices)))

    def _ratelimit_headers(self) -> list[tuple[str, str]]:
        now, headers = time.monotonic(), []
        for name, window in self._limits.items():
            remaining = max(0, int(window.limit - window.used(now)))
            headers += [(f"x-ratelimit-limit-{name}", str(window.limit)),
                        (f"x-ratelimit-remaining-{name}", str(remaining)),
                        (f"x-ratelimit-reset-{name}", wire.duration(window.reset_in(now)))]
        return headers

    # ------------------------------------------------------------------ writing responses

    async def _wait(self, writer: asyncio.StreamWriter, seconds: float, filler: bytes,
                    interval: float | None) -> None:
        """Sleep ``seconds``, writing ``filler`` every ``interval`` (keep-alives) if given."""
        if not interval:
            if seconds > 0:
                await asyncio.sleep(seconds)
            return
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            await asyncio.sleep(min(interval, left))
            writer.write(wire.chunk(filler))
            await writer.drain()

    async def _send(self, writer: asyncio.StreamWriter, status: int, head_extra: list, payload: bytes,
                    content_type: str = "application/json") -> bool:
        self.stats.by_status[status] += 1  # counted before sending: the client may look right after
        writer.write(wire.head(status, head_extra + [("content-type", content_type),
                                                     ("content-length", str(len(payload)))]) + payload)
        await writer.drain()
        return True

    async def _send_json(self, writer: asyncio.StreamWriter, status: int, obj: dict,
                         head_extra: list | None = None) -> bool:
        return await self._send(writer, status, head_extra or [], wire.dumps(obj))

    async def _send_error(self, writer: asyncio.StreamWriter, status: int, message: str, type_: str,
                          code: str | None, head_extra: list | None = None) -> bool:
        return await self._send_json(writer, status, wire.error_body(message, type_, code), head_extra)

    async def _send_status_fault(self, writer: asyncio.StreamWriter, fault: Fault) -> bool:
        await asyncio.sleep(min(self.latency, 0.05))
        status, message, type_, code = wire.STATUS_FAULTS[fault.kind]
        extra = []
        retry_after = fault.opts.get("retry_after")
        if retry_after is not None:
            extra.append(("retry-after", wire.number(retry_after)))
        return await self._send_error(writer, status, message, type_, code, extra + self._ratelimit_headers())

    async def _hang(self, reader: asyncio.StreamReader) -> None:
        # Never answer; return when the client gives up (EOF) or the server shuts down.
        while await reader.read(65536):
            pass

    async def _respond(self, writer: asyncio.StreamWriter, body: dict, choices: list, fault: Fault | None) -> bool:
        kind = fault.kind if fault else None
        payload = wire.dumps(wire.completion(self.model, self.dialect, choices, body))
        extra = self._ratelimit_headers()
        if kind != "slow_stream" and not self.keepalive:
            await asyncio.sleep(self.latency)
        if kind == "malformed":
            return await self._send(writer, 200, extra, payload[: len(payload) // 2] + b",,}")
        if kind == "empty":
            return await self._send(writer, 200, extra, b"")
        if kind == "stream_error":  # OpenRouter: 200 with the error in the body
            return await self._send_json(writer, 200, wire.error_body("upstream provider error", "server_error", 502))
        if kind == "drop":
            self.stats.by_status[200] += 1
            writer.write(wire.head(200, extra + [("content-type", "application/json"),
                                                 ("content-length", str(len(payload)))]) + payload[: len(payload) // 2])
            await writer.drain()
            writer.transport.abort()
            return False
        if kind == "slow_stream" or self.keepalive:
            # DeepSeek-style: blank lines while the answer is prepared, then the JSON
            gap = fault.opts.get("gap", 1.0) if kind == "slow_stream" else self.latency
            self.stats.by_status[200] += 1
            writer.write(wire.head(200, extra + [("content-type", "application/json"),
                                                 ("transfer-encoding", "chunked")]))
            await self._wait(writer, gap, b"\n", _interval(fault, self.keepalive))
            self.stats.ok += kind is None
            writer.write(wire.chunk(payload) + wire.chunk(b""))
            await writer.drain()
            return True
        self.stats.ok += kind is None
        return await self._send(writer, 200, extra, payload)

    async def _stream(self, writer: asyncio.StreamWriter, body: dict, choices: list, fault: Fault | None) -> bool:
        kind = fault.kind if fault else None
        self.stats.by_status[200] += 1
        writer.write(wire.head(200, self._ratelimit_headers() + [
            ("content-type", "text/event-stream"), ("cache-control", "no-cache"),
            ("transfer-encoding", "chunked")]))
        comment = wire.keepalive_comment(self.dialect)
        if self.dialect == "openrouter":
            writer.write(wire.chunk(comment))
        await self._wait(writer, self.latency, comment, self.keepalive)
        events = wire.stream_events(self.model, self.dialect, choices[0], body)
        if kind == "empty":
            events = []
        elif kind in ("drop", "malformed", "stream_error"):
            events = events[: max(2, len(events) // 3)]
        if kind == "slow_stream":
            gap = fault.opts.get("gap", 1.0)
            half = len(events) // 2
            writer.write(wire.chunk(b"".join(events[:half])))
            await self._wait(writer, gap, comment, _interval(fault, self.keepalive))
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
        if kind is None or kind in ("slow_stream", "truncate"):
            writer.write(wire.chunk(b"data: [DONE]\n\n"))
        self.stats.ok += kind is None
        writer.write(wire.chunk(b""))
        await writer.drain()
        return True

    # ------------------------------------------------------------------ foreground

    async def run_forever(self, announce: Callable[[str], None] | None = None) -> None:
        """Serve on the current loop until SIGINT/SIGTERM (used by ``distill teacher serve``)."""
        self._loop = asyncio.get_running_loop()
        try:
            await self._listen()
        except OSError as exc:
            raise ConfigError(f"cannot listen on {self.host}:{self.port}: {exc.strerror or exc}") from exc
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._loop.add_signal_handler(sig, stop.set)
            except (NotImplementedError, RuntimeError):  # not the main thread / platform
                pass
        if announce is not None:
            announce(self.base_url)
        await stop.wait()
        await self._shutdown()


def _interval(fault: Fault | None, default: float | None) -> float | None:
    if fault is not None and fault.kind == "slow_stream":
        return float(fault.opts.get("interval", 0.2))
    return default


def serve(cfg: ServeConfig) -> None:
    """Run the offline teacher in the foreground; prints ``serving <base_url>`` once listening."""
    server = TeacherServer(
        dialect=cfg.dialect, latency=cfg.latency, model=cfg.model, host=cfg.host, port=cfg.port,
        mistake_rate=cfg.mistake_rate, seed=cfg.seed, keepalive=cfg.keepalive, fault_rates=cfg.fault_rates,
        keep_bodies=False)
    if cfg.ratelimit_requests is not None or cfg.ratelimit_tokens is not None:
        server.set_ratelimit_headers(cfg.ratelimit_requests, cfg.ratelimit_tokens, enforce=cfg.ratelimit_enforce)

    def announce(url: str) -> None:
        sys.stdout.write(f"serving {url}\n")
        sys.stdout.flush()
        log.info("offline teacher (%s dialect, model %s) at %s; Ctrl-C stops", cfg.dialect, cfg.model, url)

    asyncio.run(server.run_forever(announce))
