"""`distill eval` end to end: problems -> answers -> verdicts -> outputs.jsonl, report.json, a table.

Usage:
    from distill.evaluate.stage import run
    run(cfg)                       # cfg: EvalConfig; returns the eval folder
    run(cfg, backend=loaded)       # a model already loaded (LocalBackend.load(cfg)): reused, not reloaded

The model is the stage's edge, as the teacher client is generate's: a caller that scores one loaded
model several times (bench/eval_throughput.py) passes it instead of paying the load each time.

Outputs are append-only and keyed by (problem id, sample): a re-run skips what is done and
retries failed samples; the last record of a pair counts. An adapter is prompted exactly as it
was trained: the user template, system prompt and chat template its distill.json records. Each record carries ``eval_key``, a digest of what decides the answers
(model, adapter weights, sampling, prompt), so a changed setting never mixes into old results.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlparse

from distill.artifacts import AdapterRecord, EvalReport, Problem, read_latest
from distill.layout import EvalFiles
from distill.config import save_resolved, to_dict
from distill.errors import ConfigError, InputError, SamplesFailed
from distill.adapters import check_adapter_base
from distill.decode.backends import Answer, ApiBackend, Job, LocalBackend, VllmBackend
from distill.evaluate.answers import Answers
from distill.evaluate.config import EvalConfig
from distill.estimates import chance_rates, compare_outputs, summarise, wilson_interval
from distill.metrics import Metrics, accuracy_specs, metric_rows
from distill.render import DEFAULT_PROMPT
from distill.scoring import score, soundness
from distill.paths import check_outputs
from distill.progress import progress_bar, show_table
from distill.records import JsonlAppender, file_sha256

log = logging.getLogger(__name__)


def run(cfg: EvalConfig, backend: LocalBackend | VllmBackend | ApiBackend | None = None) -> Path:
    """Score the model ``cfg`` names on its problems; compare when asked; return the eval folder."""
    cfg = as_trained(cfg)
    _validate(cfg)
    problems, source = _load_problems(cfg)
    if next(iter(problems), None) is None:
        raise InputError("no problems to evaluate", path=cfg.problems, field="problems")
    out = Path(cfg.out)
    Answers(EvalFiles(out).outputs, eval_key(cfg, cfg.adapter))  # a folder of another eval, or a bad line: before writing
    save_resolved(cfg, EvalFiles(out).config)
    before_dir: Path | None = Path(cfg.compare) if cfg.compare else None
    if cfg.compare_base:
        backend = backend or _load_backend(cfg, adapter=None)
        before_dir = EvalFiles(out).base.folder
        base_report = evaluate(cfg, problems, backend, before_dir, adapter=None)
        _add_benchmark(cfg, base_report, before_dir, source, problems)
        backend.apply_adapter(cfg.adapter)
    else:
        backend = backend or _load_backend(cfg, adapter=cfg.adapter)
    report = evaluate(cfg, problems, backend, out, adapter=cfg.adapter, compare_to=before_dir)
    _add_benchmark(cfg, report, out, source, problems)
    _show(report)
    failed = report.metrics.errors
    if failed:
        raise SamplesFailed(f"{failed} of {report.metrics.samples + failed} answers failed "
                            f"({_failure_kinds(EvalFiles(out).outputs, report.eval_key)}); the report leaves them out "
                            "and a re-run retries them")
    return out


class _Reread:
    """problems= read again at each pass: a million problems are never held as a list."""

    def __init__(self, cfg: EvalConfig):
        self.cfg = cfg

    def __iter__(self) -> Iterator[Problem]:
        from distill.sources import iter_problems

        return iter_problems(self.cfg)


def _load_problems(cfg: EvalConfig) -> tuple[Iterable[Problem], dict | None]:
    """The problems ``cfg`` names: a benchmark's from the Hub (with where they came from, a list), else
    problems= (read again at each pass)."""
    if cfg.benchmark:
        from distill.benchmarks import parse_dates, protocol_for
        from distill.benchmarks.hub import load_benchmark

        dates = parse_dates(cfg.benchmark_dates) if cfg.benchmark_dates else None
        return load_benchmark(protocol_for(cfg.benchmark), cfg.limit, dates)
    return _Reread(cfg), None


def _add_benchmark(cfg: EvalConfig, report: EvalReport, folder: Path, source: dict | None,
                   problems: Iterable[Problem]) -> None:
    """A benchmark eval's report also holds its protocol, overrides and provenance (distill.benchmarks.report)."""
    if not cfg.benchmark:
        return
    from distill.benchmarks.report import attach

    records = list(Answers(EvalFiles(folder).outputs, report.eval_key).latest(problems, cfg.samples))  # (hundreds)
    attach(report.settings, cfg, source, records, folder)
    report.write(EvalFiles(folder).report)


def _failure_kinds(path: Path, key: str) -> str:
    kinds: dict[str, int] = {}
    for rec in Answers(path, key).latest():
        error = rec.get("error")
        if error:
            kind = str(error.get("type") if isinstance(error, dict) else error)[:40]
            kinds[kind] = kinds.get(kind, 0) + 1
    return ", ".join(f"{k} x{n}" for k, n in sorted(kinds.items(), key=lambda kv: -kv[1]))


def _eval_files(out: str | Path) -> tuple[str, ...]:
    """The names an eval folder holds (what out= may already contain)."""
    files = EvalFiles(Path(out))
    return tuple(p.name for p in (files.outputs, files.report, files.config, files.base.folder))


def _validate(cfg: EvalConfig) -> None:
    if not cfg.problems and not cfg.benchmark:
        raise ConfigError("problems= is required (a file, a Hub dataset, or rg:<task>), or benchmark=")
    if cfg.compare and not EvalFiles(Path(cfg.compare)).outputs.is_file():
        raise InputError("no outputs.jsonl here: compare= needs a previous eval folder", path=cfg.compare,
                         field="compare")
    check_outputs("eval", inputs={"problems": cfg.problems, "adapter": cfg.adapter, "student": cfg.student,
                                  "compare": cfg.compare},
                  outputs={"out": cfg.out}, folders={"out": _eval_files(cfg.out)})
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


def as_trained(cfg: EvalConfig) -> EvalConfig:
    """``cfg`` with the prompt settled: what it says, else what the adapter was trained with, else defaults.

    The adapter's record (:class:`distill.artifacts.AdapterRecord`) names the student, user template
    and system prompt it was trained with; a prompt given here that differs is used, with a warning.
    """
    template, system, student = cfg.prompt_template, cfg.system_prompt, cfg.student
    if cfg.adapter and AdapterRecord.exists(cfg.adapter):
        record = AdapterRecord.read(cfg.adapter)
        for name, given, trained in (("prompt_template", template, record.prompt_template),
                                     ("system_prompt", system, record.system_prompt)):
            if given is not None and trained is not None and given != trained:
                log.warning("%s=%r differs from the one %s was trained with (%r)", name, given, cfg.adapter, trained)
        if template is None and record.prompt_template is None:
            log.warning("%s does not record its training prompt; using the default template", cfg.adapter)
        template = template if template is not None else record.prompt_template
        system = system if system is not None else record.system_prompt
        student = student if student is not None or cfg.backend == "api" else record.student
    elif cfg.adapter:
        log.warning("%s has no %s: prompting with the given or default template", cfg.adapter, AdapterRecord.FILE)
    return dataclasses.replace(cfg, prompt_template=template or DEFAULT_PROMPT, system_prompt=system,
                               student=student)


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
    else:  # bf16 changes greedy answers: a folder resumed on a machine without it must not mix the two
        from distill.hardware import use_bf16

        what["dtype"] = cfg.dtype if cfg.dtype != "auto" else ("bfloat16" if use_bf16("auto") else "model")
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]


def evaluate(cfg: EvalConfig, problems: Iterable[Problem], backend, folder: Path, adapter: str | None,
             compare_to: Path | None = None) -> EvalReport:
    """Generate what is missing in ``folder``, score it, write report.json; return the report.

    Streams: ``problems`` is read once to count what is left and once to send it, answers are
    appended as they come, and the report is one more pass over outputs.jsonl; what is held is a
    hash per answer and a short tally per problem (distill.estimates.summarise)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = EvalFiles(folder)
    key = eval_key(cfg, adapter)
    answers = Answers(files.outputs, key)
    n_problems = pending = 0
    for problem in problems:
        n_problems += 1
        pending += sum(not answers.is_done(problem["id"], s) for s in range(cfg.samples))
    jobs = (Job(p, s, cfg.prompt_template.format(question=p["question"]))
            for p in problems for s in range(cfg.samples) if not answers.is_done(p["id"], s))
    if cfg.samples > 1 and cfg.temperature == 0 and cfg.backend != "api":
        log.warning("samples=%d with temperature=0 (greedy) draws the same answer each time", cfg.samples)
    log.info("eval %s: %d problems x %d samples, %d to generate", folder, n_problems, cfg.samples, pending)
    started = time.perf_counter()
    tokens = 0
    with JsonlAppender(files.outputs) as sink, \
            progress_bar(pending, f"eval {folder.name}", "answer", cfg.progress) as bar:
        def on_result(job: Job, answer: Answer) -> None:
            nonlocal tokens
            sink.write(_small_gold(score(job, answer, key, _source(job.problem, cfg))))
            tokens += answer.completion_tokens
            bar.update(1)

        if pending:
            backend.run(jobs, on_result)
    seconds = time.perf_counter() - started
    records = Answers(files.outputs, key).latest(problems, cfg.samples)
    report = _report(cfg, adapter, records, key, {
        "generated": pending, "seconds": round(seconds, 3), "completion_tokens": tokens,
        "tokens_per_s": round(tokens / seconds, 2) if pending and seconds else None,
        "problems_per_min": round(pending / cfg.samples / seconds * 60, 2) if pending and seconds else None})
    m = report.metrics
    if m.errors and not m.samples:  # a report over no answers would read as a score
        raise SamplesFailed(f"eval {folder}: all {m.errors} answers failed "
                            f"({_failure_kinds(files.outputs, key)}); no report written, a re-run retries them")
    _add_chance(report.metrics, cfg, problems)
    if compare_to is not None:
        report.compare = compare_with(compare_to, records, cfg)
    report.write(files.report)
    return report


GOLD_KEPT = 64 << 10  # a code problem's gold is its tests: LiveCodeBench's can be MBs, written once per sample


def _small_gold(record: dict) -> dict:
    """``record`` with a gold over GOLD_KEPT characters replaced by its sha256 and size (nothing reads it back)."""
    gold = record.get("gold")
    if isinstance(gold, str) and len(gold) > GOLD_KEPT:
        record["gold"] = {"sha256": hashlib.sha256(gold.encode()).hexdigest(), "chars": len(gold)}
    return record


def _add_chance(metrics: Metrics, cfg: EvalConfig, problems: list[dict]) -> None:
    """metrics.by_family[family].chance: always giving the family's most common training answer."""
    if not metrics.by_family:
        return
    if cfg.chance_problems:
        from distill.sources import load_problems

        train = load_problems(dataclasses.replace(cfg, problems=cfg.chance_problems, limit=None))
    elif any(p.get("source") == "distill-offline" for p in problems):
        from distill.offline.sets import default_train_problems

        train = default_train_problems()
    else:
        return
    for family, chance in chance_rates(problems, train).items():
        if family in metrics.by_family:
            metrics.by_family[family].chance = chance


def _source(problem: dict, cfg: EvalConfig) -> str:
    return str(problem.get("source") or problem.get("dataset") or Path(str(cfg.problems)).name)


def _report(cfg: EvalConfig, adapter: str | None, records: Iterable[dict], key: str, run_stats: dict) -> EvalReport:
    model = {"backend": cfg.backend, "student": cfg.student, "adapter": adapter}
    if cfg.backend == "api":
        urls = cfg.api.base_url if isinstance(cfg.api.base_url, list) else [cfg.api.base_url]
        model = {"backend": "api", "model": cfg.api.model, "endpoint_host": urlparse(urls[0]).hostname}
    settings = {k: v for k, v in to_dict(cfg).items() if k in (
        "problems", "hf_config", "split", "limit", "samples", "max_new_tokens", "temperature", "top_p",
        "sampling_seed", "prompt_template", "system_prompt", "benchmark")}
    cost = [0]

    def costing(records: Iterable[dict]) -> Iterator[dict]:  # the same pass sums the cost
        for rec in records:
            cost[0] += rec.get("cost_usd") or 0
            yield rec

    metrics = summarise(costing(records), cfg.confidence)
    return EvalReport(eval_key=key, model=model, settings=settings, metrics=metrics,
                      cost_usd=round(cost[0], 6) if cost[0] else None, run=run_stats,
                      created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))


def compare_with(before_dir: Path, after_records: Iterable[dict], cfg: EvalConfig) -> dict:
    """Before/after on the problems both evals scored, with a paired bootstrap interval."""
    files = EvalFiles(before_dir)
    if not files.outputs.is_file():
        raise InputError("no outputs.jsonl here: compare= needs a previous eval folder", path=before_dir,
                         field="compare")
    before = list(read_latest(files.outputs).values())
    for rec in before:  # a before folder from an older distill has no soundness yet
        if "sound" not in rec and not rec.get("error"):
            rec.update(soundness(rec.get("correct"), rec.get("reasoning"), rec.get("content"), rec))
    result = compare_outputs(before, after_records, cfg.confidence, cfg.bootstrap)
    for _name, spec in accuracy_specs()[1:]:  # pass@1 is the comparison's top level; each other accuracy nests
        other = compare_outputs(before, after_records, cfg.confidence, cfg.bootstrap, field=spec.sample_field)
        result[spec.key] = {k: other[k] for k in ("before", "after", "difference", "interval", "improved", "regressed")}
    if not result["paired_problems"]:
        raise InputError("the two evals share no problem ids: nothing to compare", path=before_dir, field="compare")
    n = result["paired_problems"]
    for side in ("before", "after"):
        lo, hi = wilson_interval(result[side] * n, n, cfg.confidence)
        result[f"{side}_interval"] = {"low": lo, "high": hi, "method": "wilson", "confidence": cfg.confidence}
    result["before_dir"] = str(before_dir)
    before_report = EvalReport.read(files.report) if files.report.is_file() else None
    result["before_model"] = before_report.model if before_report else None
    result["by_family_before"] = before_report.metrics.to_dict()["by_family"] if before_report else None
    return result


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _show(report: EvalReport) -> None:
    """The eval's metrics on the console, a row per metric of the record; breakdowns by source and kind
    only when there is more than one."""
    rows: list[tuple[str, str]] = []
    metrics = metric_rows(report.metrics)
    groups = {s: len({r.group for r in metrics if r.section == s}) for s in {r.section for r in metrics}}
    for r in metrics:
        if r.group is None:
            rows.append((r.label, r.text(interval=r.section == "accuracy")))
        elif r.section == "family" or groups[r.section] > 1:
            chance = f" (chance {_pct(r.chance)})" if r.chance is not None else ""
            rows.append((f"  {r.section} {r.group} {r.label}", f"{r.text()}{chance} of {r.problems}"))
    run = report.run
    if run.get("tokens_per_s"):
        rows.append(("throughput", f"{run['tokens_per_s']} tok/s, {run['problems_per_min']} problems/min"))
    show_table("eval", rows)
    c = report.compare
    if c:
        ci = c["interval"]
        # pass@1's comparison is the mapping itself; each further accuracy sits under its key ("sound")
        paired = [("pass@1", c)] + [(s.key, c[s.key]) for _, s in accuracy_specs()[1:]
                                    if isinstance(c.get(s.key), dict)]
        show_table(f"before/after on {c['paired_problems']} paired problems", [
            *[(name, _pct(p["before"]), _pct(p["after"]),
               f"{100 * p['difference']:+.1f} pts [{100 * p['interval']['low']:+.1f}, {100 * p['interval']['high']:+.1f}]")
              for name, p in paired],
            ("improved / regressed problems", "", "", f"{c['improved']} / {c['regressed']}"),
        ], header=("metric", "before", "after", f"difference ({int(100 * ci['confidence'])}% paired bootstrap CI)"))
