"""Teachers the pipeline starts on 127.0.0.1: the built-in offline one, and the previous round's student.

Usage:
    with offline_teacher(cfg.offline_teacher) as url:                 # round 1 with teacher=offline
        run(dataclasses.replace(gen_cfg, base_url=url))
    with student_teacher(eval_cfg, adapter="runs/x/adapter") as url:   # eval_cfg: student, sampling, budget
        run(dataclasses.replace(gen_cfg, base_url=url, provider="offline", api_key_env=None))

    with student_server(eval_cfg, None, model="base", runtime_lora=True) as srv:   # vLLM's runtime LoRA API
        LoraEndpoint(srv.base_url).load("r1", "runs/x/adapter")   # then chat with model="r1"

Why a server and not a new generate path: generate (resume, cost cap, until_correct, rationalization,
records) and filter then run unchanged on the student's samples, and any OpenAI-compatible endpoint
serving the student (vLLM) is a drop-in replacement. Requests that arrive together are generated in
one batch (left-padded, KV cache) on a worker thread, so the server's loop keeps answering; a batch
holds one model name. With ``runtime_lora`` it answers vLLM's ``POST /v1/load_lora_adapter`` as vLLM
does (the status codes and messages of its serving_models.py), so the loop's ``generator: endpoint``
is tested against the same contract; names it does not serve get vLLM's 404.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from distill.errors import DistillError
from distill.evaluate.config import EvalConfig
from distill.pipeline.config import OfflineTeacherConfig
from distill.teacher import server_wire as wire
from distill.teacher.server import TeacherServer

log = logging.getLogger(__name__)

__all__ = ["StudentServer", "offline_teacher", "student_server", "student_teacher"]


class StudentServer(TeacherServer):
    """Answers chat requests with ``backend.generate`` (a :class:`distill.decode.backends.LocalBackend`)."""

    def __init__(self, backend: Any, model: str = "student", batch_size: int = 8, gather_s: float = 0.05,
                 *, runtime_lora: bool = False, api_key: str | None = None):
        super().__init__(dialect="deepseek", model=model, responder=lambda messages, body: (None, ""))
        self.backend, self.batch_size, self.gather_s = backend, batch_size, gather_s
        self.runtime_lora, self.api_key = runtime_lora, api_key
        self._models: dict[str, Any] = {model: backend.model}  # served name -> the weights that generate
        self.adapters: dict[str, str] = {}  # lora_name -> lora_path, as loaded
        self._waiting: list[tuple[dict, asyncio.Future]] = []
        self._busy: asyncio.Lock | None = None
        self._draws = 0

    async def _dispatch(self, req: Any, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        path = req.path.split("?", 1)[0].rstrip("/")
        if self.api_key and path.startswith("/v1") and req.headers.get("authorization") != f"Bearer {self.api_key}":
            return await self._send_json(writer, 401, {"error": "Unauthorized"})  # vLLM --api-key's answer
        if self.runtime_lora and req.method == "POST" and path == "/v1/load_lora_adapter":
            return await self._load(req, writer)
        return await super()._dispatch(req, reader, writer)

    async def _load(self, req: Any, writer: asyncio.StreamWriter) -> bool:
        """vLLM's load_lora_adapter: merge the adapter into a copy of the base, serve it under ``lora_name``."""
        try:
            body = json.loads(req.body or b"{}")
        except ValueError:
            body = None
        if not isinstance(body, dict) or not body.get("lora_name") or not body.get("lora_path"):
            return await self._vllm_error(writer, 400, "Both 'lora_name' and 'lora_path' must be provided.",
                                          "InvalidUserInput")
        name, path = str(body["lora_name"]), str(body["lora_path"])
        if name in self._models:
            return await self._vllm_error(writer, 400, f"The lora adapter '{name}' has already been loaded.",
                                          "InvalidUserInput")
        if not (Path(path) / "adapter_config.json").is_file():
            return await self._vllm_error(writer, 404, f"No adapter found for {path}", "NotFoundError")
        self._busy = self._busy or asyncio.Lock()
        async with self._busy:  # never while a batch generates
            self._models[name] = await asyncio.to_thread(self._merged, path)
        self.adapters[name] = path
        log.info("student server: loaded %s as %s", path, name)
        return await self._send(writer, 200, [], f"Success: LoRA adapter '{name}' added successfully.".encode(),
                                "text/plain; charset=utf-8")

    def _merged(self, path: str) -> Any:
        base = self.backend.model
        self.backend.apply_adapter(path)
        merged, self.backend.model = self.backend.model, base
        return merged

    async def _vllm_error(self, writer: asyncio.StreamWriter, status: int, message: str, type_: str) -> bool:
        return await self._send_json(writer, status, wire.error_body(message, type_, status))

    async def reply(self, body: dict, prompt: str, reader: asyncio.StreamReader,
                    writer: asyncio.StreamWriter) -> bool:
        if body.get("model", self.model) not in self._models:
            return await self._vllm_error(writer, 404, f"The model `{body.get('model')}` does not exist.",
                                          "NotFoundError")
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
        # Named as asked, as vLLM names a LoRA's completions: the trace records which adapter wrote it.
        payload = wire.dumps(wire.completion(body.get("model", self.model), self.dialect, [choice], body))
        return await self.respond(writer, body, [choice], payload=payload)

    async def _flush(self) -> None:
        """Generate for everything waiting, ``batch_size`` at a time, one batch on the thread at a time."""
        self._busy = self._busy or asyncio.Lock()
        await asyncio.sleep(self.gather_s)  # let the requests sent together arrive together
        async with self._busy:
            while self._waiting:
                name = self._waiting[0][0].get("model", self.model)
                batch = [item for item in self._waiting if item[0].get("model", self.model) == name][:self.batch_size]
                self._waiting = [item for item in self._waiting if not any(item is b for b in batch)]
                prompts = [self._render(body) for body, _ in batch]
                seed, self._draws = self._draws, self._draws + len(batch)
                try:
                    answers = await asyncio.to_thread(self._generate, name, prompts, seed)
                except Exception as exc:  # noqa: BLE001
                    for _, future in batch:
                        future.set_exception(exc)
                    continue
                for (_, future), answer in zip(batch, answers):
                    choice = wire.make_choice(answer.reasoning, answer.content, None)
                    if answer.truncated:
                        choice = dataclasses.replace(choice, finish_reason="length")
                    future.set_result(choice)

    def _generate(self, name: str, prompts: list[str], seed: int) -> list[Any]:
        self.backend.model = self._models[name]  # on the worker thread, under the busy lock: one batch at a time
        return self.backend.generate(prompts, seed)

    def _render(self, body: dict) -> str:
        """The request's user message in the student's chat template, with the system prompt it was trained on."""
        from distill.render import render_prompt

        return render_prompt(self.backend.tokenizer, wire.last_user_text(body["messages"]),
                             self.backend.cfg.system_prompt)


def student_server(cfg: EvalConfig, adapter: str | None, model: str = "student", **options: Any) -> StudentServer:
    """A (not yet started) server for ``cfg.student`` (+ ``adapter``), prompted the way the adapter was trained."""
    from distill.decode.backends import LocalBackend
    from distill.evaluate.stage import as_trained

    cfg = as_trained(dataclasses.replace(cfg, adapter=adapter))
    return StudentServer(LocalBackend.load(cfg, adapter), model=model, batch_size=cfg.batch_size, **options)


@contextlib.contextmanager
def student_teacher(cfg: EvalConfig, adapter: str | None, model: str = "student") -> Iterator[str]:
    """Load ``cfg.student`` (+ ``adapter``) and serve it on 127.0.0.1 for as long as the block runs."""
    with student_server(cfg, adapter, model) as server:
        log.info("student teacher: %s%s sampling at temperature %s on %s", cfg.student,
                 f" + {adapter}" if adapter else "", cfg.temperature, server.base_url)
        yield server.base_url


@contextlib.contextmanager
def offline_teacher(cfg: OfflineTeacherConfig) -> Iterator[str]:
    """The built-in offline teacher on 127.0.0.1 (a free port), for as long as generate needs it."""
    server = TeacherServer(dialect=cfg.dialect, latency=cfg.latency, model=cfg.model,
                           mistake_rate=cfg.mistake_rate, seed=cfg.seed, style=cfg.style)
    with server:
        if not server.port:
            raise DistillError("the built-in offline teacher did not start listening (machine overloaded?); run again")
        log.info("teacher: the built-in offline teacher at %s (for trying the pipeline; "
                 "use a generate/*.yaml recipe for a real one)", server.base_url)
        yield server.base_url
