"""Sound accuracy: step checks per family, in `distill eval` (report, outputs) and in the filter (funnel)."""

from __future__ import annotations

import json
import random

import pytest

from distill.estimates import chance_rates, summarise
from distill.metrics import family_table, metrics_from_json
from distill.soundness import FAMILY_CHECKS, false_comparisons, false_steps, is_sound, register
from distill.offline import families as offline
from distill.offline.checks import spelled_runs
from filter_helpers import reasons, run_filter
from records_factory import write_traces

DEC = {"question": "Which is greater, 14.99 or 14.7?", "family": "decimal_compare", "answer": "14.99"}
LET = {"question": "How many o's are in ebooks?", "family": "letter_count", "answer": "2"}
ARI = {"question": "Compute 5 * 9 + 19.", "family": "arithmetic", "answer": "64"}


# ---------------------------------------------------------------- each family: sound accepted, unsound refused

@pytest.mark.parametrize("problem,sound,unsound", [
    (DEC, "14.7 = 14.70\nCompare 14.99 and 14.70:\nWhole parts: 14 = 14\nTenths: 9 > 7\nSo 14.99 is the greater.",
     "Tenths: 7 > 9, so 14.99 is the greater."),                      # the issue's example: a false comparison
    (DEC, "Tenths: 9 > 7, so 14.99 is the greater.", "14.7 = 14.07\nCompare 14.99 and 14.07:\nTenths: 9 > 0"),
    (DEC, "Whole parts: 14 = 14\nTenths: 9 > 7", "Whole parts: 14 = 14\nTenths: 9 > 1"),  # true, wrong digits
    (DEC, "14.99 is greater than 14.7", "14.7 is greater than 14.99, so 14.99"),
    (DEC, "Tenths: 14.99 has 9, 14.70 has 7, 9 > 7", "Tenths: 14.99 has 9, 14.70 has 1, 9 > 1"),
    (DEC, "Hundredths: 14.99 has 9, 14.7 has 0", "Tenths: 14.90 has 9, 14.70 has 7, 9 > 7"),  # not the question's
    (LET, "Spell ebooks and count the o's:\ne\nb\no -> 1\no -> 2\nk\ns\nTotal: 2", "e, o, e. Total: 2"),
    (LET, "e-b-o-o-k-s has two o's", "e b o o k z: two o's"),          # one misspelt letter, count still right
    (LET, "1. e\n2. b\n3. o\n4. o\n5. k\n6. s\nSo 2.", "ebooks has 2 o's"),  # no spelling at all: a guess
    (LET, "Spell ebooks:\ne\nb\no -> 1\no -> 2\nk\ns", "Spell ebooks:\ne -> 1\nb\no -> 2\no\nk\ns"),  # wrong marks
    (LET, "e\nb\no\no\nk\ns\nTotal: 2", "e\nb\no\no\nk\ns\nTotal: 3"),
    (ARI, "5 * 9 = 45\nNow: 45 + 19\n45 + 19 = 64", "5 * 9 = 44\nNow: 44 + 19\n44 + 19 = 64"),
    (ARI, "5 * 9 = 45\nNow: 45 + 19", "9 + 19 = 28\nNow: 5 * 28"),       # a rewrite that changes the value
])
def test_family_checks_accept_a_sound_trace_and_refuse_an_unsound_one(problem, sound, unsound):
    assert false_steps(sound, problem) == [], sound
    assert false_steps(unsound, problem), unsound
    assert is_sound(True, sound, problem) is True
    assert is_sound(True, unsound, problem) is False  # scored correct, but not for the right reasons


@pytest.mark.parametrize("style", offline.STYLES)
@pytest.mark.parametrize("family", offline.FAMILIES)
def test_the_offline_teachers_own_traces_are_sound_and_its_step_slips_are_not(family, style):
    for i, p in enumerate(offline.make_problems(family, 40, seed=11, split="dev")):
        right, _ = offline.solve(p["question"], style=style)
        assert false_steps(right, p) == [], right
        slipped, content = offline.solve(p["question"], "step", random.Random(i), style=style)
        a, b = offline.DECIMAL_Q.search(p["question"]).group(2, 3) if family == "decimal_compare" else ("", "")
        if a.partition(".")[2] and len(a.partition(".")[2]) == len(b.partition(".")[2]):
            assert f"\\boxed{{{p['answer']}}}" not in content  # nothing to pad: the slip goes into the answer
        else:
            assert f"\\boxed{{{p['answer']}}}" in content and false_steps(slipped, p), slipped


def test_generic_comparisons():
    assert false_comparisons("Tenths: 7 > 9") == ["7 > 9"]
    assert false_comparisons("3 + 4 >= 8 but 2.5 < 2.45 and 10 ≤ 10") == ["3 + 4 >= 8", "2.5 < 2.45"]
    # arrows, variables, approximations and plain true comparisons are not flagged
    assert false_comparisons("e -> 1, 5 -> 6, 7 => 2, x > 3, about 2 > 3, 9 > 7, 0.8 > 0.11") == []
    assert false_steps("17 * 23 = 381") == ["17 * 23 = 381 (is 391)"]  # arithmetic equalities, any problem
    assert false_steps("so 2 > 3", {"question": "?", "family": "unknown-family"}) == ["2 > 3"]
    # numbers inside times, dates and thousands groups are not compared piecewise
    assert false_comparisons("1:05 < 1:30, 1,000 > 999, 2 < 1,000, 3/4 > 1/2 and 2024-01-05 < 2024-02-01") == []


def test_probes_that_must_not_be_flagged():
    # listing the matches is not a (mis)spelling of the word; a decimal split into parts is not padding
    assert false_steps("s-t-r-a-w-b-e-r-r-y; the r's: r, r, r. Total: 3",
                       {"question": "How many r's are in strawberry?", "family": "letter_count"}) == []
    assert false_steps("9.11 = 9 + 0.11 and 0.11 + 9 = 9.11, 9.8 = 9.80, so 9.8 is the greater", {
        "question": "Which is greater, 9.11 or 9.8?", "family": "decimal_compare"}) == []


def test_soundness_needs_a_correct_answer_and_is_undecided_without_a_verdict():
    assert is_sound(None, "9 > 7") is None
    assert is_sound(False, "9 > 7") is False
    assert is_sound(True, "no steps at all") is True  # nothing checkable and no family check: sound


def test_a_family_brings_its_own_check_through_the_registry():
    def no_guessing(text: str, problem: dict) -> list[str]:
        return [] if "because" in text else ["no reason given"]

    register("riddles", no_guessing)
    try:
        riddle = {"question": "What has keys but no locks?", "family": "riddles"}
        assert is_sound(True, "A piano, because it has keys.", riddle) is True
        assert is_sound(True, "A piano.", riddle) is False
    finally:
        FAMILY_CHECKS.pop("riddles")


def test_spelled_runs_read_the_usual_formats():
    assert ["".join(c for c, _ in r) for r in spelled_runs("s-t-r\nand 'a', 'b', 'c'")] == ["str", "abc"]
    assert spelled_runs("r -> 1\no\nw -> 2") == [[("r", 1), ("o", None), ("w", 2)]]
    assert spelled_runs("I saw a cat and a dog") == []  # prose is not a spelling


# ---------------------------------------------------------------- metrics

def _rec(pid, family, correct, sound):
    return {"id": pid, "sample": 0, "correct": correct, "sound": sound, "family": family,
            "extracted": "x", "kind": "math", "source": "s"}


def test_summary_carries_sound_and_per_family_scores_with_intervals():
    recs = [_rec("a", "f1", True, True), _rec("b", "f1", True, False), _rec("c", "f1", False, False),
            _rec("d", "f2", True, True), _rec("e", None, None, None)]
    m = summarise(recs).to_dict()
    assert m["sound"] == pytest.approx(2 / 5) and m["pass@1"] == pytest.approx(3 / 5)
    assert m["unsound_correct"] == 1
    assert m["sound_interval"]["method"] == "wilson" and m["sound_interval"]["low"] < 0.4 < m["sound_interval"]["high"]
    f1 = m["by_family"]["f1"]
    assert (f1["problems"], f1["pass@1"], f1["sound"]) == (3, pytest.approx(2 / 3), pytest.approx(1 / 3))
    assert f1["pass@1_interval"]["high"] > 2 / 3 > f1["pass@1_interval"]["low"]
    assert set(m["by_family"]) == {"f1", "f2"}  # problems with no family are not a family


def test_chance_is_always_giving_the_most_common_training_answer():
    train = [{"family": "f", "answer": a} for a in ("2", "2", "1", "3")] + [{"family": "g", "answer": "9"}]
    held = [{"family": "f", "answer": a} for a in ("2", "1", "2", "2")]
    assert chance_rates(held, train) == {"f": {"answer": "2", "pass@1": 0.75, "train_problems": 4}}
    header, rows = family_table(
        metrics_from_json({"by_family": {"f": {"problems": 4, "pass@1": 1.0, "sound": 0.75, "chance": {"pass@1": 0.75},
                                               "sound_interval": {"low": 0.3, "high": 0.95}}}}),
        metrics_from_json({"by_family": {"f": {"problems": 4, "pass@1": 0.5, "sound": 0.25}}}))
    assert len(rows[0]) == len(header)
    assert rows == [["f", "4", "75%", "50%", "100%", "25%", "75% [30%, 95%]"]]


# ---------------------------------------------------------------- the filter drops unsound teacher traces

def _teacher_trace(problem: dict, sample: int, mistake: str | None, seed: int) -> dict:
    reasoning, content = offline.solve(problem["question"], mistake, random.Random(seed))
    return {"schema": 1, **problem, "sample": sample, "messages": [{"role": "user", "content": problem["question"]}],
            "reasoning": reasoning, "content": content, "finish_reason": "stop", "truncated": False,
            "model": "offline", "usage": {"completion_tokens": 40}, "error": None}


def test_the_filter_drops_an_unsound_teacher_trace_and_counts_it(tmp_path):
    padded = offline.make_problems("decimal_compare", 1, seed=0, split="train")[0]
    while padded["question"].count(".") < 2 or len({len(x) for x in padded["split_key"].split("|")}) == 1:
        padded = offline.make_problems("decimal_compare", 1, seed=random.randrange(10 ** 6))[0]
    word = offline.make_problems("letter_count", 1, seed=1)[0]
    traces = [_teacher_trace(padded, 0, None, 0), _teacher_trace(padded, 1, "step", 0),
              _teacher_trace(word, 0, None, 0), _teacher_trace(word, 1, "step", 3)]
    assert "\\boxed{" + padded["answer"] + "}" in traces[1]["content"]  # right answer, false step
    write_traces(tmp_path / "traces.jsonl", traces)
    stats, kept, rejected = run_filter(tmp_path, ["dedup.near=false"])
    assert reasons(rejected) == {(padded["id"], 1): "unsound_step", (word["id"], 1): "unsound_step"}
    assert {(r["id"], r["sample"]) for r in kept} == {(padded["id"], 0), (word["id"], 0)}
    funnel = {f["step"]: f["dropped"] for f in stats["funnel"]}
    assert funnel["unsound_step"] == 2 and stats["unsound_step"]["flagged"] == 2
    assert any("spelled" in e for e in stats["unsound_step"]["examples"])
    assert rejected[0]["verdict"]["detail"]  # the false steps ride along with the trace
    stats, kept, _ = run_filter(tmp_path, ["dedup.near=false", "checks.sound=false"], out="off/kept.jsonl")
    assert len(kept) == 4 and "unsound_step" not in {f["step"] for f in stats["funnel"]}


# ---------------------------------------------------------------- eval on a tiny student

def test_eval_reports_sound_accuracy_per_family_and_marks_each_output(tmp_path):
    from distill.config import load_config
    from distill.evaluate import run
    from distill.evaluate.config import EvalConfig
    from distill.records import read_jsonl
    from trained_tiny import make_answering_student

    problems = [  # the student always reasons "Tenths: 9 > 7" and answers 14.99
        {"id": "sound", "question": "Which is greater, 14.99 or 14.7?", "answer": "14.99"},
        {"id": "unsound", "question": "Which is greater, 14.7 or 14.99?", "answer": "14.99"},  # digits read wrongly
        {"id": "wrong", "question": "Which is greater, 14.99 or 15.2?", "answer": "15.2"},
    ]
    problems = [dict(p, kind="math", family="decimal_compare") for p in problems]
    problems.append({"id": "plain", "question": "Name a number above 14.", "answer": "14.99", "kind": "math"})
    student = make_answering_student(tmp_path / "student", answer="14.99", reasoning="Tenths: 9 > 7",
                                     questions=[p["question"] for p in problems], steps=200)
    path, train = tmp_path / "problems.jsonl", tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in problems))
    train.write_text("".join(json.dumps({"id": f"t{i}", "question": "q", "answer": a, "kind": "math",
                                         "family": "decimal_compare"}) + "\n" for i, a in enumerate(["14.99", "14.99", "3"])))
    out = run(load_config(EvalConfig, None, [f"problems={path}", f"student={student}", f"out={tmp_path / 'ev'}",
                                             "max_new_tokens=32", "progress=false", f"chance_problems={train}"]))
    outputs = {r["id"]: r for _, r in read_jsonl(out / "outputs.jsonl")}
    assert outputs["sound"]["reasoning"] == "Tenths: 9 > 7", outputs["sound"]
    assert {k: (r["correct"], r["sound"]) for k, r in outputs.items()} == {
        "sound": (True, True), "unsound": (True, False), "wrong": (False, False), "plain": (True, True)}
    assert outputs["unsound"]["false_steps"] and outputs["sound"]["family"] == "decimal_compare"
    m = json.loads((out / "report.json").read_text())["metrics"]
    assert m["pass@1"] == 0.75 and m["sound"] == 0.5
    fam = m["by_family"]["decimal_compare"]
    assert fam["pass@1"] == pytest.approx(2 / 3) and fam["sound"] == pytest.approx(1 / 3)
    assert fam["sound_interval"]["method"] == "wilson" and fam["pass@1_interval"]["high"] <= 1
    assert fam["chance"] == {"answer": "14.99", "pass@1": pytest.approx(2 / 3), "train_problems": 3}
    assert set(m["by_family"]) == {"decimal_compare"}


# ---------------------------------------------------------------- the summary, the run report and the card

def _report(pass1: float, sound: float, chance: float | None = None) -> dict:
    fam = {"problems": 50, "pass@1": pass1, "sound": sound,
           "pass@1_interval": {"low": pass1 - 0.1, "high": pass1 + 0.1}, "sound_interval": {"low": 0.0, "high": 0.5}}
    if chance is not None:
        fam["chance"] = {"answer": "1", "pass@1": chance, "train_problems": 100}
    return {"metrics": {"problems": 50, "pass@1": pass1, "sound": sound, "answered": 1.0, "truncated": 0.0,
                        "mean_reasoning_tokens": 40.0,
                        "pass@1_interval": {"low": 0.1, "high": 0.9}, "by_family": {"letter_count": fam}}}


def test_summary_run_report_and_card_show_pass_and_sound_per_family_before_and_after(tmp_path):
    from distill.pipeline.report import build_blocks, to_markdown
    from distill.pipeline.summary import collect, summary_rows
    from distill.publish.cards import _eval_section

    from distill.artifacts import EvalReport

    for name, report in (("eval-before", _report(0.2, 0.0, 0.3)), ("eval-after", _report(0.6, 0.4, 0.3))):
        (tmp_path / name).mkdir()
        EvalReport(eval_key="k", model={}, settings={}, metrics=report["metrics"], run={},
                   created_at="2026-11-30T00:00:00+00:00").write(tmp_path / name / "report.json")
    fig = collect(tmp_path)
    rows = dict(summary_rows(fig))
    assert rows["  letter_count"].startswith("pass@1 20% [10%, 30%] -> 60% [50%, 70%], sound 0% [0%, 50%] -> 40%")
    assert "chance 30%" in rows["  letter_count"] and "sound 0.0% -> 40.0%" in rows["accuracy before -> after"]
    markdown = to_markdown(build_blocks(tmp_path, fig))
    assert "| letter_count | 50 | 30% | 20% [10%, 30%] | 60% [50%, 70%] | 0% [0%, 50%] | 40% [0%, 50%] |" in markdown
    after = _report(0.6, 0.4, 0.3)
    after["compare"] = {"by_family_before": _report(0.2, 0.0)["metrics"]["by_family"]}
    card = "\n".join(_eval_section({"eval": after}))
    assert "| letter_count | 50 | 30% | 20% [10%, 30%] | 60% [50%, 70%] | 0% [0%, 50%] | 40% [0%, 50%] |" in card
    assert "| sound | 40.0% |" in card
