"""Kept-trace files for finetune tests and the benchmark: varied lengths, deterministic.

Usage:
    from finetune_fixtures import write_traces
    path = write_traces(tmp_path / "kept.jsonl", n=24, seed=0)
"""

from __future__ import annotations

import json
import random
from pathlib import Path

PROMPT = "{q}\n\nPlease reason step by step, and put your final answer within \\boxed{{}}."


def make_trace(i: int, rng: random.Random, min_terms: int = 2, max_terms: int = 12) -> dict:
    """A correct arithmetic trace whose reasoning length varies with the number of terms."""
    terms = [rng.randint(1, 9) for _ in range(rng.randint(min_terms, max_terms))]
    question = "Compute " + " + ".join(map(str, terms)) + "."
    steps, total = [], 0
    for t in terms:
        steps.append(f"{total} + {t} = {total + t}")
        total += t
    return {
        "schema": 1, "id": f"t{i}", "sample": 0, "question": question, "answer": str(total), "kind": "math",
        "prompt_template": PROMPT.replace("{q}", "{question}"), "system_prompt": None,
        "messages": [{"role": "user", "content": PROMPT.format(q=question)}],
        "reasoning": "Add step by step. " + ". ".join(steps) + ".",
        "content": f"The answer is \\boxed{{{total}}}.",
        "finish_reason": "stop", "truncated": False, "error": None,
        "verdict": {"correct": True, "extracted": str(total), "reason": "correct"},
    }


def write_traces(path: str | Path, n: int = 24, seed: int = 0, **kwargs) -> Path:
    rng = random.Random(seed)
    path = Path(path)
    path.write_text("".join(json.dumps(make_trace(i, rng, **kwargs)) + "\n" for i in range(n)))
    return path
