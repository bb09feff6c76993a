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


_BOOTSTRAP = r'''
def _main():
    import ast, builtins, gc, io, json, os, signal, sys
    base, mode = sys.argv[1], sys.argv[2]
    token = sys.stdin.readline().strip()
    work = os.path.realpath(os.path.join(base, "work"))
    with open(os.path.join(base, "program.py"), encoding="utf-8") as fh:
        program = fh.read()
    with open(os.path.join(base, "tests.txt"), encoding="utf-8") as fh:
        tests = fh.read()
    report = os.fdopen(os.dup(1), "w", encoding="utf-8")
    out_fd = os.open(os.path.join(work, ".out"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(out_fd, 1)  # the program's own prints never reach the report channel
    os.close(out_fd)
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8", write_through=True)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # over-long writes raise OSError instead of killing us
    violations = []
    sys.addaudithook(_make_hook(work, violations))
    try:
        outcome = _run(program, tests, mode, work)
    except MemoryError:
        outcome = (False, "memory", "MemoryError")
    except BaseException as exc:
        outcome = (False, "crashed", _describe(exc))
    passed, reason, detail = outcome
    if violations:
        passed, reason, detail = False, "forbidden", violations[0]
    elif reason == "crashed" and "File too large" in detail:
        reason = "forbidden"
    report.write(token + json.dumps({"passed": passed, "reason": reason, "detail": detail}) + "\n")
    report.flush()
    os._exit(0)


def _make_hook(work, violations, realpath=__import__("os").path.realpath, fsdecode=__import__("os").fsdecode):
    import os, sys
    readable = tuple(realpath(p) for p in sys.path if p) + (
        work, "/usr/share/zoneinfo", "/etc/localtime", "/dev/null", "/dev/urandom", "/dev/zero")
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    blocked = frozenset({"os.system", "os.fork", "os.forkpty", "os.kill", "os.killpg", "subprocess.Popen",
                         "resource.setrlimit", "resource.prlimit", "signal.pthread_kill", "os.chroot"})
    prefixes = ("os.exec", "os.spawn", "os.posix_spawn", "socket.", "ctypes.", "_posixsubprocess")
    modules = frozenset({"ctypes", "_ctypes", "_posixsubprocess", "multiprocessing"})
    path_events = {"os.remove": 1, "os.rmdir": 1, "os.mkdir": 1, "os.chmod": 1, "os.chown": 1, "os.truncate": 1,
                   "os.utime": 1, "os.rename": 2, "os.link": 2, "os.symlink": 2, "shutil.rmtree": 1}

    def inside(path, roots=(work,)):
        if isinstance(path, int):
            return True
        real = realpath(fsdecode(path))
        return any(real == root or real.startswith(root + "/") for root in roots)

    def deny(what):
        violations.append(what)
        raise PermissionError("sandbox: " + what + " is not allowed")

    def hook(event, args):
        if event == "open":
            path, mode, flags = args
            if isinstance(path, int):
                return
            name = fsdecode(path)
            writing = (mode is not None and any(c in mode for c in "wax+")) or (
                mode is None and flags is not None and flags & write_flags)
            if writing and not inside(path) and realpath(name) != "/dev/null":
                deny("writing " + name)
            if not inside(path, readable):  # keeps ~/.netrc, tokens, /proc/*/environ out of reach
                deny("reading " + name)
        elif event in path_events:
            for path in args[: path_events[event]]:
                if path is not None and not inside(path):
                    deny(event + " " + str(path))
        elif event in blocked or event.startswith(prefixes):
            deny(event)
        elif event == "import" and args[0].split(".")[0] in modules:
            deny("import " + args[0])

    return hook


TEST_LINE_OFFSET = 100000


def _describe(exc, tests_source=None):
    tb, line = exc.__traceback__, None
    while tb is not None:
        line, tb = tb.tb_lineno, tb.tb_next
    if isinstance(exc, SyntaxError):
        line = exc.lineno if exc.filename == "<program>" else (exc.lineno or 0) + TEST_LINE_OFFSET
    where = ""
    if line is not None and line >= TEST_LINE_OFFSET and tests_source is not None:
        lines = tests_source.splitlines()
        n = line - TEST_LINE_OFFSET
        where = "tests line %d: %s: " % (n, lines[n - 1].strip() if 0 < n <= len(lines) else "?")
    elif line is not None:
        where = "program line %d: " % line
    message = str(exc)
    return (where + type(exc).__name__ + (": " + message if message else ""))[:400]


def _run(program, tests, mode, work):
    import ast, io, os, sys
    code = compile(program, "<program>", "exec")
    if mode == "stdio":
        return _run_stdio(code, tests, work)
    tree = ast.parse(tests, "<tests>")
    ast.increment_lineno(tree, TEST_LINE_OFFSET)
    test_code = compile(tree, "<tests>", "exec")
    sys.stdin = io.StringIO("")
    namespace = {"__name__": "solution", "__builtins__": __builtins__}
    try:
        exec(code, namespace)
    except MemoryError:
        return False, "memory", "MemoryError while loading the program"
    except BaseException as exc:
        return False, "crashed", _describe(exc)
    before = set(namespace)
    try:
        exec(test_code, namespace)
    except MemoryError:
        return False, "memory", "MemoryError in the tests"
    except AssertionError as exc:
        return False, "failed", _describe(exc, tests)
    except BaseException as exc:
        return False, "failed", _describe(exc, tests)
    for name in sorted(set(namespace) - before):
        func = namespace[name]
        if name.startswith("test") and callable(func):
            try:
                func()
            except MemoryError:
                return False, "memory", name + ": MemoryError"
            except BaseException as exc:
                return False, "failed", name + ": " + _describe(exc, tests)
    return True, "passed", ""


def _run_stdio(code, tests, work):
    import gc, io, json, os, sys
    cases = json.loads(tests)
    for i, case in enumerate(cases, 1):
        stdin_path = os.path.join(work, ".stdin")
        stdout_path = os.path.join(work, ".stdout")
        with open(stdin_path, "w", encoding="utf-8") as fh:
            fh.write(str(case["input"]))
        in_fd = os.open(stdin_path, os.O_RDONLY)
        out_fd = os.open(stdout_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        for fd, target in ((in_fd, 0), (out_fd, 1)):
            if fd != target:  # open(0) in the last case may have closed fd 0, so os.open reused it
                os.dup2(fd, target)
                os.close(fd)
        sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8")
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8", write_through=True)
        error = None
        namespace = {"__name__": "__main__", "__builtins__": __builtins__}
        try:
            exec(code, namespace)
        except SystemExit as exc:
            if exc.code not in (None, 0):
                error = "exit status %s" % (exc.code,)
        except MemoryError:
            return False, "memory", "case %d: MemoryError" % i
        except BaseException as exc:
            error = _describe(exc)
        try:
            sys.stdout.flush()
        except OSError as exc:
            error = error or _describe(exc)
        with open(stdout_path, encoding="utf-8", errors="replace") as fh:
            got = fh.read()
        namespace.clear()
        gc.collect()  # a leftover open(0) from this case must not close the next case's stdin
        if error:
            return False, ("crashed" if "File too large" not in error else "forbidden"), "case %d: %s" % (i, error)
        if _norm(got) != _norm(str(case["output"])):
            return False, "failed", "case %d: expected %r, got %r" % (i, _short(case["output"]), _short(got))
    return True, "passed", ""


def _norm(text):
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def _short(text):
    text = str(text)
    return text if len(text) <= 80 else text[:77] + "..."


_main()
'''
