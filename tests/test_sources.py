"""Problem sources: every file type, Hub/save_to_disk datasets, reasoning-gym, and located bad-input errors."""

from __future__ import annotations

import csv
import json

import pytest

from distill.errors import ConfigError, InputError
from distill.sources import SourceConfig
from distill.records import stable_id
from distill.sources import iter_problems, load_problems

ROWS = [{"id": "a", "question": "What is 2+3?", "answer": "5"},
        {"id": "b", "question": "What is 4*4?", "answer": "16"}]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def cfg(problems, **kw) -> SourceConfig:
    return SourceConfig(problems=str(problems), **kw)


def test_jsonl_json_csv_parquet_give_the_same_problems(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    jsonl = write_jsonl(tmp_path / "p.jsonl", ROWS)
    (tmp_path / "p.json").write_text(json.dumps(ROWS))
    with (tmp_path / "p.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["id", "question", "answer"])
        writer.writeheader()
        writer.writerows(ROWS)
    pq.write_table(pa.Table.from_pylist(ROWS), tmp_path / "p.parquet")
    expected = [dict(r, kind="math") for r in ROWS]
    for name in ("p.jsonl", "p.json", "p.csv", "p.parquet"):
        assert load_problems(cfg(tmp_path / name)) == expected, name
    assert load_problems(cfg(jsonl, limit=1)) == expected[:1]


def test_field_mapping_gsm8k_answers_derived_ids_and_extras(tmp_path):
    rows = [{"problem": "Tom has 3 apples and buys 2 more. How many?",
             "solution": "3 + 2 = 5 apples.\n#### 5", "level": 2},
            {"problem": "Big number?", "solution": "It is large.\n#### 1,234", "level": 3}]
    path = write_jsonl(tmp_path / "g.jsonl", rows)
    problems = load_problems(cfg(path, question_field="problem", answer_field="solution", kind="gsm8k"))
    assert problems[0]["answer"] == "5" and problems[1]["answer"] == "1234"
    assert problems[0]["id"] == stable_id(rows[0]["problem"])  # same text, same id, any machine
    assert problems[0]["question"] == rows[0]["problem"] and problems[0]["kind"] == "gsm8k"
    assert problems[0]["level"] == 2 and problems[0]["solution"].endswith("#### 5")
    assert load_problems(cfg(path, question_field="problem", answer_field="solution")) == \
        load_problems(cfg(path, question_field="problem", answer_field="solution"))


def test_numeric_answers_and_per_record_kind(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [{"question": "q1", "answer": 7},
                                              {"question": "q2", "answer": "B", "kind": "choice"}])
    problems = load_problems(cfg(path))
    assert problems[0]["answer"] == "7" and problems[1]["kind"] == "choice"


@pytest.mark.parametrize("lines, line, field, message", [
    (['{"id": "a", "question": "q", "answer": "1"}', '{"id": "b", "question": "q2", "answer": '], 2, None,
     "malformed JSON"),
    (['{"id": "a", "question": "q", "answer": "1"}', '{"id": "a", "question": "q2", "answer": "2"}'], 2, "id",
     "duplicate id 'a'"),
    (['{"id": "a", "question": "  ", "answer": "1"}'], 1, "question", "empty question"),
    (['{"id": "a", "prompt": "q", "answer": "1"}'], 1, "question", "missing question"),
    (['{"id": "a", "question": "q", "answer": ""}'], 1, "answer", "empty answer"),
    (['{"id": "a", "question": "q"}'], 1, "answer", "missing answer"),
    (['{"id": "a", "question": "q", "answer": "1", "kind": "poem"}'], 1, "kind", "unknown kind"),
    (['["not", "an", "object"]'], 1, None, "expected a JSON object"),
])
def test_bad_input_names_file_line_and_field(tmp_path, lines, line, field, message):
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError) as info:
        load_problems(cfg(path))
    err = info.value
    assert err.line == line and err.field == field and message in str(err)
    assert str(path) in str(err) and f":{line}" in str(err)


def test_torn_last_line_of_an_input_is_an_error_not_skipped(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"question": "q", "answer": "1"}\n{"question": "q2", "ans')
    with pytest.raises(InputError, match=":2"):
        load_problems(cfg(path))


def test_missing_file_and_unknown_type(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        load_problems(cfg(tmp_path / "nope.jsonl"))
    (tmp_path / "p.txt").write_text("x")
    with pytest.raises(InputError, match="unknown file type"):
        load_problems(cfg(tmp_path / "p.txt"))
    with pytest.raises(ConfigError):
        load_problems(SourceConfig(problems=None))


def test_csv_error_names_the_line(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("question,answer\nq1,1\nq2,\n")
    with pytest.raises(InputError) as info:
        load_problems(cfg(path))
    assert info.value.line == 3 and info.value.field == "answer"


def test_json_error_names_the_item(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"data": [{"question": "q", "answer": "1"}, {"question": "q2"}]}))
    with pytest.raises(InputError, match="item 2") as info:
        load_problems(cfg(path))
    assert info.value.field == "answer"


def test_save_to_disk_folder_with_splits(tmp_path):
    import datasets

    dd = datasets.DatasetDict({"train": datasets.Dataset.from_list(ROWS),
                               "test": datasets.Dataset.from_list(ROWS[:1])})
    dd.save_to_disk(str(tmp_path / "ds"))
    assert [p["id"] for p in load_problems(cfg(tmp_path / "ds"))] == ["a", "b"]
    assert [p["id"] for p in load_problems(cfg(tmp_path / "ds", split="test"))] == ["a"]
    with pytest.raises(InputError, match="unknown split 'validation'.*train"):
        load_problems(cfg(tmp_path / "ds", split="validation"))
    datasets.Dataset.from_list(ROWS).save_to_disk(str(tmp_path / "single"))
    assert len(load_problems(cfg(tmp_path / "single"))) == 2


def test_hub_name_offline_fails_clearly():
    with pytest.raises(InputError, match="HF_HUB_OFFLINE") as info:
        load_problems(SourceConfig(problems="nosuchuser/nosuchdataset", hf_config="main"))
    assert "nosuchuser/nosuchdataset" in str(info.value)


def test_reasoning_gym_source_is_reproducible():
    first = load_problems(SourceConfig(problems="rg:basic_arithmetic", limit=5, seed=3))
    again = load_problems(SourceConfig(problems="rg:basic_arithmetic", limit=5, seed=3))
    other = load_problems(SourceConfig(problems="rg:basic_arithmetic", limit=5, seed=4))
    assert first == again and first != other and len(first) == 5
    assert first[0]["id"] == "rg-basic_arithmetic-3-00000" and first[0]["source"] == "reasoning_gym/basic_arithmetic"
    json.dumps(first)  # metadata made JSON-safe
    with pytest.raises(InputError, match="reasoning-gym"):
        load_problems(SourceConfig(problems="rg:no_such_task", limit=2))


def test_iter_problems_streams(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [{"question": f"q{i}", "answer": str(i)} for i in range(1000)])
    it = iter_problems(cfg(path))
    assert next(it)["answer"] == "0"  # yields before reading the rest


def test_offline_task_sets_are_a_source():
    from types import SimpleNamespace

    from distill.sources import load_problems

    cfg = SimpleNamespace(problems="offline:eval:arithmetic?n=5", hf_config=None, split="train", limit=None,
                          seed=0, question_field="question", answer_field="answer", id_field="id", kind="math")
    problems = load_problems(cfg)
    assert len(problems) == 5
    assert all(p["question"].startswith("Compute") and p["kind"] == "math" for p in problems)
    cfg.problems = "offline:nosuchsplit"
    with pytest.raises(InputError, match="bad offline source"):
        load_problems(cfg)
