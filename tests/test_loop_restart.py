"""The STaR loop's ``restart: continue`` on the tiny student: round 2 trains from round 1's adapter weights
(recorded and checked at step 0), a re-run repeats nothing, and a bad ``finetune.init_adapter`` stops
`distill run` before the teacher hears anything."""

from __future__ import annotations

import json

import pytest
from safetensors.torch import load_file

from distill.cli import main
from distill.finetune.init_adapter import lora_fingerprint
from distill.records import file_sha256
from distill.teacher.server import TeacherServer
from pipeline_fixtures import states, write_offline_problems, write_recipe
from tiny_student import make_tiny_student

LOOP = {"rounds": 2, "generator": "student", "patience": 2, "max_new_tokens": 24, "restart": "continue"}


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    folder = tmp_path_factory.mktemp("assets")
    train, held_out = write_offline_problems(folder, 8, 4)
    return {"student": make_tiny_student(folder / "student"), "train": train, "eval": held_out}


def test_continue_trains_round_two_from_round_one_weights_and_a_rerun_repeats_nothing(tmp_path, assets):
    with TeacherServer(dialect="deepseek", model="test-teacher", mistake_rate=0.25, seed=1) as teacher:
        recipe = write_recipe(tmp_path, assets["student"], assets["train"], assets["eval"],
                              base_url=teacher.base_url, loop=LOOP, eval_before=False)
        run_dir = tmp_path / "run"
        assert main(["run", str(recipe), f"run_dir={run_dir}"]) == 0
        round1 = run_dir / "adapter" / "adapter_model.safetensors"
        started = json.loads((run_dir / "round-2" / "adapter" / "distill.json").read_text())["init_adapter"]
        assert started["path"] == str(round1.parent) and started["sha256"] == file_sha256(round1)
        # step 0 of round 2: the trainable weights loaded are round 1's saved tensors, value for value
        assert started["loaded_fingerprint"] == lora_fingerprint(load_file(round1))
        assert json.loads((run_dir / "adapter" / "distill.json").read_text())["init_adapter"] is None
        assert json.loads((run_dir / "loop.json").read_text())["restart"] == "continue"
        assert "starting from the previous round's adapter (restart=continue)" in (run_dir / "report.md").read_text()
        first, requests = states(run_dir / "round-2"), teacher.stats.requests

        assert main(["run", str(recipe), f"run_dir={run_dir}"]) == 0
        assert teacher.stats.requests == requests
        again = states(run_dir / "round-2")
        assert all(again[n]["finished_at"] == first[n]["finished_at"] and again[n].get("reused_at") for n in first)


@pytest.mark.parametrize("start, says", [
    ("missing", "no such adapter folder"),
    ("student", "not a LoRA adapter folder"),
])
def test_a_bad_init_adapter_fails_before_the_teacher_is_asked(tmp_path, assets, capsys, start, says):
    path = tmp_path / "nope" if start == "missing" else assets["student"]
    with TeacherServer(dialect="deepseek", model="test-teacher") as teacher:
        recipe = write_recipe(tmp_path, assets["student"], assets["train"], assets["eval"],
                              base_url=teacher.base_url, finetune={"init_adapter": str(path)})
        assert main(["run", str(recipe), f"run_dir={tmp_path / 'run'}"]) == 2
        assert teacher.stats.requests == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert any("finetune.init_adapter" in line and says in line for line in err), err
    assert not (tmp_path / "run" / "traces.jsonl").exists()
