"""The generate stage end to end against the loopback teacher: records, resume, cost, stops, bad input."""

from __future__ import annotations

import json

import pytest
import yaml

from distill.errors import BudgetExceeded, ConfigError, InputError, SamplesFailed, TeacherFatalError
from distill.generate.config import GenerateConfig
from distill.artifacts import read_latest
from distill.generate.resume import scan_traces
from distill.generate.stage import TRACE_KEYS, run
from distill.records import read_jsonl
from faulty_teacher import FaultyTeacher
from records_factory import write_problems


def respond(messages, request):
    q = messages[-1]["content"].split("\n")[0]
    return f"Thinking about: {q}", "The answer is \\boxed{7}."


def gen_cfg(tmp_path, srv, **kw) -> GenerateConfig:
    opts = dict(problems=str(tmp_path / "p.jsonl"), base_url=srv.base_url, model="test-teacher",
                out=str(tmp_path / "traces.jsonl"), progress=False, backoff_base=0.02, backoff_max=0.1,
                concurrency=4, request_timeout=5.0)
    opts.update(kw)
    return GenerateConfig(**opts)


def lines(path):
    return [r for _, r in read_jsonl(path)]


def test_traces_have_the_design_fields_and_the_config_is_saved(tmp_path):
    write_problems(tmp_path / "p.jsonl", 3, source="unit")
    with FaultyTeacher(dialect="think_open", responder=respond) as srv:
        out = run(gen_cfg(tmp_path, srv, samples=2, system_prompt="Be brief."))
        bodies = srv.stats.bodies
    records = lines(out)
    assert len(records) == 6 and {(r["id"], r["sample"]) for r in records} == {(f"q{i}", s) for i in range(3) for s in (0, 1)}
    rec = records[0]
    assert set(TRACE_KEYS) <= set(rec) and rec["schema"] == 1 and rec["source"] == "unit"
    assert rec["reasoning"].startswith("Thinking about: Question number") and rec["content"] == "The answer is \\boxed{7}."
    assert rec["error"] is None and rec["truncated"] is False and rec["usage"]["completion_tokens"] > 0
    assert rec["messages"][0] == {"role": "system", "content": "Be brief."}
    assert any(b["messages"] == rec["messages"] for b in bodies)  # exactly what was sent
    saved = yaml.safe_load((tmp_path / "traces.config.yaml").read_text())
    assert saved["samples"] == 2 and saved["model"] == "test-teacher"


def test_failed_samples_are_written_then_retried_and_done_ones_never_again(tmp_path):
    write_problems(tmp_path / "p.jsonl", 4)
    with FaultyTeacher(dialect="deepseek", responder=respond) as srv:
        srv.add_fault("500", count=100, match="number 1?")
        with pytest.raises(SamplesFailed, match=r"1 of 4 samples failed \(http_500 x1\)"):  # exit 5
            run(gen_cfg(tmp_path, srv, max_attempts=2))
        first = lines(tmp_path / "traces.jsonl")
        assert [r["error"]["type"] for r in first if r["error"]] == ["http_500"]
        srv.clear_faults()
        srv.stats.reset()
        run(gen_cfg(tmp_path, srv, max_attempts=2))
        assert srv.stats.requests == 1 and list(srv.stats.prompts.values()) == [1]
        srv.stats.reset()
        run(gen_cfg(tmp_path, srv, samples=3))  # more samples: reuse sample 0, draw 1 and 2
        assert srv.stats.requests == 8
    good = good_traces(tmp_path / "traces.jsonl")
    assert sorted((r["id"], r["sample"]) for r in good) == sorted((f"q{i}", s) for i in range(4) for s in range(3))
    assert len(lines(tmp_path / "traces.jsonl")) == 13  # the superseded error line stays visible


def test_dry_run_sends_and_writes_nothing(tmp_path, capsys):
    write_problems(tmp_path / "p.jsonl", 5)
    with FaultyTeacher(dialect="deepseek", responder=respond) as srv:
        run(gen_cfg(tmp_path, srv, dry_run=True, samples=4, prices={"input": 1.0, "output": 2.0},
                    est_completion_tokens=1000))
        assert srv.stats.requests == 0
    assert not (tmp_path / "traces.jsonl").exists() and not (tmp_path / "traces.config.yaml").exists()
    err = capsys.readouterr().err
    assert "20" in err and "$0.04" in err  # 20 requests x 1000 tokens x $2/M


def test_cost_cap_stops_gracefully_and_resumes(tmp_path):
    write_problems(tmp_path / "p.jsonl", 20)
    prices = {"input": 0.0, "output": 10000.0}  # $0.01 a completion token: ~$0.1 a request
    with FaultyTeacher(dialect="deepseek", responder=respond) as srv:
        with pytest.raises(BudgetExceeded, match="max_cost_usd"):
            run(gen_cfg(tmp_path, srv, concurrency=1, prices=prices, max_cost_usd=0.5, est_completion_tokens=10,
                        max_tokens=20))  # the cap counts a request at its worst case: 20 output tokens
        records = lines(tmp_path / "traces.jsonl")
        spent = sum(r["cost_usd"] for r in records)
        assert 0 < len(records) < 20 and srv.stats.requests == len(records)
        assert spent <= 0.5 + 1e-9
        run(gen_cfg(tmp_path, srv, concurrency=4, prices=prices, max_cost_usd=100.0, est_completion_tokens=10,
                    max_tokens=20))
        assert srv.stats.requests == 20
    assert len(good_traces(tmp_path / "traces.jsonl")) == 20


def test_bad_key_stops_the_run_and_keeps_what_was_received(tmp_path):
    write_problems(tmp_path / "p.jsonl", 6)
    with FaultyTeacher(dialect="deepseek", responder=respond) as srv:
        srv.add_fault("402", count=100, match="number 3?")
        with pytest.raises(TeacherFatalError, match="balance"):
            run(gen_cfg(tmp_path, srv, concurrency=1))
    kept = lines(tmp_path / "traces.jsonl")
    assert [r["id"] for r in kept] == ["q0", "q1", "q2"] and all(r["error"] is None for r in kept)


@pytest.mark.parametrize("policy", ["keep", "drop", "retry"])
def test_truncation_policies(tmp_path, policy):
    write_problems(tmp_path / "p.jsonl", 1)
    with FaultyTeacher(dialect="vllm", responder=respond) as srv:
        srv.add_fault("truncate", count=1)
        run(gen_cfg(tmp_path, srv, on_truncated=policy, max_tokens=100, max_tokens_ceiling=1000))
        rec = lines(tmp_path / "traces.jsonl")[-1]
        srv.stats.reset()
        run(gen_cfg(tmp_path, srv, on_truncated=policy, max_tokens=100, max_tokens_ceiling=1000))
        assert srv.stats.requests == 0  # settled either way: nothing re-paid
    if policy == "keep":
        assert rec["truncated"] and rec["error"] is None
    elif policy == "drop":
        assert rec["truncated"] and rec["error"]["type"] == "truncated"
        assert good_traces(tmp_path / "traces.jsonl") == []
    else:
        assert not rec["truncated"] and rec["max_tokens"] == 200 and rec["attempts"] == 2


def test_torn_tail_is_repaired_not_duplicated(tmp_path):
    write_problems(tmp_path / "p.jsonl", 3)
    with FaultyTeacher(dialect="deepseek", responder=respond) as srv:
        run(gen_cfg(tmp_path, srv))
        out = tmp_path / "traces.jsonl"
        text = out.read_text().splitlines(keepends=True)
        out.write_text("".join(text[:2]) + text[2][: len(text[2]) // 2])  # killed mid-write
        srv.stats.reset()
        run(gen_cfg(tmp_path, srv))
        assert srv.stats.requests == 1
    records = lines(out)
    assert len(records) == 3 and len({(r["id"], r["sample"]) for r in records}) == 3
    assert out.read_text().endswith("\n")


@pytest.mark.parametrize("content, field", [
    ('{"id": "a", "question": "q", "answer": "1"}\n{"id": "a", "question": "q2", "answer": "2"}\n', "id"),
    ('{"id": "a", "question": "q", "answer": "1"}\n{"id": "b", "question": "", "answer": "2"}\n', "question"),
    ('{"id": "a", "question": "q", "answer": "1"}\n{"id": "b", "question": "q2", "answer"\n', None),
])
def test_bad_input_fails_before_anything_is_sent_or_written(tmp_path, content, field):
    (tmp_path / "p.jsonl").write_text(content)
    with FaultyTeacher(dialect="deepseek", responder=respond) as srv:
        with pytest.raises(InputError) as info:
            run(gen_cfg(tmp_path, srv))
        assert srv.stats.requests == 0
    assert info.value.line == 2 and info.value.field == field and "p.jsonl:2" in str(info.value)
    assert not (tmp_path / "traces.jsonl").exists() and not (tmp_path / "traces.config.yaml").exists()


def test_scan_traces_last_record_wins(tmp_path):
    out = tmp_path / "t.jsonl"
    rows = [{"id": "a", "sample": 0, "error": {"type": "http_500"}}, {"id": "a", "sample": 0, "error": None},
            {"id": "b", "sample": 0, "error": {"type": "timeout"}}]
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    state = scan_traces(out)
    assert state.done == {("a", 0)} and state.failed == {("b", 0)}


@pytest.mark.parametrize("change", [{"model": "other-teacher"}, {"temperature": 1.0}])
def test_resuming_with_another_teacher_or_temperature_is_refused(tmp_path, change):
    write_problems(tmp_path / "p.jsonl", 2)
    with FaultyTeacher(dialect="deepseek", responder=respond) as srv:
        run(gen_cfg(tmp_path, srv))
        before = (tmp_path / "traces.jsonl").read_bytes()
        srv.stats.reset()
        with pytest.raises(ConfigError, match=f"different {next(iter(change))}.*counted as done"):
            run(gen_cfg(tmp_path, srv, samples=2, **change))
        assert srv.stats.requests == 0
    assert (tmp_path / "traces.jsonl").read_bytes() == before


def good_traces(path):
    """What filter and finetune read: the last record of each pair, when it is not a failure."""
    return [rec for rec in read_latest(path).values() if not rec.get("error")]


def test_a_client_the_caller_passes_is_the_teacher_asked_and_priced(tmp_path):
    from distill.teacher.client import TeacherClient
    from distill.teacher.pricing import cost_usd

    write_problems(tmp_path / "p.jsonl", 3)
    prices = {"input": 1.0, "cached_input": 1.0, "output": 2.0}
    with FaultyTeacher(dialect="deepseek", responder=respond) as srv:
        cfg = gen_cfg(tmp_path, srv)  # a loopback teacher is free: only the client's own prices cost anything
        out = run(cfg, client=TeacherClient(cfg, prices=prices))
        assert srv.stats.requests == 3
    records = lines(out)
    assert len(records) == 3 and all(r["cost_usd"] == cost_usd(r["usage"], prices) > 0 for r in records)


def test_a_worker_that_dies_of_a_bug_ends_the_run_with_its_error_not_a_hang(tmp_path, monkeypatch):
    """Every worker crashing (here: the progress counter) used to leave the producer waiting on a full queue."""
    from distill.generate.progress import RunStats

    def broken(self, bar):
        raise RuntimeError("counter bug")

    monkeypatch.setattr(RunStats, "refresh_bar", broken)
    problems = write_problems(tmp_path / "p.jsonl", 40)
    with FaultyTeacher() as srv:
        cfg = GenerateConfig(problems=str(problems), base_url=srv.base_url, model="t", concurrency=2,
                             out=str(tmp_path / "t.jsonl"), progress=False)
        with pytest.raises(RuntimeError, match="counter bug"):
            run(cfg)
