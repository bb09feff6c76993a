"""The ablation trains the same tiny student three ways and scores each arm on the held-out problems."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from pipeline_fixtures import recipe_tree, write_offline_problems
from tiny_student import make_tiny_student

from distill.artifacts import AblationReport, AdapterRecord
from distill.errors import ConfigError
from distill.layout import RunLayout
from distill.pipeline.config import load_pipeline
from distill.pipeline.runner import run
from distill.pipeline.state import Ledger

torch.set_num_threads(1)
N_TRAIN, N_EVAL = 12, 6


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ablate")
    train, held_out = write_offline_problems(folder, n_train=N_TRAIN, n_eval=N_EVAL)
    tree = recipe_tree(make_tiny_student(folder / "student"), train, held_out,
                       ablate=["answers_only", "unfiltered", "filtered"], eval_before=False)
    path = folder / "r.yaml"
    path.write_text(yaml.safe_dump(tree))
    return path


def test_three_arms_are_trained_alike_and_scored_against_filtered(recipe, tmp_path):
    run_dir = run(load_pipeline(recipe, [f"run_dir={tmp_path / 'run'}", "offline_teacher.mistake_rate=0.5"]))
    layout = RunLayout(run_dir)
    arms = AblationReport.read(layout.ablation.report).arms
    assert list(arms) == ["answers_only", "unfiltered", "filtered"]
    kept = json.loads((run_dir / "stats.json").read_text())["kept"]
    assert arms["filtered"]["train_examples"] == arms["answers_only"]["train_examples"] == kept
    assert arms["unfiltered"]["train_examples"] == N_TRAIN > kept  # the teacher's mistakes are in it
    assert {a["steps"] for a in arms.values()} == {4}  # the same budget
    assert arms["filtered"]["adapter"] == str(run_dir / "adapter")  # the method's arm is the run's own adapter
    assert AdapterRecord.read(arms["answers_only"]["adapter"]).reasoning_format == "{content}"
    for name, arm in arms.items():
        assert arm["metrics"]["problems"] == N_EVAL, name
        assert 0 <= arm["metrics"]["pass@1"] <= 1
    for name in ("answers_only", "unfiltered"):
        versus = arms[name]["vs_filtered"]
        assert versus["paired_problems"] == N_EVAL and versus["interval"]["method"] == "paired bootstrap"
        assert versus["difference"] == pytest.approx(arms[name]["metrics"]["pass@1"] - arms["filtered"]["metrics"]["pass@1"])
        sound = arms[name]["vs_filtered_sound"]
        assert sound["difference"] == pytest.approx(arms[name]["metrics"]["sound"] - arms["filtered"]["metrics"]["sound"])
    text = (run_dir / "report.md").read_text()
    assert "## Ablation" in text and "(b) all traces, unfiltered" in text and "reference" in text
    # A second run changes nothing: every arm is reused.
    run(load_pipeline(recipe, [f"run_dir={tmp_path / 'run'}", "offline_teacher.mistake_rate=0.5"]))
    again = AblationReport.read(layout.ablation.report)
    assert all(a["reused"] for a in again.arms.values())
    # The other arms are steps of their own ledger, reused like the run's.
    for name in ("answers_only", "unfiltered"):
        states = Ledger(layout.ablation.arm(name).root).all()
        assert set(states) == {"finetune", "eval"} and all(s["status"] == "done" and s.get("reused_at")
                                                          for s in states.values()), name


def test_an_ablation_needs_a_fixed_step_budget_and_known_arms(recipe):
    with pytest.raises(ConfigError, match="max_steps"):
        load_pipeline(recipe, ["finetune.max_steps=null"])
    with pytest.raises(ConfigError, match="unknown arm 'no_filter'"):
        load_pipeline(recipe, ["ablate=[no_filter]"])
