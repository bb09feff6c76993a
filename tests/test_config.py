"""Recipes and overrides: every key checked, every value typed, the resolved config saved."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import yaml

from distill.config import build_config, config_hash, describe, load_config, option, parse_overrides, save_resolved, section
from distill.errors import ConfigError


@dataclass
class LoraSection:
    r: int = option(16, "rank")
    alpha: float = option(32.0, "scale")
    targets: list[str] = option(["all-linear"], "modules")


@dataclass
class DemoConfig:
    out: str = option("out.jsonl", "output file")
    samples: int = option(1, "samples per problem")
    temperature: float | None = option(0.6, "sampling temperature")
    base_url: str | list[str] = option("http://a/v1", "one URL or several")
    extra_body: dict = option({}, "passed through")
    is_dry_run: bool = option(False, "send nothing")
    lora: LoraSection = section(LoraSection, "LoRA settings")


def test_defaults_recipe_then_overrides_in_that_order(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("samples: 4\nlora:\n  r: 8\n")
    cfg = load_config(DemoConfig, recipe, ["samples=6", "lora.alpha=16"])
    assert (cfg.samples, cfg.lora.r, cfg.lora.alpha, cfg.out) == (6, 8, 16.0, "out.jsonl")


def test_override_values_are_read_as_yaml():
    got = parse_overrides(["base_url=[http://a:1/v1, http://b:2/v1]", "extra_body={thinking: {type: enabled}}",
                           "temperature=null", "out=What: is this", "is_dry_run=true"])
    assert got["base_url"] == ["http://a:1/v1", "http://b:2/v1"]
    assert got["extra_body"] == {"thinking": {"type": "enabled"}}
    assert got["temperature"] is None
    assert got["out"] == "What: is this"
    assert got["is_dry_run"] is True


def test_unknown_key_suggests_the_close_one():
    with pytest.raises(ConfigError, match=r"unknown key 'lora.rank' \(did you mean 'lora.r'\?\)"):
        load_config(DemoConfig, None, ["lora.rank=32"])
    with pytest.raises(ConfigError, match=r"did you mean 'samples'"):
        load_config(DemoConfig, None, ["sample=2"])


def test_right_name_in_the_wrong_section_is_suggested():
    with pytest.raises(ConfigError, match=r"did you mean 'lora.alpha'"):
        load_config(DemoConfig, None, ["alpha=3"])


def test_wrong_type_names_key_and_expected_type(tmp_path):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("lora:\n  r: lots\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: lora.r: expected int, got 'lots'"):
        load_config(DemoConfig, recipe)
    with pytest.raises(ConfigError, match=r"samples: expected int"):
        load_config(DemoConfig, None, ["samples=1.5"])


def test_broken_yaml_names_the_file_and_line(tmp_path):
    recipe = tmp_path / "broken.yaml"
    recipe.write_text("samples: 1\nlora: [1,\n")
    with pytest.raises(ConfigError, match=r"broken.yaml:\d+: not valid YAML"):
        load_config(DemoConfig, recipe)
    with pytest.raises(ConfigError, match="recipe file not found"):
        load_config(DemoConfig, tmp_path / "missing.yaml")


def test_section_can_be_a_recipe_path_refined_by_overrides(tmp_path):
    (tmp_path / "lora.yaml").write_text("r: 64\nalpha: 128\n")
    recipe = tmp_path / "pipeline.yaml"
    recipe.write_text("lora: lora.yaml\n")
    cfg = load_config(DemoConfig, recipe, ["lora.alpha=8"])
    assert (cfg.lora.r, cfg.lora.alpha) == (64, 8.0)


def test_resolved_config_round_trips(tmp_path):
    cfg = load_config(DemoConfig, None, ["lora.targets=[q_proj, v_proj]", "samples=3"])
    path = save_resolved(cfg, tmp_path / "out" / "config.yaml")
    again = build_config(DemoConfig, yaml.safe_load(path.read_text()))
    assert again == cfg
    assert config_hash(again) == config_hash(cfg)
    assert config_hash(cfg) != config_hash(load_config(DemoConfig, None, ["samples=4"]))


def test_describe_lists_every_option_with_default_and_help():
    rows = {key: (default, meaning) for key, _, default, meaning in describe(DemoConfig)}
    assert rows["lora.r"] == (16, "rank")
    assert rows["samples"] == (1, "samples per problem")
    assert len(rows) == 9


def test_mutable_defaults_are_not_shared():
    a, b = DemoConfig(), DemoConfig()
    a.extra_body["x"] = 1
    a.lora.targets.append("q")
    assert b.extra_body == {} and b.lora.targets == ["all-linear"]
