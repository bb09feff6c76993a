"""`distill finetune` as 2 CPU processes under `accelerate launch` (DDP over gloo)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from finetune_fixtures import write_kept_traces
from tiny_student import make_tiny_student


@pytest.mark.slow
def test_two_processes_train_the_same_adapter_as_one(tmp_path):
    """2 ranks x 1 micro-batch a step see the same examples as 1 process x 2 accumulated micro-batches,
    and the step's gradient is the mean over its trained tokens either way: the adapters must agree."""
    from safetensors.torch import load_file

    student = make_tiny_student(tmp_path / "s")
    data = write_kept_traces(tmp_path / "kept.jsonl", n=16)
    common = [f"data={data}", f"student={student}", "max_steps=3", "batch_size=2", "lora.dropout=0.0",
              "learning_rate=0.01"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DISTILL_PROGRESS": "0"}
    launcher = Path(sys.executable).with_name("accelerate")
    two = subprocess.run([str(launcher), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                          "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
                          "-m", "distill", "finetune", *common, f"out={tmp_path / 'two'}", "save_steps=1"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    one = subprocess.run([sys.executable, "-m", "distill", "finetune", *common, f"out={tmp_path / 'one'}",
                          "grad_accum=2"], env=env, capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-3000:]
    rows = {name: [json.loads(line) for line in (tmp_path / name / "loss.jsonl").read_text().splitlines()]
            for name in ("one", "two")}
    # 16 examples, 2 per micro-batch = 8 micro-batches an epoch; each step takes 2 of them.
    assert [r["epoch"] for r in rows["two"]] == [r["epoch"] for r in rows["one"]] == [0.25, 0.5, 0.75]
    assert [r["loss"] for r in rows["two"]] == pytest.approx([r["loss"] for r in rows["one"]], rel=1e-4)
    a, b = (load_file(tmp_path / name / "adapter_model.safetensors") for name in ("one", "two"))
    assert a.keys() == b.keys() and a
    moved = max(float(t.abs().max()) for k, t in a.items() if "lora_B" in k)
    assert moved > 1e-3  # training changed the adapter (lora_B starts at zero)
    for name in a:
        assert float((a[name] - b[name]).abs().max()) <= 1e-4 * max(1.0, float(a[name].abs().max())), name
