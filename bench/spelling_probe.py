"""Benchmark: can the untrained student spell words it will be asked about, one letter a line vs numbered?

Usage:
    .venv/bin/python bench/spelling_probe.py                     # 40 dev words, SmolLM2-135M, greedy
    .venv/bin/python bench/spelling_probe.py --words 80 --shots 3

A cheap probe of one trace-shape lever before any training: the student is shown ``--shots``
training words spelt in each style (plain: "s\\nt\\nr..."; positions: "1. s\\n2. t\\n3. r...") and
asked to spell dev words it has never been trained on, in the same style; a spelling counts when
its letters are exactly the word's (distill.offline.checks.spelled_runs). Both styles see
the same words, alternating which goes first per batch. Prints the exact-spelling rate per style
with 95% Wilson intervals and the ratio positions / plain (in-context, base model: it says which
format the model spells better in, not what training will reach).
"""

from __future__ import annotations

import argparse
import time

STYLES = {"plain": lambda w: "\n".join(w), "positions": lambda w: "\n".join(f"{i + 1}. {c}" for i, c in enumerate(w))}


def prompts(tokenizer, words: list[str], shots: list[str], style: str) -> list[str]:
    def turn(word: str) -> list[dict]:
        return [{"role": "user", "content": f"Spell {word} one letter a line."}]

    out = []
    for word in words:
        messages = []
        for shot in shots:
            messages += turn(shot) + [{"role": "assistant", "content": STYLES[style](shot)}]
        out.append(tokenizer.apply_chat_template(messages + turn(word), tokenize=False, add_generation_prompt=True))
    return out


def spell(model, tokenizer, texts: list[str], max_new_tokens: int) -> list[str]:
    import torch

    tokenizer.padding_side = "left"
    batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.inference_mode():
        out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
    return tokenizer.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)


def is_spelt(text: str, word: str) -> bool:
    from distill.offline.checks import spelled_runs

    runs = spelled_runs(text)
    return bool(runs) and "".join(c for c, _ in runs[0]).lower() == word


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--words", type=int, default=40, help="dev words to spell")
    parser.add_argument("--shots", type=int, default=3, help="spelt training words shown first")
    parser.add_argument("--batch", type=int, default=20)
    args = parser.parse_args()
    from distill.estimates import wilson_interval
    from distill.student import load_student
    from distill.offline import families as offline

    words = sorted({p["split_key"] for p in offline.make_problems("letter_count", 3 * args.words, 0, "dev")})
    words = words[:args.words]
    shots = [p["split_key"] for p in offline.make_problems("letter_count", args.shots, 0, "train")]
    model, tokenizer = load_student("smollm2")
    model.eval()
    right = {s: 0 for s in STYLES}
    seconds = {s: 0.0 for s in STYLES}
    for b, start in enumerate(range(0, len(words), args.batch)):
        part = words[start:start + args.batch]
        for style in (list(STYLES) if b % 2 == 0 else list(STYLES)[::-1]):  # alternate who goes first
            began = time.perf_counter()
            texts = spell(model, tokenizer, prompts(tokenizer, part, shots, style), 6 * max(map(len, part)) + 8)
            seconds[style] += time.perf_counter() - began
            right[style] += sum(is_spelt(t, w) for t, w in zip(texts, part))
    n = len(words)
    for style in STYLES:
        lo, hi = wilson_interval(right[style], n)
        print(f"{style:<10} {right[style]:3d}/{n} exact spellings  {100 * right[style] / n:5.1f}% "
              f"[{100 * lo:.0f}, {100 * hi:.0f}]  ({seconds[style]:.0f} s)")
    ratio = f"{right['positions'] / right['plain']:.2f}x" if right["plain"] else "n/a (plain spelt none)"
    print(f"positions / plain: {ratio}  ({n} dev words, {args.shots} shots, greedy; in-context, untrained)")


if __name__ == "__main__":
    main()
