"""Benchmark: `distill finetune method=on_policy` vs TRL's DistillationTrainer on the same tiny model pair.

Usage:
    .venv/bin/python bench/onpolicy_vs_trl.py [--steps 8] [--repeats 3] [--threads 1] [--loss sampled] [--over-http]

Equal settings on both sides: a tiny student and a bigger teacher sharing its tokenizer
(bench/tiny_model.py), LoRA r16 on all linear layers (dropout 0), batch 4 prompts a step, attempts
of at most ``--max-new-tokens`` sampled at temperature 1 (no top-k / top-p), reverse KL (TRL
``beta=1``), learning rate 1e-4, float32, no gradient checkpointing, ``--threads`` torch threads,
each side in its own subprocess, alternating, ``--repeats`` times (medians). The teacher is local on
both sides, in the training process (distill: ``onpolicy.teacher=model``; ``--over-http`` serves
it on 127.0.0.1 and scores over HTTP as a vLLM teacher instead). What differs is each tool's own
method: TRL matches the full vocabulary at every position; distill uses ``--loss`` (sampled: the
per-token advantage estimator, needing the teacher's logprob of the sampled token only; topk: the
teacher's top 20). Trained tokens = attempt tokens that carry loss; tokens/s = those over
the training loop's time (sampling, teacher scoring, backward, optimizer), model loading excluded.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from finetune_vs_trl import write_arithmetic_traces  # this script's folder is on sys.path

BATCH, LR, R, SEED = 4, 1e-4, 16, 0


def _setup(work: Path) -> tuple[Path, Path, Path]:
    from tiny_model import make_tiny_student

    student = make_tiny_student(work / "student", hidden_size=128, layers=2)
    teacher = make_tiny_student(work / "teacher", hidden_size=256, layers=4, seed=1)  # same tokenizer, bigger
    data = write_arithmetic_traces(work / "kept.jsonl", n=64, seed=1, min_terms=2, max_terms=6)
    return student, teacher, data


def _side_distill(args: argparse.Namespace) -> dict:
    from distill.config import load_config
    from distill.finetune import FinetuneConfig, run

    out = Path(args.out)
    cfg = load_config(FinetuneConfig, None, [
        f"data={args.data}", f"student={args.student}", f"out={out}", "method=on_policy", f"max_steps={args.steps}",
        f"batch_size={BATCH}", f"learning_rate={LR}", f"lora.r={R}", f"lora.alpha={2 * R}", "lora.dropout=0",
        "warmup_ratio=0", "progress=false", f"seed={SEED}", "bf16=false", "onpolicy.teacher=model",
        f"onpolicy.teacher_model={args.teacher}", f"onpolicy.loss={args.loss}", "onpolicy.top_k=20",
        f"onpolicy.max_new_tokens={args.max_new_tokens}", "onpolicy.temperature=1.0",
        f"onpolicy.over_http={str(args.over_http).lower()}"])
    run(cfg)
    metrics = json.loads((out / "distill.json").read_text())["metrics"]
    return {"trained_tokens": metrics["trained_tokens_this_run"], "tokens_per_s": metrics["trained_tokens_per_s"],
            "final_reverse_kl": metrics["final_reverse_kl"]}


def _side_trl(args: argparse.Namespace) -> dict:
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DistillationConfig, DistillationTrainer

    rows = [json.loads(line) for line in Path(args.data).read_text().splitlines()]
    dataset = Dataset.from_list([{"prompt": [{"role": "user", "content": r["messages"][-1]["content"]}]} for r in rows])
    tokenizer = AutoTokenizer.from_pretrained(args.student, padding_side="left")
    config = DistillationConfig(
        output_dir=args.out, max_steps=args.steps, per_device_train_batch_size=BATCH, gradient_accumulation_steps=1,
        learning_rate=LR, lr_scheduler_type="cosine", warmup_steps=0, logging_steps=1, save_strategy="no",
        report_to=[], seed=SEED, bf16=False, use_cpu=True, gradient_checkpointing=False, disable_tqdm=True,
        dataloader_num_workers=0, max_completion_length=args.max_new_tokens, temperature=1.0, top_k=0, top_p=1.0,
        beta=1.0)
    trainer = DistillationTrainer(
        model=AutoModelForCausalLM.from_pretrained(args.student), teacher_model=AutoModelForCausalLM.from_pretrained(
            args.teacher), args=config, train_dataset=dataset, processing_class=tokenizer,
        peft_config=LoraConfig(r=R, lora_alpha=2 * R, lora_dropout=0.0, target_modules="all-linear",
                               task_type="CAUSAL_LM"))
    trained = {"tokens": 0}
    generate = trainer._generate_and_score_completions

    def counting(inputs):  # the attempt tokens that carry loss, as TRL masks them
        batch = generate(inputs)
        trained["tokens"] += int(batch["completion_mask"].sum())
        return batch

    trainer._generate_and_score_completions = counting
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    return {"trained_tokens": trained["tokens"], "tokens_per_s": trained["tokens"] / seconds}


def _child(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    result = {"distill": _side_distill, "trl": _side_trl}[args.side](args)
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(result), flush=True)


def _launch(side: str, args: argparse.Namespace, paths: tuple[Path, Path, Path], out: Path) -> dict:
    student, teacher, data = paths
    cmd = [sys.executable, __file__, "--side", side, "--student", str(student), "--teacher", str(teacher),
           "--data", str(data), "--out", str(out), "--steps", str(args.steps), "--threads", str(args.threads),
           "--loss", args.loss, "--max-new-tokens", str(args.max_new_tokens), *(["--over-http"] * args.over_http)]
    env = {"DISTILL_PROGRESS": "0", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(args.threads),
           "TOKENIZERS_PARALLELISM": "false", "PATH": "/usr/bin:/bin", "HOME": str(out.parent),
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"{side} failed:\n{proc.stderr[-4000:]}")
    return json.loads(line[len("RESULT "):])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", choices=["distill", "trl"])
    parser.add_argument("--student"), parser.add_argument("--teacher"), parser.add_argument("--data")
    parser.add_argument("--out")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--loss", default="sampled", choices=["sampled", "topk"])
    parser.add_argument("--over-http", action="store_true", help="distill's teacher served on 127.0.0.1, over HTTP")
    args = parser.parse_args()
    if args.side:
        return _child(args)
    work = Path(tempfile.mkdtemp(prefix="bench-onpolicy-"))
    paths = _setup(work)
    runs: dict[str, list[dict]] = {"distill": [], "trl": []}
    for i in range(args.repeats):
        for side in runs:
            runs[side].append(_launch(side, args, paths, work / f"{side}-{i}"))
            print(f"run {i} {side}: {runs[side][-1]['tokens_per_s']:.1f} trained tok/s", file=sys.stderr)
    med = {s: {k: statistics.median(r[k] for r in rs) for k in ("tokens_per_s", "trained_tokens", "peak_rss_mib")}
           for s, rs in runs.items()}
    print(f"{'side':<8} {'trained tok/s':>14} {'trained tokens':>15} {'peak RSS MiB':>13}")
    for side, m in med.items():
        print(f"{side:<8} {m['tokens_per_s']:>14.1f} {m['trained_tokens']:>15.0f} {m['peak_rss_mib']:>13.0f}")
    ratio = med["distill"]["tokens_per_s"] / med["trl"]["tokens_per_s"]
    print(f"distill / TRL trained tok/s: {ratio:.2f}x (medians of {args.repeats}, {args.steps} steps, "
          f"{args.threads} thread(s), distill loss={args.loss}{', teacher over HTTP' if args.over_http else ''},"
          " target >= 1.2x)")


if __name__ == "__main__":
    main()
