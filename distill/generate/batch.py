"""`distill generate mode=batch`: the online path's traces through a batch API at half the price, resumable.

Usage:
    from distill.generate.batch import run
    run(load_config(GenerateConfig, "generate/openai-o4-mini.yaml", ["mode=batch", "problems=p.jsonl"]))
    run(cfg, backend=my_backend)       # any object with BatchBackend's five calls (tests, other providers)
    run(cfg, client=TeacherClient(cfg, prices={...}))  # the batch API of the client's endpoint, its key and prices

    distill generate mode=batch batch.backend=local model=Qwen/Qwen3-8B problems=p.jsonl   # vllm run-batch

The same checks, lock, plan, drift refusal, resolved config and exits as the online path
(:mod:`distill.generate.stage`); in between, :class:`~distill.generate.batch_waves.Waves` sends
what the file still needs as request files, recording every file and batch id in
``traces.batches.jsonl`` (:mod:`distill.generate.batch_ledger`) so that a kill at any point and the
same command finish the batches already paid for instead of submitting them again. Cost is
counted at ``batch.discount`` times the online price. Ctrl-C stops polling; the provider keeps
working and a re-run collects the results.
"""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path

from distill.config import save_resolved
from distill.errors import ConfigError, TeacherFatalError
from distill.generate.batch_files import split_parts
from distill.generate.batch_waves import Waves
from distill.generate.config import GenerateConfig
from distill.generate.progress import RunStats, show_summary
from distill.generate.stage import _refuse_drift, planned_run, raise_for_stop
from distill.layout import generate_batches_path, generate_config_path
from distill.lock import exclusive_lock
from distill.paths import check_outputs
from distill.progress import human_count, show_table
from distill.teacher.batch_client import ApiBatches, BatchBackend, LocalBatches
from distill.teacher.client import TeacherClient
from distill.teacher.pricing import FREE, batch_prices, resolve_prices

log = logging.getLogger(__name__)

__all__ = ["run"]


def run(cfg: GenerateConfig, backend: BatchBackend | None = None, client: TeacherClient | None = None) -> Path:
    """Generate traces for ``cfg`` through batches; returns the traces file (complete, or resumable).
    ``client``: the caller's teacher client (``generate.run(cfg, client=...)``), whose first endpoint, key
    and prices the batch API uses; refused with ``batch.backend=local``, which runs on this machine."""
    cfg.validate()
    out = Path(cfg.out)
    check_outputs("generate", inputs={"problems": cfg.problems},
                  outputs={"out": out, "config": generate_config_path(out), "ledger": generate_batches_path(out)},
                  probe=not cfg.dry_run)
    provider, prices, scrub, make_backend = _teacher(cfg, client)
    if cfg.max_cost_usd is not None and prices is None:
        raise ConfigError(f"max_cost_usd: no price known for model {cfg.model!r}; set prices={{input: .., output: ..}}")
    with contextlib.nullcontext() if cfg.dry_run else exclusive_lock(out):
        return _run_locked(cfg, out, backend, make_backend, provider, prices, scrub)


def _teacher(cfg: GenerateConfig, client: TeacherClient | None = None):
    """(dialect, batch prices, key scrubber, backend factory): the online client's key, dialect and prices."""
    if cfg.batch.backend == "local":
        if client is not None:
            raise ConfigError("client: batch.backend=local runs batch.command on this machine and sends nothing to "
                              "a teacher client; pass no client, or use batch.backend=api")
        online = resolve_prices(cfg.model, cfg.prices) or dict(FREE)  # own GPUs: free unless priced
        provider = cfg.provider if cfg.provider != "auto" else "vllm"
        return provider, batch_prices(online, 1.0), str, lambda: LocalBatches(cfg.batch.command, cfg.model)
    if cfg.dry_run and client is None:  # a dry run needs no key
        online = resolve_prices(cfg.model, cfg.prices, cfg.base_url)
        return _provider(cfg), batch_prices(online, cfg.batch.discount), str, None
    client = client or TeacherClient(cfg)  # resolves the key (never printed) and the price table, sends nothing
    if len(client.urls) > 1:
        log.warning("mode=batch sends every file to the first base_url (%s); the others are not used", client.urls[0])
    return (client.provider, batch_prices(client.prices, cfg.batch.discount), client.scrub,
            lambda: ApiBatches.for_teacher(client))


def _provider(cfg: GenerateConfig) -> str:
    from distill.teacher.dialects import detect_provider

    url = cfg.base_url[0] if isinstance(cfg.base_url, list) else cfg.base_url
    return detect_provider(cfg.provider, url, cfg.model)


def _run_locked(cfg: GenerateConfig, out: Path, backend: BatchBackend | None, make_backend, provider: str,
                prices: dict | None, scrub) -> Path:
    state, sampler, n_problems, pending, _ = planned_run(cfg, out, prices)
    stats = RunStats(problems=n_problems, pending=pending, resumed=len(state.done), prior_cost=state.cost)
    if cfg.dry_run:
        _show_files(Waves(cfg, out, backend, prices, provider, state, stats, sampler, scrub), prices)
        return out
    _refuse_drift(cfg, generate_config_path(out), state.lines)
    save_resolved(cfg, generate_config_path(out))
    waves = Waves(cfg, out, backend or make_backend(), prices, provider, state, stats, sampler, scrub)
    try:
        waves.run()
    except TeacherFatalError as exc:  # a 401/402 from the batch API: what was merged is kept
        stats.fatal, stats.stop_reason = exc, "fatal"
    except KeyboardInterrupt:
        stats.stop_reason = "interrupted"
        log.warning("Ctrl-C: stopped polling; the batches keep running at the provider and a re-run collects "
                    "them (%s)", waves.ledger.path)
    show_summary(stats, out, sampler.finish(out) if sampler else None)
    raise_for_stop(stats, cfg, out, at_batch_prices=True)
    return out


def _show_files(waves: Waves, prices: dict | None) -> None:
    """The dry run's view of the first wave: request files, their sizes and the cost at batch prices."""
    cfg = waves.cfg
    lines = (waves.line(problem, req) for problem, req in waves.next_wave())
    parts = [(len(p), sum(map(len, p))) for p in split_parts(lines, cfg.batch.max_requests, cfg.batch.max_bytes)]
    show_table("batch files (first wave; nothing written)", [
        ("backend", cfg.batch.backend), ("requests", sum(n for n, _ in parts)), ("files", len(parts)),
        ("largest file", f"{human_count(max((b for _, b in parts), default=0))}B, "
                         f"{max((n for n, _ in parts), default=0)} requests"),
        ("limits per file", f"{cfg.batch.max_requests} requests, {human_count(cfg.batch.max_bytes)}B"),
        ("price factor", f"{cfg.batch.discount if cfg.batch.backend == 'api' else 'own GPUs'}"),
        ("prices used (USD/1M)", json.dumps(prices) if prices else "unknown"),
    ])
