"""Every chart distill draws (matplotlib, Agg): filter funnel, training loss, accuracy, time per stage, rounds.

Usage:
    from distill import plots
    plots.funnel(stats, Path("filter_funnel.png"))          # stats.json of the filter (a dict)
    plots.loss(rows, Path("loss.png"))                      # loss.jsonl rows; None when nothing to draw
    plots.accuracy(metric_rows(after, before), Path("accuracy.png"))
    plots.stages({"filter": {"seconds": 3.1}}, Path("stages.png"))   # seconds per stage
    plots.rounds(loop_rows, Path("rounds.png"))

Each function takes plain data from a record, writes the PNG atomically and returns its path (None
when there is nothing to draw). The filter, finetune, the run report and the STaR rounds all draw
through here, so a chart looks the same wherever it appears.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from distill.metrics import MetricRow

__all__ = ["funnel", "loss", "accuracy", "stages", "rounds"]

_BLUE, _GREEN, _RED, _GREY, _ORANGE = "#4c72b0", "#55a868", "#c44e52", "#8c8c8c", "#dd8452"
_SERIES = ("tab:green", "tab:purple", "tab:orange", "tab:brown", "tab:pink")


def _figure(width: float = 6.4, height: float = 3.2, panels: int = 1, **grid: Any):
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(panels if grid.get("vertical") else 1, 1 if grid.get("vertical") else panels,
                                figsize=(width, height), dpi=110, squeeze=False,
                                **({"gridspec_kw": grid["gridspec_kw"]} if "gridspec_kw" in grid else {}))
    axes = list(axes.flat)
    for ax in axes:
        ax.spines[["top", "right"]].set_visible(False)
    return figure, axes


def _save(figure, path: Path) -> Path:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    figure.savefig(tmp, format="png")
    plt.close(figure)
    tmp.replace(path)
    return path


def funnel(stats: dict, path: Path) -> Path | None:
    """Traces left after each check (and dropped there), beside the correct-samples-per-problem histogram."""
    steps = stats.get("funnel") or []
    if not steps:
        return None
    dist = (stats.get("problems") or {}).get("correct_per_problem") or {}
    figure, (ax1, ax2) = _figure(11, max(3.0, 0.45 * len(steps) + 1.2), panels=2,
                                 gridspec_kw={"width_ratios": [3, 2]})
    names = [s["step"] for s in steps][::-1]
    left = [s["left"] for s in steps][::-1]
    dropped = [s["dropped"] for s in steps][::-1]
    ax1.barh(names, left, color=_BLUE, label="left")
    ax1.barh(names, dropped, left=left, color=_ORANGE, label="dropped here")
    for y, (value, gone) in enumerate(zip(left, dropped)):
        ax1.text(value, y, f" {value}" + (f" (-{gone})" if gone else ""), va="center", fontsize=8)
    ax1.set_xlabel("traces")
    ax1.set_xlim(0, max(left + [1]) * 1.2)
    ax1.set_title(f"Filter funnel: kept {stats.get('kept')} of {(stats.get('traces') or {}).get('unique')}",
                  fontsize=10)
    ax1.legend(loc="lower right", fontsize=8, frameon=False)
    ax2.bar(range(len(dist)), list(dist.values()), color=_GREEN, tick_label=list(dist) or None)
    ax2.set_title("correct samples per problem", fontsize=10)
    ax2.set_ylabel("problems")
    ax2.tick_params(axis="x", labelrotation=60, labelsize=7)
    return _save(figure, path)


def loss(rows: list[dict], path: Path) -> Path | None:
    """Train loss (with a moving average when noisy), eval loss, and every ``dev_<metric>`` on its own axis.

    On-policy rows (they have ``reverse_kl``) draw the reverse KL per scored token instead of the loss:
    the sampled estimator's loss is a policy-gradient surrogate whose value means little.
    """
    is_kl = any("reverse_kl" in r for r in rows)
    key, name = ("reverse_kl", "reverse KL") if is_kl else ("loss", "train loss")
    train = [(r["step"], r[key]) for r in rows if key in r]
    evals = [(r["step"], r["eval_loss"]) for r in rows if "eval_loss" in r]
    if len(train) + len(evals) < 2:
        return None
    figure, (ax,) = _figure()
    many = len(train) >= 8
    if train:
        ax.plot(*zip(*train), color=_BLUE, linewidth=1.2 if many else 2, alpha=0.45 if many else 1.0,
                marker=None if many else "o", markersize=4, label=name)
    if many:  # a moving average shows the trend through the noise of small batches
        window = max(2, len(train) // 10)
        values = [v for _, v in train]
        smooth = [sum(values[max(0, i - window + 1):i + 1]) / len(values[max(0, i - window + 1):i + 1])
                  for i in range(len(values))]
        ax.plot([s for s, _ in train], smooth, color=_BLUE, linewidth=2, label=f"train, mean of {window}")
    if evals:
        ax.plot(*zip(*evals), "o-", color=_ORANGE, linewidth=1.2, markersize=4, label="eval loss")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("reverse KL (student || teacher) per token" if is_kl else "loss (assistant tokens)")
    handles, labels = ax.get_legend_handles_labels()
    dev = {k.removeprefix("dev_"): [(r["step"], r[k]) for r in rows if k in r]
           for k in dict.fromkeys(k for r in rows for k in r if k.startswith("dev_"))}
    if dev:  # loss is not the target: verified dev accuracy, what chose the kept step, on its own axis
        acc = ax.twinx()
        for (name, points), colour in zip(dev.items(), _SERIES):
            acc.plot(*zip(*points), "s-", color=colour, linewidth=1.5, markersize=4, label=f"dev {name}")
        acc.set_ylim(0, 1)
        acc.set_ylabel("dev accuracy (verified)")
        more = acc.get_legend_handles_labels()
        handles, labels = handles + more[0], labels + more[1]
    ax.legend(handles, labels, frameon=False, fontsize=8)
    ax.set_title(("On-policy reverse KL" if is_kl else "Training loss") + (" and dev accuracy" if dev else ""),
                 fontsize=10)
    return _save(figure, path)


def accuracy(rows: list[MetricRow], path: Path) -> Path | None:
    """One panel per accuracy (pass@1, sound, ...): all problems and each family, before and after, with
    their intervals. ``rows``: :func:`distill.metrics.metric_rows` (accuracy and family rows are used)."""
    rows = [r for r in rows if r.section in ("accuracy", "family")]
    keys = list(dict.fromkeys(r.key for r in rows if r.section == "accuracy"))
    if not keys:
        return None
    groups = ["all"] + list(dict.fromkeys(r.group for r in rows if r.section == "family"))
    sides = [s for s in ("before", "after") if any(getattr(r, s) is not None for r in rows)]
    figure, axes = _figure(min(11.0, max(4.8, 0.5 * len(groups) * len(sides) + 2.0)), 2.7 * len(keys),
                           panels=len(keys), vertical=True)
    width = 0.8 / len(sides)
    for ax, key in zip(axes, keys):
        by_group = {("all" if r.group is None else r.group): r for r in rows if r.key == key}
        for i, side in enumerate(sides):
            xs, values, errs = [], [], [[], []]
            for x, group in enumerate(groups):
                score = getattr(by_group[group], side) if group in by_group else None
                if score is None:
                    continue
                value = 100 * score.value
                xs.append(x + (i - (len(sides) - 1) / 2) * width)
                values.append(value)
                errs[0].append(max(0.0, value - 100 * (score.low if score.low is not None else score.value)))
                errs[1].append(max(0.0, 100 * (score.high if score.high is not None else score.value) - value))
            bars = ax.bar(xs, values, width=width * 0.92, color=_GREY if side == "before" else _GREEN, label=side,
                          yerr=errs, capsize=3, error_kw={"elinewidth": 0.8, "ecolor": "#444"})
            ax.bar_label(bars, labels=[f"{v:.0f}" for v in values], padding=2, fontsize=7)
        ax.set_xticks(range(len(groups)), ["all problems"] + [g.replace("_", " ") for g in groups[1:]], fontsize=8,
                      rotation=20 if len(groups) > 5 else 0, ha="right" if len(groups) > 5 else "center")
        if len(groups) > 1:  # the overall score apart from its families
            ax.axvline(0.5, color="#d0d7de", linewidth=1, linestyle=":")
        ax.set_xlim(-0.8, len(groups) - 0.2)  # a lone group keeps bars of the usual width
        ax.set_ylim(0, 112)
        ax.set_yticks(range(0, 101, 25))
        label = next(r.label for r in rows if r.key == key and r.section == "accuracy")
        ax.set_ylabel(f"{key} (%)")
        ax.set_title(f"{label}: all problems{' and per family' if len(groups) > 1 else ''} (95% interval)",
                     fontsize=9)
    axes[0].legend(frameon=False, fontsize=8, ncol=2, loc="upper right")
    return _save(figure, path)


def stages(steps: dict[str, dict], path: Path) -> Path | None:
    """Seconds per stage (all attempts), in the run's order."""
    if not steps:
        return None
    names = list(steps)[::-1]
    seconds = [float(steps[n].get("seconds", 0.0)) for n in names]
    figure, (ax,) = _figure(6.4, 0.4 * len(names) + 1.0)
    bars = ax.barh(names, seconds, color=_BLUE)
    ax.bar_label(bars, labels=[f"{s:.1f} s" for s in seconds], padding=3, fontsize=9)
    ax.set_xlim(0, max(seconds + [1]) * 1.2)
    ax.set_xlabel("seconds (all attempts)")
    ax.set_title("Time per stage", fontsize=10)
    return _save(figure, path)


def rounds(rows: list[dict], path: Path) -> Path | None:
    """Held-out pass@1 per STaR round with its interval, and kept traces per round as bars (loop.json rows)."""
    scored = [r for r in rows if r.get("accuracy") is not None]
    if not scored:
        return None
    figure, (ax,) = _figure(5.6, 3.2)
    x = [r["round"] for r in scored]
    y = [100 * r["accuracy"] for r in scored]
    err = [[max(0.0, v - 100 * (r.get("low") or r["accuracy"])) for v, r in zip(y, scored)],
           [max(0.0, 100 * (r.get("high") or r["accuracy"]) - v) for v, r in zip(y, scored)]]
    ax.errorbar(x, y, yerr=err, marker="o", capsize=5, color="#1a7f37")
    ax.set_xticks(x)
    ax.set_xlabel("round")
    ax.set_ylabel("held-out pass@1 (%)")
    ax.set_ylim(0, 100)
    kept = ax.twinx()
    kept.bar(x, [r["kept"] for r in scored], alpha=0.2, color="#57606a", width=0.4)
    kept.set_ylabel("kept traces")
    ax.set_title("STaR rounds (95% interval)", fontsize=10)
    return _save(figure, path)
