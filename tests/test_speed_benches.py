"""The speed benches run end to end at a tiny size and print the ratios they exist for (slow: subprocesses)."""

from __future__ import annotations

import re

import pytest
from bench_runner import run_bench


@pytest.mark.slow
def test_finetune_bench_prints_trl_ratio_and_bf16_loss_match():
    out = run_bench("finetune_vs_trl.py", "--steps", "2", "--repeats", "1", "--sides", "distill,trl,distill-bf16")
    ratio = re.search(r"distill / TRL trained tok/s: ([\d.]+)x .*peak RSS ([\d.]+)x", out)
    rows = {m["side"]: m for m in re.finditer(  # side, tok/s, vs anchor, trained tokens, padding, peak RSS
        r"^(?P<side>[\w-]+) +(?P<rate>\d+) +[\d.]+x +\d+ +(?P<padding>[\d.]+)% +(?P<rss>\d+) ", out, re.M)}
    assert ratio and {"distill", "trl"} <= set(rows), out
    # The headline ratios are the table's figures divided (within rounding), not some other quotient.
    assert float(ratio[1]) == pytest.approx(float(rows["distill"]["rate"]) / float(rows["trl"]["rate"]), rel=0.01)
    assert float(ratio[2]) == pytest.approx(float(rows["distill"]["rss"]) / float(rows["trl"]["rss"]), rel=0.01)
    # Packing is why distill trains faster: no padded slots, where TRL pads the varied-length batches.
    assert float(rows["distill"]["padding"]) == 0 < float(rows["trl"]["padding"]), out
    match = re.search(r"loss curve bf16 vs fp32: mean \|diff\| ([\d.]+) \(([\d.]+)% of the loss\) over 2 steps", out)
    assert match and float(match.group(2)) < 5, out  # same batches, same init: bf16 tracks fp32 closely
    assert float(rows["distill-bf16"]["padding"]) == 0, out  # packed: no padding


@pytest.mark.slow
def test_eval_bench_anchors_on_plain_generate_and_counts_differences():
    out = run_bench("eval_throughput.py", "--student", "tiny", "--problems", "4", "--max-new-tokens", "8",
                 "--repeats", "1", "--batch-size", "4")
    rows = [line for line in out.splitlines() if line.startswith("tiny")]
    assert [re.split(r"\s{2,}", r)[1] for r in rows] == [
        "plain generate, base fp32", "distill eval, base", "plain generate, PeftModel fp32",
        "distill eval, adapter merged"]
    assert all(re.search(r"\d+\.\d\dx\s+\d+/4", r) for r in rows), out
    assert rows[0].split()[-2] == "1.00x" and rows[2].split()[-2] == "1.00x"  # anchors


@pytest.mark.slow
def test_regroup_bench_anchors_on_generate_and_answers_are_identical():
    out = run_bench("regroup_throughput.py", "--problems", "12", "--max-new-tokens", "24", "--repeats", "1")
    line = re.search(r"regrouped / model\.generate: ([\d.]+)x faster \(medians ([\d.]+) s vs ([\d.]+) s\); "
                     r"identical answers (\d+)/(\d+)", out)
    assert line, out
    ratio, mine, anchor = float(line[1]), float(line[2]), float(line[3])
    # The ratio is model.generate's time over regrouped's, both printed to 0.1 s: it must lie within their rounding.
    assert mine >= 0.1 and (anchor - 0.05) / (mine + 0.05) - 0.005 <= ratio <= (anchor + 0.05) / (mine - 0.05) + 0.005
    assert line[4] == line[5] == "12", out  # greedy: the same tokens as model.generate


@pytest.mark.slow
def test_onpolicy_bench_prints_distill_over_trl_as_the_quotient_of_its_rows():
    out = run_bench("onpolicy_vs_trl.py", "--steps", "1", "--repeats", "1", "--max-new-tokens", "8")
    rows = {m["side"]: m for m in re.finditer(  # side, trained tok/s, trained tokens, peak RSS
        r"^(?P<side>distill|trl) +(?P<rate>[\d.]+) +(?P<tokens>\d+) +(?P<rss>\d+)$", out, re.M)}
    ratio = re.search(r"distill / TRL trained tok/s: ([\d.]+)x \(medians of 1, 1 steps", out)
    assert ratio and set(rows) == {"distill", "trl"}, out
    assert all(int(r["tokens"]) > 0 for r in rows.values()), out  # both sides trained on sampled attempts
    assert float(ratio[1]) == pytest.approx(float(rows["distill"]["rate"]) / float(rows["trl"]["rate"]), abs=0.01)
