"""Top-level data folders hold recipes and data, never Python (STYLE.md habit 2)."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("folder", ["generate", "finetune", "datasets", "recipes"])
def test_data_folders_hold_no_python(folder):
    assert not list((ROOT / folder).rglob("*.py")), f"{folder}/ must hold data and recipes only"


def test_recipe_folders_exist_and_are_not_empty():
    for folder in ("generate", "recipes"):
        assert list((ROOT / folder).glob("*.yaml")), f"{folder}/ has no recipes"
