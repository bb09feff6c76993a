"""`distill eval benchmark=NAME` end to end: each set read from a loopback fake Hub in its real schema,
scored on the tiny student with a small budget; a gated set without access says so in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from benchmark_fixtures import serve_benchmarks
from distill.benchmarks import PROTOCOLS, protocol_for
from fakehub import FakeHub
from tiny_student import make_tiny_student

ROOT = Path(__file__).resolve().parents[1]

DRIVER = textwrap.dedent("""
    import sys
    from distill.config import load_config
    from distill.evaluate import run
    from distill.evaluate.config import EvalConfig
    student, root, names = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
    for name in names:
        run(load_config(EvalConfig, None, [f"benchmark={name}", f"student={student}", f"out={root}/{name}",
                                           "samples=2", "max_new_tokens=8", "batch_size=8", "progress=false"]))
""")


def _env(hub: FakeHub, home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
    env.update(HF_ENDPOINT=hub.url, HF_HOME=str(home), HF_TOKEN="hf_fake", PYTHONPATH=str(ROOT),
               OMP_NUM_THREADS="1")
    return env


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    return make_tiny_student(tmp_path_factory.mktemp("bench") / "student")


def test_every_benchmark_runs_end_to_end_from_the_hub(student, tmp_path):
    names = list(PROTOCOLS)
    with FakeHub() as hub:
        serve_benchmarks(hub)
        done = subprocess.run([sys.executable, "-c", DRIVER, str(student), str(tmp_path), ",".join(names)],
                              env=_env(hub, tmp_path / "hf"), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    # The Hub is gone now: the set comes from the datasets cache under HF_HOME.
    offline = {**_env(hub, tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    again = subprocess.run([sys.executable, "-c", DRIVER, str(student), str(tmp_path / "offline"), "aime24"],
                           env=offline, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((tmp_path / "offline" / "aime24" / "report.json").read_text())["metrics"]["problems"] == 2
    for name in names:
        folder = tmp_path / name
        report = json.loads((folder / "report.json").read_text())
        bench = report["settings"]["benchmark"]
        expected = 2  # livecodebench's third fixture row is dated outside the protocol's window
        assert report["metrics"]["problems"] == expected and report["metrics"]["n"] == 2, name
        assert report["metrics"]["avg@n"] == report["metrics"]["pass@1"] and "avg@n_stderr" in report["metrics"]
        assert bench["dataset"]["dataset"] == PROTOCOLS[name].dataset and bench["dataset"]["licence"]
        assert bench["overrides"] == {"samples": {"protocol": PROTOCOLS[name].samples, "used": 2},
                                      "max_new_tokens": {"protocol": 32768, "used": 8}}, bench["overrides"]
        assert not bench["comparable"]
        assert report["settings"]["temperature"] == 0.6 and report["settings"]["top_p"] == 0.95  # the protocol's
        rows = [json.loads(line) for line in (folder / "per_problem.jsonl").read_text().splitlines()]
        assert len(rows) == 2 and all(r["samples"] == 2 for r in rows), rows
        outputs = [json.loads(line) for line in (folder / "outputs.jsonl").read_text().splitlines()]
        assert len(outputs) == 4 and {o["kind"] for o in outputs} == {PROTOCOLS[name].kind}
        assert all(o["truncated"] for o in outputs) == (report["metrics"]["truncated"] == 1.0)
    gpqa = [json.loads(line) for line in (tmp_path / "gpqa-diamond" / "outputs.jsonl").read_text().splitlines()]
    assert "A) " in gpqa[0]["prompt"] and gpqa[0]["prompt"].startswith("Answer the following multiple choice")
    lcb = [json.loads(line) for line in (tmp_path / "livecodebench" / "outputs.jsonl").read_text().splitlines()]
    assert {o["id"] for o in lcb} == {"livecodebench-abc900_a", "livecodebench-9001"}
    assert any("_solution.add(*[5, 5]) == 10" in o["gold"] for o in lcb)  # a private functional case


def test_a_gated_set_without_access_is_one_line(student, tmp_path):
    with FakeHub() as hub:
        serve_benchmarks(hub, gated={"Idavidrein/gpqa"})
        done = subprocess.run([sys.executable, "-m", "distill", "eval", "benchmark=gpqa-diamond",
                               f"student={student}", f"out={tmp_path / 'ev'}", "progress=false"],
                              env=_env(hub, tmp_path / "hf"), capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].endswith(protocol_for("gpqa-diamond").access_hint()), lines[0]
    assert not (tmp_path / "ev" / "outputs.jsonl").exists()
