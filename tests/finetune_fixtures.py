"""Kept-trace files for finetune tests: varied lengths, deterministic (records from records_factory).

Usage:
    from finetune_fixtures import write_kept_traces
    path = write_kept_traces(tmp_path / "kept.jsonl", n=24, seed=0)
"""

from __future__ import annotations

import random
from pathlib import Path

from records_factory import trace, write_records

PROMPT = "{q}\n\nPlease reason step by step, and put your final answer within \\boxed{{}}."


def make_trace(i: int, rng: random.Random, min_terms: int = 2, max_terms: int = 12) -> dict:
    """A correct arithmetic trace, as filter keeps it, whose reasoning length varies with the number of terms."""
    terms = [rng.randint(1, 9) for _ in range(rng.randint(min_terms, max_terms))]
    question = "Compute " + " + ".join(map(str, terms)) + "."
    steps, total = [], 0
    for t in terms:
        steps.append(f"{total} + {t} = {total + t}")
        total += t
    source = {"id": f"t{i}", "question": question, "answer": str(total), "kind": "math"}
    return trace(source, 0, prompt_template=PROMPT.replace("{q}", "{question}"), system_prompt=None,
                 messages=[{"role": "user", "content": PROMPT.format(q=question)}],
                 reasoning="Add step by step. " + ". ".join(steps) + ".",
                 verdict={"correct": True, "extracted": str(total), "reason": "correct"})


def write_kept_traces(path: str | Path, n: int = 24, seed: int = 0, **kwargs) -> Path:
    rng = random.Random(seed)
    return write_records(path, [make_trace(i, rng, **kwargs) for i in range(n)])
