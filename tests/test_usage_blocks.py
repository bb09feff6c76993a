"""Every module's ``Usage:`` block is true: its imports import, its calls fit the real signatures,
and its shell lines name a real verb with known keys.

A usage block shows how to call a module, so a wrong signature there is a bug a reader copies.
Each block is parsed as Python (shell lines ``distill ...`` are checked against the CLI); every
``from x import y`` is executed, and every call of a name it imports or the module defines, or
of an attribute of such a name (``AdapterRecord.read(...)``), is bound to that callable's
signature. Running the calls themselves would need models, servers and files.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import shlex
import textwrap
from pathlib import Path

import pytest

import distill

PACKAGE = Path(distill.__file__).parent
# distill/verify is being reworked in parallel (answer extraction, the code sandbox); its blocks join
# this check when that work lands.
MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__main__.py" and p.parent.name != "verify")


def usage_block(doc: str) -> str | None:
    """The indented lines after ``Usage:`` (up to the first line back at the docstring's margin)."""
    lines = doc.splitlines()
    for i, line in enumerate(lines):
        if line.strip() == "Usage:":
            body = []
            for rest in lines[i + 1:]:
                if rest.strip() and not rest.startswith((" ", "\t")):
                    break
                body.append(rest)
            return textwrap.dedent("\n".join(body)).strip("\n")
    return None


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def split_block(block: str) -> tuple[list[str], list[str]]:
    """(python statements, shell commands); a statement may span lines (open brackets)."""
    python, shell, pending = [], [], ""
    for line in block.splitlines():
        code = line.split("  #")[0].rstrip() if not pending else line.rstrip()
        if not pending and code.lstrip().startswith("distill "):
            if "<" not in code and "[" not in code:  # a synopsis (distill <verb> [key=value ...]) is not a command
                shell.append(code.strip())
            continue
        if not code.strip() and not pending:
            continue
        pending = f"{pending}\n{code}" if pending else code.strip()
        try:
            ast.parse(pending)
        except SyntaxError as exc:
            if "was never closed" in str(exc) or "unexpected EOF" in str(exc) or pending.rstrip().endswith(":") \
                    or pending.startswith("@"):
                continue
            raise AssertionError(f"not Python: {pending!r} ({exc.msg})") from None
        python.append(pending)
        pending = ""
    assert not pending, f"unfinished statement: {pending!r}"
    return python, shell


def _bind(fn, call: ast.Call, where: str) -> None:
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    if any(isinstance(a, ast.Starred) for a in call.args) or any(k.arg is None for k in call.keywords):
        return
    args = [object()] * len(call.args)
    kwargs = {k.arg: object() for k in call.keywords}
    try:
        signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise AssertionError(f"{where}: {ast.unparse(call)} does not fit {fn.__qualname__}{signature}: {exc}") from None


def check_python(statements: list[str], module, where: str) -> None:
    names = dict(vars(module))
    for statement in statements:
        tree = ast.parse(statement)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "distill":
                imported = importlib.import_module(node.module)
                for alias in node.names:
                    assert hasattr(imported, alias.name), f"{where}: {node.module} has no {alias.name}"
                    names[alias.asname or alias.name] = getattr(imported, alias.name)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == "distill":
                        names[alias.asname or alias.name.split(".")[0]] = importlib.import_module(alias.name)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            fn = node.func
            if isinstance(fn, ast.Name) and fn.id in names and callable(names[fn.id]):
                _bind(names[fn.id], node, where)
            elif isinstance(fn, ast.Attribute) and isinstance(fn.value, ast.Name) and fn.value.id in names:
                owner = names[fn.value.id]
                if inspect.isclass(owner) or inspect.ismodule(owner):
                    assert hasattr(owner, fn.attr), f"{where}: {fn.value.id} has no {fn.attr}"
                    _bind(getattr(owner, fn.attr), node, where)


def check_shell(commands: list[str], where: str) -> None:
    from distill.cli import VERBS, _split_verb

    for command in commands:
        argv = shlex.split(command)[1:]
        verb, rest = _split_verb(argv)
        assert verb is not None, f"{where}: unknown verb in {command!r}"
        fields = set(VERBS[verb].config.__dataclass_fields__)
        for arg in rest:
            if "=" in arg and not arg.startswith("["):
                key = arg.split("=", 1)[0].split(".")[0]
                assert key in fields, f"{where}: {command!r}: {VERBS[verb].config.__name__} has no {key!r}"


@pytest.mark.parametrize("path", MODULES, ids=[module_name(p) for p in MODULES])
def test_usage_block_is_true(path):
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    assert doc, f"{path.name}: no module docstring"
    block = usage_block(doc)
    assert block, f"{module_name(path)}: the docstring has no Usage: block"
    module = importlib.import_module(module_name(path))
    python, shell = split_block(block)
    check_python(python, module, module_name(path))
    check_shell(shell, module_name(path))


def test_the_checker_catches_a_wrong_signature():
    from distill import artifacts

    with pytest.raises(AssertionError, match="does not fit"):
        check_python(['from distill.artifacts import read_latest\nread_latest("a", "b", "c")'], artifacts, "x")
    with pytest.raises(AssertionError, match="has no"):
        check_shell(["distill eval no_such_key=1"], "x")
