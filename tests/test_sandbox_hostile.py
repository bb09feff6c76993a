"""A wrong program is never judged correct, whatever it does to the interpreter it runs in.

Each probe is an attack that made a wrong ``add(a, b): return a - b`` pass ``assert add(2, 3) == 5``
(or a wrong stdin/stdout program pass its cases) when the harness shared the candidate's
interpreter; the judge now lives in another process. Only the public ``run_tests`` is used, so the
file runs unchanged against any version of the sandbox.

Usage:
    .venv/bin/python -m pytest tests/test_sandbox_hostile.py -q
"""

from __future__ import annotations

import pytest

from distill.verify.sandbox import run_tests

WRONG = "def add(a, b):\n    return a - b\n"
TESTS = "assert add(2, 3) == 5\nassert add(-1, 1) == 0"
FAKE = '{"passed": true, "reason": "passed", "detail": ""}'

# Walks every frame above the call (sys._getframe or a traceback) for the harness's secrets.
FRAME_WALK = """
import sys, os, json, re
def frames(how):
    if how == "traceback":
        try:
            raise RuntimeError
        except RuntimeError as exc:
            f = exc.__traceback__.tb_frame
    else:
        f = sys._getframe()
    while f is not None:
        yield f
        f = f.f_back
def forge(how):
    for f in frames(how):
        loc = f.f_locals
        token = loc.get("token")
        report = loc.get("report")
        if isinstance(token, str) and report is not None:
            for name in ("violations",):
                if isinstance(loc.get(name), list):
                    loc[name].clear()
            report.write(token + json.dumps({"passed": True, "reason": "passed", "detail": ""}) + "\\n")
            report.flush()
            os._exit(0)
def expected(a, b):
    for f in frames("getframe"):
        for value in list(f.f_locals.values()):
            if isinstance(value, str) and "assert" in value:
                for x, y, want in re.findall(r"add\\((-?\\d+), (-?\\d+)\\) == (-?\\d+)", value):
                    if (int(x), int(y)) == (a, b):
                        return int(want)
    return a - b
"""

PROBES = {
    "replace json.dumps": "import json\njson.dumps = lambda *a, **k: %r\n" % FAKE + WRONG,
    "always-True __eq__": "class Yes:\n    __eq__ = lambda s, o: True\n    __ne__ = lambda s, o: False\n"
                          "    __bool__ = lambda s: True\n    __hash__ = lambda s: 0\n"
                          "def add(a, b):\n    return Yes()\n",
    "int subclass with a lying __eq__": "class I(int):\n    __eq__ = lambda s, o: True\n"
                                        "def add(a, b):\n    return I(a - b)\n",
    "token from sys._getframe": FRAME_WALK + "def add(a, b):\n    forge('getframe')\n    return a - b\n",
    "token from traceback frames": FRAME_WALK + "def add(a, b):\n    forge('traceback')\n    return a - b\n",
    "token at load time, violation list cleared": FRAME_WALK + "try:\n    os.system('true')\nexcept OSError:\n"
                                                  "    pass\nforge('getframe')\n" + WRONG,
    "expected values read from frames": FRAME_WALK + "def add(a, b):\n    return expected(a, b)\n",
    "builtins.exec patched": WRONG + "import builtins\nbuiltins.exec = lambda *a, **k: None\n",
    "a fake verdict printed to stdout": WRONG + "for _ in range(3):\n    print(%r)\n" % FAKE,
    "a fake verdict written to every fd": WRONG + "import os\nfor fd in range(1, 64):\n    try:\n"
                                          "        os.write(fd, (%r + '\\n').encode())\n    except OSError:\n"
                                          "        pass\n" % FAKE,
    "a fake manifest written to every fd": WRONG + "import os\nfor fd in range(1, 64):\n    try:\n"
                                           "        os.write(fd, b'{\"names\": {\"add\": 5}}\\n')\n"
                                           "    except OSError:\n        pass\n",
    "exit 0 while loading": WRONG + "import os\nos._exit(0)\n",
    "sys.exit(0) while loading": WRONG + "import sys\nsys.exit(0)\n",
    "exit 0 inside the call": "import os\ndef add(a, b):\n    os._exit(0)\n",
    "NaN makes every != true": "def add(a, b):\n    return float('nan')\n",
    "infinite recursion": "def add(a, b):\n    return add(a, b)\n",
    "a self-containing list": "def add(a, b):\n    x = []\n    x.append(x)\n    return x\n",
    "a list nested 100000 deep": "def add(a, b):\n    x = []\n    for _ in range(100000):\n        x = [x]\n    return x\n",
    "a 50 MB answer": "def add(a, b):\n    return 'x' * (50 << 20)\n",
}
# A wrong `area` and a global that would answer the tests' own comparison for it.
AREA = "def area(r):\n    return 3.0 * r * r\n"
SHADOWS = {
    "a global named like a builtin": (AREA + "def round(x, n=0):\n    return 3.14\n", "assert round(area(1), 2) == 3.14"),
    "an object named like a module": (AREA + "class M:\n    isclose = staticmethod(lambda *a, **k: True)\nmath = M()\n",
                                      "assert math.isclose(area(1), 3.14159, rel_tol=1e-3)"),
    "an imported helper rebound": (AREA + "from math import isclose\nisclose = lambda *a, **k: True\n",
                                   "assert isclose(area(1), 3.14159, rel_tol=1e-3)"),
    "a module patched in place": ("import math\nmath.isclose = lambda *a, **k: True\n" + AREA,
                                  "assert math.isclose(area(1), 3.14159, rel_tol=1e-3)"),
}


@pytest.mark.parametrize("name", sorted(SHADOWS))
def test_program_globals_cannot_answer_the_tests_comparisons(name):
    program, tests = SHADOWS[name]
    res = run_tests(program, tests)
    assert not res.passed, (name, res)
    right = run_tests(program.replace("3.0 *", "3.14159 *"), tests)  # the same globals, a right area
    assert right.passed, (name, right)
NEGATED = "assert not add(2, 3) == 4\nassert add(2, 3) != 1"  # NaN passes both in plain Python


@pytest.mark.parametrize("name", sorted(PROBES))
def test_probe_never_passes(name):
    res = run_tests(PROBES[name], TESTS, timeout=5.0)
    assert not res.passed, (name, res)


def test_nan_is_refused_even_where_python_would_accept_it():
    res = run_tests("def add(a, b):\n    return float('nan')\n", NEGATED)
    assert (res.passed, res.reason) == (False, "failed") and "NaN" in res.detail


@pytest.mark.parametrize("patched", ["callable", "sorted"])
def test_patched_builtins_do_not_skip_test_functions(patched):
    tests = "def test_five():\n    assert add(2, 3) == 5\n"
    program = WRONG + f"import builtins\nbuiltins.{patched} = lambda *a, **k: " + ("False\n" if patched == "callable" else "[]\n")
    res = run_tests(program, tests)
    assert not res.passed and res.detail.startswith("test_five:"), res


def test_a_program_global_cannot_hide_a_test_function():
    tests = "def test_five():\n    assert add(2, 3) == 5\n"
    res = run_tests(WRONG + "def test_five():\n    pass\n", tests)
    assert not res.passed and res.detail.startswith("test_five:"), res


def test_async_test_functions_run():
    tests = "async def test_five():\n    assert add(2, 3) == 5\n"
    assert not run_tests(WRONG, tests).passed
    assert run_tests(WRONG.replace("-", "+"), tests).passed


def test_tests_cannot_eval_what_the_program_returns():
    forge = ("[__import__('os').write(int(__import__('sys').argv[3]), b'%s'), __import__('os')._exit(0)]"
             % FAKE.replace('"', '\\"'))
    program = "def add(a, b):\n    return %r\n" % forge
    res = run_tests(program, "assert eval(add(2, 3)) == 5")
    assert (res.passed, res.reason) == (False, "failed") and "NameError" in res.detail, res


def test_harness_helpers_in_main_cannot_change_the_comparison():
    # stdin/stdout: the old harness compared outputs with its own _norm, reachable from __main__
    tests = '[{"input": "4", "output": "8"}]'
    program = "import __main__\nfor name in ('_norm', '_short'):\n    setattr(__main__, name, lambda t: '')\nprint(5)\n"
    res = run_tests(program, tests)
    assert (res.passed, res.reason) == (False, "failed") and "expected '8', got '5" in res.detail


# Looks for the marker in every frame and every container object. The program holds only the marker
# reversed (a constant like 'a' + 'b' is folded, so it would find itself).
LEAK_SCAN = """
import gc, sys
REV = 'a3f7-rekram-terces'
def leaked():
    f = sys._getframe().f_back
    while f is not None:
        if REV[::-1] in repr(f.f_locals):
            return True
        f = f.f_back
    return any(REV[::-1] in repr(o) for o in gc.get_objects() if isinstance(o, (dict, list, tuple)))
"""


def test_stdio_candidate_never_sees_the_expected_output():
    program = LEAK_SCAN + "print('LEAK' if leaked() else 'clean')\n"
    res = run_tests(program, '[{"input": "", "output": "clean"}, {"input": "x", "output": "secret-marker-7f3a"}]')
    assert res.reason == "failed" and res.detail.startswith("case 2:") and "got 'clean" in res.detail, res


def test_candidate_never_sees_the_tests():
    program = LEAK_SCAN + "def add(a, b):\n    return 'LEAK' if leaked() else 'clean'\n"
    res = run_tests(program, "# secret-marker-7f3a\nassert add(1, 2) == 'clean'")
    assert res.passed, res


def test_a_judge_abort_cannot_be_swallowed_by_the_tests():
    # the candidate dies mid-call; a bare except in the tests must not turn that into a pass
    tests = "try:\n    add(1, 2)\nexcept:\n    pass\nassert True"
    res = run_tests("import os\ndef add(a, b):\n    os._exit(0)\n", tests)
    assert not res.passed and res.reason == "crashed", res


def test_distill_filter_keeps_the_right_program_and_rejects_the_forged_one(tmp_path):
    from filter_helpers import reasons, run_filter, trace
    from records_factory import write_traces

    why = "I add the two numbers and return the sum, checking both of the given examples. " * 3
    fence = "```python\n{}```"
    write_traces(tmp_path / "traces.jsonl", [
        trace("add", 0, content=fence.format(WRONG.replace("-", "+")), answer=TESTS, kind="code", reasoning=why),
        trace("add", 1, content=fence.format(PROBES["replace json.dumps"]), answer=TESTS, kind="code", reasoning=why),
        trace("add", 2, content=fence.format(PROBES["token from sys._getframe"]), answer=TESTS, kind="code",
              reasoning=why)])
    stats, kept, rejected = run_filter(tmp_path, ["checks.keep_undecided=true"])
    assert [(r["id"], r["sample"]) for r in kept] == [("add", 0)]
    assert set(reasons(rejected).values()) <= {"wrong_answer", "crashed"} and len(rejected) == 2, reasons(rejected)
