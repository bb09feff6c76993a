"""On-policy finetune as SFT's is: from the SFT adapter, dev-scored with keep-best, resumable, tokens counted, plotted.

Usage:
    .venv/bin/python -m pytest tests/test_onpolicy_resume.py -q
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from distill.config import load_config
from distill.errors import ConfigError
from distill.finetune import run
from distill.finetune.config import FinetuneConfig
from distill.finetune.init_adapter import lora_fingerprint
from distill.records import file_sha256
from finetune_fixtures import write_kept_traces
from test_finetune import interrupt_before as interrupt_sft_before
from tiny_student import make_tiny_student

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("onpolicy-resume")
    return {"student": make_tiny_student(root / "student"), "data": write_kept_traces(root / "kept.jsonl", n=6, max_terms=3),
            "dev": write_kept_traces(root / "dev.jsonl", n=3, seed=5, max_terms=2)}


def config(tiny, out, *extra: str) -> FinetuneConfig:
    return load_config(FinetuneConfig, None, [
        f"data={tiny['data']}", f"student={tiny['student']}", f"out={out}", "method=on_policy", "max_steps=2",
        "batch_size=2", "onpolicy.max_new_tokens=8", "learning_rate=0.01", "progress=false", "lora.r=4", *extra])


def rows(out) -> list[dict]:
    return [json.loads(line) for line in (out / "loss.jsonl").read_text().splitlines()]


def interrupt_before(monkeypatch, step: int) -> None:
    """Ctrl-C as on-policy training is about to run ``step`` (0-based)."""
    from distill.finetune import onpolicy

    real = onpolicy._step

    def step_or_stop(t, at):
        if at == step:
            raise KeyboardInterrupt
        return real(t, at)

    monkeypatch.setattr(onpolicy, "_step", step_or_stop)


def test_on_policy_starts_from_the_sft_adapter(tiny, tmp_path):
    sft = run(load_config(FinetuneConfig, None, [f"data={tiny['data']}", f"student={tiny['student']}",
                                                 f"out={tmp_path / 'sft'}", "max_steps=2", "batch_size=2",
                                                 "progress=false", "lora.r=4", "learning_rate=0.01"]))
    out = run(config(tiny, tmp_path / "op", f"init_adapter={sft}", "max_steps=1"))
    start = json.loads((out / "distill.json").read_text())["init_adapter"]
    saved = load_file(sft / "adapter_model.safetensors")
    assert start["sha256"] == file_sha256(sft / "adapter_model.safetensors")
    # the peft state dict names drop the adapter name, as the saved file does
    assert start["loaded_fingerprint"] == lora_fingerprint(saved)
    with pytest.raises(ConfigError, match="lora.r"):  # the init adapter's own checks, before any model loads
        run(config(tiny, tmp_path / "op2", f"init_adapter={sft}", "lora.r=8"))


def test_resume_after_a_kill_replays_the_run_and_scores_nothing_twice(tiny, tmp_path, monkeypatch):
    args = ("max_steps=5", "save_steps=4", f"eval_problems={tiny['dev']}", "eval_steps=2", "eval_max_new_tokens=8",
            "lora.dropout=0.1")
    full = run(config(tiny, tmp_path / "full", *args))
    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
        interrupt_before(patch, 3)  # steps 1-3 ran; the last checkpoint is step 2, the one dev-scored
        run(config(tiny, tmp_path / "cut", *args))
    assert [r["step"] for r in rows(tmp_path / "cut")] == [1, 2, 3]
    resumed = run(config(tiny, tmp_path / "cut", *args, "resume=true"))
    a, b = load_file(full / "adapter_model.safetensors"), load_file(resumed / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    drop = ("tokens_per_s",)
    assert [{k: v for k, v in r.items() if k not in drop} for r in rows(full)] == \
        [{k: v for k, v in r.items() if k not in drop} for r in rows(resumed)]
    assert [r["step"] for r in rows(resumed) if "dev_pass@1" in r] == [2, 4, 5]
    answers = [json.loads(line)["step"] for line in (resumed / "dev_outputs.jsonl").read_text().splitlines()]
    assert sorted(answers) == [2] * 3 + [4] * 3 + [5] * 3  # step 2 was scored before the kill, and only then
    metrics = json.loads((resumed / "distill.json").read_text())["metrics"]
    assert metrics["resumed_from_step"] == 2 and metrics["checkpoint"]["kept_step"] in (2, 4, 5)
    assert metrics["scored_tokens"] == sum(r["tokens"] for r in rows(full)) == rows(resumed)[-1]["tokens_total"]
    assert metrics["trained_tokens_this_run"] == sum(r["tokens"] for r in rows(resumed)[2:])
    assert metrics["trained_tokens_per_s"] > 0 and (resumed / "loss.png").is_file()


def test_dev_scores_a_kept_step_by_sound_accuracy(tiny, tmp_path):
    out = run(config(tiny, tmp_path / "op", f"eval_problems={tiny['dev']}", "eval_steps=1", "eval_max_new_tokens=8",
                     "max_steps=2"))
    assert [r["step"] for r in rows(out) if "dev_sound" in r] == [1, 2]
    kept = json.loads((out / "distill.json").read_text())["metrics"]["checkpoint"]
    assert kept["by"] == "dev sound" and kept["kept_step"] in (1, 2) and kept["dev_problems"] == 3
    assert not (out / "checkpoints").exists()


def test_the_loss_chart_draws_reverse_kl_and_dev_accuracy_for_on_policy_rows(tmp_path, monkeypatch):
    from matplotlib.axes import Axes

    from distill import plots

    labels: list[str] = []
    real = Axes.plot
    monkeypatch.setattr(Axes, "plot", lambda self, *a, **k: (labels.append(k.get("label")), real(self, *a, **k))[1])
    rows_ = [{"step": 1, "loss": -0.1, "reverse_kl": 0.9}, {"step": 2, "loss": 0.2, "reverse_kl": 0.5,
                                                             "dev_sound": 0.5}]
    assert plots.loss(rows_, tmp_path / "kl.png").is_file()
    assert labels == ["reverse KL", "dev sound"]
    labels.clear()
    plots.loss([{k: v for k, v in r.items() if k != "reverse_kl"} for r in rows_], tmp_path / "sft.png")
    assert labels == ["train loss", "dev sound"]


def test_eval_fraction_is_refused_with_on_policy(tiny, tmp_path):
    with pytest.raises(ConfigError, match="eval_fraction is not supported with method=on_policy"):
        config(tiny, tmp_path / "a", "eval_fraction=0.2")
    config(tiny, tmp_path / "a", "resume=true", "save_steps=1", "merge=true")  # accepted now


@pytest.mark.parametrize("method", ["on_policy", "sft"])
def test_max_train_seconds_stops_both_loops_after_the_step_that_crosses_it(tiny, tmp_path, method):
    out = run(config(tiny, tmp_path / "out", f"method={method}", "max_steps=4", "max_train_seconds=0.001",
                     f"eval_problems={tiny['dev']}", "eval_max_new_tokens=8"))
    assert [r["step"] for r in rows(out)] == [1] and "dev_pass@1" in rows(out)[0]  # the last step is dev-scored
    metrics = json.loads((out / "distill.json").read_text())["metrics"]
    assert metrics["steps"] == 1 and metrics["planned_steps"] == 4 and metrics["checkpoint"]["kept_step"] == 1


@pytest.mark.parametrize("method", ["on_policy", "sft"])
def test_a_resumed_run_counts_the_training_seconds_spent_before_the_kill(tiny, tmp_path, monkeypatch, method):
    args = (f"method={method}", "max_steps=8", "save_steps=1", "max_train_seconds=1000")
    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
        (interrupt_before if method == "on_policy" else interrupt_sft_before)(patch, 1)
        run(config(tiny, tmp_path / "out", *args))
    state_file = tmp_path / "out" / "checkpoints" / "step-00000001" / "state.json"
    state = json.loads(state_file.read_text())
    assert state["train_seconds"] > 0  # the checkpoint carries the budget spent
    state["train_seconds"] = 999.99  # as if step 1 had used nearly all of it
    state_file.write_text(json.dumps(state))
    out = run(config(tiny, tmp_path / "out", *args, "resume=true"))
    metrics = json.loads((out / "distill.json").read_text())["metrics"]
    assert metrics["resumed_from_step"] == 1 and metrics["steps"] == 2  # one step, then out of time (not 8)
