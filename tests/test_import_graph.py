"""Stages depend on building blocks, never on each other: the import graph of the package, read statically.

A stage is one of distill's five verbs' packages; the pipeline and the CLI orchestrate them and may
import any of them. Everything else (verify, teacher, decode, offline, sources, render, metrics...)
is a building block that no stage owns, so it may import neither a stage nor the pipeline.
Function-level imports count: this code base imports lazily to keep `distill --help` light.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "distill"
STAGES = {"generate", "filter", "finetune", "evaluate", "publish"}
ORCHESTRATION = {"pipeline", "cli", "__main__"}


def _group(module: str) -> str:
    """distill.filter.stage -> filter; distill.records -> records."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _imports(path: Path, root: Path = ROOT) -> set[str]:
    """Every distill module a file imports, at any depth of the file (absolute and relative imports)."""
    module = ".".join(path.relative_to(root.parent).with_suffix("").parts)
    package = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module.removesuffix(".__init__")
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("distill"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            if base == "distill":  # from distill import records -> distill.records
                found.update(f"distill.{a.name}" for a in node.names)
            elif base.startswith("distill."):
                found.add(base)
    return found


def edges() -> set[tuple[str, str, str]]:
    """(importing group, imported group, file) for every cross-group import in the package."""
    out = set()
    for path in ROOT.rglob("*.py"):
        src = _group(".".join(path.relative_to(ROOT.parent).with_suffix("").parts))
        for target in _imports(path):
            dst = _group(target)
            if dst != src:
                out.add((src, dst, str(path.relative_to(ROOT.parent))))
    return out


def test_no_stage_imports_another_stage_or_the_pipeline():
    bad = sorted(f"{f}: {s} -> {d}" for s, d, f in edges()
                 if s in STAGES and (d in STAGES or d in ORCHESTRATION))
    assert not bad, "stages must depend on building blocks only:\n" + "\n".join(bad)


def test_building_blocks_import_no_stage():
    bad = sorted(f"{f}: {s} -> {d}" for s, d, f in edges()
                 if s not in STAGES | ORCHESTRATION and (d in STAGES or d in ORCHESTRATION))
    assert not bad, "a building block must not import a stage or the pipeline:\n" + "\n".join(bad)


def test_the_graph_reader_sees_function_level_and_relative_imports(tmp_path):
    """The reader is what the two tests above stand on: it must see the lazy imports this code base uses."""
    pkg = tmp_path / "distill" / "filter"
    pkg.mkdir(parents=True)
    (pkg / "x.py").write_text("def f():\n    from distill.evaluate.stage import run\n"
                              "    from ..finetune import train\n    from . import dedup\n"
                              "from distill import publish\n")
    assert _imports(pkg / "x.py", root=tmp_path / "distill") == {
        "distill.evaluate.stage", "distill.finetune", "distill.filter", "distill.publish"}
