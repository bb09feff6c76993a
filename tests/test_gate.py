"""The regression gate: publish refuses an adapter that made the student worse unless allow_regression=true."""

from __future__ import annotations

import json
import logging
import shutil

import pytest
import torch
from finetune_fixtures import write_kept_traces
from trained_tiny import make_answering_student, train_answer_adapter

from distill.artifacts import AdapterRecord
from distill.errors import RegressionBlocked
from distill.evaluate.config import EvalConfig
from distill.gate import judge
from distill.publish.config import PublishConfig

torch.set_num_threads(1)
QUESTIONS = ["What is 3+4?", "Add 2 and 5.", "What is 10-3?", "What is 2*4?", "Eight minus one?"]


def _problems(path, gold):
    path.write_text("".join(json.dumps({"id": f"p{i}", "question": q, "answer": gold, "kind": "math"}) + "\n"
                            for i, q in enumerate(QUESTIONS)))
    return path


@pytest.fixture(scope="module")
def evals(tmp_path_factory):
    """Real evals of a student that says 7 and its adapter that says 8: gold 7 regressed, gold 8 improved."""
    from distill.evaluate.stage import run as evaluate

    root = tmp_path_factory.mktemp("gate")
    student = make_answering_student(root / "student", answer="7", questions=QUESTIONS)
    adapter = train_answer_adapter(student, root / "adapter", answer="8", questions=QUESTIONS)
    record = AdapterRecord.read(adapter)  # the helper's record names no training file; publish's card reads one
    record.data["path"] = str(write_kept_traces(root / "kept.jsonl", n=2))
    record.write(adapter)
    out = {"adapter": adapter, "root": root}
    for gold, name in (("7", "regressed"), ("8", "improved")):
        out[name] = evaluate(EvalConfig(problems=str(_problems(root / f"gold{gold}.jsonl", gold)), adapter=str(adapter),
                                        compare_base=True, out=str(root / name), max_new_tokens=24, progress=False,
                                        dtype="float32", bootstrap=500))
    return out


def _publish(evals, tmp_path, eval_name, **extra):
    from distill.publish.stage import run

    cfg = PublishConfig(adapter=str(evals["adapter"]), repo_id="tester/gate", eval=str(evals[eval_name]),
                        out=str(tmp_path / "stage"), dry_run=True, **extra)
    run(cfg)
    return (tmp_path / "stage" / "model" / "README.md").read_text()


def test_the_fixture_really_regressed_and_improved(evals):
    for name, before, after in (("regressed", 1.0, 0.0), ("improved", 0.0, 1.0)):
        compare = json.loads((evals[name] / "report.json").read_text())["compare"]
        assert (compare["before"], compare["after"]) == (before, after), name


def test_publish_refuses_a_regressed_adapter_and_stages_nothing(evals, tmp_path):
    with pytest.raises(RegressionBlocked, match="allow_regression=true") as err:
        _publish(evals, tmp_path, "regressed")
    assert "100.0% before, 0.0% after" in str(err.value) and err.value.exit_code == 8
    assert not (tmp_path / "stage").exists()


def test_allow_regression_publishes_and_the_card_says_so(evals, tmp_path):
    card = _publish(evals, tmp_path, "regressed", allow_regression=True)
    assert "## Regression check" in card and "This is a regression" in card
    assert "Published anyway: the user set allow_regression=true." in card


def test_an_improved_adapter_passes_and_the_card_states_the_comparison(evals, tmp_path):
    card = _publish(evals, tmp_path, "improved")
    assert "0.0% before, 100.0% after on 5 paired problems, +100.0 points" in card
    assert "Held-out sound accuracy (correct, no false step)" in card
    assert "No regression detected." in card


def test_forgetting_on_guard_problems_blocks_the_same_way(evals, tmp_path):
    # Held-out improved, but the guard set (what the student could do before) collapsed.
    with pytest.raises(RegressionBlocked, match="forgetting"):
        _publish(evals, tmp_path, "improved", guard_eval=str(evals["regressed"]))
    card = _publish(evals, tmp_path, "improved", guard_eval=str(evals["regressed"]), guard_max_drop=1.0)
    assert "Guard problems" in card and "No regression detected and no forgetting." in card


def test_the_cli_exits_non_zero_with_one_line(evals, tmp_path, capsys):
    from distill.cli import main

    code = main(["publish", f"adapter={evals['adapter']}", "repo_id=tester/gate", f"eval={evals['regressed']}",
                 f"out={tmp_path / 'stage'}", "dry_run=true"])
    assert code == 8 and "allow_regression=true" in capsys.readouterr().err
    assert not (tmp_path / "stage").exists()


def test_distill_run_warns_on_a_regressed_run(evals, tmp_path, caplog):
    from distill.layout import RunLayout
    from distill.pipeline.config import load_pipeline
    from distill.pipeline.runner import _gate
    from distill.pipeline.summary import collect

    layout = RunLayout(tmp_path / "run")
    shutil.copytree(evals["regressed"], layout.eval_after.folder)
    figures = collect(layout.root)
    with caplog.at_level(logging.WARNING, logger="distill.pipeline.runner"):
        _gate(load_pipeline(None, []), layout, figures)
    assert figures.gate_failed and "regression check" in caplog.text and "This is a regression" in caplog.text


@pytest.mark.parametrize("high, regressed", [(-0.01, True), (0.0, False), (0.2, False)])
def test_only_an_interval_entirely_below_zero_is_a_regression(high, regressed):
    compare = {"before": 0.5, "after": 0.4, "difference": -0.1, "paired_problems": 50,
               "interval": {"low": -0.3, "high": high, "confidence": 0.95}}
    assert judge(compare).regressed is regressed
    assert judge(compare, allow_regression=True).blocked is False


def test_guard_problems_add_before_and_after_steps_that_publish_reads(tmp_path):
    from distill.pipeline.config import load_pipeline
    from distill.pipeline.wiring import plan

    cfg = load_pipeline(None, ["guard_problems=offline:eval:arithmetic?n=5&seed=3", "stages=[finetune,eval,publish]",
                               "publish.repo_id=tester/x", "publish.dry_run=true", "eval.problems=offline:eval"])
    steps = {s.name: s for s in plan(cfg, tmp_path)}
    assert list(steps) == ["finetune", "eval-before", "eval-after", "guard-before", "guard-after", "publish"]
    assert steps["guard-after"].cfg.compare == str(tmp_path / "guard-before")
    assert steps["guard-after"].cfg.problems == "offline:eval:arithmetic?n=5&seed=3"
    assert steps["publish"].cfg.guard_eval == str(tmp_path / "guard-after")


def test_a_sound_accuracy_drop_alone_is_a_regression():
    flat = {"difference": 0.0, "interval": {"low": -0.1, "high": 0.1, "confidence": 0.95}}
    compare = {"before": 0.5, "after": 0.5, "paired_problems": 50, **flat,
               "sound": {"before": 0.5, "after": 0.2, "difference": -0.3,
                         "interval": {"low": -0.45, "high": -0.15, "confidence": 0.95}}}
    verdict = judge(compare)
    assert verdict.regressed and verdict.blocked
    assert any(line.startswith("Held-out sound accuracy") and "-30.0 points" in line for line in verdict.lines())
