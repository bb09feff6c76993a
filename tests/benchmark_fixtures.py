"""A few rows of each benchmark in its real Hub schema, and a fake Hub serving them as dataset repos.

Usage:
    from benchmark_fixtures import ROWS, serve_benchmarks
    ROWS["gpqa-diamond"][0]["Correct Answer"]
    with FakeHub() as hub:
        serve_benchmarks(hub, gated={"Idavidrein/gpqa"})   # each set at its usual id, config and split

Field names and formats follow the real sets: AIME 2024 (id, problem, solution, answer, url, year),
AIME 2025 (id, problem, answer, solution, url, year), MATH-500 (problem, solution, answer, subject,
level, unique_id), GSM8K (question, answer with "#### N"), GPQA (Question, Correct Answer,
Incorrect Answer 1-3, Record ID, ...), LiveCodeBench (question_title, question_content, platform,
question_id, contest_id, contest_date, starter_code, difficulty, public_test_cases,
private_test_cases as base64 of zlib of pickled JSON, metadata).
"""

from __future__ import annotations

import base64
import hashlib
import json
import pickle
import re
import zlib

from distill.benchmarks import PROTOCOLS


def _packed(cases: list[dict]) -> str:
    return base64.b64encode(zlib.compress(pickle.dumps(json.dumps(cases)))).decode()


ROWS: dict[str, list[dict]] = {
    "aime24": [
        {"id": 60, "problem": "Find the number of positive integers less than 10 that are odd.",
         "solution": "1, 3, 5, 7, 9.", "answer": "5", "url": "https://artofproblemsolving.com/x", "year": "2024"},
        {"id": 61, "problem": "What is 12 + 21?", "solution": "33", "answer": "033", "url": "u", "year": "2024"},
    ],
    "aime25": [
        {"id": "0", "problem": "Compute 2 + 2.", "answer": "4", "solution": "4", "url": "u", "year": 2025},
        {"id": "1", "problem": "Compute 3 * 7.", "answer": "21", "solution": "21", "url": "u", "year": 2025},
    ],
    "math500": [
        {"problem": "Simplify $\\frac{2}{4}$.", "solution": "$\\boxed{\\frac12}$", "answer": "\\frac{1}{2}",
         "subject": "Prealgebra", "level": 1, "unique_id": "test/prealgebra/1.json"},
        {"problem": "What is $3^2$?", "solution": "9", "answer": "9", "subject": "Algebra", "level": 1,
         "unique_id": "test/algebra/2.json"},
    ],
    "gsm8k": [
        {"question": "Tom has 3 apples and buys 4 more. How many apples?", "answer": "3 + 4 = <<3+4=7>>7\n#### 7"},
        {"question": "A box holds 1,200 pens; 200 are sold. How many are left?", "answer": "1,000\n#### 1,000"},
    ],
    "gpqa-diamond": [
        {"Pre-Revision Question": "q", "Question": "Which particle carries the electromagnetic force?",
         "Correct Answer": "photon", "Incorrect Answer 1": "gluon", "Incorrect Answer 2": "W boson",
         "Incorrect Answer 3": "graviton", "Explanation": "QED.", "Record ID": "recA1", "Subdomain": "Physics",
         "High-level domain": "Physics"},
        {"Pre-Revision Question": "q", "Question": "What is the pH of pure water at 25 C?",
         "Correct Answer": "7", "Incorrect Answer 1": "1", "Incorrect Answer 2": "14",
         "Incorrect Answer 3": "0", "Explanation": "Neutral.", "Record ID": "recB2", "Subdomain": "Chemistry",
         "High-level domain": "Chemistry"},
    ],
    "livecodebench": [
        {"question_title": "Double", "question_content": "Read n and print 2n.", "platform": "atcoder",
         "question_id": "abc900_a", "contest_id": "abc900", "contest_date": "2024-09-14T00:00:00",
         "starter_code": "", "difficulty": "easy",
         "public_test_cases": json.dumps([{"input": "3\n", "output": "6\n", "testtype": "stdin"}]),
         "private_test_cases": _packed([{"input": "10\n", "output": "20\n", "testtype": "stdin"}]),
         "metadata": "{}"},
        {"question_title": "Add", "question_content": "Return a + b.", "platform": "leetcode",
         "question_id": "9001", "contest_id": "weekly-1", "contest_date": "2024-11-02T00:00:00",
         "starter_code": "class Solution:\n    def add(self, a: int, b: int) -> int:\n        ",
         "difficulty": "easy",
         "public_test_cases": json.dumps([{"input": "1\n2", "output": "3", "testtype": "functional"}]),
         "private_test_cases": json.dumps([{"input": "5\n5", "output": "10", "testtype": "functional"}]),
         "metadata": json.dumps({"func_name": "add"})},
        {"question_title": "Old", "question_content": "Out of the window.", "platform": "atcoder",
         "question_id": "abc100_a", "contest_id": "abc100", "contest_date": "2023-05-01T00:00:00",
         "starter_code": "", "difficulty": "easy",
         "public_test_cases": json.dumps([{"input": "1\n", "output": "1\n", "testtype": "stdin"}]),
         "private_test_cases": "", "metadata": "{}"},
    ],
}


def _put(hub, repo_id: str, files: dict[str, bytes]) -> None:
    from fakehub import Repo

    repo = Repo("dataset", repo_id, private=False)
    branch = repo.branches["main"]
    branch["files"].update(files)
    branch["sha"] = hashlib.sha1(repo_id.encode()).hexdigest()
    hub.repos[("dataset", repo_id)] = repo


def serve_benchmarks(hub, gated: set[str] = frozenset()) -> None:
    """Every benchmark's rows at its Hub id (config, split as the protocol names them); ``gated`` ids
    answer 403 GatedRepo to every file request, as the Hub does before access is granted."""
    for name, rows in ROWS.items():
        p = PROTOCOLS[name]
        config = p.config or "default"
        path = f"{config}/{p.split}.jsonl"
        card = (f"---\nlicense: test\nconfigs:\n- config_name: {config}\n  data_files:\n  - split: {p.split}\n"
                f"    path: {path}\n---\n# {name}\n")
        body = "".join(json.dumps(r) + "\n" for r in rows).encode()
        _put(hub, p.dataset, {"README.md": card.encode(), path: body})
    if gated:
        _gate(hub, gated)


def _gate(hub, gated: set[str]) -> None:
    handler = hub.server.RequestHandlerClass
    route = handler._route

    def gated_route(self, method: str) -> None:
        if any(re.search(rf"/{re.escape(g)}/(resolve|tree|paths-info)", self.path) for g in gated):
            message = "Access to dataset is restricted. You must have access to it and be authenticated."
            return self._error(403, "GatedRepo", message)
        return route(self, method)

    hub.server.RequestHandlerClass = type("GatedHandler", (handler,), {"_route": gated_route})
