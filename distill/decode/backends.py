"""Answer generation for a student: local transformers (batched), vLLM, or an OpenAI-compatible API.

Usage:
    backend = LocalBackend.load(cfg)                 # or ApiBackend(cfg), VllmBackend.load(cfg)
    backend.run(jobs, on_result)                     # on_result(job, Answer) as answers arrive
    backend.apply_adapter("out/adapter")             # local: base first, then base + adapter

Every backend returns the same :class:`Answer`, so scoring and reports do not care where an
answer came from. A job is one (problem, sample index) with the user message the student sees,
built from the same prompt template generate sent to the teacher.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from distill.errors import ConfigError
from distill.teacher.capture import split_think


class DecodeSettings(Protocol):
    """What a backend reads of its caller's config: eval's EvalConfig has these fields, DecodeOptions too."""

    student: str | None
    adapter: str | None
    dtype: str
    system_prompt: str | None
    batch_size: int
    max_new_tokens: int
    temperature: float
    top_p: float
    sampling_seed: int
    api: Any


@dataclass
class DecodeOptions:
    """Local decoding settings for a caller that is not eval (finetune's dev scoring): greedy by default."""

    student: str | None
    max_new_tokens: int
    batch_size: int
    system_prompt: str | None = None
    adapter: str | None = None
    dtype: str = "auto"
    temperature: float = 0.0
    top_p: float = 1.0
    sampling_seed: int = 0
    api: Any = None

log = logging.getLogger(__name__)


@dataclass
class Job:
    problem: dict
    sample: int
    user: str  # the user message (prompt template applied)


@dataclass
class Answer:
    response: str  # everything the model produced (reasoning included)
    reasoning: str | None
    content: str
    truncated: bool
    finish_reason: str | None
    completion_tokens: int
    reasoning_tokens: int
    latency_s: float = 0.0
    cost_usd: float | None = None
    error: dict | None = None


OnResult = Callable[[Job, Answer], None]


def _messages(user: str, system_prompt: str | None) -> list[dict]:
    return ([{"role": "system", "content": system_prompt}] if system_prompt else []) + \
        [{"role": "user", "content": user}]


# ---------------------------------------------------------------- local (transformers)


class LocalBackend:
    """Batched ``model.generate``: left padding, KV cache, stop at EOS, greedy or seeded sampling;
    finished answers leave the batch as it runs (:mod:`distill.decode.regroup`).

    ``base`` keeps the weights as loaded; ``model`` is what generates: the base itself, or a copy
    with an adapter merged in (no LoRA matmuls per token) and cast to ``dtype`` (bf16 where the
    hardware has it, under ``dtype=auto``). Merging happens in the base's precision, then one cast.
    """

    def __init__(self, model, tokenizer, cfg: DecodeSettings, adapter: str | None = None):
        self.base, self.tokenizer, self.cfg = model.eval(), tokenizer, cfg
        self.dtype = generation_dtype(cfg.dtype, model)
        if adapter:
            self.apply_adapter(adapter)
        else:
            self.model = _cast_copy(self.base, self.dtype)
        self.tokenizer.padding_side = "left"  # generation appends on the right: pads must sit left
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.eos_ids = _eos_ids(model, tokenizer)
        self.generated_tokens = 0
        self.generate_seconds = 0.0

    @classmethod
    def load(cls, cfg: DecodeSettings, adapter: str | None = None) -> LocalBackend:
        import torch

        from distill.student import load_student

        # On a CPU the base loads in float32 whatever dtype= says: an adapter merges at full
        # precision and the generating copy is cast once. On a GPU it loads as asked (memory).
        model, tokenizer = load_student(cfg.student, adapter=None,
                                        dtype=cfg.dtype if torch.cuda.is_available() else "float32")
        tokenizer = _adapter_tokenizer(cfg.adapter) or tokenizer
        return cls(model, tokenizer, cfg, adapter)

    def apply_adapter(self, adapter: str) -> None:
        """Generate with ``adapter`` merged into a copy of the base weights (the base stays as loaded)."""
        import copy

        from peft import PeftModel

        peft = PeftModel.from_pretrained(copy.deepcopy(self.base), adapter).eval()
        try:
            merged = peft.merge_and_unload()
        except (ValueError, NotImplementedError, TypeError) as exc:  # an adapter type peft cannot merge
            log.warning("adapter %s cannot be merged (%s): generating through the unmerged adapter", adapter, exc)
            merged = peft
        self.model = merged.to(self.dtype).eval()

    def render(self, job: Job) -> str:
        from distill.render import render_prompt

        return render_prompt(self.tokenizer, job.user, self.cfg.system_prompt)

    def run(self, jobs: Iterable[Job], on_result: OnResult) -> None:
        jobs = list(jobs)  # batched by length: every prompt is rendered first
        prompts = [self.render(j) for j in jobs]
        lengths = [len(self.tokenizer(p, add_special_tokens=False).input_ids) for p in prompts]
        # Similar lengths together waste less compute on padding; longest first fails fast on memory.
        order = sorted(range(len(jobs)), key=lambda i: -lengths[i])
        size = self.cfg.batch_size
        for start in range(0, len(order), size):
            idx = order[start:start + size]
            answers = self.generate([prompts[i] for i in idx], seed=self.cfg.sampling_seed + start)
            for i, answer in zip(idx, answers):
                on_result(jobs[i], answer)

    def generate(self, prompts: list[str], seed: int = 0) -> list[Answer]:
        """One batch of prompts (already rendered) -> answers."""
        import torch

        from distill.decode.regroup import generate_regrouped

        cfg, tok = self.cfg, self.tokenizer
        prompt_ids = tok(prompts, add_special_tokens=False)["input_ids"]
        started = time.perf_counter()
        with torch.inference_mode():
            new = generate_regrouped(self.model, prompt_ids, self.eos_ids, tok.pad_token_id, cfg.max_new_tokens,
                                     temperature=cfg.temperature, top_p=cfg.top_p, seed=seed)
        elapsed = time.perf_counter() - started
        answers = [self._answer(row, elapsed / len(prompts)) for row in new]
        self.generate_seconds += elapsed
        self.generated_tokens += sum(a.completion_tokens for a in answers)
        return answers

    def _answer(self, ids: list[int], latency: float) -> Answer:
        stop = next((i for i, t in enumerate(ids) if t in self.eos_ids), None)
        kept = ids if stop is None else ids[:stop]
        text = self.tokenizer.decode(kept, skip_special_tokens=False)
        for special in (self.tokenizer.pad_token, self.tokenizer.eos_token):
            if special:
                text = text.replace(special, "")
        reasoning, content = split_think(text)
        r_tokens = len(self.tokenizer(reasoning, add_special_tokens=False).input_ids) if reasoning else 0
        return Answer(response=text, reasoning=reasoning, content=content, truncated=stop is None,
                      finish_reason="length" if stop is None else "stop", completion_tokens=len(kept) + (stop is not None),
                      reasoning_tokens=r_tokens, latency_s=latency)


def generation_dtype(setting: str, model):
    """The dtype to generate in: ``auto`` is bf16 where the hardware runs it fast, else the model's own."""
    import torch

    from distill.hardware import use_bf16

    if setting not in (None, "auto"):
        from distill.student import resolve_dtype

        return resolve_dtype(setting)
    if model.dtype in (torch.float32, torch.bfloat16) and use_bf16("auto"):
        return torch.bfloat16
    return model.dtype


def _cast_copy(model, dtype):
    """``model`` itself when it already has ``dtype``, else a copy cast to it (the original stays for merging)."""
    import copy

    return model if model.dtype == dtype else copy.deepcopy(model).to(dtype).eval()


def _eos_ids(model, tokenizer) -> list[int]:
    """Every token that ends a turn: the generation config's, the tokenizer's, and ChatML's ``<|im_end|>``."""
    ids: set[int] = set()
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids.update(configured if isinstance(configured, list) else [configured] if configured is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    for token in ("<|im_end|>", "<|eot_id|>", "<|end|>"):
        tid = tokenizer.convert_tokens_to_ids(token)
        if isinstance(tid, int) and tid != tokenizer.unk_token_id and tid >= 0:
            ids.add(tid)
    return sorted(ids)


def _adapter_tokenizer(adapter: str | None):
    """The tokenizer saved beside the adapter (finetune saves the one it trained with), if any."""
    if not adapter or not (Path(adapter) / "tokenizer_config.json").is_file():
        return None
    from transformers import AutoTokenizer

    from distill.student import prepare_tokenizer

    return prepare_tokenizer(AutoTokenizer.from_pretrained(adapter))


# ---------------------------------------------------------------- vLLM


class VllmBackend:
    """Offline vLLM engine (``pip install vllm``); LoRA adapters through ``LoRARequest``."""

    def __init__(self, cfg: DecodeSettings):
        try:
            from vllm import LLM
        except ImportError:
            raise ConfigError("backend=vllm needs vLLM (pip install vllm, Linux + GPU); "
                              "use backend=local, or serve the model with vLLM and use backend=api") from None
        from distill.student import resolve_student

        self.cfg = cfg
        self.path = str(resolve_student(cfg.student))
        self.llm = LLM(model=self.path, enable_lora=bool(cfg.adapter), seed=cfg.sampling_seed)
        self.tokenizer = _adapter_tokenizer(cfg.adapter) or self.llm.get_tokenizer()
        self.lora = None

    @classmethod
    def load(cls, cfg: DecodeSettings, adapter: str | None = None) -> VllmBackend:
        backend = cls(cfg)
        if adapter:
            backend.apply_adapter(adapter)
        return backend

    def apply_adapter(self, adapter: str) -> None:
        from vllm.lora.request import LoRARequest

        self.lora = LoRARequest("adapter", 1, str(Path(adapter).resolve()))

    def run(self, jobs: Iterable[Job], on_result: OnResult) -> None:
        from vllm import SamplingParams

        from distill.render import render_prompt

        cfg = self.cfg
        jobs = list(jobs)  # vLLM schedules the whole list itself
        prompts = [render_prompt(self.tokenizer, j.user, cfg.system_prompt) for j in jobs]
        params = [SamplingParams(temperature=cfg.temperature, top_p=cfg.top_p if cfg.temperature > 0 else 1.0,
                                 max_tokens=cfg.max_new_tokens, seed=cfg.sampling_seed + j.sample) for j in jobs]
        outputs = self.llm.generate(prompts, params, lora_request=self.lora)
        for job, out in zip(jobs, outputs):
            gen = out.outputs[0]
            reasoning, content = split_think(gen.text)
            on_result(job, Answer(response=gen.text, reasoning=reasoning, content=content,
                                  truncated=gen.finish_reason == "length", finish_reason=gen.finish_reason,
                                  completion_tokens=len(gen.token_ids),
                                  reasoning_tokens=len(self.tokenizer(reasoning).input_ids) if reasoning else 0))


# ---------------------------------------------------------------- API


class ApiBackend:
    """Any OpenAI-compatible endpoint through the teacher client (retries, rate limits, concurrency)."""

    def __init__(self, cfg: DecodeSettings, client=None):
        self.cfg = cfg
        self.teacher_cfg = dataclasses.replace(
            cfg.api, system_prompt=None,
            temperature=cfg.api.temperature if cfg.api.temperature is not None else cfg.temperature,
            top_p=cfg.api.top_p if cfg.api.top_p is not None else cfg.top_p,
            max_tokens=cfg.api.max_tokens or cfg.max_new_tokens)
        self.client = client

    def apply_adapter(self, adapter: str) -> None:
        raise ConfigError("backend=api scores the endpoint as served; adapter= applies to local/vllm backends")

    def run(self, jobs: Iterable[Job], on_result: OnResult) -> None:
        asyncio.run(self._run(jobs, on_result))

    async def _run(self, jobs: Iterable[Job], on_result: OnResult) -> None:
        from distill.teacher.client import TeacherClient

        client = self.client or TeacherClient(self.teacher_cfg)
        pending = iter(jobs)

        async def worker() -> None:
            # A fixed pool pulls the jobs, as generate's workers do: a task per job would hold a
            # million tasks and queue them all on the client's limiter, which wakes every waiter at
            # each answer (time quadratic in the jobs).
            for job in pending:
                messages = _messages(job.user, self.cfg.system_prompt)
                completion = await client.complete(messages, max_tokens=self.teacher_cfg.max_tokens,
                                                   sample=job.sample)
                on_result(job, _from_completion(completion))

        workers = [asyncio.ensure_future(worker()) for _ in range(max(1, self.teacher_cfg.concurrency))]
        try:
            done, _ = await asyncio.wait(workers, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()  # the first error (a fatal 401) ends the run
        finally:
            # The other workers are cancelled and their outcome collected, so none is left to print
            # "Task exception was never retrieved".
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            if self.client is None:
                await client.aclose()


def _from_completion(c) -> Answer:
    usage = c.usage or {}
    reasoning, content = c.reasoning, c.content or ""
    if reasoning is None and "</think>" in content:
        reasoning, content = split_think(content)
    response = f"<think>\n{reasoning}\n</think>\n\n{content}" if reasoning else content
    r_tokens = usage.get("reasoning_tokens") or (len(reasoning.split()) if reasoning else 0)
    return Answer(response=response, reasoning=reasoning, content=content, truncated=bool(c.truncated),
                  finish_reason=c.finish_reason, completion_tokens=int(usage.get("completion_tokens") or 0),
                  reasoning_tokens=int(r_tokens), latency_s=float(c.latency_s or 0.0), cost_usd=c.cost_usd,
                  error=c.error)
