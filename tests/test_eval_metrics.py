"""Eval scoring math: unbiased pass@k, Wilson intervals, summaries, the paired bootstrap comparison."""

from __future__ import annotations

import math

import pytest

from distill.estimates import compare_outputs, pass_at_k, summarise, wilson_interval


def _rec(pid, sample, correct, **kw):
    return {"id": pid, "sample": sample, "correct": correct, "extracted": "x" if correct is not None else None,
            "kind": kw.pop("kind", "math"), "source": kw.pop("source", "s"), **kw}


@pytest.mark.parametrize("n,c,k,expected", [
    (10, 3, 1, 0.3), (10, 0, 5, 0.0), (10, 10, 1, 1.0), (4, 2, 2, 1 - 1 / 6), (5, 1, 5, 1.0), (6, 2, 3, 1 - 4 / 20),
])
def test_pass_at_k_matches_the_binomial_formula(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected)
    assert pass_at_k(n, c, k) == pytest.approx(1 - math.comb(n - c, k) / math.comb(n, k))


def test_pass_at_k_needs_enough_samples():
    with pytest.raises(ValueError):
        pass_at_k(2, 1, 3)


def test_wilson_interval_known_value_and_edges():
    lo, hi = wilson_interval(8, 10, 0.95)  # textbook value: (0.490, 0.943)
    assert (round(lo, 3), round(hi, 3)) == (0.49, 0.943)
    assert wilson_interval(0, 20)[0] == 0.0 and wilson_interval(20, 20)[1] == 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_summarise_pass_at_k_shares_and_breakdowns():
    records = [_rec("a", s, s < 2, source="gsm") for s in range(4)]          # 2 of 4
    records += [_rec("b", s, False, kind="exact", truncated=s == 0) for s in range(4)]  # 0 of 4
    records += [_rec("c", s, None, reasoning_tokens=10) for s in range(4)]  # undecided
    records.append({"id": "d", "sample": 0, "error": {"type": "http_500", "message": "x"}})
    m = summarise(records)
    assert m.problems == 3 and m.samples == 12 and m.errors == 1
    assert m.pass_at_1.value == pytest.approx((0.5 + 0 + 0) / 3)
    assert m.pass_at_k["pass@2"] == pytest.approx((1 - 1 / 6) / 3)
    assert m.pass_at_k["pass@4"] == pytest.approx(1 / 3)
    assert m.answered == pytest.approx(7 / 12) and m.truncated == pytest.approx(1 / 12)  # cut: not final
    assert m.undecided == pytest.approx(4 / 12) and m.mean_reasoning_tokens == pytest.approx(40 / 12)
    assert m.to_dict()["by_source"]["gsm"] == {"problems": 1, "pass@1": 0.5}
    assert m.by_kind["exact"].scores["pass@1"].value == 0.0 and m.by_kind["math"].problems == 2
    assert m.sound is None and "sound" not in m.to_dict()  # no sample carries it: not measured, not 0%


def test_compare_pairs_by_problem_and_brackets_the_difference():
    before = [_rec(f"p{i}", 0, i < 20) for i in range(100)]
    after = [_rec(f"p{i}", 0, i < 60) for i in range(100)] + [_rec("extra", 0, True)]
    c = compare_outputs(before, after, confidence=0.95, resamples=1000)
    assert c["paired_problems"] == 100  # "extra" has no partner
    assert c["before"] == 0.2 and c["after"] == 0.6 and c["difference"] == pytest.approx(0.4)
    assert c["improved"] == 40 and c["regressed"] == 0
    ci = c["interval"]
    assert ci["method"] == "paired bootstrap" and 0.25 < ci["low"] < 0.4 < ci["high"] < 0.55
    same = compare_outputs(before, before, resamples=200)
    assert same["difference"] == 0 and same["interval"]["low"] == same["interval"]["high"] == 0


def test_compare_without_common_problems():
    assert compare_outputs([_rec("a", 0, True)], [_rec("b", 0, True)])["paired_problems"] == 0
