"""What both sandbox harnesses (candidate and judge) start with; its text is prepended to theirs.

Usage: not imported. distill/verify/sandbox.py runs `python -I -S -c PRELUDE + HARNESS`, and each
harness's _main() first calls _enter_pid_namespace(). _dumps/_loads are JSON through the C
codec alone: importing `json` pulls in `re` and `enum`, ~10 ms of each process's start.
"""


def _enter_pid_namespace():
    """With a pid namespace, fork: the child (pid 1 inside) goes on; we wait and exit as it did."""
    import os, signal
    if not os.environ.get("DISTILL_SANDBOX_PIDNS"):
        return
    pid = os.fork()
    if pid == 0:
        return
    os.closerange(3, 1 << 16)  # the child's pipes must close the moment it dies
    status = os.waitpid(pid, 0)[1]
    if os.WIFSIGNALED(status):  # die the same way, so distill reads the same signal
        signal.signal(os.WTERMSIG(status), signal.SIG_DFL)
        os.kill(os.getpid(), os.WTERMSIG(status))
    os._exit(os.WEXITSTATUS(status))


def _dumps(obj):
    """Compact JSON of plain data (dicts with str keys, lists, str, int, finite float, bool, None)."""
    import _json

    def refuse(o):
        raise TypeError("not plain data: " + type(o).__name__)

    encode = _json.make_encoder(None, refuse, _json.encode_basestring_ascii, None, ":", ",", False, False, False)
    return "".join(encode(obj, 0))


def _loads(text):
    """Strict JSON: NaN and Infinity refused, nothing but whitespace after the value (ValueError)."""
    import _json

    class Context:
        pass

    def refuse(name):
        raise ValueError("refused " + name)

    ctx = Context()
    ctx.strict, ctx.object_hook, ctx.object_pairs_hook = True, None, None
    ctx.parse_float, ctx.parse_int, ctx.parse_constant, ctx.memo = float, int, refuse, {}
    text = text.strip()
    try:
        value, end = _json.make_scanner(ctx)(text, 0)
    except StopIteration:
        raise ValueError("not JSON") from None
    if end != len(text):
        raise ValueError("extra data after the JSON value")
    return value
