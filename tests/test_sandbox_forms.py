"""Correct programs still pass under the split judge, in every test form datasets use; wrong ones fail.

Usage:
    .venv/bin/python -m pytest tests/test_sandbox_forms.py -q
"""

from __future__ import annotations

import pytest

from distill.verify.sandbox import run_tests

# (program, tests, passes): each form once right and once wrong
FORMS = {
    "humaneval check(candidate)": (
        "def has_close(xs, t):\n    return any(abs(a - b) < t for i, a in enumerate(xs) for b in xs[i + 1:])\n",
        "def check(candidate):\n    assert candidate([1.0, 2.0, 3.9], 0.3) == False\n"
        "    assert candidate([1.0, 2.8, 3.0], 0.3) == True\n\ncheck(has_close)\n"),
    "bare truthy assert": ("def is_prime(n):\n    return n > 1 and all(n % d for d in range(2, n))\n",
                           "assert is_prime(7)\nassert not is_prime(8)\n"),
    "class and method (LeetCode)": (
        "class Solution:\n    def twoSum(self, nums, target):\n        seen = {}\n"
        "        for i, x in enumerate(nums):\n            if target - x in seen:\n                return [seen[target - x], i]\n"
        "            seen[x] = i\n",
        "s = Solution()\nassert s.twoSum([2, 7, 11, 15], 9) == [0, 1]\nassert sorted(s.twoSum([3, 2, 4], 6)) == [1, 2]\n"),
    "generator iterated by the tests": ("def evens(n):\n    for i in range(n):\n        if i % 2 == 0:\n            yield i\n",
                                        "assert list(evens(7)) == [0, 2, 4, 6]\nassert sum(evens(5)) == 6\n"),
    "keyword arguments and defaults": ("def scale(x, factor=2, *, offset=0):\n    return x * factor + offset\n",
                                       "assert scale(3) == 6 and scale(3, factor=3, offset=1) == 10\n"),
    "expected exception": ("def root(x):\n    if x < 0:\n        raise ValueError('negative')\n    return x ** 0.5\n",
                           "try:\n    root(-1)\nexcept ValueError:\n    pass\nelse:\n    raise AssertionError('no error')\n"
                           "assert root(9) == 3.0\n"),
    "containers keep their types": (
        "def stats(xs):\n    return (min(xs), max(xs)), set(xs), {x: xs.count(x) for x in xs}, bytes(xs), complex(1, 2)\n",
        "t, s, d, b, c = stats([1, 2, 2])\nassert t == (1, 2) and isinstance(t, tuple) and s == {1, 2}\n"
        "assert d == {1: 1, 2: 2} and b == b'\\x01\\x02\\x02' and c == 1 + 2j\n"),
    "floats, infinity and big integers": ("def f(n):\n    return 2 ** n, float('inf'), 0.1 + 0.2\n",
                                          "big, inf, x = f(20000)\nassert big == 2 ** 20000 and inf > 1e308\n"
                                          "assert abs(x - 0.3) < 1e-9\n"),
    "stdlib module the program imported": ("import math\ndef area(r):\n    return math.pi * r * r\n",
                                           "assert math.isclose(area(1), 3.141592653589793)\n"),
    "named tuple fields": ("from collections import namedtuple\nP = namedtuple('P', 'x y')\ndef mid(a, b):\n"
                           "    return P((a.x + b.x) / 2, (a.y + b.y) / 2)\n",
                           "m = mid(P(0, 0), P(2, 4))\nassert m == (1.0, 2.0) and m.y == 2.0\n"),
    "module-level data": ("TABLE = {'a': 1, 'b': 2}\n", "assert TABLE['b'] == 2 and len(TABLE) == 2\n"),
    "object passed back in": ("class Node:\n    def __init__(self, v, nxt=None):\n        self.v, self.nxt = v, nxt\n"
                              "def total(node):\n    return 0 if node is None else node.v + total(node.nxt)\n",
                              "assert total(Node(1, Node(2, Node(3)))) == 6\nassert Node(5).v == 5\n"),
    "stateful object": ("class Stack:\n    def __init__(self):\n        self.items = []\n"
                        "    def push(self, x):\n        self.items.append(x)\n    def pop(self):\n        return self.items.pop()\n",
                        "s = Stack()\ns.push(1)\ns.push(2)\nassert s.pop() == 2 and s.items == [1]\n"),
}
BREAK = {  # a one-token change that makes each program wrong
    "humaneval check(candidate)": ("< t", "> t"), "bare truthy assert": ("all(n % d", "any(n % d"),
    "class and method (LeetCode)": ("seen[target - x], i", "i, seen[target - x]"),
    "generator iterated by the tests": ("% 2 == 0", "% 2 == 1"), "keyword arguments and defaults": ("+ offset", "- offset"),
    "expected exception": ("raise ValueError", "raise TypeError"), "containers keep their types": ("min(xs), max(xs)", "[min(xs), max(xs)]"),
    "floats, infinity and big integers": ("2 ** n", "2 ** n + 1"), "stdlib module the program imported": ("r * r", "r * 2"),
    "named tuple fields": ("(a.y + b.y) / 2", "(a.y + b.y) / 3"), "module-level data": ("'b': 2", "'b': 3"),
    "object passed back in": ("node.v + total", "node.v * total"), "stateful object": ("items.pop()", "items[0]"),
}


@pytest.mark.parametrize("form", sorted(FORMS))
def test_correct_program_passes_and_wrong_one_fails(form):
    program, tests = FORMS[form]
    res = run_tests(program, tests)
    assert (res.passed, res.reason) == (True, "passed"), res
    old, new = BREAK[form]
    assert old in program
    wrong = run_tests(program.replace(old, new), tests)
    assert not wrong.passed and wrong.reason == "failed", wrong


def test_opaque_results_fail_closed():
    program = "class Box:\n    pass\ndef make():\n    return Box()\n"
    assert run_tests(program, "assert make()").detail.endswith("has no truth value here")
    assert not run_tests(program, "assert make() == make()").passed
    res = run_tests("def apply(f, x):\n    return f(x)\n", "assert apply(lambda v: v + 1, 1) == 2")
    assert res.reason == "failed" and "plain data only" in res.detail


def test_in_place_mutation_is_not_seen_by_the_tests():
    # documented limit: arguments cross by value, so such a test fails (never passes wrongly)
    res = run_tests("def fill(xs):\n    xs.append(1)\n", "xs = []\nfill(xs)\nassert xs == [1]")
    assert (res.passed, res.reason) == (False, "failed")


def test_a_big_module_level_table_does_not_sink_the_program():
    program = "TABLE = list(range(1_000_000))\ndef lookup(i):\n    return TABLE[i]\n"
    assert run_tests(program, "assert lookup(999_999) == 999_999").passed


def test_a_call_that_never_returns_times_out():
    res = run_tests("def add(a, b):\n    while True:\n        pass\n", "assert add(1, 2) == 3", timeout=1.0)
    assert (res.passed, res.reason) == (False, "timeout"), res


def test_module_values_are_read_once_after_the_program_ran():
    # documented limit: a global the calls change is seen as it was after loading
    program = "calls = 0\ndef f():\n    global calls\n    calls += 1\n"
    assert not run_tests(program, "f()\nassert calls == 1").passed


def test_program_prints_do_not_disturb_the_calls():
    program = "import sys\ndef add(a, b):\n    print('debug', a, b)\n    print('x' * 1000, file=sys.stderr)\n    return a + b\n"
    assert run_tests(program, "for i in range(200):\n    assert add(i, 1) == i + 1").passed
