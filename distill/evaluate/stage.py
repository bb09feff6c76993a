"""`distill eval` end to end: problems -> answers -> verdicts -> outputs.jsonl, report.json, a table.

Usage:
    from distill.evaluate.stage import run
    run(cfg)                       # cfg: EvalConfig; returns the eval folder
    run(cfg, backend=my_backend)   # tests and the pipeline may pass a loaded backend

Outputs are append-only and keyed by (problem id, sample): a re-run skips what is done and
retries failed samples. Each record carries ``eval_key``, a digest of what decides the answers
(model, adapter weights, sampling, prompt), so a changed setting never mixes into old results.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlparse

from distill.config import save_resolved, to_dict
from distill.errors import ConfigError, InputError
from distill.evaluate.backends import Answer, ApiBackend, Job, LocalBackend, VllmBackend
from distill.evaluate.basemodel import check_adapter_base
from distill.evaluate.config import EvalConfig
from distill.evaluate.metrics import chance_rates, compare_outputs, summarise, wilson_interval
from distill.progress import progress_bar, show_table
from distill.records import SCHEMA, JsonlAppender, file_sha256, read_jsonl, write_json_atomic

log = logging.getLogger(__name__)
OUTPUTS, REPORT = "outputs.jsonl", "report.json"


def run(cfg: EvalConfig, backend=None, problems: list[dict] | None = None) -> Path:
    """Score the model ``cfg`` names on its problems; compare when asked; return the eval folder."""
    _validate(cfg)
    cfg = _trained_prompt(cfg)
    if problems is None:
        from distill.sources import load_problems

        problems = load_problems(cfg)
    if not problems:
        raise InputError("no problems to evaluate", path=cfg.problems, field="problems")
    out = Path(cfg.out)
    save_resolved(cfg, out / "config.yaml")
    before_dir: Path | None = Path(cfg.compare) if cfg.compare else None
    if cfg.compare_base:
        backend = backend or _load_backend(cfg, adapter=None)
        before_dir = out / "base"
        evaluate(cfg, problems, backend, before_dir, adapter=None)
        backend.apply_adapter(cfg.adapter)
    else:
        backend = backend or _load_backend(cfg, adapter=cfg.adapter)
    report = evaluate(cfg, problems, backend, out, adapter=cfg.adapter, compare_to=before_dir)
    _show(report)
    return out


def _validate(cfg: EvalConfig) -> None:
    if not cfg.problems:
        raise ConfigError("problems= is required (a file, a Hub dataset, or rg:<task>)")
    if cfg.backend == "api":
        if cfg.adapter:
            raise ConfigError("backend=api scores the endpoint as served; adapter= is for local/vllm")
        return
    if not cfg.student:
        raise ConfigError(f"backend={cfg.backend} needs student= (alias, Hub name, folder or .gguf)")
    if cfg.adapter:
        check_adapter_base(cfg.adapter, cfg.student)
    if cfg.compare and cfg.compare_base:
        raise ConfigError("give compare= (a previous eval) or compare_base=true, not both")


def _trained_prompt(cfg: EvalConfig) -> EvalConfig:
    """Prompt an adapter the way it was trained: its run record's system prompt unless one is given."""
    record = Path(cfg.adapter) / "distill.json" if cfg.adapter else None
    if cfg.system_prompt is not None or record is None or not record.is_file():
        return cfg
    try:
        system = (json.loads(record.read_text()).get("hyperparameters") or {}).get("system_prompt")
    except (OSError, json.JSONDecodeError, AttributeError):
        return cfg
    if system:
        log.info("system prompt from %s (as finetuned)", record)
        return dataclasses.replace(cfg, system_prompt=system)
    return cfg


def _load_backend(cfg: EvalConfig, adapter: str | None):
    if cfg.backend == "api":
        return ApiBackend(cfg)
    if cfg.backend == "vllm":
        return VllmBackend.load(cfg, adapter)
    return LocalBackend.load(cfg, adapter)


def eval_key(cfg: EvalConfig, adapter: str | None) -> str:
    """Digest of everything that decides the answers (not the problems: those are keyed by id)."""
    adapter_hash = None
    if adapter:
        weights = sorted(Path(adapter).glob("adapter_model.*"))
        adapter_hash = file_sha256(weights[0]) if weights else str(Path(adapter).resolve())
    what = {"backend": cfg.backend, "student": cfg.student, "adapter": adapter_hash,
            "max_new_tokens": cfg.max_new_tokens, "temperature": cfg.temperature,
            "top_p": cfg.top_p if cfg.temperature > 0 else None, "seed": cfg.sampling_seed,
            "prompt": cfg.prompt_template, "system": cfg.system_prompt}
    if cfg.backend == "api":
        what.update(model=cfg.api.model, base_url=cfg.api.base_url, api_t=cfg.api.temperature,
                    api_max=cfg.api.max_tokens)
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]


def evaluate(cfg: EvalConfig, problems: list[dict], backend, folder: Path, adapter: str | None,
             compare_to: Path | None = None) -> dict:
    """Generate what is missing in ``folder``, score it, write report.json; return the report."""
    folder.mkdir(parents=True, exist_ok=True)
    key = eval_key(cfg, adapter)
    done = _done(folder / OUTPUTS, key)
    jobs = [Job(p, s, cfg.prompt_template.format(question=p["question"]))
            for p in problems for s in range(cfg.samples) if (p["id"], s) not in done]
    if cfg.samples > 1 and cfg.temperature == 0 and cfg.backend != "api":
        log.warning("samples=%d with temperature=0 (greedy) draws the same answer each time", cfg.samples)
    log.info("eval %s: %d problems x %d samples, %d to generate", folder, len(problems), cfg.samples, len(jobs))
    started = time.perf_counter()
    tokens = 0
    with JsonlAppender(folder / OUTPUTS) as sink, \
            progress_bar(len(jobs), f"eval {folder.name}", "answer", cfg.progress) as bar:
        def on_result(job: Job, answer: Answer) -> None:
            nonlocal tokens
            sink.write(score(job, answer, key, cfg, _source(job.problem, cfg)))
            tokens += answer.completion_tokens
            bar.update(1)

        if jobs:
            backend.run(jobs, on_result)
    seconds = time.perf_counter() - started
    ids = {p["id"] for p in problems}
    records = [r for r in _latest(folder / OUTPUTS, key).values() if r["id"] in ids and r["sample"] < cfg.samples]
    _add_soundness(records, {p["id"]: p for p in problems})
    report = _report(cfg, adapter, records, key, {
        "generated": len(jobs), "seconds": round(seconds, 3), "completion_tokens": tokens,
        "tokens_per_s": round(tokens / seconds, 2) if jobs and seconds else None,
        "problems_per_min": round(len(jobs) / cfg.samples / seconds * 60, 2) if jobs and seconds else None})
    _add_chance(report["metrics"], cfg, problems)
    if compare_to is not None:
        report["compare"] = compare_with(compare_to, records, cfg)
    write_json_atomic(folder / REPORT, report)
    return report


def score(job: Job, answer: Answer, key: str, cfg: EvalConfig, source: str) -> dict:
    """One outputs.jsonl record: the problem, what the model said, and the verifier's verdict."""
    from distill.verify import check

    p = job.problem
    verdict = {"correct": None, "extracted": None, "reason": "error"}
    if not answer.error:
        options = p.get("options") if p["kind"] == "choice" else None
        v = check(answer.content or "", p["answer"], p["kind"], **({"options": options} if options else {}))
        verdict = {"correct": v.correct, "extracted": v.extracted, "reason": v.reason}
        if answer.truncated and v.correct is not True and v.extracted is None:
            verdict["reason"] = "truncated"
    verdict.update(_soundness(verdict["correct"], answer.reasoning, answer.content, p))
    return {"schema": SCHEMA, "eval_key": key, "id": p["id"], "sample": job.sample, "source": source,
            "family": p.get("family"),
            "kind": p["kind"], "question": p["question"], "gold": p["answer"], "prompt": job.user,
            "response": answer.response, "reasoning": answer.reasoning, "content": answer.content,
            **verdict, "truncated": answer.truncated, "finish_reason": answer.finish_reason,
            "completion_tokens": answer.completion_tokens, "reasoning_tokens": answer.reasoning_tokens,
            "latency_s": round(answer.latency_s, 4), "cost_usd": answer.cost_usd, "error": answer.error,
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def _soundness(correct: bool | None, reasoning: str | None, content: str | None, problem: dict) -> dict:
    """``sound`` (correct and no false step in the model's own reasoning) and the false steps found."""
    from distill.soundness import false_steps

    text = "\n".join(t for t in (reasoning, content) if t)
    steps = false_steps(text, problem) if correct is not None else []
    return {"sound": None if correct is None else bool(correct) and not steps, "false_steps": steps}


def _add_soundness(records: list[dict], problems: dict[str, dict]) -> None:
    """Score soundness on records written before it existed (resumed folders), from their own text."""
    for rec in records:
        if "sound" not in rec and not rec.get("error") and rec["id"] in problems:
            rec.setdefault("family", problems[rec["id"]].get("family"))
            rec.update(_soundness(rec.get("correct"), rec.get("reasoning"), rec.get("content"), problems[rec["id"]]))


def _add_chance(metrics: dict, cfg: EvalConfig, problems: list[dict]) -> None:
    """metrics.by_family.<family>.chance: always giving the family's most common training answer."""
    if not metrics.get("by_family"):
        return
    if cfg.chance_problems:
        from distill.sources import load_problems

        train = load_problems(dataclasses.replace(cfg, problems=cfg.chance_problems, limit=None))
    elif any(p.get("source") == "distill-offline" for p in problems):
        from distill.teacher.offline import default_train_problems

        train = default_train_problems()
    else:
        return
    for family, chance in chance_rates(problems, train).items():
        if family in metrics["by_family"]:
            metrics["by_family"][family]["chance"] = chance


def _source(problem: dict, cfg: EvalConfig) -> str:
    return str(problem.get("source") or problem.get("dataset") or Path(str(cfg.problems)).name)


def _done(path: Path, key: str) -> set[tuple[str, int]]:
    """(id, sample) pairs already answered under this eval key; refuse a folder of another eval."""
    done: set[tuple[str, int]] = set()
    if not path.exists():
        return done
    for line, rec in read_jsonl(path):
        if rec.get("eval_key") != key:
            raise ConfigError(f"{path}:{line} holds answers of a different eval (model, adapter, sampling or "
                              "prompt changed); use another out= or delete the folder")
        if not rec.get("error"):
            done.add((rec["id"], rec["sample"]))
    return done


def _latest(path: Path, key: str) -> dict[tuple[str, int], dict]:
    """The record that counts per (id, sample): a success beats an earlier failure."""
    latest: dict[tuple[str, int], dict] = {}
    if not path.exists():
        return latest
    for _, rec in read_jsonl(path):
        k = (rec["id"], rec["sample"])
        if rec.get("eval_key") == key and (k not in latest or latest[k].get("error")):
            latest[k] = rec
    return latest


def _report(cfg: EvalConfig, adapter: str | None, records: list[dict], key: str, run_stats: dict) -> dict:
    model = {"backend": cfg.backend, "student": cfg.student, "adapter": adapter}
    if cfg.backend == "api":
        urls = cfg.api.base_url if isinstance(cfg.api.base_url, list) else [cfg.api.base_url]
        model = {"backend": "api", "model": cfg.api.model, "endpoint_host": urlparse(urls[0]).hostname}
    settings = {k: v for k, v in to_dict(cfg).items() if k in (
        "problems", "hf_config", "split", "limit", "samples", "max_new_tokens", "temperature", "top_p",
        "sampling_seed", "prompt_template", "system_prompt")}
    cost = sum(r.get("cost_usd") or 0 for r in records)
    return {"schema": SCHEMA, "eval_key": key, "model": model, "settings": settings,
            "metrics": summarise(records, cfg.confidence), "cost_usd": round(cost, 6) if cost else None,
            "run": run_stats, "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def compare_with(before_dir: Path, after_records: list[dict], cfg: EvalConfig) -> dict:
    """Before/after on the problems both evals scored, with a paired bootstrap interval."""
    path = before_dir / OUTPUTS
    if not path.is_file():
        raise InputError("no outputs.jsonl here: compare= needs a previous eval folder", path=before_dir,
                         field="compare")
    before = _latest_any(path)
    for rec in before:  # a before folder from an older distill has no soundness yet
        if "sound" not in rec and not rec.get("error"):
            rec.update(_soundness(rec.get("correct"), rec.get("reasoning"), rec.get("content"), rec))
    result = compare_outputs(before, after_records, cfg.confidence, cfg.bootstrap)
    sound = compare_outputs(before, after_records, cfg.confidence, cfg.bootstrap, field="sound")
    result["sound"] = {k: sound[k] for k in ("before", "after", "difference", "interval", "improved", "regressed")}
    if not result["paired_problems"]:
        raise InputError("the two evals share no problem ids: nothing to compare", path=before_dir, field="compare")
    n = result["paired_problems"]
    for side in ("before", "after"):
        lo, hi = wilson_interval(result[side] * n, n, cfg.confidence)
        result[f"{side}_interval"] = {"low": lo, "high": hi, "method": "wilson", "confidence": cfg.confidence}
    report = before_dir / REPORT
    result["before_dir"] = str(before_dir)
    before_report = json.loads(report.read_text()) if report.is_file() else {}
    result["before_model"] = before_report.get("model")
    result["by_family_before"] = (before_report.get("metrics") or {}).get("by_family")
    return result


def _latest_any(path: Path) -> list[dict]:
    latest: dict[tuple[str, int], dict] = {}
    for _, rec in read_jsonl(path):
        k = (rec["id"], rec["sample"])
        if k not in latest or latest[k].get("error"):
            latest[k] = rec
    return list(latest.values())


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _show(report: dict) -> None:
    m = report["metrics"]
    ci = m["pass@1_interval"]
    rows = [("problems", m["problems"]), ("samples", m["samples"]),
            ("pass@1", f"{_pct(m['pass@1'])}  [{_pct(ci['low'])}, {_pct(ci['high'])}] (Wilson)")]
    ci = m["sound_interval"]
    rows.append(("sound (correct, no false step)", f"{_pct(m['sound'])}  [{_pct(ci['low'])}, {_pct(ci['high'])}]"))
    rows += [(k, _pct(v)) for k, v in m["pass@k"].items() if k != "pass@1"]
    rows += [("with a final answer", _pct(m["answered"])), ("truncated", _pct(m["truncated"])),
             ("mean reasoning tokens", f"{m['mean_reasoning_tokens']:.1f}")]
    if m["errors"]:
        rows.append(("failed requests (retried next run)", m["errors"]))
    if len(m["by_source"]) > 1 or len(m["by_kind"]) > 1:
        rows += [(f"  source {k}", f"{_pct(v['pass@1'])} of {v['problems']}") for k, v in m["by_source"].items()]
        rows += [(f"  kind {k}", f"{_pct(v['pass@1'])} of {v['problems']}") for k, v in m["by_kind"].items()]
    for name, f in m.get("by_family", {}).items():
        chance = f" (chance {_pct(f['chance']['pass@1'])})" if f.get("chance") else ""
        rows.append((f"  family {name}", f"pass@1 {_pct(f['pass@1'])}{chance}, sound {_pct(f['sound'])} "
                                         f"of {f['problems']}"))
    run = report["run"]
    if run.get("tokens_per_s"):
        rows.append(("throughput", f"{run['tokens_per_s']} tok/s, {run['problems_per_min']} problems/min"))
    show_table("eval", rows)
    c = report.get("compare")
    if c:
        ci = c["interval"]
        show_table(f"before/after on {c['paired_problems']} paired problems", [
            ("pass@1", _pct(c["before"]), _pct(c["after"]),
             f"{100 * c['difference']:+.1f} pts [{100 * ci['low']:+.1f}, {100 * ci['high']:+.1f}]"),
            ("sound", _pct(c["sound"]["before"]), _pct(c["sound"]["after"]),
             f"{100 * c['sound']['difference']:+.1f} pts [{100 * c['sound']['interval']['low']:+.1f}, "
             f"{100 * c['sound']['interval']['high']:+.1f}]"),
            ("improved / regressed problems", "", "", f"{c['improved']} / {c['regressed']}"),
        ], header=("metric", "before", "after", f"difference ({int(100 * ci['confidence'])}% paired bootstrap CI)"))
