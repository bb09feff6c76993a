"""A benchmark eval on the model card: `.eval_results/*.yaml` in the Hub's format (only when the protocol was
kept), model-index naming the benchmark's dataset, and publish staging the file beside the adapter."""

from __future__ import annotations

import dataclasses
import json

import pytest
import yaml
from huggingface_hub import ModelCard, parse_eval_result_entries

from distill.artifacts import EvalReport
from distill.benchmarks import protocol_for
from distill.benchmarks.report import benchmark_settings
from distill.config import load_config
from distill.evaluate.config import EvalConfig
from distill.estimates import summarise
from distill.errors import InputError
from distill.publish.cards import check_outputs_publishable, eval_results_entries, model_card, write_eval_results

SOURCE = {"dataset": "HuggingFaceH4/aime_2024", "config": None, "split": "train", "licence": "MIT",
          "revision": "a" * 40, "rows": 3, "problems": 3}
# The Hub's .eval_results entry keys (huggingface_hub._eval_results.eval_result_entries_to_yaml)
ENTRY_KEYS = {"dataset", "value", "verifyToken", "date", "source", "notes"}


def _facts(*overrides: str) -> dict:
    cfg = load_config(EvalConfig, None, ["benchmark=aime24", "student=s", *overrides])
    records = [{"id": f"p{i}", "sample": s, "correct": (i + s) % 3 == 0, "kind": "math"}
               for i in range(3) for s in range(4)]
    settings = {"benchmark": benchmark_settings(cfg, protocol_for("aime24"), SOURCE)}
    report = EvalReport(eval_key="k", model={}, settings=settings, metrics=summarise(records), run={},
                        created_at="2026-12-06T20:00:00+00:00")
    return {"eval": report.to_dict(), "teacher": {}, "usage": {}, "stats": {}, "base_model": "b"}


def test_eval_results_file_is_the_hubs_format(tmp_path):
    facts = _facts()
    [path] = write_eval_results(facts, tmp_path)
    assert path == tmp_path / ".eval_results" / "aime_2024.yaml"
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, list) and all(set(item) <= ENTRY_KEYS for item in data)
    [entry] = parse_eval_result_entries(data)
    avg = facts["eval"]["metrics"]["avg@n"]
    assert (entry.dataset_id, entry.task_id, entry.dataset_revision) == ("HuggingFaceH4/aime_2024", "aime_2024", "a" * 40)
    assert entry.value == pytest.approx(round(100 * avg, 2)) and "avg@4" in entry.notes
    assert dataclasses.asdict(entry) == dataclasses.asdict(eval_results_entries(facts)[0])


def test_an_overridden_protocol_gets_no_leaderboard_file_and_the_card_says_so(tmp_path):
    facts = _facts("samples=4", "max_new_tokens=64")
    assert write_eval_results(facts, tmp_path) == [] and not (tmp_path / ".eval_results").exists()
    card = model_card(facts, "me/m", None, "apache-2.0", [])
    assert "Not comparable with published figures: samples=4 (protocol 64), max_new_tokens=64 (protocol 32768)" in card


def test_model_index_names_the_benchmark_dataset():
    facts = _facts()
    results = ModelCard(model_card(facts, "me/m", None, "apache-2.0", [])).data.eval_results
    first = results[0]
    assert (first.dataset_type, first.dataset_name, first.dataset_revision) == ("HuggingFaceH4/aime_2024", "aime24",
                                                                                 "a" * 40)
    assert first.metric_value == pytest.approx(round(100 * facts["eval"]["metrics"]["avg@n"], 2))
    assert {r.metric_type for r in results} >= {"pass@1", "pass@2", "pass@4"}


def _outputs(folder, n=3):
    rows = [{"schema": 1, "eval_key": "k", "id": f"aime24-{i}", "sample": 0, "kind": "math", "question": f"Q{i}?",
             "gold": str(i) if i else {"sha256": "ab" * 32, "chars": 70000}, "content": f"\\boxed{{{i}}}",
             "correct": True, "error": None} for i in range(n)]
    (folder / "outputs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_publish_stages_the_eval_results_beside_the_adapter(tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from distill.publish import run
    from distill.publish.config import PublishConfig
    from tiny_student import make_tiny_student

    student = make_tiny_student(tmp_path / "student")
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(student),
                           LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj"]))
    model.save_pretrained(tmp_path / "adapter")
    (tmp_path / "eval").mkdir()
    EvalReport(**{k: v for k, v in _facts()["eval"].items() if k != "schema"}).write(tmp_path / "eval" / "report.json")
    _outputs(tmp_path / "eval")
    out = run(load_config(PublishConfig, None, [f"adapter={tmp_path / 'adapter'}", "repo_id=me/m", "dry_run=true",
                                                f"eval={tmp_path / 'eval'}", f"out={tmp_path / 'stage'}",
                                                "base_model=me/base", "outputs_repo_id=me/m-aime24-outputs"]))
    staged = out / "model" / ".eval_results" / "aime_2024.yaml"
    assert parse_eval_result_entries(yaml.safe_load(staged.read_text()))[0].dataset_id == "HuggingFaceH4/aime_2024"
    from datasets import load_dataset

    answers = load_dataset("parquet", data_files=str(out / "outputs" / "data" / "*.parquet"), split="train")
    assert sorted(answers["id"]) == ["aime24-0", "aime24-1", "aime24-2"] and "schema" not in answers.column_names
    assert json.loads(answers[answers["id"].index("aime24-0")]["gold"])["chars"] == 70000
    card = (out / "outputs" / "README.md").read_text()
    assert "3 raw answers of [`me/m`]" in card and "HuggingFaceH4/aime_2024" in card
    assert "https://huggingface.co/datasets/me/m-aime24-outputs" in (out / "model" / "README.md").read_text()


def test_gpqa_outputs_are_not_published(tmp_path):
    facts = _facts()
    facts["eval"]["settings"]["benchmark"]["name"] = "gpqa-diamond"
    with pytest.raises(InputError, match="not publishing gpqa-diamond's outputs"):
        check_outputs_publishable(facts)
    check_outputs_publishable(_facts())  # aime24's may go


def test_failed_samples_make_a_benchmark_eval_not_comparable(tmp_path):
    # AIME: problem a answered right 64 times, every sample of problem b timed out. avg@n stays over answered
    # samples (100%), so the report must say it is not comparable and publish must keep it off the leaderboard.
    from distill.benchmarks.report import attach

    cfg = load_config(EvalConfig, None, ["benchmark=aime24", "student=s"])
    records = [{"id": "a", "sample": s, "correct": True, "kind": "math"} for s in range(64)]
    records += [{"id": "b", "sample": s, "kind": "math", "error": {"type": "timeout"}} for s in range(64)]
    metrics = summarise(records)
    assert (metrics.avg_at_n, metrics.errors) == (1.0, 64)
    settings: dict = {}
    section = attach(settings, cfg, SOURCE, records, tmp_path)
    assert section["comparable"] is False and section["failed_samples"] == 64
    assert section["not_comparable_because"] == ["64 of 128 samples failed (avg@n is over the 64 answered)"]
    older = {"benchmark": benchmark_settings(cfg, protocol_for("aime24"), SOURCE)}  # a report from before the rule
    for kept in (settings, older):
        report = EvalReport(eval_key="k", model={}, settings=kept, metrics=metrics, run={},
                            created_at="2026-12-06T20:00:00+00:00")
        facts = {"eval": report.to_dict(), "teacher": {}, "usage": {}, "stats": {}, "base_model": "b"}
        assert eval_results_entries(facts) == [] and write_eval_results(facts, tmp_path) == []
        card = model_card(facts, "me/m", None, "apache-2.0", [])
        assert "Not comparable with published figures: 64 of 128 samples failed (avg@n is over the 64 answered)" in card
    assert not (tmp_path / ".eval_results").exists()
