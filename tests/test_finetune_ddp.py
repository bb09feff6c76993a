"""`distill finetune` as 2 CPU processes under `accelerate launch` (DDP over gloo)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from finetune_fixtures import write_traces
from tiny_student import make_tiny_student


@pytest.mark.slow
def test_two_process_cpu_run_produces_an_adapter(tmp_path):
    student = make_tiny_student(tmp_path / "s")
    data = write_traces(tmp_path / "kept.jsonl", n=16)
    out = tmp_path / "out"
    launcher = Path(sys.executable).with_name("accelerate")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DISTILL_PROGRESS": "0"}
    cmd = [str(launcher), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
           "-m", "distill", "finetune", f"data={data}", f"student={student}", f"out={out}",
           "max_steps=2", "batch_size=2", "save_steps=1"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "adapter_model.safetensors").is_file() and (out / "adapter_config.json").is_file()
    rows = [json.loads(line) for line in (out / "loss.jsonl").read_text().splitlines()]
    # 16 examples, 2 per micro-batch = 8 micro-batches an epoch; 2 ranks each take one per step.
    assert [r["epoch"] for r in rows] == [0.25, 0.5]
