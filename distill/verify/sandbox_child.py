"""The sandbox's child side: runs the candidate and its tests under an audit hook, reports a verdict.

Usage: not imported. distill/verify/sandbox.py passes this file's text to `python -I -S -c` in
the limited child process, with the run folder and the test mode as arguments and a one-time
token on stdin (so a program cannot print a fake verdict).
"""

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


if __name__ == "__main__":  # run as `python -c <this file's text>` by sandbox.py
    _main()
