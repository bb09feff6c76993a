"""Benchmark: generation throughput of `distill eval` (batched, left padding, KV cache) on CPU, beside a
one-prompt-at-a-time `model.generate` loop in the same run, for the tiny test student and SmolLM2-135M.

Usage:
    .venv/bin/python bench/eval_throughput.py                      # tiny + smollm2
    .venv/bin/python bench/eval_throughput.py --models tiny --problems 32 --max-new-tokens 64

Prints tokens/s and problems/min for each; the ratio batched / sequential is the figure to read
(absolute numbers depend on the machine and its load). Medians over --repeats runs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def _problems(n: int) -> list[dict]:
    return [{"id": f"b{i}", "question": f"What is {i * 7} + {i * 3}? " + "Show your work. " * (i % 4),
             "answer": str(i * 10), "kind": "math"} for i in range(n)]


def _model(name: str, tmp: Path) -> str:
    if name == "tiny":
        from tiny_student import make_tiny_student

        return str(make_tiny_student(tmp / "tiny"))
    return name  # "smollm2": resolve_student converts the packaged GGUF once (cached)


def _distill_eval(spec: str, problems: list[dict], tokens: int, batch: int, out: Path, backend) -> tuple[float, int]:
    from distill.config import load_config
    from distill.evaluate.config import EvalConfig
    from distill.evaluate.stage import run

    cfg = load_config(EvalConfig, None, ["problems=bench", f"student={spec}", f"out={out}", "progress=false",
                                         f"max_new_tokens={tokens}", f"batch_size={batch}"])
    backend.cfg = cfg
    started = time.perf_counter()
    run(cfg, backend=backend, problems=problems)
    seconds = time.perf_counter() - started
    import json

    generated = sum(json.loads(line)["completion_tokens"] for line in (out / "outputs.jsonl").open())
    return seconds, generated


def _sequential(model, tokenizer, problems: list[dict], tokens: int, eos: list[int]) -> tuple[float, int]:
    import torch

    from distill.render import encode_prompt
    from distill.generate.config import DEFAULT_PROMPT

    generated = 0
    started = time.perf_counter()
    for p in problems:
        ids = torch.tensor([encode_prompt(tokenizer, DEFAULT_PROMPT.format(question=p["question"]))])
        with torch.inference_mode():
            out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=tokens, do_sample=False,
                                 eos_token_id=eos, pad_token_id=tokenizer.pad_token_id)
        generated += out.shape[1] - ids.shape[1]
    return time.perf_counter() - started, generated


def bench(name: str, n: int, tokens: int, batch: int, repeats: int, tmp: Path) -> list[tuple]:
    from distill.config import load_config
    from distill.evaluate.backends import LocalBackend
    from distill.evaluate.config import EvalConfig

    spec = _model(name, tmp)
    problems = _problems(n)
    cfg = load_config(EvalConfig, None, [f"student={spec}", "problems=bench", f"max_new_tokens={tokens}"])
    backend = LocalBackend.load(cfg)
    rows = []
    batched = [_distill_eval(spec, problems, tokens, batch, tmp / f"{name}-{r}", backend) for r in range(repeats)]
    alone = [_sequential(backend.model, backend.tokenizer, problems, tokens, backend.eos_ids) for _ in range(repeats)]
    base = None
    for label, runs in ((f"distill eval (batch {batch})", batched), ("generate loop (1 at a time)", alone)):
        secs = statistics.median(s for s, _ in runs)
        toks = statistics.median(t for _, t in runs)
        rate = toks / secs
        base = base or rate
        rows.append((name, label, n, int(toks), f"{secs:.2f}", f"{rate:.1f}", f"{n / secs * 60:.1f}",
                     f"{rate / base:.2f}x" if label.startswith("generate") else "1.00x"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["tiny", "smollm2"])
    parser.add_argument("--problems", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.problems} problems, "
          f"max_new_tokens={args.max_new_tokens}, greedy; medians of {args.repeats} runs")
    header = ("model", "method", "problems", "tokens", "seconds", "tokens/s", "problems/min", "vs distill eval")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            rows += bench(name, args.problems, args.max_new_tokens, args.batch_size, args.repeats, Path(tmp))
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    for row in [header] + rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)))


if __name__ == "__main__":
    main()
