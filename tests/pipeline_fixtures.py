"""Small pipelines for tests: offline-family problem files, a tiny student and a recipe pointing at a test server.

Usage:
    from pipeline_fixtures import write_offline_problems, write_recipe
    train, held_out = write_offline_problems(tmp_path, n_train=12, n_eval=6)
    recipe = write_recipe(tmp_path, student, train, held_out, base_url=srv.base_url)
    run_dir = run(load_config(PipelineConfig, recipe))
    code = run_recipe(recipe, tmp_path / "run", "finetune.lora.r=8")   # `distill run` through the CLI: 0

The recipe uses ``teacher: endpoint`` so the test's own TeacherServer answers (and counts every
request across several `distill run` processes); everything is sized to finish in seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from records_factory import write_records


def write_offline_problems(folder: Path, n_train: int = 12, n_eval: int = 6, seed: int = 0) -> tuple[Path, Path]:
    """Training and held-out problem files from the offline task families (disjoint by construction)."""
    from distill.offline import sets as offline_sets

    folder.mkdir(parents=True, exist_ok=True)
    return tuple(write_records(folder / f"problems-{split}.jsonl", offline_sets.make_mixed(n, seed, split=split))
                 for split, n in (("train", n_train), ("eval", n_eval)))


def recipe_tree(student: Path, train: Path, held_out: Path, base_url: str | None = None, **sections) -> dict:
    """A whole-pipeline recipe as a mapping (sections merged over the small defaults below)."""
    tree = {
        "name": "t",
        "teacher": "endpoint" if base_url else "offline",
        "student": str(student),
        "generate": {"problems": str(train), "max_tokens": 1024, "concurrency": 4, "progress": False,
                     "backoff_base": 0.05, "backoff_max": 0.2},
        "filter": {"workers": 1, "progress": False, "plot": False},
        "finetune": {"max_steps": 4, "batch_size": 4, "max_length": 2048, "learning_rate": 0.01,
                     "progress": False, "lora": {"r": 4, "alpha": 8}},
        "eval": {"problems": str(held_out), "max_new_tokens": 8, "batch_size": 8, "progress": False,
                 "bootstrap": 100},
    }
    if base_url:
        tree["generate"].update(base_url=base_url, model="test-teacher", provider="offline", api_key_env=None)
    for name, value in sections.items():
        if isinstance(value, dict) and isinstance(tree.get(name), dict):
            tree[name] = _merge(tree[name], value)
        else:
            tree[name] = value
    return tree


def write_recipe(folder: Path, student: Path, train: Path, held_out: Path, base_url: str | None = None,
                 **sections) -> Path:
    path = folder / "pipeline.yaml"
    path.write_text(yaml.safe_dump(recipe_tree(student, train, held_out, base_url, **sections)), encoding="utf-8")
    return path


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def run_recipe(recipe: Path, run_dir: Path, *overrides: str) -> int:
    """`distill run RECIPE run_dir=... key=value ...` through the CLI; its exit code."""
    from distill.cli import main

    return main(["run", str(recipe), f"run_dir={run_dir}", *overrides])


def states(run_dir: Path) -> dict[str, dict]:
    """The ledger of a run folder, by step name."""
    folder = run_dir / ".state"
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}


def good_traces(path: Path) -> list[tuple[str, int]]:
    """(id, sample) of every trace without an error, in file order (duplicates kept, to be counted)."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            rec = json.loads(line)
            if not rec.get("error"):
                out.append((rec["id"], rec["sample"]))
    return out
