"""Benchmark: which offline trace shape (and how many training problems) makes the best 135M student,
scored on the dev split in pass@1 and sound accuracy per family, against the current default as anchor.

Usage:
    .venv/bin/python bench/trace_style.py                     # positions:1200 (anchor), compact:1200
    .venv/bin/python bench/trace_style.py --arms compact:1200,compact:900 --mix "" --steps 60   # evenly mixed
    .venv/bin/python bench/trace_style.py --dev "offline:dev?n=45" --steps 20 --out /tmp/ts   # a quick look

Each arm writes offline-teacher traces in its style for its number of training problems (the
offline default's family mix, prompt, mistake rate and seed unless told), filters them,
LoRA-finetunes SmolLM2-135M with the offline default's finetune settings and scores it on the dev
set (never the held-out set) with the offline default's eval settings. The base student is scored once. Prints, per arm and family,
pass@1 and sound accuracy with 95% Wilson intervals and the difference in points from the anchor
(the first arm). Choose on these figures; then measure the chosen default once on offline:eval.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
from pathlib import Path

import yaml

DEFAULTS = Path(__file__).resolve().parents[1] / "distill" / "pipeline" / "offline-default.yaml"


def default_section(section: str) -> dict:
    return yaml.safe_load(DEFAULTS.read_text())[section]


def write_traces(path: Path, style: str, problems: str, mistake_rate: float, seed: int) -> None:
    """Offline-teacher traces in the generate stage's record format, prompted as the default does."""
    from distill.render import DEFAULT_PROMPT
    from distill.offline import families as offline, sets as offline_sets

    template = default_section("generate").get("prompt_template", DEFAULT_PROMPT)
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as f:
        for p in offline_sets.from_spec(problems):
            messages = [{"role": "user", "content": template.format(question=p["question"])}]
            reasoning, content = offline.respond(messages, rng, mistake_rate, style=style)
            f.write(json.dumps({"schema": 1, **p, "sample": 0, "messages": messages, "reasoning": reasoning,
                                "content": content, "finish_reason": "stop", "truncated": False,
                                "model": f"offline-{style}", "error": None}) + "\n")


def stage_config(cls, section: str, folder: Path, overrides: list[str]):
    """The offline default's settings for one stage, with ``overrides``."""
    from distill.config import load_config

    path = folder / f"{section}.yaml"
    path.write_text(yaml.safe_dump(default_section(section)))
    return load_config(cls, str(path), overrides)


def run_arm(style: str, n: int, args, root: Path, with_base: bool) -> dict:
    from distill.evaluate import run as evaluate
    from distill.evaluate.config import EvalConfig
    from distill.filter import FilterConfig, run as filter_traces
    from distill.finetune import run as finetune
    from distill.finetune.config import FinetuneConfig

    folder = root / f"{style}-{n}"
    folder.mkdir(parents=True, exist_ok=True)
    problems = f"offline:train?n={n}" + (f"&mix={args.mix}" if args.mix else "")
    write_traces(folder / "traces.jsonl", style, problems, args.mistake_rate, args.seed)
    kept = filter_traces(stage_config(FilterConfig, "filter", folder, [
        f"traces={folder / 'traces.jsonl'}", f"out={folder / 'kept.jsonl'}", "progress=false", "plot=false"]))
    adapter = finetune(stage_config(FinetuneConfig, "finetune", folder, [
        f"data={kept}", f"out={folder / 'adapter'}", f"max_steps={args.steps}", "save_steps=0", "progress=false"]))
    evaluate(stage_config(EvalConfig, "eval", folder, [
        f"problems={args.dev}", "student=smollm2", f"adapter={adapter}", f"out={folder / 'eval'}",
        "progress=false", f"compare_base={'true' if with_base else 'false'}"]))
    report = json.loads((folder / "eval" / "report.json").read_text())
    stats = json.loads((folder / "stats.json").read_text())
    base = json.loads((folder / "eval" / "base" / "report.json").read_text()) if with_base else None
    return {"arm": f"{style}:{n}", "kept": stats["kept"], "metrics": report["metrics"],
            "base": base["metrics"] if base else None}


def show(results: list[dict]) -> None:
    def cell(f: dict, name: str) -> str:
        ci = f[f"{name}_interval"]
        return f"{100 * f[name]:5.1f}% [{100 * ci['low']:.0f}, {100 * ci['high']:.0f}]"

    anchor = results[0]["metrics"]["by_family"]
    base = results[0]["base"]
    print(f"{'arm':<16} {'family':<16} {'pass@1':>20} {'sound':>20} {'sound - anchor':>15}")
    if base:
        for family, f in base["by_family"].items():
            print(f"{'base (before)':<16} {family:<16} {cell(f, 'pass@1'):>20} {cell(f, 'sound'):>20}")
    for r in results:
        for family, f in r["metrics"]["by_family"].items():
            diff = 100 * (f["sound"] - anchor[family]["sound"])
            print(f"{r['arm']:<16} {family:<16} {cell(f, 'pass@1'):>20} {cell(f, 'sound'):>20} {diff:+14.1f}")
        print(f"{r['arm']:<16} {'(all)':<16} {100 * r['metrics']['pass@1']:19.1f}% {100 * r['metrics']['sound']:19.1f}%"
              f"   kept {r['kept']} traces")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default_mix = default_section("generate")["problems"].partition("mix=")[2].partition("&")[0]
    default_steps = default_section("finetune")["max_steps"]
    parser.add_argument("--arms", default="positions:1200,compact:1200", help="style:train_problems, anchor first")
    parser.add_argument("--mix", default=default_mix, help=f"family weights (the offline default's: {default_mix}; '': even)")
    parser.add_argument("--steps", type=int, default=default_steps,
                        help=f"LoRA steps per arm (the offline default's: {default_steps})")
    parser.add_argument("--dev", default="offline:dev", help="problems to choose on (never offline:eval)")
    parser.add_argument("--mistake-rate", type=float, default=0.15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="working folder (default: a temporary one)")
    args = parser.parse_args()
    if "eval" in args.dev.split("?")[0].split(":")[1:2]:
        parser.error("choose on the dev split, never on the held-out set")
    root = Path(args.out or tempfile.mkdtemp(prefix="trace-style-"))
    arms = [(a.split(":")[0], int(a.split(":")[1])) for a in args.arms.split(",")]
    results = [run_arm(style, n, args, root, with_base=i == 0) for i, (style, n) in enumerate(arms)]
    show(results)
    print(f"(dev set {args.dev}, {args.steps} LoRA steps per arm; folders in {root})")


if __name__ == "__main__":
    main()
