"""The pipeline's plan: configs complete before they are keyed, every round and arm from one plan, names from
RunLayout, typed loop and ablation records, and no import cycle through distill.pipeline."""

from __future__ import annotations

import ast
import copy
import json
from pathlib import Path

import pytest

from distill.artifacts import AblationReport, LoopSummary
from distill.errors import ConfigError, DistillError, InputError
from distill.layout import RunLayout
from distill.pipeline.config import load_pipeline
from distill.pipeline.state import Ledger
from distill.pipeline.steps import run_step, step_key
from distill.pipeline.wiring import materialize_sources, plan, plan_arm, plan_pick_arm

SMALL = ["generate.problems=offline:train?n=3", "eval.problems=offline:eval?n=3", "student=/models/s"]


def _plan(run_dir: Path, *overrides: str, number: int = 1):
    cfg = materialize_sources(load_pipeline(None, [*SMALL, *overrides]), run_dir)
    return {step.name: step for step in plan(cfg, run_dir, number)}


def test_a_config_changed_after_it_was_planned_is_refused_before_anything_runs(tmp_path):
    run_dir = tmp_path / "run"
    gen = _plan(run_dir, "stages=[generate]")["generate"]
    gen.cfg.temperature = 0.1  # what the runner's teacher hook used to do to base_url, model and provider
    with pytest.raises(DistillError, match=r"generate: its config changed after it was planned and keyed \(temperature\)"):
        run_step(gen)
    assert Ledger(run_dir).read("generate") is None and not RunLayout(run_dir).traces.exists()


def test_the_built_in_teacher_is_resolved_when_planned_and_its_port_never_enters_the_step(tmp_path):
    cfg = load_pipeline(None, [*SMALL, "stages=[generate]"])
    gen = _plan(tmp_path / "run", "stages=[generate]")["generate"]
    assert (gen.cfg.model, gen.cfg.provider, gen.cfg.api_key_env) == (cfg.offline_teacher.model, "offline", None)
    planned = copy.deepcopy(gen.cfg)
    assert not run_step(gen).reused
    assert gen.cfg == planned  # generate got the teacher's free port on its own copy
    assert Ledger(gen.root).read("generate")["key"] == step_key(gen)
    traces = [json.loads(line) for line in RunLayout(gen.root).traces.read_text().splitlines()]
    assert len(traces) == 3 and {t["model"] for t in traces} == {cfg.offline_teacher.model}
    assert run_step(gen).reused


@pytest.mark.parametrize("restart", ["base", "continue"])
def test_a_star_round_is_planned_by_the_same_plan_in_its_own_folder(tmp_path, restart):
    run_dir = (tmp_path / "run").resolve()
    layout, rl = RunLayout(run_dir), RunLayout(run_dir).round(2)
    layout.adapter.folder.mkdir(parents=True)
    (layout.adapter.folder / "adapter_model.safetensors").write_bytes(b"round one")
    steps = _plan(run_dir, "loop.rounds=2", "loop.temperature=0.7", f"loop.restart={restart}", number=2)
    assert list(steps) == ["generate", "filter", "finetune", "eval-after"]  # no eval-before, guard or publish
    assert {step.root for step in steps.values()} == {rl.root}  # its own ledger, in round-2/
    gen, ft, ev = steps["generate"].cfg, steps["finetune"].cfg, steps["eval-after"].cfg
    assert (gen.out, gen.model, gen.temperature, gen.provider) == (str(rl.traces), "student-round-1", 0.7, "offline")
    assert steps["generate"].serve is not None  # round 1's student is served when generate runs
    assert (ft.data, ft.out) == (str(rl.train_union), str(rl.adapter.folder))
    assert ft.init_adapter == (str(layout.adapter.folder) if restart == "continue" else None)
    assert ("init_adapter" in steps["finetune"].inputs) is (restart == "continue")
    assert (ev.adapter, ev.compare, ev.out) == (str(rl.adapter.folder), None, str(rl.eval_after.folder))
    # Round 1's adapter bytes name round 2's samples: retrained, they are other samples.
    before = step_key(steps["generate"])
    (layout.adapter.folder / "adapter_model.safetensors").write_bytes(b"round one, retrained")
    assert step_key(_plan(run_dir, "loop.rounds=2", "loop.temperature=0.7", number=2)["generate"]) != before


def test_an_ablation_arm_is_a_finetune_and_an_eval_step_in_its_folder(tmp_path):
    run_dir = (tmp_path / "run").resolve()
    cfg = materialize_sources(load_pipeline(None, [*SMALL, "ablate=[unfiltered]"]), run_dir)
    arm = RunLayout(run_dir).ablation.arm("unfiltered")
    data = RunLayout(run_dir).ablation.data("unfiltered")
    train, scored = plan_arm(cfg, run_dir, "unfiltered", data, "{content}")
    assert (train.root, scored.root) == (arm.root, arm.root)
    assert (train.cfg.data, train.cfg.out, train.cfg.reasoning_format) == (str(data), str(arm.adapter.folder), "{content}")
    assert (train.cfg.max_steps, train.cfg.lora.r) == (cfg.finetune.max_steps, cfg.finetune.lora.r)  # the same budget
    assert (scored.cfg.adapter, scored.cfg.out) == (str(arm.adapter.folder), str(arm.eval.folder))
    assert scored.inputs["adapter"] == arm.adapter.folder


def test_a_pick_arm_filters_the_runs_traces_again_with_its_own_policy(tmp_path):
    run_dir = (tmp_path / "run").resolve()
    own = ["filter.per_problem.max=1", "filter.per_problem.policy=learnable", "filter.learnability.enabled=true"]
    cfg = materialize_sources(load_pipeline(None, [*SMALL, *own, "ablate=[pick_shortest]"]), run_dir)
    arm = RunLayout(run_dir).ablation.arm("pick_shortest")
    pick, train, scored = plan_pick_arm(cfg, run_dir, "pick_shortest")
    assert (pick.root, pick.cfg.traces, pick.cfg.out) == (arm.root, str(RunLayout(run_dir).traces), str(arm.kept))
    assert (pick.cfg.per_problem.policy, pick.cfg.per_problem.max) == ("shortest", 1)
    assert not pick.cfg.learnability.enabled  # shortest reads no score: nothing is scored
    assert (train.cfg.data, train.cfg.max_steps, scored.cfg.adapter) == (str(arm.kept), 80, str(arm.adapter.folder))
    mine = materialize_sources(load_pipeline(None, [*SMALL, "filter.per_problem.max=1", "ablate=[pick_learnable]"]),
                               run_dir)
    learnable, *_ = plan_pick_arm(mine, run_dir, "pick_learnable")  # scored for the run's student
    assert learnable.cfg.learnability.enabled and learnable.cfg.learnability.student == "/models/s"
    with pytest.raises(ConfigError, match="needs filter.per_problem.max"):
        load_pipeline(None, [*SMALL, "ablate=[pick_random]"])
    with pytest.raises(ConfigError, match="the run's own per_problem.policy"):
        load_pipeline(None, [*SMALL, *own, "ablate=[pick_learnable]"])


@pytest.mark.parametrize("record, path", [(LoopSummary, "loop.json"), (AblationReport, "ablation/report.json")])
def test_loop_and_ablation_records_of_another_version_are_refused(tmp_path, record, path):
    file = tmp_path / path
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(json.dumps({"schema": 2, "rounds": [], "best_round": None, "adapter": None}))
    with pytest.raises(InputError, match="schema version 2"):
        record.read(file)


def test_the_report_reads_loop_json_through_its_record(tmp_path):
    from distill.pipeline.loop_report import loop_blocks

    layout = RunLayout(tmp_path)
    LoopSummary(rounds=[], best_round=None, adapter=None, restart="base", generator="student").write(layout.loop_summary)
    assert ("h2", "Rounds") in loop_blocks(tmp_path)
    layout.loop_summary.write_text(json.dumps({"schema": 2, "rounds": []}))
    with pytest.raises(InputError, match="loop summary of schema version 2"):
        loop_blocks(tmp_path)


def test_no_import_cycle_runs_through_the_pipeline():
    """Lazy imports count: a cycle hidden inside functions still ties two modules together."""
    package = Path(__file__).resolve().parent.parent / "distill"
    modules = {_module_name(p, package): p for p in package.rglob("*.py")}
    graph = {name: _imports(path, modules) for name, path in modules.items()}
    for start in (name for name in graph if name.startswith("distill.pipeline")):
        cycle = _path_back(graph, start)
        assert cycle is None, " -> ".join(cycle)


def _module_name(path: Path, package: Path) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                      for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return {name for name in found if name in modules}


def _path_back(graph: dict[str, set[str]], start: str) -> list[str] | None:
    """A chain of imports from ``start`` back to itself, or None."""
    stack, seen = [(start, [start])], set()
    while stack:
        name, chain = stack.pop()
        for nxt in graph[name] - {name}:
            if nxt == start:
                return [*chain, start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, [*chain, nxt]))
    return None


def test_a_benchmark_eval_is_the_held_out_set_the_filter_decontaminates_against(tmp_path, monkeypatch):
    """eval.benchmark with no problems file: its questions are written to the run folder and decontaminated."""
    from distill.benchmarks import hub

    problems = [{"id": "m1", "question": "What is the sum of the first ten primes?", "answer": "129", "kind": "math"}]
    monkeypatch.setattr(hub, "load_benchmark", lambda protocol, limit=None, dates=None: (problems, {}))
    run_dir = tmp_path / "run"
    cfg = materialize_sources(load_pipeline(None, [*SMALL, "eval.benchmark=math500", "eval.problems=null"]), run_dir)
    [held_out] = [Path(p) for p in cfg.filter.decontam.problems]
    assert held_out.parent == RunLayout(run_dir).problems_dir
    assert json.loads(held_out.read_text())["question"] == problems[0]["question"]
    flt = {s.name: s for s in plan(cfg, run_dir)}["filter"]
    assert flt.cfg.decontam.problems == [str(held_out)] and flt.inputs["decontam_0"] == held_out.resolve()


def test_the_filter_runs_again_when_the_held_out_set_it_decontaminates_against_grows(tmp_path):
    held_out = tmp_path / "eval.jsonl"
    row = {"id": "e1", "question": "What is 6 * 7?", "answer": "42", "kind": "math"}
    held_out.write_text(json.dumps(row) + "\n")
    run_dir = tmp_path / "run"
    before = step_key(_plan(run_dir, f"eval.problems={held_out}")["filter"])
    held_out.write_text(held_out.read_text() + json.dumps({**row, "id": "e2", "question": "What is 5 * 9?"}) + "\n")
    assert step_key(_plan(run_dir, f"eval.problems={held_out}")["filter"]) != before


def test_publish_runs_again_when_the_guard_result_it_gates_on_changes(tmp_path):
    run_dir = tmp_path / "run"
    guard = RunLayout(run_dir).guard_after.report
    guard.parent.mkdir(parents=True)
    guard.write_text('{"schema": 1}')
    options = ("guard_problems=offline:dev?n=3", "publish.repo_id=me/adapter",
               "stages=[generate,filter,finetune,eval,publish]")
    before = step_key(_plan(run_dir, *options)["publish"])
    guard.write_text('{"schema": 1, "changed": true}')
    assert step_key(_plan(run_dir, *options)["publish"]) != before


def test_the_training_clock_is_keyed_only_when_a_time_budget_uses_it(tmp_path):
    run_dir = tmp_path / "run"
    keys = {(budget, clock): step_key(_plan(run_dir, *budget, f"finetune.train_clock={clock}")["finetune"])
            for budget in [(), ("finetune.max_train_seconds=60",)] for clock in ("wall", "cpu")}
    assert keys[(), "wall"] == keys[(), "cpu"]  # no budget: the clock changes nothing, the SFT step is reused
    assert keys[("finetune.max_train_seconds=60",), "wall"] != keys[("finetune.max_train_seconds=60",), "cpu"]
