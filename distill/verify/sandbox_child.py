"""The candidate's side of the sandbox: runs the program and answers the judge's calls as plain data.

Usage: not imported. distill/verify/sandbox.py passes this file's text to `python -I -S -c` in the
confined candidate process with arguments ``MODE READ_FD WRITE_FD`` and a JSON job on stdin
(the ``probe`` mode only reports whether the seccomp filter installed here, without a job):
``{"program": str, "inputs": [stdin text, ...]}``.

- ``calls`` mode: run the program, send the judge a manifest of its top-level names, then answer
  requests (call / attribute / list) one JSON line each. Results are encoded as tagged plain data;
  anything else stays here and the judge gets a numbered reference to it.
- ``stdio`` mode: run the program once per input and write one line per case (its stdout, error).

Nothing in this process decides a verdict and it holds no secret: it never sees the tests or the
expected outputs, so patching anything here (json, builtins, this file's helpers, the audit hook's
list) can only change what the program answers, never how the answer is judged.
"""


def _main():
    import io, os, signal, sys
    _enter_pid_namespace()
    mode, read_fd, write_fd = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    filtered = _deny_syscalls()
    if mode == "probe":  # sandbox.isolation(): does the filter hold here?
        try:
            os.execv("/bin/true", ["true"])
        except OSError:
            pass
        os.write(write_fd, _dumps({"seccomp": filtered}).encode())
        os._exit(0)
    job = _loads(sys.stdin.buffer.read().decode("utf-8"))
    if hasattr(sys, "set_int_max_str_digits"):
        sys.set_int_max_str_digits(0)  # a big-integer answer is still an answer
    work = os.path.realpath(os.getcwd())
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # over-long writes raise OSError instead of killing us
    violations = []
    sys.addaudithook(_make_hook(work, violations))
    send = _sender(write_fd)
    if mode == "stdio":
        _serve_stdio(job["program"], job["inputs"], work, violations, send)
    else:
        sys.stdin = io.StringIO("")
        _serve_calls(job["program"], read_fd, violations, send)
    os._exit(0)


# Syscalls the program never needs: starting programs, tracing, namespaces and mounts, kernel keyrings,
# BPF, io_uring, and 32-bit entry points (handled by the arch check). Per architecture.
_DENIED = {
    0xC000003E: (59, 322, 101, 310, 311, 165, 166, 155, 272, 308, 161, 321, 298, 248, 249, 250, 323, 304,
                 425, 426, 427),  # x86_64
    0xC00000B7: (221, 281, 117, 270, 271, 40, 39, 41, 97, 268, 51, 280, 241, 217, 218, 219, 282, 265,
                 425, 426, 427),  # aarch64
}


def _deny_syscalls():
    """A seccomp filter: the denied syscalls fail with EPERM for this process and all it starts."""
    import ctypes, os, struct
    machine = os.uname().machine
    arch = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}.get(machine)
    if arch is None:
        return False
    denied = _DENIED[arch]
    errno_ret, allow = 0x00050000 | 1, 0x7FFF0000  # SECCOMP_RET_ERRNO | EPERM, SECCOMP_RET_ALLOW
    n = len(denied)
    prog = [(0x20, 0, 0, 4),                       # A = arch
            (0x15, 1, 0, arch),                    # native arch: skip the next
            (0x06, 0, 0, errno_ret),               # any other arch (int 0x80, x32...): refused
            (0x20, 0, 0, 0),                       # A = syscall number
            (0x35, n + 1, 0, 0x40000000)]          # x32 numbers: jump to the refusal
    for i, nr in enumerate(denied):
        prog.append((0x15, n - i, 0, nr))          # a denied number: jump to the refusal
    prog += [(0x06, 0, 0, allow), (0x06, 0, 0, errno_ret)]
    blob = b"".join(struct.pack("HBBI", *ins) for ins in prog)
    buf = ctypes.create_string_buffer(blob)

    class Prog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = Prog(len(prog), ctypes.addressof(buf))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS: lets an unprivileged process install it
        return False
    return libc.prctl(22, 2, ctypes.byref(fprog), 0, 0) == 0  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER


def _sender(fd):
    import os

    def send(message):
        data = (_dumps(message) + "\n").encode("utf-8")
        while data:
            data = data[os.write(fd, data):]

    return send


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


def _describe(exc):
    tb, line = exc.__traceback__, None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<program>":
            line = tb.tb_lineno
        tb = tb.tb_next
    if isinstance(exc, SyntaxError) and exc.filename == "<program>":
        line = exc.lineno
    try:
        message = str(exc)
    except BaseException:
        message = "?"
    where = "program line %d: " % line if line is not None else ""
    return (where + type(exc).__name__ + (": " + message if message else ""))[:400]


def _load_failure(exc, violations):
    if violations:
        return ["forbidden", violations[0]]
    if isinstance(exc, MemoryError):
        return ["memory", "MemoryError while loading the program"]
    detail = _describe(exc)
    return ["forbidden" if "File too large" in detail else "crashed", detail]


def _serve_calls(program, read_fd, violations, send):
    import os
    namespace = {"__name__": "solution", "__builtins__": __builtins__}
    try:
        exec(compile(program, "<program>", "exec"), namespace)
    except BaseException as exc:
        namespace.clear()  # a MemoryError's garbage must go before we can report it
        send({"load": _load_failure(exc, violations)})
        return
    if violations:  # the program caught our PermissionError; the tripwire still fired
        send({"load": ["forbidden", violations[0]]})
        return
    refs = []
    names = {}
    for name, value in list(namespace.items()):
        if not name.startswith("__"):
            names[name] = _encode_safely(value, refs)
            if type(names[name]) in (list, dict) and len(_dumps(names[name])) > 1 << 20:
                refs.append(value)  # a big table stays here (by reference) so the manifest stays small
                names[name] = {"$": "ref", "v": len(refs) - 1}
    send({"names": names})
    reader = os.fdopen(read_fd, "rb")
    for line in reader:
        reply = _answer(line, refs)
        if violations:
            reply["forbidden"] = violations[0]
        send(reply)


def _answer(line, refs):
    try:
        request = _loads(line.decode("utf-8"))
        target = refs[request["ref"]]
        op = request["op"]
        if op == "call":
            args = [_decode(a, refs) for a in request["args"]]
            kwargs = {k: _decode(v, refs) for k, v in request["kwargs"]}
            result = target(*args, **kwargs)
        elif op == "attr":
            result = getattr(target, request["name"])
        else:
            result = list(target)
        return {"value": _encode(result, refs, 0)}
    except MemoryError:
        return {"raise": ["MemoryError", ""]}
    except BaseException as exc:
        name = type(exc).__name__
        text = _describe(exc).replace(name + ": ", "", 1)
        return {"raise": [name, "" if text == name else text]}


def _encode_safely(value, refs):
    try:
        return _encode(value, refs, 0)
    except (ValueError, RecursionError):
        refs.append(value)
        return {"$": "ref", "v": len(refs) - 1}


def _encode(value, refs, depth):
    """Plain data as tagged JSON; anything else becomes a reference the judge can only call into."""
    if depth > 200:
        raise ValueError("a result nested over 200 levels deep")
    kind = type(value)
    if value is None or kind in (bool, int, str):
        return value
    if kind is float:
        return value if value - value == 0 else {"$": "float", "v": repr(value)}  # inf and nan are tagged
    if kind is list:
        return [_encode(x, refs, depth + 1) for x in value]
    if isinstance(value, tuple) and isinstance(getattr(kind, "_fields", None), tuple):
        fields = [str(f) for f in kind._fields]
        items = [_encode(x, refs, depth + 1) for x in tuple.__iter__(value)]
        return {"$": "namedtuple", "v": [kind.__name__, fields, items]}
    if isinstance(value, tuple):
        return {"$": "tuple", "v": [_encode(x, refs, depth + 1) for x in tuple.__iter__(value)]}
    if kind in (set, frozenset):
        return {"$": kind.__name__, "v": [_encode(x, refs, depth + 1) for x in value]}
    if kind is dict:
        return {"$": "dict", "v": [[_encode(k, refs, depth + 1), _encode(v, refs, depth + 1)] for k, v in value.items()]}
    if kind in (bytes, bytearray):
        return {"$": "bytes", "v": bytes(value).hex()}
    if kind is complex:
        return {"$": "complex", "v": [repr(value.real), repr(value.imag)]}
    if kind is type(__import__("sys")):
        return {"$": "module", "v": value.__name__}
    refs.append(value)
    return {"$": "ref", "v": len(refs) - 1}


def _decode(obj, refs):
    """The judge's arguments (the judge is trusted; its encoder is the mirror of ours)."""
    if isinstance(obj, list):
        return [_decode(x, refs) for x in obj]
    if not isinstance(obj, dict):
        return obj
    tag, v = obj["$"], obj["v"]
    if tag == "ref":
        return refs[v]
    if tag == "float":
        return float(v)
    if tag == "bytes":
        return bytes.fromhex(v)
    if tag == "complex":
        return complex(float(v[0]), float(v[1]))
    if tag == "dict":
        return {_decode(k, refs): _decode(x, refs) for k, x in v}
    if tag == "namedtuple":
        import collections
        return collections.namedtuple(v[0], v[1])(*(_decode(x, refs) for x in v[2]))
    items = [_decode(x, refs) for x in v]
    return {"tuple": tuple, "set": set, "frozenset": frozenset}[tag](items)


def _serve_stdio(program, inputs, work, violations, send):
    import gc, io, os, sys
    try:
        code = compile(program, "<program>", "exec")
    except BaseException as exc:
        send({"load": _load_failure(exc, violations)})
        return
    stdin_path, stdout_path = os.path.join(work, ".stdin"), os.path.join(work, ".stdout")
    for text in inputs:
        with open(stdin_path, "w", encoding="utf-8") as fh:
            fh.write(text)
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
            error = "MemoryError"
        except BaseException as exc:
            error = _describe(exc)
        try:
            sys.stdout.flush()
        except OSError as exc:
            error = error or _describe(exc)
        namespace.clear()
        gc.collect()  # a leftover open(0) from this case must not close the next case's stdin
        with open(stdout_path, "rb") as fh:
            got = fh.read(1 << 20).decode("utf-8", "replace")
        send({"out": got, "error": error, "forbidden": violations[0] if violations else None})


if __name__ == "__main__":  # run as `python -c <this file's text>` by sandbox.py
    _main()
