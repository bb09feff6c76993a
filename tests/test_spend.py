"""The spend of a traces file is summed once (artifacts.Spend): generate's resume, the run summary and publish agree."""

from __future__ import annotations

import json

import pytest

from distill.artifacts import Spend, read_records
from distill.config import load_config
from distill.errors import InputError
from distill.generate.resume import scan_traces
from distill.pipeline.summary import collect
from distill.publish.config import PublishConfig
from distill.publish.provenance import gather
from filter_helpers import trace


def _usage(prompt, completion, reasoning=0):
    return {"prompt_tokens": prompt, "completion_tokens": completion, "reasoning_tokens": reasoning,
            "cached_tokens": 0}


def _traces(path):
    failed = trace("p1", content=None, reasoning=None, usage=_usage(10, 0), cost_usd=0.0025,
                   error={"type": "http_500", "message": "boom"})
    retried = trace("p1", usage=_usage(10, 30, 20), cost_usd=0.0031)  # supersedes the failed line: last one wins
    other = trace("p2", usage=_usage(12, 40, 25), cost_usd=0.0012)
    path.write_text("".join(json.dumps(r) + "\n" for r in (failed, retried, other)))
    return path


def test_generate_summary_and_publish_count_the_same_spend(tmp_path):
    traces = _traces(tmp_path / "traces.jsonl")
    paid = 0.0025 + 0.0031 + 0.0012  # every line was paid for, the superseded failure too
    state = scan_traces(traces)
    figures = collect(tmp_path)
    facts = gather(load_config(PublishConfig, None, [f"dataset={traces}", "dataset_repo_id=me/t", f"traces={traces}"]))
    assert state.cost == pytest.approx(paid) and state.lines == 3 and state.done == {("p1", 0), ("p2", 0)}
    assert figures.cost_usd == pytest.approx(paid) and figures.traces == 2 and figures.failed == 0
    usage = facts["usage"]
    assert usage["cost_usd"] == pytest.approx(paid) and usage["responses"] == 3
    assert figures.tokens == {"prompt": 32, "completion": 70, "reasoning": 45, "cached": 0}
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["reasoning_tokens"]) == (32, 70, 45)
    assert facts["data"]["rows"] == 2 and facts["data"]["is_verified"] is False  # the retry, not the failure
    kept_only = gather(load_config(PublishConfig, None, [f"dataset={traces}", "dataset_repo_id=me/t"]))
    assert kept_only["usage_scope"] == "kept traces" and kept_only["usage"]["responses"] == 2
    assert kept_only["usage"]["cost_usd"] == pytest.approx(0.0031 + 0.0012)


def test_a_token_count_that_is_not_a_number_is_one_located_line(tmp_path):
    traces = _traces(tmp_path / "traces.jsonl")
    lines = traces.read_text().splitlines()
    bad = json.loads(lines[2])
    bad["usage"]["completion_tokens"] = "many"
    traces.write_text("\n".join([*lines[:2], json.dumps(bad)]) + "\n")
    with pytest.raises(InputError, match=r"traces.jsonl:3 \(field 'usage.completion_tokens'\)"):
        for _ in Spend().counting(read_records(traces), traces):
            pass
    with pytest.raises(InputError, match="usage.completion_tokens"):
        collect(tmp_path)
