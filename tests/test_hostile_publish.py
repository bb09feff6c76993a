"""publish under hostile input (issue #13 §8): each (id, sample) once, a missing eval= refused, Hub
errors as one redacted line (a 401 whose body echoes the Authorization header never prints the token)."""

from __future__ import annotations

import json

import pytest

from distill.config import load_config
from distill.errors import InputError
from distill.publish import run
from distill.publish.config import PublishConfig
from fakehub import FakeHub
from test_publish import FAKE_TOKEN, _args, _publish, records  # noqa: F401  (records is a fixture)


def test_a_traces_file_appended_twice_publishes_each_pair_once(records, tmp_path):  # noqa: F811
    import pyarrow.parquet as pq

    kept = tmp_path / "kept.jsonl"
    text = (records["root"] / "kept.jsonl").read_text()
    lines = text.splitlines()
    changed = json.loads(lines[0])
    changed["content"] = "\\boxed{1} (a later record of the same pair)"
    kept.write_text(text + text + json.dumps(changed) + "\n")  # appended twice, then p0 once more
    run(load_config(PublishConfig, None, [f"dataset={kept}", "dataset_repo_id=me/traces", "dry_run=true",
                                          f"stats={records['root'] / 'stats.json'}", f"out={tmp_path / 'stage'}"]))
    rows = pq.read_table(tmp_path / "stage" / "dataset" / "data" / "train-00000-of-00001.parquet").to_pylist()
    pairs = [(r["id"], r["sample"]) for r in rows]
    assert sorted(pairs) == sorted(set(pairs)) and len(pairs) == len(lines)
    assert next(r for r in rows if r["id"] == changed["id"])["content"] == changed["content"]  # the last one wins


def test_missing_eval_folder_is_refused_before_anything_is_staged(records, tmp_path):  # noqa: F811
    with pytest.raises(InputError, match="no report.json here") as info:
        run(load_config(PublishConfig, None, _args(records, tmp_path, "dry_run=true")[:-2] +
                        [f"eval={tmp_path / 'no-eval'}", f"out={tmp_path / 'stage'}"]))
    assert info.value.field == "eval"
    assert not (tmp_path / "stage").exists()


def test_usage_that_is_not_an_object_is_one_located_line(records, tmp_path):  # noqa: F811
    traces = tmp_path / "traces.jsonl"
    rows = (records["root"] / "traces.jsonl").read_text().splitlines()
    bad = json.loads(rows[1])
    bad["usage"] = "lots"
    traces.write_text("\n".join([rows[0], json.dumps(bad), *rows[2:]]) + "\n")
    with pytest.raises(InputError, match=r"traces.jsonl:2 \(field 'usage'\): usage must be an object"):
        run(load_config(PublishConfig, None, _args(records, tmp_path, "dry_run=true", f"traces={traces}")))


@pytest.mark.slow  # a publish subprocess per Hub answer (huggingface_hub reads HF_ENDPOINT at import)
@pytest.mark.parametrize("status,body", [
    (401, "Invalid credentials in Authorization header: {authorization}"),
    (500, "Internal Error - We're working hard to fix this as soon as possible! ({authorization})"),
    (403, "token {authorization} may not write to this namespace"),
])
def test_hub_errors_are_one_line_and_never_print_the_token(records, tmp_path, status, body):  # noqa: F811
    with FakeHub() as hub:
        hub.fail = (status, body)
        proc = _publish(hub, tmp_path, _args(records, tmp_path))
    out = proc.stdout + proc.stderr
    assert FAKE_TOKEN not in out and FAKE_TOKEN[3:] not in out
    assert proc.returncode == 7, proc.stderr
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("distill publish: error: models/tester/tiny-distill: the Hub refused the upload")
    assert str(status) in last and "Bearer ***" in last
