"""What lives where: data folders hold no Python (STYLE.md habit 2); tests and benches do not import each other."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("folder", ["generate", "finetune", "datasets", "recipes"])
def test_data_folders_hold_no_python(folder):
    assert not list((ROOT / folder).rglob("*.py")), f"{folder}/ must hold data and recipes only"


def test_recipe_folders_exist_and_are_not_empty():
    for folder in ("generate", "recipes"):
        assert list((ROOT / folder).glob("*.yaml")), f"{folder}/ has no recipes"


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    return names | {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module and not n.level}


def test_tests_and_benches_do_not_import_each_other():
    """Each side builds its own tiny student and records: a bench run from a wheel or sdist has no tests/."""
    sides = {"tests": sorted((ROOT / "tests").glob("*.py")), "bench": sorted((ROOT / "bench").glob("*.py"))}
    own = {side: {p.stem for p in paths} for side, paths in sides.items()}
    for side, other in (("tests", "bench"), ("bench", "tests")):
        for path in sides[side]:
            crossing = {m.split(".")[0] for m in _imported_modules(path)} & (own[other] - own[side])
            assert not crossing, f"{side}/{path.name} imports {other}/ modules {sorted(crossing)}"
            inserts = [line for line in path.read_text(encoding="utf-8").splitlines() if "sys.path.insert" in line]
            crossing_path = [line for line in inserts if f'"{other}"' in line]
            assert not crossing_path, f"{side}/{path.name} puts {other}/ on sys.path"
