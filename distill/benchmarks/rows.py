"""Each benchmark's real Hub schema mapped to distill's Problem records. Pure: rows in, records out.

Usage:
    from distill.benchmarks.rows import to_problem
    to_problem("gpqa-diamond", row, index=0)   # {"id", "question", "answer": "C", "kind": "choice", "options": [...]}

AIME (``problem``/``answer``; 2025 sets may use ``question``), MATH-500 (``problem``/``answer``/
``unique_id``), GSM8K (``question``/``answer`` ending ``#### N``: the gold is N), GPQA
(``Question``, ``Correct Answer``, ``Incorrect Answer 1-3``, ``Record ID``: the four options are
shuffled by a seed drawn from the record id, so every run and every machine asks the same
question with the same letters) and LiveCodeBench (``question_content``, ``starter_code``,
``public_test_cases`` and ``private_test_cases``, see distill.benchmarks.livecodebench). A row that
lacks a field its set needs raises InputError naming the row and field.
"""

from __future__ import annotations

import hashlib
import random
import re

from distill.errors import InputError

__all__ = ["to_problem", "shuffled_options"]

LETTERS = "ABCD"
_GSM8K_FINAL = re.compile(r"####\s*(.+?)\s*$", re.DOTALL)


def _field(row: dict, names: tuple[str, ...], bench: str, index: int) -> str:
    for name in names:
        value = row.get(name)
        if value is not None and str(value).strip():
            return str(value).strip()
    raise InputError(f"{bench} row {index}: no {' or '.join(names)} (the row has {', '.join(list(row)[:10])})",
                     field=names[0])


def _number(text: str) -> str:
    """AIME answers come as "023" or 23: compare as the integer."""
    return str(int(text)) if re.fullmatch(r"\d+", text) else text


def _aime(row: dict, bench: str, index: int) -> dict:
    question = _field(row, ("problem", "question", "Problem"), bench, index)
    answer = _number(_field(row, ("answer", "Answer"), bench, index))
    ident = str(row.get("id") if row.get("id") is not None else row.get("ID") or index)
    return {"id": f"{bench}-{ident}", "question": question, "answer": answer, "kind": "math"}


def _math500(row: dict, bench: str, index: int) -> dict:
    question = _field(row, ("problem",), bench, index)
    answer = _field(row, ("answer",), bench, index)
    ident = row.get("unique_id") or str(index)
    extra = {k: row[k] for k in ("subject", "level") if row.get(k) is not None}
    return {"id": f"{bench}-{ident}", "question": question, "answer": answer, "kind": "math", **extra}


def _gsm8k(row: dict, bench: str, index: int) -> dict:
    question = _field(row, ("question",), bench, index)
    solution = _field(row, ("answer",), bench, index)
    final = _GSM8K_FINAL.search(solution)
    if not final:
        raise InputError(f"{bench} row {index}: answer has no '#### N' final line", field="answer")
    digest = hashlib.sha256(question.encode()).hexdigest()[:12]
    return {"id": f"{bench}-{index:04d}-{digest}", "question": question, "answer": final.group(1).replace(",", ""),
            "kind": "gsm8k", "solution": solution}


def shuffled_options(correct: str, incorrect: list[str], seed_text: str) -> tuple[list[str], str]:
    """The four options in an order seeded by ``seed_text`` and the gold letter."""
    options = [correct, *incorrect]
    order = list(range(len(options)))
    random.Random(int(hashlib.sha256(seed_text.encode()).hexdigest()[:16], 16)).shuffle(order)
    shuffled = [options[i] for i in order]
    return shuffled, LETTERS[order.index(0)]


def _gpqa(row: dict, bench: str, index: int) -> dict:
    question = _field(row, ("Question",), bench, index)
    correct = _field(row, ("Correct Answer",), bench, index)
    incorrect = [_field(row, (f"Incorrect Answer {i}",), bench, index) for i in (1, 2, 3)]
    ident = str(row.get("Record ID") or hashlib.sha256(question.encode()).hexdigest()[:12])
    options, gold = shuffled_options(correct, incorrect, ident)
    listed = "\n".join(f"{LETTERS[i]}) {text}" for i, text in enumerate(options))
    return {"id": f"{bench}-{ident}", "question": f"{question}\n\n{listed}", "answer": gold, "kind": "choice",
            "options": options}


def _livecodebench(row: dict, bench: str, index: int) -> dict:
    from distill.benchmarks.livecodebench import problem_text, sandbox_tests

    ident = _field(row, ("question_id",), bench, index)
    tests = sandbox_tests(row, where=f"{bench} row {index} ({ident})")
    extra = {k: row[k] for k in ("platform", "difficulty", "contest_date", "question_title") if row.get(k)}
    return {"id": f"{bench}-{ident}", "question": problem_text(row), "answer": tests, "kind": "code", **extra}


_MAPPERS = {"aime24": _aime, "aime25": _aime, "math500": _math500, "gsm8k": _gsm8k, "gpqa-diamond": _gpqa,
            "livecodebench": _livecodebench}


def to_problem(bench: str, row: dict, index: int) -> dict:
    """The Problem record of one Hub row of ``bench``, with ``source`` naming the benchmark."""
    return {**_MAPPERS[bench](row, bench, index), "source": bench}
