"""The plan of a run: a round's steps (generate -> filter -> finetune -> eval ...) with every config resolved.

Usage:
    steps = plan(cfg, run_dir)                  # round 1: [Step("generate", ...), Step("filter", ...), ...]
    steps = plan(cfg, run_dir, number=2)        # a STaR round in round-2/, sampled by round 1's student
    finetune, scored = plan_arm(cfg, run_dir, "unfiltered", data, "{reasoning}{content}")   # an ablation arm
    finetune, scored = plan_continued_arm(cfg, run_dir, "onpolicy_self")   # an arm from the run's SFT adapter
    pick, finetune, scored = plan_pick_arm(cfg, run_dir, "pick_shortest")  # the run's filter, another policy

Every step's config is complete here (its paths, the built-in teacher's model and provider, a
round's sampler), so what :mod:`distill.pipeline.steps` keys is what runs. Pure apart from
reading files' bytes (a round's samples are named by the previous adapter's hash) and writing
inputs made from recipe specs or earlier outputs: no stage runs here. Every path comes from
:class:`distill.layout.RunLayout`; setting a field a stage does not have fails.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import json
from pathlib import Path
from typing import Any

from distill.config import to_dict
from distill.errors import ConfigError
from distill.finetune.config import OnPolicyConfig
from distill.layout import EvalFiles, FilterFiles, RunLayout
from distill.pipeline.config import PipelineConfig
from distill.pipeline.lora_endpoint import adapter_name, loaded_by
from distill.pipeline.state import content_hash
from distill.pipeline.steps import Step
from distill.pipeline.student_teacher import offline_teacher, student_teacher
from distill.publish.config import PublishConfig
from distill.records import read_jsonl, write_text_atomic


def plan(cfg: PipelineConfig, run_dir: Path, number: int = 1) -> list[Step]:
    """Round ``number``'s steps that ``cfg.stages`` asks for, in pipeline order, wired into ``run_dir``.

    Round 1 is the run: the teacher generates, and eval-before, the guard and publish run. Round
    r >= 2 (after round r-1 finished) lives in ``round-<r>/``: round r-1's student samples, finetune
    trains on the union of every round's kept traces, eval-after scores it.
    """
    run = RunLayout(Path(run_dir).resolve())
    here = run.round(number)
    wanted = set(cfg.stages)
    steps: list[Step] = []
    if "generate" in wanted:
        steps.append(_teacher_generate(cfg, run) if number == 1 else _student_generate(cfg, run, number))
    if "filter" in wanted:
        steps.append(_filter(cfg, here.traces, here.root, here.kept))
    if "finetune" in wanted:
        steps.append(_round_finetune(cfg, run, number))
        if cfg.onpolicy.enabled and number == 1:
            steps.append(_onpolicy_finetune(cfg, here.root, here.kept, here.adapter.folder, here.onpolicy_adapter.folder))
    if "eval" in wanted:
        steps.extend(_eval_steps(cfg, here, number, with_adapter="finetune" in wanted or here.adapter.folder.exists()))
    if "publish" in wanted and number == 1:  # a loop publishes its best round by hand (its config refuses this)
        steps.append(_publish(cfg, run))
    return steps


def plan_arm(cfg: PipelineConfig, run_dir: Path, arm: str, data: Path, reasoning_format: str) -> list[Step]:
    """An ablation arm in ``ablation/<arm>/``: the recipe's finetune on ``data``, then eval-after's scoring."""
    files = RunLayout(Path(run_dir).resolve()).ablation.arm(arm)
    train = _finetune(cfg.finetune, files.root, data, files.adapter.folder, cfg.finetune.init_adapter,
                      reasoning_format=reasoning_format)
    return [train, _eval_adapter(cfg.eval, "eval", cfg.eval.problems, files.eval, files.root, files.adapter.folder)]


def _teacher_generate(cfg: PipelineConfig, run: RunLayout) -> Step:
    """Round 1: the recipe's teacher; with ``teacher=offline`` the built-in one, started when generate runs.
    The resolved config travels with the traces (set aside and restored together): generate refuses
    traces whose config names another teacher or sampling."""
    outputs = [run.traces, run.generate_config]
    if cfg.teacher != "offline":
        gen = _wired(cfg.generate, out=str(run.traces))
        return Step("generate", "generate", gen, run.root, outputs, inputs={"problems": _local(gen.problems)})
    gen = _wired(cfg.generate, out=str(run.traces), model=cfg.offline_teacher.model, provider="offline",
                 api_key_env=None)
    # Its settings are keyed in place of its endpoint (a free port, known once it listens).
    extra = {"teacher": "offline", "offline_teacher": to_dict(cfg.offline_teacher)}
    return Step("generate", "generate", gen, run.root, outputs, inputs={"problems": _local(gen.problems)},
                extra_key=extra, serve=functools.partial(offline_teacher, cfg.offline_teacher))


def _student_generate(cfg: PipelineConfig, run: RunLayout, number: int) -> Step:
    """Round r >= 2: round r-1's student samples at ``loop.temperature``, served here or by the user's endpoint."""
    loop, here, previous = cfg.loop, run.round(number), run.round(number - 1).adapter.folder
    digest = content_hash(previous)
    budget = loop.max_new_tokens or cfg.generate.max_tokens
    # The previous adapter's bytes are keyed: a retrained round r-1 means new samples.
    extra: dict[str, Any] = {"generator": loop.generator, "student_adapter": digest}
    if loop.generator == "endpoint":  # the user's server, asked for the adapter by its content-named name
        name = adapter_name(number - 1, digest)
        where: dict[str, Any] = dict(model=name, base_url=loop.base_url, api_key_env=loop.api_key_env,
                                     provider=loop.lora_api)
        if loop.lora_api == "sglang":  # SGLang picks the adapter by lora_path; a bare model name is the base
            where["extra_body"] = {**cfg.generate.extra_body, "lora_path": name}
        seen_as = Path(loop.server_run_dir) / previous.relative_to(run.root) if loop.server_run_dir else previous
        serve = functools.partial(loaded_by, loop, name, str(seen_as))
    else:
        where = dict(model=f"student-round-{number - 1}", provider="offline", api_key_env=None)
        extra["teacher"] = "offline"  # its endpoint is a per-run loopback port: left out of the key
        sampling = dataclasses.replace(cfg.eval, adapter=str(previous), temperature=loop.temperature,
                                       top_p=loop.top_p, max_new_tokens=budget, samples=1)
        serve = functools.partial(student_teacher, sampling, str(previous), model=where["model"])
    gen = _wired(cfg.generate, out=str(here.traces), temperature=loop.temperature, top_p=loop.top_p,
                 max_tokens=budget, max_cost_usd=None, dry_run=False, **where)
    return Step("generate", "generate", gen, here.root, [here.traces, here.generate_config],
                inputs={"problems": _local(gen.problems)}, extra_key=extra, serve=serve)


def plan_pick_arm(cfg: PipelineConfig, run_dir: Path, arm: str) -> list[Step]:
    """A pick arm in ``ablation/<arm>/``: the run's filter on its traces with ``per_problem.policy`` the arm's
    (pick_shortest: shortest), then :func:`plan_arm`'s finetune and eval on what it kept. Learnability
    scoring runs only when the arm's selection reads the scores."""
    run = RunLayout(Path(run_dir).resolve())
    files = run.ablation.arm(arm)
    policy = arm.removeprefix("pick_")
    learn = cfg.filter.learnability
    scores = policy == "learnable" or learn.top_share < 1 or learn.long_share is not None
    section = dataclasses.replace(cfg.filter, per_problem=dataclasses.replace(cfg.filter.per_problem, policy=policy),
                                  learnability=dataclasses.replace(learn, enabled=scores))
    pick = _filter(cfg, run.traces, files.root, files.kept, section)
    return [pick, *plan_arm(cfg, run_dir, arm, files.kept, cfg.finetune.reasoning_format)]


def _filter(cfg: PipelineConfig, traces: Path, root: Path, kept: Path, section: Any = None) -> Step:
    """The filter ``section`` (the recipe's) on ``traces`` into ``kept`` (rejected and stats beside it), its
    ledger in ``root``."""
    section = section or cfg.filter
    # Held-out problems never reach training, whatever the recipe forgot to say.
    eval_problems = _local(cfg.eval.problems)
    decontam = section.decontam.problems or ([str(eval_problems)] if eval_problems else [])
    flt = _wired(section, traces=str(traces), out=str(kept), rejected=None, stats=None,
                 decontam=dataclasses.replace(section.decontam, problems=decontam),
                 learnability=_learnability(section.learnability, cfg.finetune))
    student = {"student": _local(flt.learnability.student)} if flt.learnability.enabled else {}
    # The held-out files' bytes, not their paths: a grown eval set must decontaminate the traces again.
    held_out = {f"decontam_{i}": _local(p) for i, p in enumerate(decontam)}
    files = FilterFiles.beside(kept)
    return Step("filter", "filter", flt, root, [files.kept, files.rejected, files.stats],
                inputs={"traces": traces, **student, **held_out})


def _round_finetune(cfg: PipelineConfig, run: RunLayout, number: int) -> Step:
    """Round 1 trains on its kept traces; round r on the union so far, from the base (restart=base, STaR's
    restart) or from round r-1's adapter (restart=continue: its bytes are a keyed input)."""
    here = run.round(number)
    if number == 1:
        return _finetune(cfg.finetune, here.root, here.kept, here.adapter.folder, cfg.finetune.init_adapter)
    if cfg.loop.method == "on_policy":  # the previous student answers the problems, the self teacher scores
        return _onpolicy_finetune(cfg, here.root, here.train_union, run.round(number - 1).adapter.folder,
                                  here.adapter.folder, "finetune", prepare=functools.partial(write_union, run, number))
    start = str(run.round(number - 1).adapter.folder) if cfg.loop.restart == "continue" else cfg.finetune.init_adapter
    return _finetune(cfg.finetune, here.root, here.train_union, here.adapter.folder, start,
                     prepare=functools.partial(write_union, run, number))


def _onpolicy_finetune(cfg: PipelineConfig, root: Path, data: Path, start: Path, out: Path,
                       name: str = "finetune-onpolicy", prepare: Any = None, teacher: str | None = None) -> Step:
    """The finetune section's settings with method=on_policy (cfg.onpolicy's), from ``start``, on ``data``'s problems.

    After SFT (``start`` is SFT's adapter), in a STaR round (round r-1's adapter, loop.method=on_policy) or
    as an ablation arm (``teacher`` then names the arm's teacher).
    """
    op = cfg.onpolicy
    settings = OnPolicyConfig(**{f.name: copy.deepcopy(getattr(op, f.name)) for f in dataclasses.fields(OnPolicyConfig)})
    settings.teacher = teacher or settings.teacher
    # The start may not exist yet when this is planned: named directly, its bytes are keyed when the step runs
    keyed = {"init_adapter": start}
    if settings.teacher == "model":
        keyed.update(teacher_model=_local(op.teacher_model), teacher_adapter=_local(op.teacher_adapter))
    return _finetune(cfg.finetune, root, data, out, str(start), name=name, inputs=keyed, prepare=prepare,
                     method="on_policy", onpolicy=settings, **_continued_budget(cfg))


def _continued_budget(cfg: PipelineConfig) -> dict[str, Any]:
    """What a run continued from an adapter trains for: the onpolicy section's steps, time and learning rate."""
    op = cfg.onpolicy
    return dict(max_steps=op.max_steps, max_train_seconds=op.max_train_seconds, train_clock=op.train_clock,
                learning_rate=op.learning_rate,
                warmup_ratio=op.warmup_ratio, batch_size=op.batch_size or cfg.finetune.batch_size, eval_fraction=0.0)


def plan_continued_arm(cfg: PipelineConfig, run_dir: Path, arm: str) -> list[Step]:
    """An ablation arm from the run's SFT adapter on its kept traces, on the onpolicy budget, then eval-after's
    scoring: ``sft_continued`` (more SFT), ``onpolicy_self`` or ``onpolicy_model`` (on-policy, that teacher)."""
    run = RunLayout(Path(run_dir).resolve())
    files = run.ablation.arm(arm)
    if arm == "sft_continued":
        train = _finetune(cfg.finetune, files.root, run.kept, files.adapter.folder, str(run.adapter.folder),
                          inputs={"init_adapter": run.adapter.folder}, **_continued_budget(cfg))
    else:
        train = _onpolicy_finetune(cfg, files.root, run.kept, run.adapter.folder, files.adapter.folder, "finetune",
                                   teacher=arm.removeprefix("onpolicy_"))
    return [train, _eval_adapter(cfg.eval, "eval", cfg.eval.problems, files.eval, files.root, files.adapter.folder)]


def trained_adapter(cfg: PipelineConfig, here: RunLayout, number: int = 1) -> Path:
    """The adapter a round ends with: finetune-onpolicy's when the run adds it, else finetune's."""
    return (here.onpolicy_adapter if cfg.onpolicy.enabled and number == 1 else here.adapter).folder


def _finetune(section: Any, root: Path, data: Path, out: Path, start: str | None, name: str = "finetune",
              inputs: dict[str, Path | None] | None = None, prepare: Any = None, **settings: Any) -> Step:
    ft = _wired(section, data=str(data), out=str(out), resume=True, init_adapter=start, **settings)
    keyed = {"data": data, "student": _local(ft.student), "dev": _local(ft.eval_problems),
             # the start's bytes, not its path: a retrained start re-runs finetune
             **({"init_adapter": _local(start)} if start else {}), **(inputs or {})}
    return Step(name, "finetune", ft, root, [out], inputs=keyed, prepare=prepare)


def _eval_steps(cfg: PipelineConfig, here: RunLayout, number: int, with_adapter: bool) -> list[Step]:
    """eval-before (round 1) scores the bare student; eval-after the adapter, compared with eval-before."""
    steps = []
    before = here.eval_before if cfg.eval_before and number == 1 else None
    if before is not None:
        steps.append(_eval_bare(cfg, "eval-before", cfg.eval.problems, before, here.root))
    if with_adapter:
        # Round 1's key always names its before report (None without one); a round's has none.
        extra = {"before": before.report if before else None} if number == 1 else {}
        steps.append(_eval_adapter(cfg.eval, "eval-after", cfg.eval.problems, here.eval_after, here.root,
                                   trained_adapter(cfg, here, number), before, extra))
    if cfg.guard_problems and number == 1:  # always both: forgetting is a drop
        steps.append(_eval_bare(cfg, "guard-before", cfg.guard_problems, here.guard_before, here.root, guard=True))
        if with_adapter:
            steps.append(_eval_adapter(cfg.eval, "guard-after", cfg.guard_problems, here.guard_after, here.root,
                                       trained_adapter(cfg, here), here.guard_before, {"before": here.guard_before.report},
                                       guard=True))
    return steps


def _eval_bare(cfg: PipelineConfig, name: str, problems: str, files: EvalFiles, root: Path,
               guard: bool = False) -> Step:
    """The bare student prompted the way finetune will train it (generate's user template, finetune's system prompt).
    ``guard``: the guard problems, scored as they are (never the eval section's benchmark)."""
    prompt = cfg.eval.prompt_template or cfg.generate.prompt_template
    system = cfg.eval.system_prompt if cfg.eval.system_prompt is not None else cfg.finetune.system_prompt
    ev = _wired(cfg.eval, problems=problems, out=str(files.folder), adapter=None, compare=None, compare_base=False,
                prompt_template=prompt, system_prompt=system, **({"benchmark": None} if guard else {}))
    return Step(name, "eval", ev, root, [files.folder],
                inputs={"problems": _local(problems), "student": _local(cfg.eval.student)})


def _eval_adapter(section: Any, name: str, problems: str, files: EvalFiles, root: Path, adapter: Path,
                  before: EvalFiles | None = None, extra_inputs: dict[str, Path | None] | None = None,
                  guard: bool = False) -> Step:
    """The student with ``adapter``, prompted as the adapter's record says it was trained (eval reads it)."""
    ev = _wired(section, problems=problems, out=str(files.folder), adapter=str(adapter),
                compare=str(before.folder) if before else None, compare_base=False,
                **({"benchmark": None} if guard else {}))
    inputs = {"problems": _local(problems), "student": _local(section.student), "adapter": adapter,
              **(extra_inputs or {})}
    return Step(name, "eval", ev, root, [files.folder], inputs=inputs)


def _publish(cfg: PipelineConfig, run: RunLayout) -> Step:
    wanted = set(cfg.stages)
    paths = dict(out=str(run.publish), stats=str(run.filter.stats), traces=str(run.traces),
                 eval=str(run.eval_after.folder) if "eval" in wanted else None,
                 adapter=str(trained_adapter(cfg, run)) if cfg.publish.repo_id else None,
                 dataset=str(run.kept) if cfg.publish.dataset_repo_id else None,
                 guard_eval=str(run.guard_after.folder) if cfg.guard_problems and "eval" in wanted else None)
    try:
        pub = PublishConfig(**{**_fields(cfg.publish), **paths})  # publish's own checks run here
    except ConfigError as exc:
        raise ConfigError(f"publish: {exc} (the pipeline sets adapter= and dataset= itself)") from None
    # Everything the cards state and the gate decides on: a changed guard or funnel publishes again.
    inputs = {"adapter": trained_adapter(cfg, run), "kept": run.kept, "eval": run.eval_after.report,
              "stats": run.filter.stats, "guard": run.guard_after.report if cfg.guard_problems else None}
    return Step("publish", "publish", pub, run.root, [run.publish], inputs=inputs)


def write_union(run: RunLayout, number: int) -> Path:
    """Round ``number``'s ``train.jsonl``: every round's kept traces so far, each tagged with its round
    (rewritten only when it changes, so an unchanged union keeps finetune's key)."""
    lines = []
    for r in range(1, number + 1):
        kept = run.round(r).kept
        if kept.exists():
            lines += [json.dumps({**rec, "round": r}, ensure_ascii=False) + "\n" for _, rec in read_jsonl(kept)]
    return _write_if_changed(run.round(number).train_union, "".join(lines))


def _learnability(learn: Any, ft: Any) -> Any:
    """Filter's learnability section scoring for the run's student, rendered as finetune ``ft`` will train it."""
    if not learn.enabled:
        return copy.deepcopy(learn)
    return dataclasses.replace(learn, student=learn.student or ft.student, chat_template=ft.chat_template,
                               system_prompt=ft.system_prompt, reasoning_format=ft.reasoning_format,
                               max_length=ft.max_length, overlong=ft.overlong)


def materialize_sources(cfg: PipelineConfig, run_dir: Path) -> PipelineConfig:
    """A copy of ``cfg`` whose ``offline:...`` problem specs are written to JSONL files in the run folder.

    The offline families are made in code (any working directory, an installed wheel); as files
    they reach every stage through the ordinary file source, and their bytes enter the stage keys.
    """
    cfg = copy.deepcopy(cfg)
    for part in (cfg.generate, cfg.eval):
        if isinstance(part.problems, str) and part.problems.startswith("offline:"):
            part.problems = str(_write_offline(part.problems, Path(run_dir)))
    cfg.filter.decontam.problems = [str(_write_offline(s, Path(run_dir))) if s.startswith("offline:") else s
                                    for s in cfg.filter.decontam.problems]
    if cfg.eval.benchmark and not cfg.eval.problems and "filter" in cfg.stages:
        # The benchmark is the held-out set: its questions never reach training (there is no file to name).
        held_out = str(_write_benchmark_questions(cfg.eval, Path(run_dir)))
        cfg.filter.decontam.problems = [*cfg.filter.decontam.problems, held_out]
    return cfg


def _write_benchmark_questions(section: Any, run_dir: Path) -> Path:
    """The eval benchmark's problems (its date window as eval reads it) as a file decontamination reads."""
    from distill.benchmarks import parse_dates, protocol_for
    from distill.benchmarks.hub import load_benchmark

    dates = parse_dates(section.benchmark_dates) if section.benchmark_dates else None
    problems, _ = load_benchmark(protocol_for(section.benchmark), dates=dates)
    text = "".join(json.dumps({"id": p["id"], "question": p["question"]}, ensure_ascii=False) + "\n"
                   for p in problems)
    return _write_if_changed(RunLayout(Path(run_dir)).problems_dir / f"benchmark-{section.benchmark}.jsonl", text)


def _write_offline(spec: str, run_dir: Path) -> Path:
    from distill.offline.sets import from_spec

    try:
        problems = from_spec(spec)
    except ValueError as exc:
        raise ConfigError(f"problems: {exc}") from None
    text = "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in problems)
    slug = "".join(c if c.isalnum() else "-" for c in spec[len("offline:"):]).strip("-")
    digest = hashlib.sha256(spec.encode()).hexdigest()[:6]
    return _write_if_changed(RunLayout(Path(run_dir)).problems_dir / f"offline-{slug}-{digest}.jsonl", text)


def _write_if_changed(path: Path, text: str) -> Path:
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        write_text_atomic(path, text)
    return path


def _wired(section_cfg: Any, **paths: Any) -> Any:
    """A copy of a stage config with the pipeline's paths set; a field the stage lacks is a TypeError
    (a renamed option must fail here, not be skipped), and the stage's own checks run again."""
    return dataclasses.replace(copy.deepcopy(section_cfg), **paths)


def _fields(cfg: Any) -> dict[str, Any]:
    return {f.name: copy.deepcopy(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}


def _local(spec: str | Path | None) -> Path | None:
    """A local file or folder named by a source/student option (Hub names and aliases: None)."""
    if not spec or not isinstance(spec, (str, Path)):
        return None
    path = Path(spec)
    return path.resolve() if path.exists() else None
