"""Benchmark: decoding that drops finished rows (distill.decode.regroup) against `model.generate`, same batch.

Usage:
    .venv/bin/python bench/regroup_throughput.py --adapter runs/default/adapter    # after `distill run`
    .venv/bin/python bench/regroup_throughput.py                                    # the bare student

Both decode the offline held-out prompts greedily in one batch with the same model (the student,
with the adapter merged and cast as `distill eval` does: bf16 where the CPU has it): the anchor
with ``model.generate`` (every row runs until the longest ends), distill with rows leaving the
batch and the KV cache as they end. Runs alternate; prints each time, the ratio of medians and how
many answers are token-for-token identical. The gain depends on how unequal the answer lengths
are: a trained student's answers end between ~40 and ~180 tokens; the bare student rambles to
the cap, where there is nothing to drop.
"""

from __future__ import annotations

import argparse
import statistics
import time


def main() -> None:
    import torch

    from distill.decode.backends import LocalBackend
    from distill.evaluate.config import EvalConfig
    from distill.decode.regroup import generate_regrouped
    from distill.render import DEFAULT_PROMPT
    from distill.render import render_prompt
    from distill.offline import sets as offline_sets

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--adapter", default=None)
    parser.add_argument("--problems", type=int, default=150)
    parser.add_argument("--max-new-tokens", type=int, default=192)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    problems = offline_sets.default_eval_problems()[:args.problems]
    backend = LocalBackend.load(EvalConfig(student="smollm2", max_new_tokens=args.max_new_tokens,
                                           batch_size=len(problems)), args.adapter)
    tok, model, eos = backend.tokenizer, backend.model, backend.eos_ids
    prompts = [render_prompt(tok, DEFAULT_PROMPT.format(question=p["question"])) for p in problems]
    ids = tok(prompts, add_special_tokens=False)["input_ids"]
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)

    def cut(row: list[int]) -> list[int]:
        end = next((k for k, t in enumerate(row) if t in eos), None)
        return row if end is None else row[:end + 1]

    def anchor() -> list[list[int]]:
        out = model.generate(**enc, max_new_tokens=args.max_new_tokens, eos_token_id=eos,
                             pad_token_id=tok.pad_token_id, do_sample=False)
        return [cut(row) for row in out[:, enc["input_ids"].shape[1]:].tolist()]

    def regrouped() -> list[list[int]]:
        return generate_regrouped(model, ids, eos, tok.pad_token_id, args.max_new_tokens)

    times: dict[str, list[float]] = {"model.generate": [], "regrouped": []}
    rows: dict[str, list] = {}
    for _ in range(args.repeats):
        for name, fn in (("model.generate", anchor), ("regrouped", regrouped)):
            started = time.perf_counter()
            with torch.inference_mode():
                rows[name] = fn()
            times[name].append(time.perf_counter() - started)
            print(f"{name:<16} {times[name][-1]:6.1f} s", flush=True)
    same = sum(a == b for a, b in zip(rows["model.generate"], rows["regrouped"]))
    lengths = [len(r) for r in rows["regrouped"]]
    anchor_s, mine_s = statistics.median(times["model.generate"]), statistics.median(times["regrouped"])
    print(f"regrouped / model.generate: {anchor_s / mine_s:.2f}x faster (medians {mine_s:.1f} s vs {anchor_s:.1f} s); "
          f"identical answers {same}/{len(rows['regrouped'])}; answer lengths {min(lengths)}-{max(lengths)} tokens, "
          f"{sum(lengths)} in all ({len(problems)} prompts, one batch, greedy, {backend.dtype}, "
          f"{'adapter ' + args.adapter if args.adapter else 'bare student'})")


if __name__ == "__main__":
    main()
