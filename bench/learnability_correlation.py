"""Proof harness: do the student-side scores rank teachers the way training on them does? (Spearman rho)

Usage:
    .venv/bin/python bench/learnability_correlation.py                 # the default's student and budget: hours
    .venv/bin/python bench/learnability_correlation.py --student tiny --problems 24 --steps 2 --dev 6 --max-new-tokens 8
    OMP_NUM_THREADS=1 .venv/bin/python bench/learnability_correlation.py --problems 300 --steps 20 --batch 4 \
        --dev 60 --eval-batch 60 --score-sample 45 --out /tmp/corr     # the README's table: ~13 min a teacher, loaded

Seven "teachers" are made from the offline teacher on the same training problems: its three
styles (plain, positions, compact), compact with 30% deliberate mistakes (kept: no filter),
and two shapes expected to teach worse: compact with its steps shuffled, and compact padded with
filler lines (longer, no more information; small students learn worse from long traces, Li et
al. 2502.12143). Each teacher's traces are scored with the student (RSR, local naturalness, mean
surprisal, and the mean trained length as a naive baseline), then the student is LoRA-trained on
each with the default's settings and an equal budget (same steps, batch, learning rate, seed) and
scored on the dev split (never the held-out set). The table ends with Spearman's rho between
each score and dev sound accuracy and pass@1 across teachers. A score that ranks teachers well
has rho near -1 (RSR, surprisal: lower is better) or +1 (local naturalness). With seven teachers
|rho| >= 0.79 is significant at 5% (two-sided), with six 0.89; read a single run with that in mind.
Everything goes in --out (kept), so a run can be inspected and re-scored.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

SYSTEM = "Reason step by step, then give the answer in \\boxed{}."
MIX = "mix=arithmetic:3,decimal_compare:2,letter_count:1"
# name -> (offline style, mistake rate, reshape)
TEACHERS = {
    "compact": ("compact", 0.0, None), "positions": ("positions", 0.0, None), "plain": ("plain", 0.0, None),
    "compact+mistakes30": ("compact", 0.3, None), "compact-shuffled": ("compact", 0.0, "shuffle"),
    "compact+filler": ("compact", 0.0, "filler"), "plain+mistakes30": ("plain", 0.3, None),
}


def _student(name: str, tmp: Path) -> str:
    if name == "tiny":
        from tiny_model import make_tiny_student  # bench/tiny_model.py: this script's folder is on sys.path

        return str(make_tiny_student(tmp / "tiny", hidden_size=64, layers=2))
    return name


def _reshape(reasoning: str, how: str | None, rng: random.Random) -> str:
    from distill.offline.families import reshape

    if how == "filler":  # the offline teacher's own wordy shape (a filler sentence after every line)
        return reshape(reasoning, is_wordy=True, is_terse=False)
    lines = reasoning.split("\n")
    if how == "shuffle":
        rng.shuffle(lines)
    return "\n".join(lines)


def write_teacher(name: str, problems: list[dict], path: Path) -> Path:
    """One teacher's traces over ``problems``, in generate's record format (no filter applied)."""
    from distill.offline import families as offline

    style, mistakes, how = TEACHERS[name]
    rng = random.Random(f"{name}:0")
    with path.open("w", encoding="utf-8") as f:
        for p in problems:
            messages = [{"role": "user", "content": p["question"]}]
            reasoning, content = offline.respond(messages, rng, mistakes, style)
            rec = {"schema": 1, "id": p["id"], "sample": 0, "question": p["question"], "answer": p["answer"],
                   "kind": p["kind"], "family": p.get("family"), "messages": messages,
                   "reasoning": _reshape(reasoning, how, rng), "content": content, "error": None}
            f.write(json.dumps(rec) + "\n")
    return path


def score_teacher(scorer, path: Path, sample: int | None) -> dict:
    """The teacher's scores over its first ``sample`` traces (all: None); the same problems for every teacher."""
    from distill.examples import read_samples
    from distill.learnability.store import aggregate

    samples, _ = read_samples(path, SYSTEM)
    encoded = scorer.encode(samples[:sample])
    return aggregate(scorer.score(encoded.examples))


def train_and_eval(student: str, data: Path, dev: Path, out: Path, args: argparse.Namespace) -> dict:
    """The default's finetune settings at an equal budget, then greedy dev eval; dev metrics."""
    from distill.config import load_config
    from distill.evaluate import run as evaluate
    from distill.evaluate.config import EvalConfig
    from distill.finetune import run as finetune
    from distill.finetune.config import FinetuneConfig

    ft = load_config(FinetuneConfig, None, [
        f"data={data}", f"student={student}", f"out={out / 'adapter'}", f"system_prompt={SYSTEM}", "max_length=256",
        f"max_steps={args.steps}", f"batch_size={args.batch}", "learning_rate=0.001", "warmup_ratio=0.1", "lora.r=16",
        "lora.alpha=32", "lora.dropout=0.0", "progress=false", "seed=0"])
    finetune(ft)
    ev = load_config(EvalConfig, None, [
        f"problems={dev}", f"student={student}", f"adapter={out / 'adapter'}", f"out={out / 'eval'}",
        f"max_new_tokens={args.max_new_tokens}", "temperature=0.0", f"batch_size={args.eval_batch}", "progress=false"])
    report = json.loads((evaluate(ev) / "report.json").read_text())
    return {"pass@1": report["metrics"]["pass@1"], "sound": report["metrics"]["sound"]}


def spearman(x: list[float], y: list[float]) -> float | None:
    """Spearman's rho: Pearson correlation of the average ranks (ties share their mean rank)."""
    def ranks(v: list[float]) -> list[float]:
        order = sorted(range(len(v)), key=v.__getitem__)
        out = [0.0] * len(v)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and v[order[j + 1]] == v[order[i]]:
                j += 1
            for k in range(i, j + 1):
                out[order[k]] = (i + j) / 2 + 1
            i = j + 1
        return out

    if len(x) < 3:
        return None
    rx, ry = ranks(x), ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    sx = sum((a - mx) ** 2 for a in rx) ** 0.5
    sy = sum((b - my) ** 2 for b in ry) ** 0.5
    return cov / (sx * sy) if sx and sy else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--student", default="smollm2", help="smollm2 | tiny | a folder")
    ap.add_argument("--problems", type=int, default=1200, help="training problems (the default's mix)")
    ap.add_argument("--steps", type=int, default=80, help="finetune steps per teacher")
    ap.add_argument("--batch", type=int, default=8, help="finetune batch size (the default's: 8)")
    ap.add_argument("--dev", type=int, default=150, help="dev problems (offline:dev, 3 families)")
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--eval-batch", type=int, default=150)
    ap.add_argument("--score-sample", type=int, default=None,
                    help="score each teacher on its first N traces only (the mixed problems, shared); all: unset")
    ap.add_argument("--teachers", default=",".join(TEACHERS), help="comma-separated subset of " + ",".join(TEACHERS))
    ap.add_argument("--out", default=None, help="work folder (default: a temporary one, removed)")
    args = ap.parse_args()

    from distill.learnability.config import ScoringConfig
    from distill.learnability.scorer import Scorer
    from distill.offline.sets import from_spec

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.out or tmp)
        work.mkdir(parents=True, exist_ok=True)
        student = _student(args.student, work)
        problems = from_spec(f"offline:train?n={args.problems}&{MIX}")
        dev = work / "dev.jsonl"
        dev.write_text("".join(json.dumps(p) + "\n" for p in from_spec(f"offline:dev?n={args.dev}")))
        scorer = Scorer.load(ScoringConfig(student=student, system_prompt=SYSTEM, max_length=256))
        rows = []
        for name in args.teachers.split(","):
            started = time.perf_counter()
            traces = write_teacher(name, problems, work / f"{name}.jsonl")
            scores = score_teacher(scorer, traces, args.score_sample)
            scored_s = time.perf_counter() - started
            dev_metrics = train_and_eval(student, traces, dev, work / name, args)
            rows.append({"teacher": name, **scores, **dev_metrics, "score_s": round(scored_s, 1),
                         "total_s": round(time.perf_counter() - started, 1)})
            print(json.dumps(rows[-1]), flush=True)
    _report(rows, scorer.key, student)


def _report(rows: list[dict], key: str, student: str) -> None:
    print(f"\nstudent {Path(student).name}, scoring key {key}; dev metrics after an equal training budget")
    print(f"{'teacher':20} {'RSR':>7} {'local nat.':>10} {'surprisal':>9} {'tokens':>7} {'dev sound':>9} {'dev pass@1':>10}")
    for r in rows:
        print(f"{r['teacher']:20} {r['rsr']:7.3f} {r['local_naturalness']:10.3f} {r['mean_surprisal']:9.3f} "
              f"{r['mean_tokens']:7.1f} {r['sound']:9.3f} {r['pass@1']:10.3f}")
    print("\nSpearman rho across teachers (RSR, surprisal, tokens: expect < 0; local naturalness: expect > 0)")
    for score in ("rsr", "local_naturalness", "mean_surprisal", "mean_tokens"):
        xs = [r[score] for r in rows]
        rho = {m: spearman(xs, [r[m] for r in rows]) for m in ("sound", "pass@1")}
        show = {m: "n/a" if v is None else f"{v:+.2f}" for m, v in rho.items()}
        print(f"  {score:18} vs dev sound {show['sound']:>6}   vs dev pass@1 {show['pass@1']:>6}")


if __name__ == "__main__":
    main()
