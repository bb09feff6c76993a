"""A loopback OpenAI-compatible teacher: every reasoning dialect, streaming or not, keep-alives.

Usage:
    from distill.teacher.server import TeacherServer
    with TeacherServer(dialect="deepseek", latency=0.0) as srv:
        client = TeacherClient(TeacherConfig(model="test-teacher", base_url=srv.base_url))
        srv.stats.requests, srv.stats.max_in_flight   # what the server saw

    distill teacher serve port=0 dialect=vllm      # prints "serving http://127.0.0.1:PORT/v1"

Plain HTTP/1.1 on asyncio streams (keep-alive, Content-Length or chunked) so one process serves
hundreds of concurrent requests; the server runs in a background thread with its own loop, or in
the foreground for ``distill teacher serve``. Answers come from the offline teacher
(``distill.offline.families``) when it knows the question, else a generic trace ending in
``\\boxed{42}`` (``distill.teacher.server_responder``). The wire formats live in
``distill.teacher.server_wire``. What a test needs beyond a well-behaved teacher (429s, drops,
malformed bodies, hangs, quotas) is test support: ``tests/faulty_teacher.py`` extends this class.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
import threading
import time
from collections import Counter
from typing import Callable

from distill.errors import ConfigError
from distill.offline.families import TraceStyle
from distill.teacher import server_wire as wire
from distill.teacher.server_config import ServeConfig
from distill.teacher.server_responder import DefaultResponder, Responder

log = logging.getLogger(__name__)

LOOPBACK = ("127.0.0.1", "localhost", "::1")


class Stats:
    """What the server saw (the usage block's ``srv.stats``). Updated only on the server's loop thread.

    Counters (one per distinct prompt at most), so a long `distill teacher serve` or a pipeline run
    does not hold every request; the bodies themselves are kept only when asked (``keep_bodies=True``).
    """

    def __init__(self) -> None:
        self.in_flight = 0  # a live gauge, not a counter: reset() leaves it alone
        self.reset()

    def reset(self) -> None:
        """Zero the counters. A request still being served (a hang the client gave up on) keeps its
        place in ``in_flight``: zeroing it made the gauge go to -1 when that request ended."""
        self.requests = 0            # /chat/completions requests received
        self.ok = 0                  # complete, well-formed completions sent (no fault)
        self.connections = 0         # TCP connections accepted (keep-alive reuses them)
        self.max_in_flight = self.in_flight
        self.by_status: Counter = Counter()
        self.prompts: Counter = Counter()
        self.bodies: list[dict] = []


class TeacherServer:
    """An OpenAI-compatible /v1 server on 127.0.0.1 with counters."""

    def __init__(self, dialect: str = "deepseek", latency: float = 0.0, responder: Responder | None = None,
                 model: str = "test-teacher", *, host: str = "127.0.0.1", port: int = 0,
                 mistake_rate: float = 0.0, seed: int = 0, keepalive: float | None = None,
                 keep_bodies: bool = False, style: TraceStyle = "plain") -> None:
        if host not in LOOPBACK:
            raise ConfigError(f"host={host!r}: the teacher server binds loopback addresses only")
        wire.check_dialect(dialect)
        self.dialect, self.latency, self.model = dialect, float(latency), model
        self.responder = responder or DefaultResponder(seed, mistake_rate, style)
        self.host, self.port, self.keepalive = host, port, keepalive
        self.stats = Stats()
        self.keep_bodies = keep_bodies  # every body in stats.bodies: for a caller that inspects what was sent
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task] = set()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ control (any thread)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def set_latency(self, seconds: float) -> None:
        self.latency = float(seconds)

    def set_dialect(self, dialect: str) -> None:
        wire.check_dialect(dialect)
        self.dialect = dialect

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
        return await self.reply(body, prompt, reader, writer)

    async def reply(self, body: dict, prompt: str, reader: asyncio.StreamReader,
                    writer: asyncio.StreamWriter) -> bool:
        """Answer one well-formed chat request (a test server overrides this to misbehave)."""
        try:
            choices = self.answer(body)
        except Exception as exc:
            log.exception("teacher server: responder failed")
            return await self._send_error(writer, 500, f"responder failed: {type(exc).__name__}", "server_error",
                                          "responder_error")
        if body.get("stream"):
            return await self.stream(writer, body, choices)
        return await self.respond(writer, body, choices)

    def answer(self, body: dict) -> list[wire.Choice]:
        """The choices for a request: the responder's (reasoning, content), cut to the token budget."""
        n = 1 if body.get("stream") else max(1, int(body.get("n") or 1))
        budget = body.get("max_completion_tokens") or body.get("max_tokens")
        return [wire.make_choice(*self.responder(body["messages"], body), budget) for _ in range(n)]

    def extra_headers(self) -> list[tuple[str, str]]:
        """Headers added to every chat response (none here; a test server adds x-ratelimit-*)."""
        return []

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

    async def respond(self, writer: asyncio.StreamWriter, body: dict, choices: list, payload: bytes | None = None,
                      gap: float | None = None, interval: float | None = None, is_ok: bool = True) -> bool:
        """A JSON completion; with keep-alives (``interval``), blank lines for ``gap`` seconds first,
        as DeepSeek sends while a long answer is prepared."""
        payload = payload if payload is not None else wire.dumps(wire.completion(self.model, self.dialect, choices, body))
        extra = self.extra_headers()
        interval = interval if interval is not None else self.keepalive
        gap = gap if gap is not None else self.latency
        if not interval:
            await asyncio.sleep(gap)
            self.stats.ok += is_ok
            return await self._send(writer, 200, extra, payload)
        self.stats.by_status[200] += 1
        writer.write(wire.head(200, extra + [("content-type", "application/json"), ("transfer-encoding", "chunked")]))
        await self._wait(writer, gap, b"\n", interval)
        self.stats.ok += is_ok
        writer.write(wire.chunk(payload) + wire.chunk(b""))
        await writer.drain()
        return True

    async def open_stream(self, writer: asyncio.StreamWriter) -> bytes:
        """Send the SSE head (and the dialect's first keep-alive); returns the keep-alive comment."""
        self.stats.by_status[200] += 1
        writer.write(wire.head(200, self.extra_headers() + [
            ("content-type", "text/event-stream"), ("cache-control", "no-cache"), ("transfer-encoding", "chunked")]))
        comment = wire.keepalive_comment(self.dialect)
        if self.dialect == "openrouter":
            writer.write(wire.chunk(comment))
        await self._wait(writer, self.latency, comment, self.keepalive)
        return comment

    async def stream(self, writer: asyncio.StreamWriter, body: dict, choices: list) -> bool:
        """Server-sent events in the dialect's shape, then ``[DONE]``."""
        await self.open_stream(writer)
        events = wire.stream_events(self.model, self.dialect, choices[0], body)
        writer.write(wire.chunk(b"".join(events) + b"data: [DONE]\n\n"))
        self.stats.ok += 1
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


def serve(cfg: ServeConfig) -> None:
    """Run the offline teacher in the foreground; prints ``serving <base_url>`` once listening."""
    if cfg.teacher_model:  # a real model scoring text (distill.teacher.model_server)
        from distill.teacher.model_server import serve_model

        return serve_model(cfg)
    server = TeacherServer(
        dialect=cfg.dialect, latency=cfg.latency, model=cfg.model, host=cfg.host, port=cfg.port,
        mistake_rate=cfg.mistake_rate, seed=cfg.seed, keepalive=cfg.keepalive, style=cfg.style)

    def announce(url: str) -> None:
        sys.stdout.write(f"serving {url}\n")
        sys.stdout.flush()
        log.info("offline teacher (%s dialect, model %s) at %s; Ctrl-C stops", cfg.dialect, cfg.model, url)

    asyncio.run(server.run_forever(announce))
