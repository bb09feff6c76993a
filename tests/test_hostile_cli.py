"""Every verb, as a real CLI subprocess, against a table of bad inputs (issue #13 §7).

Each case must: exit non-zero with the documented code, print exactly one line naming the file,
line and field (never a traceback), write nothing (no file created or half-written; lock files,
which only name their last holder, aside) and leave every input byte-identical.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from hostile_helpers import snapshot
from records_factory import trace

DEAD_TEACHER = ["base_url=http://127.0.0.1:9/v1", "api_key_env=null", "model=m"]  # nothing may be sent anyway
P_OK = json.dumps({"id": "a", "question": "What is 1 + 1?", "answer": "2"}) + "\n"


def _jsonl(*rows: dict) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


STUDENT = {"student/config.json": "{}", "student/tokenizer.json": '{"model": "original"}'}

# (case id, verb, files {name: text|bytes}, args ({t} = the test folder), exit code, substrings of the line)
CASES = [
    ("answer-list", "generate", {"p.jsonl": P_OK + _jsonl({"id": "b", "question": "q", "answer": [1, 2]})},
     ["problems={t}/p.jsonl", "out={t}/t.jsonl", *DEAD_TEACHER], 2, ["p.jsonl:2", "(field 'answer')", "a list"]),
    ("id-null", "generate", {"p.jsonl": _jsonl({"id": None, "question": "q", "answer": "1"})},
     ["problems={t}/p.jsonl", "out={t}/t.jsonl", *DEAD_TEACHER], 2, ["p.jsonl:1", "(field 'id')", "null"]),
    ("id-object", "eval", {"e.jsonl": _jsonl({"id": {"k": 1}, "question": "q", "answer": "1"})},
     ["problems={t}/e.jsonl", "backend=api", "api.base_url=http://127.0.0.1:9/v1", "out={t}/ev"], 2,
     ["e.jsonl:1", "(field 'id')", "an object"]),
    ("empty-problems", "generate", {"p.jsonl": "\n"},
     ["problems={t}/p.jsonl", "out={t}/t.jsonl", *DEAD_TEACHER], 2, ["p.jsonl", "(field 'problems')", "no problems"]),
    ("resumed-sample-str", "generate", {"p.jsonl": P_OK, "t.jsonl": _jsonl(trace(0, sample="zero"))},
     ["problems={t}/p.jsonl", "out={t}/t.jsonl", *DEAD_TEACHER], 2, ["t.jsonl:1", "(field 'sample')"]),
    ("resumed-cost-str", "generate", {"p.jsonl": P_OK, "t.jsonl": _jsonl(trace(0), trace(1, cost_usd="free"))},
     ["problems={t}/p.jsonl", "out={t}/t.jsonl", *DEAD_TEACHER], 2, ["t.jsonl:2", "(field 'cost_usd')"]),
    ("resumed-usage-str", "generate", {"p.jsonl": P_OK, "t.jsonl": _jsonl(trace(0, usage="lots"))},
     ["problems={t}/p.jsonl", "out={t}/t.jsonl", *DEAD_TEACHER], 2, ["t.jsonl:1", "(field 'usage')"]),
    ("read-only-out", "generate", {"p.jsonl": P_OK},
     ["problems={t}/p.jsonl", "out=/proc/distill-no-such/t.jsonl", *DEAD_TEACHER], 2,
     ["/proc/distill-no-such/t.jsonl", "(field 'out')", "cannot write"]),
    ("out-is-a-folder", "generate", {"p.jsonl": P_OK, "outdir/keep.txt": "x"},
     ["problems={t}/p.jsonl", "out={t}/outdir", *DEAD_TEACHER], 2, ["outdir", "(field 'out')", "is a folder"]),
    ("filter-out-is-a-folder", "filter", {"tr.jsonl": _jsonl(trace(0)), "k/keep.txt": "x"},
     ["traces={t}/tr.jsonl", "out={t}/k"], 2, ["(field 'out')", "is a folder"]),
    ("publish-out-is-a-file", "publish", {"k.jsonl": _jsonl(trace(0)), "stage": "a file"},
     ["dataset={t}/k.jsonl", "dataset_repo_id=me/x", "out={t}/stage", "dry_run=true"], 2,
     ["(field 'out')", "is a file"]),
    ("out-is-problems", "generate", {"p.jsonl": P_OK},
     ["problems={t}/p.jsonl", "out={t}/p.jsonl", *DEAD_TEACHER], 2, ["(field 'out')", "overwrite the input problems="]),
    ("binary-recipe", "generate", {"r.yaml": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe"},
     ["{t}/r.yaml"], 2, ["r.yaml", "not a text recipe"]),
    ("timeout-negative", "generate", {"p.jsonl": P_OK},
     ["problems={t}/p.jsonl", "out={t}/t.jsonl", "request_timeout=-1", *DEAD_TEACHER], 2,
     ["request_timeout must be > 0"]),
    ("base-url-malformed", "generate", {"p.jsonl": P_OK},
     ["problems={t}/p.jsonl", "out={t}/t.jsonl", "base_url=127.0.0.1:8000/v1", "api_key_env=null"], 2,
     ["base_url must be an http(s):// URL"]),
    ("rejected-is-input", "filter", {"tr.jsonl": _jsonl(trace(0), trace(1))},
     ["traces={t}/tr.jsonl", "out={t}/k.jsonl", "rejected={t}/tr.jsonl"], 2,
     ["(field 'rejected')", "overwrite the input traces="]),
    ("stats-is-input", "filter", {"tr.jsonl": _jsonl(trace(0))},
     ["traces={t}/tr.jsonl", "out={t}/k.jsonl", "stats={t}/tr.jsonl"], 2, ["(field 'stats')"]),
    ("input-named-rejected", "filter", {"rejected.jsonl": _jsonl(trace(0))},
     ["traces={t}/rejected.jsonl", "out={t}/k.jsonl"], 2, ["(field 'rejected')"]),
    ("traces-usage-str", "filter", {"tr.jsonl": _jsonl(trace(0, usage="lots"))},
     ["traces={t}/tr.jsonl", "out={t}/k.jsonl"], 2, ["tr.jsonl:1", "(field 'usage')"]),
    ("traces-sample-str", "filter", {"tr.jsonl": _jsonl(trace(0), trace(1, sample="1"))},
     ["traces={t}/tr.jsonl", "out={t}/k.jsonl"], 2, ["tr.jsonl:2", "(field 'sample')"]),
    ("finetune-out-is-file", "finetune", {"k.jsonl": _jsonl(trace(0)), "adapter": "not a folder", **STUDENT},
     ["data={t}/k.jsonl", "student={t}/student", "out={t}/adapter"], 2, ["adapter", "(field 'out')", "is a file"]),
    ("finetune-out-is-student", "finetune", {"k.jsonl": _jsonl(trace(0)), **STUDENT},
     ["data={t}/k.jsonl", "student={t}/student", "out={t}/student"], 2, ["overwrite the input student="]),
    ("lora-r-0", "finetune", {"k.jsonl": _jsonl(trace(0))}, ["data={t}/k.jsonl", "lora.r=0"], 2,
     ["lora.r must be >= 1, got 0"]),
    ("learning-rate-neg", "finetune", {}, ["learning_rate=-1"], 2, ["learning_rate must be > 0"]),
    ("batch-size-0", "finetune", {}, ["batch_size=0"], 2, ["batch_size must be >= 1, got 0"]),
    ("eval-resumed-sample-list", "eval", {"e.jsonl": P_OK, "ev/outputs.jsonl": _jsonl({"id": "a", "sample": [0]})},
     ["problems={t}/e.jsonl", "backend=api", "api.base_url=http://127.0.0.1:9/v1", "out={t}/ev"], 2,
     ["outputs.jsonl:1", "(field 'sample')"]),
    ("eval-out-is-file", "eval", {"e.jsonl": P_OK, "ev": "a file"},
     ["problems={t}/e.jsonl", "backend=api", "out={t}/ev"], 2, ["(field 'out')", "is a file"]),
    ("eval-compare-missing", "eval", {"e.jsonl": P_OK},
     ["problems={t}/e.jsonl", "backend=api", "out={t}/ev", "compare={t}/before"], 2, ["before", "(field 'compare')"]),
    ("publish-eval-missing", "publish", {"k.jsonl": _jsonl(trace(0))},
     ["dataset={t}/k.jsonl", "dataset_repo_id=me/x", "eval={t}/no-eval", "out={t}/stage", "dry_run=true"], 2,
     ["no-eval", "(field 'eval')"]),
    ("publish-dataset-missing", "publish", {},
     ["dataset={t}/gone.jsonl", "dataset_repo_id=me/x", "out={t}/stage", "dry_run=true"], 2,
     ["gone.jsonl", "(field 'dataset')"]),
    ("serve-port", "teacher serve", {}, ["port=99999"], 2, ["port must be in [0, 65535], got 99999"]),
    ("run-mistake-rate", "run", {}, ["offline_teacher.mistake_rate=2", "run_dir={t}/run"], 2,
     ["offline_teacher.mistake_rate must be in [0, 1], got 2.0"]),
    ("run-lora-r-0", "run", {}, ["finetune.lora.r=0", "run_dir={t}/run"], 2, ["finetune.lora.r must be >= 1, got 0"]),
    ("run-eval-problems-missing", "run", {}, ["eval.problems={t}/gone.jsonl", "run_dir={t}/run"], 2,
     ["gone.jsonl", "not found"]),
]


@pytest.mark.slow  # ~30 CLI start-ups
@pytest.mark.parametrize("name,verb,files,args,code,wanted", CASES, ids=[c[0] for c in CASES])
def test_every_verb_fails_in_one_line_and_writes_nothing(tmp_path, name, verb, files, args, code, wanted):
    for rel, content in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    before = snapshot(tmp_path)
    argv = [a.replace("{t}", str(tmp_path)) for a in args]
    proc = subprocess.run([sys.executable, "-m", "distill", *verb.split(), *argv], cwd=tmp_path, capture_output=True,
                          text=True, timeout=180, env=dict(os.environ, DISTILL_PROGRESS="0"))
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"distill {verb}: error: ")
    for text in wanted:
        assert text in lines[0], lines[0]
    assert snapshot(tmp_path) == before  # nothing written, inputs byte-identical
