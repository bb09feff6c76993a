"""Load a benchmark's problems from the Hub by its usual id, cached by `datasets`; a gated set says how to get in.

Usage:
    from distill.benchmarks import protocol_for
    from distill.benchmarks.hub import load_benchmark
    problems, source = load_benchmark(protocol_for("math500"), limit=20)
    problems, source = load_benchmark(protocol_for("livecodebench"), dates=("2025-02-01", "2025-05-01"))
    source   # {"dataset", "config", "split", "revision", "licence", "card_licence", "rows", "problems"}

`datasets.load_dataset` keeps its own cache under HF_HOME, so a second run (or HF_HUB_OFFLINE=1
after a first) reads the set without the network. Any failure to load is one InputError line: a
gated set (GPQA) names the page where access is granted; anything else gives the first line of
the cause. The dataset's commit (for the Hub's eval-results ``dataset.revision``) and the
licence its card states are asked for separately and left out when the Hub cannot say.
"""

from __future__ import annotations

import logging
import os

from distill.benchmarks import Protocol
from distill.benchmarks.livecodebench import in_window
from distill.benchmarks.rows import to_problem
from distill.errors import InputError

log = logging.getLogger(__name__)

__all__ = ["load_benchmark"]


def _is_gated(exc: BaseException) -> bool:
    seen = 0
    while exc is not None and seen < 10:
        if type(exc).__name__ == "GatedRepoError" or "gated" in str(exc).lower():
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def _failure(protocol: Protocol, exc: Exception) -> InputError:
    if _is_gated(exc):
        return InputError(protocol.access_hint(), field="benchmark")
    first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
    why = "not in the cache and HF_HUB_OFFLINE=1" if offline else "cannot load it"
    return InputError(f"benchmark {protocol.name}: {why} ({first})", path=protocol.dataset, field="benchmark")


def _hub_facts(protocol: Protocol) -> dict:
    """The dataset's commit and the licence its card states (None when the Hub cannot be asked)."""
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return {"revision": None, "card_licence": None}
    try:
        from huggingface_hub import HfApi

        info = HfApi().dataset_info(protocol.dataset)
        card = info.card_data.to_dict() if info.card_data else {}
        return {"revision": info.sha, "card_licence": card.get("license")}
    except Exception as exc:  # noqa: BLE001 - provenance only: the set itself loaded
        log.debug("no dataset info for %s: %s", protocol.dataset, exc)
        return {"revision": None, "card_licence": None}


def load_benchmark(protocol: Protocol, limit: int | None = None,
                   dates: tuple[str, str] | None = None) -> tuple[list[dict], dict]:
    """The set's Problem records (in the dataset's order; a dated set's inside ``dates``, else the protocol's
    window) and where they came from."""
    window = dates or protocol.dates
    import datasets

    try:
        ds = datasets.load_dataset(protocol.dataset, protocol.config, split=protocol.split)
    except Exception as exc:  # noqa: BLE001 - network, auth, cache and schema errors all mean "cannot load"
        raise _failure(protocol, exc) from None
    problems: list[dict] = []
    seen: set[str] = set()
    rows = 0
    for index, row in enumerate(ds):
        rows += 1
        if limit is not None and len(problems) >= limit:
            continue
        if not in_window(row, window):
            continue
        problem = to_problem(protocol.name, row, index)
        if problem["id"] in seen:
            raise InputError(f"benchmark {protocol.name}: duplicate id {problem['id']!r} at row {index}",
                             path=protocol.dataset, field="id")
        seen.add(problem["id"])
        problems.append(problem)
    if not problems:
        raise InputError(f"benchmark {protocol.name}: no problems (rows {rows}, date window {window})",
                         path=protocol.dataset, field="benchmark")
    source = {"dataset": protocol.dataset, "config": protocol.config, "split": protocol.split,
              "licence": protocol.licence, **_hub_facts(protocol), "rows": rows, "problems": len(problems),
              "dates": list(window) if window else None}
    return problems, source
