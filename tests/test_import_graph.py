"""Stages depend on building blocks, never on each other: the package's import graph, read from the source.

A stage is one of the five verbs' packages; the pipeline and the CLI orchestrate them and may
import any of them. Everything else (verify, teacher, decode, offline, sources, render, metrics...)
is a building block no stage owns, so it imports neither a stage nor the pipeline. Function-level
imports count (this code base imports lazily to keep `distill --help` light): the graph comes from
distill.code_key, the reader the filter's cache key stands on, which has its own tests.
"""

from __future__ import annotations

from pathlib import Path

import distill
from distill.code_key import direct_imports

ROOT = Path(distill.__file__).parent
STAGES = {"generate", "filter", "finetune", "evaluate", "publish"}
ORCHESTRATION = {"pipeline", "cli", "__main__"}


def _group(module: str) -> str:
    """distill.filter.stage -> filter; distill.records -> records; distill -> distill."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def edges() -> set[tuple[str, str, str]]:
    """(importing group, imported group, importing module) for every import between groups."""
    out = set()
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        for target in direct_imports(module):
            if target != "distill" and _group(target) != _group(module):
                out.add((_group(module), _group(target), module))
    return out


def test_no_stage_imports_another_stage_or_the_pipeline():
    bad = sorted(f"{m}: {s} -> {d}" for s, d, m in edges() if s in STAGES and (d in STAGES or d in ORCHESTRATION))
    assert not bad, "stages must depend on building blocks only:\n" + "\n".join(bad)


def test_building_blocks_import_no_stage():
    bad = sorted(f"{m}: {s} -> {d}" for s, d, m in edges()
                 if s not in STAGES | ORCHESTRATION and (d in STAGES or d in ORCHESTRATION))
    assert not bad, "a building block must not import a stage or the pipeline:\n" + "\n".join(bad)


def test_the_graph_sees_function_level_imports():
    """If the reader lost the lazy imports, both tests above would pass on anything."""
    found = edges()
    assert ("decode", "student", "distill.decode.backends") in found  # only inside LocalBackend.load
    assert ("pipeline", "finetune", "distill.pipeline.config") in found
