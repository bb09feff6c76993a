"""The STaR loop's ``method: on_policy`` on the tiny student: round 2 is on-policy self-distillation from round 1's
adapter (the self teacher shown each problem's verified trace), and a re-run repeats nothing.

Usage:
    .venv/bin/python -m pytest tests/test_loop_onpolicy.py -q
"""

from __future__ import annotations

import json

import pytest

from distill.config import load_config
from distill.errors import ConfigError
from distill.pipeline.config import PipelineConfig
from distill.records import file_sha256
from distill.teacher.server import TeacherServer
from pipeline_fixtures import recipe_tree, run_recipe, states, write_offline_problems, write_recipe
from tiny_student import make_tiny_student

LOOP = {"rounds": 2, "generator": "student", "patience": 2, "max_new_tokens": 24, "method": "on_policy"}
ONPOLICY = {"max_steps": 2, "batch_size": 2, "max_new_tokens": 8, "learning_rate": 0.01}


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    folder = tmp_path_factory.mktemp("assets")
    train, held_out = write_offline_problems(folder, 8, 4)
    return {"student": make_tiny_student(folder / "student"), "train": train, "eval": held_out}


@pytest.mark.slow  # ~30 s on 2 busy cores: two rounds, a re-run
def test_round_two_distils_on_policy_from_round_one_and_a_rerun_repeats_nothing(tmp_path, assets):
    with TeacherServer(dialect="deepseek", model="test-teacher", mistake_rate=0.0, seed=1) as teacher:
        recipe = write_recipe(tmp_path, assets["student"], assets["train"], assets["eval"], base_url=teacher.base_url,
                              loop=LOOP, onpolicy=ONPOLICY, eval_before=False)
        run_dir = tmp_path / "run"
        assert run_recipe(recipe, run_dir) == 0
        round2 = json.loads((run_dir / "round-2" / "adapter" / "distill.json").read_text())
        assert round2["metrics"]["method"] == "on_policy" and round2["hyperparameters"]["onpolicy"]["teacher"] == "self"
        assert round2["init_adapter"]["sha256"] == file_sha256(run_dir / "adapter" / "adapter_model.safetensors")
        assert round2["data"]["path"] == str((run_dir / "round-2" / "train.jsonl").resolve())
        assert json.loads((run_dir / "adapter" / "distill.json").read_text())["metrics"].get("method") != "on_policy"
        assert json.loads((run_dir / "loop.json").read_text())["method"] == "on_policy"
        assert "train on-policy" in (run_dir / "report.md").read_text()
        first, requests = states(run_dir / "round-2"), teacher.stats.requests

        assert run_recipe(recipe, run_dir) == 0
        assert teacher.stats.requests == requests
        again = states(run_dir / "round-2")
        assert all(again[n]["finished_at"] == first[n]["finished_at"] and again[n].get("reused_at") for n in first)


def test_loop_method_on_policy_checks_the_onpolicy_teacher(assets):
    tree = recipe_tree(assets["student"], assets["train"], assets["eval"], loop=LOOP)
    base = [f"{k}={json.dumps(v)}" for k, v in tree.items()]
    with pytest.raises(ConfigError, match="onpolicy.teacher_model is required"):
        load_config(PipelineConfig, None, [*base, "onpolicy.teacher=model"])
    assert load_config(PipelineConfig, None, base).loop.method == "on_policy"
