"""The filter, sample-until-correct and eval give the same verdict on the same record (one verifier seam).

Each record goes through the real stages: ``distill.filter.run`` on a traces file, the sampler's
tally (``AdaptiveSampler`` resuming from that file, and its judge on a fresh record) and eval's
record scoring (``distill.evaluate.stage.score``). The expected verdicts pin the rules written in
distill/verify/record.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from filter_helpers import GOOD, reasons, run_filter, trace
from records_factory import write_traces

from distill.errors import InputError

# name -> (record fields over filter_helpers.trace, expected (correct, extracted, reason))
CASES = {
    "choice_by_text": (dict(kind="choice", answer="B", options=["Rome", "Paris", "Berlin"],
                            content="The capital of France is\nParis"), (True, "B", "correct")),
    "empty": (dict(kind="gsm8k", answer="72", content=""), (False, None, "empty")),
    "truncated_right_box": (dict(kind="math", answer="72", content="So \\boxed{72}. Let me double-check by",
                                 truncated=True, finish_reason="length"), (False, "72", "truncated")),
    "math_right": (dict(kind="math", answer="0.5", content="So \\boxed{\\frac{1}{2}}"),
                   (True, "\\frac{1}{2}", "correct")),
    "math_wrong": (dict(kind="math", answer="0.5", content="So \\boxed{3}"), (False, "3", "wrong_answer")),
    "unparseable_gold": (dict(kind="math", answer="\\frac{1}{", content="So \\boxed{1}"),
                         (None, None, "unparseable_gold")),
}
# Every per-trace check but the answer off, so a rejected record's reason is the verdict's own.
ANSWER_ONLY = ["checks.truncated=false", "checks.reasoning=ignore", "checks.repetition=false",
               "checks.max_other_script=null", "checks.bad_step=false", "checks.sound=false",
               "checks.hint_leak=false", "checks.keep_undecided=false", "cache=false"]


def records() -> list[dict]:
    return [trace(name, 0, reasoning=GOOD, **fields) for name, (fields, _) in CASES.items()]


@pytest.fixture(scope="module")
def filtered(tmp_path_factory) -> dict[str, tuple]:
    """(correct, extracted, reason) per record id from one real filter run with only the answer check on."""
    tmp = tmp_path_factory.mktemp("seam")
    write_traces(tmp / "traces.jsonl", records())
    _, kept, rejected = run_filter(tmp, ANSWER_ONLY)
    return {r["id"]: (r["verdict"]["correct"], r["verdict"]["extracted"], r["verdict"]["reason"])
            for r in kept + rejected}


def sampler_for(tmp_path: Path, recs: list[dict]):
    from distill.generate.adaptive import AdaptiveSampler
    from distill.generate.config import GenerateConfig

    problems = tmp_path / "problems.jsonl"
    problems.write_text(json.dumps({"id": "x", "question": "Q?", "answer": "1"}) + "\n")
    out = write_traces(tmp_path / "traces.jsonl", recs)
    cfg = GenerateConfig(problems=str(problems), base_url="http://127.0.0.1:9/v1", model="t", out=str(out),
                         until_correct=1, max_samples=4, progress=False)
    return AdaptiveSampler(cfg, out)


def scored(record: dict) -> tuple:
    from distill.decode.backends import Answer, Job
    from distill.scoring import score

    problem = {k: record[k] for k in ("id", "question", "answer", "kind", "options") if k in record}
    content = record.get("content") or ""
    answer = Answer(response=content, reasoning=record.get("reasoning"), content=content,
                    truncated=bool(record.get("truncated")), finish_reason=record.get("finish_reason"),
                    completion_tokens=10, reasoning_tokens=0)
    rec = score(Job(problem, 0, "user"), answer, "key", "src")
    return rec["correct"], rec["extracted"], rec["reason"]


@pytest.mark.parametrize("name", list(CASES))
def test_filter_sampler_and_eval_give_the_same_verdict(name, filtered, tmp_path):
    record = next(r for r in records() if r["id"] == name)
    expected = CASES[name][1]
    sampler = sampler_for(tmp_path, [record])  # resumed from the file: what a re-run counts
    resumed_correct = sampler.tally.problems[name].correct == 1
    assert {
        "filter": filtered[name],
        "eval": scored(record),
        "sampler": sampler.tally.judge(dict(record)),
        "sampler_resumed": resumed_correct,
    } == {"filter": expected, "eval": expected, "sampler": expected[0], "sampler_resumed": expected[0] is True}


def test_the_verdict_is_check_record(filtered):
    from distill.verify import check_record

    assert {r["id"]: tuple(check_record(r)) for r in records()} == {n: e for n, (_, e) in CASES.items()} == filtered


def test_the_filter_still_reports_truncation_in_its_funnel(tmp_path):
    """With the default checks the truncated trace is dropped by its flag, its verdict unchanged beside it."""
    write_traces(tmp_path / "traces.jsonl", records())
    stats, _, rejected = run_filter(tmp_path, ["checks.reasoning=ignore"])
    assert reasons(rejected)[("truncated_right_box", 0)] == "truncated"
    cut = next(r for r in rejected if r["id"] == "truncated_right_box")["verdict"]
    assert (cut["correct"], cut["extracted"]) == (False, "72")
    assert "truncated" in [step["step"] for step in stats["funnel"]]


def test_a_record_without_a_kind_is_refused_by_every_stage_naming_the_field(tmp_path):
    bad = trace("nokind", 0)
    del bad["kind"]
    write_traces(tmp_path / "traces.jsonl", [trace("ok", 0), bad])
    with pytest.raises(InputError) as filter_error:
        run_filter(tmp_path)
    with pytest.raises(InputError) as sampler_error:
        sampler_for(tmp_path, [trace("ok", 0), bad])
    with pytest.raises(InputError) as eval_error:
        scored(bad)
    assert (filter_error.value.field, filter_error.value.line) == ("kind", 2)
    assert (sampler_error.value.field, sampler_error.value.line) == ("kind", 2)
    assert eval_error.value.field == "kind"


@pytest.mark.parametrize("fields,expected", [
    (dict(error={"type": "http_500"}, content="So \\boxed{72}"), (None, None, "error")),
    (dict(finish_reason="length", content="So \\boxed{72}"), (False, "72", "truncated")),  # no truncated flag
    (dict(content="   \n"), (False, None, "empty")),
    (dict(content=None, answer="seventy"), (None, None, "unparseable_gold")),  # the gold first, then the response
    (dict(content="I could not settle on it."), (None, None, "no_answer")),   # the checker's own undecided
    (dict(kind="choice", answer="B", options={"A": "Rome", "B": "Paris"}, content="Paris"), (True, "B", "correct")),
    (dict(kind="math", answer="7", options="not a list", content="\\boxed{7}"), (True, "7", "correct")),
], ids=["error", "finish_length", "blank", "gold_first", "no_answer", "options_dict", "options_not_choice"])
def test_check_record_rules(fields, expected):
    from distill.verify import check_record

    assert tuple(check_record(trace(**fields))) == expected


def test_a_checker_crash_is_undecided_and_a_missing_sandbox_stops(monkeypatch):
    from distill.verify import check_record
    from distill.verify import checker
    from distill.verify.code import SandboxUnavailable

    def crash(*_args, **_kw):
        raise RuntimeError("bug")

    monkeypatch.setattr(checker, "check", crash)
    assert tuple(check_record(trace())) == (None, None, "checker_error")

    def no_sandbox(*_args, **_kw):
        raise SandboxUnavailable("no interpreter")

    monkeypatch.setattr(checker, "check", no_sandbox)
    with pytest.raises(SandboxUnavailable):
        check_record(trace(kind="code", answer="assert f() == 1", content="```python\ndef f(): return 1\n```"))


def test_choice_options_of_the_wrong_type_are_refused_naming_the_field():
    from distill.verify import check_record

    with pytest.raises(InputError) as bad:
        check_record(trace(kind="choice", answer="B", options="AB", content="B"))
    assert bad.value.field == "options"


def test_a_truncated_flag_that_is_not_a_boolean_is_refused_not_read_as_true():
    """``"truncated": "false"`` is truthy: read as a flag it would grade every answer of a hand-edited file wrong."""
    from distill.errors import InputError
    from distill.verify import check_record

    record = {"answer": "72", "kind": "gsm8k", "content": "So \\boxed{72}"}
    assert check_record({**record, "truncated": False}).correct is True
    with pytest.raises(InputError, match="truncated"):
        check_record({**record, "truncated": "false"})
