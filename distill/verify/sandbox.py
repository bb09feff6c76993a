"""Run an untrusted candidate program against its tests in a separate, limited, offline process.

Usage:
    from distill.verify.sandbox import run_tests
    res = run_tests("def add(a, b):\\n    return a + b\\n", "assert add(2, 3) == 5")
    res.passed, res.reason, res.detail          # (True, "passed", "")
    run_tests("print(int(input()) * 2)", '[{"input": "4", "output": "8"}]').passed   # True

``tests`` is Python test code (top-level asserts and/or ``test_*`` functions, run after the program
in its namespace) or a JSON list of ``{"input": stdin, "output": expected stdout}`` cases.

Layers (see ``isolation()`` for what this machine gives): a fresh temp dir as cwd/HOME/TMPDIR; an
empty environment; ``python -I -S``; rlimits (CPU, address space, file size, processes, core=0,
open files); a new session whose process group is SIGKILLed on timeout; as root, a throwaway uid
per run (so the OS refuses writes elsewhere, RLIMIT_NPROC counts only this run, and every process
of that uid is killed afterwards) and a private network namespace (loopback only); in any case an
audit hook that refuses process spawning, sockets, ctypes, frame introspection and writes outside
the temp dir. The hook is a tripwire, not a security boundary; the OS layers are.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import resource
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

log = logging.getLogger(__name__)

REASONS = ("passed", "failed", "timeout", "memory", "crashed", "forbidden", "no_tests")
FILE_LIMIT_MB = 16
NPROC_LIMIT = 32
CLONE_NEWUSER, CLONE_NEWNET = 0x10000000, 0x40000000
UID_RANGE = (2_000_000, 2_900_000)  # throwaway uids, one per run, when running as root
_PYTHON = os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)
_SYSTEM_PYTHONS = ("/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3")


@dataclass
class SandboxResult:
    passed: bool
    reason: str  # one of REASONS
    detail: str = ""  # which test failed, or a short tail of stderr
    duration_s: float = 0.0


def run_tests(program: str, tests: str, timeout: float = 5.0, memory_mb: int = 512) -> SandboxResult:
    """Run ``program`` then ``tests`` in a sandboxed process; never raises for anything the program does."""
    started = time.monotonic()
    mode = _test_mode(tests)
    if mode is None:
        return SandboxResult(False, "no_tests", "no test cases given")
    layers = isolation()
    result = _execute(program, tests, mode, timeout, memory_mb, layers)
    result.duration_s = round(time.monotonic() - started, 3)
    return result


def _test_mode(tests: str | None) -> str | None:
    text = (tests or "").strip()
    if not text:
        return None
    if text.startswith("["):
        try:
            cases = json.loads(text)
        except ValueError:
            cases = None  # maybe a Python list literal as test code
        if cases is not None:
            ok = isinstance(cases, list) and all(isinstance(c, dict) and "input" in c and "output" in c for c in cases)
            return "stdio" if ok and cases else None
    try:
        compile(text, "<tests>", "exec")  # compiling runs nothing; unparseable tests are no tests
    except (SyntaxError, ValueError):
        return None
    return "asserts"


# ---------------------------------------------------------------- the OS side


@lru_cache(maxsize=1)
def isolation() -> dict:
    """Which layers work here, found by probing once: uid switch, network namespace, process limit."""
    root = os.geteuid() == 0
    probe = "import os,socket,json;print(json.dumps([os.getuid(),[n for _,n in socket.if_nameindex()]]))"
    for use_uid in ((True, False) if root else (False,)):
        python = _interpreter(use_uid)
        for netns in (True, False):
            layers = {"uid": use_uid, "netns": netns, "python": python}
            if python is None:
                continue
            try:
                with tempfile.TemporaryDirectory(prefix="distill-probe-") as base:
                    run = _spawn([python, "-I", "-S", "-c", probe], Path(base), 10.0, 256, layers, b"")
            except OSError as exc:
                log.debug("sandbox probe %s failed: %s", layers, exc)
                continue
            if run.returncode == 0:
                try:
                    uid, ifaces = json.loads(run.stdout.strip().splitlines()[-1])
                except (ValueError, IndexError):
                    continue
                layers["netns"] = netns and set(ifaces) <= {"lo"}
                layers["uid"] = use_uid and uid != os.geteuid()
                layers["nproc"] = layers["uid"]  # exact only with a uid of its own
                layers["network"] = "netns" if layers["netns"] else "audit-hook"
                return layers
    log.warning("sandbox: could not start an isolated interpreter; falling back to plain limits")
    return {"uid": False, "netns": False, "nproc": False, "network": "audit-hook", "python": _PYTHON}


def _interpreter(other_uid: bool) -> str | None:
    """Our own interpreter, or for a throwaway uid the first one that uid may execute.

    Candidates run with ``-I -S`` (standard library only), so any Python >= 3.8 will do.
    """
    if not other_uid:
        return _PYTHON
    for path in (_PYTHON, *_SYSTEM_PYTHONS):
        real = os.path.realpath(path)
        if os.path.isfile(real) and _world_executable(real):
            return real
    return None


def _world_executable(path: str) -> bool:
    parts = Path(path).parents
    dirs_ok = all(os.stat(d).st_mode & 0o001 for d in parts)
    return dirs_ok and os.stat(path).st_mode & 0o005 == 0o005


@dataclass
class _Run:
    returncode: int | None  # None: killed on the wall-clock timeout
    stdout: str
    stderr: str


def _spawn(argv: list[str], base: Path, timeout: float, memory_mb: int, layers: dict, stdin: bytes) -> _Run:
    """Run argv in ``base/work`` with limits; kill its whole process group (and uid) when done."""
    work = base / "work"
    work.mkdir(mode=0o700)
    low, high = UID_RANGE
    uid = secrets.randbelow(high - low) + low if layers.get("uid") else None
    if uid is not None:
        os.chmod(base, 0o711)  # the uid may enter base (to reach work/), not list or read it
        os.chown(work, uid, uid)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(work), "TMPDIR": str(work), "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
    out_path, err_path = base / "stdout", base / "stderr"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=out, stderr=err, cwd=work, env=env, close_fds=True,
            start_new_session=True, preexec_fn=_preexec(uid, bool(layers.get("netns")), timeout, memory_mb))
    returncode: int | None
    try:
        try:
            proc.stdin.write(stdin)
            proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        returncode = _wait(proc, timeout)
    except subprocess.TimeoutExpired:
        returncode = None
    finally:
        _kill_everything(proc, uid)
    return _Run(returncode, _tail(out_path, 1 << 20), _tail(err_path, 4000))


def _wait(proc: subprocess.Popen, timeout: float) -> int:
    """Wait for exit without Popen.wait's polling sleeps (a pidfd wakes us the moment it exits)."""
    try:
        fd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        return proc.wait(timeout=timeout)
    try:
        if not select.select([fd], [], [], timeout)[0]:
            raise subprocess.TimeoutExpired(proc.args, timeout)
    finally:
        os.close(fd)
    return proc.wait()


def _preexec(uid: int | None, netns: bool, timeout: float, memory_mb: int):
    libc_unshare = _libc_unshare() if netns else None
    cpu = int(timeout) + 1
    nproc = NPROC_LIMIT if uid is not None else _user_process_count() + NPROC_LIMIT
    limits = [(resource.RLIMIT_CPU, (cpu, cpu + 1)), (resource.RLIMIT_AS, (memory_mb << 20, memory_mb << 20)),
              (resource.RLIMIT_FSIZE, (FILE_LIMIT_MB << 20, FILE_LIMIT_MB << 20)), (resource.RLIMIT_CORE, (0, 0)),
              (resource.RLIMIT_NOFILE, (64, 64)), (resource.RLIMIT_NPROC, (nproc, nproc))]

    def in_child() -> None:  # runs between fork and exec: no imports, no allocation-heavy work
        if libc_unshare is not None:
            libc_unshare(CLONE_NEWNET if uid is not None or os.geteuid() == 0 else CLONE_NEWUSER | CLONE_NEWNET)
        for which, value in limits:
            resource.setrlimit(which, value)
        if uid is not None:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)

    return in_child


@lru_cache(maxsize=1)
def _libc_unshare():
    try:
        return ctypes.CDLL(None, use_errno=True).unshare
    except (OSError, AttributeError):
        return None


def _user_process_count() -> int:
    """Processes this user already has: RLIMIT_NPROC counts them all when we cannot switch uid."""
    me = os.geteuid()
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                count += entry.stat().st_uid == me
            except OSError:
                pass
    return count


def _kill_everything(proc: subprocess.Popen, uid: int | None) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the session's group: forks that did not setsid
    except (ProcessLookupError, PermissionError):
        pass
    deadline = time.monotonic() + 5
    while uid is not None and _pids_of(uid) and time.monotonic() < deadline:
        # anything that escaped the group still has the run's uid; wait until they are really gone
        subprocess.run(_KILL_ALL, user=uid, group=uid, extra_groups=[], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, env={"PATH": "/usr/bin:/bin"}, check=False)
        time.sleep(0.01)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        log.warning("sandbox: process %d did not die", proc.pid)


# kill(-1) from the throwaway uid reaches exactly that uid's processes
_KILL_ALL = ([shutil.which("kill"), "-9", "-1"] if shutil.which("kill")
             else [_PYTHON, "-I", "-S", "-c", "import os; os.kill(-1, 9)"])


def _pids_of(uid: int) -> list[int]:
    """Live processes of ``uid`` (zombies are dead already; reaping them is init's job)."""
    pids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid and not _is_zombie(entry.path):
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


def _is_zombie(proc_dir: str) -> bool:
    with open(proc_dir + "/stat", "rb") as fh:
        return fh.read().rsplit(b")", 1)[1].split()[0] == b"Z"


def _tail(path: Path, limit: int) -> str:
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - limit))
        return fh.read().decode("utf-8", "replace")


# ---------------------------------------------------------------- the Python side


def _execute(program: str, tests: str, mode: str, timeout: float, memory_mb: int, layers: dict) -> SandboxResult:
    token = secrets.token_hex(16)
    base = Path(tempfile.mkdtemp(prefix="distill-sandbox-"))
    try:
        (base / "program.py").write_text(program, encoding="utf-8")
        (base / "tests.txt").write_text(tests, encoding="utf-8")
        os.chmod(base / "program.py", 0o644)
        os.chmod(base / "tests.txt", 0o644)
        argv = [layers["python"], "-I", "-S", "-X", "utf8", "-c", _BOOTSTRAP, str(base), mode]
        run = _spawn(argv, base, timeout, memory_mb, layers, (token + "\n").encode())
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return _classify(run, token, timeout)


def _classify(run: _Run, token: str, timeout: float) -> SandboxResult:
    if run.returncode is None:
        return SandboxResult(False, "timeout", f"no result within {timeout:g} s (process group killed)")
    reports = [line[len(token):] for line in run.stdout.splitlines() if line.startswith(token)]
    if reports:
        try:
            report = json.loads(reports[-1])
            return SandboxResult(bool(report["passed"]), report["reason"], str(report["detail"])[:500])
        except (ValueError, KeyError):
            pass
    stderr = run.stderr.strip()
    if run.returncode < 0:
        sig = signal.Signals(-run.returncode)
        reason = {signal.SIGXCPU: "timeout", signal.SIGKILL: "timeout", signal.SIGXFSZ: "forbidden"}.get(sig, "crashed")
        return SandboxResult(False, reason, f"killed by {sig.name}; {stderr[-300:]}".strip("; "))
    if "MemoryError" in stderr:
        return SandboxResult(False, "memory", stderr[-300:])
    return SandboxResult(False, "crashed", f"exit status {run.returncode}; {stderr[-300:]}".strip("; "))


# The child's code lives in its own file (a module never imported here) so both sides stay readable.
_BOOTSTRAP = (Path(__file__).parent / "sandbox_child.py").read_text(encoding="utf-8")

