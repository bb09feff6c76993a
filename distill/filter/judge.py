"""The optional LLM judge: a second opinion where the rule verifier cannot decide, and an audit of it.

Usage:
    from distill.filter.judge import judge_messages, parse_judgement, ask_judge
    msgs = judge_messages(trace)                            # one chat request per trace
    verdicts = ask_judge(client, traces, cfg.judge)        # [{"correct", "answer", "model", "error"}]

The judge sees the question, the reference answer and the trace's final content (not the
reasoning: it grades the answer, as the rule verifier does) and must end with one word,
CORRECT or INCORRECT. Anything else is recorded as undecided (correct=None). Requests go
through distill.teacher.client.TeacherClient, so rate limits, retries and prices are the
teacher's; a 401/402 stops the stage with TeacherFatalError.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from typing import TYPE_CHECKING

from distill.filter.config import JudgeConfig
from distill.records import code_digest

if TYPE_CHECKING:  # the client (openai, httpx) loads only when the judge is asked
    from distill.teacher.client import TeacherClient

log = logging.getLogger(__name__)

SYSTEM = ("You are a strict grader. Decide whether a response's final answer is equivalent to the "
          "reference answer. Ignore the working; judge only the final answer.")
TEMPLATE = ("Problem:\n{question}\n\nReference answer:\n{answer}\n\nResponse:\n{content}\n\n"
            "Is the response's final answer equivalent to the reference answer? Explain briefly, then "
            "write the single word CORRECT or INCORRECT on the last line.")
_WORD = re.compile(r"\b(INCORRECT|CORRECT)\b")
_MAX_CHARS = 6000  # the tail of a long response holds the final answer


def judge_key(cfg: JudgeConfig) -> str:
    """Cache key of judge verdicts: every request field and the endpoint, plus this module's code
    (the prompt and how an answer is parsed); not how fast or how often it is asked."""
    urls = cfg.base_url if isinstance(cfg.base_url, list) else [cfg.base_url]
    request = {"model": cfg.model, "endpoints": sorted(urls), "provider": cfg.provider,
               "system_prompt": cfg.system_prompt, "temperature": cfg.temperature, "top_p": cfg.top_p,
               "max_tokens": cfg.max_tokens, "extra_body": cfg.extra_body, "code": code_digest(__name__)}
    return hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode()).hexdigest()[:16]


def is_audited(line_hash: str, share: float, seed: int) -> bool:
    """Deterministic sample of rule-decided traces for the agreement audit."""
    if share <= 0:
        return False
    digest = hashlib.sha256(f"{seed}:{line_hash}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2 ** 64 < share


def judge_messages(trace: dict, system_prompt: str | None = None) -> list[dict]:
    """The chat request asking the judge about one trace."""
    content = str(trace.get("content") or "")
    if len(content) > _MAX_CHARS:
        content = "..." + content[-_MAX_CHARS:]
    user = TEMPLATE.format(question=trace.get("question", ""), answer=trace.get("answer", ""), content=content)
    return [{"role": "system", "content": system_prompt or SYSTEM}, {"role": "user", "content": user}]


def parse_judgement(text: str | None) -> bool | None:
    """True for CORRECT, False for INCORRECT (the last such word counts), None when neither appears."""
    if not text:
        return None
    words = _WORD.findall(text)
    if not words:
        return None
    return words[-1] == "CORRECT"


def ask_judge(client: TeacherClient, traces: list[dict], cfg: JudgeConfig) -> list[dict]:
    """One judge verdict per trace, in order (client: the filter stage's TeacherClient for ``cfg``)."""
    if not traces:
        return []
    batch = [judge_messages(t, cfg.system_prompt) for t in traces]
    completions = client.complete_many(batch, max_tokens=cfg.max_tokens)
    out = []
    for c in completions:
        if c.error:
            out.append({"correct": None, "answer": None, "model": c.model, "error": c.error.get("type", "error")})
            continue
        out.append({"correct": parse_judgement(c.content), "answer": (c.content or "")[-200:],
                    "model": c.model, "error": None, "cost_usd": round(c.cost_usd or 0.0, 6)})
    return out
