"""Benchmark: `distill finetune` vs TRL's SFTTrainer + peft at equal settings; and bf16 vs fp32 training.

Usage:
    .venv/bin/python bench/finetune_vs_trl.py [--steps 12] [--repeats 3] [--threads 1]
    .venv/bin/python bench/finetune_vs_trl.py --sides distill,distill-bf16,distill-seed1 --student smollm2

Each side runs in its own subprocess (fair peak RSS), alternating, ``--repeats`` times; the table
shows medians and the ratios to the first side. Equal settings: assistant-only loss, truncation at
512 tokens, batch 4, LoRA r16 on all linear layers, dropout 0, float32 on both sides (distill's
``bf16=auto`` would turn bf16 on where the CPU has it: set to false here), no gradient
checkpointing (TRL turns it on by default), traces of varied length. Trained tokens = tokens that
carry loss; padding fraction = padded slots / all slots fed to the model.

``distill-bf16`` trains the same run under bf16 autocast and ``distill-seed1`` the fp32 run with
another seed: the bf16 loss curve is compared with fp32's, beside how far a seed moves it (noise).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LORA = {"r": 16, "alpha": 32, "dropout": 0.0}
BATCH, LR, SEED, MAX_LENGTH = 4, 2e-4, 0, 512


PROMPT = "{question}\n\nPlease reason step by step, and put your final answer within \\boxed{{}}."


def write_arithmetic_traces(path: Path, n: int, seed: int, min_terms: int, max_terms: int) -> Path:
    """Kept traces (as filter writes them) of correct additions whose length varies with the number of terms."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as out:
        for i in range(n):
            terms = [rng.randint(1, 9) for _ in range(rng.randint(min_terms, max_terms))]
            question = "Compute " + " + ".join(map(str, terms)) + "."
            sums = [sum(terms[:k + 1]) for k in range(len(terms))]
            steps = [f"{total - t} + {t} = {total}" for t, total in zip(terms, sums)]
            out.write(json.dumps({
                "schema": 1, "id": f"t{i}", "sample": 0, "question": question, "answer": str(sums[-1]), "kind": "math",
                "prompt_template": PROMPT, "system_prompt": None,
                "messages": [{"role": "user", "content": PROMPT.format(question=question)}],
                "reasoning": "Add step by step. " + ". ".join(steps) + ".",
                "content": f"The answer is \\boxed{{{sums[-1]}}}.", "finish_reason": "stop", "truncated": False,
                "error": None, "verdict": {"correct": True, "extracted": str(sums[-1]), "reason": "correct"}}) + "\n")
    return path


def _setup(work: Path, model_name: str) -> tuple[Path, Path]:
    from tiny_model import make_tiny_student  # bench/tiny_model.py: this script's folder is on sys.path

    if model_name == "smollm2":
        from distill.student import resolve_student

        model = resolve_student("smollm2")  # converted once, cached
    else:
        model = make_tiny_student(work / "student", hidden_size=256, layers=4)
    # 2-90 terms: ~40 to ~700 tokens, so some examples are cut at 512 on both sides
    data = write_arithmetic_traces(work / "kept.jsonl", n=256, seed=1, min_terms=2, max_terms=90)
    return model, data


def _side_distill(model: Path, data: Path, steps: int, out: Path, packing: bool = True, bf16: bool = False,
                  seed: int = SEED) -> dict:
    from distill.config import load_config
    from distill.finetune import FinetuneConfig, run

    cfg = load_config(FinetuneConfig, None, [
        f"data={data}", f"student={model}", f"out={out}", f"max_steps={steps}", f"batch_size={BATCH}",
        f"learning_rate={LR}", f"lora.r={LORA['r']}", f"lora.alpha={LORA['alpha']}",
        f"lora.dropout={LORA['dropout']}", "progress=false", f"seed={seed}", f"max_length={MAX_LENGTH}",
        "overlong=truncate", "warmup_ratio=0", f"packing={str(packing).lower()}", f"bf16={str(bf16).lower()}"])
    start = time.perf_counter()
    run(cfg)
    wall = time.perf_counter() - start
    metrics = json.loads((out / "distill.json").read_text())["metrics"]
    return {"trained_tokens": metrics["trained_tokens_this_run"], "tokens_per_s": metrics["trained_tokens_per_s"],
            "padding_fraction": 0.0 if packing else _padding(out, data, model), "final_loss": metrics["final_loss"],
            "wall_s": wall, "losses": [json.loads(line)["loss"] for line in (out / "loss.jsonl").open()]}


def _padding(out: Path, data: Path, model: Path) -> float:
    """Padding fraction of length-grouped padded batches (packing=false), recomputed from the plan."""
    from transformers import AutoTokenizer

    from distill.examples import encode_samples, plan_batches, read_samples
    from distill.render import DEFAULT_FORMAT
    from distill.student import prepare_tokenizer

    tok = prepare_tokenizer(AutoTokenizer.from_pretrained(model))
    enc = encode_samples(read_samples(data)[0], tok, DEFAULT_FORMAT, MAX_LENGTH, "truncate")
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
                     max_length=MAX_LENGTH, completion_only_loss=True, bf16=False, use_cpu=True,
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
    losses = [row["loss"] for row in trainer.state.log_history if "loss" in row]
    return {"trained_tokens": counts["trained"], "tokens_per_s": counts["trained"] / result.metrics["train_runtime"],
            "padding_fraction": 1 - counts["real"] / max(1, counts["slots"]), "final_loss": losses[-1] if losses else
            result.training_loss, "wall_s": wall, "losses": losses}


def _child(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    fn = {"distill": _side_distill, "trl": _side_trl,
          "distill-padded": lambda *a: _side_distill(*a, packing=False),
          "distill-bf16": lambda *a: _side_distill(*a, bf16=True),
          "distill-seed1": lambda *a: _side_distill(*a, seed=1)}[args.side]
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
    parser.add_argument("--side", choices=["distill", "trl", "distill-padded", "distill-bf16", "distill-seed1"])
    parser.add_argument("--sides", default="distill,trl",
                        help="comma list, first = anchor; distill-padded (batching), distill-bf16 + distill-seed1")
    parser.add_argument("--student", default="tiny", choices=["tiny", "smollm2"])
    parser.add_argument("--model"), parser.add_argument("--data"), parser.add_argument("--out")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if args.side:
        return _child(args)
    work = Path(tempfile.mkdtemp(prefix="bench-finetune-"))
    model, data = _setup(work, args.student)
    sides = args.sides.split(",")
    runs: dict[str, list[dict]] = {side: [] for side in sides}
    for i in range(args.repeats):
        for side in sides:
            res = _launch(side, model, data, args.steps, args.threads, work / f"{side}-{i}")
            runs[side].append(res)
            print(f"run {i} {side}: {res['tokens_per_s']:.0f} trained tok/s, {res['peak_rss_mib']:.0f} MiB",
                  file=sys.stderr)
    med = {s: {k: statistics.median(r[k] for r in rs) for k in rs[0] if k != "losses"} for s, rs in runs.items()}
    anchor = sides[0]
    print(f"\nfinetune at equal settings ({args.student}, LoRA r16 all-linear, batch {BATCH}, truncation {MAX_LENGTH}, "
          f"{args.steps} steps, {args.threads} thread(s), median of {args.repeats} alternating runs)")
    print(f"{'':14} {'trained tok/s':>14} {'vs ' + anchor:>12} {'trained tokens':>15} {'padding':>8} "
          f"{'peak RSS MiB':>13} {'RSS ratio':>10} {'final loss':>11}")
    for side, m in med.items():
        print(f"{side:14} {m['tokens_per_s']:14.0f} {m['tokens_per_s'] / med[anchor]['tokens_per_s']:11.2f}x "
              f"{m['trained_tokens']:15.0f} {m['padding_fraction']:8.1%} {m['peak_rss_mib']:13.0f} "
              f"{m['peak_rss_mib'] / med[anchor]['peak_rss_mib']:9.2f}x {m['final_loss']:11.4f}")
    if "trl" in med and "distill" in med:
        print(f"distill / TRL trained tok/s: {med['distill']['tokens_per_s'] / med['trl']['tokens_per_s']:.2f}x "
              f"(runs: {', '.join(f'{a / b:.2f}' for a, b in zip(*(_rates(runs[s]) for s in ('distill', 'trl'))))}); "
              f"peak RSS {med['distill']['peak_rss_mib'] / med['trl']['peak_rss_mib']:.2f}x")
    if "distill-bf16" in runs and "distill" in runs:
        _loss_match(runs)


def _rates(rs: list[dict]) -> list[float]:
    return [r["tokens_per_s"] for r in rs]


def _loss_match(runs: dict[str, list[dict]]) -> None:
    """bf16's loss curve against fp32's, beside the seed-to-seed gap of fp32 (what "noise" means here)."""
    fp32, bf16 = runs["distill"][0]["losses"], runs["distill-bf16"][0]["losses"]
    gap = statistics.mean(abs(a - b) for a, b in zip(fp32, bf16))
    rel = statistics.mean(abs(a - b) / a for a, b in zip(fp32, bf16))
    line = f"loss curve bf16 vs fp32: mean |diff| {gap:.4f} ({rel:.2%} of the loss) over {len(fp32)} steps"
    if "distill-seed1" in runs:
        seed = statistics.mean(abs(a - b) for a, b in zip(fp32, runs["distill-seed1"][0]["losses"]))
        line += f"; fp32 seed 0 vs seed 1: {seed:.4f} (bf16/seed gap {gap / seed:.2f}x)"
    print(line)
    print("step  " + "  ".join(f"{i + 1:>6}" for i in range(len(fp32))))
    print("fp32  " + "  ".join(f"{x:6.3f}" for x in fp32))
    print("bf16  " + "  ".join(f"{x:6.3f}" for x in bf16))


if __name__ == "__main__":
    main()
