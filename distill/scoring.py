"""Score one answer of a student: the verifier's verdict, soundness, and the record both eval and dev scoring write.

Usage:
    from distill.scoring import score
    record = score(job, answer, eval_key, source="offline:eval")   # one outputs.jsonl line
    record["correct"], record["sound"], record["false_steps"]

A building block: `distill eval` writes these records to outputs.jsonl and finetune's dev scoring
to dev_outputs.jsonl, so both are judged by :func:`distill.verify.check_record` (the verdict the
filter and the sampler give too) and by :func:`distill.soundness.false_steps`.
"""

from __future__ import annotations

from datetime import datetime, timezone

from distill.artifacts import SCHEMA, Problem
from distill.decode.backends import Answer, Job
from distill.soundness import false_steps
from distill.verify import check_record

__all__ = ["score", "soundness"]


def score(job: Job, answer: Answer, key: str, source: str) -> dict:
    """One outputs.jsonl record: the problem, what the model said, and the verifier's verdict
    (:func:`distill.verify.check_record`, the one the filter and the sampler give the same answer)."""
    p = job.problem
    verdict = check_record({"answer": p["answer"], "kind": p.get("kind"), "options": p.get("options"),
                            "content": answer.content, "truncated": answer.truncated,
                            "finish_reason": answer.finish_reason, "error": answer.error}).as_dict()
    verdict.update(soundness(verdict["correct"], answer.reasoning, answer.content, p))
    return {"schema": SCHEMA, "eval_key": key, "id": p["id"], "sample": job.sample, "source": source,
            "family": p.get("family"),
            "kind": p["kind"], "question": p["question"], "gold": p["answer"], "prompt": job.user,
            "response": answer.response, "reasoning": answer.reasoning, "content": answer.content,
            **verdict, "truncated": answer.truncated, "finish_reason": answer.finish_reason,
            "completion_tokens": answer.completion_tokens, "reasoning_tokens": answer.reasoning_tokens,
            "latency_s": round(answer.latency_s, 4), "cost_usd": answer.cost_usd, "error": answer.error,
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def soundness(correct: bool | None, reasoning: str | None, content: str | None, problem: Problem) -> dict:
    """``sound`` (correct and no false step in the model's own reasoning) and the false steps found."""
    text = "\n".join(t for t in (reasoning, content) if t)
    steps = false_steps(text, problem) if correct is not None else []
    return {"sound": None if correct is None else bool(correct) and not steps, "false_steps": steps}
