"""The filter stage: read traces, measure them on all cores, ask the judge, decide, write outputs.

Usage:
    from distill.filter.stage import run
    kept = run(cfg)                      # kept.jsonl; rejected.jsonl, stats.json, plot beside it

Re-runs are incremental and give what one full run gives: per-trace results are cached by the
SHA of the trace line under a key of every per-trace option and a digest of the code that
measures and verifies (filter-cache/<key>.jsonl beside the output),
so only new lines are measured and judged; cross-trace decisions (duplicates, the per-problem
cap) are then recomputed over the whole file, and the outputs are rewritten atomically. When
an (id, sample) appears more than once (an error, then a success on a later generate run),
the last record wins (:func:`distill.artifacts.latest_per_pair`).
"""

from __future__ import annotations

import bisect
import hashlib
import json
import logging
import multiprocessing
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from distill import __version__
from distill.artifacts import latest_per_pair
from distill.layout import FilterFiles
from distill.config import save_resolved, to_dict
from distill.errors import InputError
from distill.filter import measure as measure_mod
from distill.code_key import closure_digest
from distill.filter.config import FilterConfig
from distill.filter.decontam import EvalIndex, build_index
from distill.filter.dedup import Candidate, select
from distill.filter.judge import ask_judge, is_audited, judge_key
from distill.filter.measure import init_worker, measure_chunk
from distill.paths import check_outputs
from distill.progress import progress_bar
from distill.records import JsonlAppender, file_sha256, read_jsonl

log = logging.getLogger(__name__)


def run(cfg: FilterConfig) -> Path:
    """Filter ``cfg.traces`` into kept/rejected files and a report; returns the kept file."""
    started = time.perf_counter()
    paths = _paths(cfg)
    if cfg.learnability.enabled:
        from distill.learnability.filtering import check_ready

        check_ready(cfg)
    index = build_index(cfg.decontam.problems, cfg.decontam.ngram, cfg.decontam.question_field) \
        if cfg.decontam.problems else None
    key = measure_key(cfg, index)
    cache_file = paths.cache / f"{key}.jsonl"
    cached = _load_cache(cache_file) if cfg.cache else {}
    lines, results, fresh = _measure_all(cfg, index, cached)
    winners, superseded = _last_per_sample(lines, results)
    if cfg.cache and fresh:
        with JsonlAppender(cache_file) as out:
            for line_hash, result in fresh.items():
                out.write({"h": line_hash, "r": result})
    judged = _run_judge(cfg, paths, lines, results, winners)
    decisions = _decide(cfg, lines, results, winners, judged)
    learnability = _select_learnable(cfg, paths, lines, winners, decisions) if cfg.learnability.enabled else None
    counts = _write_outputs(Path(cfg.traces), paths, lines, winners, decisions)
    elapsed = time.perf_counter() - started
    from distill.filter import report

    stats = report.build_stats(cfg, results, winners, decisions, judged, lines, superseded,
                               measured=len(fresh), elapsed=elapsed)
    stats.update(written=counts, inputs={"traces": str(cfg.traces)}, cache={"measure_key": key},
                 outputs={"kept": str(paths.kept), "sha256": file_sha256(paths.kept)})
    if learnability is not None:
        stats["learnability"] = learnability
    report.write(stats, paths.stats, paths.plot if cfg.plot else None, show=cfg.progress)
    save_resolved(cfg, paths.config)
    log.info("filter: kept %d of %d traces (%.1fs, %d measured now)", counts["kept"], len(winners), elapsed,
             len(fresh))
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


def measure_key(cfg: FilterConfig, index: EvalIndex | None) -> str:
    """Cache key of per-trace results: every per-trace option, the eval set, and the deciding code
    (every distill module the measure module can import, read from the source: distill.code_key)."""
    data = {"checks": to_dict(cfg.checks), "dedup": to_dict(cfg.dedup), "ngram": cfg.decontam.ngram,
            "min_overlap": cfg.decontam.min_overlap, "question_field": cfg.decontam.question_field,
            "eval": index.digest if index else None, "code": closure_digest(measure_mod.__name__),
            "distill": __version__}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def _load_cache(path: Path) -> dict[str, dict]:
    if not path.exists():
        return {}
    try:
        return {rec["h"]: rec["r"] for _, rec in read_jsonl(path) if "h" in rec and "r" in rec}
    except InputError as exc:  # a damaged cache only costs time
        log.warning("ignoring the filter cache (%s)", exc)
        return {}


# ---------------------------------------------------------------- measuring


class _Lines:
    """Where each trace line is: number, byte offset, hash, and whether it is a torn last line."""

    def __init__(self) -> None:
        self.number: list[int] = []
        self.offset: list[int] = []
        self.hash: list[str] = []
        self.torn_line: int | None = None


def _scan(path: Path, lines: _Lines, cached: dict, chunksize: int) -> Iterator[list[tuple[int, bytes]]]:
    """Record every line, and yield chunks of the ones not already cached."""
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InputError(f"cannot read traces ({exc.strerror})", path=path) from None
    chunk: list[tuple[int, bytes]] = []
    with handle:
        offset, line_no = 0, 0
        for raw in handle:
            line_no += 1
            start, offset = offset, offset + len(raw)
            if not raw.strip():
                continue
            line_hash = hashlib.blake2b(raw.rstrip(b"\r\n"), digest_size=12).hexdigest()
            lines.number.append(line_no)
            lines.offset.append(start)
            lines.hash.append(line_hash)
            if not raw.endswith(b"\n"):
                lines.torn_line = line_no
            if line_hash not in cached:
                chunk.append((line_no, raw))
                if len(chunk) >= chunksize:
                    yield chunk
                    chunk = []
    if chunk:
        yield chunk


def _measure_all(cfg: FilterConfig, index: EvalIndex | None, cached: dict):
    """Results for every line (cached or computed on all cores); raises on the first bad line."""
    path = Path(cfg.traces)
    if not path.is_file():
        raise InputError("traces file not found", path=path)
    lines = _Lines()
    computed: dict[int, dict] = {}
    bad: list[tuple] = []
    workers = cfg.workers or os.cpu_count() or 1
    chunks = _scan(path, lines, cached, cfg.chunksize)
    total = max(1, path.stat().st_size)
    with progress_bar(total=None, desc="filter", unit="trace", enabled=cfg.progress) as bar:
        for batch in _map(chunks, cfg, index, workers, total):
            for item in batch:
                if item[0] == "ok":
                    computed[item[1]] = item[2]
                elif item[1] != lines.torn_line:  # a torn last line is a writer still writing
                    bad.append(item)
            bar.update(len(batch))
    if bad:
        _, line_no, message, field = min(bad, key=lambda b: b[1])
        more = f" (and {len(bad) - 1} more bad lines)" if len(bad) > 1 else ""
        raise InputError(message + more, path=path, line=line_no, field=field)
    results: dict[int, dict] = {}
    fresh: dict[str, dict] = {}
    for line_no, line_hash in zip(lines.number, lines.hash):
        if line_no in computed:
            results[line_no] = fresh[line_hash] = computed[line_no]
        elif line_hash in cached:
            results[line_no] = cached[line_hash]
    return lines, results, fresh


def _map(chunks: Iterator, cfg: FilterConfig, index: EvalIndex | None, workers: int, size: int) -> Iterator:
    # Small inputs are not worth starting processes for (~50 ms each with fork).
    if workers <= 1 or size < 256 * 1024:
        init_worker(cfg, index)
        yield from map(measure_chunk, chunks)
        return
    measure_mod.import_verifier()  # forked workers inherit the imported verifier and sympy
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    ctx = multiprocessing.get_context(method)
    with ctx.Pool(workers, initializer=init_worker, initargs=(cfg, index)) as pool:
        yield from pool.imap(measure_chunk, chunks)  # ordered: output follows the file


def _last_per_sample(lines: _Lines, results: dict[int, dict]) -> tuple[dict[tuple, int], int]:
    """(id, sample) -> line number of its last record, and how many earlier records it replaced."""
    measured = ((n, results[n]) for n in lines.number if n in results)
    winners = latest_per_pair(measured, keep=lambda line, _result: line)
    return winners, len(results) - len(winners)


def _read_trace(path: Path, lines: _Lines, line_no: int) -> dict:
    i = bisect.bisect_left(lines.number, line_no)  # line numbers are ascending
    with path.open("rb") as handle:
        handle.seek(lines.offset[i])
        return json.loads(handle.readline())


# ---------------------------------------------------------------- judge


def _run_judge(cfg: FilterConfig, paths: FilterFiles, lines: _Lines, results: dict, winners: dict) -> dict[int, dict]:
    """line number -> {"judge": verdict, "audit": bool}; judged once, cached by line hash.

    The judge is the endpoint ``cfg.judge`` names (tests serve one on 127.0.0.1), never an injected client."""
    if not cfg.judge.enabled:
        return {}
    cache_file = paths.cache / f"judge-{judge_key(cfg.judge)}.jsonl"
    cached = _load_cache(cache_file) if cfg.cache else {}
    hash_of = dict(zip(lines.number, lines.hash))
    wanted = _judge_wanted(cfg, results, winners, hash_of)
    judged: dict[int, dict] = {}
    todo = []
    for line_no, audit in wanted:
        if hash_of[line_no] in cached:
            judged[line_no] = {"judge": cached[hash_of[line_no]], "audit": audit}
        else:
            todo.append((line_no, audit))
    if not todo:
        return judged
    from distill.teacher.client import TeacherClient

    client = TeacherClient(cfg.judge)
    traces_path = Path(cfg.traces)
    with progress_bar(total=len(todo), desc="judge", unit="req", enabled=cfg.progress) as bar:
        for start in range(0, len(todo), cfg.judge.batch):
            part = todo[start:start + cfg.judge.batch]
            verdicts = ask_judge(client, [_read_trace(traces_path, lines, n) for n, _ in part], cfg.judge)
            with JsonlAppender(cache_file) if cfg.cache else _NullWriter() as out:
                for (line_no, audit), verdict in zip(part, verdicts):
                    judged[line_no] = {"judge": verdict, "audit": audit}
                    if verdict.get("error") is None:  # failed requests are asked again next run
                        out.write({"h": hash_of[line_no], "r": verdict})
            bar.update(len(part))
    return judged


def _judge_wanted(cfg: FilterConfig, results: dict, winners: dict, hash_of: dict) -> list[tuple[int, bool]]:
    """(line, is_audit) for undecided traces that pass every other check, plus the audit sample."""
    wanted = []
    for line_no in winners.values():
        r = results[line_no]
        if r["flags"] or not r.get("has_content", True):
            continue  # the judge cannot rescue a trace another check drops: do not pay for it
        undecided = r["verdict"]["correct"] is None and r["verdict"]["reason"] not in ("error", "no_answer")
        audit = not undecided and r["verdict"]["correct"] is not None and \
            is_audited(hash_of[line_no], cfg.judge.audit_share, cfg.judge.audit_seed)
        if undecided or audit:
            wanted.append((line_no, audit))
    return wanted


class _NullWriter:
    def write(self, record: dict) -> None:
        pass

    def __enter__(self) -> _NullWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


# ---------------------------------------------------------------- decisions


def _decide(cfg: FilterConfig, lines: _Lines, results: dict, winners: dict, judged: dict) -> dict[int, dict]:
    """line number -> the verdict written with the trace (``reason`` None while it is kept)."""
    decisions: dict[int, dict] = {}
    by_problem: dict[str, list[Candidate]] = {}
    for (pid, sample), line_no in winners.items():
        r = results[line_no]
        verdict = _final_verdict(r, judged.get(line_no))
        reason, detail = _first_failure(cfg, r, verdict)
        verdict["drop"] = reason
        if detail:
            verdict["detail"] = detail
        decisions[line_no] = verdict
        if reason is None:
            by_problem.setdefault(pid, []).append(
                Candidate(line_no, sample, r["length"], r.get("digest"), r.get("sig")))
    pp, dd = cfg.per_problem, cfg.dedup
    policy = "all" if pp.policy == "learnable" else pp.policy  # the learnability step caps by score
    for pid, cands in by_problem.items():
        for line_no, reason in select(pid, cands, dd.exact, dd.near, dd.threshold, pp.max, policy,
                                      pp.seed).items():
            decisions[line_no]["drop"] = reason
    return decisions


def _select_learnable(cfg: FilterConfig, paths: FilterFiles, lines: _Lines, winners: dict, decisions: dict) -> dict:
    """Score the survivors by the student and apply the learnability selection (loads torch)."""
    from distill.learnability.filtering import score_and_select

    traces = Path(cfg.traces)
    return score_and_select(cfg, traces, paths.cache, dict(zip(lines.number, lines.hash)), winners, decisions,
                            lambda line_no: _read_trace(traces, lines, line_no))


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


def _write_outputs(traces: Path, paths: FilterFiles, lines: _Lines, winners: dict, decisions: dict) -> dict[str, int]:
    """Kept and rejected files, in traces order, replaced atomically (both or neither)."""
    keep_tmp = paths.kept.with_name(f".{paths.kept.name}.tmp")
    rej_tmp = paths.rejected.with_name(f".{paths.rejected.name}.tmp")
    keep_tmp.parent.mkdir(parents=True, exist_ok=True)
    rej_tmp.parent.mkdir(parents=True, exist_ok=True)
    wanted = set(winners.values())
    counts = {"kept": 0, "rejected": 0}
    with traces.open("rb") as src, keep_tmp.open("wb") as kept, rej_tmp.open("wb") as rejected:
        line_no = 0
        for raw in src:
            line_no += 1
            if line_no not in wanted:
                continue
            verdict = dict(decisions[line_no])
            drop = verdict.pop("drop")
            scores = verdict.pop("learnability", None)
            if drop is not None:
                verdict["reason"] = drop
            (rejected if drop else kept).write(_with_verdict(raw, verdict, scores))
            counts["rejected" if drop else "kept"] += 1
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
