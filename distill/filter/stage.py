"""The filter stage: read traces, measure them on all cores, ask the judge, decide, write outputs.

Usage:
    from distill.filter.stage import run
    kept = run(cfg)                      # kept.jsonl; rejected.jsonl, stats.json, plot beside it

Re-runs are incremental and give what one full run gives: per-trace results are cached by the
SHA of the trace line under a key of every per-trace option and a digest of the code that
measures and verifies (filter-cache/<key>.sqlite beside the output),
so only new lines are measured and judged; cross-trace decisions (duplicates, the per-problem
cap) are then recomputed over the whole file, and the outputs are rewritten atomically. When
an (id, sample) appears more than once (an error, then a success on a later generate run),
the last record wins, as :func:`distill.artifacts.latest_per_pair` decides it.

Memory does not grow with the file: per-trace results, the winners and the decisions live in a
scratch sqlite file (:mod:`distill.filter.store`); the stage holds one block of lines while
measuring and one problem's traces while deciding (dedup and the per-problem cap need no more).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distill import __version__
from distill.layout import FilterFiles
from distill.config import save_resolved, to_dict
from distill.filter import measure as measure_mod
from distill.code_key import closure_digest
from distill.filter.config import FilterConfig
from distill.filter.decontam import EvalIndex, build_index
from distill.filter.dedup import Candidate, select
from distill.filter.judge import ask_judge, is_audited, judge_key
from distill.filter.scan import measure_all
from distill.filter.store import ResultCache, RunStore
from distill.paths import check_outputs
from distill.progress import progress_bar
from distill.records import file_sha256

if TYPE_CHECKING:  # the client (openai) loads only when the judge is asked
    from distill.teacher.client import TeacherClient

log = logging.getLogger(__name__)


def run(cfg: FilterConfig) -> Path:
    """Filter ``cfg.traces`` into kept/rejected files and a report; returns the kept file."""
    started = time.perf_counter()
    paths = _paths(cfg)
    student = None
    if cfg.learnability.enabled:
        from distill.learnability.filtering import check_ready

        student = check_ready(cfg)  # resolved once: scoring reuses its tokenizer and key
    index = build_index(cfg.decontam.problems, cfg.decontam.ngram, cfg.decontam.question_field) \
        if cfg.decontam.problems else None
    key = measure_key(cfg, index)
    new_folder = _first_missing(paths.cache)
    cache = ResultCache(paths.cache / f"{key}.sqlite" if cfg.cache else None)
    try:
        with RunStore.create(paths.cache) as store:
            measure_all(cfg, index, cache, store)
            unique, superseded = store.mark_winners()
            counts = store.counts()
            judged = _run_judge(cfg, paths, store)
            _decide(cfg, store, judged)
            learnability = _select_learnable(cfg, paths, store, student) if cfg.learnability.enabled else None
            tally = _tally(store)
            written = _write_outputs(Path(cfg.traces), paths, store)
    except BaseException:
        cache.close()
        if new_folder is not None:  # a refused input leaves no folder behind (a kept cache is still valid)
            shutil.rmtree(new_folder, ignore_errors=True)
        raise
    cache.close()
    if not cfg.cache and not any(paths.cache.iterdir()):
        paths.cache.rmdir()  # cache=false leaves no cache folder
    elapsed = time.perf_counter() - started
    from distill.filter import report

    stats = report.build_stats(cfg, tally, judged, lines=counts["lines"], superseded=superseded,
                               measured=counts["measured"], from_cache=counts["results"] - counts["measured"],
                               elapsed=elapsed)
    stats.update(written=written, inputs={"traces": str(cfg.traces)}, cache={"measure_key": key},
                 outputs={"kept": str(paths.kept), "sha256": file_sha256(paths.kept)})
    if learnability is not None:
        stats["learnability"] = learnability
    report.write(stats, paths.stats, paths.plot if cfg.plot else None, show=cfg.progress)
    save_resolved(cfg, paths.config)
    log.info("filter: kept %d of %d traces (%.1fs, %d measured now)", written["kept"], unique, elapsed,
             counts["measured"])
    return paths.kept


# ---------------------------------------------------------------- paths and cache


def _paths(cfg: FilterConfig) -> FilterFiles:
    out = Path(cfg.out)
    files = FilterFiles.beside(out, cfg.rejected, cfg.stats)
    written = {"out": files.kept, "rejected": files.rejected, "stats": files.stats, "config": files.config,
               "cache": files.cache, **({"plot": files.plot} if cfg.plot else {})}
    check_outputs("filter", inputs={"traces": cfg.traces, "decontam.problems": list(cfg.decontam.problems),
                                    "checks.tokenizer": cfg.checks.tokenizer},
                  outputs=written, folders={"cache": None})
    return files


def _first_missing(folder: Path) -> Path | None:
    """The outermost folder of ``folder``'s path that does not exist yet (None when it exists)."""
    missing = None
    for path in (folder, *folder.parents):
        if path.exists():
            return missing
        missing = path
    return missing


def measure_key(cfg: FilterConfig, index: EvalIndex | None) -> str:
    """Cache key of per-trace results: every per-trace option, the eval set, and the deciding code
    (every distill module the measure module can import, read from the source: distill.code_key)."""
    data = {"checks": to_dict(cfg.checks), "dedup": to_dict(cfg.dedup), "ngram": cfg.decontam.ngram,
            "min_overlap": cfg.decontam.min_overlap, "question_field": cfg.decontam.question_field,
            "eval": index.digest if index else None, **measuring_environment(cfg)}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def measuring_environment(cfg: FilterConfig) -> dict[str, Any]:
    """The code and library versions that measure a trace (part of the cache key). Ray workers
    report theirs, and a run whose workers differ from this process stops (distill.filter.on_ray)."""
    return {"code": closure_digest(measure_mod.__name__), "distill": __version__,
            "libraries": _verdict_libraries(cfg)}


def _verdict_libraries(cfg: FilterConfig) -> dict[str, str | None]:
    """Versions of the third-party code that decides verdicts: sympy judges equivalence, the tokenizer counts."""
    from importlib.metadata import PackageNotFoundError, version

    names = ["sympy"] + (["transformers", "tokenizers"] if cfg.checks.tokenizer else [])
    found: dict[str, str | None] = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def _read_trace(path: Path, store: RunStore, line_no: int) -> dict:
    with path.open("rb") as handle:
        handle.seek(store.offset(line_no))
        return json.loads(handle.readline())


# ---------------------------------------------------------------- judge


def _run_judge(cfg: FilterConfig, paths: FilterFiles, store: RunStore) -> dict[int, dict]:
    """line number -> {"judge": verdict, "audit": bool, "rule": rule correct}; judged once, cached by line hash.
    The judge is the endpoint ``cfg.judge`` names (tests serve one on 127.0.0.1), never an injected client.

    Held in memory: one entry per trace the judge was asked about (each a paid request)."""
    if not cfg.judge.enabled:
        return {}
    cache = ResultCache(paths.cache / f"judge-{judge_key(cfg.judge)}.sqlite" if cfg.cache else None)
    try:
        judged, todo = _judge_cached(cfg, store, cache)
        if todo:
            from distill.teacher.client import TeacherClient

            _ask(cfg, store, cache, TeacherClient(cfg.judge), judged, todo)
    finally:
        cache.close()
    return judged


def _judge_cached(cfg: FilterConfig, store: RunStore, cache: ResultCache) -> tuple[dict, list]:
    """Verdicts the cache holds, and the (line, hash, audit, rule) still to ask, in line order."""
    judged: dict[int, dict] = {}
    todo: list[tuple[int, str, bool, Any]] = []
    wanted: list[tuple[int, str, bool, Any]] = []

    def settle() -> None:
        found = cache.get_many([h for _, h, _, _ in wanted])
        for line_no, line_hash, audit, rule in wanted:
            if line_hash in found:
                judged[line_no] = {"judge": found[line_hash], "audit": audit, "rule": rule}
            else:
                todo.append((line_no, line_hash, audit, rule))
        wanted.clear()

    for line_no, line_hash, r in store.winners():
        audit = _judge_wanted(cfg, r, line_hash)
        if audit is not None:
            wanted.append((line_no, line_hash, audit, r["verdict"]["correct"]))
            if len(wanted) >= 500:
                settle()
    settle()
    return judged, todo


def _ask(cfg: FilterConfig, store: RunStore, cache: ResultCache, client: TeacherClient, judged: dict,
         todo: list) -> None:
    traces_path = Path(cfg.traces)
    with progress_bar(total=len(todo), desc="judge", unit="req", enabled=cfg.progress) as bar:
        for start in range(0, len(todo), cfg.judge.batch):
            part = todo[start:start + cfg.judge.batch]
            verdicts = ask_judge(client, [_read_trace(traces_path, store, n) for n, *_ in part], cfg.judge)
            for (line_no, _, audit, rule), verdict in zip(part, verdicts):
                judged[line_no] = {"judge": verdict, "audit": audit, "rule": rule}
            # failed requests are asked again next run
            cache.put_many((h, v) for (_, h, _, _), v in zip(part, verdicts) if v.get("error") is None)
            bar.update(len(part))


def _judge_wanted(cfg: FilterConfig, r: dict, line_hash: str) -> bool | None:
    """None when the judge is not asked; else whether it is an audit (a rule-decided trace sampled)
    rather than an undecided trace that passes every other check."""
    if r["flags"] or not r.get("has_content", True):
        return None  # the judge cannot rescue a trace another check drops: do not pay for it
    undecided = r["verdict"]["correct"] is None and r["verdict"]["reason"] not in ("error", "no_answer")
    audit = not undecided and r["verdict"]["correct"] is not None and \
        is_audited(line_hash, cfg.judge.audit_share, cfg.judge.audit_seed)
    return audit if undecided or audit else None


# ---------------------------------------------------------------- decisions


def _decide(cfg: FilterConfig, store: RunStore, judged: dict) -> None:
    """Decide each problem's traces (the per-trace checks, then dedup and the per-problem cap) and
    store the verdict written with each trace (``drop`` None while kept)."""
    pp, dd = cfg.per_problem, cfg.dedup
    policy = "all" if pp.policy == "learnable" else pp.policy  # the learnability step caps by score
    for pid, rows in store.problems():
        decisions: dict[int, dict] = {}
        cands: list[Candidate] = []
        for line_no, _, r in rows:
            verdict = _final_verdict(r, judged.get(line_no))
            reason, detail = _first_failure(cfg, r, verdict)
            verdict["drop"] = reason
            if detail:
                verdict["detail"] = detail
            decisions[line_no] = verdict
            if reason is None:
                cands.append(Candidate(line_no, r["sample"], r["length"], r.get("digest"), r.get("sig")))
        if cands:
            for line_no, reason in select(pid, cands, dd.exact, dd.near, dd.threshold, pp.max, policy,
                                          pp.seed).items():
                decisions[line_no]["drop"] = reason
        store.add_decisions(list(decisions.items()))


def _select_learnable(cfg: FilterConfig, paths: FilterFiles, store: RunStore, student: Any = None) -> dict:
    """Score the survivors by the student and apply the learnability selection (loads torch); ``student``:
    what :func:`check_ready` identified, so the tokenizer is read once.

    Holds the survivors' decisions in memory: each is scored by a forward pass of the student anyway."""
    from distill.learnability.filtering import score_and_select

    traces = Path(cfg.traces)
    hashes, winners, decisions = {}, {}, {}
    for line, line_hash, pid, sample, decision in store.survivors():
        hashes[line], winners[(pid, sample)], decisions[line] = line_hash, line, decision
    stats = score_and_select(cfg, traces, paths.cache, hashes, winners, decisions,
                             lambda line_no: _read_trace(traces, store, line_no), student)
    store.replace_decisions(list(decisions.items()))
    return stats


def _tally(store: RunStore) -> Any:
    """The report's counts, one problem at a time, from the stored decisions."""
    from distill.filter.report import Tally

    tally = Tally()
    for _, rows in store.decided_problems():
        for line_no, r, decision in rows:
            tally.add(line_no, r, decision)
        tally.end_problem()
    return tally


def _final_verdict(r: dict, judged: dict | None) -> dict:
    rule = dict(r["verdict"])
    verdict = dict(rule, by="rule")
    if judged is None:
        return verdict
    judge = judged["judge"]
    verdict["judge"] = judge
    if judged["audit"]:
        verdict["audit"] = True
    elif judge.get("correct") is not None:  # the judge decides only what the rule could not
        verdict.update(correct=judge["correct"], reason="correct" if judge["correct"] else "wrong_answer",
                       by="judge", rule=rule)
    return verdict


def _first_failure(cfg: FilterConfig, r: dict, verdict: dict) -> tuple[str | None, Any]:
    if r["flags"]:
        return r["flags"][0][0], {name: detail for name, detail in r["flags"]}
    checks = cfg.checks
    correct = verdict["correct"]
    if correct is False and checks.answer:
        return verdict["reason"], None
    if verdict["reason"] in ("no_answer", "empty"):  # nothing stated to train on, even with checks.answer off
        return verdict["reason"], None
    if correct is None and checks.answer and not checks.keep_undecided:
        return (verdict["reason"] if verdict["reason"] != "correct" else "undecided"), None
    steps = r.get("bad_steps") or []
    if checks.bad_step and len(steps) > checks.max_bad_steps:
        return "bad_step", steps
    if checks.sound and r.get("unsound_steps"):
        return "unsound_step", r["unsound_steps"]
    return None, None


# ---------------------------------------------------------------- writing


def _write_outputs(traces: Path, paths: FilterFiles, store: RunStore) -> dict[str, int]:
    """Kept and rejected files, in traces order, replaced atomically (both or neither)."""
    keep_tmp = paths.kept.with_name(f".{paths.kept.name}.tmp")
    rej_tmp = paths.rejected.with_name(f".{paths.rejected.name}.tmp")
    keep_tmp.parent.mkdir(parents=True, exist_ok=True)
    rej_tmp.parent.mkdir(parents=True, exist_ok=True)
    counts = {"kept": 0, "rejected": 0}
    decisions = store.decisions()  # in line order, like the file
    want, verdict = next(decisions, (None, None))
    with traces.open("rb") as src, keep_tmp.open("wb") as kept, rej_tmp.open("wb") as rejected:
        for line_no, raw in enumerate(src, 1):
            if line_no != want:
                continue
            drop = verdict.pop("drop")
            scores = verdict.pop("learnability", None)
            if drop is not None:
                verdict["reason"] = drop
            (rejected if drop else kept).write(_with_verdict(raw, verdict, scores))
            counts["rejected" if drop else "kept"] += 1
            want, verdict = next(decisions, (None, None))
    keep_tmp.replace(paths.kept)
    rej_tmp.replace(paths.rejected)
    return counts


def _with_verdict(raw: bytes, verdict: dict, scores: dict | None = None) -> bytes:
    """The trace line with ``verdict`` (and learnability ``scores``) added, the trace's own bytes untouched."""
    body = raw.rstrip()
    tail = json.dumps(verdict, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    if b'"verdict"' in body or scores is not None:  # re-filtering a filtered file: replace the old verdict properly
        record = json.loads(body)
        record["verdict"] = verdict
        if scores is not None:
            record["learnability"] = scores
        return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"
    return body[:-1] + b',"verdict":' + tail + b"}\n"
