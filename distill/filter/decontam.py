"""Decontamination: word n-grams of evaluation questions, and the overlap of a training question with them.

Usage:
    from distill.filter.decontam import build_index, overlap
    index = build_index(["eval/math500.jsonl", "rg:chain_sum"], n=8)   # EvalIndex
    overlap("What is 2 + 3 ...", index)    # how many of the question's n-grams occur in eval problems

Eval problems come from plain JSONL files (any field named by ``question_field``) or any source
distill.sources understands (``rg:task``, a Hub dataset, Parquet...). Questions shorter than
``n`` words are matched whole. Text is lower-cased and stripped of punctuation first, so
formatting differences ("$2+3$" vs "2 + 3") do not hide a copy.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from distill.errors import InputError
from distill.records import read_jsonl

__all__ = ["EvalIndex", "build_index", "overlap", "question_grams"]

_WORD = re.compile(r"[^\W_]+", re.UNICODE)


@dataclass
class EvalIndex:
    """Hashed n-grams of the evaluation questions, plus a digest that keys the filter cache."""

    n: int
    grams: set[int] = field(default_factory=set)
    digest: str = ""
    questions: int = 0


def question_grams(text: str, n: int) -> set[int]:
    """Stable hashes of the word n-grams of ``text`` (the whole text when shorter than n)."""
    words = _WORD.findall(text.lower())
    if not words:
        return set()
    if len(words) < n:
        spans = [" ".join(words)]
    else:
        spans = [" ".join(words[i:i + n]) for i in range(len(words) - n + 1)]
    return {int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8).digest(), "little") for s in spans}


def build_index(specs: list[str], n: int, question_field: str = "question") -> EvalIndex:
    """Read every evaluation source and index its questions' n-grams."""
    index = EvalIndex(n=n)
    digest = hashlib.sha256(f"n={n}".encode())
    for spec in specs:
        for question in _questions(spec, question_field):
            index.grams |= question_grams(question, n)
            index.questions += 1
            digest.update(question.encode("utf-8", "replace") + b"\0")
    index.digest = digest.hexdigest()[:16]
    return index


def overlap(question: str, index: EvalIndex) -> int:
    """Number of the question's n-grams found in the evaluation problems."""
    if not index.grams or not question:
        return 0
    return len(question_grams(question, index.n) & index.grams)


def _questions(spec: str, question_field: str) -> list[str]:
    path = Path(spec).expanduser()
    if path.suffix.lower() in (".jsonl", ".ndjson") and path.is_file():
        out = []
        for line, rec in read_jsonl(path):
            q = rec.get(question_field)
            if not isinstance(q, str) or not q.strip():
                raise InputError("missing or empty question in an eval problem (set decontam.question_field)",
                                 path=path, line=line, field=question_field)
            out.append(q)
        return out
    from distill.sources import SourceConfig
    from distill.sources import load_problems

    return [p["question"] for p in load_problems(SourceConfig(problems=spec, question_field=question_field))]
