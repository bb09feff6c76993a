"""`distill generate`: ask a teacher for one trace per (problem id, sample), append-only and resumable.

Usage:
    from distill.generate.stage import run
    run(load_config(GenerateConfig, None, ["problems=rg:basic_arithmetic", "limit=50",
                                           "base_url=http://127.0.0.1:8765/v1", "model=m"]))
    run(cfg, client=TeacherClient(cfg, prices={"input": 0.55, "output": 2.19}))   # the caller's client; run closes it

Flow: check the options and that ``out=`` is writable and no input -> take the output's lock
(a second process fails at once) -> read what the output already holds
(:mod:`distill.generate.resume`), refusing traces of another teacher or sampling -> validate
every problem (a streaming pass: bad input fails before anything is sent or written) -> save the
resolved config beside the output -> workers pull (problem, sample) pairs from a bounded queue
fed by a second streaming pass, call the teacher and append one record each. Memory holds the
keys of finished pairs, never the records. Stops gracefully (in-flight requests finish and are
written) on Ctrl-C, on ``max_cost_usd`` (when the next request alone could pass it), and on a
401/402 from the teacher; samples left failed end the run with :class:`SamplesFailed` (exit 5).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from distill.config import save_resolved
from distill.errors import BudgetExceeded, ConfigError, InputError, SamplesFailed, TeacherFatalError
from distill.generate.config import GenerateConfig
from distill.generate.progress import RunStats, show_plan, show_summary
from distill.generate.resume import TraceState, is_complete, scan_traces
from distill.lock import exclusive_lock
from distill.paths import check_outputs
from distill.progress import progress_bar
from distill.artifacts import SCHEMA, Problem, Trace
from distill.layout import generate_config_path
from distill.records import JsonlAppender
from distill.sources import iter_problems
from distill.teacher.client import Completion, TeacherClient
from distill.teacher.dialects import estimate_tokens
from distill.teacher.pricing import cost_usd, estimate_cost, resolve_prices

log = logging.getLogger(__name__)
DRIFT_KEYS = ("model", "prompt_template", "system_prompt", "temperature", "top_p", "extra_body", "hint_template")
TRACE_KEYS = ("schema", "id", "sample", "question", "answer", "kind", "prompt_template", "system_prompt",
              "messages", "reasoning", "content", "finish_reason", "truncated", "max_tokens", "model", "usage",
              "cost_usd", "latency_s", "attempts", "error", "created_at")


def build_messages(cfg: GenerateConfig, problem: Problem) -> list[dict]:
    """Exactly what is sent: optional system prompt, then the templated question."""
    messages = [{"role": "system", "content": cfg.system_prompt}] if cfg.system_prompt else []
    messages.append({"role": "user", "content": cfg.prompt_template.format(question=problem["question"])})
    return messages


def _check_config(cfg: GenerateConfig) -> None:
    cfg.validate()  # again: a library caller may have changed fields after construction


def plan(cfg: GenerateConfig, state: TraceState) -> tuple[int, int, int]:
    """Validate every problem (streaming); return (problems, pending requests, pending prompt tokens)."""
    problems = pending = prompt_tokens = 0
    for problem in iter_problems(cfg):
        problems += 1
        todo = sum(1 for s in range(cfg.samples) if not state.is_done(problem["id"], s))
        if todo:
            pending += todo
            prompt_tokens += todo * estimate_tokens(build_messages(cfg, problem))
    return problems, pending, prompt_tokens


def run(cfg: GenerateConfig, client: TeacherClient | None = None) -> Path:
    """Generate traces for ``cfg``; returns the traces file (complete, or resumable after a stop).

    The teacher is the stage's edge (STYLE.md habit 6): by default a :class:`TeacherClient` for ``cfg``;
    a caller may pass its own (its prices, as the cost cap and every record's ``cost_usd`` then use).
    Either way the run closes it when done. With ``mode=batch`` the batch API of the client's first endpoint
    is used, with its key and prices (a client with ``batch.backend=local`` is refused)."""
    _check_config(cfg)
    if cfg.mode == "batch":  # the same requests as files through a batch API: distill.generate.batch
        from distill.generate.batch import run as run_batch

        return run_batch(cfg, client=client)
    out = Path(cfg.out)
    check_outputs("generate", inputs={"problems": cfg.problems}, outputs={"out": out, "config": generate_config_path(out)},
                  probe=not cfg.dry_run)
    if client is None and not cfg.dry_run:  # a dry run needs no key
        client = TeacherClient(cfg)
    prices = client.prices if client is not None else resolve_prices(cfg.model, cfg.prices, cfg.base_url)
    if cfg.max_cost_usd is not None and prices is None:
        raise ConfigError(f"max_cost_usd: no price known for model {cfg.model!r}; set prices={{input: .., output: ..}}")
    # One writer per output: a second run on the same file would send (and pay for) every request again.
    with contextlib.nullcontext() if cfg.dry_run else exclusive_lock(out):
        if not cfg.dry_run:  # under the lock: it may drop a batch run's request files
            from distill.generate.batch_ledger import refuse_open_batches

            refuse_open_batches(out)
        return _run_locked(cfg, client, prices, out)


def planned_run(cfg: GenerateConfig, out: Path, prices: dict | None) -> tuple[Any, Any, int, int, int]:
    """What a run has left to draw, shown before anything is sent (online and batch alike):
    (resume state, sampler or None, problems, pending requests, their prompt tokens)."""
    state = scan_traces(out, cfg.on_truncated, cfg.max_tokens_ceiling)
    sampler = None
    if cfg.is_adaptive:  # per-problem draws decided as verdicts arrive (until_correct / rationalize)
        from distill.generate.adaptive import AdaptiveSampler

        sampler = AdaptiveSampler(cfg, out)
        n_problems, pending, prompt_tokens = sampler.plan()
    else:
        n_problems, pending, prompt_tokens = plan(cfg, state)
    if not n_problems:
        raise InputError("no problems: the source is empty (nothing to generate)", path=cfg.problems, field="problems")
    estimate = estimate_cost(pending, prompt_tokens // max(pending, 1), cfg.est_completion_tokens, prices)
    show_plan(cfg, n_problems, len(state.done), pending, prompt_tokens, estimate)
    return state, sampler, n_problems, pending, prompt_tokens


def _run_locked(cfg: GenerateConfig, client: TeacherClient | None, prices: dict | None, out: Path) -> Path:
    state, sampler, n_problems, pending, _ = planned_run(cfg, out, prices)
    if cfg.dry_run:
        return out
    _refuse_drift(cfg, generate_config_path(out), state.lines)
    save_resolved(cfg, generate_config_path(out))
    stats = RunStats(problems=n_problems, pending=pending, resumed=len(state.done), prior_cost=state.cost)
    if pending:
        if sampler is None:
            asyncio.run(_generate(cfg, client, state, stats, out))
        else:
            asyncio.run(_generate(cfg, client, sampler.tally, stats, out, sampler.produce, sampler.worker))
    show_summary(stats, out, sampler.finish(out) if sampler else None)
    raise_for_stop(stats, cfg, out)
    return out


def raise_for_stop(stats: RunStats, cfg: GenerateConfig, out: Path, at_batch_prices: bool = False) -> None:
    """How a run that did not finish every sample ends (online and batch alike): fatal, budget, Ctrl-C, failed."""
    if stats.fatal is not None:
        raise stats.fatal
    if stats.stop_reason == "budget":
        prices = " at batch prices" if at_batch_prices else ""
        raise BudgetExceeded(f"max_cost_usd={cfg.max_cost_usd}: {out} has cost ${stats.prior_cost + stats.cost:.4f} "
                             f"in all and the next request could cost up to ${stats.next_estimate:.4f} more{prices} "
                             f"(its prompt and max_tokens={cfg.max_tokens}); {stats.done} written, "
                             f"{max(0, stats.pending - stats.done)} not sent. Raise the cap (or lower max_tokens) and "
                             "re-run to resume.")
    if stats.stop_reason == "interrupted":
        raise KeyboardInterrupt
    if stats.failed:
        raise SamplesFailed(f"{stats.failed} of {stats.done} samples failed ({stats.failure_summary()}); "
                            f"they are in {out} with their error and a re-run retries them")


def _refuse_drift(cfg: GenerateConfig, path: Path, lines: int) -> None:
    """Resuming with another teacher or sampling would count its traces as done: refuse, naming what differs."""
    if not lines:
        return
    if not path.exists():  # cannot tell (a copied file): say so, as before
        log.warning("%s: %d records but no %s beside it saying which teacher and sampling made them; "
                    "resuming as if they match", cfg.out, lines, path.name)
        return
    try:
        before = yaml.safe_load(path.read_text()) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: unreadable ({exc.__class__.__name__}); restore it, or use another out=") from None
    changed = [f"{k}: {before[k]!r} -> {getattr(cfg, k)!r}" for k in DRIFT_KEYS
               if isinstance(before, dict) and k in before and before[k] != getattr(cfg, k)]
    if changed:
        raise ConfigError(f"{cfg.out} holds traces made with a different {'; '.join(changed)}"[:400] +
                          "; they would be counted as done. Use another out= (or put the settings back)")


async def _generate(cfg: GenerateConfig, client: TeacherClient, state: Any, stats: RunStats,
                    out: Path, produce: Any = None, worker: Any = None) -> None:
    """Workers pull from a bounded queue fed by ``produce``; the defaults draw the fixed (problem, sample)
    grid, :mod:`distill.generate.adaptive` passes its own pair to sample until correct."""
    produce, worker = produce or _produce, worker or _worker
    stop = asyncio.Event()
    queue: asyncio.Queue = asyncio.Queue(maxsize=2 * cfg.concurrency)
    restore = _install_sigint(stop, stats)
    bar = progress_bar(stats.pending, desc="generate", unit="req", enabled=cfg.progress)
    try:
        with JsonlAppender(out, fsync=cfg.fsync) as writer:
            if writer.repaired_bytes:
                log.info("%s: cut a torn last line (%d bytes) left by an interrupted run", out, writer.repaired_bytes)
            workers = [asyncio.create_task(worker(cfg, client, queue, writer, stats, stop, bar))
                       for _ in range(cfg.concurrency)]
            for task in workers:  # a worker that dies of a bug stops the run (gather below keeps no exception)
                task.add_done_callback(lambda t: _stop_on_crash(t, stats, stop))
            stats.tasks = workers
            await produce(cfg, state, queue, stop, len(workers))
            await asyncio.gather(*workers, return_exceptions=True)
    finally:
        bar.close()
        restore()
        await client.aclose()


def _stop_on_crash(task: asyncio.Task, stats: RunStats, stop: asyncio.Event) -> None:
    """A worker's unexpected error ends the run with that error; left alone, the producer would wait
    on a full queue that no worker drains any more."""
    if not task.cancelled() and task.exception() is not None:
        stats.fatal = stats.fatal or task.exception()
        stats.stop_reason = stats.stop_reason or "error"
        stop.set()


async def _produce(cfg: GenerateConfig, state: TraceState, queue: asyncio.Queue, stop: asyncio.Event,
                   n_workers: int) -> None:
    for problem in iter_problems(cfg):
        for sample in range(cfg.samples):
            if stop.is_set():
                break
            if not state.is_done(problem["id"], sample):
                await _put(queue, (problem, sample), stop)
        if stop.is_set():
            break
    await finish_queue(queue, stop, n_workers)


async def finish_queue(queue: asyncio.Queue, stop: asyncio.Event, n_workers: int) -> None:
    """Place one end marker per worker (or as many as a stopped run can)."""
    placed = 0
    while placed < n_workers:  # one end marker per worker
        if stop.is_set():
            # Stopped workers exit on their next item, so only idle ones need a marker; a full
            # queue has an item for each of them already.
            try:
                queue.put_nowait(None)
            except asyncio.QueueFull:
                return
            placed += 1
        elif await _put(queue, None, stop):
            placed += 1


async def _put(queue: asyncio.Queue, item: Any, stop: asyncio.Event) -> bool:
    """Put ``item``, giving up (False) once ``stop`` is set, so a stopped run never blocks here."""
    while not stop.is_set():
        try:
            await asyncio.wait_for(queue.put(item), timeout=0.5)
            return True
        except asyncio.TimeoutError:
            continue
    return False


async def _worker(cfg: GenerateConfig, client: TeacherClient, queue: asyncio.Queue, writer: JsonlAppender,
                  stats: RunStats, stop: asyncio.Event, bar: Any) -> None:
    while True:
        item = await queue.get()
        if item is None or stop.is_set():
            return
        problem, sample = item
        held = await stats.reserve(cfg.max_cost_usd, worst_cost(cfg, client.prices, problem, stats.max_seen))
        if held is None:
            stats.stop_reason = stats.stop_reason or "budget"
            stop.set()
            return
        if stop.is_set():  # stopped while this worker waited for room under the cap
            stats.settle(held, None)
            return
        record = None
        try:
            record = await _one_sample(cfg, client, problem, sample)
            writer.write(record)
        except TeacherFatalError as exc:
            record = None
            stats.fatal = stats.fatal or exc
            stats.stop_reason = "fatal"
            stop.set()
            return
        except Exception as exc:  # a bug or a full disk: stop cleanly rather than hang the producer
            record = None
            stats.fatal = stats.fatal or exc
            stats.stop_reason = "error"
            stop.set()
            raise
        finally:
            stats.settle(held, record)
        bar.update(1)
        stats.refresh_bar(bar)


def worst_cost(cfg: GenerateConfig, prices: dict | None, problem: Problem, seen: float = 0.0,
               messages: list[dict] | None = None) -> float:
    """The most one sample can cost: its prompt (estimated generously) plus every output token it may
    be sent, over each truncation retry; never below the dearest sample seen. What the cap counts."""
    if not prices:
        return 0.0
    sends, completion, budget = 1, cfg.max_tokens, cfg.max_tokens
    while cfg.on_truncated == "retry" and budget < cfg.max_tokens_ceiling:
        budget = min(cfg.max_tokens_ceiling, int(budget * cfg.truncation_factor))
        sends, completion = sends + 1, completion + budget
    prompt = 2 * estimate_tokens(messages or build_messages(cfg, problem)) + 16  # chars/4 undercounts some scripts
    return max(seen, cost_usd({"prompt_tokens": prompt * sends, "completion_tokens": completion}, prices))


def hint_messages(cfg: GenerateConfig, problem: Problem) -> list[dict]:
    """What a rationalization request sends: the system prompt, then the question with the answer as a hint."""
    messages = [{"role": "system", "content": cfg.system_prompt}] if cfg.system_prompt else []
    messages.append({"role": "user", "content": cfg.hint_template.format(question=problem["question"],
                                                                         answer=problem["answer"])})
    return messages


def hint_text(cfg: GenerateConfig, problem: Problem) -> str:
    """The words a rationalization adds to the question (what the filter's hint_leak check looks for)."""
    return cfg.hint_template.format(question="", answer=problem["answer"]).strip()


async def _one_sample(cfg: GenerateConfig, client: TeacherClient, problem: dict, sample: int,
                      is_hinted: bool = False) -> dict:
    messages = build_messages(cfg, problem)
    # A rationalization is asked with the hint but recorded with the unhinted messages: finetune renders
    # from ``messages``, so the student learns to reach the answer without being told it (STaR).
    sent = hint_messages(cfg, problem) if is_hinted else messages
    max_tokens = cfg.max_tokens
    paid, attempts = 0.0, 0
    while True:
        result = await client.complete(sent, max_tokens=max_tokens, sample=sample)
        paid += result.cost_usd
        attempts += result.attempts
        if not (result.ok and result.truncated and cfg.on_truncated == "retry") \
                or max_tokens >= cfg.max_tokens_ceiling:
            break
        max_tokens = min(cfg.max_tokens_ceiling, int(max_tokens * cfg.truncation_factor))
        log.debug("%s/%d truncated: retrying with max_tokens=%d", problem["id"], sample, max_tokens)
    result.cost_usd, result.attempts = paid, attempts
    return sample_record(cfg, problem, sample, result, max_tokens, is_hinted)


def sample_record(cfg: GenerateConfig, problem: Problem, sample: int, result: Completion, max_tokens: int,
                  is_hinted: bool = False) -> Trace:
    """The record of a sample's final answer (online, or one line of a batch's results): a truncated
    answer dropped under ``on_truncated=drop``, a rationalization marked with its hint."""
    if result.ok and result.truncated and cfg.on_truncated == "drop":
        result.error = {"type": "truncated", "message": f"finish_reason=length at max_tokens={max_tokens}"}
    record = trace_record(cfg, problem, sample, build_messages(cfg, problem), result, max_tokens)
    if is_hinted:
        record.update(rationalized=True, hint=hint_text(cfg, problem))
    return record


def trace_record(cfg: GenerateConfig, problem: Problem, sample: int, messages: list[dict], c: Completion,
                 max_tokens: int) -> Trace:
    """A :class:`distill.artifacts.Trace`: the problem, what was sent (and the template it was built
    from, so finetune can record how its student is prompted), what came back, and what it cost."""
    record = {
        "schema": SCHEMA, "id": problem["id"], "sample": sample, "question": problem["question"],
        "answer": problem["answer"], "kind": problem["kind"], "prompt_template": cfg.prompt_template,
        "system_prompt": cfg.system_prompt, "messages": messages,
        "reasoning": c.reasoning, "content": c.content, "finish_reason": c.finish_reason,
        "truncated": c.truncated, "max_tokens": max_tokens, "model": c.model, "usage": c.usage,
        "cost_usd": round(c.cost_usd, 8), "latency_s": c.latency_s, "attempts": c.attempts,
        "error": c.error, "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    record.update({k: v for k, v in problem.items() if k not in record})  # extra problem fields ride along
    return record


def _install_sigint(stop: asyncio.Event, stats: RunStats):
    """First Ctrl-C: stop sending, let in-flight requests finish; second: abandon them."""
    loop = asyncio.get_running_loop()

    def on_sigint() -> None:
        if stop.is_set() and stats.stop_reason == "interrupted":
            log.warning("second Ctrl-C: abandoning requests in flight")
            for task in stats.tasks:
                task.cancel()
            return
        stats.stop_reason = "interrupted"
        stop.set()
        log.warning("Ctrl-C: no new requests; waiting for %d in flight (Ctrl-C again to abandon them)",
                    stats.in_flight)

    try:
        loop.add_signal_handler(signal.SIGINT, on_sigint)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread / not POSIX
        return lambda: None
    return lambda: loop.remove_signal_handler(signal.SIGINT)


__all__ = ["run", "plan", "build_messages", "trace_record", "is_complete", "TRACE_KEYS"]
