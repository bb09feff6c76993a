"""The filter's report: stats.json (funnel, pass@k, per source, tokens, judge), tables and the funnel plot (distill.plots).

Usage:
    tally = Tally(); tally.add(line, result, decision); tally.end_problem()    # per trace, per problem
    stats = build_stats(cfg, tally, judged, lines, superseded, measured, from_cache, elapsed)
    write(stats, Path("stats.json"), Path("filter_funnel.png"), show=True)

The funnel lists each drop reason once, in check order, with how many traces it removed and
how many were left: a trace is counted under the first check it failed.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from distill import plots
from distill.artifacts import FilterStats
from distill.estimates import pass_at_k
from distill.filter.measure import FLAG_ORDER
from distill.progress import human_count, show_table
from distill.records import write_json_atomic

__all__ = ["Tally", "build_stats", "write", "funnel_order"]

_ANSWER_ORDER = ("no_answer", "empty", "truncated", "hedged", "negated", "wrong_answer", "unparseable_gold",
                 "undecided", "verifier_error")
_LATE_ORDER = ("bad_step", "unsound_step", "duplicate", "max_per_problem")


def funnel_order(reasons: list[str]) -> list[str]:
    """Reasons in the order the checks run; unknown verifier reasons go just before bad_step."""
    known = list(FLAG_ORDER) + [r for r in _ANSWER_ORDER if r not in FLAG_ORDER]
    extra = sorted(r for r in reasons if r not in known and r not in _LATE_ORDER)
    order = known + extra + list(_LATE_ORDER)
    return [r for r in order if r in reasons]


class Tally:
    """The report's counts, added one trace at a time and closed one problem at a time.

    Holds no per-trace state, so a million traces cost what a thousand do: counters, one
    problem's counts, sums for the pass@k means, and the ten earliest step examples.
    """

    def __init__(self) -> None:
        self.unique = self.kept = self.tokens_kept = self.tokens_dropped = 0
        self.dropped: Counter = Counter()
        self.drop_tokens: Counter = Counter()
        self.verifier: dict[str, list[int]] = {}   # reason -> [first line, count]
        self.sources: dict[str, list[int]] = {}    # source -> [first line, traces, kept, correct]
        self.examples: dict[str, list[tuple[int, list]]] = {"bad_step": [], "unsound_step": []}
        self.problem = [0, 0, 0]                   # this problem's samples, correct, kept
        self.problems = self.with_kept = self.all_wrong = self.max_n = 0
        self.rates: list[float] = [0.0, 0]          # sum, count
        self.dist: Counter = Counter()
        self.pass_k = {k: [0.0, 0] for k in _KS}

    def add(self, line: int, r: dict, v: dict) -> None:
        """One winning trace: its measured result and its decision (``drop`` None when kept)."""
        self.unique += 1
        drop, correct = v["drop"], v["correct"]
        if drop is None:
            self.kept += 1
            self.tokens_kept += r["tokens"]
        else:
            self.dropped[drop] += 1
            self.drop_tokens[drop] += r["tokens"]
            self.tokens_dropped += r["tokens"]
        _first_count(self.verifier, r["verdict"]["reason"], line)
        s = self.sources.setdefault(r["source"], [line, 0, 0, 0])
        s[0], s[1], s[2], s[3] = min(s[0], line), s[1] + 1, s[2] + (drop is None), s[3] + (correct is True)
        key = {"bad_step": "bad_steps", "unsound_step": "unsound_steps"}.get(drop)
        if key:  # every such row holds a step: the first ten steps come from the ten earliest rows
            rows = self.examples[drop]
            rows.append((line, r.get(key) or []))
            rows.sort(key=lambda row: row[0])
            del rows[10:]
        p = self.problem
        if not (v["reason"] == "error" and bool(r["flags"])):
            p[0] += 1
            p[1] += correct is True
        p[2] += drop is None

    def end_problem(self) -> None:
        n, c, k = self.problem
        self.problem = [0, 0, 0]
        self.problems += 1
        self.with_kept += bool(k)
        if not n:
            return
        self.max_n = max(self.max_n, n)
        self.dist[f"{c}/{n}"] += 1
        self.all_wrong += not c
        self.rates[0] += c / n
        self.rates[1] += 1
        for key, acc in self.pass_k.items():
            if n >= key:
                acc[0] += pass_at_k(n, c, key)
                acc[1] += 1


_KS = (1, 2, 4, 8, 16, 32, 64)


def _first_count(table: dict[str, list[int]], key: str, line: int) -> None:
    entry = table.setdefault(key, [line, 0])
    entry[0], entry[1] = min(entry[0], line), entry[1] + 1


def _in_first_order(table: dict[str, list]) -> list[tuple[str, list]]:
    """Keys in the order their first trace appears in the file (the order stats.json always had)."""
    return sorted(table.items(), key=lambda kv: kv[1][0])


def build_stats(cfg: Any, tally: Tally, judged: dict, lines: int, superseded: int, measured: int,
                from_cache: int, elapsed: float) -> dict:
    """Everything stats.json holds (plain data)."""
    t = tally
    return {
        "traces": {"lines": lines, "unique": t.unique, "superseded": superseded,
                   "measured_now": measured, "from_cache": from_cache},
        "kept": t.kept, "rejected": t.unique - t.kept,
        "kept_share": round(t.kept / t.unique, 4) if t.unique else 0.0,
        "funnel": _funnel(t),
        "tokens": _tokens(t),
        "verifier": {reason: count for reason, (_, count) in _in_first_order(t.verifier)},
        "problems": _problems(t),
        "per_source": _per_source(t),
        "judge": _judge(cfg, judged),
        **{drop: {"flagged": t.dropped[drop], "examples": [s for _, steps in t.examples[drop] for s in steps][:10]}
           for drop in ("bad_step", "unsound_step")},
        "throughput": {"seconds": round(elapsed, 3), "traces_per_s": round(t.unique / elapsed, 1) if elapsed else None,
                       "workers": cfg.workers or None, "engine": cfg.engine},
    }


def _funnel(t: Tally) -> list[dict]:
    left = t.unique
    steps = [{"step": "input", "dropped": 0, "left": left, "tokens_dropped": 0}]
    for reason in funnel_order(list(t.dropped)):
        left -= t.dropped[reason]
        steps.append({"step": reason, "dropped": t.dropped[reason], "left": left,
                      "tokens_dropped": t.drop_tokens[reason]})
    return steps


def _tokens(t: Tally) -> dict:
    total = t.tokens_kept + t.tokens_dropped
    return {"kept": t.tokens_kept, "dropped": t.tokens_dropped,
            "kept_share": round(t.tokens_kept / total, 4) if total else 0.0}


def _problems(t: Tally) -> dict:
    ks = [k for k in _KS if k <= t.max_n]
    pass_k = {str(k): round(t.pass_k[k][0] / t.pass_k[k][1], 4) if t.pass_k[k][1] else None for k in ks}
    return {"count": t.problems, "with_kept": t.with_kept, "without_kept": t.problems - t.with_kept,
            "pass_rate_mean": round(t.rates[0] / t.rates[1], 4) if t.rates[1] else None,
            "all_wrong": t.all_wrong,
            "correct_per_problem": dict(sorted(t.dist.items(), key=lambda kv: _frac_key(kv[0]))),
            "pass_at_k": pass_k}


def _frac_key(text: str) -> tuple[int, int]:
    c, n = text.split("/")
    return int(n), int(c)


def _per_source(t: Tally) -> dict:
    out = {}
    for name, (_, traces, kept, correct) in _in_first_order(t.sources):
        out[name] = {"traces": traces, "kept": kept, "correct": correct,
                     "kept_share": round(kept / traces, 4), "correct_share": round(correct / traces, 4)}
    return out


def _judge(cfg: Any, judged: dict) -> dict:
    if not cfg.judge.enabled:
        return {"enabled": False}
    undecided = [j for j in judged.values() if not j["audit"]]
    audits = [(j["rule"], j["judge"]["correct"]) for j in judged.values() if j["audit"]]
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
