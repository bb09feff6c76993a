"""An eval folder's outputs.jsonl read a line at a time: which pairs are answered, and the answers that count.

Usage:
    from distill.evaluate.answers import Answers
    answers = Answers(folder / "outputs.jsonl", key)      # refuses a line of another eval (its eval_key)
    answers.is_done("q7", 0)                                # a good answer counts already (a failed one is retried)
    for rec in answers.latest(problems, samples): ...       # the last answer of each pair, in file order

A million answers are never held: the file is read once for the last record of each (id, sample)
(:func:`distill.artifacts.last_of_repeated`, 8 bytes an answer), then again at each pass over
``latest`` (the report's summarise reads it once, ``compare=`` once per accuracy).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from distill.artifacts import Problem, is_latest, last_of_repeated, pair_hash, pair_key, read_records
from distill.errors import ConfigError
from distill.scoring import soundness


def _sorted(hashes: array) -> np.ndarray:
    return np.sort(np.frombuffer(hashes, dtype=np.uint64)) if hashes else np.zeros(0, np.uint64)


def _holds(sorted_hashes: np.ndarray, h: int) -> bool:
    value = np.uint64(h)
    i = int(np.searchsorted(sorted_hashes, value))
    return i < len(sorted_hashes) and sorted_hashes[i] == value


class Answers:
    """outputs.jsonl of the eval ``key``: the answer that counts per (id, sample) is the last one."""

    def __init__(self, path: Path, key: str):
        self.path, self.key = path, key
        hashes, failed = array("Q"), bytearray()
        for line, rec in (read_records(path) if path.exists() else ()):
            pair_key(rec, path, line)  # a broken record is named by its field first, as everywhere else
            if rec.get("eval_key") != key:
                raise ConfigError(f"{path}:{line} holds answers of a different eval (model, adapter, sampling or "
                                  "prompt changed); use another out= or delete the folder")
            hashes.append(pair_hash(rec))
            failed.append(bool(rec.get("error")))
        self.superseded = last_of_repeated(hashes)
        self.done = _sorted(array("Q", (h for i, h in enumerate(hashes)
                                        if not failed[i] and self.superseded.get(h, i) == i)))

    def is_done(self, ident: str, sample: int) -> bool:
        """A good answer to this pair counts already (a failed one is retried)."""
        return _holds(self.done, pair_hash({"id": ident, "sample": sample}))

    def latest(self, problems: Iterable[Problem] | None = None, samples: int | None = None) -> _Latest:
        """The answers that count, in file order; with ``problems``: only theirs, samples below ``samples``."""
        return _Latest(self, problems, samples)


class _Latest:
    """:meth:`Answers.latest`, read again at each pass (summarise reads it once, compare= once per accuracy).

    Answers written before soundness existed (a resumed folder) are scored for it here, from their own text."""

    def __init__(self, answers: Answers, problems: Iterable[Problem] | None, samples: int | None):
        self.answers, self.problems, self.samples = answers, problems, samples
        self.ids = None
        if problems is not None:
            self.ids = _sorted(array("Q", (pair_hash({"id": p["id"]}) for p in problems)))
        self.by_id: dict[str, dict] | None = None  # problems by id, only for answers without soundness

    def _wanted(self, rec: dict) -> bool:
        if self.samples is not None and rec["sample"] >= self.samples:
            return False
        if self.ids is None:
            return True
        return _holds(self.ids, pair_hash({"id": rec["id"]}))

    def __iter__(self) -> Iterator[dict]:
        answers = self.answers
        if not answers.path.exists():
            return
        for i, (_, rec) in enumerate(read_records(answers.path)):
            if is_latest(rec, i, answers.superseded) and self._wanted(rec):
                if "sound" not in rec and not rec.get("error") and self.problems is not None:
                    self._add_soundness(rec)
                yield rec

    def _add_soundness(self, rec: dict) -> None:
        if self.by_id is None:
            self.by_id = {p["id"]: p for p in self.problems}
        problem = self.by_id.get(rec["id"])
        if problem is not None:
            rec.setdefault("family", problem.get("family"))
            rec.update(soundness(rec.get("correct"), rec.get("reasoning"), rec.get("content"), problem))
