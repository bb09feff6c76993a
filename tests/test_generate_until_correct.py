"""generate until_correct / max_samples / rationalize against the loopback teacher: stops at K, never past N,
resume repeats nothing, the cap holds, hinted requests are recorded with the unhinted messages."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from distill.artifacts import read_latest
from distill.layout import generate_summary_path
from distill.errors import BudgetExceeded, ConfigError
from distill.generate.config import GenerateConfig
from distill.generate.stage import run
from distill.records import read_jsonl
from faulty_teacher import FaultyTeacher


class Scripted:
    """Answers per question from a script: ``right_at[q]`` = the draw numbers (0-based) answered correctly;
    hinted prompts are answered correctly when ``hint_solves``. Each draw's reasoning differs (no near-dups)."""

    def __init__(self, right_at: dict[str, set[int]], hint_solves: bool = True, hint_reasoning: str | None = None):
        self.right_at, self.hint_solves, self.hint_reasoning = right_at, hint_solves, hint_reasoning
        self.draws: Counter = Counter()
        self.hinted: list[str] = []

    def __call__(self, messages, request):
        text = messages[-1]["content"]
        q = text.split("\n")[0]
        if "Hint:" in text:
            self.hinted.append(q)
            reasoning = self.hint_reasoning or f"Work it out for {q}: 3 + 4 = 7 so we get 7 here."
            return reasoning, "\\boxed{7}" if self.hint_solves else "\\boxed{5}"
        n = self.draws[q]
        self.draws[q] += 1
        words = " ".join(f"w{n}x{i}" for i in range(30))  # distinct per draw: never near-duplicates
        return f"Draw {n} for {q}: {words}", "\\boxed{7}" if n in self.right_at.get(q, set()) else "\\boxed{5}"


def problems(path, n):
    path.write_text("".join(json.dumps({"id": f"q{i}", "question": f"Q{i}?", "answer": "7"}) + "\n" for i in range(n)))


def cfg_for(tmp_path, srv, **kw) -> GenerateConfig:
    opts = dict(problems=str(tmp_path / "p.jsonl"), base_url=srv.base_url, model="test-teacher",
                out=str(tmp_path / "traces.jsonl"), progress=False, backoff_base=0.02, backoff_max=0.1,
                concurrency=3, request_timeout=5.0)
    opts.update(kw)
    return GenerateConfig(**opts)


def per_problem(path):
    return Counter(rec["id"] for rec in read_latest(path).values())


def test_stops_at_k_and_never_exceeds_max_samples(tmp_path):
    problems(tmp_path / "p.jsonl", 3)
    script = Scripted({"Q0?": {0, 1, 2, 3}, "Q1?": {2, 4}, "Q2?": set()})
    with FaultyTeacher(responder=script) as srv:
        out = run(cfg_for(tmp_path, srv, until_correct=2, max_samples=5))
    counts = per_problem(out)
    assert counts == {"q0": 2, "q1": 5, "q2": 5}  # easy stops at K=2; q1 reaches K on its 5th; q2 hits N
    assert script.draws == {"Q0?": 2, "Q1?": 5, "Q2?": 5}
    summary = json.loads(generate_summary_path(out).read_text())
    assert summary["reached_k"] == 2 and summary["unsolved"] == 1 and summary["samples_per_solved"] == 3.5


def test_first_wave_is_samples_and_the_ceiling_holds(tmp_path):
    problems(tmp_path / "p.jsonl", 2)
    script = Scripted({"Q0?": {0}, "Q1?": set()})
    with FaultyTeacher(responder=script) as srv:
        out = run(cfg_for(tmp_path, srv, samples=3, until_correct=1, max_samples=4))
    assert per_problem(out) == {"q0": 3, "q1": 4}  # the first wave is drawn whole, then one more for q1


def test_resume_never_asks_again_for_a_problem_that_has_k(tmp_path):
    problems(tmp_path / "p.jsonl", 3)
    script = Scripted({"Q0?": {0}, "Q1?": {1}, "Q2?": {0}})
    with FaultyTeacher(responder=script) as srv:
        out = run(cfg_for(tmp_path, srv, until_correct=1, max_samples=3))
        first = len(list(read_jsonl(out)))
        again = run(cfg_for(tmp_path, srv, until_correct=1, max_samples=3))
        assert len(list(read_jsonl(again))) == first and srv.stats.requests == first
        # raising K asks only for what is missing, after the file's last sample index
        run(cfg_for(tmp_path, srv, until_correct=2, max_samples=3))
    keys = [(r["id"], r["sample"]) for _, r in read_jsonl(out)]
    assert len(keys) == len(set(keys))  # no pair asked twice
    assert per_problem(out) == {"q0": 3, "q1": 3, "q2": 3}


def test_rationalization_sends_the_hint_and_records_the_unhinted_messages(tmp_path):
    problems(tmp_path / "p.jsonl", 2)
    script = Scripted({"Q0?": {0}, "Q1?": set()})
    with FaultyTeacher(responder=script) as srv:
        out = run(cfg_for(tmp_path, srv, until_correct=1, max_samples=2, rationalize=True))
        bodies = srv.stats.bodies
    records = list(read_latest(out).values())
    hinted = [r for r in records if r.get("rationalized")]
    assert script.hinted == ["Q1?"] and len(hinted) == 1
    rec = hinted[0]
    assert rec["id"] == "q1" and rec["sample"] == 2 and rec["hint"] == "Hint: the correct answer is 7."
    assert all("Hint" not in m["content"] for m in rec["messages"])
    assert any("Hint: the correct answer is 7." in b["messages"][-1]["content"] for b in bodies)
    summary = json.loads(generate_summary_path(out).read_text())
    assert summary["rationalized"] == 1 and summary["unsolved"] == 0 and summary["rationalizations"] == 1


def test_max_cost_holds_under_until_correct(tmp_path):
    problems(tmp_path / "p.jsonl", 4)
    script = Scripted({})
    prices = {"input": 1.0, "output": 1.0}  # per million tokens
    with FaultyTeacher(responder=script) as srv:
        cfg = cfg_for(tmp_path, srv, until_correct=1, max_samples=6, prices=prices, max_tokens=200,
                      max_cost_usd=0.0005)
        with pytest.raises(BudgetExceeded):
            run(cfg)
    spent = sum(r.get("cost_usd") or 0 for _, r in read_jsonl(tmp_path / "traces.jsonl"))
    assert 0 < spent <= 0.0005


def test_dry_run_counts_the_worst_case(tmp_path, caplog, capsys):
    problems(tmp_path / "p.jsonl", 3)
    with FaultyTeacher(responder=Scripted({})) as srv:
        run(cfg_for(tmp_path, srv, until_correct=1, max_samples=4, rationalize=True, dry_run=True))
        assert srv.stats.requests == 0
    shown = capsys.readouterr()
    assert "15" in shown.out + shown.err  # 3 problems x (4 samples + 1 hinted)
    assert not (tmp_path / "traces.jsonl").exists()


@pytest.mark.parametrize("kw, says", [
    (dict(until_correct=3, max_samples=2), "until_correct=3 is more than max_samples=2"),
    (dict(until_correct=1), "set max_samples"),
    (dict(max_samples=4), "max_samples needs until_correct"),
    (dict(until_correct=1, max_samples=2, samples=3), "first wave"),
    (dict(hint_template="Answer: {answer}"), "hint_template"),
    (dict(hint_template="{question} {answer} {oops}"), "hint_template"),
    (dict(until_correct=0, max_samples=2), "until_correct must be >= 1"),
])
def test_bad_options_fail_before_anything_is_sent(tmp_path, kw, says):
    with pytest.raises(ConfigError, match=says):
        GenerateConfig(problems="x.jsonl", base_url="http://127.0.0.1:9/v1", model="m", **kw)
