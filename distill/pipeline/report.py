"""The run report: report.md and report.html (self-contained, plots embedded) in the run folder.

Usage:
    md_path, html_path = write_report(run_dir, collect(run_dir))

One list of blocks (headings, paragraphs, tables, images, code) renders to both Markdown and
HTML, so the two always say the same thing. Plots are PNGs (distill.plots) in plots/;
the HTML carries them as base64 so it can be mailed or attached on its own.
"""

from __future__ import annotations

import base64
import html
import logging
from pathlib import Path

from distill import plots
from distill.layout import RunLayout
from distill.metrics import family_table, metric_rows
from distill.pipeline.summary import Figures, accuracy_text, summary_rows
from distill.records import write_text_atomic

log = logging.getLogger(__name__)

Block = tuple  # ("h2", text) | ("p", text) | ("table", header, rows) | ("img", path, alt) | ("code", text)


def write_report(run_dir: Path, fig: Figures) -> tuple[Path, Path]:
    """Write report.md and report.html; returns both paths."""
    run_dir = Path(run_dir)
    blocks = build_blocks(run_dir, fig)
    md_path, html_path = RunLayout(run_dir).report_md, RunLayout(run_dir).report_html
    write_text_atomic(md_path, to_markdown(blocks))
    write_text_atomic(html_path, to_html(blocks, run_dir, title=f"distill run: {run_dir.name}"))
    return md_path, html_path


def build_blocks(run_dir: Path, fig: Figures) -> list[Block]:
    charts = draw_charts(RunLayout(run_dir).plots, fig)
    blocks: list[Block] = [("h1", f"distill run: {run_dir.name}"),
                           ("p", f"Accuracy on held-out problems, before -> after: **{accuracy_text(fig)}**")]
    blocks += [("h2", "Summary"), ("table", ["", ""], [r for r in summary_rows(fig) if not r[0].startswith("  ") and r[0] != "report"])]
    if fig.funnel or fig.traces is not None:
        blocks += [("h2", "Filter funnel"),
                   ("p", f"{_n(fig.traces)} traces from {_n(fig.problems)} problems; {_n(fig.kept)} kept. "
                         "Each dropped trace is in rejected.jsonl with its reason.")]
        blocks += _table_or_none(["dropped by", "traces"], list(fig.funnel.items()))
        blocks += _image(charts, "funnel", "filter funnel")
    if fig.training_log or fig.train_seconds is not None:
        logged = sum(1 for r in fig.training_log if "loss" in r)
        made = ("The adapter scored below was made by finetune-onpolicy: on-policy distillation (reverse KL to the "
                "teacher on the student's own answers) started from finetune's SFT adapter; its curves are below. "
                if fig.adapter_stage == "finetune-onpolicy" else "")
        blocks += [("h2", "Training"),
                   ("p", f"{made}{_n(fig.train_examples)} examples, {logged} logged steps, "
                         f"{'-' if fig.train_seconds is None else f'{fig.train_seconds:.0f} s'} of training.")]
        if fig.checkpoint:
            c = fig.checkpoint
            blocks += [("p", f"Kept the adapter of step {c['kept_step']} ({c['by']}"
                             + (f" {c['dev_value']:.1%} on {c['dev_problems']} dev problems" if "dev_value" in c else "")
                             + (f"; the last step was {c['last_step']}" if c.get("last_step") else "") + ").")]
        blocks += _image(charts, "loss", "training loss")
    if fig.accuracy_before or fig.accuracy_after:
        blocks += [("h2", "Accuracy before and after")]
        blocks += _table_or_none(["", "before", "after"], _accuracy_rows(fig))
        header, families = family_table(fig.accuracy_after, fig.accuracy_before)
        if families:
            blocks += [("p", "Per problem family: pass@1 and sound accuracy (correct, and every checkable step "
                             "of the student's reasoning true), 95% Wilson intervals; chance is always giving "
                             "the family's most common training answer.")]
            blocks += _table_or_none(header, families)
        blocks += _image(charts, "accuracy", "accuracy before and after")
    if fig.gate:
        blocks += [("h2", "Regression check"), ("p", " ".join(fig.gate))]
    if fig.ablation:
        from distill.pipeline.ablation import table_rows

        header, rows = table_rows(fig.ablation)
        blocks += [("h2", "Ablation: does filtering pay, does reasoning pay?"),
                   ("p", f"Same student, {fig.ablation.max_steps} steps each, scored on the held-out problems. "
                         + fig.ablation.note + "."), ("table", header, rows)]
    from distill.pipeline.loop_report import loop_blocks

    blocks += loop_blocks(run_dir)
    if fig.tokens:
        blocks += [("h2", "Tokens and cost"),
                   ("table", ["prompt", "completion", "reasoning", "cached", "cost (USD)"],
                    [[f"{fig.tokens.get(k, 0):,}" for k in ("prompt", "completion", "reasoning", "cached")]
                     + [f"{fig.cost_usd or 0:.4f}"]])]
    if fig.steps:
        blocks += [("h2", "Time per stage"),
                   ("table", ["stage", "seconds", "status", "attempts", "key"],
                    [[n, f"{s.get('seconds', 0):.1f}", s.get("status", "?") + (" (reused)" if _reused(s) else ""),
                      str(s.get("attempts", 1)), s.get("key", "")] for n, s in fig.steps.items()])]
        blocks += _image(charts, "stages", "time per stage")
    blocks += [("h2", "Artefacts"), ("links", [(label, path) for label, path in fig.artefacts.items()])]
    recipe = RunLayout(run_dir).recipe
    if recipe.exists():
        blocks += [("h2", "Resolved recipe"), ("code", recipe.read_text(encoding="utf-8"))]
    return blocks


def _accuracy_rows(fig: Figures) -> list[list[str]]:
    """A row per metric of the eval record (breakdowns are the family table), before and after."""
    rows = metric_rows(fig.accuracy_after, fig.accuracy_before)
    return [[r.label, r.text("before"), r.text("after")] for r in rows if r.group is None]


def draw_charts(folder: Path, fig: Figures) -> dict[str, Path]:
    """Draw every chart the figures allow (:mod:`distill.plots`); returns name -> PNG path."""
    todo = {"funnel": lambda path: plots.funnel(fig.filter_stats, path) if fig.filter_stats else None,
            "loss": lambda path: plots.loss(fig.training_log, path),
            "accuracy": lambda path: plots.accuracy(metric_rows(fig.accuracy_after, fig.accuracy_before), path),
            "stages": lambda path: plots.stages(fig.steps, path)}
    charts = {}
    for name, draw in todo.items():
        try:
            if draw(folder / f"{name}.png"):
                charts[name] = folder / f"{name}.png"
        except Exception as exc:  # a chart is never worth failing a finished run
            log.warning("report: could not draw the %s chart (%s)", name, exc)
    return charts


def _reused(state: dict) -> bool:
    return bool(state.get("reused_at")) and state["reused_at"] >= state.get("finished_at", "")


def _image(charts: dict[str, Path], name: str, alt: str) -> list[Block]:
    return [("img", charts[name], alt)] if name in charts else []


def _table_or_none(header: list[str], rows: list) -> list[Block]:
    return [("table", header, [list(map(str, r)) for r in rows])] if rows else []


def _n(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


# ---------------------------------------------------------------- rendering


def to_markdown(blocks: list[Block]) -> str:
    out: list[str] = []
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2"):
            out += [("# " if kind == "h1" else "## ") + block[1], ""]
        elif kind == "p":
            out += [block[1], ""]
        elif kind == "table":
            header, rows = block[1], block[2]
            out.append("| " + " | ".join(header) + " |")
            out.append("|" + "|".join("---" for _ in header) + "|")
            out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
            out.append("")
        elif kind == "img":
            out += [f"![{block[2]}]({Path('plots') / Path(block[1]).name})", ""]
        elif kind == "links":
            out += [f"- {label}: [{path.name}]({path.name})" for label, path in block[1]] + [""]
        elif kind == "code":
            out += ["```yaml", block[1].rstrip(), "```", ""]
    return "\n".join(out)


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_html(blocks: list[Block], run_dir: Path, title: str) -> str:
    body: list[str] = []
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2"):
            body.append(f"<{kind}>{html.escape(block[1])}</{kind}>")
        elif kind == "p":
            body.append(f"<p>{_inline(block[1])}</p>")
        elif kind == "table":
            head = "".join(f"<th>{html.escape(h)}</th>" for h in block[1])
            rows = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in block[2])
            body.append(f"<table>{'<tr>' + head + '</tr>' if any(block[1]) else ''}{rows}</table>")
        elif kind == "img":
            data = base64.b64encode(Path(block[1]).read_bytes()).decode()
            body.append(f'<figure><img alt="{html.escape(block[2])}" src="data:image/png;base64,{data}">'
                        f"<figcaption>{html.escape(block[2])}</figcaption></figure>")
        elif kind == "links":
            items = "".join(f'<li>{html.escape(label)}: <a href="{html.escape(path.name)}">{html.escape(path.name)}</a>'
                            f"</li>" for label, path in block[1])
            body.append(f"<ul>{items}</ul>")
        elif kind == "code":
            body.append(f"<details><summary>show</summary><pre>{html.escape(block[1])}</pre></details>")
    return _PAGE.format(title=html.escape(title), body="\n".join(body))


def _inline(text: str) -> str:
    parts = html.escape(text).split("**")
    return "".join(f"<strong>{p}</strong>" if i % 2 else p for i, p in enumerate(parts))




_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 920px; margin: 2em auto;
       padding: 0 1em; color: #1f2328; }}
h1 {{ font-size: 1.6em; border-bottom: 1px solid #d0d7de; padding-bottom: .3em; }}
h2 {{ font-size: 1.25em; margin-top: 1.8em; border-bottom: 1px solid #eaeef2; padding-bottom: .2em; }}
table {{ border-collapse: collapse; margin: .8em 0; }}
th, td {{ border: 1px solid #d0d7de; padding: .3em .7em; text-align: left; vertical-align: top; }}
th {{ background: #f6f8fa; }}
td:not(:first-child) {{ font-variant-numeric: tabular-nums; }}
figure {{ margin: 1em 0; }} img {{ max-width: 100%; border: 1px solid #eaeef2; }}
figcaption {{ color: #656d76; font-size: .9em; }}
pre {{ background: #f6f8fa; padding: 1em; overflow-x: auto; font-size: 13px; }}
</style></head>
<body>
{body}
</body></html>
"""
