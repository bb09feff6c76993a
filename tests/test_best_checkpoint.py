"""Finetune keeps the adapter of the step with the best verified dev accuracy, not the last one."""

from __future__ import annotations

import json

import pytest
import torch
from trained_tiny import make_answering_student

from distill.config import load_config
from distill.errors import ConfigError
from distill.finetune import FinetuneConfig, run
from distill.render import DEFAULT_PROMPT

torch.set_num_threads(1)
QUESTIONS = ["What is 3+4?", "Add 2 and 5.", "What is 10-3?", "Seven equals what number?"]


def _write(path, questions, answer):
    """Kept traces teaching the student to reply ``\\boxed{answer}`` to each question."""
    rows = [{"schema": 1, "id": f"q{i}", "sample": 0, "question": q, "answer": answer, "kind": "math",
             "prompt_template": DEFAULT_PROMPT, "system_prompt": None,
             "messages": [{"role": "user", "content": DEFAULT_PROMPT.format(question=q)}],
             "reasoning": "add", "content": f"\\boxed{{{answer}}}", "finish_reason": "stop", "truncated": False,
             "error": None, "verdict": {"correct": True, "extracted": answer, "reason": "correct"}}
            for i, q in enumerate(questions)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    # Greedy replies end in \boxed{7}: right on the dev set (gold 7) before any training.
    return make_answering_student(tmp_path_factory.mktemp("s") / "s", answer="7", questions=QUESTIONS)


def test_a_later_worse_step_is_not_the_adapter_saved(student, tmp_path):
    from distill.evaluate import config as eval_config
    from distill.evaluate.stage import run as evaluate

    dev = _write(tmp_path / "dev.jsonl", QUESTIONS, "7")  # the dev gold is what the base already says
    data = _write(tmp_path / "kept.jsonl", QUESTIONS, "8")  # training pulls the answer away from it
    cfg = load_config(FinetuneConfig, None, [
        f"data={data}", f"student={student}", f"out={tmp_path / 'out'}", "progress=false", "batch_size=4",
        "lora.r=8", "lora.dropout=0", "max_steps=8", "learning_rate=2e-2", "warmup_ratio=0.5",
        "lora.modules_to_save=[lm_head]", f"eval_problems={dev}", "eval_steps=1", "eval_max_new_tokens=24"])
    out = run(cfg)
    rows = [json.loads(line) for line in (out / "loss.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "dev_pass@1" in r] == list(range(1, 9))
    dev_rows = [(r["step"], r["dev_sound"]) for r in rows if "dev_sound" in r]  # ranked by sound accuracy
    assert [s for s, _ in dev_rows] == list(range(1, 9))
    best_step, best = max(dev_rows, key=lambda sv: (sv[1], -sv[0]))
    assert best == 1.0 and dev_rows[-1][1] < best, dev_rows  # the fixture: later steps got worse
    kept = json.loads((out / "distill.json").read_text())["metrics"]["checkpoint"]
    assert kept["kept_step"] == best_step < 8 and kept["by"] == "dev sound" and kept["dev_value"] == best
    assert kept["note"] is None
    assert not (out / "checkpoints").exists() and (out / "loss.png").is_file()
    # The adapter on disk answers as the best step did: scored again through `distill eval`.
    ev = evaluate(eval_config.EvalConfig(problems=str(dev), adapter=str(out), out=str(tmp_path / "ev"),
                                         max_new_tokens=24, progress=False, dtype="float32"))
    assert json.loads((ev / "report.json").read_text())["metrics"]["sound"] == best
    answers = [json.loads(line) for line in (out / "dev_outputs.jsonl").read_text().splitlines()]
    assert {a["step"] for a in answers} == set(range(1, 9)) and len(answers) == 8 * len(QUESTIONS)


def test_keep_best_false_saves_the_last_step(student, tmp_path):
    dev = _write(tmp_path / "dev.jsonl", QUESTIONS, "7")
    data = _write(tmp_path / "kept.jsonl", QUESTIONS, "8")
    cfg = load_config(FinetuneConfig, None, [
        f"data={data}", f"student={student}", f"out={tmp_path / 'out'}", "progress=false", "batch_size=4",
        "lora.r=8", "lora.dropout=0", "max_steps=3", "learning_rate=2e-2", "warmup_ratio=0",
        f"eval_problems={dev}", "eval_steps=0", "eval_max_new_tokens=24", "keep_best=false"])
    out = run(cfg)
    rows = [json.loads(line) for line in (out / "loss.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "dev_pass@1" in r] == [3]  # eval_steps=0: scored at the end only
    assert json.loads((out / "distill.json").read_text())["metrics"]["checkpoint"]["kept_step"] == 3


def test_dev_options_are_checked():
    with pytest.raises(ConfigError, match="eval_max_new_tokens"):
        FinetuneConfig(eval_max_new_tokens=0)


def test_the_held_out_set_cannot_choose_the_step(tmp_path):
    from distill.pipeline.config import load_pipeline
    from distill.pipeline.preflight import preflight

    with pytest.raises(ConfigError, match="held-out eval set"):
        preflight(load_pipeline(None, ["finetune.eval_problems=offline:eval"]))
    held = _write(tmp_path / "held.jsonl", QUESTIONS, "7")
    with pytest.raises(ConfigError, match="in-sample"):
        preflight(load_pipeline(None, [f"eval.problems={held}",  # the same file, spelled another way
                                       f"finetune.eval_problems={tmp_path}/../{tmp_path.name}/held.jsonl"]))
    preflight(load_pipeline(None, ["finetune.eval_problems=offline:train?seed=7&n=30"]))  # a separate set is fine


def test_the_run_report_says_which_step_was_kept(tmp_path):
    import yaml
    from pipeline_fixtures import recipe_tree, write_offline_problems
    from tiny_student import make_tiny_student

    from distill.pipeline.config import load_pipeline
    from distill.pipeline.runner import run as run_pipeline

    train, held_out = write_offline_problems(tmp_path, n_train=8, n_eval=4)
    dev = _write(tmp_path / "dev.jsonl", QUESTIONS, "7")
    tree = recipe_tree(make_tiny_student(tmp_path / "student"), train, held_out, eval_before=False,
                       finetune={"eval_problems": str(dev), "eval_steps": 2, "eval_max_new_tokens": 8})
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(tree))
    run_dir = run_pipeline(load_pipeline(tmp_path / "r.yaml", [f"run_dir={tmp_path / 'run'}"]))
    rows = [json.loads(line) for line in (run_dir / "adapter" / "loss.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "dev_pass@1" in r] == [2, 4]
    kept = json.loads((run_dir / "adapter" / "distill.json").read_text())["metrics"]["checkpoint"]
    assert f"Kept the adapter of step {kept['kept_step']} (dev sound" in (run_dir / "report.md").read_text()
    assert (run_dir / "plots" / "loss.png").is_file()
