"""The LLM judge through the real teacher client and the loopback teacher server."""

from __future__ import annotations

from filter_helpers import reasons, run_filter, trace
from records_factory import write_traces

from distill.filter.judge import judge_messages, parse_judgement
from faulty_teacher import FaultyTeacher


def grader(messages, request):
    """A judge that calls an answer correct when the response mentions 72."""
    user = messages[-1]["content"]
    response = user.split("Response:\n", 1)[1].split("\n\nIs the response", 1)[0]
    return "Comparing the answers.", "Both are the same number.\nCORRECT" if "72" in response else "No.\nINCORRECT"


def test_judge_decides_undecided_and_is_audited(tmp_path):
    write_traces(tmp_path / "traces.jsonl", [
        trace("u1", kind="math", answer="\\frac{", content="So \\boxed{72}"),     # rule: unparseable gold
        trace("u2", kind="math", answer="\\frac{", content="So \\boxed{5}"),
        trace("d1"),                                                             # rule: correct
        trace("d2", content="So \\boxed{71}"),                                   # rule: wrong
        trace("d3", answer="71", content="So \\boxed{71}"),                       # rule: correct, judge: no
    ])
    with FaultyTeacher(dialect="deepseek", responder=grader, model="judge-model") as srv:
        opts = ["judge.enabled=true", f"judge.base_url={srv.base_url}", "judge.model=judge-model",
                "judge.provider=generic", "judge.audit_share=1.0", "judge.max_attempts=2"]
        stats, kept, rejected = run_filter(tmp_path, opts)
        assert srv.stats.requests == 5
        sent = srv.stats.bodies[0]["messages"][-1]["content"]
        assert "Reference answer:" in sent and "\\boxed{" in sent
        by_id = {r["id"]: r["verdict"] for r in kept + rejected}
        assert by_id["u1"]["by"] == "judge" and by_id["u1"]["correct"] is True
        assert by_id["u1"]["rule"]["reason"] == "unparseable_gold" and by_id["u1"]["judge"]["correct"] is True
        assert reasons(rejected) == {("u2", 0): "wrong_answer", ("d2", 0): "wrong_answer"}
        assert {r["id"] for r in kept} == {"u1", "d1", "d3"}  # the audit never overrides the rule
        assert by_id["d3"]["audit"] is True and by_id["d3"]["judge"]["correct"] is False
        j = stats["judge"]
        assert (j["asked"], j["undecided_asked"], j["undecided_decided"], j["audited"]) == (5, 2, 2, 3)
        assert j["agree"] == 2 and j["agreement"] == round(2 / 3, 4)
        stats2, kept2, _ = run_filter(tmp_path, opts)  # cached: the judge is not asked again
        assert srv.stats.requests == 5 and kept2 == kept and stats2["judge"]["asked"] == 5


def test_judge_off_leaves_undecided_dropped(tmp_path):
    write_traces(tmp_path / "traces.jsonl", [trace("u1", kind="math", answer="\\frac{")])
    stats, kept, rejected = run_filter(tmp_path)
    assert not kept and reasons(rejected) == {("u1", 0): "unparseable_gold"}
    assert stats["judge"] == {"enabled": False}


def test_parse_judgement():
    assert parse_judgement("It matches.\nCORRECT") is True
    assert parse_judgement("Not CORRECT at first, but in the end: INCORRECT") is False
    assert parse_judgement("I cannot tell.") is None
    assert "Reference answer:\n72" in judge_messages(trace())[-1]["content"]


def test_failed_judge_requests_are_asked_again(tmp_path):
    write_traces(tmp_path / "traces.jsonl", [trace("u1", kind="math", answer="\\frac{", content="So \\boxed{72}")])
    with FaultyTeacher(dialect="vllm", responder=grader) as srv:
        opts = ["judge.enabled=true", f"judge.base_url={srv.base_url}", "judge.model=test-teacher",
                "judge.provider=generic", "judge.max_attempts=1"]
        srv.add_fault("500", count=1)
        stats, kept, rejected = run_filter(tmp_path, opts)
        assert not kept and rejected[0]["verdict"]["judge"]["error"] and stats["judge"]["errors"] == 1
        stats, kept, _ = run_filter(tmp_path, opts)  # the failure was not cached: asked again, now decided
        assert srv.stats.requests == 2 and [r["verdict"]["by"] for r in kept] == ["judge"]


def test_the_judge_cache_covers_the_endpoint_and_extra_request_fields(tmp_path):
    write_traces(tmp_path / "traces.jsonl", [trace("u1", kind="math", answer="\\frac{", content="So \\boxed{72}")])
    with FaultyTeacher(dialect="deepseek", responder=grader, model="judge-model") as a, \
            FaultyTeacher(dialect="deepseek", responder=grader, model="judge-model") as b:
        opts = ["judge.enabled=true", "judge.model=judge-model", "judge.provider=generic", "judge.max_attempts=2"]
        run_filter(tmp_path, [*opts, f"judge.base_url={a.base_url}"])
        run_filter(tmp_path, [*opts, f"judge.base_url={a.base_url}"])
        assert a.stats.requests == 1  # the same request to the same endpoint: cached
        run_filter(tmp_path, [*opts, f"judge.base_url={b.base_url}"])
        assert b.stats.requests == 1  # another endpoint may be another judge: asked
        run_filter(tmp_path, [*opts, f"judge.base_url={a.base_url}", "judge.extra_body={reasoning: {effort: high}}"])
        assert a.stats.requests == 2 and a.stats.bodies[-1]["reasoning"] == {"effort": "high"}
