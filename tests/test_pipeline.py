"""`distill run` end to end on a tiny student and the offline teacher: artefacts, report, reuse, re-runs."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from distill.cli import main
from distill.config import load_config
from distill.errors import ConfigError
from distill.pipeline.config import PipelineConfig, load_pipeline
from distill.teacher.server import TeacherServer
from pipeline_fixtures import good_traces, recipe_tree, states, write_offline_problems, write_recipe
from tiny_student import make_tiny_student

N_TRAIN, N_EVAL = 12, 6


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    folder = tmp_path_factory.mktemp("assets")
    train, held_out = write_offline_problems(folder, N_TRAIN, N_EVAL)
    return {"student": make_tiny_student(folder / "student"), "train": train, "eval": held_out}


@pytest.fixture()
def teacher():
    with TeacherServer(dialect="deepseek", model="test-teacher", mistake_rate=0.25, seed=1) as srv:
        yield srv


def _run(recipe, run_dir, *overrides) -> int:
    return main(["run", str(recipe), f"run_dir={run_dir}", *overrides])


@pytest.mark.slow  # ~30 s on 2 busy cores: four `distill run`s, two trainings, four evals
def test_end_to_end_then_reuse_then_one_changed_setting(tmp_path, assets, teacher, capsys):
    recipe = write_recipe(tmp_path, assets["student"], assets["train"], assets["eval"], base_url=teacher.base_url)
    run_dir = tmp_path / "run"

    assert _run(recipe, run_dir) == 0
    assert capsys.readouterr().out.strip() == str(run_dir.resolve())
    assert teacher.stats.requests == N_TRAIN
    for name in ("traces.jsonl", "kept.jsonl", "rejected.jsonl", "stats.json", "recipe.yaml",
                 "adapter/adapter_model.safetensors", "adapter/distill.json",
                 "eval-before/report.json", "eval-after/report.json", "report.md", "report.html"):
        assert (run_dir / name).exists(), name
    assert sorted(set(good_traces(run_dir / "traces.jsonl"))) == sorted(good_traces(run_dir / "traces.jsonl"))
    kept = [json.loads(line) for line in (run_dir / "kept.jsonl").read_text().splitlines()]
    assert 0 < len(kept) < N_TRAIN  # mistakes were made and caught
    first = states(run_dir)
    assert list(first) == ["eval-after", "eval-before", "filter", "finetune", "generate"]
    assert all(s["status"] == "done" for s in first.values())

    md = (run_dir / "report.md").read_text()
    html = (run_dir / "report.html").read_text()
    for heading in ("Filter funnel", "Training", "Accuracy before and after", "Tokens and cost",
                    "Time per stage", "Artefacts", "Resolved recipe"):
        assert f"## {heading}" in md and f"<h2>{heading}</h2>" in html
    assert len(re.findall(r'src="data:image/png;base64,', html)) == 4  # funnel, loss, accuracy, stages
    assert "](plots/loss.png)" in md and (run_dir / "plots" / "loss.png").stat().st_size > 1000
    assert not re.search(r'(src|href)="https?:|<link|<script', html)  # self-contained

    # Second run: nothing changed, so nothing runs and the teacher hears nothing.
    assert _run(recipe, run_dir) == 0
    assert teacher.stats.requests == N_TRAIN
    second = states(run_dir)
    for name, state in second.items():
        assert state["finished_at"] == first[name]["finished_at"] and state.get("reused_at"), name

    # One finetune setting changed: finetune and eval-after re-run, no more.
    assert _run(recipe, run_dir, "finetune.lora.r=8") == 0
    assert teacher.stats.requests == N_TRAIN
    third = states(run_dir)
    rerun = {n for n in third if third[n]["finished_at"] != second[n]["finished_at"] or third[n]["key"] != second[n]["key"]}
    assert rerun == {"finetune", "eval-after"}
    assert json.loads((run_dir / "adapter" / "adapter_config.json").read_text())["r"] == 8
    assert (run_dir / ".superseded" / f"finetune-{first['finetune']['key']}" / "adapter").is_dir()

    # Back to the first setting: the earlier adapter is restored, not retrained.
    assert _run(recipe, run_dir) == 0
    fourth = states(run_dir)
    assert fourth["finetune"]["key"] == first["finetune"]["key"]
    assert fourth["finetune"]["finished_at"] == first["finetune"]["finished_at"]


def test_built_in_offline_teacher_goes_through_the_client(tmp_path, assets):
    tree = recipe_tree(assets["student"], assets["train"], assets["eval"], stages=["generate", "filter"])
    assert tree["teacher"] == "offline"
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(tree))
    run_dir = tmp_path / "run"
    assert _run(recipe, run_dir, "offline_teacher.mistake_rate=0.5") == 0
    traces = [json.loads(line) for line in (run_dir / "traces.jsonl").read_text().splitlines()]
    assert len(traces) == N_TRAIN
    assert {t["model"] for t in traces} == {"distill-offline-teacher"}
    assert all(t["reasoning"] and "boxed" in t["content"] for t in traces)
    stats = json.loads((run_dir / "stats.json").read_text())
    assert stats["rejected"] > 0  # half the traces carry a deliberate mistake
    # The teacher's settings are part of generate's key: another mistake rate is another set of traces.
    key = states(run_dir)["generate"]["key"]
    assert _run(recipe, run_dir, "offline_teacher.mistake_rate=0.0") == 0
    assert states(run_dir)["generate"]["key"] != key


def test_overrides_reach_every_stage_and_student_sets_both():
    cfg = load_pipeline(None, ["finetune.lora.r=32", "generate.samples=3", "filter.per_problem.max=2",
                               "eval.max_new_tokens=64", "student=/models/x", "offline_teacher.seed=7"])
    assert (cfg.finetune.lora.r, cfg.generate.samples, cfg.filter.per_problem.max) == (32, 3, 2)
    assert cfg.eval.max_new_tokens == 64 and cfg.offline_teacher.seed == 7
    assert cfg.finetune.student == cfg.eval.student == "/models/x"


def test_eval_before_prompts_the_base_as_finetune_will_train_it(tmp_path):
    from distill.pipeline.wiring import plan

    cfg = load_pipeline(None, ["generate.prompt_template=Q: {question}", "finetune.system_prompt=Be brief.",
                               "generate.problems=p.jsonl", "eval.problems=e.jsonl"])
    steps = {step.name: step.cfg for step in plan(cfg, tmp_path)}
    assert (steps["eval-before"].prompt_template, steps["eval-before"].system_prompt) == ("Q: {question}", "Be brief.")
    # eval-after prompts as the adapter's record says it was trained (distill.evaluate.stage.as_trained).
    assert (steps["eval-after"].prompt_template, steps["eval-after"].system_prompt) == (None, None)


def test_wiring_a_field_a_stage_lacks_fails_loudly():
    from distill.pipeline.wiring import _wired

    cfg = load_pipeline(None, [])
    with pytest.raises(TypeError, match="kept_file"):
        _wired(cfg.filter, kept_file="x.jsonl")


@pytest.mark.parametrize("override,message", [
    ("finetune.lora.rank=4", "did you mean 'finetune.lora.r'"),
    ("stages=[generate, train]", "unknown stage 'train'"),
    ("teacher=local", "teacher"),
])
def test_bad_options_fail_clearly(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_pipeline(None, [override])


def test_a_stage_without_its_input_fails_before_anything_runs(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"stages": ["filter", "finetune"], "student": "smollm2"}))
    assert main(["run", str(recipe), f"run_dir={tmp_path / 'run'}"]) == 2
    err = capsys.readouterr().err
    assert "filter needs traces.jsonl" in err and "stages=" in err
    assert not (tmp_path / "run" / ".state").exists()


@pytest.mark.parametrize("override, field", [
    ("generate.problems=offline:train?mix=arithmetic:0", "generate.problems"),
    ("eval.problems=offline:dev?n=ten", "eval.problems"),
    ("guard_problems=offline:dev?mix=sudoku:1", "guard_problems"),
])
def test_a_bad_offline_source_fails_before_the_run_folder_exists(tmp_path, capsys, override, field):
    assert main(["run", f"run_dir={tmp_path / 'run'}", override]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"field '{field}'" in err[0] and "bad offline source" in err[0]
    assert not (tmp_path / "run").exists()  # not even the resolved recipe


def test_section_given_as_a_stage_recipe(tmp_path):
    (tmp_path / "gen.yaml").write_text("problems: p.jsonl\nmodel: m\nbase_url: http://127.0.0.1:9/v1\napi_key_env: null\nsamples: 2\n")
    (tmp_path / "p.yaml").write_text("generate: gen.yaml\nstages: [generate, filter]\n")
    cfg = load_config(PipelineConfig, tmp_path / "p.yaml", ["generate.samples=5"])
    assert (cfg.generate.model, cfg.generate.samples) == ("m", 5)


def test_generate_extends_for_more_problems_and_sets_aside_for_another_teacher_setting(tmp_path, assets, teacher):
    recipe = write_recipe(tmp_path, assets["student"], assets["train"], assets["eval"], base_url=teacher.base_url,
                          stages=["generate"])
    run_dir = tmp_path / "run"
    traces = run_dir / "traces.jsonl"
    assert _run(recipe, run_dir, "generate.limit=6") == 0
    assert teacher.stats.requests == 6
    assert _run(recipe, run_dir) == 0  # all 12: the first 6 are kept, only 6 more are asked for
    assert teacher.stats.requests == 12 and len(good_traces(traces)) == 12
    paid = traces.read_bytes()

    assert _run(recipe, run_dir, "generate.temperature=0.1") == 0  # other traces: a fresh file
    assert teacher.stats.requests == 24 and len(good_traces(traces)) == 12
    aside = list((run_dir / ".superseded").glob("generate-*/traces.jsonl"))
    assert len(aside) == 1 and aside[0].read_bytes() == paid

    assert _run(recipe, run_dir) == 0  # back to the first setting: its traces come back, nothing is asked
    assert teacher.stats.requests == 24 and traces.read_bytes() == paid


def test_dry_run_estimates_and_stops_before_any_request(tmp_path, assets, teacher, capsys):
    recipe = write_recipe(tmp_path, assets["student"], assets["train"], assets["eval"], base_url=teacher.base_url)
    assert _run(recipe, tmp_path / "run", "generate.dry_run=true") == 0
    assert teacher.stats.requests == 0
    assert "dry run" in capsys.readouterr().err  # generate's estimate table
    assert not (tmp_path / "run" / ".state").exists() and not (tmp_path / "run" / "traces.jsonl").exists()
