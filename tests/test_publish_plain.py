"""`distill publish` of an adapter trained on plain chat data (issue #18): the real stages on a tiny student.

A new user's path: finetune on a ``messages`` JSONL without ids, eval, publish. Publish states what the
records say and invents nothing (no teacher, verifier or acceptance figures), reads a stats.json only
when it is the filter's record of that very data file, and publishes the chat data only when asked.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch
import yaml

from distill.artifacts import FilterStats
from distill.config import load_config
from distill.errors import InputError
from tiny_student import make_tiny_student

torch.set_num_threads(1)  # tiny models: threads only add contention on a shared 2-core box

TRACE_CLAIMS = ("Teacher", "Verifier and filters", "Acceptance funnel", "verified final answers",
                "rule verifier confirmed", "reasoning traces from a teacher")


def _chat(i: int) -> dict:
    return {**({"id": None} if i == 5 else {}), "messages": [{"role": "user", "content": f"What is {i} + 1?"},
                         {"role": "assistant", "content": f"\\boxed{{{i + 1}}}",
                          "reasoning_content": f"{i} plus one is {i + 1}."}]}


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory):
    """finetune (chat data, no ids) then eval, both the real stages, on a tiny student."""
    from distill.evaluate import run as evaluate
    from distill.evaluate.config import EvalConfig
    from distill.finetune import FinetuneConfig, run as finetune

    root = tmp_path_factory.mktemp("plain")
    student = make_tiny_student(root / "student")
    data = root / "chat.jsonl"
    data.write_text("".join(json.dumps(_chat(i)) + "\n" for i in range(6)))
    adapter = finetune(load_config(FinetuneConfig, None, [
        f"data={data}", f"student={student}", f"out={root / 'adapter'}", "progress=false", "batch_size=2",
        "lora.r=4", "max_steps=2"]))
    problems = root / "problems.jsonl"
    problems.write_text("".join(json.dumps({"id": f"q{i}", "question": f"What is {i} + 1?", "answer": str(i + 1),
                                            "kind": "math"}) + "\n" for i in range(3)))
    ev = evaluate(load_config(EvalConfig, None, [f"problems={problems}", f"student={student}", f"adapter={adapter}",
                                                 f"out={root / 'eval'}", "max_new_tokens=4", "progress=false"]))
    return {"root": root, "data": data, "adapter": adapter, "eval": ev, "student": student}


def _publish(*args):
    from distill.publish import run
    from distill.publish.config import PublishConfig

    return run(load_config(PublishConfig, None, ["dry_run=true", *args]))


def _card(path):
    text = path.read_text(encoding="utf-8")
    return yaml.safe_load(text.split("---")[1]), text


def _filter_stats(inputs: str, kept: int = 6, **extra) -> dict:
    return FilterStats(inputs={"traces": inputs}, traces={"lines": 9, "unique": 9}, kept=kept, rejected=3,
                       kept_share=kept / (kept + 3), verifier={"correct": kept, "wrong_answer": 3},
                       funnel=[{"step": "input", "dropped": 0, "left": 9},
                               {"step": "wrong_answer", "dropped": 3, "left": kept}], **extra).to_dict()


def test_an_adapter_trained_on_chat_data_publishes_what_is_known(plain_run, tmp_path):
    out = _publish(f"adapter={plain_run['adapter']}", "repo_id=me/chat-adapter", f"eval={plain_run['eval']}",
                   f"out={tmp_path / 'stage'}")
    meta, card = _card(out / "model" / "README.md")
    assert not (out / "dataset").exists()  # no trace dataset is invented from chat records
    assert meta["library_name"] == "peft" and "datasets" not in meta
    for claim in TRACE_CLAIMS:
        assert claim not in card, claim
    assert "6 chat records" in card and "chat.jsonl" in card  # what is known about the data is stated
    assert "not recorded" in card  # ...and what is not, said so rather than guessed
    assert "teacher" not in card.lower() and "exactly as it was trained" not in card
    assert "PROMPT = '{question}'" in card  # no template recorded: the question as it is, not distill's default
    assert (out / "model" / "adapter_model.safetensors").is_file()


def test_a_stats_file_of_other_data_beside_chat_data_is_not_read_as_its_funnel(plain_run, tmp_path):
    data = tmp_path / "chat.jsonl"
    shutil.copy(plain_run["data"], data)
    adapter = shutil.copytree(plain_run["adapter"], tmp_path / "adapter")
    record = json.loads((adapter / "distill.json").read_text())
    record["data"]["path"] = str(data)
    (adapter / "distill.json").write_text(json.dumps(record))
    # A filter's stats.json from another run that happens to sit beside the data: same count, other file.
    (tmp_path / "stats.json").write_text(json.dumps(_filter_stats(str(tmp_path / "traces.jsonl"))))
    out = _publish(f"adapter={adapter}", "repo_id=me/chat-adapter", f"out={tmp_path / 'stage'}")
    _, card = _card(out / "model" / "README.md")
    assert "wrong_answer" not in card and "Acceptance funnel" not in card

def test_stats_named_for_other_data_are_left_out_with_a_warning(plain_run, tmp_path, caplog):
    (tmp_path / "stats.json").write_text(json.dumps(_filter_stats(str(tmp_path / "traces.jsonl"))))
    out = _publish(f"adapter={plain_run['adapter']}", "repo_id=me/chat-adapter", f"stats={tmp_path / 'stats.json'}",
                   f"out={tmp_path / 'stage'}")
    assert "wrong_answer" not in (out / "model" / "README.md").read_text()
    assert any("is not the filter's record of" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)
    (tmp_path / "stats.json").write_text("{}")  # named, and not a stats record at all: one located line
    with pytest.raises(InputError, match="filter stats without a schema version"):
        _publish(f"adapter={plain_run['adapter']}", "repo_id=me/chat-adapter", f"stats={tmp_path / 'stats.json'}",
                 f"out={tmp_path / 'stage2'}")


def test_chat_data_is_published_as_a_dataset_only_when_asked_and_described_as_such(plain_run, tmp_path):
    import pyarrow.parquet as pq

    out = _publish(f"adapter={plain_run['adapter']}", "repo_id=me/chat-adapter", f"dataset={plain_run['data']}",
                   "dataset_repo_id=me/chat-data", f"out={tmp_path / 'stage'}")
    rows = pq.read_table(out / "dataset" / "data" / "train-00000-of-00001.parquet").to_pylist()
    assert len(rows) == 6 and rows[0]["messages"][0]["content"] == "What is 0 + 1?"
    meta, card = _card(out / "dataset" / "README.md")
    assert meta["size_categories"] == "n<1K"
    for claim in TRACE_CLAIMS:
        assert claim not in card, claim
    assert "6 chat records" in card
    _, model_card = _card(out / "model" / "README.md")
    assert "me/chat-data" in model_card


def test_the_filter_records_which_kept_file_its_stats_are_of_and_publish_checks_it(tmp_path):
    from filter_helpers import run_filter, trace
    from records_factory import write_traces
    from distill.records import file_sha256

    write_traces(tmp_path / "traces.jsonl", [trace("p1"), trace("p2"), trace("p3", content="So \\boxed{7}")])
    stats, kept, _ = run_filter(tmp_path)
    data = tmp_path / "out" / "kept.jsonl"
    assert stats["outputs"] == {"kept": str(data), "sha256": file_sha256(data)} and len(kept) == 2
    args = [f"dataset={data}", "dataset_repo_id=me/traces"]
    _, card = _card(_publish(*args, f"out={tmp_path / 's1'}") / "dataset" / "README.md")
    assert "kept 2 of 3 traces" in card and "wrong_answer" in card  # the filter's own stats: its funnel
    data.write_text(data.read_text().splitlines()[0] + "\n")  # the kept file edited after filtering
    _, card = _card(_publish(*args, f"out={tmp_path / 's2'}") / "dataset" / "README.md")
    assert "Acceptance funnel" not in card and "kept 2 of 3" not in card
    _, card = _card(_publish(*args, f"stats={tmp_path / 'out' / 'stats.json'}", f"out={tmp_path / 's3'}")
                    / "dataset" / "README.md")
    assert "Acceptance funnel" not in card  # named (as the pipeline names its own): still not of this data
