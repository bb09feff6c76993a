"""The code a cache key must cover: every distill module a starting module can import, read from the source.

Usage:
    from distill.code_key import code_closure, closure_digest
    code_closure("distill.filter.measure")      # ["distill", "distill.artifacts", ..., "distill.verify.verdict"]
    direct_imports("distill.filter.stage")      # what one module imports (tests/test_import_graph.py)
    closure_digest("distill.filter.measure")    # hex digest of those files' bytes

A hand-kept list of modules goes stale the day someone imports a new one (the filter once served
old ``unsound_step`` verdicts after distill/teacher/offline.py changed: offline_checks.py took its
patterns from it, and only offline_checks.py was listed). The closure is read from the source
with ``ast``, never by importing: every ``import distill...`` and ``from distill... import``
anywhere in a file (function-local imports included, this codebase defers many), relative imports
resolved, the package ``__init__`` of every imported module (Python runs it), and sibling ``.py``
files a module names as a string (the code sandbox reads its harness scripts by path). It
over-approximates (an import inside an unused branch counts): a needless re-measure costs time, a
missed module serves wrong verdicts. Modules move freely; the closure follows the imports. Not
seen: an import by a computed name (``importlib.import_module(x)``); none is on the verdict path
(tests/test_filter_cache.py pins the modules that must be found).
"""

from __future__ import annotations

import ast
import hashlib
import re
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import distill

PACKAGE = "distill"
_PY_NAME_RE = re.compile(r"^\w+\.py$")


def module_file(name: str, root: Path) -> Path | None:
    """The file of dotted module ``name`` under the package folder ``root`` (None: not a module)."""
    base = root.joinpath(*name.split(".")[1:])
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    file = base.with_suffix(".py")
    return file if name != PACKAGE and file.is_file() else None


def _nearest_module(name: str, root: Path) -> str | None:
    """``distill.verify.check`` names a function of the module ``distill.verify``."""
    while name and module_file(name, root) is None:
        name = name.rpartition(".")[0]
    return name or None


def _imported(name: str, file: Path, source: bytes, root: Path) -> set[str]:
    """The distill modules ``file`` (module ``name``) imports anywhere, and their parent packages."""
    package = name if file.name == "__init__.py" else name.rpartition(".")[0]
    wanted: set[str] = set()
    for level, module, names in _scan(source)[0]:
        base = module
        if level:  # "from .x import y" inside package a.b -> a.b.x
            parts = package.split(".")[: len(package.split(".")) - level + 1]
            base = ".".join(parts + ([module] if module else []))
        wanted.add(base)
        wanted.update(f"{base}.{n}" for n in names)  # "from pkg import submodule"
    found: set[str] = set()
    for target in wanted:
        if target != PACKAGE and not target.startswith(PACKAGE + "."):
            continue
        module = _nearest_module(target, root)
        while module:  # the module and each package above it, whose __init__ runs first
            found.add(module)
            module = module.rpartition(".")[0]
    return found


@lru_cache(maxsize=1024)
def _scan(source: bytes) -> tuple[tuple[tuple[int, str, tuple[str, ...]], ...], frozenset[str]]:
    """One walk of a file's syntax tree: its imports (level, module, names) and the .py names it spells."""
    imports, py_names = [], set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imports += [(0, alias.name, ()) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            imports.append((node.level, node.module or "", tuple(alias.name for alias in node.names)))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _PY_NAME_RE.match(node.value):
            py_names.add(node.value)
    return tuple(imports), frozenset(py_names)


def _named_files(file: Path, source: bytes) -> set[Path]:
    """Sibling .py files a module names as a string: scripts it reads or runs by path."""
    return {file.parent / n for n in _scan(source)[1]
            if n != "__init__.py" and (file.parent / n).is_file() and file.parent / n != file}


def read_file(path: Path) -> bytes:
    """How the closure reads a file (one place, so a test can change what it reads)."""
    return path.read_bytes()


def code_closure(start: str, root: Path | None = None, read: Callable[[Path], bytes] | None = None) -> list[str]:
    """Every module (dotted name) ``start`` can import, itself included, sorted; files named by path too,
    as their dotted name. ``root``: the ``distill`` package folder (default: the one imported)."""
    root, read = root or Path(distill.__file__).parent, read or read_file
    seen: set[str] = set()
    todo = [start, *_parents(start)]
    while todo:
        name = todo.pop()
        file = module_file(name, root)
        if name in seen or file is None:
            continue
        seen.add(name)
        source = read(file)
        todo += _imported(name, file, source, root)
        package = name if file.name == "__init__.py" else name.rpartition(".")[0]
        todo += [f"{package}.{path.stem}" for path in _named_files(file, source)]
    if start not in seen:
        raise ValueError(f"no module {start!r} under {root}")
    return sorted(seen)


def closure_digest(start: str, root: Path | None = None, read: Callable[[Path], bytes] | None = None) -> str:
    """Hex sha256 over the path and bytes of every file in ``code_closure(start)``."""
    root, read = root or Path(distill.__file__).parent, read or read_file
    digest = hashlib.sha256()
    for name in code_closure(start, root, read):
        file = module_file(name, root)
        digest.update(f"{file.relative_to(root).as_posix()}\0".encode())
        digest.update(read(file))
        digest.update(b"\0")
    return digest.hexdigest()


def direct_imports(name: str, root: Path | None = None) -> set[str]:
    """The distill modules one module imports anywhere in its file (and their packages), itself excluded."""
    root = root or Path(distill.__file__).parent
    file = module_file(name, root)
    if file is None:
        raise ValueError(f"no module {name!r} under {root}")
    return _imported(name, file, read_file(file), root) - {name}


def _parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]
