"""The one adapter/base matching rule (distill/adapters.py), used by eval, finetune's init_adapter and publish."""

from __future__ import annotations

import json

import pytest

from distill.adapters import check_adapter_base, read_base, same_model
from distill.errors import InputError


def _folder(path, config=None):
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps(config or {"hidden_size": 8}))
    (path / "model.safetensors").write_bytes(b"w" * 100)
    return path


def test_two_hub_ids_match_only_whole():
    assert not same_model("org-a/Model", "org-b/Model")
    assert not same_model("Qwen/Qwen2.5-0.5B", "someone/Qwen2.5-0.5B")
    assert same_model("Org-A/Model", "org-a/model/")
    assert same_model("smollm2", "HuggingFaceTB/SmolLM2-135M-Instruct")  # an alias stands for its Hub id
    assert not same_model("smollm2", "someone/SmolLM2-135M-Instruct")


def test_a_folder_matches_the_hub_id_its_config_names_else_its_model_name(tmp_path):
    named = _folder(tmp_path / "Model")
    assert same_model("org-a/Model", str(named)) and same_model(str(named), "org-b/Model")  # only the name says
    recorded = _folder(tmp_path / "x" / "Model", {"hidden_size": 8, "_name_or_path": "org-a/Model"})
    assert same_model(str(recorded), "org-a/Model")
    assert not same_model(str(recorded), "org-b/Model")  # the config names another org's model
    assert not same_model("org-a/Model", str(tmp_path / "gone" / "Other"))


def test_every_caller_refuses_another_orgs_model_of_the_same_name(tmp_path):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "org-a/Model"}))
    assert read_base(adapter).refs == ["org-a/Model"] and read_base(adapter).hub_id == "org-a/Model"
    check_adapter_base(adapter, "org-a/Model")
    with pytest.raises(InputError, match="trained on 'org-a/Model', not on student='org-b/Model'") as info:
        check_adapter_base(adapter, "org-b/Model", field="init_adapter")
    assert info.value.field == "init_adapter"
    (adapter / "adapter_config.json").write_text("{}")  # names no base: nothing to check, a warning
    assert read_base(adapter).is_for("org-b/Model") is None
    check_adapter_base(adapter, "org-b/Model")
