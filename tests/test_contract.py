"""The hand-off between stages (distill.artifacts): what one stage writes is what the next one reads."""

from __future__ import annotations

import json

import pytest

from distill.artifacts import AdapterRecord, EvalReport, latest_per_pair, read_latest
from distill.layout import RunLayout
from distill.config import load_config
from distill.errors import InputError
from tiny_student import make_tiny_student

TEMPLATE = "Solve this one: {question}\nBox the result."


def respond(messages, request):
    return "Add the numbers one by one.", "The answer is \\boxed{7}."


def test_standalone_eval_prompts_the_adapter_exactly_as_it_was_trained(tmp_path):
    """generate (non-default template) -> finetune (system prompt) -> `distill eval adapter=DIR`, nothing else said."""
    from distill.evaluate import EvalConfig
    from distill.evaluate import run as evaluate
    from distill.finetune import FinetuneConfig
    from distill.finetune import run as finetune
    from distill.generate import GenerateConfig
    from distill.generate import run as generate
    from distill.render import render_prompt
    from distill.teacher.server import TeacherServer

    layout = RunLayout(tmp_path / "run")  # each stage writes where a `distill run` folder has it
    problems = tmp_path / "problems.jsonl"
    problems.write_text("".join(json.dumps({"id": f"q{i}", "question": f"What is {i} + 7 - {i}?", "answer": "7"})
                                + "\n" for i in range(6)))
    with TeacherServer(dialect="deepseek", responder=respond) as srv:
        traces = generate(GenerateConfig(problems=str(problems), base_url=srv.base_url, model="t", progress=False,
                                         prompt_template=TEMPLATE, out=str(layout.traces)))
    student = make_tiny_student(tmp_path / "student")
    adapter = finetune(load_config(FinetuneConfig, None, [
        f"data={traces}", f"student={student}", f"out={layout.adapter.folder}", "progress=false", "max_steps=1",
        "batch_size=2", "lora.r=4", "system_prompt=Be terse."]))
    record = AdapterRecord.read(adapter)
    assert (record.prompt_template, record.system_prompt) == (TEMPLATE, "Be terse.")

    out = evaluate(load_config(EvalConfig, None, [  # no student=, no prompt: the adapter's record says
        f"problems={problems}", f"adapter={adapter}", f"out={layout.eval_after.folder}",
        "max_new_tokens=4", "progress=false", "limit=2"]))
    outputs = [rec for _, rec in read_latest(out / "outputs.jsonl").items()]
    trained_user = {rec["id"]: rec["messages"][-1]["content"] for rec in read_latest(traces).values()}
    assert outputs and all(rec["prompt"] == trained_user[rec["id"]] == TEMPLATE.format(question=rec["question"])
                           for rec in outputs)
    report = EvalReport.read(out / "report.json")
    assert (report.settings["prompt_template"], report.settings["system_prompt"]) == (TEMPLATE, "Be terse.")
    assert report.model["student"] == str(student)
    # The chat text the student sees: the system turn, then the templated question, as in training.
    from transformers import AutoTokenizer

    rendered = render_prompt(AutoTokenizer.from_pretrained(adapter), outputs[0]["prompt"], report.settings["system_prompt"])
    assert rendered == ("<|im_start|>system\nBe terse.<|im_end|>\n<|im_start|>user\n"
                        f"{TEMPLATE.format(question=outputs[0]['question'])}<|im_end|>\n<|im_start|>assistant\n")
    # The layout names what the stages wrote (the pipeline, publish and the report find files through it).
    named = [layout.traces, layout.generate_config, layout.adapter.record, layout.adapter.config,
             layout.adapter.loss_log, layout.eval_after.outputs, layout.eval_after.report, layout.eval_after.config]
    assert [p.relative_to(layout.root).as_posix() for p in named if not p.is_file()] == []


def test_the_last_record_of_a_pair_wins_everywhere(tmp_path):
    lines = [{"id": "a", "sample": 0, "error": {"type": "timeout"}}, {"id": "b", "sample": 0, "content": "x"},
             {"id": "a", "sample": 0, "content": "retried"}, {"id": "a", "sample": 1, "content": "y"}]
    latest = latest_per_pair(enumerate(lines, 1))
    assert list(latest) == [("b", 0), ("a", 0), ("a", 1)]  # order follows the winning lines
    assert latest[("a", 0)]["content"] == "retried"
    assert latest_per_pair(enumerate(lines, 1), keep=lambda line, rec: line)[("a", 0)] == 3
    path = tmp_path / "t.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    assert read_latest(path) == latest


def test_a_record_file_of_another_schema_is_refused_with_its_line(tmp_path):
    path = tmp_path / "traces.jsonl"
    path.write_text('{"schema": 1, "id": "a", "sample": 0}\n{"schema": 9, "id": "b", "sample": 0}\n')
    with pytest.raises(InputError, match=r"traces.jsonl:2 .field .schema..: record of schema version 9, this distill reads version 1"):
        read_latest(path)


def test_whole_file_records_need_their_version_and_fields(tmp_path):
    (tmp_path / "report.json").write_text(json.dumps({"metrics": {"pass@1": 0.5}}))
    with pytest.raises(InputError, match="without a schema version"):
        EvalReport.read(tmp_path / "report.json")
    (tmp_path / "report.json").write_text(json.dumps({"schema": 1, "metrics": {"pass@1": 0.5}}))
    with pytest.raises(InputError, match="field: eval_key|eval_key"):
        EvalReport.read(tmp_path / "report.json")


def test_jsonl_reading_names_the_line_and_skips_only_a_torn_tail(tmp_path):
    from distill.records import JsonlAppender, read_jsonl

    path = tmp_path / "t.jsonl"
    path.write_text('{"id": "a"}\n\n{"id": "é"}\n{"id": "c", "sample": 1}\n{"id": "d", "sam')
    assert [(line, rec["id"]) for line, rec in read_jsonl(path)] == [(1, "a"), (3, "é"), (4, "c")]
    with pytest.raises(InputError, match="t.jsonl:5.*malformed JSON"):
        list(read_jsonl(path, skip_torn_tail=False))
    with JsonlAppender(path) as out:  # cuts the torn line, then appends whole lines
        out.write({"id": "e", "text": "ü"})
    assert path.read_text(encoding="utf-8").endswith('{"id": "c", "sample": 1}\n{"id":"e","text":"ü"}\n')
    path.write_text('{"id": "a"}\n{"id": \n{"id": "c"}\n')
    with pytest.raises(InputError, match="t.jsonl:2.*malformed JSON"):
        list(read_jsonl(path))
    path.write_text('{"id": "a"}\n[1, 2]\n')
    with pytest.raises(InputError, match="t.jsonl:2.*expected a JSON object"):
        list(read_jsonl(path))
