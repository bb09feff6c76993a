"""The previous round's student as a teacher: an OpenAI-compatible loopback server around the local eval backend.

Usage:
    with student_teacher(eval_cfg, adapter="runs/x/adapter") as url:   # eval_cfg: student, sampling, budget
        run(dataclasses.replace(gen_cfg, base_url=url, provider="offline", api_key_env=None))

Why a server and not a new generate path: generate (resume, cost cap, until_correct, rationalization,
records) and filter then run unchanged on the student's samples, and any OpenAI-compatible endpoint
serving the student (vLLM) is a drop-in replacement. Requests that arrive together are generated in
one batch (left-padded, KV cache) on a worker thread, so the server's loop keeps answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Iterator
from typing import Any

from distill.evaluate.config import EvalConfig
from distill.teacher import server_wire as wire
from distill.teacher.server import TeacherServer

log = logging.getLogger(__name__)

__all__ = ["StudentServer", "student_teacher"]


class StudentServer(TeacherServer):
    """Answers chat requests with ``backend.generate`` (a :class:`distill.evaluate.backends.LocalBackend`)."""

    def __init__(self, backend: Any, model: str = "student", batch_size: int = 8, gather_s: float = 0.05):
        super().__init__(dialect="deepseek", model=model, keep_bodies=False,
                         responder=lambda messages, body: (None, ""))
        self.backend, self.batch_size, self.gather_s = backend, batch_size, gather_s
        self._waiting: list[tuple[dict, asyncio.Future]] = []
        self._busy: asyncio.Lock | None = None
        self._draws = 0

    async def reply(self, body: dict, prompt: str, reader: asyncio.StreamReader,
                    writer: asyncio.StreamWriter) -> bool:
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((body, future))
        if len(self._waiting) == 1:
            asyncio.get_running_loop().create_task(self._flush())
        try:
            choice = await future
        except Exception as exc:  # noqa: BLE001 - one failed batch is a 500 for its requests, not a dead server
            log.exception("student server: generation failed")
            return await self._send_error(writer, 500, f"student failed: {type(exc).__name__}", "server_error",
                                          "responder_error")
        return await self.respond(writer, body, [choice])

    async def _flush(self) -> None:
        """Generate for everything waiting, ``batch_size`` at a time, one batch on the thread at a time."""
        self._busy = self._busy or asyncio.Lock()
        await asyncio.sleep(self.gather_s)  # let the requests sent together arrive together
        async with self._busy:
            while self._waiting:
                batch, self._waiting = self._waiting[:self.batch_size], self._waiting[self.batch_size:]
                prompts = [self._render(body) for body, _ in batch]
                seed, self._draws = self._draws, self._draws + len(batch)
                try:
                    answers = await asyncio.to_thread(self.backend.generate, prompts, seed)
                except Exception as exc:  # noqa: BLE001
                    for _, future in batch:
                        future.set_exception(exc)
                    continue
                for (_, future), answer in zip(batch, answers):
                    choice = wire.make_choice(answer.reasoning, answer.content, None)
                    if answer.truncated:
                        choice = dataclasses.replace(choice, finish_reason="length")
                    future.set_result(choice)

    def _render(self, body: dict) -> str:
        """The request's user message in the student's chat template, with the system prompt it was trained on."""
        from distill.render import render_prompt

        return render_prompt(self.backend.tokenizer, wire.last_user_text(body["messages"]),
                             self.backend.cfg.system_prompt)


@contextlib.contextmanager
def student_teacher(cfg: EvalConfig, adapter: str | None, model: str = "student") -> Iterator[str]:
    """Load ``cfg.student`` (+ ``adapter``) and serve it on 127.0.0.1 for as long as the block runs."""
    from distill.evaluate.backends import LocalBackend
    from distill.evaluate.stage import as_trained

    cfg = as_trained(dataclasses.replace(cfg, adapter=adapter))
    backend = LocalBackend.load(cfg, adapter)
    with StudentServer(backend, model=model, batch_size=cfg.batch_size) as server:
        log.info("student teacher: %s%s sampling at temperature %s on %s", cfg.student,
                 f" + {adapter}" if adapter else "", cfg.temperature, server.base_url)
        yield server.base_url
