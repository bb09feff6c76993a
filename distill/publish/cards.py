"""Model and dataset cards written from the run records (see provenance.gather), never typed by hand.

Usage:
    from distill.publish.cards import model_card, dataset_card
    text = model_card(facts, repo_id="me/smollm2-distill", dataset_repo_id="me/traces", license="apache-2.0",
                      tags=[])
    text = dataset_card(facts, repo_id="me/traces", license="apache-2.0", rows=812, columns=["id", "question"],
                        tags=[])

Both start with YAML metadata the Hub reads (base_model, library_name: peft, pipeline_tag, tags,
datasets, license, model-index with the eval results; for datasets: configs, task_categories,
size_categories), then say how the artefact was made, with every figure taken from a record.
A benchmark eval (`distill eval benchmark=NAME`) also gives ``.eval_results/<task>.yaml`` in the
Hub's format (huggingface_hub's EvalResultEntry), written only when the eval kept the benchmark's
protocol and no sample failed, since the Hub puts those files on the benchmark's leaderboard:
    write_eval_results(facts, folder)       # [folder/.eval_results/aime_2024.yaml] or []
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import DatasetCardData, EvalResult, EvalResultEntry, ModelCardData, eval_result_entries_to_yaml

from distill.benchmarks.report import failed_note
from distill.learnability.store import card_lines
from distill.metrics import Metrics, accuracy_specs, family_table, metric_rows, metrics_from_json
from distill.publish.provenance import public_name

TAGS = ["distill", "reasoning", "distillation", "lora", "peft"]
log = logging.getLogger(__name__)


def _pct(x: Any) -> str:
    return "-" if x is None else f"{100 * float(x):.1f}%"


def _flat(tree: dict, prefix: str = "") -> list[tuple[str, Any]]:
    rows = []
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            rows += _flat(value, f"{prefix}{key}.")
        else:
            rows.append((prefix + key, value))
    return rows


def _table(rows: list[tuple], header: tuple) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _metrics(facts: dict) -> Metrics | None:
    data = (facts.get("eval") or {}).get("metrics")
    return metrics_from_json(data) if data else None


def _benchmark(facts: dict) -> dict | None:
    """The benchmark section of the eval report (distill.benchmarks.report), if the eval was one."""
    return ((facts.get("eval") or {}).get("settings") or {}).get("benchmark")


def _protocol_note(bench: dict, metrics: Metrics) -> str:
    """'avg@64, temperature 0.6, top_p 0.95, 32768 tokens' and, if any, the keys that differ from the protocol."""
    used = {**bench["protocol"], **{k: v["used"] for k, v in bench["overrides"].items()}}
    note = (f"avg@{metrics.samples_per_problem} (pass@1 over {metrics.samples_per_problem} samples), temperature "
            f"{used['temperature']}, top_p {used['top_p']}, {used['max_new_tokens']} tokens, distill's verifier")
    if bench["overrides"]:
        note += "; differs from the protocol in " + ", ".join(sorted(bench["overrides"]))
    if metrics.errors:
        note += "; " + failed_note(metrics.errors, metrics.samples or 0)
    return note


def _not_comparable(bench: dict, metrics: Metrics) -> list[str]:
    """Why the score does not belong beside published figures: each override, and failed samples (avg@n leaves
    them out, so a problem whose every sample failed would not count). Read from the metrics, not the report's
    ``comparable``, so that a report written before failed samples counted is judged the same way."""
    why = [f"{k}={json.dumps(v['used'])} (protocol {json.dumps(v['protocol'])})" for k, v in bench["overrides"].items()]
    return why + ([failed_note(metrics.errors, metrics.samples or 0)] if metrics.errors else [])


def _benchmark_results(bench: dict, metrics: Metrics) -> list[EvalResult]:
    source = bench["dataset"]
    common = dict(task_type="text-generation", task_name=bench["name"], dataset_type=source["dataset"],
                  dataset_name=bench["name"], dataset_config=source.get("config"), dataset_split=source.get("split"),
                  dataset_revision=source.get("revision"))
    results = [EvalResult(metric_type="pass@1", metric_name=_protocol_note(bench, metrics),
                          metric_value=round(100 * metrics.avg_at_n, 2), **common)]
    results += [EvalResult(metric_type=k, metric_name=k, metric_value=round(100 * v, 2), **common)
                for k, v in metrics.pass_at_k.items() if k != "pass@1"]
    return results


def eval_results_entries(facts: dict) -> list[EvalResultEntry]:
    """The Hub's ``.eval_results`` entries of a benchmark eval that kept its protocol with no failed sample
    (else none)."""
    bench, metrics = _benchmark(facts), _metrics(facts)
    if not bench or metrics is None or metrics.avg_at_n is None:
        return []
    why = _not_comparable(bench, metrics)
    if why:
        log.warning("no .eval_results for %s: not comparable with published figures (%s), so it does not belong on "
                    "the benchmark's leaderboard (the card still shows it)", bench["name"], "; ".join(why))
        return []
    source = bench["dataset"]
    return [EvalResultEntry(dataset_id=source["dataset"], task_id=bench["task_id"],
                            value=round(100 * metrics.avg_at_n, 2), dataset_revision=source.get("revision"),
                            date=(facts.get("eval") or {}).get("created_at"), notes=_protocol_note(bench, metrics))]


def write_eval_results(facts: dict, folder: Path) -> list[Path]:
    """``folder/.eval_results/<task_id>.yaml`` for each entry of :func:`eval_results_entries`."""
    written = []
    for entry in eval_results_entries(facts):
        path = Path(folder) / ".eval_results" / f"{entry.task_id}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(eval_result_entries_to_yaml([entry]), sort_keys=False), encoding="utf-8")
        written.append(path)
    return written


def check_outputs_publishable(facts: dict) -> None:
    """Refuse to publish the raw outputs of a benchmark whose terms keep its questions out of plain text (GPQA)."""
    from distill.benchmarks import protocol_for
    from distill.errors import InputError

    bench = _benchmark(facts)
    if bench and not protocol_for(bench["name"]).questions_public:
        raise InputError(f"{bench['dataset']['dataset']} asks that its questions not be published in plain text, and "
                         f"the outputs hold them (and answers quoting them): not publishing {bench['name']}'s outputs",
                         field="outputs_repo_id")


def outputs_card(facts: dict, repo_id: str, license: str, rows: int, columns: list[str], tags: list[str],
                 model_repo_id: str | None) -> str:
    """README.md for the dataset of an eval's raw answers (one row per problem and sample, with its verdict)."""
    report, bench, m = facts.get("eval") or {}, _benchmark(facts), _metrics(facts)
    what = f"benchmark `{bench['name']}` ([`{bench['dataset']['dataset']}`]" \
           f"(https://huggingface.co/datasets/{bench['dataset']['dataset']}))" if bench else \
        f"`{public_name((report.get('settings') or {}).get('problems'))}`"
    model = f"[`{model_repo_id}`](https://huggingface.co/{model_repo_id})" if model_repo_id else "the model"
    data = DatasetCardData(license=license, task_categories=["text-generation"], size_categories=_size_category(rows),
                           tags=list(dict.fromkeys(["distill", "evaluation", "reasoning"] + list(tags))),
                           pretty_name=repo_id.split("/")[-1],
                           configs=[{"config_name": "default", "data_files": [{"split": "train",
                                                                               "path": "data/train-*.parquet"}]}])
    body = [f"# {repo_id.split('/')[-1]}", "", f"{rows} raw answers of {model} on {what}, one row per (problem, "
            "sample), as `distill eval` wrote them, with the verifier's verdict (`correct`, `extracted`, `reason`).", ""]
    if bench and m is not None and m.avg_at_n is not None:
        body += [f"Scored {_protocol_note(bench, m)}: {100 * m.avg_at_n:.1f}.", "",
                 f"The problems keep their source's licence: {bench['dataset'].get('licence')}.", ""]
    body += ["## Schema", "", _table([(c, _COLUMN_HELP.get(c, "")) for c in columns], ("column", "meaning")), ""]
    return f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body)


def _eval_results(facts: dict, model_name: str) -> list[EvalResult]:
    report = facts.get("eval") or {}
    metrics = _metrics(facts)
    if metrics is None:
        return []
    if _benchmark(facts) and metrics.avg_at_n is not None:
        return _benchmark_results(_benchmark(facts), metrics)
    source = str(public_name((report.get("settings") or {}).get("problems")) or "eval problems")
    common = dict(task_type="text-generation", task_name="reasoning", dataset_type=source, dataset_name=source,
                  dataset_split=(report.get("settings") or {}).get("split"))
    results = [EvalResult(metric_type=r.key, metric_name=f"{r.label} (base + adapter)",
                          metric_value=round(100 * r.after.value, 2), **common)
               for r in metric_rows(metrics, sections=("accuracy",))]
    compare = report.get("compare") or {}
    for key, side in [("pass@1", compare)] + [(spec.key, compare.get(spec.key) or {}) for _, spec in accuracy_specs()[1:]]:
        if side.get("before") is not None:
            results.append(EvalResult(metric_type=key, metric_name=f"{key} (base model, same problems)",
                                      metric_value=round(100 * side["before"], 2), **common))
    return results


def _data_line(facts: dict) -> list[str]:
    """What the records say of training data that is not teacher traces: what it is, and that its origin is unknown."""
    data = facts.get("data") or {}
    if data.get("kind") == "traces":
        return []
    if data.get("kind") == "chat":
        return [f"- **Training data**: {data['rows']} chat records (`{data['file']}`, sha256 `{data['sha256'][:16]}`). "
                "Who wrote them and whether their answers are right is not recorded, so this card states neither."]
    if data.get("file"):
        return [f"- **Training data**: `{data['file']}`, not readable here or changed since training: its contents "
                "and origin are not recorded in this card."]
    return ["- **Training data**: not recorded."]


def _how_made(facts: dict) -> list[str]:
    teacher, usage, stats = facts["teacher"], facts["usage"], facts["stats"]
    lines = ["## How it was made", ""]
    if teacher.get("model"):
        hosts = ", ".join(teacher["endpoint_hosts"]) or "unknown host"
        lines.append(f"- **Teacher**: `{teacher['model']}` at {hosts}" +
                     (f" (provider: {teacher['provider']})" if teacher.get("provider") else ""))
    if teacher.get("sampling"):
        lines.append("- **Sampling**: " + ", ".join(f"{k}={json.dumps(v)}" for k, v in teacher["sampling"].items()
                                                    if k not in ("prompt_template", "system_prompt")))
    if facts.get("problems_source"):
        lines.append("- **Problems**: " + ", ".join(f"{k}={v}" for k, v in facts["problems_source"].items()))
    lines += _data_line(facts)
    if usage and usage["responses"]:
        lines.append(f"- **Teacher usage** ({facts['usage_scope']}): {usage['responses']} responses, "
                     f"{usage['prompt_tokens']:,} prompt + {usage['completion_tokens']:,} completion tokens "
                     f"({usage['reasoning_tokens']:,} reasoning), cost ${usage['cost_usd']:.4f}")
    if stats:
        lines.append(f"- **Verifier and filters**: kept {stats.get('kept')} of "
                     f"{(stats.get('kept') or 0) + (stats.get('rejected') or 0)} traces ({_pct(stats.get('kept_share'))})")
        if stats.get("funnel"):
            lines += ["", "Acceptance funnel (from the filter's stats.json):", "",
                      _table([(s["step"], s["dropped"], s["left"]) for s in stats["funnel"]],
                             ("step", "dropped", "left"))]
        if stats.get("verifier"):
            lines += ["", "Verifier verdicts: " + ", ".join(f"{k} {v}" for k, v in sorted(stats["verifier"].items()))]
    return lines + [""]


def _eval_section(facts: dict) -> list[str]:
    report = facts.get("eval") or {}
    m = _metrics(facts)
    if m is None:
        return ["## Evaluation", "", "No eval report was given (`distill publish eval=DIR`).", ""]
    s = report.get("settings") or {}
    if _benchmark(facts):
        return _benchmark_section({**_benchmark(facts), "outputs_repo_id": facts.get("outputs_repo_id")}, m)
    lines = ["## Evaluation", "", f"`distill eval` on `{public_name(s.get('problems'))}` ({m.problems} problems, "
             f"{s.get('samples', 1)} sample(s) each, max_new_tokens={s.get('max_new_tokens')}, "
             f"temperature={s.get('temperature')}), scored with the same verifier as the filter.", ""]
    c = report.get("compare")
    if c and c.get("difference") is not None:
        ci = c["interval"]
        compared = [("pass@1", c)] + [(spec.key, c[spec.key]) for _, spec in accuracy_specs()[1:]
                                      if isinstance(c.get(spec.key), dict) and c[spec.key].get("difference") is not None]
        lines += [_table([(key, _pct(d["before"]), _pct(d["after"]),
                           f"{100 * d['difference']:+.1f} pts [{100 * d['interval']['low']:+.1f}, "
                           f"{100 * d['interval']['high']:+.1f}]") for key, d in compared],
                         ("metric", "base", "base + adapter",
                          f"paired difference ({int(100 * ci['confidence'])}% {ci['method']} CI)")), ""]
    before = (c or {}).get("by_family_before")
    header, families = family_table(m, metrics_from_json({"by_family": before}) if before else None)
    if families:
        lines += ["Per problem family: pass@1, and sound accuracy (correct, and every checkable step of the "
                  "model's reasoning true), with 95% Wilson intervals; chance is always giving the family's "
                  "most common training answer.", "", _table([tuple(r) for r in families], tuple(header)), ""]
    rows = [(r.label, r.text(interval=False)) for r in metric_rows(m)
            if r.group is None and r.section in ("accuracy", "pass@k", "share", "tokens")]
    return lines + [_table(rows, ("base + adapter", "value")), ""]


def _benchmark_section(bench: dict, m: Metrics) -> list[str]:
    source = bench["dataset"]
    se = f" ± {100 * m.avg_at_n_stderr:.1f}" if m.avg_at_n_stderr is not None else ""
    lines = ["## Evaluation", "", f"`distill eval benchmark={bench['name']}` on "
             f"[`{source['dataset']}`](https://huggingface.co/datasets/{source['dataset']}) "
             f"({m.problems} problems; licence: {source.get('licence')}): **{100 * m.avg_at_n:.1f}{se}** "
             f"({_protocol_note(bench, m)}; ± one standard error across problems).", ""]
    outputs = bench.get("outputs_repo_id")
    if outputs:
        lines += [f"Every raw answer, with its verdict: [`{outputs}`](https://huggingface.co/datasets/{outputs}).", ""]
    why = _not_comparable(bench, m)
    if why:
        lines += ["Not comparable with published figures: " + ", ".join(why) + ".", ""]
    rows = [(r.label, r.text(interval=False)) for r in metric_rows(m)
            if r.group is None and r.section in ("accuracy", "pass@k", "share", "tokens")]
    return lines + [_table(rows, ("metric", "value")), ""]


def _base_weights(facts: dict) -> list[str]:
    """Say so when the weights trained on are not the named Hub checkpoint (a de-quantised GGUF)."""
    w = facts.get("base_weights")
    if not w:
        return []
    quant = f"{w['quantisation']}-quantised " if w.get("quantisation") else ""
    base = facts.get("base_model") or "the base model"
    return [f"**Base weights**: the adapter was trained on weights de-quantised from the {quant}GGUF file "
            f"`{w['file']}` (sha256 `{w.get('sha256')}`) to {w.get('dtype') or 'float'}, not on the `{base}` "
            "checkpoint itself. Applied to that checkpoint it behaves close to, but not exactly as, it did in "
            "training and in the evaluation below.", ""]


def _usage_snippet(facts: dict, repo_id: str, merged: bool = False) -> list[str]:
    record = facts.get("finetune") or {}
    system = record.get("system_prompt")
    recorded = record.get("prompt_template")
    prompt = recorded or "{question}"  # not recorded (chat records, a foreign adapter): the question as it is
    base = facts.get("base_model") or facts.get("base_model_recorded") or "BASE_MODEL"
    messages = ('[{"role": "system", "content": SYSTEM}, {"role": "user", "content": PROMPT.format(question=question)}]'
                if system else '[{"role": "user", "content": PROMPT.format(question=question)}]')
    how = ("The student is prompted exactly as it was trained: the user message template and system prompt below, "
           "in the chat template saved with the tokenizer." if recorded else "No prompt template is recorded for "
           "the training data, so the question goes in as the user message as it is, in the chat template saved "
           "with the tokenizer.")
    return ["## Usage", "", how, "",
            "```python", *([] if merged else ["from peft import PeftModel"]),
            "from transformers import AutoModelForCausalLM, AutoTokenizer", "",
            *([f"model = AutoModelForCausalLM.from_pretrained({repo_id!r})"] if merged else [
                f"base = AutoModelForCausalLM.from_pretrained({base!r})",
                f"model = PeftModel.from_pretrained(base, {repo_id!r})"]),
            f"tokenizer = AutoTokenizer.from_pretrained({repo_id!r})",
            f"PROMPT = {prompt!r}", *([f"SYSTEM = {system!r}"] if system else []),
            'question = "A farmer has 17 sheep and buys 5 more. How many sheep does he have?"',
            f"messages = {messages}",
            "inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors=\"pt\", "
            "return_dict=True)",
            "out = model.generate(**inputs, max_new_tokens=1024)",
            "print(tokenizer.decode(out[0, inputs[\"input_ids\"].shape[1]:], skip_special_tokens=True))",
            "```", "", "Or score it: `distill eval problems=... student=BASE adapter=DIR`.", ""]


def model_card(facts: dict, repo_id: str, dataset_repo_id: str | None, license: str, tags: list[str],
               merged_from: str | None = None) -> str:
    """README.md for the adapter repo (or, with ``merged_from``, for the merged full model)."""
    name = repo_id.split("/")[-1]
    data = ModelCardData(base_model=facts.get("base_model"), library_name="transformers" if merged_from else "peft",
                         pipeline_tag="text-generation",
                         tags=list(dict.fromkeys(TAGS + list(tags))), datasets=[dataset_repo_id] if dataset_repo_id else None,
                         license=license, model_name=name, eval_results=_eval_results(facts, name) or None)
    record = facts.get("finetune") or {}
    hp = record.get("hyperparameters") or {}
    data_info = record.get("data") or {}
    base = facts.get("base_model") or facts.get("base_model_recorded")
    what = f"`{base}` with the LoRA adapter [`{merged_from}`](https://huggingface.co/{merged_from}) merged in" \
        if merged_from else f"A LoRA adapter for `{base}`"
    trained = facts.get("data") or {}
    how = ("distilled from a reasoning teacher with distill: teacher traces, verified final answers only, LoRA "
           "fine-tuning." if trained.get("is_verified") else "fine-tuned with distill (LoRA) on a reasoning teacher's "
           "traces, which carry no verifier verdict." if trained.get("kind") == "traces" else
           "fine-tuned with distill (LoRA) on the training data described below.")
    body = [f"# {name}", "", f"{what}, {how}", ""]
    body += _base_weights(facts)
    if dataset_repo_id:
        body += [f"Training data: [`{dataset_repo_id}`](https://huggingface.co/datasets/{dataset_repo_id}).", ""]
    body += _how_made(facts) + _eval_section(facts)
    if facts.get("gate"):  # the regression gate's comparison, stated whether it passed or not
        body += ["## Regression check", "", *[f"- {line}" for line in facts["gate"]], ""]
    if hp:
        skip = ("data", "out", "progress", "resume", "dry_run")
        body += ["## Training", "", f"{data_info.get('examples', data_info.get('train', '?'))} training examples "
                 f"(data sha256 `{str(data_info.get('sha256', ''))[:16]}`).", "",
                 _table([(k, json.dumps(v)) for k, v in _flat(hp) if k.split(".")[0] not in skip],
                        ("hyper-parameter", "value")), ""]
        if record.get("metrics"):
            body += ["Training metrics: " + ", ".join(f"{k}={v}" for k, v in _flat(record["metrics"])), ""]
        if record.get("versions"):
            body += ["Versions: " + ", ".join(f"{k} {v}" for k, v in record["versions"].items() if v), ""]
    body += _usage_snippet(facts, repo_id, merged=merged_from is not None)
    body += ["## Limitations", "",
             "- A small student imitates the reasoning style of its training data on that distribution; expect "
             "lower accuracy off that distribution and on long problems.",
             "- Only traces whose final answer the rule verifier confirmed were kept: the reasoning itself is not "
             "verified and can contain wrong steps that reach a right answer." if trained.get("is_verified") else
             "- Whether the training data's answers and reasoning are right is not recorded.",
             "- The eval above uses the problems named there; it says nothing about safety or other tasks.",
             "- Respect the licences and terms of the base model, the teacher's API and the problem source."
             if trained.get("kind") == "traces" else "- Respect the licences and terms of the base model and of the "
             "training data.", ""]
    return f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body)


def _size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "n>1M"


def dataset_card(facts: dict, repo_id: str, license: str, rows: int, columns: list[str], tags: list[str]) -> str:
    """README.md for the dataset repo: kept traces, or chat records said to be no more than that."""
    trained = facts.get("data") or {}
    is_traces = trained.get("kind") == "traces"
    data = DatasetCardData(license=license, task_categories=["text-generation"], size_categories=_size_category(rows),
                           tags=list(dict.fromkeys(["distill", *(["reasoning", "synthetic", "distillation"]
                                                                  if is_traces else []), *tags])),
                           pretty_name=repo_id.split("/")[-1],
                           configs=[{"config_name": "default", "data_files": [{"split": "train",
                                                                               "path": "data/train-*.parquet"}]}])
    intro = (f"{rows} reasoning traces from a teacher model, each with a final answer verified against the "
             "problem's reference answer, made with distill (generate -> filter)." if trained.get("is_verified") else
             f"{rows} reasoning traces from a teacher model, made with distill (generate); they carry no verifier "
             "verdict." if is_traces else f"{rows} chat records, published as they were given to `distill finetune`.")
    body = [f"# {repo_id.split('/')[-1]}", "", intro, ""]
    body += _how_made(facts)
    if facts.get("dataset_sha256"):
        body += [f"Source file sha256: `{facts['dataset_sha256']}`.", ""]
    terms = (f"The problems keep their source's licence "
             f"({', '.join(f'{k}={v}' for k, v in facts.get('problems_source', {}).items()) or 'see the source'}); "
             "the traces are subject to the teacher provider's terms. Verified answers do not mean verified "
             "reasoning: steps may be wrong even where the final answer is right." if is_traces else
             "Respect the terms of whatever wrote the records; whether their answers are right is not recorded.")
    body += ["## Schema", "", "One row per kept trace (problem id, sample index):" if is_traces else
             "One row per record, as in the source file:", "",
             _table([(c, _COLUMN_HELP.get(c, "")) for c in columns], ("column", "meaning")), ""]
    body += card_lines(trained.get("learnability_students") or []) if is_traces else []
    body += ["## Load", "", "```python", "from datasets import load_dataset", "",
             f"ds = load_dataset({repo_id!r}, split=\"train\")",
             "print(ds[0][\"question\"], ds[0][\"reasoning\"], ds[0][\"content\"])" if is_traces else
             "print(ds[0][\"messages\"])", "```", "",
             "## Licence and limitations", "", f"Released under `{license}`. {terms}", ""]
    return f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body)


_COLUMN_HELP = {
    "id": "problem id", "sample": "sample index for this problem", "question": "the problem",
    "answer": "reference answer", "kind": "answer kind (math, gsm8k, choice, exact, code)",
    "messages": "the chat turns (for a trace: exactly what was sent to the teacher)",
    "reasoning": "the teacher's chain of thought",
    "content": "the teacher's final answer text", "finish_reason": "why generation stopped",
    "truncated": "cut by the token budget", "model": "model name the endpoint reported",
    "usage": "token counts", "cost_usd": "cost of this response", "verdict": "verifier verdict (correct, extracted, reason)",
    "source": "problem source", "eval_key": "digest of the model, adapter, sampling and prompt that answered",
    "gold": "reference answer (a code problem's tests; over 64 kB: their sha256 and size)",
    "prompt": "the user message the model saw", "response": "everything the model produced",
    "extracted": "the final answer the verifier read", "correct": "verifier verdict", "reason": "why (verifier)",
    "sound": "correct and every checkable step true", "completion_tokens": "tokens generated",
    "learnability": "student-side scores (RSR, local naturalness, mean surprisal) and the student they are for",
}
