"""`distill finetune init_adapter=DIR` on the tiny student: training starts from the saved adapter's weights,
the record says so, mismatched adapters are refused in one line, and the pipeline's key follows its bytes."""

from __future__ import annotations

import json

import pytest
import torch
from finetune_fixtures import write_kept_traces
from safetensors.torch import load_file, save_file
from tiny_student import make_tiny_student

from distill.config import load_config
from distill.errors import ConfigError, InputError
from distill.finetune import FinetuneConfig, run
from distill.finetune.init_adapter import check_init_adapter, lora_fingerprint
from distill.records import file_sha256
from test_finetune import interrupt_before

torch.set_num_threads(1)

# lm_head trained too: a random tiny model's logits move little through LoRA alone (see test_finetune).
FIT = ("learning_rate=1e-2", "lora.dropout=0", "warmup_ratio=0", "lora.modules_to_save=[lm_head]")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny student, its data and an adapter fitted to that data (20 steps)."""
    folder = tmp_path_factory.mktemp("init")
    student = make_tiny_student(folder / "student")
    data = write_kept_traces(folder / "kept.jsonl", n=4, min_terms=2, max_terms=3)
    adapter = run(_cfg(data, student, folder / "a", "max_steps=20", *FIT))
    return {"student": student, "data": data, "adapter": adapter, "folder": folder}


def _cfg(data, student, out, *extra):
    return load_config(FinetuneConfig, None, [f"data={data}", f"student={student}", f"out={out}", "progress=false",
                                              "batch_size=4", "lora.r=8", *extra])


def _copy(adapter, dest):
    """A copy of an adapter folder's files, to change without touching the module's adapter."""
    dest.mkdir()
    for item in adapter.iterdir():
        if item.is_file():
            (dest / item.name).write_bytes(item.read_bytes())
    return dest


def _losses(folder):
    return [json.loads(line)["loss"] for line in (folder / "loss.jsonl").read_text().splitlines()]


def test_training_starts_from_the_adapter_weights_and_the_record_says_so(trained, tmp_path):
    a = trained["adapter"]
    args = (trained["data"], trained["student"])
    # lr 1e-12: one step moves nothing measurable, so what is saved is what training started from.
    kept = run(_cfg(*args, tmp_path / "kept", f"init_adapter={a}", "max_steps=1", *FIT[1:], "learning_rate=1e-12"))
    start, saved = load_file(a / "adapter_model.safetensors"), load_file(kept / "adapter_model.safetensors")
    assert start.keys() == saved.keys() and all(torch.allclose(start[k], saved[k], atol=1e-8) for k in start)

    record = json.loads((kept / "distill.json").read_text())["init_adapter"]
    assert record["path"] == str(a.resolve()) and record["sha256"] == file_sha256(a / "adapter_model.safetensors")
    assert record["loaded_fingerprint"] == lora_fingerprint(start)  # the tensors loaded are the file's, exactly
    fresh = run(_cfg(*args, tmp_path / "fresh", "max_steps=1", *FIT))
    assert json.loads((fresh / "distill.json").read_text())["init_adapter"] is None
    # Step 0's loss (logged before the first update) is the fitted adapter's, far below a fresh LoRA's.
    assert _losses(kept)[0] < 0.6 * _losses(fresh)[0], (_losses(kept), _losses(fresh))


@pytest.mark.parametrize("override, error, says", [
    ("lora.r=4", ConfigError, "trained with lora.r=8, this run has lora.r=4"),
    ("lora.alpha=8", ConfigError, "lora.alpha"),
    ("lora.target_modules=[q_proj]", ConfigError, "adapts"),
    ("lora.modules_to_save=[]", ConfigError, "saves modules"),
])
def test_other_lora_settings_are_refused_before_the_model_loads(trained, tmp_path, override, error, says):
    cfg = _cfg(trained["data"], trained["student"], tmp_path / "o", f"init_adapter={trained['adapter']}", *FIT,
               override)
    with pytest.raises(error, match=says):
        run(cfg)
    assert not (tmp_path / "o").exists()  # nothing written, not even the lint report


def test_dropout_may_differ_and_a_tensor_mismatch_is_named(trained, tmp_path):
    cfg = _cfg(trained["data"], trained["student"], tmp_path / "d", f"init_adapter={trained['adapter']}",
               *FIT, "lora.dropout=0.1")
    check_init_adapter(cfg)  # dropout shapes training, not the weights
    # An adapter whose tensors do not fit (one removed) fails at load, naming the tensor.
    bad = _copy(trained["adapter"], tmp_path / "bad")
    tensors = load_file(bad / "adapter_model.safetensors")
    gone = sorted(tensors)[0]
    save_file({k: v for k, v in tensors.items() if k != gone}, str(bad / "adapter_model.safetensors"))
    with pytest.raises(ConfigError, match=f"lacks {gone}"):
        run(_cfg(trained["data"], trained["student"], tmp_path / "x", f"init_adapter={bad}", *FIT))


def test_missing_foreign_and_non_adapter_folders_are_refused(trained, tmp_path):
    base = (trained["data"], trained["student"], tmp_path / "o")
    with pytest.raises(InputError, match="no such adapter folder"):
        check_init_adapter(_cfg(*base, f"init_adapter={tmp_path / 'nope'}"))
    with pytest.raises(InputError, match="no adapter_config.json"):
        check_init_adapter(_cfg(*base, f"init_adapter={trained['student']}"))  # a model folder, not an adapter
    with pytest.raises(ConfigError, match="would overwrite the adapter it starts from"):
        check_init_adapter(_cfg(trained["data"], trained["student"], trained["adapter"],
                                f"init_adapter={trained['adapter']}", *FIT))
    other = make_tiny_student(tmp_path / "other", seed=1)
    with pytest.raises(InputError, match="an adapter of another student"):
        check_init_adapter(_cfg(trained["data"], other, tmp_path / "o", f"init_adapter={trained['adapter']}", *FIT))


def test_the_pipeline_key_follows_the_init_adapter_bytes(trained, tmp_path):
    from distill.pipeline.config import load_pipeline
    from distill.pipeline.steps import step_key
    from distill.pipeline.wiring import plan

    start = _copy(trained["adapter"], tmp_path / "start")
    cfg = load_pipeline(None, [f"student={trained['student']}", f"finetune.init_adapter={start}",
                               "finetune.lora.r=8"])

    def key():
        return step_key(next(s for s in plan(cfg, tmp_path / "run") if s.name == "finetune"))

    before = key()
    tensors = load_file(start / "adapter_model.safetensors")
    name = sorted(tensors)[0]
    save_file({**tensors, name: tensors[name] + 1}, str(start / "adapter_model.safetensors"))
    assert key() != before  # same path, other bytes: finetune runs again


def test_resume_continues_only_a_checkpoint_of_the_same_start(trained, tmp_path, monkeypatch):
    start = _copy(trained["adapter"], tmp_path / "start")
    args = (trained["data"], trained["student"], tmp_path / "out", f"init_adapter={start}", *FIT,
            "max_steps=4", "save_steps=2", "batch_size=2")
    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
        interrupt_before(patch, 3)
        run(_cfg(*args))
    same = run(_cfg(*args, "resume=true"))
    assert json.loads((same / "distill.json").read_text())["metrics"]["resumed_from_step"] == 2
    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
        interrupt_before(patch, 3)
        run(_cfg(*args))
    tensors = load_file(start / "adapter_model.safetensors")
    save_file({k: v * 2 for k, v in tensors.items()}, str(start / "adapter_model.safetensors"))
    other = run(_cfg(*args, "resume=true"))  # the start changed: its checkpoint is not this run's past
    assert json.loads((other / "distill.json").read_text())["metrics"]["resumed_from_step"] == 0


def test_the_cli_refuses_a_missing_start_in_one_line(trained, tmp_path, capsys):
    from distill.cli import main

    code = main(["finetune", f"data={trained['data']}", f"student={trained['student']}", f"out={tmp_path / 'o'}",
                 f"init_adapter={tmp_path / 'nope'}"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1 and "(field 'init_adapter'): no such adapter folder" in err[0], err
    assert not (tmp_path / "o").exists()
