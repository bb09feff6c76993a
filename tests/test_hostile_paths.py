"""No input is ever overwritten, and no request is paid twice (issue #13 §3).

Every verb's outputs are checked against every input (resolved, symlinks and hard links
followed) before anything is written; generate holds an exclusive lock on its output and
`distill run` on its run folder, and a second process fails at once naming the holder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from distill.config import load_config
from distill.errors import InputError, OutputLocked
from distill.evaluate.config import EvalConfig
from distill.filter.config import FilterConfig
from distill.finetune.config import FinetuneConfig
from distill.generate.config import GenerateConfig
from distill.lock import exclusive_lock
from distill.publish.config import PublishConfig
from distill.teacher.server import TeacherServer
from hostile_helpers import snapshot
from records_factory import write_problems, write_traces


def _filter(tmp_path, *overrides):
    from distill.filter import run

    return run(load_config(FilterConfig, None, ["workers=1", "progress=false", "plot=false", *overrides]))


@pytest.mark.parametrize("make", [
    lambda t: ([f"traces={t / 'in.jsonl'}", f"out={t / 'kept.jsonl'}", f"rejected={t / 'in.jsonl'}"], "rejected"),
    lambda t: ([f"traces={t / 'in.jsonl'}", f"out={t / 'kept.jsonl'}", f"stats={t / 'in.jsonl'}"], "stats"),
    # an input that happens to be named like a default output beside out=
    lambda t: ([f"traces={t / 'rejected.jsonl'}", f"out={t / 'kept.jsonl'}"], "rejected"),
    lambda t: ([f"traces={t / 'in.jsonl'}", f"out={t / 'link.jsonl'}"], "out"),  # a symlink to the input
    lambda t: ([f"traces={t / 'in.jsonl'}", f"out={t / 'kept.jsonl'}", f"stats={t / 'hard.json'}"], "stats"),
    lambda t: ([f"traces={t / 'in.jsonl'}", f"out={t / 'kept.jsonl'}", f"decontam.problems=[{t / 'kept.jsonl'}]"],
               "out"),
], ids=["rejected=IN", "stats=IN", "input-named-rejected", "symlink", "hard-link", "decontam-file-as-out"])
def test_filter_never_writes_over_an_input(tmp_path, make):
    write_traces(tmp_path / "in.jsonl")
    write_traces(tmp_path / "rejected.jsonl")
    write_traces(tmp_path / "kept.jsonl")
    os.symlink(tmp_path / "in.jsonl", tmp_path / "link.jsonl")
    os.link(tmp_path / "in.jsonl", tmp_path / "hard.json")
    overrides, field = make(tmp_path)
    before = snapshot(tmp_path)
    with pytest.raises(InputError, match="would overwrite the input") as info:
        _filter(tmp_path, *overrides)
    assert info.value.field == field
    assert snapshot(tmp_path) == before


def test_generate_out_that_is_the_problems_file_is_refused(tmp_path):
    from distill.generate import run

    write_problems(tmp_path / "p.jsonl")
    os.symlink(tmp_path / "p.jsonl", tmp_path / "alias.jsonl")
    before = snapshot(tmp_path)
    with TeacherServer() as srv:
        with pytest.raises(InputError, match="would overwrite the input problems="):
            run(GenerateConfig(problems=str(tmp_path / "p.jsonl"), out=str(tmp_path / "alias.jsonl"),
                               base_url=srv.base_url, model="m", progress=False))
        assert srv.stats.requests == 0
    assert snapshot(tmp_path) == before


def test_finetune_out_equal_to_the_student_folder_is_refused(tmp_path):
    from distill.finetune import run

    student = tmp_path / "student"
    student.mkdir()
    (student / "tokenizer.json").write_text('{"model": "original"}')
    (student / "config.json").write_text("{}")
    write_traces(tmp_path / "kept.jsonl")
    before = snapshot(tmp_path)
    for out in (student, tmp_path / "." / "student" / ".." / "student"):
        with pytest.raises(InputError, match="would overwrite the input student=") as info:
            run(FinetuneConfig(data=str(tmp_path / "kept.jsonl"), student=str(student), out=str(out)))
        assert info.value.field == "out"
    # and the adapter folder may not hold the training data either
    with pytest.raises(InputError, match="would overwrite the input data="):
        run(FinetuneConfig(data=str(tmp_path / "kept.jsonl"), student=str(student), out=str(tmp_path)))
    assert snapshot(tmp_path) == before


def test_eval_out_folder_may_not_hold_or_be_an_input(tmp_path):
    from distill.evaluate import run

    write_problems(tmp_path / "p.jsonl")
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "config.yaml").write_text("finetune: settings\n")  # eval would write its config.yaml here
    (tmp_path / "ev").mkdir()
    write_problems(tmp_path / "ev" / "outputs.jsonl")  # problems named like eval's own output file
    snap = snapshot(tmp_path)
    with pytest.raises(InputError, match="would overwrite the input problems="):
        run(EvalConfig(problems=str(tmp_path / "ev" / "outputs.jsonl"), out=str(tmp_path / "ev"), backend="api"))
    with pytest.raises(InputError, match="would overwrite the input adapter="):
        run(EvalConfig(problems=str(tmp_path / "p.jsonl"), student=str(tmp_path), adapter=str(adapter),
                       out=str(adapter)))
    assert snapshot(tmp_path) == snap


def test_publish_staging_folder_may_not_be_an_input(tmp_path):
    from distill.publish import run

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    snap = snapshot(tmp_path)
    with pytest.raises(InputError, match="would overwrite the input adapter="):
        run(PublishConfig(adapter=str(adapter), repo_id="me/x", out=str(adapter), dry_run=True))
    assert snapshot(tmp_path) == snap


# ---------------------------------------------------------------- locks


def test_lock_names_its_holder_and_frees_on_exit(tmp_path):
    target = tmp_path / "traces.jsonl"
    with exclusive_lock(target):
        with pytest.raises(OutputLocked, match=rf"pid {os.getpid()} on .*pytest"):
            with exclusive_lock(target):
                pass
    with exclusive_lock(target):  # released: taken again at once
        pass


def _respond(messages, request):
    return "Step one. Step two.", "The answer is \\boxed{7}."


@pytest.mark.slow  # two CLI start-ups
def test_second_generate_on_the_same_out_fails_at_once_naming_the_first(tmp_path):
    n = 24
    write_problems(tmp_path / "p.jsonl", n)
    out = tmp_path / "traces.jsonl"
    env = dict(os.environ, DISTILL_PROGRESS="0")
    with TeacherServer(dialect="deepseek", responder=_respond, latency=0.15) as srv:
        cmd = [sys.executable, "-m", "distill", "generate", f"problems={tmp_path / 'p.jsonl'}",
               f"base_url={srv.base_url}", "model=test-teacher", f"out={out}", "concurrency=2"]
        first = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while not (out.exists() and out.read_bytes().count(b"\n") >= 1):
            assert first.poll() is None and time.monotonic() < deadline, first.communicate()
            time.sleep(0.05)
        started = time.monotonic()
        second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
        assert first.poll() is None, "the first run finished before the second started: test too slow to mean much"
        assert second.returncode == 6, second.stderr
        last = second.stderr.strip().splitlines()[-1]
        assert last.startswith("distill generate: error:") and f"pid {first.pid}" in last and "generate" in last
        assert "Traceback" not in second.stderr
        first.communicate(timeout=120)
        assert first.returncode == 0
        assert srv.stats.requests == n  # every pair asked once: the second run sent nothing
    assert time.monotonic() - started < 60


@pytest.mark.slow
def test_second_distill_run_on_a_held_run_folder_fails_at_once(tmp_path):
    run_dir = tmp_path / "runs" / "r1"
    run_dir.mkdir(parents=True)
    env = dict(os.environ, DISTILL_PROGRESS="0")
    with exclusive_lock(run_dir, lock_file=run_dir / ".lock"):
        proc = subprocess.run([sys.executable, "-m", "distill", "run", f"run_dir={run_dir}"], env=env,
                              capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 6, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert f"pid {os.getpid()}" in last and "in use by another distill process" in last
    assert sorted(p.name for p in run_dir.iterdir()) == [".lock"]  # nothing else written


def test_lock_file_records_the_holder(tmp_path):
    with exclusive_lock(tmp_path / "t.jsonl") as path:
        holder = json.loads(path.read_text())
    assert holder["pid"] == os.getpid() and holder["host"] and "command" in holder


def test_distill_run_never_writes_over_a_file_the_recipe_names(tmp_path):
    from distill.pipeline import run
    from distill.pipeline.config import load_pipeline

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    problems = run_dir / "traces.jsonl"  # the user's problems, where the pipeline keeps its traces
    problems.write_text(json.dumps({"id": "a", "question": "1+1?", "answer": "2"}) + "\n")
    with TeacherServer() as srv:
        cfg = load_pipeline(None, [f"generate.problems={problems}", "teacher=endpoint", f"run_dir={run_dir}",
                                   f"generate.base_url={srv.base_url}", "generate.api_key_env=null",
                                   "generate.model=m", "stages=[generate, filter]"])
        with pytest.raises(InputError, match="would overwrite the input generate.problems="):
            run(cfg)
        assert srv.stats.requests == 0
    assert problems.read_text() == json.dumps({"id": "a", "question": "1+1?", "answer": "2"}) + "\n"


def _make_read_only(folder) -> bool:
    """chmod for an ordinary user; root ignores modes, so there the folder is made immutable."""
    folder.chmod(0o555)
    if os.geteuid() != 0:
        return True
    return subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0


def test_a_read_only_output_folder_is_one_line_before_anything(tmp_path):
    write_problems(tmp_path / "p.jsonl")
    ro = tmp_path / "ro"
    ro.mkdir()
    if not _make_read_only(ro):
        pytest.skip("cannot make a read-only folder here (root without chattr)")
    try:
        proc = subprocess.run([sys.executable, "-m", "distill", "generate", f"problems={tmp_path / 'p.jsonl'}",
                               f"out={ro / 't.jsonl'}", "base_url=http://127.0.0.1:9/v1", "api_key_env=null",
                               "model=m"], capture_output=True, text=True, timeout=120,
                              env=dict(os.environ, DISTILL_PROGRESS="0"))
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in proc.stderr
        assert f"{ro / 't.jsonl'} (field 'out'): cannot write here (" in lines[0]
        assert list(ro.iterdir()) == []
    finally:
        subprocess.run(["chattr", "-i", str(ro)], capture_output=True)
        ro.chmod(0o755)


def test_one_lock_for_every_name_of_the_same_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.jsonl").write_text("")
    os.symlink(tmp_path / "t.jsonl", tmp_path / "alias.jsonl")
    with exclusive_lock(tmp_path / "t.jsonl"):
        for other in ("t.jsonl", "./t.jsonl", str(tmp_path / "alias.jsonl")):
            with pytest.raises(OutputLocked):
                with exclusive_lock(other):
                    pass


def test_finetune_out_inside_the_student_cache_is_refused(tmp_path, monkeypatch):
    from distill.finetune import run

    monkeypatch.setenv("DISTILL_HOME", str(tmp_path / "home"))
    cached = tmp_path / "home" / "students" / "smollm2-abc"
    cached.mkdir(parents=True)
    (cached / "tokenizer.json").write_text("{}")
    write_traces(tmp_path / "kept.jsonl")
    with pytest.raises(InputError, match="student cache"):
        run(FinetuneConfig(data=str(tmp_path / "kept.jsonl"), student="smollm2", out=str(cached)))
    assert (cached / "tokenizer.json").read_text() == "{}"
