"""Time and peak memory of generate, its resume, filter, publish and eval at N rows against a zero-latency fake teacher.

Usage:
    .venv/bin/python bench/million_rows.py                    # 1,000,000 rows, beside a 20,000-row run
    .venv/bin/python bench/million_rows.py --rows 20000       # the small run alone (about 3 minutes on 2 cores)
    .venv/bin/python bench/million_rows.py --rows 200000 --stages generate,filter --keep /tmp/bench
    .venv/bin/python bench/million_rows.py --stages filter,publish --keep /tmp/bench   # on the kept traces
    .venv/bin/python bench/million_rows.py --rows 100000 --small 0 --stages eval       # the large run alone

One problem per row ("what is i + 1?", one answer in ten wrong, ~100 words of reasoning), one
sample each. The teacher is :class:`distill.teacher.server.TeacherServer` with a responder that
answers at once, in a process of its own. Each stage runs in a child process, one after another:
generate, generate again (resume, nothing left), filter (all cores), publish (dry run: the staging
folder with its Parquet shards and cards, secret scan included) and eval's API backend (answers
from the same teacher, scored by the verifier). For each it prints the wall time, the peak RSS
of the stage's own process (``getrusage``, printed by the child), the peak of its whole process
tree (sampled every 0.2 s: filter's workers count), and, beside the small run, what each extra
row cost in tree memory.
With ``--keep``, a later call runs its stages on what an earlier one left in that folder
(``rowsN/traces.jsonl``, ``rowsN/filter/kept.jsonl``): a long generate is run once, then the
stages after it; a stage whose output folder is there already resumes, so give eval a fresh one.
Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODEL = "bench-teacher"
SMALL = 20_000
STAGES = ("generate", "resume", "filter", "publish", "eval")
FILLER = ("so we add one to the number and check that nothing else changes because the question asks "
          "only for next whole after it which is what adding gives then count again carefully each step "
          "from start since a slip costs little here our total stays").split()


# ---------------------------------------------------------------- the teacher (its own process)


def respond(messages: list, request: dict) -> tuple[str, str]:
    """Reasoning and content for "what is i + 1?" at once; every tenth answer is off by one."""
    text = messages[-1]["content"] if isinstance(messages[-1]["content"], str) else ""
    found = re.search(r"what is (\d+) \+ 1", text)
    n = int(found.group(1)) if found else 0
    answer = n + 1 if n % 10 else n + 2
    words = random.Random(n).choices(FILLER, k=90)  # varied, or the filter's loop check drops every trace
    reasoning = f"We need {n} + 1. {n} + 1 = {n + 1}. " + " ".join(words)
    return reasoning, f"The answer is \\boxed{{{answer}}}."


def serve() -> None:
    from distill.teacher.server import TeacherServer

    server = TeacherServer(latency=0.0, responder=respond, model=MODEL, keep_bodies=False).start()
    print("serving", server.base_url, flush=True)
    sys.stdin.read()  # until the parent closes the pipe
    server.stop()


def start_teacher() -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, __file__, "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline().split()
    if len(line) < 2 or line[0] != "serving":
        proc.kill()
        raise SystemExit("the fake teacher did not start")
    return proc, line[1]


# ---------------------------------------------------------------- one stage (a child process)


def child(stage: str, work: Path, url: str, concurrency: int) -> None:
    """Run one stage here, then print this process's peak RSS and its largest child's (MB)."""
    import resource

    try:
        _stage(stage, work, url, concurrency)
        status = 0
    except Exception as exc:  # eval exits non-zero when answers failed; the figures still count
        print(f"{stage}: {type(exc).__name__}: {exc}"[:400], file=sys.stderr)
        status = 1
    own, kids = (resource.getrusage(who).ru_maxrss / 1024 for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    print(json.dumps({"peak_mb": own, "child_peak_mb": kids, "status": status}))


def _stage(stage: str, work: Path, url: str, concurrency: int) -> None:
    from distill.config import load_config

    if stage in ("generate", "resume"):
        from distill.generate.config import GenerateConfig
        from distill.generate.stage import run

        run(GenerateConfig(problems=str(work / "problems.jsonl"), base_url=url, model=MODEL, concurrency=concurrency,
                           max_tokens=512, out=str(work / "traces.jsonl"), progress=False, request_timeout=600.0))
    elif stage == "filter":
        from distill.filter import FilterConfig, run

        run(load_config(FilterConfig, None, [f"traces={work / 'traces.jsonl'}", f"out={work / 'filter' / 'kept.jsonl'}",
                                             "plot=false", "progress=false"]))
    elif stage == "publish":
        from distill.publish.config import PublishConfig
        from distill.publish.stage import run

        run(PublishConfig(dataset=str(work / "filter" / "kept.jsonl"), dataset_repo_id="bench/traces",
                          out=str(work / "stage"), dry_run=True))
    elif stage == "eval":
        from distill.evaluate.config import EvalConfig
        from distill.evaluate.stage import run

        run(load_config(EvalConfig, None, [f"problems={work / 'problems.jsonl'}", "backend=api", f"api.base_url={url}",
                                           f"api.model={MODEL}", f"api.concurrency={concurrency}",
                                           "max_new_tokens=512", f"out={work / 'eval'}", "progress=false"]))


def measure(stage: str, work: Path, url: str, concurrency: int) -> dict:
    """Run one stage in a child: wall time, the child's own peak RSS, and its process tree's sampled peak (MB)."""
    import psutil

    env = dict(os.environ, DISTILL_PROGRESS="0", DISTILL_LOG_LEVEL="WARNING")
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, "--child", stage, str(work), url, str(concurrency)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    tree_peak = 0
    watched = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            procs = [watched, *watched.children(recursive=True)]
            tree_peak = max(tree_peak, sum(p.memory_info().rss for p in procs))
        except psutil.Error:
            pass
        time.sleep(0.2)
    wall = time.perf_counter() - started
    out, err = proc.stdout.read().decode(), proc.stderr.read().decode(errors="replace")
    lines = out.strip().splitlines()
    if not lines or proc.returncode != 0:
        raise SystemExit(f"{stage} crashed:\n{err[-2000:]}")
    figures = json.loads(lines[-1])
    if figures["status"]:
        print(f"  ({stage} reported an error: {err.strip().splitlines()[-1][:200]})")
    return {"wall": wall, "peak_mb": figures["peak_mb"], "tree_mb": max(tree_peak / 2**20, figures["peak_mb"])}


# ---------------------------------------------------------------- parent


def write_problems(path: Path, rows: int) -> None:
    with path.open("w") as handle:
        for i in range(rows):
            handle.write(json.dumps({"id": f"b{i}", "question": f"Question number {i}: what is {i} + 1?",
                                     "answer": str(i + 1)}) + "\n")


def run_size(rows: int, stages: list[str], url: str, concurrency: int, root: Path) -> dict[str, dict]:
    work = root / f"rows{rows}"
    work.mkdir(parents=True, exist_ok=True)
    write_problems(work / "problems.jsonl", rows)
    figures = {}
    for stage in stages:
        figures[stage] = f = measure(stage, work, url, concurrency)
        print(f"  {rows:>9} rows  {stage:<9}{f['wall']:>9.1f} s{f['peak_mb']:>9.0f} MB peak"
              f"{f['tree_mb']:>9.0f} MB tree", flush=True)
    return figures


def table(small: dict, big: dict | None, rows: int, small_rows: int = SMALL) -> None:
    if not small:
        return
    k = f"{small_rows // 1000}k"
    head = f"{'stage':<10}{k + ' s':>8}{k + ' MB':>8}{k + ' tree':>9}"
    if big:
        head += f"{f'{rows // 1000}k s':>10}{f'{rows // 1000}k MB':>10}{f'{rows // 1000}k tree':>10}{'KB/row':>8}"
    print("\n" + head)
    for stage, s in small.items():
        line = f"{stage:<10}{s['wall']:>8.1f}{s['peak_mb']:>8.0f}{s['tree_mb']:>9.0f}"
        if big and stage in big:
            b = big[stage]
            per_row = (b["tree_mb"] - s["tree_mb"]) * 1024 / (rows - small_rows)
            line += f"{b['wall']:>10.1f}{b['peak_mb']:>10.0f}{b['tree_mb']:>10.0f}{per_row:>8.2f}"
        print(line)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        return serve()
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        return child(sys.argv[2], Path(sys.argv[3]), sys.argv[4], int(sys.argv[5]))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--stages", default=",".join(STAGES), help="comma-separated, in this order: " + ",".join(STAGES))
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--keep", type=Path, default=None, help="work folder to keep (default: a temporary one)")
    parser.add_argument("--small", type=int, default=SMALL, help="the small run beside it (0: none)")
    args = parser.parse_args()
    stages = [s for s in STAGES if s in args.stages.split(",")]
    root = args.keep or Path(tempfile.mkdtemp(prefix="million-rows-"))
    teacher, url = start_teacher()
    try:
        print(f"fake teacher at {url}; work in {root}; {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
        small = run_size(args.small, stages, url, args.concurrency, root) if args.small else {}
        big = run_size(args.rows, stages, url, args.concurrency, root) if args.rows != args.small else None
    finally:
        teacher.stdin.close()
        teacher.wait(timeout=30)
    table(small, big, args.rows, args.small)


if __name__ == "__main__":
    main()
