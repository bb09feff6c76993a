"""The run report's charts (matplotlib, Agg backend): filter funnel, loss curve, accuracy, time per stage.

Usage:
    charts = draw_all(run_dir / "plots", figures)    # {"funnel": Path, "loss": Path, ...}

Each chart is drawn only when its figures exist, so a partial run still gets a report.
"""

from __future__ import annotations

import logging
from pathlib import Path

from distill.pipeline.summary import Figures

log = logging.getLogger(__name__)

_BLUE, _GREEN, _RED, _GREY = "#4c72b0", "#55a868", "#c44e52", "#8c8c8c"


def draw_all(folder: Path, fig: Figures) -> dict[str, Path]:
    """Draw every chart the figures allow; returns name -> PNG path."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    folder.mkdir(parents=True, exist_ok=True)
    charts = {}
    for name, draw in (("funnel", _funnel), ("loss", _loss), ("accuracy", _accuracy), ("stages", _stages)):
        path = folder / f"{name}.png"
        try:
            if draw(fig, path):
                charts[name] = path
        except Exception as exc:  # a chart is never worth failing a finished run
            log.warning("report: could not draw the %s chart (%s)", name, exc)
    return charts


def _figure(width: float = 6.4, height: float = 3.2):
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots(figsize=(width, height), dpi=110)
    ax.spines[["top", "right"]].set_visible(False)
    return figure, ax


def _save(figure, path: Path) -> bool:
    import matplotlib.pyplot as plt

    figure.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    figure.savefig(tmp, format="png")
    plt.close(figure)
    tmp.replace(path)
    return True


def _funnel(fig: Figures, path: Path) -> bool:
    if fig.traces is None:
        return False
    rows = [("traces", (fig.traces or 0) + (fig.failed or 0), _GREY)]
    rows += [(f"- {reason}", count, _RED) for reason, count in
             fig.funnel.items() if reason not in ("correct", "kept")]
    if fig.kept is not None:
        rows.append(("kept", fig.kept, _GREEN))
    figure, ax = _figure(6.4, 0.45 * len(rows) + 1.0)
    labels = [r[0] for r in rows][::-1]
    values = [r[1] for r in rows][::-1]
    bars = ax.barh(labels, values, color=[r[2] for r in rows][::-1])
    ax.bar_label(bars, padding=3, fontsize=9)
    ax.set_xlabel("traces")
    ax.set_title("Filter funnel: what was kept, and why the rest went", fontsize=10)
    ax.set_xlim(0, max(values + [1]) * 1.15)
    return _save(figure, path)


def _loss(fig: Figures, path: Path) -> bool:
    if len(fig.loss) < 2:
        return False
    steps, losses = zip(*fig.loss)
    figure, ax = _figure()
    many = len(losses) >= 8
    ax.plot(steps, losses, color=_BLUE, linewidth=1.2 if many else 2, alpha=0.45 if many else 1.0,
            marker=None if many else "o", markersize=4, label="loss")
    if many:  # a moving average shows the trend through the noise of small batches
        window = max(2, len(losses) // 10)
        smooth = [sum(losses[max(0, i - window + 1):i + 1]) / len(losses[max(0, i - window + 1):i + 1])
                  for i in range(len(losses))]
        ax.plot(steps, smooth, color=_BLUE, linewidth=2, label=f"mean of {window}")
        ax.legend(frameon=False, fontsize=9)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (assistant tokens)")
    ax.set_title("Training loss", fontsize=10)
    if fig.dev_accuracy:  # verified dev accuracy on its own axis: what chose the kept step
        acc = ax.twinx()
        acc.plot(*zip(*fig.dev_accuracy), "s-", color="tab:green", linewidth=1.5, markersize=4, label="dev pass@1")
        acc.set_ylim(0, 1)
        acc.set_ylabel("dev pass@1 (verified)")
        acc.legend(frameon=False, fontsize=9, loc="upper center")
        ax.set_title("Training loss and dev accuracy", fontsize=10)
    return _save(figure, path)


def _accuracy(fig: Figures, path: Path) -> bool:
    items = [(label, acc) for label, acc in (("before", fig.accuracy_before), ("after", fig.accuracy_after)) if acc]
    if not items:
        return False
    figure, ax = _figure(4.8, 3.4)
    values = [acc["pass@1"] * 100 for _, acc in items]
    errors = [[], []]
    for (_, acc), value in zip(items, values):
        interval = acc.get("pass@1_interval") or {}
        errors[0].append(max(0.0, value - interval.get("low", acc["pass@1"]) * 100))
        errors[1].append(max(0.0, interval.get("high", acc["pass@1"]) * 100 - value))
    colours = [_GREY if label == "before" else _GREEN for label, _ in items]
    bars = ax.bar([label for label, _ in items], values, color=colours, width=0.55,
                  yerr=errors, capsize=6, error_kw={"elinewidth": 1, "ecolor": "#444"})
    for bar, value, above in zip(bars, values, errors[1]):  # above the interval's whisker, readable at 0%
        ax.text(bar.get_x() + bar.get_width() / 2, value + above + 2, f"{value:.1f}%", ha="center",
                va="bottom", fontsize=11, fontweight="bold", color="#1f2328")
    ax.set_ylim(0, 110)
    ax.set_yticks(range(0, 101, 20))
    ax.set_ylabel("held-out accuracy, pass@1 (%)")
    problems = items[-1][1].get("problems")
    ax.set_title(f"Student before and after ({problems} problems, 95% interval)", fontsize=10)
    return _save(figure, path)


def _stages(fig: Figures, path: Path) -> bool:
    if not fig.steps:
        return False
    names = list(fig.steps)[::-1]
    seconds = [float(fig.steps[n].get("seconds", 0.0)) for n in names]
    figure, ax = _figure(6.4, 0.4 * len(names) + 1.0)
    bars = ax.barh(names, seconds, color=_BLUE)
    ax.bar_label(bars, labels=[f"{s:.1f} s" for s in seconds], padding=3, fontsize=9)
    ax.set_xlim(0, max(seconds + [1]) * 1.2)
    ax.set_xlabel("seconds (all attempts)")
    ax.set_title("Time per stage", fontsize=10)
    return _save(figure, path)
