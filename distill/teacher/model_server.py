"""A local transformers model served as a scoring teacher: vLLM's /v1/completions with prompt_logprobs.

Usage:
    from distill.teacher.model_server import ModelScorer, ModelTeacherServer
    scorer = ModelScorer(model, tokenizer, max_logprobs=20)
    scorer.prompt_logprobs([5, 17, 9], k=4)      # [None, {"17": {"logprob", "rank", "decoded_token"}}, ...]
    with ModelTeacherServer(scorer, model="tiny") as srv:
        LogprobTeacher(srv.base_url, server="vllm").score([ids], starts=[n])
    with served_model("./teacher", max_logprobs=20) as url:    # load + serve on 127.0.0.1 for a block
        ...

    distill teacher serve teacher_model=smollm2 port=0              # prints "serving http://127.0.0.1:PORT/v1"
    distill teacher serve teacher_model=./base adapter=./adapter max_logprobs=64

So offline runs, tests and users without vLLM have a real model teacher for on-policy
distillation. The answer has vLLM's shape (``choices[].prompt_logprobs``: None for the first
token, then the token itself plus the top-k, keyed by id), and k above ``max_logprobs`` gets
vLLM's 400. There is no prefix cache, so every position is scored. Generation (``max_tokens``)
is greedy and exists only because vLLM's scoring requests ask for one token.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from distill.teacher import server_wire as wire
from distill.teacher.server import TeacherServer

if TYPE_CHECKING:
    from distill.teacher.server_config import ServeConfig

log = logging.getLogger(__name__)


class RequestError(Exception):
    """A request this server refuses, with the HTTP status vLLM gives it."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ModelScorer:
    """Prompt logprobs (and greedy tokens) of one causal LM, in vLLM's completion shape."""

    def __init__(self, model: Any, tokenizer: Any, max_logprobs: int = 20) -> None:
        self.model, self.tokenizer, self.max_logprobs = model, tokenizer, int(max_logprobs)
        self._lock = threading.Lock()  # one forward at a time: the model is not re-entrant on CPU

    def log_softmax(self, ids: list[int]) -> Any:
        """``[len(ids), vocab]`` float32 log-probabilities of the next token after each position."""
        import torch

        with self._lock, torch.no_grad():
            device = next(self.model.parameters()).device
            logits = self.model(input_ids=torch.tensor([ids], device=device)).logits[0]
            return torch.log_softmax(logits.float(), dim=-1).cpu()

    def prompt_logprobs(self, ids: list[int], k: int, rows: Any = None) -> list[dict | None]:
        """vLLM's ``prompt_logprobs``: None, then per token ``{id: {logprob, rank, decoded_token}}``."""
        rows = self.log_softmax(ids) if rows is None else rows
        out: list[dict | None] = [None]
        for i in range(1, len(ids)):
            row = rows[i - 1]
            wanted = [ids[i]]
            if k > 0:
                wanted += [t for t in row.topk(min(k, row.numel())).indices.tolist() if t != ids[i]][:k]
            out.append({str(t): self._entry(row, t) for t in wanted})
        return out

    def _entry(self, row: Any, token: int) -> dict:
        value = float(row[token])
        rank = int((row > row[token]).sum()) + 1
        return {"logprob": max(value, -9999.0), "rank": rank,  # vLLM's JSON-safe floor for -inf
                "decoded_token": self.tokenizer.decode([token])}

    def completion(self, body: dict, model_name: str) -> dict:
        """A whole ``/v1/completions`` answer, or :class:`RequestError` for what vLLM would refuse."""
        prompts = self._prompts(body.get("prompt"))
        k = self._k(body)
        max_tokens = body.get("max_tokens", 16)
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 0:
            raise RequestError(400, f"max_tokens must be a non-negative integer, got {max_tokens!r}")
        if body.get("stream"):
            raise RequestError(400, "streaming is not supported by this scoring server")
        if body.get("logprobs") is not None:
            raise RequestError(400, "this server returns prompt_logprobs only; logprobs of sampled tokens "
                                    "is not supported")
        choices, used = [], 0
        for index, ids in enumerate(prompts):
            choices.append(self._choice(index, ids, k, max_tokens, body))
            used += len(choices[-1].pop("_new"))
        n_prompt = sum(len(p) for p in prompts)
        return {"id": f"cmpl-{time.time_ns():x}", "object": "text_completion", "created": int(time.time()),
                "model": model_name, "choices": choices,
                "usage": {"prompt_tokens": n_prompt, "completion_tokens": used, "total_tokens": n_prompt + used}}

    def _choice(self, index: int, ids: list[int], k: int | None, max_tokens: int, body: dict) -> dict:
        rows = self.log_softmax(ids)
        new = self._greedy(ids, rows, max_tokens)
        text = self.tokenizer.decode(new)
        if body.get("echo"):
            text = self.tokenizer.decode(ids) + text
        choice = {"index": index, "text": text, "logprobs": None,
                  "finish_reason": "length" if len(new) == max_tokens else "stop", "stop_reason": None,
                  "prompt_logprobs": None if k is None else self.prompt_logprobs(ids, k, rows), "_new": new}
        if body.get("return_token_ids"):
            choice["prompt_token_ids"], choice["token_ids"] = list(ids), list(new)
        return choice

    def _greedy(self, ids: list[int], rows: Any, max_tokens: int) -> list[int]:
        new: list[int] = []
        eos = self.tokenizer.eos_token_id
        while len(new) < max_tokens:
            token = int(rows[-1].argmax())
            new.append(token)
            if token == eos or len(new) == max_tokens:  # scoring asks for one token: no forward after it
                break
            rows = self.log_softmax(ids + new)  # recomputed: generation here exists for scoring, not speed
        return new

    def _prompts(self, prompt: Any) -> list[list[int]]:
        if isinstance(prompt, str):
            prompt = [prompt]
        elif isinstance(prompt, list) and prompt and all(isinstance(t, int) for t in prompt):
            prompt = [prompt]
        if not isinstance(prompt, list) or not prompt:
            raise RequestError(400, "prompt must be a string, a list of token ids, or a list of either")
        vocab = self.vocab_size
        out = []
        for item in prompt:
            ids = list(self.tokenizer(item)["input_ids"]) if isinstance(item, str) else item
            if not isinstance(ids, list) or not ids or not all(isinstance(t, int) and 0 <= t < vocab for t in ids):
                raise RequestError(400, f"prompt: each prompt must be text or non-empty token ids in [0, {vocab})")
            out.append(ids)
        return out

    def _k(self, body: dict) -> int | None:
        k = body.get("prompt_logprobs")
        if k is None:
            return None
        if not isinstance(k, int) or isinstance(k, bool) or k < -1:
            raise RequestError(400, f"prompt_logprobs must be an integer >= -1, got {k!r}")
        k = self.vocab_size if k == -1 else k
        if self.max_logprobs != -1 and k > self.max_logprobs:  # vLLM's own wording, so clients read one message
            raise RequestError(400, f"Requested prompt logprobs of {k}, which is greater than max allowed: "
                                    f"{self.max_logprobs}")
        return k

    @property
    def vocab_size(self) -> int:
        return int(self.model.get_output_embeddings().weight.shape[0])


class ModelTeacherServer(TeacherServer):
    """The loopback server's framing and counters, answering ``POST /v1/completions`` from a model."""

    def __init__(self, scorer: ModelScorer, model: str = "distill-model-teacher", *, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        super().__init__(dialect="vllm", responder=_no_chat, model=model, host=host, port=port, keep_bodies=False)
        self.scorer = scorer

    async def _dispatch(self, req: "wire.Request", reader: asyncio.StreamReader,
                        writer: asyncio.StreamWriter) -> bool:
        path = req.path.split("?", 1)[0].rstrip("/")
        if req.method == "POST" and path.endswith("/completions") and not path.endswith("/chat/completions"):
            self.stats.requests += 1
            return await self._complete(req, writer)
        if req.method == "POST":
            return await self._send_error(writer, 404, f"no route POST {path}: this server scores text at "
                                                       "POST /v1/completions", "invalid_request_error", "not_found")
        return await super()._dispatch(req, reader, writer)

    async def _complete(self, req: "wire.Request", writer: asyncio.StreamWriter) -> bool:
        import json

        try:
            body = json.loads(req.body or b"null")
            if not isinstance(body, dict):
                raise RequestError(400, "the request body must be a JSON object")
            answer = await asyncio.to_thread(self.scorer.completion, body, self.model)
        except ValueError as exc:
            return await self._send_error(writer, 400, f"invalid request body: {exc}", "BadRequestError", 400)
        except RequestError as exc:
            return await self._send_error(writer, exc.status, str(exc), "BadRequestError", exc.status)
        self.stats.ok += 1
        return await self._send_json(writer, 200, answer)


def _no_chat(messages: list, request: dict) -> tuple[str | None, str]:
    return None, ""  # never called: POST routes other than /completions get a 404 above


def model_server(teacher_model: str, adapter: str | None = None, max_logprobs: int = 20, name: str | None = None,
                 host: str = "127.0.0.1", port: int = 0) -> ModelTeacherServer:
    """Load ``teacher_model`` (+ ``adapter``) into a (not yet started) scoring server."""
    from distill.student import load_student

    model, tokenizer = load_student(teacher_model, adapter=adapter)
    return ModelTeacherServer(ModelScorer(model, tokenizer, max_logprobs), model=name or teacher_model,
                              host=host, port=port)


@contextlib.contextmanager
def served_model(teacher_model: str, adapter: str | None = None, max_logprobs: int = 20) -> Iterator[str]:
    """``teacher_model`` scoring on 127.0.0.1 (a free port) for as long as the block runs; yields its /v1 URL.

    What ``distill teacher serve teacher_model=...`` runs, in this process: on-policy finetune with
    ``onpolicy.teacher=model`` talks to it over HTTP exactly as to vLLM.
    """
    with model_server(teacher_model, adapter, max_logprobs=max_logprobs) as server:
        log.info("model teacher %s scoring at %s", teacher_model, server.base_url)
        yield server.base_url


def serve_model(cfg: "ServeConfig") -> None:
    """Load ``cfg.teacher_model`` (+ adapter) and serve it in the foreground until Ctrl-C."""
    name = cfg.teacher_model if cfg.model == "distill-offline-teacher" else cfg.model
    server = model_server(cfg.teacher_model, cfg.adapter, cfg.max_logprobs, name, cfg.host, cfg.port)

    def announce(url: str) -> None:
        sys.stdout.write(f"serving {url}\n")
        sys.stdout.flush()
        log.info("model teacher %s (vLLM /v1/completions + prompt_logprobs, k <= %s) at %s; Ctrl-C stops",
                 name, cfg.max_logprobs, url)

    asyncio.run(server.run_forever(announce))
