"""Benchmark: `distill eval`'s local generation against a plain batched `model.generate` on the same prompts.

Usage:
    .venv/bin/python bench/eval_throughput.py                      # SmolLM2-135M, the offline eval prompts
    .venv/bin/python bench/eval_throughput.py --student tiny --problems 8 --max-new-tokens 16 --repeats 1

The anchor is what a user would write: the student as loaded (float32), ``model.generate`` on the
same prompts (same chat template, batch 16, greedy, given order), with a LoRA adapter as an
unmerged ``PeftModel``. distill runs the whole `distill eval` stage (scoring and files included)
with ``dtype=auto``: prompts sorted by length, the adapter merged into a copy of the weights, bf16
where the CPU has AVX-512 BF16/AMX. The adapter is r16 on all linear layers with small random
weights (a trained one costs the same per token). Runs alternate; medians of ``--repeats``. It also
counts the greedy answers that differ from the float32 anchor's (bf16 rounding can flip a token).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

def _student(name: str, tmp: Path) -> str:
    if name == "tiny":
        from tiny_model import make_tiny_student  # bench/tiny_model.py: this script's folder is on sys.path

        return str(make_tiny_student(tmp / "tiny", hidden_size=64, layers=2))
    return name  # "smollm2": resolve_student converts the packaged GGUF once (cached)


def _problems(n: int) -> list[dict]:
    from distill.offline.sets import from_spec

    return from_spec("offline:eval")[:n]  # the offline default's held-out problems, 3 families (as cfg's limit=n)


def _random_adapter(base, out: Path) -> Path:
    """A LoRA r16 adapter on every linear layer, B small and random (not zero): it changes the answers a little."""
    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    model = get_peft_model(copy.deepcopy(base), LoraConfig(r=16, lora_alpha=32, target_modules="all-linear",
                                                           task_type="CAUSAL_LM"))
    for name, param in model.named_parameters():
        if "lora_B" in name:
            param.data.normal_(0, 2e-3)
    model.save_pretrained(out)
    return out


def _plain(model, tokenizer, prompts: list[str], tokens: int, eos: list[int], batch: int) -> tuple[float, int, list]:
    """The anchor: batched ``generate`` on prompts in the given order, left padding."""
    import torch

    texts, generated = [], 0
    started = time.perf_counter()
    for i in range(0, len(prompts), batch):
        enc = tokenizer(prompts[i:i + batch], return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.inference_mode():
            out = model.generate(**enc, max_new_tokens=tokens, do_sample=False, eos_token_id=eos,
                                 pad_token_id=tokenizer.pad_token_id)
        for row in out[:, enc["input_ids"].shape[1]:].tolist():
            stop = next((k for k, t in enumerate(row) if t in eos), None)
            generated += len(row) if stop is None else stop + 1
            texts.append(tokenizer.decode(row[:stop], skip_special_tokens=False))
    return time.perf_counter() - started, generated, texts


def _distill(backend, problems: list[dict], out: Path, adapter: str | None) -> tuple[float, int, list]:
    """The whole `distill eval` stage (generation, scoring, outputs.jsonl, report.json) on a loaded backend."""
    from distill.evaluate.stage import run

    cfg = dataclasses.replace(backend.cfg, out=str(out), adapter=adapter)
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # the stage's own summary table
        run(cfg, backend=backend)  # the loaded model is reused; the problems come from cfg, as a user's do
    seconds = time.perf_counter() - started
    rows = {r["id"]: r for r in map(json.loads, (out / "outputs.jsonl").open())}
    ordered = [rows[p["id"]] for p in problems]
    return seconds, sum(r["completion_tokens"] for r in ordered), [r["response"] for r in ordered]


def bench(args: argparse.Namespace, tmp: Path) -> list[tuple]:
    from peft import PeftModel

    from distill.config import load_config
    from distill.decode.backends import LocalBackend
    from distill.evaluate.config import EvalConfig
    from distill.evaluate.stage import as_trained
    from distill.render import render_prompt

    spec = _student(args.student, tmp)
    problems = _problems(args.problems)
    cfg = as_trained(load_config(EvalConfig, None, [f"student={spec}", "problems=offline:eval",
                                                    f"limit={args.problems}", f"max_new_tokens={args.max_new_tokens}",
                                                    f"batch_size={args.batch_size}", "progress=false", "dtype=auto"]))
    base_backend = LocalBackend.load(cfg)
    base = base_backend.base  # float32, as loaded
    adapter = str(_random_adapter(base, tmp / "adapter"))
    tuned_backend = LocalBackend(base, base_backend.tokenizer, cfg, adapter)
    unmerged = PeftModel.from_pretrained(copy.deepcopy(base), adapter).eval()
    tok, eos = base_backend.tokenizer, base_backend.eos_ids
    prompts = [render_prompt(tok, cfg.prompt_template.format(question=p["question"])) for p in problems]
    sides = {
        "plain generate, base fp32": lambda r: _plain(base, tok, prompts, args.max_new_tokens, eos, args.batch_size),
        "distill eval, base": lambda r: _distill(base_backend, problems, tmp / f"base-{r}", None),
        "plain generate, PeftModel fp32": lambda r: _plain(unmerged, tok, prompts, args.max_new_tokens, eos,
                                                           args.batch_size),
        "distill eval, adapter merged": lambda r: _distill(tuned_backend, problems, tmp / f"tuned-{r}", adapter),
    }
    runs: dict[str, list] = {name: [] for name in sides}
    for r in range(args.repeats):
        for name, side in sides.items():
            runs[name].append(side(r))
            secs, toks, _ = runs[name][-1]
            print(f"run {r} {name}: {toks} tokens in {secs:.1f} s", file=sys.stderr, flush=True)
    rows = []
    for name, results in runs.items():
        anchor = "plain generate, base fp32" if "base" in name else "plain generate, PeftModel fp32"
        rate = statistics.median(t / s for s, t, _ in results)
        anchor_rate = statistics.median(t / s for s, t, _ in runs[anchor])
        differ = sum(a != b for a, b in zip(results[0][2], runs[anchor][0][2]))
        rows.append((args.student, name, str(backend_dtype(name, base_backend)), len(problems),
                     int(statistics.median(t for _, t, _ in results)), f"{statistics.median(s for s, _, _ in results):.1f}",
                     f"{rate:.1f}", f"{rate / anchor_rate:.2f}x", f"{differ}/{len(problems)}"))
    return rows


def backend_dtype(name: str, backend) -> object:
    return str(backend.dtype).replace("torch.", "") if name.startswith("distill") else "float32"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--student", default="smollm2", choices=["tiny", "smollm2"])
    parser.add_argument("--problems", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.problems} offline:eval problems, "
          f"max_new_tokens={args.max_new_tokens}, batch {args.batch_size}, greedy; medians of {args.repeats} "
          "alternating runs")
    header = ("student", "method", "dtype", "problems", "tokens", "seconds", "tokens/s", "vs plain", "answers differ")
    with tempfile.TemporaryDirectory() as tmp:
        rows = bench(args, Path(tmp))
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    for row in [header] + rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)))


if __name__ == "__main__":
    main()
