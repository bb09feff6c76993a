"""The filter's report: stats.json (funnel, pass@k, per source, tokens, judge), tables and the funnel plot (distill.plots).

Usage:
    stats = build_stats(cfg, results, winners, decisions, judged, lines, superseded, measured, elapsed)
    write(stats, Path("stats.json"), Path("filter_funnel.png"), show=True)

The funnel lists each drop reason once, in check order, with how many traces it removed and
how many were left: a trace is counted under the first check it failed.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from distill import plots
from distill.artifacts import FilterStats
from distill.metrics import pass_at_k
from distill.filter.measure import FLAG_ORDER
from distill.progress import human_count, show_table
from distill.records import write_json_atomic

__all__ = ["build_stats", "write", "funnel_order"]

_ANSWER_ORDER = ("no_answer", "empty", "truncated", "hedged", "negated", "wrong_answer", "unparseable_gold",
                 "undecided", "verifier_error")
_LATE_ORDER = ("bad_step", "unsound_step", "duplicate", "max_per_problem")


def funnel_order(reasons: list[str]) -> list[str]:
    """Reasons in the order the checks run; unknown verifier reasons go just before bad_step."""
    known = list(FLAG_ORDER) + [r for r in _ANSWER_ORDER if r not in FLAG_ORDER]
    extra = sorted(r for r in reasons if r not in known and r not in _LATE_ORDER)
    order = known + extra + list(_LATE_ORDER)
    return [r for r in order if r in reasons]


def build_stats(cfg: Any, results: dict, winners: dict, decisions: dict, judged: dict, lines: Any,
                superseded: int, measured: int, elapsed: float) -> dict:
    """Everything stats.json holds (plain data)."""
    rows = []
    for (pid, _sample), line_no in winners.items():
        r, v = results[line_no], decisions[line_no]
        rows.append({"id": pid, "source": r["source"], "drop": v["drop"], "correct": v["correct"],
                     "tokens": r["tokens"], "error": v["reason"] == "error" and bool(r["flags"]),
                     "bad_steps": r.get("bad_steps") or [], "unsound_steps": r.get("unsound_steps") or []})
    kept = [row for row in rows if row["drop"] is None]
    stats = {
        "traces": {"lines": len(lines.number), "unique": len(rows), "superseded": superseded,
                   "measured_now": measured, "from_cache": len(results) - measured},
        "kept": len(kept), "rejected": len(rows) - len(kept),
        "kept_share": round(len(kept) / len(rows), 4) if rows else 0.0,
        "funnel": _funnel(rows),
        "tokens": _tokens(rows),
        "verifier": dict(Counter(results[n]["verdict"]["reason"] for n in winners.values())),
        "problems": _problems(rows),
        "per_source": _per_source(rows),
        "judge": _judge(cfg, judged, results),
        "bad_step": {"flagged": sum(1 for row in rows if row["drop"] == "bad_step"),
                     "examples": [s for row in rows if row["drop"] == "bad_step" for s in row["bad_steps"]][:10]},
        "unsound_step": {"flagged": sum(1 for row in rows if row["drop"] == "unsound_step"),
                         "examples": [s for row in rows if row["drop"] == "unsound_step"
                                      for s in row["unsound_steps"]][:10]},
        "throughput": {"seconds": round(elapsed, 3), "traces_per_s": round(len(rows) / elapsed, 1) if elapsed else None,
                       "workers": cfg.workers or None},
    }
    return stats


def _funnel(rows: list[dict]) -> list[dict]:
    dropped = Counter(row["drop"] for row in rows if row["drop"])
    tokens = Counter()
    for row in rows:
        if row["drop"]:
            tokens[row["drop"]] += row["tokens"]
    left = len(rows)
    steps = [{"step": "input", "dropped": 0, "left": left, "tokens_dropped": 0}]
    for reason in funnel_order(list(dropped)):
        left -= dropped[reason]
        steps.append({"step": reason, "dropped": dropped[reason], "left": left, "tokens_dropped": tokens[reason]})
    return steps


def _tokens(rows: list[dict]) -> dict:
    kept = sum(row["tokens"] for row in rows if row["drop"] is None)
    dropped = sum(row["tokens"] for row in rows if row["drop"] is not None)
    share = round(kept / (kept + dropped), 4) if kept + dropped else 0.0
    return {"kept": kept, "dropped": dropped, "kept_share": share}


def _problems(rows: list[dict]) -> dict:
    per: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])  # samples, correct, kept
    for row in rows:
        p = per[row["id"]]
        if not row["error"]:
            p[0] += 1
            p[1] += row["correct"] is True
        p[2] += row["drop"] is None
    dist = Counter(f"{c}/{n}" for n, c, _ in per.values() if n)
    max_n = max((n for n, _, _ in per.values()), default=0)
    ks = [k for k in (1, 2, 4, 8, 16, 32, 64) if k <= max_n]
    pass_k = {}
    for k in ks:
        scores = [pass_at_k(n, c, k) for n, c, _ in per.values() if n >= k]
        pass_k[str(k)] = round(sum(scores) / len(scores), 4) if scores else None
    rates = [c / n for n, c, _ in per.values() if n]
    return {"count": len(per), "with_kept": sum(1 for *_, k in per.values() if k),
            "without_kept": sum(1 for *_, k in per.values() if not k),
            "pass_rate_mean": round(sum(rates) / len(rates), 4) if rates else None,
            "all_wrong": sum(1 for n, c, _ in per.values() if n and not c),
            "correct_per_problem": dict(sorted(dist.items(), key=lambda kv: _frac_key(kv[0]))),
            "pass_at_k": pass_k}


def _frac_key(text: str) -> tuple[int, int]:
    c, n = text.split("/")
    return int(n), int(c)


def _per_source(rows: list[dict]) -> dict:
    out: dict[str, dict] = {}
    for row in rows:
        s = out.setdefault(row["source"], {"traces": 0, "kept": 0, "correct": 0})
        s["traces"] += 1
        s["kept"] += row["drop"] is None
        s["correct"] += row["correct"] is True
    for s in out.values():
        s["kept_share"] = round(s["kept"] / s["traces"], 4)
        s["correct_share"] = round(s["correct"] / s["traces"], 4)
    return out


def _judge(cfg: Any, judged: dict, results: dict) -> dict:
    if not cfg.judge.enabled:
        return {"enabled": False}
    undecided = [j for j in judged.values() if not j["audit"]]
    audits = [(results[n]["verdict"]["correct"], j["judge"]["correct"]) for n, j in judged.items() if j["audit"]]
    both = [(rule, judge) for rule, judge in audits if judge is not None]
    agree = sum(1 for rule, judge in both if rule == judge)
    return {"enabled": True, "model": cfg.judge.model, "asked": len(judged),
            "undecided_asked": len(undecided),
            "undecided_decided": sum(1 for j in undecided if j["judge"]["correct"] is not None),
            "undecided_judged_correct": sum(1 for j in undecided if j["judge"]["correct"] is True),
            "audited": len(audits), "audit_both_decided": len(both), "agree": agree,
            "agreement": round(agree / len(both), 4) if both else None,
            "errors": sum(1 for j in judged.values() if j["judge"].get("error")),
            "cost_usd": round(sum(j["judge"].get("cost_usd") or 0.0 for j in judged.values()), 6)}


# ---------------------------------------------------------------- output


def write(stats: dict, stats_path: Path, plot_path: Path | None, show: bool) -> None:
    """stats.json (atomic, checked against :class:`distill.artifacts.FilterStats`), the plot, the tables."""
    if plot_path is not None:
        plots.funnel(stats, plot_path)
        stats["plot"] = plot_path.name
    write_json_atomic(stats_path, FilterStats(**stats).to_dict())
    if show:
        print_tables(stats)


def print_tables(stats: dict) -> None:
    """The funnel and a summary, readable at a glance."""
    rows = [(f["step"], human_count(f["dropped"]) if f["dropped"] else "", human_count(f["left"]),
             human_count(f["tokens_dropped"]) if f["tokens_dropped"] else "") for f in stats["funnel"]]
    show_table("filter funnel", rows, header=("step", "dropped", "left", "tokens dropped"))
    p, t = stats["problems"], stats["tokens"]
    summary = [
        ("kept", f"{stats['kept']} of {stats['traces']['unique']} ({stats['kept_share']:.1%})"),
        ("tokens kept / dropped", f"{human_count(t['kept'])} / {human_count(t['dropped'])}"),
        ("problems (with a kept trace)", f"{p['count']} ({p['with_kept']})"),
        ("mean pass rate per problem", f"{p['pass_rate_mean']:.1%}" if p["pass_rate_mean"] is not None else "-"),
        ("pass@k", "  ".join(f"@{k} {v:.1%}" for k, v in p["pass_at_k"].items() if v is not None) or "-"),
        ("correct per problem", "  ".join(f"{k}: {v}" for k, v in list(p["correct_per_problem"].items())[:12])),
        ("measured now / cached", f"{stats['traces']['measured_now']} / {stats['traces']['from_cache']}"),
        ("throughput", f"{stats['throughput']['traces_per_s']} traces/s"),
    ]
    j = stats["judge"]
    if j.get("enabled"):
        agree = f"{j['agreement']:.1%}" if j["agreement"] is not None else "-"
        summary.append(("judge", f"asked {j['asked']} (undecided {j['undecided_asked']}, decided "
                                  f"{j['undecided_decided']}); audit agreement {agree} of {j['audit_both_decided']}"))
    show_table("filter summary", summary)
    sources = [(name, s["traces"], s["kept"], f"{s['kept_share']:.1%}", f"{s['correct_share']:.1%}")
               for name, s in sorted(stats["per_source"].items())]
    if len(sources) > 1:
        show_table("per source", sources, header=("source", "traces", "kept", "kept %", "correct %"))
