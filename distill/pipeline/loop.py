"""The STaR loop of `distill run`: round after round the previous student samples, the verifier keeps, a LoRA trains.

Usage:
    distill run recipes/star-offline.yaml                 # loop: {rounds: 3, generator: student, patience: 1}
    left_failed = run_loop(cfg, layout, round1_steps)     # called by the runner after round 1

Round 1 is the ordinary pipeline in the run folder (teacher traces). Round r >= 2 lives in
``round-<r>/`` (a :class:`~distill.artifacts.RunLayout` of its own, with its own ledger) and runs
four steps through the runner's reuse rule: generate (sampling at ``loop.temperature`` from the
round r-1 student: with ``loop.generator=student`` behind a loopback OpenAI-compatible server,
:mod:`distill.pipeline.student_teacher`; with ``endpoint`` from the user's server after it loaded
round r-1's adapter, :mod:`distill.pipeline.lora_endpoint`; generate's until_correct / rationalize
options apply, and rationalization is the *student* with the hint, as in STaR: the teacher already
had its chance in round 1), filter (the same checks), finetune (on ``train.jsonl``, the union of
every round's kept traces so far: a fresh LoRA from the base model with ``loop.restart=base``,
STaR's restart; round r-1's adapter as the trainable start with ``restart=continue``, its bytes in
the key) and eval on the held-out set. A step whose key is unchanged is reused, so killing the loop
and running the same command again repeats nothing finished. The loop stops after ``loop.rounds``
or when held-out accuracy has not risen for ``loop.patience`` rounds; ``loop.json`` names the best
round, whose adapter is the run's adapter.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

from distill.artifacts import EvalReport, FilterStats, is_failed, read_latest
from distill.layout import RunLayout
from distill.metrics import metric_rows
from distill.pipeline.config import PipelineConfig
from distill.pipeline.lora_endpoint import adapter_name
from distill.pipeline.state import Ledger, content_hash
from distill.pipeline.wiring import Step
from distill.records import read_jsonl, write_json_atomic, write_text_atomic

log = logging.getLogger(__name__)

__all__ = ["run_loop", "round_rows", "LOOP_FILE"]
LOOP_FILE = "loop.json"


def round_layout(root: Path, number: int) -> RunLayout:
    """Round 1 is the run folder itself; round r >= 2 is ``round-<r>/`` inside it."""
    return RunLayout(root if number == 1 else root / f"round-{number}")


def run_loop(cfg: PipelineConfig, layout: RunLayout, first: list[Step]) -> list[str]:
    """Rounds 2..``loop.rounds`` after round 1's ``first`` steps; writes loop.json; returns failed-sample notes."""
    from distill.pipeline.runner import run_step

    by_section = {step.name: step for step in first}
    left_failed: list[str] = []
    for number in range(2, cfg.loop.rounds + 1):
        if _should_stop(layout.root, number - 1, cfg.loop.patience):
            log.info("loop: held-out accuracy has not risen for %d round(s); stopping before round %d",
                     cfg.loop.patience, number)
            break
        log.info("")
        log.info("━━ loop: round %d of %d %s", number, cfg.loop.rounds, "━" * 40)
        rl = round_layout(layout.root, number)
        rl.root.mkdir(parents=True, exist_ok=True)
        ledger = Ledger(rl.root)
        previous = round_layout(layout.root, number - 1).adapter.folder
        for step in _round_steps(cfg, layout.root, number, by_section, previous):
            if step.section == "finetune":
                _write_union(layout.root, number)
            with contextlib.ExitStack() as servers:
                failed = run_step(step, rl.root, ledger,
                                  start=lambda s: _start_generator(s, cfg, layout.root, previous, servers))
            if failed:
                left_failed.append(f"round-{number}/{step.name}: {failed} samples failed")
    write_summary(layout.root, cfg.loop.rounds, {"restart": cfg.loop.restart, "generator": cfg.loop.generator})
    return left_failed


def _round_steps(cfg: PipelineConfig, root: Path, number: int, first: dict[str, Step], previous: Path) -> list[Step]:
    """Round ``number``'s generate/filter/finetune/eval steps: round 1's configs with this round's paths."""
    rl = round_layout(root, number)
    gen0, flt0, ft0, ev0 = first["generate"], first["filter"], first["finetune"], first["eval-after"]
    digest = content_hash(previous)
    if cfg.loop.generator == "endpoint":  # the user's server, asked for the adapter by its content-named name
        name = adapter_name(number - 1, digest)
        where = dict(model=name, base_url=cfg.loop.base_url, api_key_env=cfg.loop.api_key_env,
                     provider=cfg.loop.lora_api)
        if cfg.loop.lora_api == "sglang":  # SGLang picks the adapter by lora_path; a bare model name is the base
            where["extra_body"] = {**gen0.cfg.extra_body, "lora_path": name}
    else:
        where = dict(model=f"student-round-{number - 1}", provider="offline", api_key_env=None)
    gen = dataclasses.replace(gen0.cfg, out=str(rl.traces), temperature=cfg.loop.temperature, top_p=cfg.loop.top_p,
                              max_tokens=cfg.loop.max_new_tokens or gen0.cfg.max_tokens,
                              max_cost_usd=None, dry_run=False, **where)
    # The previous adapter's bytes are part of generate's config: a retrained round r-1 means new samples.
    extra = {"generator": cfg.loop.generator, "student_adapter": digest}
    if cfg.loop.generator == "student":
        extra["teacher"] = "offline"  # its endpoint is a per-run loopback port: left out of the key
    flt = dataclasses.replace(flt0.cfg, traces=str(rl.traces), out=str(rl.kept), rejected=None, stats=None)
    union = rl.root / "train.jsonl"
    # restart=continue: the previous round's adapter is the trainable start, and its bytes (a
    # finetune input) are in the key, so a retrained round r-1 retrains round r.
    start = str(previous) if cfg.loop.restart == "continue" else ft0.cfg.init_adapter
    ft = dataclasses.replace(ft0.cfg, data=str(union), out=str(rl.adapter.folder), resume=True, init_adapter=start)
    ft_inputs = {"data": union, "student": ft0.inputs.get("student"),
                 **({"init_adapter": Path(start).resolve()} if start else {})}
    ev = dataclasses.replace(ev0.cfg, out=str(rl.eval_after.folder), adapter=str(rl.adapter.folder), compare=None)
    return [
        Step("generate", "generate", gen, rl.traces, [rl.traces, rl.generate_config],
             inputs={"problems": gen0.inputs.get("problems")}, extra_key=extra),
        Step("filter", "filter", flt, rl.kept, [rl.kept, rl.filter.rejected, rl.filter.stats],
             inputs={"traces": rl.traces}),
        Step("finetune", "finetune", ft, rl.adapter.folder, [rl.adapter.folder],
             inputs=ft_inputs),
        Step("eval-after", "eval", ev, rl.eval_after.folder, [rl.eval_after.folder],
             inputs={"problems": ev0.inputs.get("problems"), "student": ev0.inputs.get("student"),
                     "adapter": rl.adapter.folder}),
    ]


def _start_generator(step: Step, cfg: PipelineConfig, root: Path, adapter: Path,
                     servers: contextlib.ExitStack) -> None:
    """Before a round's generate runs (never when reused): serve the previous round's student, or have
    the user's endpoint load its adapter."""
    if step.section != "generate":
        return
    if cfg.loop.generator == "endpoint":
        from distill.pipeline.lora_endpoint import LoraEndpoint

        seen_as = Path(cfg.loop.server_run_dir) / adapter.relative_to(root) if cfg.loop.server_run_dir else adapter
        LoraEndpoint.from_loop(cfg.loop).load(step.cfg.model, str(seen_as))
        return
    from distill.pipeline.student_teacher import student_teacher

    sampling = dataclasses.replace(cfg.eval, adapter=str(adapter), temperature=cfg.loop.temperature,
                                   top_p=cfg.loop.top_p, max_new_tokens=step.cfg.max_tokens, samples=1)
    step.cfg.base_url = servers.enter_context(student_teacher(sampling, str(adapter), model=step.cfg.model))


def _write_union(root: Path, number: int) -> Path:
    """``round-<n>/train.jsonl``: every round's kept traces so far, each tagged with its round (rewritten
    only when it changes, so an unchanged union keeps finetune's key)."""
    lines = []
    for r in range(1, number + 1):
        kept = round_layout(root, r).kept
        if kept.exists():
            lines += [json.dumps({**rec, "round": r}, ensure_ascii=False) + "\n" for _, rec in read_jsonl(kept)]
    path = round_layout(root, number).root / "train.jsonl"
    text = "".join(lines)
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        write_text_atomic(path, text)
    return path


def _accuracy(root: Path, number: int) -> float | None:
    report = round_layout(root, number).eval_after.report
    return EvalReport.read(report).pass_at_1 if report.exists() else None


def _should_stop(root: Path, last: int, patience: int) -> bool:
    """True when the best accuracy of rounds 1..last was reached ``patience`` or more rounds ago."""
    scores = [_accuracy(root, r) for r in range(1, last + 1)]
    known = [(s, r) for r, s in enumerate(scores, 1) if s is not None]
    if not known:
        return False
    best_round = max(known, key=lambda sr: (sr[0], -sr[1]))[1]
    return last - best_round >= patience


def round_rows(root: Path, rounds: int) -> list[dict[str, Any]]:
    """Per finished round: traces drawn / kept / rationalized, new problems solved, held-out accuracy."""
    rows, solved = [], set()
    for number in range(1, rounds + 1):
        rl = round_layout(root, number)
        if not rl.traces.exists():
            break
        drawn = read_latest(rl.traces, keep=lambda _line, rec: not is_failed(rec))
        kept = [rec for _, rec in read_jsonl(rl.kept)] if rl.kept.exists() else []
        ids = {str(rec["id"]) for rec in kept}
        row: dict[str, Any] = {
            "round": number, "drawn": sum(drawn.values()), "kept": len(kept),
            "rationalized": sum(1 for rec in kept if rec.get("rationalized")),
            "problems_solved": len(ids), "new_problems_solved": len(ids - solved),
            "kept_share": FilterStats.read(rl.filter.stats).kept_share if rl.filter.stats.exists() else None,
            "adapter": str(rl.adapter.folder.relative_to(root)) if rl.adapter.folder.exists() else None,
        }
        solved |= ids
        if rl.eval_after.report.exists():
            scores = {r.key: r.after for r in metric_rows(EvalReport.read(rl.eval_after.report).metrics,
                                                           sections=("accuracy",))}
            head = scores["pass@1"]
            row.update(accuracy=head.value, low=head.low, high=head.high,
                       scores={k: {"value": s.value, "low": s.low, "high": s.high} for k, s in scores.items()})
        rows.append(row)
    return rows


def write_summary(root: Path, rounds: int, how: dict[str, str] | None = None) -> Path:
    """loop.json: the per-round rows, the best round (its adapter is the run's adapter) and ``how`` the
    rounds were made (restart, generator), so the report says what it shows."""
    rows = round_rows(root, rounds)
    scored = [row for row in rows if row.get("accuracy") is not None]
    best = max(scored, key=lambda row: (row["accuracy"], -row["round"])) if scored else None
    summary = {"schema": 1, "rounds": rows, "best_round": best["round"] if best else None,
               "adapter": best["adapter"] if best else None, **(how or {})}
    path = root / LOOP_FILE
    write_json_atomic(path, summary)
    if best:
        log.info("loop: best round %d (held-out pass@1 %.1f%%): the run's adapter is %s",
                 best["round"], 100 * best["accuracy"], best["adapter"])
    return path
