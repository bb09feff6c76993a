"""Throughput and memory of `distill generate` against a fixed-latency loopback teacher, beside a bare
AsyncOpenAI + semaphore loop measured in the same run (the floor to compare against).

Usage:
    .venv/bin/python bench/generate_throughput.py            # 2,000 requests, concurrency 200, latency 1 s
    .venv/bin/python bench/generate_throughput.py --quick    # 400 requests, concurrency 100, small memory check
    .venv/bin/python bench/generate_throughput.py --n 5000 --concurrency 500 --latency 2

The teacher runs in its own process (`python -m distill teacher serve port=0 latency=...`); each
client runs in its own process too, so CPU seconds and peak RSS are the client's alone. Figures
are printed, never asserted: ideal throughput = concurrency / latency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODEL = "bench-teacher"
PROMPT = "Question number {i}: what is {i} + 1?"


# ---------------------------------------------------------------- children (one process per client)


def child_distill(url: str, n: int, c: int, workdir: Path, problems: Path) -> dict:
    from distill.generate.config import GenerateConfig
    from distill.generate.stage import run

    cfg = GenerateConfig(problems=str(problems), base_url=url, model=MODEL, concurrency=c, max_tokens=512,
                         out=str(workdir / "traces.jsonl"), progress=False, request_timeout=600.0)
    t0, cpu0 = time.perf_counter(), time.process_time()
    run(cfg)
    return {"wall": time.perf_counter() - t0, "cpu": time.process_time() - cpu0}


def child_bare(url: str, n: int, c: int) -> dict:
    import httpx2
    import openai

    async def main() -> None:
        client = openai.AsyncOpenAI(base_url=url, api_key="x", max_retries=0, http_client=openai.DefaultAsyncHttpxClient(
            timeout=600.0, limits=httpx2.Limits(max_connections=1000, max_keepalive_connections=max(100, c))))
        sem = asyncio.Semaphore(c)

        async def one(i: int) -> str | None:
            async with sem:
                r = await client.chat.completions.create(
                    model=MODEL, max_tokens=512, messages=[{"role": "user", "content": PROMPT.format(i=i)}])
                return r.choices[0].message.content

        await asyncio.gather(*(one(i) for i in range(n)))
        await client.close()

    t0, cpu0 = time.perf_counter(), time.process_time()
    asyncio.run(main())
    return {"wall": time.perf_counter() - t0, "cpu": time.process_time() - cpu0}


def run_child(args: list[str]) -> dict:
    """Run this script as a child client; returns its figures plus peak RSS (MB) from wait4."""
    env = dict(os.environ, DISTILL_PROGRESS="0", DISTILL_LOG_LEVEL="WARNING")
    proc = subprocess.Popen([sys.executable, __file__, "--child", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=env)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"child {args[0]} failed (status {status})")
    figures = json.loads(out.decode().strip().splitlines()[-1])
    figures["rss_mb"] = usage.ru_maxrss / 1024  # Linux: kilobytes
    return figures


# ---------------------------------------------------------------- parent


def start_server(latency: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "distill", "teacher", "serve", "port=0", f"latency={latency}",
                             f"model={MODEL}", "dialect=deepseek"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline().split()
    if len(line) < 2 or line[0] != "serving":
        proc.kill()
        raise SystemExit("teacher server did not start")
    return proc, line[1]


def write_problems(path: Path, n: int) -> Path:
    with path.open("w") as handle:
        for i in range(n):
            handle.write(json.dumps({"id": f"b{i}", "question": PROMPT.format(i=i), "answer": str(i + 1)}) + "\n")
    return path


def write_done_traces(path: Path, n: int, keep_pending: int) -> None:
    """A traces file where all but ``keep_pending`` problems are already done (resume at scale)."""
    with path.open("w") as handle:
        for i in range(n - keep_pending):
            handle.write(json.dumps({"schema": 1, "id": f"b{i}", "sample": 0, "question": PROMPT.format(i=i),
                                     "answer": str(i + 1), "kind": "math", "reasoning": "r" * 400,
                                     "content": "\\boxed{1}", "error": None, "cost_usd": 0.0}) + "\n")


def _median(runs: list[dict]) -> dict:
    ordered = sorted(runs, key=lambda f: f["wall"])
    return ordered[len(ordered) // 2]


def throughput(n: int, c: int, latency: float, repeats: int, tmp: Path) -> None:
    server, url = start_server(latency)
    runs: dict[str, list[dict]] = {"bare": [], "distill": []}
    try:
        problems = write_problems(tmp / "problems.jsonl", n)
        # Alternate bare / distill, each in a fresh process, so drift in machine load hits both.
        for r in range(repeats):
            for name in ("bare", "distill") if r % 2 == 0 else ("distill", "bare"):
                work = tmp / f"{name}{r}"
                work.mkdir()
                runs[name].append(run_child([name, url, str(n), str(c), str(work), str(problems)]))
    finally:
        server.terminate()
        server.wait(timeout=10)
    rows = [(name, _median(f)) for name, f in runs.items()]
    ideal = c / latency
    print(f"\nthroughput: {n} requests, concurrency {c}, teacher latency {latency}s (ideal {ideal:.1f} req/s), "
          f"median of {repeats} runs each, load average {os.getloadavg()[0]:.1f}")
    print(f"{'client':<10}{'wall s':>9}{'req/s':>9}{'of ideal':>10}{'CPU ms/req':>12}{'peak RSS MB':>13}")
    for name, f in rows:
        rate = n / f["wall"]
        print(f"{name:<10}{f['wall']:>9.2f}{rate:>9.1f}{rate / ideal:>10.1%}{1000 * f['cpu'] / n:>12.2f}"
              f"{f['rss_mb']:>13.0f}")
    bare, dist = rows[0][1], rows[1][1]
    print(f"distill / bare throughput: {bare['wall'] / dist['wall']:.1%}")


def memory(sizes: list[int], tmp: Path) -> None:
    """Peak RSS of `generate` as the problem count grows: fresh runs, then a 100k-line resume."""
    server, url = start_server(0.0)
    print("\nmemory: peak client RSS by problem count (latency 0, concurrency 64)")
    print(f"{'problems':>10}{'requests':>10}{'peak RSS MB':>13}{'wall s':>9}")
    try:
        for n in sizes:
            work = tmp / f"mem{n}"
            work.mkdir()
            f = run_child(["distill", url, str(n), "64", str(work), str(write_problems(work / "p.jsonl", n))])
            print(f"{n:>10}{n:>10}{f['rss_mb']:>13.0f}{f['wall']:>9.2f}")
        big = max(sizes) * 10
        work = tmp / "resume"
        work.mkdir()
        write_done_traces(work / "traces.jsonl", big, keep_pending=200)
        f = run_child(["distill", url, str(big), "64", str(work), str(write_problems(work / "p.jsonl", big))])
        print(f"{big:>10}{200:>10}{f['rss_mb']:>13.0f}{f['wall']:>9.2f}   (resume: {big - 200} already done)")
    finally:
        server.terminate()
        server.wait(timeout=10)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        kind, url, n, c = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
        figures = child_bare(url, n, c) if kind == "bare" else child_distill(
            url, n, c, Path(sys.argv[6]), Path(sys.argv[7]))
        print(json.dumps(figures))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--quick", action="store_true", help="small sizes (about a minute)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per client (median reported)")
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    n, c, sizes = args.n, args.concurrency, [1000, 4000]
    if args.quick:
        n, c, sizes = min(n, 400), min(c, 100), [300, 1500]
    resource.setrlimit(resource.RLIMIT_NOFILE, (4096, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    with tempfile.TemporaryDirectory() as tmp:
        throughput(n, c, args.latency, args.repeats, Path(tmp))
        if not args.skip_memory:
            memory(sizes, Path(tmp))


if __name__ == "__main__":
    main()
