"""The README's commands, run: each `distill` line of the README runs here as a subprocess, in the
README's order, in a scratch folder, at reduced size through overrides appended to the line as
written: a few problems, two training steps, short answers, and a tiny student built here in
place of SmolLM2 (test_pipeline_smollm2 runs the real one). A command that needs the network, an
API key or a big model is listed with the reason it is not run, so a new README command fails this
test until it is either run or explained.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from test_readme import README, ROOT, readme_commands
from tiny_student import make_tiny_student

# Appended to a command of this verb (later keys win), so it finishes in seconds.
REDUCED = {
    "generate": ["limit=12"],
    "filter": ["learnability.student={student}"],  # when a command turns learnability on
    "rank-teachers": ["student={student}"],
    "finetune": ["max_steps=2", "batch_size=4", "save_steps=0", "student={student}"],
    "eval": ["limit=3", "max_new_tokens=12", "batch_size=3", "student={student}"],
    "run": ["generate.problems=offline:train?n=16", "eval.problems=offline:eval?n=3", "finetune.max_steps=2",
            "finetune.batch_size=4", "finetune.save_steps=0", "eval.max_new_tokens=12", "eval.batch_size=3",
            "student={student}"],
}
NOT_RUN = {
    "recipes/gsm8k-deepseek-qwen2.5-1.5b.yaml": "downloads openai/gsm8k from the Hub",
    "max_cost_usd=2": "sends paid requests to DeepSeek (needs DEEPSEEK_API_KEY)",
    "judge.base_url=https://api.deepseek.com": "asks DeepSeek as the judge (needs a key)",
    "finetune/qwen2.5-1.5b-instruct.yaml": "downloads a 1.5B model",
    "api.base_url=http://localhost:8000/v1": "scores a student served on port 8000",
    "adapter=runs/y/adapter": "compares with the adapter of another experiment",
    "loop.base_url=http://127.0.0.1:8000/v1": "needs a vLLM server with runtime LoRA loading on port 8000",
    "benchmark=": "loads the benchmark from the Hub (test_benchmarks_hub runs each against a fake Hub)",
}


def _reason_not_run(command: str) -> str | None:
    return next((why for marker, why in NOT_RUN.items() if marker in command), None)


def _env(tmp_path: Path) -> dict:
    return {**os.environ, "DISTILL_PROGRESS": "0", "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_the_readme_commands_run(tmp_path):
    student = make_tiny_student(tmp_path / "tiny-student")
    for folder in ("datasets", "finetune", "generate", "recipes"):
        (tmp_path / folder).symlink_to(ROOT / folder)
    (tmp_path / "test.jsonl").write_text((ROOT / "datasets" / "offline-eval.jsonl").read_text())
    commands = readme_commands(README.read_text(encoding="utf-8"))
    ran, server = [], None
    try:
        for command in commands:
            if _reason_not_run(command):
                continue
            argv = shlex.split(command)[1:]
            if argv[:2] == ["teacher", "serve"]:  # the README backgrounds it; here on a free port
                server = subprocess.Popen([sys.executable, "-m", "distill", "teacher", "serve", "port=0"],
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                          env=_env(tmp_path), cwd=tmp_path)
                url = server.stdout.readline().split()[1]
                ran.append(command)
                continue
            argv = [a.replace("http://127.0.0.1:8765/v1", url) if server else a for a in argv]
            extra = [a.format(student=student) for a in REDUCED.get(argv[0], [])]
            if "traces=traces.jsonl" in command:  # the README's generic example: the walk-through's traces
                (tmp_path / "traces.jsonl").write_bytes((tmp_path / "runs" / "traces.jsonl").read_bytes())
                (tmp_path / "eval.jsonl").write_bytes((tmp_path / "test.jsonl").read_bytes())
            if argv[0] == "rank-teachers":  # the README's three teachers: the walk-through's traces under their names
                for name in ("deepseek", "qwen", "offline"):
                    (tmp_path / f"{name}.jsonl").write_bytes((tmp_path / "runs" / "traces.jsonl").read_bytes())
            done = subprocess.run([sys.executable, "-m", "distill", *argv, *extra], cwd=tmp_path,
                                  env=_env(tmp_path), capture_output=True, text=True, timeout=900)
            assert done.returncode == 0, f"{command}\n{done.stderr[-3000:]}"
            ran.append(command)
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)
    assert {c for c in commands if not _reason_not_run(c)} <= set(ran)
    # What the walk-through made is what the README says it makes.
    runs = tmp_path / "runs"
    assert sum(1 for _ in (runs / "traces.jsonl").open()) == 12
    assert (runs / "kept.jsonl").is_file() and (runs / "adapter" / "distill.json").is_file()
    report = json.loads((runs / "eval" / "report.json").read_text())
    assert report["compare"]["paired_problems"] == 3
    default = runs / "default"
    assert (default / "eval-after" / "report.json").is_file()
    assert (tmp_path / "publish" / "model" / "README.md").is_file()  # publish dry run staged the upload
