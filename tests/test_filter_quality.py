"""Each quality check of `distill filter` drops what it should (positive) and keeps what it should not touch."""

from __future__ import annotations

import pytest
from filter_helpers import GOOD, reasons, run_filter, trace
from records_factory import write_traces

from distill.filter.quality import estimate_tokens, other_script_share, repetition

LONG = GOOD + "".join(f" Note {k}: clip batch {k} weighed {k * 7} grams on day {k + 3}." for k in range(40))
LOOP = "Wait, let me check this value again to be sure it is right. " * 40

# (name, a trace the check must drop, extra options)
CASES = [
    ("error", trace(reasoning=None, content=None, error={"type": "http_500", "message": "boom"}), []),
    ("truncated", trace(finish_reason="length", truncated=True), []),
    ("empty", trace(content=""), []),  # the verdict on empty content (distill.verify.record rule 5)
    ("no_answer", trace(content="I could not settle on it."), []),
    ("missing_reasoning", trace(reasoning=None, content="\\boxed{72}",
                                usage={"completion_tokens": 900, "reasoning_tokens": 800}), []),
    ("too_short", trace(), ["checks.min_tokens=200"]),
    ("too_long", trace(reasoning=LONG), ["checks.max_tokens=200"]),
    ("repetition", trace(reasoning=GOOD + LOOP), []),
    ("language_mix", trace(reasoning=GOOD + " 所以答案是七十二，我们再检查一下这个计算过程是否正确。"), []),
    ("wrong_answer", trace(content="So \\boxed{71}"), []),
    ("bad_step", trace(reasoning=GOOD.replace("48 + 24 = 72", "48 + 24 = 73")), []),
]
# The same trace with the check switched off (or its bound relaxed) is kept.
OFF = {
    "error": ["checks.errors=false", "checks.answer=false", "checks.reasoning=ignore"],
    # A cut response is also a wrong answer (distill.verify.record rule 6): keeping it needs both off.
    "truncated": ["checks.truncated=false", "checks.answer=false"], "missing_reasoning": ["checks.reasoning=ignore"],
    "too_short": ["checks.min_tokens=0"], "too_long": ["checks.max_tokens=10000"],
    "repetition": ["checks.repetition=false"], "language_mix": ["checks.max_other_script=null"],
    "wrong_answer": ["checks.answer=false"], "bad_step": ["checks.bad_step=false"],
}


@pytest.mark.parametrize("name,bad,options", CASES, ids=[c[0] for c in CASES])
def test_check_drops_with_its_reason(tmp_path, name, bad, options):
    ok = trace("ok", 0, reasoning=LONG if name == "too_short" else GOOD)
    write_traces(tmp_path / "traces.jsonl", [ok, dict(bad, id="bad")])
    stats, kept, rejected = run_filter(tmp_path, options)
    assert [(r["id"], r["verdict"]["reason"]) for r in kept] == [("ok", "correct")]
    assert reasons(rejected) == {("bad", 0): name}
    assert [f["step"] for f in stats["funnel"]] == ["input", name]


@pytest.mark.parametrize("name", [n for n in OFF if n != "error"])
def test_check_switched_off_keeps(tmp_path, name):
    bad = next(c[1] for c in CASES if c[0] == name)
    write_traces(tmp_path / "traces.jsonl", [dict(bad, id="bad")])
    _, kept, rejected = run_filter(tmp_path, OFF[name])
    assert rejected == [] and [r["id"] for r in kept] == ["bad"]


def test_reasoning_in_content_is_not_missing(tmp_path):
    write_traces(tmp_path / "traces.jsonl", [trace(reasoning=None, content=GOOD + " So \\boxed{72}",
                                                   usage={"completion_tokens": 80})])
    _, kept, _ = run_filter(tmp_path)
    assert len(kept) == 1


def test_honest_rechecking_is_not_repetition(tmp_path):
    text = GOOD + " Let me double-check: 48 / 2 = 24 and 48 + 24 = 72. Yes, 72 is right. " * 3
    write_traces(tmp_path / "traces.jsonl", [trace(reasoning=text)])
    _, kept, _ = run_filter(tmp_path)
    assert len(kept) == 1


def test_greek_letters_are_not_language_mixing():
    assert other_script_share("The area is π r^2 with θ = 30°, α + β = 90°") == 0.0
    assert other_script_share("答案是 42, so the answer is 42") > 0.1


def test_undecided_is_dropped_unless_kept(tmp_path):
    write_traces(tmp_path / "traces.jsonl", [trace(answer="\\frac{", kind="math")])
    _, kept, rejected = run_filter(tmp_path)
    assert not kept and rejected[0]["verdict"]["correct"] is None
    _, kept, _ = run_filter(tmp_path, ["checks.keep_undecided=true"])
    assert len(kept) == 1


def test_measures():
    assert repetition("a b c d e f".split(), 3) == (0.0, 1)
    share, top = repetition(("x y z " * 20).split(), 3)
    assert share > 0.9 and top == 20
    assert 20 <= estimate_tokens("word " * 20) <= 30
