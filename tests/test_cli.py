"""The `distill` command: help for every verb, clean errors, and no torch on the light paths."""

from __future__ import annotations

import subprocess
import sys

import pytest

from distill.cli import VERBS, main
from distill.config import describe


def _distill(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "distill", *args], capture_output=True, text=True, timeout=120)


def test_top_level_help_lists_every_verb(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for verb in VERBS:
        assert verb in out


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_verb_help_lists_every_option_with_default_and_meaning(verb, capsys):
    assert main([*verb.split(), "--help"]) == 0
    out = capsys.readouterr().out
    for key, _type, _default, meaning in describe(VERBS[verb].config):
        assert f"  {key}: " in out
        assert meaning, f"{verb}: option {key} has no help text"


def test_help_and_generate_config_do_not_import_torch():
    code = ("import sys; from distill.cli import main, VERBS; main(['--help']);"
            "[main([*v.split(), '--help']) for v in VERBS];"
            "import distill.generate, distill.teacher.config;"
            "bad = [m for m in ('torch', 'transformers', 'peft') if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout
    assert out.strip().endswith("[]"), out


def test_unknown_verb_and_unknown_key_exit_2_with_a_hint():
    res = _distill("generat")
    assert res.returncode == 2 and "unknown verb" in res.stderr
    res = _distill("generate", "sample=3")
    assert res.returncode == 2
    assert "unknown key 'sample' (did you mean 'samples'?)" in res.stderr
    assert "Traceback" not in res.stderr


def test_stray_argument_is_refused():
    res = _distill("generate", "notakey")
    assert res.returncode != 0 and "unexpected argument 'notakey'" in res.stderr


def test_a_verb_runs_the_function_its_entry_holds(monkeypatch, capsys):
    import dataclasses

    seen = []
    monkeypatch.setitem(VERBS, "filter", dataclasses.replace(VERBS["filter"], run=lambda cfg: seen.append(cfg) or "ran"))
    assert main(["filter", "traces=t.jsonl", "out=k.jsonl"]) == 0
    assert [(cfg.traces, cfg.out) for cfg in seen] == [("t.jsonl", "k.jsonl")]
    assert capsys.readouterr().out.strip() == "ran"
