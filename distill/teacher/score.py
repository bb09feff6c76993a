"""`distill teacher score`: check, before any training, that a teacher can score the student's tokens.

Usage:
    distill teacher score base_url=http://127.0.0.1:8000/v1 server=vllm student=smollm2 top_k=20
    distill teacher score base_url=http://127.0.0.1:30000 server=sglang text="2 + 2 = 4"

It asks the teacher to tokenise a probe (refusing another vocabulary in one line), then to score
a text (the probe by default) with top-k logprobs, and prints what came back: positions, mean
logprob, placeholders. Every refusal an on-policy run would meet on its first step (capped k,
prefix-cached positions, placeholders only, an unreachable server) shows here in one line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

from distill.config import check_bounds, option
from distill.teacher.config import check_base_url
from distill.teacher.logprobs import PROBE, LogprobTeacher, TeacherLogprobError, check_same_tokenizer


@dataclass
class ScoreConfig:
    """A scoring teacher for on-policy distillation: where it is and which student it must match."""

    base_url: str = option("http://127.0.0.1:8000/v1", "vLLM: the /v1 URL; SGLang: the server root")
    server: Literal["vllm", "sglang"] = option("vllm", "vllm (/v1/completions + prompt_logprobs) | sglang (/generate)")
    model: str | None = option(None, "model name the server knows (vLLM; null: the first it lists)")
    student: str = option("smollm2", "the student whose tokenizer the teacher must share (alias, folder, Hub id)")
    top_k: int = option(20, "teacher top-k logprobs per position (vLLM allows 20 unless --max-logprobs)")
    text: str | None = option(None, "text to score (default: the tokenizer probe)")
    api_key_env: str | None = option(None, "NAME of the environment variable holding the API key, if any")
    timeout: float = option(60.0, "seconds to wait for one answer")
    max_attempts: int = option(3, "attempts per request (connection errors, 429, 5xx) before giving up")

    def __post_init__(self) -> None:
        check_base_url(self.base_url)
        check_bounds(self, {"top_k": ">= 0", "timeout": "> 0", "max_attempts": ">= 1"})


def run(cfg: ScoreConfig) -> str:
    """Probe the tokenizer, score the text; one summary line, or a TeacherLogprobError."""
    from transformers import AutoTokenizer

    from distill.student import resolve_student

    tokenizer = AutoTokenizer.from_pretrained(resolve_student(cfg.student))
    key = os.environ.get(cfg.api_key_env) if cfg.api_key_env else None
    with LogprobTeacher(cfg.base_url, cfg.server, cfg.model, cfg.top_k, api_key=key, timeout=cfg.timeout,
                        max_attempts=cfg.max_attempts) as teacher:
        check_same_tokenizer(teacher, tokenizer)
        ids = list(tokenizer(cfg.text or PROBE)["input_ids"])
        if len(ids) < 2:
            raise TeacherLogprobError("text: give at least two tokens (the first one is never scored)")
        scores = teacher.score([ids], starts=[1])[0]
    good = [lp for lp, ok in zip(scores.logprobs, scores.valid) if ok]
    if not good:
        raise TeacherLogprobError(f"every one of {len(scores.logprobs)} positions came back as a placeholder "
                                  "(0 or -9999): this endpoint does not return real logprobs")
    widths = sorted({len(t) for t in scores.top})
    return (f"teacher ok: same tokenizer as {cfg.student}; {len(scores.logprobs)} positions scored, "
            f"mean logprob {sum(good) / len(good):.4f}, {scores.placeholders} placeholders masked, "
            f"top-k {widths[0]}..{widths[-1]} of {cfg.top_k}")
