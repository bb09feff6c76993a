"""The filter's per-trace measuring on a Ray cluster: the same ``measure_chunk``, run by Ray actors.

Usage:
    distill filter traces=traces.jsonl out=kept.jsonl engine=ray                 # RAY_ADDRESS, or Ray on this machine
    distill filter traces=traces.jsonl out=kept.jsonl engine=ray ray_address=ray://head:10001
    for results in measure_on_ray(chunks, cfg, index): ...   # measure_chunk's output per chunk, in file order

Ray is one more executor behind :func:`distill.filter.scan.measure_all`, beside the in-process
map and the local process pool: the driver (this process) still reads the file, answers cached
lines, stores results and the cache, and afterwards decides duplicates and the per-problem cap
over the whole file, so verdicts, outputs and the cache are the local run's. Only the per-trace
work (the verifier, the code sandbox, the quality and step checks, the decontamination look-up
against the eval index each actor holds) spreads over the cluster.

Workers on a cluster that this process did not start get this checkout's ``distill`` package
(``runtime_env`` ``py_modules``); each actor then reports the code digest and library versions
it measures with (:func:`distill.filter.stage.measuring_environment`, part of the cache key)
and the run stops before measuring if any differs from this process's: otherwise a cluster with
another sympy would fill the cache with verdicts under a key that says they are this machine's.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Iterator
from itertools import chain
from pathlib import Path
from typing import Any

from distill.errors import ConfigError, DistillError
from distill.filter.config import FilterConfig
from distill.filter.decontam import EvalIndex
from distill.filter.measure import init_worker, measure_chunk

__all__ = ["measure_on_ray", "environment_difference"]

log = logging.getLogger(__name__)
IN_FLIGHT = 4  # chunks queued per actor: enough to hide a round trip, few enough to keep memory flat


class Measurer:
    """One Ray actor: a worker process that measures chunks with the run's options (set up once)."""

    def __init__(self, cfg: FilterConfig, index: EvalIndex | None) -> None:
        self.cfg = cfg
        init_worker(cfg, index)

    def environment(self) -> dict[str, Any]:
        from distill.filter.stage import measuring_environment

        return measuring_environment(self.cfg)

    def measure(self, chunk: list[tuple[int, bytes]]) -> list[tuple]:
        return measure_chunk(chunk)


def measure_on_ray(chunks: Iterator[list[tuple[int, bytes]]], cfg: FilterConfig,
                   index: EvalIndex | None) -> Iterator[list[tuple]]:
    """measure_chunk's output for each chunk, in order; Ray is joined only when a line needs measuring."""
    first = next(chunks, None)
    if first is None:  # every line was cached: no cluster to wait for
        return
    import ray

    started = _connect(ray, cfg)
    actors: list = []
    try:
        actors = _start_actors(ray, cfg, index)
        yield from _in_order(ray, actors, chain([first], chunks))
    finally:
        if started:  # stops a Ray started here; on a cluster, the job's actors end with it
            ray.shutdown()
        else:  # the caller's Ray session goes on; our actors do not
            for actor in actors:
                ray.kill(actor)


def _connect(ray: Any, cfg: FilterConfig) -> bool:
    """Join the cluster ``cfg`` names, or start Ray here; True when this call did (and so disconnects at the
    end). A caller that already ran ``ray.init`` (a notebook, a script around ``distill.filter.run``) is kept."""
    if ray.is_initialized():
        return False
    # Not Ray's own address=None: that also joins whatever cluster was started last on this machine.
    address = cfg.ray_address or os.environ.get("RAY_ADDRESS") or "local"
    options: dict[str, Any] = {"logging_level": logging.WARNING}
    if address == "local":
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # a Ray started for one run reports nothing home
        options.update(num_cpus=cfg.workers or os.cpu_count() or 1, include_dashboard=False)
    else:  # its workers run this checkout's code, whatever the cluster has installed
        import distill

        options["runtime_env"] = {"py_modules": [str(Path(distill.__file__).parent)],
                                  "excludes": ["__pycache__", "*.pyc"]}
    try:
        ray.init(address=address, **options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ConfigError(f"ray_address={address}: cannot start or join Ray ({str(exc).splitlines()[0]})") from None
    return True


def _start_actors(ray: Any, cfg: FilterConfig, index: EvalIndex | None) -> list:
    """One actor per CPU the cluster has (or ``workers``), each checked to measure with this process's code."""
    from distill.filter.stage import measuring_environment

    cpus = int(ray.cluster_resources().get("CPU", 1))
    count = cfg.workers or cpus
    if count > cpus:  # actors beyond the cluster's CPUs would wait for ever, and the run with them
        log.warning("workers=%d but the Ray cluster has %d CPUs: using %d actors", count, cpus, cpus)
        count = cpus
    # No restarts: a lost worker stops the run (_get), and the next run resumes from the cache.
    actor = ray.remote(num_cpus=1)(Measurer)
    shared = ray.put(index)  # one copy in the object store, not one per actor
    actors = [actor.remote(cfg, shared) for _ in range(max(1, count))]
    here = measuring_environment(cfg)
    for there in _get(ray, [a.environment.remote() for a in actors]):
        difference = environment_difference(here, there)
        if difference:
            raise ConfigError(f"Ray workers would measure with other code than this process ({difference}); "
                              "their verdicts would not be this run's: install the same versions on the cluster")
    return actors


def _in_order(ray: Any, actors: list, chunks: Iterator) -> Iterator[list[tuple]]:
    """Send each chunk to the least busy actor, a bounded window in flight; results come back in file order."""
    pending: deque = deque()  # (actor number, result ref), in submission order
    busy = [0] * len(actors)
    for chunk in chunks:
        which = min(range(len(actors)), key=busy.__getitem__)
        pending.append((which, actors[which].measure.remote(chunk)))
        busy[which] += 1
        if len(pending) >= IN_FLIGHT * len(actors):
            which, ref = pending.popleft()
            busy[which] -= 1
            yield _get(ray, ref)
    while pending:
        yield _get(ray, pending.popleft()[1])


def _get(ray: Any, refs: Any) -> Any:
    """ray.get, with the errors a user acts on as one line (a bug keeps its remote traceback)."""
    try:
        return ray.get(refs)
    except ray.exceptions.RayTaskError as exc:
        if isinstance(exc.cause, DistillError):  # a sandbox that cannot run, as the local run says it
            raise exc.cause from None
        raise
    except ray.exceptions.RayActorError as exc:
        raise DistillError(f"a Ray worker was lost ({str(exc).splitlines()[0]}); what was measured is cached: "
                           "run the same command again to resume") from None


def environment_difference(here: dict[str, Any], there: dict[str, Any]) -> str | None:
    """What differs between two :func:`~distill.filter.stage.measuring_environment` reports, or None."""
    def flat(env: dict) -> dict:
        return {**{k: v for k, v in env.items() if k != "libraries"}, **env.get("libraries", {})}

    mine, theirs = flat(here), flat(there)
    named = sorted(set(mine) | set(theirs))
    return "; ".join(f"{k} {mine.get(k)} here, {theirs.get(k)} on the cluster"
                     for k in named if mine.get(k) != theirs.get(k)) or None
