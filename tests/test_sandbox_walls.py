"""The sandbox's walls are what the README says, measured with the audit hook switched off from inside.

The candidate first disables the audit hook by editing its closure (so only the OS walls are
left), then tries to escape; the results come back through the judge like any other answer.
Run as root (here and in CI) and, where `setpriv` and a system Python exist, again as `nobody`.

Usage:
    .venv/bin/python -m pytest tests/test_sandbox_walls.py -q
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from distill.verify.sandbox import isolation, run_tests

ROOT = Path(__file__).resolve().parents[1]

HOOK_OFF = """
import gc, types
for f in gc.get_objects():
    if type(f) is types.FunctionType and f.__code__.co_name == "hook" and f.__closure__:
        for cell in f.__closure__:
            c = cell.cell_contents
            name = getattr(c, "__name__", "")
            if name == "deny":
                cell.cell_contents = lambda what: None
            elif name == "inside":
                cell.cell_contents = lambda *a, **k: True
            elif isinstance(c, frozenset):
                cell.cell_contents = frozenset()
            elif isinstance(c, tuple) and c and all(isinstance(x, str) for x in c):
                cell.cell_contents = ("\\0",)
            elif isinstance(c, dict):
                cell.cell_contents = {}
"""

ESCAPE = HOOK_OFF + """
import os, socket, subprocess
def attempt(fn):
    try:
        return fn()
    except OSError:
        return "refused"
def trace(pid):
    import ctypes
    ptrace = ctypes.CDLL(None, use_errno=True).ptrace
    ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
    return "attached" if ptrace(0x4206, pid, None, None) == 0 else "refused"  # PTRACE_SEIZE: never stops it
def probe(project, tmpfile, port, distill_pid):
    return {
        "hook": attempt(lambda: __import__("ctypes") and "off"),
        "read /etc/passwd": attempt(lambda: open("/etc/passwd").read() and "read"),
        "run id": attempt(lambda: subprocess.run(["id"], capture_output=True).returncode == 0 and "ran"),
        "write /tmp": attempt(lambda: open(tmpfile, "w").write("x") and "written"),
        "write project": attempt(lambda: open(project + "/escape-probe", "w").write("x") and "written"),
        "read project": attempt(lambda: open(project + "/README.md").read(10) and "read"),
        "list /proc": attempt(lambda: os.listdir("/proc") and "listed"),
        "connect loopback": attempt(lambda: socket.create_connection(("127.0.0.1", port), timeout=1) and "connected"),
        "signal distill": attempt(lambda: os.kill(distill_pid, 0) or "signalled"),
        "trace distill": attempt(lambda: trace(distill_pid)),
    }
"""


def expected(layers: dict, as_root: bool) -> dict:
    """What each wall lets through; exactly what the README's isolation paragraph states."""
    fs = "refused" if layers["fsroot"] else None
    userns = not as_root and (layers["netns"] or layers["fsroot"] or layers["pidns"])  # made by an ordinary user
    return {
        "hook": "off",  # a tripwire only: the program can always switch it off
        "read /etc/passwd": fs or "read",
        "run id": "refused" if layers["seccomp"] else "ran",  # else only programs under /usr, inside the walls
        "write /tmp": fs or "written",
        "write project": fs or ("refused" if layers["uid"] else "written"),
        "read project": fs or "read",
        "list /proc": fs or "listed",
        "connect loopback": "refused" if layers["netns"] else "connected",
        "signal distill": "refused" if layers["uid"] or layers["pidns"] else "signalled",
        "trace distill": "refused" if layers["uid"] or layers["pidns"] or userns or layers["seccomp"] else "attached",
    }


def escape(tmp_path: Path) -> tuple[dict, dict, Path]:
    tmpfile = Path(tempfile.gettempdir()) / f"distill-escape-{os.getpid()}"
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        tests = f"r = probe({str(ROOT)!r}, {str(tmpfile)!r}, {port}, {os.getpid()})\nassert False, repr(r)"
        res = run_tests(ESCAPE, tests, timeout=10.0)
    assert res.reason == "failed" and "AssertionError: " in res.detail, res
    return eval(res.detail.split("AssertionError: ", 1)[1]), isolation(), tmpfile  # noqa: S307 - our own repr


def test_walls_hold_with_the_hook_switched_off(tmp_path):
    measured, layers, tmpfile = escape(tmp_path)
    try:
        assert measured == expected(layers, os.geteuid() == 0)
        assert tmpfile.exists() == (measured["write /tmp"] == "written")  # nothing outlives the run unless said
        assert not (ROOT / "escape-probe").exists()
    finally:
        tmpfile.unlink(missing_ok=True)


def test_as_root_every_wall_is_up():
    if os.geteuid() != 0:
        pytest.skip("the throwaway uid needs root")
    layers = isolation()
    assert all(layers[k] for k in ("uid", "netns", "fsroot", "pidns", "nproc", "seccomp")), layers


NOBODY_SCRIPT = """
import json, sys
sys.path.insert(0, sys.argv[1])
from distill.verify.sandbox import isolation, run_tests
import os
res = run_tests(sys.argv[3], sys.argv[2].replace("DISTILL_PID", str(os.getpid())), timeout=10.0)
print(json.dumps([isolation(), res.reason, res.detail]))
"""


def test_walls_as_an_ordinary_user(tmp_path):
    system_python = shutil.which("python3", path="/usr/bin:/bin")
    if os.geteuid() != 0 or not shutil.which("setpriv") or not system_python:
        pytest.skip("needs root (to become nobody), setpriv and a system python3")
    tmpfile = Path(tempfile.gettempdir()) / f"distill-escape-nobody-{os.getpid()}"
    tests = f"r = probe({str(ROOT)!r}, {str(tmpfile)!r}, 9, DISTILL_PID)\nassert False, repr(r)"
    run = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", system_python, "-I", "-c",
                          NOBODY_SCRIPT, str(ROOT), tests, ESCAPE], capture_output=True, text=True, timeout=120, cwd="/")
    try:
        assert run.returncode == 0, run.stderr[-2000:]
        layers, reason, detail = json.loads(run.stdout.strip().splitlines()[-1])
        assert reason == "failed" and "AssertionError: " in detail, detail
        measured = eval(detail.split("AssertionError: ", 1)[1])  # noqa: S307 - our own repr
        want = expected(layers, as_root=False)
        want["connect loopback"] = "refused"  # nothing listens on port 9 for nobody either way
        assert measured == want
        assert not layers["uid"]
    finally:
        tmpfile.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
