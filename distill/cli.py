"""The ``distill`` command: parses arguments, loads the verb's config, calls its ``run``.

Usage:
    distill <verb> [RECIPE.yaml] [key=value ...]
    distill <verb> --help

Parsing only: each verb's work lives in its own package. Its config and its ``run`` are
imported here (jump to them from :data:`VERBS`); both are light, and ``run`` imports the heavy
parts (torch) only when the verb runs, so ``distill --help`` stays fast and never loads torch.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distill import __version__, evaluate, finetune, generate, pipeline, publish
from distill import filter as filter_stage
from distill.config import describe, load_config
from distill.errors import DistillError
from distill.evaluate.config import EvalConfig
from distill.filter.config import FilterConfig
from distill.finetune.config import FinetuneConfig
from distill.generate.config import GenerateConfig
from distill.learnability.config import RankTeachersConfig
from distill.learnability.rank import run as rank_teachers
from distill.pipeline.config import PipelineConfig, default_recipe
from distill.publish.config import PublishConfig
from distill.redact import install as install_redaction
from distill.redact import redact
from distill.teacher import server as teacher_server
from distill.teacher.score import ScoreConfig
from distill.teacher.score import run as teacher_score
from distill.teacher.server_config import ServeConfig


@dataclass(frozen=True)
class Verb:
    config: type  # the config dataclass (config modules are light: no torch)
    run: Callable[[Any], Any]  # does the work; the stage packages' run() import their heavy parts when called
    summary: str
    default_recipe: Callable[[], Path] | None = None  # the recipe used when none is given


VERBS: dict[str, Verb] = {
    "generate": Verb(GenerateConfig, generate.run,
                     "ask a teacher model for reasoning traces (any OpenAI-compatible API)"),
    "filter": Verb(FilterConfig, filter_stage.run,
                   "keep traces whose answer is verified correct; say why the rest went"),
    "finetune": Verb(FinetuneConfig, finetune.run,
                     "LoRA-fine-tune a small student on the kept traces"),
    "eval": Verb(EvalConfig, evaluate.run,
                 "score a student (or any endpoint) on problems with the same verifier"),
    "publish": Verb(PublishConfig, publish.run,
                    "upload the adapter and trace dataset to the Hugging Face Hub, with cards"),
    "run": Verb(PipelineConfig, pipeline.run,
                "the whole pipeline from one recipe (no recipe: the offline default)", default_recipe=default_recipe),
    "rank-teachers": Verb(RankTeachersConfig, rank_teachers,
                          "rank teachers' traces by how learnable they are for a student, before training"),
    "teacher serve": Verb(ServeConfig, teacher_server.serve,
                          "serve the built-in offline teacher on 127.0.0.1 (OpenAI-compatible)"),
    "teacher score": Verb(ScoreConfig, teacher_score,
                          "check a teacher scores the student's tokens (vLLM/SGLang logprobs, same tokenizer)"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if argv[0] == "--version":
        print(f"distill {__version__}")
        return 0
    verb_name, rest = _split_verb(argv)
    if verb_name is None:
        print(f"distill: unknown verb {argv[0]!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    verb = VERBS[verb_name]
    config_cls = verb.config
    if any(a in ("-h", "--help") for a in rest):
        try:
            print(_verb_help(verb_name, verb, config_cls))
        except BrokenPipeError:  # `distill filter --help | head`
            sys.stderr.close()
        return 0
    _setup_logging()
    try:
        recipe, overrides = _split_args(rest)
        if recipe is None and verb.default_recipe:  # `distill run`: the offline default
            recipe = verb.default_recipe()
        cfg = load_config(config_cls, recipe, overrides)
        result = verb.run(cfg)
    except DistillError as exc:
        print(redact(f"distill {verb_name}: error: {exc}"), file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # a full disk, a folder made read-only mid-run: the user's to fix, not a bug
        where = f"{exc.filename}: " if exc.filename else ""
        print(redact(f"distill {verb_name}: error: {where}{exc.strerror or exc}"), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\ndistill {verb_name}: interrupted", file=sys.stderr)
        return 130
    if result is not None:
        print(result)
    return 0


def _split_verb(argv: list[str]) -> tuple[str | None, list[str]]:
    if len(argv) >= 2 and f"{argv[0]} {argv[1]}" in VERBS:
        return f"{argv[0]} {argv[1]}", argv[2:]
    if argv[0] in VERBS:
        return argv[0], argv[1:]
    return None, argv


def _split_args(args: list[str]) -> tuple[str | None, list[str]]:
    recipe = None
    overrides = []
    for arg in args:
        if "=" in arg:
            overrides.append(arg)
        elif recipe is None and arg.endswith((".yaml", ".yml")):
            recipe = arg
        else:
            raise DistillError(f"unexpected argument {arg!r}: give a RECIPE.yaml and key=value options")
    return recipe, overrides


def _usage() -> str:
    width = max(len(v) for v in VERBS)
    lines = [
        f"distill {__version__}: distil a large reasoning model into a small one",
        "",
        "usage: distill <verb> [RECIPE.yaml] [key=value ...]",
        "       distill <verb> --help     every option of a verb, with its default and meaning",
        "",
        "verbs:",
    ]
    lines += [f"  {name.ljust(width)}  {verb.summary}" for name, verb in VERBS.items()]
    lines += ["", "Options come from a YAML recipe and/or key=value pairs (dotted for sections: lora.r=32)."]
    return "\n".join(lines)


def _verb_help(name: str, verb: Verb, config_cls: type) -> str:
    rows = describe(config_cls)
    doc = (config_cls.__doc__ or "").strip()
    lines = [f"usage: distill {name} [RECIPE.yaml] [key=value ...]", "", verb.summary]
    if doc and not doc.startswith(config_cls.__name__ + "("):
        lines += ["", doc]
    lines += ["", "options (key: type = default   meaning):"]
    for key, type_name, default, meaning in rows:
        lines.append(f"  {key}: {type_name} = {_show_default(default)}")
        if meaning:
            lines.append(f"      {meaning}")
    return "\n".join(lines)


def _show_default(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return repr(value) if value == "" or " " in value or "\n" in value else value
    return str(value)


def _setup_logging() -> None:
    level = os.environ.get("DISTILL_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr)
    for noisy in ("httpx", "httpx2", "httpcore", "openai", "urllib3", "filelock", "datasets", "huggingface_hub"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    install_redaction()  # an error body may echo a token: nothing printed from here on carries it


if __name__ == "__main__":
    raise SystemExit(main())
