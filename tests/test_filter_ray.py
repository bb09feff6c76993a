"""`distill filter engine=ray` gives the local run's kept and rejected bytes, funnel and cache, on a Ray
cluster the test starts on 127.0.0.1; a killed Ray run resumes; a missing Ray is one line before anything runs.

Usage:
    .venv/bin/python -m pytest tests/test_filter_ray.py -q              # config checks (fast)
    .venv/bin/python -m pytest tests/test_filter_ray.py -q -m slow      # on a Ray cluster (about 40 s on 2 cores)
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
from filter_helpers import GOOD, reasons, run_filter, trace
from golden_filter import VOLATILE, make_traces
from records_factory import write_traces

from distill.cli import main
from distill.errors import ConfigError
from distill.filter import on_ray
from distill.filter.on_ray import environment_difference

ADD = "```python\ndef add(a, b):\n    return a {} b\n```"
TESTS = "assert add(2, 3) == 5\nassert add(-1, 1) == 0"
EVAL_QUESTION = "A train leaves the station at noon and travels sixty miles per hour for three hours. How far?"


# ---------------------------------------------------------------- fast: configuration


def test_engine_ray_without_ray_is_one_line_before_anything_runs(tmp_path, monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    traces = write_traces(tmp_path / "traces.jsonl")
    out = tmp_path / "out" / "kept.jsonl"
    code = main(["filter", f"traces={traces}", f"out={out}", "engine=ray", "progress=false"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1, err
    assert "engine=ray needs Ray" in err[0] and "pip install 'distill[ray]'" in err[0]
    assert not out.parent.exists()


@pytest.mark.parametrize("options, message", [
    (["ray_address=ray://head:10001"], "add engine=ray"),          # a cluster named, but the local engine
    (["engine=ray", "ray_address=head"], "expected auto, ray://"),  # neither auto nor host:port
    (["engine=spark"], "engine"),
])
def test_engine_options_are_checked_when_the_config_loads(options, message):
    from distill.config import load_config
    from distill.filter import FilterConfig

    with pytest.raises(ConfigError, match=message):
        load_config(FilterConfig, None, options)


def test_workers_with_other_code_or_libraries_are_named():
    here = {"code": "abc", "distill": "0.1.0", "libraries": {"sympy": "1.14.0"}}
    assert environment_difference(here, json.loads(json.dumps(here))) is None
    there = {"code": "abd", "distill": "0.1.0", "libraries": {"sympy": "1.12"}}
    assert environment_difference(here, there) == "code abc here, abd on the cluster; sympy 1.14.0 here, 1.12 on the cluster"


def test_running_the_filter_on_ray_does_not_re_run_a_pipeline_step(tmp_path):
    from distill.filter import FilterConfig
    from distill.pipeline.steps import Step, step_key

    local, on_ray = FilterConfig(), FilterConfig()
    on_ray.engine, on_ray.ray_address = "ray", "ray://head:10001"  # set after the load check: Ray need not be here
    keys = {step_key(Step("filter", "filter", cfg, tmp_path, (tmp_path / "kept.jsonl",))) for cfg in (local, on_ray)}
    assert len(keys) == 1


class _InProcessRay:
    """Ray's API as distill.filter.on_ray uses it, in this process: an actor is an object, a ref its value."""

    def cluster_resources(self) -> dict:
        return {"CPU": 2.0}

    def put(self, value):
        return value

    def get(self, refs):
        return refs

    def remote(self, **options):
        return lambda cls: SimpleNamespace(remote=lambda *args: _Actor(cls(*args)))


class _Actor:
    def __init__(self, obj) -> None:
        self.obj = obj

    def __getattr__(self, name: str):
        return SimpleNamespace(remote=getattr(self.obj, name))


def test_workers_with_another_sympy_stop_the_run_before_measuring(monkeypatch):
    from distill.filter import FilterConfig

    cfg = FilterConfig()  # engine=ray would need Ray installed; _start_actors does not look
    actors = on_ray._start_actors(_InProcessRay(), cfg, None)  # workers like this process: accepted
    assert len(actors) == 2 and actors[0].measure.remote([(1, b"{}")])[0][0] == "bad"
    theirs = on_ray.Measurer.environment
    monkeypatch.setattr(on_ray.Measurer, "environment",
                        lambda self: {**theirs(self), "libraries": {"sympy": "1.0"}})
    with pytest.raises(ConfigError, match=r"sympy \S+ here, 1.0 on the cluster"):
        on_ray._start_actors(_InProcessRay(), cfg, None)


# ---------------------------------------------------------------- slow: a Ray cluster on 127.0.0.1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster():
    """`ray start --head --block` on 127.0.0.1 with a token of its own; yields its address, stopped after."""
    if importlib.util.find_spec("ray") is None:  # not imported here: Ray reads RAY_AUTH_* when it loads
        pytest.skip("ray is not installed (pip install 'distill[ray]')")
    temp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # Ray's socket paths must stay short
    # Ray runs its workers at nice 15: on a shared machine they would wait behind everything else.
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32), "RAY_USAGE_STATS_ENABLED": "0",
            "RAY_worker_niceness": "0"}
    saved = {k: os.environ.get(k) for k in (*auth, "RAY_ADDRESS")}
    os.environ.update(auth)  # this process is the driver and needs the token too
    os.environ.pop("RAY_ADDRESS", None)
    port = _free_port()
    log = (temp / "head.log").open("w")
    head = subprocess.Popen([str(Path(sys.executable).with_name("ray")), "start", "--head", "--block",
                             f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=2",
                             "--include-dashboard=false", f"--temp-dir={temp}", "--disable-usage-stats"],
                            stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())
    try:
        deadline = time.monotonic() + 90
        while "Ray runtime started" not in (temp / "head.log").read_text():
            assert head.poll() is None and time.monotonic() < deadline, (temp / "head.log").read_text()[-2000:]
            time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        head.send_signal(signal.SIGTERM)  # --block: stops the cluster's processes with it
        try:
            head.wait(30)
        except subprocess.TimeoutExpired:
            head.kill()
        log.close()
        shutil.rmtree(temp, ignore_errors=True)
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Varied traces (golden_filter's mix), code traces through the sandbox, and copies of early traces at the
    end of the file (another chunk, so another actor) that only a global dedup can catch; and the local run."""
    tmp = tmp_path_factory.mktemp("ray")
    records = make_traces(1500, seed=11)
    why = "I add the two numbers and return the sum, checking both of the given examples. " * 3
    records += [trace("add", s, content=ADD.format(op), answer=TESTS, kind="code", reasoning=why)
                for s, op in enumerate(["+", "-", "+ 0 *"])]
    once = Counter((r["id"], r["sample"]) for r in records)  # a re-appended pair's last record wins, not this one
    late = [dict(r, sample=r["sample"] + 100) for r in records[:300] if _passes(r) and once[r["id"], r["sample"]] == 1]
    late = late[:8]
    assert len(late) >= 4
    write_traces(tmp / "traces.jsonl", records + late)
    write_traces(tmp / "eval.jsonl", [{"question": EVAL_QUESTION}])
    run_filter(tmp, [*_options(tmp), "workers=1", "cache=false"], out="local/kept.jsonl")
    return tmp, late


def _passes(record: dict) -> bool:
    """A trace every per-trace check passes (so only dedup can drop a copy of it)."""
    return (record["reasoning"] == GOOD and record["content"] == "So \\boxed{72}" and record["answer"] == "72"
            and record["finish_reason"] == "stop" and not record.get("rationalized") and not record.get("error")
            and "train" not in record["question"])


def _options(tmp: Path) -> list[str]:
    return [f"decontam.problems=[{tmp / 'eval.jsonl'}]", "chunksize=50", "checks.max_tokens=400"]


def _outputs(folder: Path) -> dict:
    stats = json.loads((folder / "stats.json").read_text())
    for key in (*VOLATILE, "traces"):  # traces: how many came from the cache differs by design
        stats.pop(key)
    return {"kept": (folder / "kept.jsonl").read_bytes(), "rejected": (folder / "rejected.jsonl").read_bytes(),
            "stats": stats}


@pytest.mark.slow
def test_ray_gives_the_local_outputs_and_fills_the_same_cache(cluster, inputs, monkeypatch):
    tmp, late = inputs
    measured_there = []
    real_get = on_ray._get
    monkeypatch.setattr(on_ray, "_get", lambda ray, refs: measured_there.append(refs) or real_get(ray, refs))
    stats, _, rejected = run_filter(tmp, [*_options(tmp), "engine=ray", f"ray_address={cluster}", "workers=2"],
                                    out="ray/kept.jsonl")
    assert _outputs(tmp / "ray") == _outputs(tmp / "local")
    assert len(measured_there) > 30 and stats["traces"]["measured_now"] > 1200  # every chunk came from an actor
    why = reasons(rejected)
    late_why = [why.get((r["id"], r["sample"])) for r in late]
    assert set(late_why) == {"duplicate"}, late_why  # dedup saw the whole file
    assert why[("add", 1)] == "wrong_answer" and ("add", 0) not in why  # the sandbox ran on the actors
    assert {"contaminated", "bad_step", "repetition", "language_mix"} <= set(why.values())
    # The key Ray's results went under is the local run's: a local re-run measures nothing.
    again, _, _ = run_filter(tmp, [*_options(tmp), "workers=1"], out="ray/kept.jsonl")
    assert again["traces"]["measured_now"] == 0 and again["cache"] == stats["cache"]
    assert _outputs(tmp / "ray") == _outputs(tmp / "local")


@pytest.mark.slow
def test_a_killed_ray_run_resumes_from_the_cache(cluster, inputs):
    tmp, _ = inputs
    out = tmp / "killed" / "kept.jsonl"
    args = [sys.executable, "-m", "distill", "filter", f"traces={tmp / 'traces.jsonl'}", f"out={out}",
            *_options(tmp), "chunksize=20", "engine=ray", f"ray_address={cluster}", "progress=false", "plot=false"]
    run = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    rows, deadline = 0, time.monotonic() + 60
    while rows == 0:  # kill it once the first measured chunks are in the cache
        assert run.poll() is None and time.monotonic() < deadline, run.stderr.read() if run.poll() else "no rows"
        rows = _cached_rows(out.parent / "filter-cache")
        time.sleep(0.02)
    run.kill()
    run.wait()
    assert not out.exists()  # it died mid-measure: nothing written
    stats, _, _ = run_filter(tmp, [*_options(tmp), "engine=ray", f"ray_address={cluster}"], out="killed/kept.jsonl")
    assert 0 < stats["traces"]["from_cache"] < stats["traces"]["lines"], stats["traces"]
    assert _outputs(out.parent) == _outputs(tmp / "local")


def _cached_rows(folder: Path) -> int:
    for db in folder.glob("[0-9a-f]*.sqlite"):
        try:
            with sqlite3.connect(db) as conn:
                return conn.execute("SELECT COUNT(*) FROM c").fetchone()[0]
        except sqlite3.Error:
            return 0
    return 0
