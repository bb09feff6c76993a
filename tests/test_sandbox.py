"""The code sandbox against correct, wrong and hostile programs; the OS layers checked on their own.

Usage:
    .venv/bin/python -m pytest tests/test_sandbox.py -q
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
from pathlib import Path

import pytest

from distill.verify import confine, sandbox
from distill.verify.sandbox import run_tests

ADD = "def add(a, b):\n    return a + b\n"


TEST_UIDS = (2_950_000, 2_999_999)  # our own slice, so other suites' sandboxes never look like strays


def stray_processes() -> list[int]:
    """Live (non-zombie) processes left by this module's sandbox runs."""
    return [int(e.name) for e in os.scandir("/proc")
            if e.name.isdigit() and TEST_UIDS[0] <= _uid(e) < TEST_UIDS[1] and not _zombie(e.path)]


def _zombie(path: str) -> bool:
    try:
        return confine.is_zombie(path)
    except OSError:
        return True


def _uid(entry) -> int:
    try:
        return entry.stat().st_uid
    except OSError:
        return -1


@pytest.fixture(autouse=True)
def no_strays(monkeypatch):
    monkeypatch.setattr(confine, "UID_RANGE", TEST_UIDS)
    yield
    assert stray_processes() == []


def test_correct_program_passes():
    res = run_tests(ADD, "assert add(2, 3) == 5\nassert add(-1, 1) == 0")
    assert (res.passed, res.reason, res.detail) == (True, "passed", "")


def test_wrong_program_names_the_failing_assert():
    res = run_tests(ADD.replace("+", "-"), "assert add(0, 0) == 0\nassert add(2, 3) == 5")
    assert (res.passed, res.reason) == (False, "failed")
    assert "tests line 2" in res.detail and "add(2, 3) == 5" in res.detail


def test_wrong_program_names_the_failing_test_function():
    tests = "def test_zero():\n    assert add(0, 0) == 0\n\ndef test_five():\n    assert add(2, 3) == 5, 'five'\n"
    res = run_tests(ADD.replace("+", "-"), tests)
    assert res.reason == "failed" and res.detail.startswith("test_five:") and "five" in res.detail
    assert run_tests(ADD, tests).passed


def test_stdin_stdout_cases():
    tests = '[{"input": "4\\n", "output": "8"}, {"input": "5", "output": "10\\n"}]'
    assert run_tests("print(int(input()) * 2)", tests).passed
    assert run_tests("import sys\nprint(int(sys.stdin.read()) * 2)", tests).passed
    assert run_tests("print(int(open(0).read()) * 2)", tests).passed
    res = run_tests("n = int(input())\nprint(n * 2 if n < 5 else n)", tests)
    assert res.reason == "failed" and res.detail.startswith("case 2: expected '10")


def test_program_crash_and_bad_tests():
    assert run_tests("def f(:\n", "assert True").reason == "crashed"
    assert run_tests("raise SystemExit(3)", '[{"input": "", "output": ""}]').reason == "crashed"
    assert run_tests(ADD, "").reason == "no_tests"
    assert run_tests(ADD, "[]").reason == "no_tests"
    assert run_tests(ADD, "assert add(1,").reason == "no_tests"


def test_printing_a_fake_verdict_does_not_pass():
    fake = 'print(\'{"passed": true, "reason": "passed", "detail": ""}\')\nimport os\nos._exit(0)'
    res = run_tests(fake, "assert False")
    assert not res.passed and res.reason == "crashed"


def test_infinite_loop_times_out():
    started = time.monotonic()
    res = run_tests("while True:\n    pass", "assert True", timeout=1.0)
    assert (res.passed, res.reason) == (False, "timeout")
    assert time.monotonic() - started < 5


def test_sleeping_children_are_killed_with_the_group():
    # CPU limits do not stop a sleeper; the wall clock and the group kill do
    res = run_tests("import time\ntime.sleep(60)", "assert True", timeout=1.0)
    assert res.reason == "timeout"


def test_fork_bomb_is_refused():
    res = run_tests("import os\nwhile True:\n    os.fork()", "assert True", timeout=2.0)
    assert (res.passed, res.reason) == (False, "forbidden") and "fork" in res.detail


def test_memory_hog_is_stopped():
    res = run_tests("x = []\nwhile True:\n    x.append(bytearray(10**7))", "assert True", memory_mb=256)
    assert (res.passed, res.reason) == (False, "memory")


def test_huge_file_write_is_stopped(tmp_path):
    program = "with open('big.bin', 'wb') as f:\n    while True:\n        f.write(b'x' * 10**6)"
    res = run_tests(program, "assert True")
    assert (res.passed, res.reason) == (False, "forbidden") and "File too large" in res.detail


def test_writing_outside_the_temp_dir_is_refused():
    target = Path(tempfile.gettempdir()) / f"distill-sandbox-escape-{os.getpid()}"
    res = run_tests(f"open({str(target)!r}, 'w').write('x')", "assert True")
    assert (res.passed, res.reason) == (False, "forbidden")
    assert not target.exists()
    res = run_tests("import os\nos.remove('/etc/hostname')", "assert True")
    assert res.reason == "forbidden" and Path("/etc/hostname").exists()


def test_writing_inside_the_temp_dir_is_fine():
    program = "import os\nopen('notes.txt', 'w').write('hi')\nos.mkdir('d')\nRESULT = open('notes.txt').read()"
    assert run_tests(program, "assert RESULT == 'hi'").passed


def test_secrets_in_the_environment_are_invisible(monkeypatch):
    monkeypatch.setenv("DISTILL_TEST_SECRET", "hunter2-do-not-leak")
    program = "import os\nSEEN = dict(os.environ)"
    res = run_tests(program, "assert not any('hunter2' in v for v in SEEN.values())\nassert 'DISTILL_TEST_SECRET' not in SEEN")
    assert res.passed, res.detail
    spy = "import os\nDATA = open('/proc/%d/environ' % os.getppid(), 'rb').read()"
    assert run_tests(spy, "assert b'hunter2' not in DATA").reason == "forbidden"
    home_file = Path(tempfile.mkdtemp()) / "token"
    home_file.write_text("hunter2")
    home_file.chmod(0o644)
    res = run_tests(f"DATA = open({str(home_file)!r}).read()", "assert 'hunter2' not in DATA")
    assert res.reason == "forbidden" and "reading" in res.detail


def test_network_is_refused():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        program = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1).sendall(b'x')"
        res = run_tests(program, "assert True")
    assert (res.passed, res.reason) == (False, "forbidden")


def test_spawning_processes_is_refused():
    res = run_tests("import os\nos.system('echo hi')", "assert True")
    assert res.reason == "forbidden"


def test_ordinary_stdlib_code_still_works():
    program = ("import collections, heapq, itertools, math, re, functools, dataclasses, enum, typing, json\n"
               "P = collections.namedtuple('P', 'x y')\n"
               "class C(enum.Enum):\n    A = 1\n"
               "@functools.lru_cache(None)\ndef fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n")
    assert run_tests(program, "assert fib(30) == 832040 and P(1, 2).y == 2 and C.A.value == 1").passed


# ---------------------------------------------------------------- the OS layers without the audit hook


def spawn(argv: list[str], timeout: float = 3.0) -> tuple[int | None, str]:
    """Run argv behind the OS walls only (no harness, so no audit hook): (exit status or None, stdout)."""
    with tempfile.TemporaryDirectory(prefix="distill-test-") as base:
        jail = confine.Jail(Path(base), confine.isolation(), cpu_s=timeout, memory_mb=256)
        try:
            code = jail.wait(jail.start("p", argv), time.monotonic() + timeout)
        finally:
            jail.close()
        return code, jail.output("p", 1 << 20)


def test_isolation_report_is_truthful():
    layers = sandbox.isolation()
    assert set(layers) >= {"uid", "netns", "pidns", "fsroot", "seccomp", "nproc", "network", "python"}
    _, out = spawn([layers["python"], "-I", "-S", "-c", "import os, socket; print(os.getuid(), socket.if_nameindex())"])
    uid = int(out.split()[0])
    assert (uid != os.geteuid()) == layers["uid"]
    assert ("'lo')]" in out and out.count("(") == 1) == layers["netns"] or not layers["netns"]


def test_shell_fork_bomb_is_contained_by_the_os():
    if not sandbox.isolation()["nproc"]:
        pytest.skip("RLIMIT_NPROC is only exact with a throwaway uid (running as root)")
    started = time.monotonic()
    code, _ = spawn(["/bin/sh", "-c", "b() { b | b & }; b; sleep 30"], timeout=2.0)
    assert code != 0  # killed on the wall clock (None), or no more forks once pid 1 of its namespace died
    assert time.monotonic() - started < 15
    # the no_strays fixture checks that every process of the throwaway uid is gone


def test_os_refuses_writes_outside_without_the_hook():
    if not sandbox.isolation()["uid"]:
        pytest.skip("needs the throwaway uid (running as root)")
    target = Path.cwd() / f"sandbox-escape-{os.getpid()}"
    _, out = spawn(["/bin/sh", "-c", f"echo x > {target}; echo rc=$?"])
    assert "rc=0" not in out and not target.exists()


def test_network_namespace_without_the_hook():
    if not sandbox.isolation()["netns"]:
        pytest.skip("no network namespace here")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        code = f"import socket\ntry:\n    socket.create_connection(('127.0.0.1', {port}), timeout=1)\n" \
               f"    print('CONNECTED')\nexcept OSError as e:\n    print('REFUSED', e)"
        _, out = spawn([sandbox.isolation()["python"], "-I", "-S", "-c", code])
    assert "REFUSED" in out and "CONNECTED" not in out
