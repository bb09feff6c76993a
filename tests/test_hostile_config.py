"""Validate everything before spending anything (issue #13 §5): every stage's options are range-checked
when its config is built, `distill run` checks every listed stage and every file it names before
the first request, and problem fields have types (file:line:field)."""

from __future__ import annotations

import json

import pytest

from distill.config import load_config
from distill.errors import ConfigError, InputError
from distill.evaluate.config import EvalConfig
from distill.filter.config import FilterConfig
from distill.finetune.config import FinetuneConfig
from distill.generate.config import GenerateConfig
from distill.pipeline.config import PipelineConfig, load_pipeline
from distill.publish.config import PublishConfig
from distill.teacher.server import TeacherServer
from distill.teacher.server_config import ServeConfig


@pytest.mark.parametrize("cls,override,message", [
    (FinetuneConfig, "batch_size=0", "batch_size must be >= 1, got 0"),
    (FinetuneConfig, "learning_rate=-1", "learning_rate must be > 0, got -1.0"),
    (FinetuneConfig, "lora.r=0", "lora.r must be >= 1, got 0"),
    (FinetuneConfig, "lora.dropout=1", "lora.dropout must be in [0, 1), got 1.0"),
    (FinetuneConfig, "grad_accum=0", "grad_accum must be >= 1"),
    (FinetuneConfig, "eval_fraction=1", "eval_fraction must be in [0, 1)"),
    (FinetuneConfig, "reasoning_format=<think>{reasoning}</think>", "reasoning_format must contain {content}"),
    (ServeConfig, "port=99999", "port must be in [0, 65535], got 99999"),
    (ServeConfig, "mistake_rate=2", "mistake_rate must be in [0, 1], got 2.0"),
    (PipelineConfig, "offline_teacher.mistake_rate=2", "offline_teacher.mistake_rate must be in [0, 1], got 2.0"),
    (PipelineConfig, "finetune.lora.r=0", "finetune.lora.r must be >= 1, got 0"),
    (PipelineConfig, "finetune.batch_size=0", "finetune.batch_size must be >= 1"),
    (PipelineConfig, "generate.concurrency=0", "generate.concurrency must be >= 1"),
    (PipelineConfig, "eval.top_p=0", "eval.top_p must be in (0, 1]"),
    (GenerateConfig, "samples=0", "samples must be >= 1"),
    (GenerateConfig, "temperature=-0.5", "temperature must be in [0, 2]"),
    (GenerateConfig, "max_cost_usd=-1", "max_cost_usd must be >= 0"),
    (GenerateConfig, "truncation_factor=1", "truncation_factor must be > 1"),
    (GenerateConfig, "limit=0", "limit must be >= 1"),
    (GenerateConfig, "prices={input: -1, output: 1}", "prices.input must be a non-negative number"),
    (FilterConfig, "checks.max_repeat_share=1.5", "checks.max_repeat_share must be in [0, 1]"),
    (FilterConfig, "per_problem.max=0", "per_problem.max must be >= 1"),
    (FilterConfig, ("judge.enabled=true", "judge.request_timeout=-1"), "judge.request_timeout must be > 0"),
    (EvalConfig, ("backend=api", "api.base_url=localhost:8000"), "api.base_url must be an http(s):// URL"),
    (EvalConfig, ("problems=p.jsonl", "compare=ev", "out=ev"), "compare= names the folder this eval writes"),
])
def test_out_of_range_options_are_refused_with_one_line(cls, override, message):
    with pytest.raises(ConfigError) as info:
        load_config(cls, None, [override] if isinstance(override, str) else list(override))
    text = str(info.value)
    assert message in text and "\n" not in text


def test_publish_and_teacher_serve_from_the_cli_refuse_in_one_line(capsys):
    from distill.cli import main

    assert main(["teacher", "serve", "port=99999"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "distill teacher serve: error: command line: port must be in [0, 65535], got 99999"
    with pytest.raises(ConfigError):
        load_config(PublishConfig, None, ["adapter=a"])


def test_distill_run_refuses_bad_options_and_missing_files_before_the_first_request(tmp_path, monkeypatch):
    """The teacher would have been paid for every trace before finetune or eval found these."""
    from distill.pipeline import run

    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.jsonl").write_text(json.dumps({"id": "a", "question": "1+1?", "answer": "2"}) + "\n")
    (tmp_path / "bad-eval.jsonl").write_text(json.dumps({"id": "e", "question": "2+2?", "answer": [4]}) + "\n")
    with TeacherServer() as srv:
        base = [f"generate.problems={tmp_path / 'train.jsonl'}", "teacher=endpoint", f"generate.base_url={srv.base_url}",
                "generate.api_key_env=null", "generate.model=m", f"run_dir={tmp_path / 'run'}"]
        cases = [
            ([f"eval.problems={tmp_path / 'missing.jsonl'}"], InputError, "missing.jsonl"),
            ([f"eval.problems={tmp_path / 'bad-eval.jsonl'}"], InputError, "bad-eval.jsonl:1 (field 'answer')"),
            ([f"eval.problems={tmp_path / 'train.jsonl'}", f"student={tmp_path / 'no-student'}"],
             InputError, "field 'finetune.student'"),
            ([f"eval.problems={tmp_path / 'train.jsonl'}", "filter.decontam.problems=[./gone.jsonl]"],
             InputError, "gone.jsonl"),
            ([f"eval.problems={tmp_path / 'train.jsonl'}", "stages=[generate, filter, finetune, eval, publish]",
              "publish.repo_id=me/x"], ConfigError, "no Hugging Face token"),
        ]
        for extra, error, message in cases:
            cfg = load_pipeline(None, base + extra)
            with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
                run(cfg)
        assert srv.stats.requests == 0
    assert not (tmp_path / "run").exists()  # refused before the run folder was even made


@pytest.mark.parametrize("row,field,message", [
    ({"id": "a", "question": "q", "answer": [1, 2]}, "answer", "answer must be text or a number, got a list"),
    ({"id": "a", "question": "q", "answer": {"x": 1}}, "answer", "got an object"),
    ({"id": "a", "question": "q", "answer": True}, "answer", "got a boolean"),
    ({"id": None, "question": "q", "answer": "1"}, "id", "id must be a string or an integer, got null"),
    ({"id": {"k": 1}, "question": "q", "answer": "1"}, "id", "got an object"),
    ({"id": [1], "question": "q", "answer": "1"}, "id", "got a list"),
    ({"id": 1.5, "question": "q", "answer": "1"}, "id", "got a fractional number"),
])
def test_problem_fields_have_types(tmp_path, row, field, message):
    from distill.sources import load_problems

    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"id": "ok", "question": "fine", "answer": "1"}) + "\n" + json.dumps(row) + "\n")
    cfg = load_config(GenerateConfig, None, [f"problems={path}"])
    with pytest.raises(InputError) as info:
        load_problems(cfg)
    assert info.value.line == 2 and info.value.field == field
    assert f"p.jsonl:2 (field '{field}'): " in str(info.value) and message in str(info.value)


def test_integer_ids_and_numeric_answers_still_load(tmp_path):
    from distill.sources import load_problems

    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"id": 7, "question": "q", "answer": 3}) + "\n"
                    + json.dumps({"id": 8.0, "question": "q2", "answer": 2.5}) + "\n")
    problems = load_problems(load_config(GenerateConfig, None, [f"problems={path}"]))
    assert [(p["id"], p["answer"]) for p in problems] == [("7", "3"), ("8", "2.5")]
