"""`distill eval` with the local backend on tiny trained students: accuracy, before/after, resume, guards."""

from __future__ import annotations

import json
import shutil

import pytest

from distill.config import load_config
from distill.errors import ConfigError, InputError
from distill.evaluate import run
from distill.evaluate.config import EvalConfig
from distill.records import read_jsonl
from trained_tiny import make_answering_student, train_answer_adapter

GOLDS = ["7", "7", "8", "8", "8", "8"]  # base answers 7 -> 2/6; with the adapter it answers 8 -> 4/6


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval-models")
    questions = [f"What is {i} plus {i} plus one? " * (1 + i % 3) for i in range(len(GOLDS))]
    student = make_answering_student(root / "student", answer="7", questions=questions)
    adapter = train_answer_adapter(student, root / "adapter", answer="8", questions=questions)
    problems = root / "problems.jsonl"
    with problems.open("w") as f:
        for i, (question, gold) in enumerate(zip(questions, GOLDS)):
            f.write(json.dumps({"id": f"q{i}", "question": question, "answer": gold, "kind": "math"}) + "\n")
    return {"student": student, "adapter": adapter, "problems": problems, "root": root}


def _cfg(models, out, *extra):
    return load_config(EvalConfig, None, [f"problems={models['problems']}", f"student={models['student']}",
                                          f"out={out}", "max_new_tokens=24", "batch_size=4", "progress=false",
                                          *extra])


def _records(folder):
    return sorted((r for _, r in read_jsonl(folder / "outputs.jsonl")), key=lambda r: r["id"])


def test_accuracy_before_and_after_in_one_call(models, tmp_path):
    out = run(_cfg(models, tmp_path / "ev", f"adapter={models['adapter']}", "compare_base=true"))
    base = json.loads((out / "base" / "report.json").read_text())
    after = json.loads((out / "report.json").read_text())
    assert base["metrics"]["pass@1"] == pytest.approx(2 / 6)
    assert after["metrics"]["pass@1"] == pytest.approx(4 / 6)
    assert after["metrics"]["answered"] == 1.0 and after["metrics"]["truncated"] == 0.0
    assert after["metrics"]["mean_reasoning_tokens"] > 0, json.dumps(_records(out)[0])
    recs = _records(out)
    assert [r["extracted"] for r in recs] == ["8"] * 6
    assert [r["correct"] for r in recs] == [g == "8" for g in GOLDS]
    assert {"question", "gold", "response", "extracted", "correct", "reasoning", "content"} <= set(recs[0])
    assert any(r["reasoning"] == "add" and r["response"].startswith("<think>") for r in recs)
    c = after["compare"]
    assert c["paired_problems"] == 6 and c["difference"] == pytest.approx(2 / 6)
    assert c["interval"]["method"] == "paired bootstrap" and c["interval"]["low"] <= 2 / 6 <= c["interval"]["high"]
    assert (out / "config.yaml").is_file()


@pytest.mark.slow
def test_batched_generation_matches_one_prompt_at_a_time(models, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from distill.render import encode_prompt
    from distill.render import DEFAULT_PROMPT

    batched = _records(run(_cfg(models, tmp_path / "b4")))
    tok = AutoTokenizer.from_pretrained(models["student"])
    model = AutoModelForCausalLM.from_pretrained(models["student"]).eval()
    for rec in batched:
        ids = torch.tensor([encode_prompt(tok, DEFAULT_PROMPT.format(question=rec["question"]))])
        out = model.generate(ids, max_new_tokens=24, do_sample=False, eos_token_id=tok.eos_token_id,
                             pad_token_id=tok.pad_token_id)
        alone = tok.decode(out[0, ids.shape[1]:], skip_special_tokens=False).replace("<|im_end|>", "")
        assert rec["response"] == alone  # left padding + attention mask change nothing


@pytest.mark.slow
def test_resume_skips_done_answers_and_refuses_a_changed_eval(models, tmp_path):
    cfg = _cfg(models, tmp_path / "ev")
    run(cfg)
    first = (tmp_path / "ev" / "outputs.jsonl").read_text()
    run(cfg)
    report = json.loads((tmp_path / "ev" / "report.json").read_text())
    assert report["run"]["generated"] == 0 and report["metrics"]["problems"] == 6
    assert (tmp_path / "ev" / "outputs.jsonl").read_text() == first
    with pytest.raises(ConfigError, match="different eval"):
        run(_cfg(models, tmp_path / "ev", "max_new_tokens=5"))


@pytest.mark.slow
def test_truncation_and_sampling_with_several_samples(models, tmp_path):
    out = run(_cfg(models, tmp_path / "t", "max_new_tokens=3", "samples=2", "temperature=1.0"))
    m = json.loads((out / "report.json").read_text())["metrics"]
    assert m["samples"] == 12 and m["truncated"] == 1.0 and m["pass@1"] == 0.0
    assert set(m["pass@k"]) == {"pass@1", "pass@2"} and m["reasons"] == {"truncated": 12}


@pytest.mark.slow
def test_compare_with_a_previous_eval_folder(models, tmp_path):
    run(_cfg(models, tmp_path / "before"))
    out = run(_cfg(models, tmp_path / "after", f"adapter={models['adapter']}", f"compare={tmp_path / 'before'}"))
    c = json.loads((out / "report.json").read_text())["compare"]
    assert (c["before"], c["after"]) == (pytest.approx(2 / 6), pytest.approx(4 / 6))
    assert c["improved"] == 4 and c["regressed"] == 2


@pytest.mark.slow
def test_adapter_of_another_base_model_is_refused(models, tmp_path):
    other = make_answering_student(tmp_path / "other", answer="7", seed=1, questions=["1+1?"])
    with pytest.raises(InputError, match="trained on"):
        run(_cfg(models, tmp_path / "x", f"adapter={models['adapter']}", f"student={other}"))
    copy = shutil.copytree(models["student"], tmp_path / "copy")  # the same weights elsewhere: accepted
    out = run(_cfg(models, tmp_path / "y", f"adapter={models['adapter']}", f"student={copy}"))
    assert json.loads((out / "report.json").read_text())["metrics"]["pass@1"] == pytest.approx(4 / 6)
