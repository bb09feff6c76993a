"""The README's commands parse as valid distill invocations: the verb exists, every key is known.

Commands are the lines starting with ``distill `` inside fenced blocks; when the README marks
blocks with a ``<!-- test:command -->`` line, only the marked blocks are checked.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
from pathlib import Path

import pytest

from distill.cli import VERBS, _split_args, _split_verb
from distill.config import load_config

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
FENCE = re.compile(r"(<!--\s*test:command\s*-->\s*\n)?```[^\n]*\n(.*?)```", re.S)


def readme_commands(text: str) -> list[str]:
    blocks = FENCE.findall(text)
    if any(marker for marker, _ in blocks):
        blocks = [b for b in blocks if b[0]]
    commands = []
    for _, body in blocks:
        joined = re.sub(r"\\\n\s*", " ", body)  # shell line continuations
        for line in joined.splitlines():
            for part in re.split(r"&&|\|\||;|&|\|", line.split(" #")[0]):  # chains, background, pipes
                part = re.sub(r"^\$\s+", "", part.strip())
                part = re.sub(r"^(\S*/)?distill(?=\s|$)", "distill", part)  # .venv/bin/distill
                if part.split(" ")[0] != "distill" or "--help" in part or _is_usage(part):
                    continue
                commands.append(" ".join(part.split()))
    return commands


def _is_usage(line: str) -> bool:
    """A synopsis line (``distill eval [RECIPE.yaml] [key=value ...]``), not a command to run."""
    return "[" in line and ("..." in line or re.search(r"\[[A-Z<]", line) is not None) or "<verb>" in line


def check_command(command: str) -> None:
    argv = shlex.split(command)[1:]
    verb_name, rest = _split_verb(argv)
    assert verb_name is not None, f"unknown verb in: {command}"
    recipe, overrides = _split_args(rest)
    config_cls = VERBS[verb_name].config
    if recipe is not None:
        assert (ROOT / recipe).exists(), f"{command}: recipe {recipe} not in the repository"
        recipe = ROOT / recipe
    elif verb_name == "run":
        from distill.pipeline.config import default_recipe
        recipe = default_recipe()
    load_config(config_cls, recipe, overrides)


def test_extractor_finds_marked_and_continued_commands():
    text = ("```bash\ndistill generate x=1\n```\n<!-- test:command -->\n```bash\n"
            "distill run \\\n  name=a   # comment\n$ distill eval student=s\n"
            "pip install x && .venv/bin/distill run\ndistill eval [RECIPE.yaml] [key=value ...]\n```\n")
    assert readme_commands(text) == ["distill run name=a", "distill eval student=s", "distill run"]


def test_a_bad_key_is_caught():
    with pytest.raises(Exception, match="unknown key"):
        check_command("distill run finetune.lora.rank=4")


def test_readme_commands_are_valid():
    if not README.exists():
        pytest.skip("README.md not written yet")
    commands = readme_commands(README.read_text(encoding="utf-8"))
    assert commands, "the README shows no distill command"
    has_ray = importlib.util.find_spec("ray") is not None  # the optional `ray` extra
    for command in commands:
        if has_ray or "engine=ray" not in command:
            check_command(command)
