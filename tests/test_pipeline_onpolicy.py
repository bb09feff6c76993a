"""`distill run` with an ``onpolicy:`` section: finetune-onpolicy after SFT, eval-after scores its adapter, reuse.

Usage:
    .venv/bin/python -m pytest tests/test_pipeline_onpolicy.py -q
"""

from __future__ import annotations

import json

import pytest

from distill.config import load_config
from distill.errors import ConfigError
from distill.pipeline.config import PipelineConfig
from distill.pipeline.wiring import plan
from distill.records import file_sha256
from distill.teacher.server import TeacherServer
from pipeline_fixtures import recipe_tree, run_recipe, states, write_offline_problems, write_recipe
from tiny_student import make_tiny_student

ONPOLICY = {"enabled": True, "max_steps": 2, "batch_size": 2, "max_new_tokens": 8, "learning_rate": 0.01}


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    folder = tmp_path_factory.mktemp("assets")
    train, held_out = write_offline_problems(folder, 8, 4)
    return {"student": make_tiny_student(folder / "student"), "teacher": make_tiny_student(folder / "teacher", seed=1),
            "train": train, "eval": held_out}


@pytest.mark.slow  # ~40 s on 2 busy cores: three `distill run`s, three trainings, four evals
def test_onpolicy_section_adds_a_step_after_sft_and_a_rerun_reuses_everything(tmp_path, assets):
    with TeacherServer(dialect="deepseek", model="test-teacher", mistake_rate=0.0, seed=1) as teacher:
        recipe = write_recipe(tmp_path, assets["student"], assets["train"], assets["eval"], base_url=teacher.base_url,
                              onpolicy=ONPOLICY)
        _check_runs(recipe, tmp_path / "run", assets["teacher"])


def _check_runs(recipe, run_dir, teacher_model) -> None:
    assert run_recipe(recipe, run_dir) == 0
    first = states(run_dir)
    assert set(first) == {"generate", "filter", "finetune", "finetune-onpolicy", "eval-before", "eval-after"}
    record = json.loads((run_dir / "adapter-onpolicy" / "distill.json").read_text())
    assert record["metrics"]["method"] == "on_policy"
    assert record["init_adapter"]["sha256"] == file_sha256(run_dir / "adapter" / "adapter_model.safetensors")
    scored = json.loads((run_dir / "eval-after" / "report.json").read_text())["model"]["adapter"]
    assert scored == str((run_dir / "adapter-onpolicy").resolve())
    assert "made by finetune-onpolicy" in (run_dir / "report.md").read_text()

    assert run_recipe(recipe, run_dir) == 0  # nothing changed: every step reused
    second = states(run_dir)
    assert all(s["finished_at"] == first[n]["finished_at"] and s.get("reused_at") for n, s in second.items())

    # The teacher becomes a local model: on-policy and eval-after re-run, SFT is kept.
    assert run_recipe(recipe, run_dir, "onpolicy.teacher=model", f"onpolicy.teacher_model={teacher_model}") == 0
    third = states(run_dir)
    rerun = {n for n in third if third[n]["finished_at"] != second[n]["finished_at"]}
    assert rerun == {"finetune-onpolicy", "eval-after"}
    record = json.loads((run_dir / "adapter-onpolicy" / "distill.json").read_text())
    assert record["hyperparameters"]["onpolicy"]["teacher"] == "model"


def test_the_plan_wires_the_onpolicy_step_between_sft_and_eval_after(tmp_path, assets):
    tree = recipe_tree(assets["student"], assets["train"], assets["eval"], onpolicy={**ONPOLICY, "loss": "topk"},
                       finetune={"eval_fraction": 0.2})
    cfg = load_config(PipelineConfig, None, [f"{k}={json.dumps(v)}" for k, v in tree.items()])
    steps = {s.name: s for s in plan(cfg, tmp_path / "run")}
    assert list(steps) == ["generate", "filter", "finetune", "finetune-onpolicy", "eval-before", "eval-after"]
    op, sft = steps["finetune-onpolicy"].cfg, steps["finetune"].cfg
    assert op.method == "on_policy" and op.init_adapter == sft.out and op.data == sft.data
    assert op.max_steps == 2 and op.batch_size == 2 and op.onpolicy.loss == "topk" and op.eval_fraction == 0
    assert op.lora == sft.lora and op.student == sft.student
    assert steps["eval-after"].cfg.adapter == op.out
    assert steps["finetune-onpolicy"].inputs["init_adapter"] == (tmp_path / "run" / "adapter").resolve()


def test_onpolicy_section_is_checked_when_the_recipe_loads(tmp_path, assets):
    tree = recipe_tree(assets["student"], assets["train"], assets["eval"])
    base = [f"{k}={json.dumps(v)}" for k, v in tree.items()]
    with pytest.raises(ConfigError, match="onpolicy.base_url is required with teacher=endpoint"):
        load_config(PipelineConfig, None, [*base, "onpolicy.enabled=true", "onpolicy.teacher=endpoint"])
    with pytest.raises(ConfigError, match="onpolicy.teacher_model is required"):
        load_config(PipelineConfig, None, [*base, "onpolicy.enabled=true", "onpolicy.teacher=model"])
    with pytest.raises(ConfigError, match="loop.method=on_policy"):
        load_config(PipelineConfig, None, [*base, "onpolicy.enabled=true", "loop.rounds=2"])
    load_config(PipelineConfig, None, [*base, "onpolicy.teacher=endpoint"])  # not enabled: not checked
