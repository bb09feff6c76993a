"""The ablation's continued arms on the tiny student: from the run's SFT adapter, more SFT vs on-policy (self
teacher, model teacher on loopback), on one budget, each scored against the SFT start.

Usage:
    .venv/bin/python -m pytest tests/test_ablation_onpolicy.py -q
"""

from __future__ import annotations

import pytest
import torch
import yaml

from distill.artifacts import AblationReport, AdapterRecord
from distill.errors import ConfigError
from distill.layout import RunLayout
from distill.pipeline.config import load_pipeline
from distill.pipeline.runner import run
from distill.records import file_sha256
from pipeline_fixtures import recipe_tree, write_offline_problems
from tiny_student import make_tiny_student

torch.set_num_threads(1)
ARMS = ["sft_continued", "onpolicy_self", "onpolicy_model"]


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ablate-onpolicy")
    train, held_out = write_offline_problems(folder, n_train=8, n_eval=4)
    student = make_tiny_student(folder / "student")
    tree = recipe_tree(student, train, held_out, ablate=ARMS, eval_before=False,
                       onpolicy={"max_steps": 3, "max_new_tokens": 8, "batch_size": 2, "learning_rate": 0.01,
                                 "teacher_model": str(make_tiny_student(folder / "teacher", seed=1))})
    path = folder / "r.yaml"
    path.write_text(yaml.safe_dump(tree))
    return path


def test_continued_arms_start_from_the_sft_adapter_on_one_budget(recipe, tmp_path):
    run_dir = run(load_pipeline(recipe, [f"run_dir={tmp_path / 'run'}", "onpolicy.max_train_seconds=60",
                                                 "onpolicy.train_clock=cpu"]))
    arms = AblationReport.read(RunLayout(run_dir).ablation.report).arms
    assert list(arms) == ["filtered", *ARMS]
    sft = file_sha256(run_dir / "adapter" / "adapter_model.safetensors")
    for name in ARMS:
        record = AdapterRecord.read(arms[name]["adapter"])
        assert record.init_adapter["sha256"] == sft, name  # every arm continues the run's SFT adapter
        assert record.hyperparameters["max_train_seconds"] == 60 and record.hyperparameters["train_clock"] == "cpu"
        assert arms[name]["steps"] == 3, name
        assert arms[name]["vs_filtered"]["paired_problems"] == 4, name
    teachers = {n: AdapterRecord.read(arms[n]["adapter"]).hyperparameters["onpolicy"]["teacher"] for n in ARMS[1:]}
    assert teachers == {"onpolicy_self": "self", "onpolicy_model": "model"}
    assert AdapterRecord.read(arms["sft_continued"]["adapter"]).hyperparameters["method"] == "sft"
    assert "(f) (c) + on-policy, model teacher" in (run_dir / "report.md").read_text()


def test_the_model_arm_needs_a_teacher_model(recipe):
    with pytest.raises(ConfigError, match="onpolicy_model arm needs onpolicy.teacher_model"):
        load_pipeline(recipe, ["onpolicy.teacher_model=null"])
    with pytest.raises(ConfigError, match="not with onpolicy.enabled"):
        load_pipeline(recipe, ["onpolicy.enabled=true"])
    assert load_pipeline(recipe).ablate == ARMS
