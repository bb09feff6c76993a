"""The metrics record: old report.json files still load and write the same keys; a new metric field reaches
every table (console, summary, report, card, ablation) and chart without touching them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from types import SimpleNamespace

import pytest

import distill.estimates
import distill.metrics
from distill.artifacts import EvalReport
from distill.errors import InputError
from distill.estimates import summarise
from distill.metrics import Metrics, Score, _metric, metric_rows

RECORDS = [  # outputs.jsonl rows: two problems, two samples each, one failed request
    {"id": "a", "sample": 0, "correct": True, "sound": True, "family": "decimal_compare", "source": "offline",
     "kind": "math", "extracted": "1", "reasoning_tokens": 30, "completion_tokens": 40, "reason": "correct"},
    {"id": "a", "sample": 1, "correct": True, "sound": False, "family": "decimal_compare", "source": "offline",
     "kind": "math", "extracted": "1", "reasoning_tokens": 20, "completion_tokens": 30, "reason": "correct"},
    {"id": "b", "sample": 0, "correct": False, "sound": False, "family": "letter_count", "source": "offline",
     "kind": "exact", "extracted": "2", "reasoning_tokens": 10, "completion_tokens": 12, "reason": "wrong_answer"},
    {"id": "b", "sample": 1, "correct": None, "sound": None, "family": "letter_count", "source": "offline",
     "kind": "exact", "extracted": None, "truncated": True, "reasoning_tokens": 50, "completion_tokens": 64,
     "reason": "truncated"},
    {"id": "c", "sample": 0, "error": {"type": "http_500"}},
]

# report.json as distill wrote it before the metrics were a record (evaluate/metrics.py's summarise of RECORDS).
OLD_REPORT = """{"eval_key": "3f2a", "model": {"backend": "local", "student": "tiny", "adapter": "adapter"},
 "settings": {"problems": "eval.jsonl", "samples": 2}, "run": {"generated": 4}, "created_at": "2026-12-01T10:00:00+00:00",
 "cost_usd": null, "schema": 1,
 "metrics": {"problems": 2, "samples": 4, "errors": 1, "pass@1": 0.5, "pass@1_interval": {"low": 0.09453120573423074,
 "high": 0.9054687942657693, "method": "wilson", "confidence": 0.95}, "pass@k": {"pass@1": 0.5, "pass@2": 0.5},
 "sound": 0.25, "sound_interval": {"low": 0.026677342008984584, "high": 0.8021325442376888, "method": "wilson",
 "confidence": 0.95}, "unsound_correct": 1, "answered": 0.75, "truncated": 0.25, "undecided": 0.25,
 "mean_reasoning_tokens": 27.5, "mean_completion_tokens": 36.5, "reasons": {"correct": 2, "truncated": 1,
 "wrong_answer": 1}, "by_source": {"offline": {"problems": 2, "pass@1": 0.5}}, "by_kind": {"exact": {"problems": 1,
 "pass@1": 0.0}, "math": {"problems": 1, "pass@1": 1.0}}, "by_family": {"decimal_compare": {"problems": 1,
 "pass@1": 1.0, "pass@1_interval": {"low": 0.20654931437723745, "high": 1.0, "method": "wilson", "confidence": 0.95},
 "sound": 0.5, "sound_interval": {"low": 0.05462075552885204, "high": 0.945379244471148, "method": "wilson",
 "confidence": 0.95}, "chance": {"answer": "14.99", "pass@1": 0.5, "train_problems": 3}}, "letter_count":
 {"problems": 1, "pass@1": 0.0, "pass@1_interval": {"low": 0.0, "high": 0.7934506856227626, "method": "wilson",
 "confidence": 0.95}, "sound": 0.0, "sound_interval": {"low": 0.0, "high": 0.7934506856227626, "method": "wilson",
 "confidence": 0.95}}}}}"""


def test_an_old_report_loads_typed_and_writes_back_the_same_json(tmp_path):
    (tmp_path / "report.json").write_text(OLD_REPORT)
    report = EvalReport.read(tmp_path / "report.json")
    m = report.metrics
    assert isinstance(m, Metrics) and report.pass_at_1 == 0.5 and m.sound.value == 0.25 and m.errors == 1
    family = m.by_family["decimal_compare"]
    assert family.scores["sound"].low == pytest.approx(0.0546, abs=1e-4) and family.chance["answer"] == "14.99"
    report.write(tmp_path / "again.json")
    assert json.loads((tmp_path / "again.json").read_text()) == json.loads(OLD_REPORT)


def test_summarise_writes_the_keys_and_values_the_old_summarise_wrote():
    old = json.loads(OLD_REPORT)["metrics"]
    del old["by_family"]["decimal_compare"]["chance"]  # eval adds chance after summarising
    # avg@n (= pass@1's value), its standard error across problems and n came after that report
    assert summarise(RECORDS).to_dict() == {**old, "n": 2, "avg@n": 0.5, "avg@n_stderr": 0.5}


def test_a_report_from_before_soundness_loads_and_shows_dashes(tmp_path):
    old = {"problems": 5, "samples": 5, "errors": 0, "pass@1": 0.6, "pass@1_interval": {"low": 0.2, "high": 0.9},
           "pass@k": {"pass@1": 0.6}, "answered": 1.0, "truncated": 0.0, "by_source": {}, "by_kind": {}}
    EvalReport(eval_key="k", model={}, settings={}, metrics=old, run={}, created_at="t").write(tmp_path / "r.json")
    m = EvalReport.read(tmp_path / "r.json").metrics
    assert m.sound is None and m.pass_at_1.method == "wilson" and m.pass_at_1.high == 0.9
    assert [r.key for r in metric_rows(m, sections=("accuracy",))] == ["pass@1"]


@pytest.mark.parametrize("metrics,says", [({"problems": 3}, "without pass@1"),
                                          ({"pass@1": "half"}, "malformed metrics"),
                                          ({"pass@1": 0.5, "pass@1_interval": [0, 1]}, "malformed metrics"),
                                          ({"pass@1": 0.5, "by_family": {"f": 3}}, "malformed metrics")])
def test_a_report_with_bad_metrics_is_refused_naming_the_field(tmp_path, metrics, says):
    path = tmp_path / "report.json"
    path.write_text(json.dumps({**json.loads(OLD_REPORT), "metrics": metrics}))
    with pytest.raises(InputError, match=says) as err:
        EvalReport.read(path)
    assert "metrics" in str(err.value) and "report.json" in str(err.value)


# ---------------------------------------------------------------- a new metric is one field


@dataclass
class WithKindness(Metrics):
    """The record with one more accuracy, averaged from each sample's ``kind_ok`` field."""

    kindness: Score | None = _metric("kindness", "kindness", "accuracy", sample_field="kind_ok")


def _outputs(kind_ok: list[bool]) -> list[dict]:
    return [{**r, "id": f"p{i}", "sample": 0, "kind_ok": ok, "family": "decimal_compare" if i % 2 else "letter_count"}
            for i, (r, ok) in enumerate(zip(RECORDS[:4] * 5, kind_ok))]


def test_one_new_metric_field_reaches_every_table_and_chart(tmp_path, monkeypatch, capsys):
    from distill import plots
    from distill.evaluate.stage import _show
    from distill.pipeline.ablation import _versus_reference, family_rows, table_rows
    from distill.pipeline.report import build_blocks, to_markdown
    from distill.pipeline.summary import collect, summary_rows
    from distill.publish.cards import _eval_section

    for module in (distill.metrics, distill.estimates):  # as if the field were written in the record
        monkeypatch.setattr(module, "Metrics", WithKindness)
    before, after = _outputs([i < 4 for i in range(20)]), _outputs([i < 15 for i in range(20)])
    reports = {}
    for name, records in (("eval-before", before), ("eval-after", after)):
        reports[name] = EvalReport(eval_key="k", model={}, settings={}, metrics=summarise(records), run={},
                                   created_at="t")
        reports[name].write(tmp_path / name / "report.json")
    assert json.loads((tmp_path / "eval-after" / "report.json").read_text())["metrics"]["kindness"] == 0.75

    fig = collect(tmp_path)
    rows = dict(summary_rows(fig))
    assert "kindness 20.0% -> 75.0%" in rows["accuracy before -> after"]
    assert "kindness 20% [" in rows["  letter_count"]
    markdown = to_markdown(build_blocks(tmp_path, fig))
    assert "| kindness | 20.0% [" in markdown and "| kindness before | kindness after |" in markdown
    card = "\n".join(_eval_section({"eval": reports["eval-after"].to_dict()}))
    assert "| kindness | 75.0% |" in card and "kindness after" in card
    _show(reports["eval-after"])
    assert "kindness" in capsys.readouterr().err

    ev = SimpleNamespace(confidence=0.95, bootstrap=200)
    versus = _versus_reference(after, before, reports["eval-before"].metrics.to_dict(), ev)
    assert versus["vs_filtered_kindness"]["difference"] == pytest.approx(-0.55)
    by_family = {f: v["vs_filtered_kindness"]["difference"] for f, v in versus["by_family"].items()}
    assert by_family == {"decimal_compare": pytest.approx(-0.5), "letter_count": pytest.approx(-0.6)}  # paired per family
    arms = {"filtered": {"label": "(c) filtered traces (the method)", "train_examples": 9, "steps": 4,
                         "metrics": reports["eval-after"].metrics.to_dict()},
            "unfiltered": {"label": "(b) all traces, unfiltered", "train_examples": 12, "steps": 4,
                           "metrics": reports["eval-before"].metrics.to_dict(), **versus}}
    header, table = table_rows(SimpleNamespace(arms=arms))
    column = header.index("kindness vs filtered (paired 95% CI)")
    assert table[0][column].startswith("-55.0 pts [") and table[1][column] == "reference"
    header, table = family_rows(SimpleNamespace(arms=arms))
    assert [row[:2] for row in table] == [["(b) all traces, unfiltered", "decimal_compare"],
                                          ["(b) all traces, unfiltered", "letter_count"]]

    rows = metric_rows(reports["eval-after"].metrics, reports["eval-before"].metrics)
    assert {(r.section, r.group) for r in rows if r.key == "kindness"} == {
        ("accuracy", None), ("family", "decimal_compare"), ("family", "letter_count")}
    assert plots.accuracy(rows, tmp_path / "accuracy.png").stat().st_size > 1000
