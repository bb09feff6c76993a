"""The judge's side of the sandbox: runs the tests, asks the candidate for values, decides the verdict.

Usage: not imported. distill/verify/sandbox.py passes this file's text to `python -I -S -c` in its
own confined process (its own uid where the machine allows) with arguments
``READ_FD WRITE_FD REPORT_FD UNDUMPABLE`` and ``{"tests": str, "program": str}`` on stdin (the
program's text only to see which standard-library names it imports; it never runs here).

The program's top-level names arrive as plain data or as references; calling a reference (or
reading its attribute, or iterating it) asks the candidate process, whose answer comes back as
tagged JSON and is decoded here strictly: plain builtin types only, no NaN, nothing over
MAX_MESSAGE bytes. Every comparison, ``assert`` and truth test runs in this interpreter, which
never executes the program's code. A reference has no truth value and equals only itself.
"""

MAX_MESSAGE = 8 << 20


class _Abort(BaseException):
    """The candidate broke the protocol; ends the tests (BaseException, so `except Exception` cannot hide it)."""


class _ProgramError(Exception):
    """An exception raised in the program whose type is not a builtin one."""


class _Link:
    def __init__(self, read_fd, write_fd):
        self.read_fd, self.write_fd, self.buffer = read_fd, write_fd, bytearray()
        self.forbidden = self.poison = None
        self.memory = False

    def fail(self, reason, detail):
        if self.poison is None:
            self.poison = (False, reason, detail)
        return _Abort(detail)

    def receive(self):
        import os
        while b"\n" not in self.buffer:
            if len(self.buffer) > MAX_MESSAGE:
                raise self.fail("failed", "the program sent a value over %d MB" % (MAX_MESSAGE >> 20))
            chunk = os.read(self.read_fd, 1 << 16)
            if not chunk:
                raise self.fail("crashed", "the program stopped answering")
            self.buffer += chunk
        end = self.buffer.index(b"\n")
        line = bytes(self.buffer[:end])
        del self.buffer[: end + 1]
        if len(line) > MAX_MESSAGE:
            raise self.fail("failed", "the program sent a value over %d MB" % (MAX_MESSAGE >> 20))
        try:
            message = _loads(line.decode("utf-8"))
        except (ValueError, RecursionError, UnicodeDecodeError):
            raise self.fail("failed", "the program sent something other than plain JSON") from None
        if type(message) is not dict:
            raise self.fail("failed", "the program sent something other than a message")
        if type(message.get("forbidden")) is str and self.forbidden is None:
            self.forbidden = message["forbidden"][:300]
        return message

    def ask(self, request):
        import builtins, os
        data = (_dumps(request) + "\n").encode("utf-8")
        while data:
            try:
                data = data[os.write(self.write_fd, data):]
            except BrokenPipeError:
                raise self.fail("crashed", "the program stopped answering") from None
        message = self.receive()
        if "raise" in message:
            name, text = _plain_pair(message["raise"], self)
            self.memory = self.memory or name == "MemoryError"
            cls = getattr(builtins, name, None)
            if isinstance(cls, type) and issubclass(cls, Exception) and not issubclass(cls, Warning):
                raise cls(text)
            raise _ProgramError(name + (": " + text if text else ""))
        if "value" not in message:
            raise self.fail("failed", "the program sent a reply without a value")
        return _decode(message["value"], self, 0)


def _plain_pair(value, link):
    if type(value) is list and len(value) == 2 and all(type(x) is str for x in value):
        return value[0][:100], value[1][:300]
    raise link.fail("failed", "the program sent a malformed exception")


class _Remote:
    """A value that stayed in the candidate: it can be called, read or iterated, never trusted."""

    __slots__ = ("_ref",)
    link = None

    def __init__(self, ref):
        object.__setattr__(self, "_ref", ref)

    def __call__(self, *args, **kwargs):
        return _Remote.link.ask({"op": "call", "ref": self._ref, "args": [_encode(a) for a in args],
                                 "kwargs": [[k, _encode(v)] for k, v in kwargs.items()]})

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Remote.link.ask({"op": "attr", "ref": self._ref, "name": name})

    def __iter__(self):
        items = _Remote.link.ask({"op": "list", "ref": self._ref})
        if type(items) is not list:
            raise _Remote.link.fail("failed", "the program sent a malformed list")
        return iter(items)

    def __eq__(self, other):
        return type(other) is _Remote and other._ref == self._ref

    def __ne__(self, other):
        return not self.__eq__(other)

    def __hash__(self):
        return hash(("program object", self._ref))

    def __bool__(self):
        raise TypeError("a program object (not plain data) has no truth value here")

    def __repr__(self):
        return "<program object #%d>" % self._ref


def _decode(obj, link, depth):
    """Tagged JSON from the candidate into builtin values; anything unexpected ends the run."""
    if depth > 200:
        raise link.fail("failed", "the program sent a value nested over 200 levels deep")
    kind = type(obj)
    if obj is None or kind in (bool, int, str):
        return obj
    if kind is float:
        if obj - obj != 0:
            raise link.fail("failed", "the program sent an infinite number as a plain float")
        return obj
    if kind is list:
        return [_decode(x, link, depth + 1) for x in obj]
    if kind is not dict or set(obj) != {"$", "v"}:
        raise link.fail("failed", "the program sent a value that is not plain data")
    tag, v = obj["$"], obj["v"]
    try:
        if tag == "float" and v in ("inf", "-inf"):
            return float(v)
        if tag == "complex" and type(v) is list and len(v) == 2 and all(type(x) is str for x in v):
            real, imag = float(v[0]), float(v[1])
            if real == real and imag == imag:
                return complex(real, imag)
        if tag == "bytes" and type(v) is str:
            return bytes.fromhex(v)
        if tag in ("tuple", "set", "frozenset") and type(v) is list:
            items = [_decode(x, link, depth + 1) for x in v]
            return {"tuple": tuple, "set": set, "frozenset": frozenset}[tag](items)
        if tag == "namedtuple" and type(v) is list and len(v) == 3 and type(v[1]) is list and type(v[2]) is list:
            return _namedtuple(v[0], tuple(v[1]))(*(_decode(x, link, depth + 1) for x in v[2]))
        if tag == "dict" and type(v) is list and all(type(p) is list and len(p) == 2 for p in v):
            return {_decode(k, link, depth + 1): _decode(x, link, depth + 1) for k, x in v}
        if tag == "ref" and type(v) is int and v >= 0:
            return _Remote(v)
        if tag == "module" and type(v) is str and _is_std(v):
            return _import(v)  # our own clean copy of the module, never the program's
    except (TypeError, ValueError, ImportError):
        pass
    if tag == "float":
        raise link.fail("failed", "the program returned NaN, which is never accepted as an answer")
    raise link.fail("failed", "the program sent a value that is not plain data (%s)" % str(tag)[:40])


_NAMEDTUPLES = {}


def _namedtuple(name, fields):
    """Our own named-tuple class of that shape (the names are checked as identifiers by collections)."""
    import collections
    key = (name, fields)
    if key not in _NAMEDTUPLES:
        if len(_NAMEDTUPLES) > 1000 or not all(type(x) is str for x in (name, *fields)):
            raise ValueError("refused named tuple")
        _NAMEDTUPLES[key] = collections.namedtuple(name, fields)
    return _NAMEDTUPLES[key]


def _encode(value):
    """Our arguments for the candidate: plain data, or a reference it gave us."""
    kind = type(value)
    if value is None or kind in (bool, int, str):
        return value
    if kind is float:
        return value if value - value == 0 else {"$": "float", "v": repr(value)}
    if kind is list:
        return [_encode(x) for x in value]
    if kind is _Remote:
        return {"$": "ref", "v": value._ref}
    if isinstance(value, tuple) and isinstance(getattr(kind, "_fields", None), tuple):
        return {"$": "namedtuple", "v": [kind.__name__, list(kind._fields), [_encode(x) for x in value]]}
    if isinstance(value, tuple):
        return {"$": "tuple", "v": [_encode(x) for x in value]}
    if kind in (set, frozenset):
        return {"$": kind.__name__, "v": [_encode(x) for x in value]}
    if kind is dict:
        return {"$": "dict", "v": [[_encode(k), _encode(v)] for k, v in value.items()]}
    if kind in (bytes, bytearray):
        return {"$": "bytes", "v": bytes(value).hex()}
    if kind is complex:
        return {"$": "complex", "v": [repr(value.real), repr(value.imag)]}
    raise TypeError("cannot pass a %s to the program (plain data only)" % kind.__name__)


def _import(module):
    import sys
    __import__(module)
    return sys.modules[module]


def _describe(exc, tests_source):
    tb, line = exc.__traceback__, None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<tests>":
            line = tb.tb_lineno
        tb = tb.tb_next
    where = ""
    if line is not None:
        lines = tests_source.splitlines()
        where = "tests line %d: %s: " % (line, lines[line - 1].strip() if 0 < line <= len(lines) else "?")
    message = str(exc)
    return (where + type(exc).__name__ + (": " + message if message else ""))[:400]


def _is_std(module):
    """A standard-library module (any importable one before Python 3.10, which cannot tell)."""
    import sys
    top = module.split(".")[0]
    known = getattr(sys, "stdlib_module_names", None)
    return top not in _NEVER and (known is None or top in known)


def _standard_imports(program, module_names):
    """Our own objects for the program's top-level standard-library imports and for any global it
    names like a standard module (so `math = Fake()` still means math to the tests)."""
    import _ast
    try:
        body = compile(program, "<program>", "exec", _ast.PyCF_ONLY_AST).body  # parsed, never run
    except (SyntaxError, ValueError):
        body = []
    bound = {}
    pairs = [(name, name, None) for name in module_names]
    for node in body:
        if isinstance(node, _ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                pairs.append((alias.asname or top, alias.name if alias.asname else top, None))
        elif isinstance(node, _ast.ImportFrom) and node.level == 0 and node.module:
            pairs += [(a.asname or a.name, node.module, a.name) for a in node.names if a.name != "*"]
    for name, module, attr in pairs:
        if not _is_std(module):
            continue
        try:
            value = _import(module)
            bound[name] = value if attr is None else getattr(value, attr)
        except (ImportError, AttributeError):
            pass
    return bound


_NEVER = frozenset({"antigravity", "this", "idlelib", "turtle", "turtledemo", "tkinter"})


def _judge(tests, program, link):
    import _ast, builtins
    message = link.receive()
    if "load" in message:
        reason, detail = _plain_pair(message["load"], link)
        if reason not in ("crashed", "memory", "forbidden"):
            reason = "crashed"
        return False, reason, detail
    names = message.get("names")
    if type(names) is not dict:
        raise link.fail("failed", "the program sent a malformed manifest")
    # A name that shadows a builtin stays the builtin, and what the program imported from the
    # standard library is our own copy: otherwise a program could bind `sorted`, `math` or `isclose`
    # to something that answers the tests' comparisons for them.
    namespace = {name: _decode(value, link, 0) for name, value in names.items() if not hasattr(builtins, name)}
    namespace.update(_standard_imports(program, [name for name in names if _is_std(name)]))
    # No eval/exec for the tests: a test that evaluated a string the program returned would run the
    # program's code here, next to the verdict.
    safe = {k: v for k, v in vars(builtins).items() if k not in ("eval", "exec", "compile", "breakpoint", "input")}
    namespace.update(__name__="__main__", __builtins__=safe)
    tree = compile(tests, "<tests>", "exec", _ast.PyCF_ONLY_AST)
    try:
        exec(compile(tree, "<tests>", "exec"), namespace)
    except Exception as exc:
        return False, "failed", _describe(exc, tests)
    # The tests' own test functions, found in their source: a program global of the same name must
    # not make one look like it was there before the tests ran (and so be skipped).
    defined = [node.name for node in tree.body if isinstance(node, (_ast.FunctionDef, _ast.AsyncFunctionDef))]
    for name in sorted(set(defined)):
        func = namespace.get(name)
        if name.startswith("test") and callable(func):
            try:
                result = func()
                if type(result).__name__ == "coroutine":  # an async test runs, not just starts
                    import asyncio
                    asyncio.run(result)
            except Exception as exc:
                return False, "failed", name + ": " + _describe(exc, tests)
    return True, "passed", ""


def _undumpable():
    """No other process of our uid may read our memory or open our fds through /proc (PR_SET_DUMPABLE=0)."""
    try:
        import ctypes
        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _main():
    import os, sys
    _enter_pid_namespace()
    read_fd, write_fd, report_fd, undumpable = (int(x) for x in sys.argv[1:5])
    job = _loads(sys.stdin.buffer.read().decode("utf-8"))
    tests, program = job["tests"], job["program"]
    if undumpable:  # only needed when the candidate shares our uid (ctypes costs ~5 ms to import)
        _undumpable()
    if hasattr(sys, "set_int_max_str_digits"):
        sys.set_int_max_str_digits(0)
    link = _Remote.link = _Link(read_fd, write_fd)
    try:
        outcome = _judge(tests, program, link)
    except _Abort:
        outcome = link.poison
    except MemoryError:
        outcome = (False, "memory", "MemoryError in the tests")
    except BaseException as exc:  # SystemExit and the like from the tests
        outcome = (False, "failed", _describe(exc, tests))
    if link.poison is not None:  # a bare `except:` in the tests may have swallowed the abort
        outcome = link.poison
    elif link.forbidden is not None:
        outcome = (False, "forbidden", link.forbidden)
    elif not outcome[0] and link.memory:
        outcome = (False, "memory", outcome[2])
    passed, reason, detail = outcome
    os.write(report_fd, _dumps({"passed": passed, "reason": reason, "detail": detail}).encode("utf-8"))
    os._exit(0)


if __name__ == "__main__":  # run as `python -c <this file's text>` by sandbox.py
    _main()
