"""Every shipped recipe loads through distill.config (every key known) and every file it names exists."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from distill.config import load_config

ROOT = Path(__file__).resolve().parent.parent
DATA_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet", ".jinja", ".yaml", ".yml", ".gguf")


def _recipes(folder: str) -> list[Path]:
    return sorted((ROOT / folder).glob("*.yaml"))


def _config_class(folder: str):
    if folder == "generate":
        from distill.generate.config import GenerateConfig
        return GenerateConfig
    if folder == "finetune":
        from distill.finetune.config import FinetuneConfig
        return FinetuneConfig
    from distill.pipeline.config import PipelineConfig
    return PipelineConfig


def _named_files(tree, base: Path):
    """Values that look like local files (relative ones resolved against the recipe or the repo root)."""
    if isinstance(tree, dict):
        for value in tree.values():
            yield from _named_files(value, base)
    elif isinstance(tree, list):
        for value in tree:
            yield from _named_files(value, base)
    elif isinstance(tree, str) and tree.endswith(DATA_SUFFIXES) and "://" not in tree and "\n" not in tree:
        yield tree


def _leaves(tree: dict, base: Path, prefix: str = ""):
    """(dotted key, value) for every value a recipe sets; a section given as a recipe path is read in."""
    for key, value in tree.items():
        if isinstance(value, str) and value.endswith((".yaml", ".yml")) and (base / value).is_file():
            value = yaml.safe_load((base / value).read_text(encoding="utf-8"))  # `generate: generate/x.yaml`
        if isinstance(value, dict) and value:
            yield from _leaves(value, base, f"{prefix}{key}.")
        else:
            yield prefix + key, value


def _loaded(cfg, dotted: str):
    for part in dotted.split("."):
        cfg = cfg[part] if isinstance(cfg, dict) else getattr(cfg, part)  # dict: a free-form field (extra_body)
    return cfg


def _same(given, loaded) -> bool:
    if isinstance(given, list) and isinstance(loaded, (list, tuple)):
        return len(given) == len(loaded) and all(_same(a, b) for a, b in zip(given, loaded))
    if isinstance(given, (int, float)) and not isinstance(given, bool) and isinstance(loaded, (int, float)):
        return float(given) == float(loaded)
    return given == loaded or str(given) == str(loaded)  # a path given as text, loaded as a string


CASES = [(folder, path) for folder in ("generate", "finetune", "recipes") for path in _recipes(folder)]


@pytest.mark.parametrize("folder,path", CASES, ids=[f"{f}/{p.name}" for f, p in CASES])
def test_recipe_loads_with_every_key_taking_effect_and_names_only_present_files(folder, path):
    cfg = load_config(_config_class(folder), path)
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    leaves = list(_leaves(raw, path.parent))
    assert leaves, f"{path.name} sets nothing"
    for dotted, given in leaves:  # the loader knows the key and the config holds what the recipe says
        loaded = _loaded(cfg, dotted)
        assert _same(given, loaded), f"{path.name}: {dotted}: {given!r} loaded as {loaded!r}"
    for name in _named_files(raw, path.parent):
        p = Path(name)
        assert p.is_absolute() is False, f"{path.name}: absolute path {name}"
        assert (path.parent / p).exists() or (ROOT / p).exists(), f"{path.name} names a missing file: {name}"


def test_generate_recipes_keep_keys_out_of_files():
    for path in _recipes("generate"):
        text = path.read_text(encoding="utf-8")
        assert "sk-" not in text and "api_key:" not in text, path.name
        cfg = load_config(_config_class("generate"), path)
        assert cfg.api_key_env is None or cfg.api_key_env.isupper()


def test_every_named_teacher_has_a_recipe():
    names = {p.stem for p in _recipes("generate")}
    assert {"deepseek-r1", "openai-o4-mini", "openrouter", "vllm", "ollama"} <= names


def test_embedded_default_loads_from_the_package():
    from distill.pipeline.config import default_recipe, load_pipeline

    path = default_recipe()
    assert path.name == "offline-default.yaml" and "distill" in path.parts
    cfg = load_pipeline()
    assert cfg.teacher == "offline"
    assert "publish" not in cfg.stages  # the default never uploads
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    for name in _named_files(raw, path.parent):
        assert (path.parent / name).exists() or (ROOT / name).exists(), f"default names a missing file: {name}"


def test_whole_pipeline_recipe_reaches_every_stage():
    cfg = load_config(_config_class("recipes"), ROOT / "recipes" / "gsm8k-deepseek-qwen2.5-1.5b.yaml")
    assert cfg.stages == ["generate", "filter", "finetune", "eval", "publish"]
    assert cfg.generate.model == "deepseek-reasoner" and cfg.generate.problems == "openai/gsm8k"
    assert cfg.finetune.student == cfg.eval.student == "Qwen/Qwen2.5-1.5B-Instruct"
    assert cfg.eval.split == "test"
