"""`distill publish` streams the dataset into Parquet shards that hold what one file held, and an
upload cut off before its commit resumes without sending the shards again (loopback fake Hub)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap

import pytest

from distill.artifacts import is_failed, read_latest
from distill.errors import InputError
from distill.publish.shards import write_shards
from fakehub import FakeHub


def _records(n: int, seed: int = 3) -> list[dict]:
    """Kept-file records whose fields vary: optional fields, verdict details, re-appended and failed pairs."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        rec = {"schema": 1, "id": f"p{i // 3}", "sample": i % 3, "question": f"q{i}",
               "answer": str(i), "reasoning": "step " * rng.randint(1, 40), "content": f"\\boxed{{{i}}}",
               "usage": {"completion_tokens": rng.randint(1, 500)}, "cost_usd": rng.choice([0.0, 0.25]),
               "error": None, "verdict": {"correct": True, "reason": "correct", "by": "rule"}}
        if rng.random() < 0.2:
            rec["verdict"]["judge"] = {"correct": True, "model": "j"}
        if rng.random() < 0.1:
            rec["rationalized"] = True
        if rng.random() < 0.05:
            rec["usage"]["reasoning_tokens"] = 7
        out.append(rec)
        if rng.random() < 0.05:  # a later run appended the pair again: failed, or a newer success
            again = dict(rec, content="again")
            if rng.random() < 0.5:
                again["error"] = {"type": "server", "message": "x"}
            out.append(again)
    return out


def _write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _one_file_rows(path) -> list[dict]:
    """What publish wrote before it streamed: every published row through one Dataset.from_list."""
    from datasets import Dataset

    rows = [rec for rec in read_latest(path).values() if not is_failed(rec)]
    columns = [c for c in dict.fromkeys(k for row in rows for k in row) if c not in ("schema", "error")]
    return Dataset.from_list([{c: row.get(c) for c in columns} for row in rows]).to_list()


def test_shards_hold_what_one_file_held(tmp_path):
    from datasets import load_dataset

    src = _write(tmp_path / "kept.jsonl", _records(3000))
    summary = write_shards(src, tmp_path / "data", max_shard_bytes=src.stat().st_size // 3 + 1)
    names = sorted(p.name for p in (tmp_path / "data").iterdir())
    assert names == [f"train-{i:05d}-of-00003.parquet" for i in range(3)] == [p.name for p in summary.files]
    loaded = load_dataset("parquet", data_files=[str(p) for p in summary.files], split="train",
                          cache_dir=str(tmp_path / "cache"))
    expected = _one_file_rows(src)
    assert summary.rows == len(expected) == len(loaded) and loaded.column_names == list(expected[0])
    assert loaded.to_list() == expected


def test_same_input_gives_the_same_bytes(tmp_path):
    src = _write(tmp_path / "kept.jsonl", _records(500))
    a = write_shards(src, tmp_path / "a", max_shard_bytes=src.stat().st_size // 2 + 1)
    b = write_shards(src, tmp_path / "b", max_shard_bytes=src.stat().st_size // 2 + 1)
    assert len(a.files) == 2
    assert [p.read_bytes() for p in a.files] == [p.read_bytes() for p in b.files]


def test_nothing_to_publish_is_an_input_error(tmp_path):
    src = _write(tmp_path / "kept.jsonl", [dict(_records(1)[0], error={"type": "server", "message": "x"})])
    with pytest.raises(InputError, match="no records to publish"):
        write_shards(src, tmp_path / "data")


PUBLISH = textwrap.dedent("""
    import sys
    import distill.publish.shards as shards
    shards.MAX_SHARD_BYTES = int(sys.argv[1])      # several shards from a small file
    from distill.cli import main
    raise SystemExit(main(["publish", *sys.argv[2:]]))
""")


def _publish(hub, tmp_path, src):
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_TOKEN")}
    env.update(HF_ENDPOINT=hub.url, HF_HUB_DISABLE_XET="1", HF_HOME=str(tmp_path / "hf"), DISTILL_PROGRESS="0",
               HF_HUB_DISABLE_TELEMETRY="1", HF_TOKEN="hf_" + "f" * 34)
    args = [str(src.stat().st_size // 4 + 1), f"dataset={src}", "dataset_repo_id=tester/traces", f"out={tmp_path / 'stage'}"]
    return subprocess.run([sys.executable, "-c", PUBLISH, *args], capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.slow
def test_an_interrupted_upload_resumes_without_resending_shards(tmp_path):
    src = _write(tmp_path / "kept.jsonl", _records(2000))
    with FakeHub() as hub:
        hub.fail_commits = 1  # every shard reaches the Hub's storage, then the commit is cut off
        first = _publish(hub, tmp_path, src)
        assert first.returncode != 0 and "refused the upload" in first.stderr
        sent = [p for m, p in hub.requests if m == "PUT"]
        assert len(sent) == 4 and hub.files("dataset", "tester/traces") == {}
        hub.requests.clear()
        second = _publish(hub, tmp_path, src)
        assert second.returncode == 0, second.stderr
        assert not [p for m, p in hub.requests if m == "PUT"]  # the Hub had every shard: none sent again
        staged = {p.relative_to(tmp_path / "stage" / "dataset").as_posix(): p.read_bytes()
                  for p in (tmp_path / "stage" / "dataset").rglob("*") if p.is_file()}
        assert hub.files("dataset", "tester/traces") == staged and len(staged) == 5
        hub.requests.clear()
        third = _publish(hub, tmp_path, src)  # nothing changed: no bytes, no new commit
        assert third.returncode == 0, third.stderr
        assert not [p for m, p in hub.requests if m == "PUT" or p.endswith("/commit/main")]


def test_a_secret_deep_in_a_shard_is_found_a_batch_at_a_time(tmp_path):
    from distill.publish.secrets import scan_folder

    records = _records(3000)
    records[2500]["reasoning"] = "then api_key = 'sk-" + "a1B2" * 10 + "' works"
    src = _write(tmp_path / "kept.jsonl", records)
    summary = write_shards(src, tmp_path / "stage" / "data")
    expected = 1 + next(i for i, row in enumerate(_one_file_rows(src)) if "sk-a1B2" in row["reasoning"])
    with pytest.raises(InputError, match=f"parquet row {expected}\\)") as err:
        scan_folder(tmp_path / "stage")
    assert "sk-a1B2" not in str(err.value) and len(summary.files) == 1


def test_no_shard_is_empty(tmp_path):
    src = _write(tmp_path / "kept.jsonl", _records(9, seed=1)[:9])
    summary = write_shards(src, tmp_path / "data", max_shard_bytes=src.stat().st_size // 4 + 1)
    import pyarrow.parquet as pq

    sizes = [pq.ParquetFile(p).metadata.num_rows for p in summary.files]
    assert sum(sizes) == summary.rows and min(sizes) > 0, sizes


def _scored(records: list[dict]) -> list[dict]:
    """``records`` with served-as models, wrong verdicts and learnability scores sprinkled over them."""
    rng = random.Random(5)
    for rec in records:
        rec["model"] = rng.choice(["m-a", "m-b"])
        if rng.random() < 0.02:
            rec["verdict"] = {"correct": False, "reason": "wrong"}
        if rng.random() < 0.3:
            rec["learnability"] = {"for": rng.choice("ab") * 16, "student": "s", "hub_id": None, "rsr": 1.0}
    return records


def test_provenance_counts_exactly_what_the_shards_publish(tmp_path):
    from distill.artifacts import Spend
    from distill.learnability.store import card_student
    from distill.publish.provenance import read_data

    src = _write(tmp_path / "kept.jsonl", _scored(_records(1000)))
    data = read_data(src)
    rows = [rec for rec in read_latest(src).values() if not is_failed(rec)]  # what gather held before
    spend = Spend()
    for rec in rows:
        spend.add(rec)
    assert data.is_traces and data.rows == len(rows) < 1000
    assert data.verified == sum(r["verdict"].get("correct") is True for r in rows) < data.rows
    assert data.spend == spend and data.models == {"m-a", "m-b"}
    assert data.students == {card_student(r) for r in rows} - {None} and len(data.students) == 2


def _peak_bytes(fn) -> int:
    import tracemalloc

    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_provenance_holds_no_rows(tmp_path):
    """publish's gather counts the kept file as it reads it: ten times the rows, about the same peak."""
    from distill.publish.provenance import read_data

    def kept(n):  # rows of 2 KB or more, so both files outsize the 1 MB block their sha256 is read in
        return _write(tmp_path / f"kept{n}.jsonl", [dict(r, reasoning=r["reasoning"] + "x" * 2000)
                                                    for r in _scored(_records(n))])

    small, large = kept(500), kept(5000)
    extra_rows = sum(1 for _ in large.open()) - sum(1 for _ in small.open())
    read_data(small)  # the imports it makes on a first call are not rows
    per_row = (_peak_bytes(lambda: read_data(large)) - _peak_bytes(lambda: read_data(small))) / extra_rows
    assert per_row < 100, f"{per_row:.0f} bytes a row: the rows are held again"  # a held row is over 1 KB


@pytest.mark.parametrize("text,kind", [
    ("k = sk-or-v1-" + "ab12" * 12, "OpenRouter API key"), ("sk-ant-" + "aB3" * 8, "Anthropic API key"),
    ("x sk-proj-" + "aB3" * 8, "OpenAI/DeepSeek API key"), ("hf_" + "Zq8" * 11, "Hugging Face token"),
    ("id ASIA" + "ABCD2345" * 2, "AWS access key id"), ("AWS_Secret_Access_Key = " + "aB3d" * 10, "AWS secret access key"),
    ("gho_" + "aB3" * 12, "GitHub token"), ("AIza" + "aB3-_" * 7, "Google API key"), ("xoxb-12345-abcdef", "Slack token"),
    ("-----BEGIN RSA PRIVATE KEY-----", "private key"), ("Authorization: Bearer " + "aB3." * 6, "bearer token"),
    ('{"API_KEY": "' + "aB3dE5gH7jK9mN1pQ3rS5" + '"}', "key-like value assigned to a secret name"),
])
def test_each_secret_kind_is_found_on_its_line(text, kind):
    from distill.publish.secrets import scan_text

    filler = '{"reasoning": "count the tokens: 3 + 4 = 7", "usage": {"completion_tokens": 12}}'
    assert scan_text("\n".join([filler, text, filler])) == [(2, kind)]
    assert scan_text(filler) == []
