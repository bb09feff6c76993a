"""Benchmark: `distill finetune` vs TRL's SFTTrainer + peft on the same model, data and LoRA settings.

Usage:
    .venv/bin/python bench/finetune_vs_trl.py [--steps 12] [--repeats 3] [--threads 1]

Each side runs in its own subprocess (fair peak RSS), alternating, ``--repeats`` times; the table
shows medians. Both train a tiny Llama (hidden 256, 4 layers) with LoRA r=16 on all linear layers,
8 examples per step, assistant-only loss, no gradient checkpointing (TRL's SFTConfig turns it on by
default; both off here), on traces of varied length (so padding matters).
Trained tokens = tokens that carry loss; padding fraction = padded slots / all slots fed to the model.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
LORA = {"r": 16, "alpha": 32, "dropout": 0.0}
BATCH, LR, SEED = 8, 2e-4, 0


def _setup(work: Path) -> tuple[Path, Path]:
    from finetune_fixtures import write_traces
    from tiny_student import make_tiny_student

    model = make_tiny_student(work / "student", hidden_size=256, layers=4)
    data = write_traces(work / "kept.jsonl", n=256, seed=1, min_terms=2, max_terms=60)
    return model, data


def _side_distill(model: Path, data: Path, steps: int, out: Path, packing: bool = True) -> dict:
    from distill.config import load_config
    from distill.finetune import FinetuneConfig, run

    cfg = load_config(FinetuneConfig, None, [
        f"data={data}", f"student={model}", f"out={out}", f"max_steps={steps}", f"batch_size={BATCH}",
        f"learning_rate={LR}", f"lora.r={LORA['r']}", f"lora.alpha={LORA['alpha']}",
        f"lora.dropout={LORA['dropout']}", "progress=false", f"seed={SEED}", "max_length=4096", "warmup_ratio=0",
        f"packing={str(packing).lower()}"])
    start = time.perf_counter()
    run(cfg)
    wall = time.perf_counter() - start
    metrics = json.loads((out / "distill.json").read_text())["metrics"]
    return {"trained_tokens": metrics["trained_tokens_this_run"], "tokens_per_s": metrics["trained_tokens_per_s"],
            "padding_fraction": 0.0 if packing else _padding(out, data, model), "final_loss": metrics["final_loss"],
            "wall_s": wall}


def _padding(out: Path, data: Path, model: Path) -> float:
    """Padding fraction of length-grouped padded batches (packing=false), recomputed from the plan."""
    from transformers import AutoTokenizer

    from distill.finetune.data import encode_samples, plan_batches, read_samples
    from distill.render import DEFAULT_FORMAT
    from distill.student import prepare_tokenizer

    tok = prepare_tokenizer(AutoTokenizer.from_pretrained(model))
    enc = encode_samples(read_samples(data)[0], tok, DEFAULT_FORMAT, 4096)
    steps = json.loads((out / "distill.json").read_text())["metrics"]["steps"]
    lengths = [len(e.input_ids) for e in enc.examples]
    batches = plan_batches(lengths, BATCH, SEED, 0)[:steps]
    real = sum(lengths[i] for b in batches for i in b)
    return 1 - real / sum(max(lengths[i] for i in b) * len(b) for b in batches)


def _side_trl(model: Path, data: Path, steps: int, out: Path) -> dict:
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from distill.render import format_assistant

    rows = [json.loads(line) for line in data.read_text().splitlines()]
    dataset = Dataset.from_list([{  # conversational prompt-completion: TRL's completion-only loss
        "prompt": [{"role": "user", "content": r["messages"][-1]["content"]}],
        "completion": [{"role": "assistant", "content": format_assistant(r["reasoning"], r["content"])}],
    } for r in rows])
    tokenizer = AutoTokenizer.from_pretrained(model)
    args = SFTConfig(output_dir=str(out), max_steps=steps, per_device_train_batch_size=BATCH,
                     gradient_accumulation_steps=1, learning_rate=LR, lr_scheduler_type="cosine",
                     warmup_steps=0, logging_steps=1, save_strategy="no", report_to=[], seed=SEED,
                     max_length=4096, completion_only_loss=True, bf16=False, use_cpu=True,
                     gradient_checkpointing=False,  # TRL defaults to True; distill to False: same here
                     dataloader_num_workers=0, disable_tqdm=True)
    peft = LoraConfig(r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"],
                      target_modules="all-linear", task_type="CAUSAL_LM")
    trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(model), args=args, train_dataset=dataset,
                         processing_class=tokenizer, peft_config=peft)
    counts = {"trained": 0, "real": 0, "slots": 0}
    collator = trainer.data_collator

    def counting(features):
        batch = collator(features)
        counts["trained"] += int((batch["labels"] != -100).sum())
        counts["real"] += int(batch["attention_mask"].sum())
        counts["slots"] += batch["input_ids"].numel()
        return batch

    trainer.data_collator = counting
    start = time.perf_counter()
    result = trainer.train()
    wall = time.perf_counter() - start
    return {"trained_tokens": counts["trained"], "tokens_per_s": counts["trained"] / result.metrics["train_runtime"],
            "padding_fraction": 1 - counts["real"] / max(1, counts["slots"]), "final_loss": result.training_loss,
            "wall_s": wall}


def _child(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    fn = {"distill": _side_distill, "trl": _side_trl,
          "distill-padded": lambda *a: _side_distill(*a, packing=False)}[args.side]
    res = fn(Path(args.model), Path(args.data), args.steps, Path(args.out))
    res["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(res), flush=True)


def _launch(side: str, model: Path, data: Path, steps: int, threads: int, out: Path) -> dict:
    cmd = [sys.executable, __file__, "--side", side, "--model", str(model), "--data", str(data),
           "--steps", str(steps), "--threads", str(threads), "--out", str(out)]
    env = {"DISTILL_PROGRESS": "0", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(threads),
           "TOKENIZERS_PARALLELISM": "false", "PATH": "/usr/bin:/bin", "HOME": str(out.parent)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"{side} failed:\n{proc.stderr[-4000:]}")
    return json.loads(line[7:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", choices=["distill", "trl", "distill-padded"])
    parser.add_argument("--sides", default="distill,trl", help="comma list; add distill-padded to compare batching")
    parser.add_argument("--model"), parser.add_argument("--data"), parser.add_argument("--out")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if args.side:
        return _child(args)
    work = Path(tempfile.mkdtemp(prefix="bench-finetune-"))
    model, data = _setup(work)
    sides = args.sides.split(",")
    runs: dict[str, list[dict]] = {side: [] for side in sides}
    for i in range(args.repeats):
        for side in sides:
            res = _launch(side, model, data, args.steps, args.threads, work / f"{side}-{i}")
            runs[side].append(res)
            print(f"run {i} {side}: {res['tokens_per_s']:.0f} trained tok/s, {res['peak_rss_mib']:.0f} MiB",
                  file=sys.stderr)
    med = {s: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for s, rs in runs.items()}
    print(f"\nfinetune vs TRL SFTTrainer (tiny Llama h256x4, LoRA r16 all-linear, batch {BATCH}, "
          f"{args.steps} steps, {args.threads} thread(s), median of {args.repeats})")
    print(f"{'':14} {'trained tok/s':>14} {'trained tokens':>15} {'padding':>8} {'peak RSS MiB':>13} {'final loss':>11}")
    for side, m in med.items():
        print(f"{side:14} {m['tokens_per_s']:14.0f} {m['trained_tokens']:15.0f} {m['padding_fraction']:8.1%} "
              f"{m['peak_rss_mib']:13.0f} {m['final_loss']:11.4f}")
    print(f"speed-up (trained tok/s): {med['distill']['tokens_per_s'] / med['trl']['tokens_per_s']:.2f}x; "
          f"peak RSS ratio: {med['distill']['peak_rss_mib'] / med['trl']['peak_rss_mib']:.2f}x")


if __name__ == "__main__":
    main()
