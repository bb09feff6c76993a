"""Errors a user can act on: each says what went wrong and where, and maps to an exit code.

Usage:
    raise InputError("bad JSON", path="problems.jsonl", line=12, field="question")
"""

from __future__ import annotations

from pathlib import Path


class DistillError(Exception):
    """Base of every error the CLI reports as one clean line (no traceback)."""

    exit_code = 1


class ConfigError(DistillError, ValueError):
    """A recipe or command-line option is unknown, mistyped or out of range."""

    exit_code = 2


class InputError(DistillError):
    """Bad input data, located by file, line and field so it can be fixed."""

    exit_code = 2

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None,
                 field: str | None = None):
        self.path, self.line, self.field = path, line, field
        where = str(path) if path is not None else ""
        if line is not None:
            where += f":{line}"
        if field:
            where += f" (field {field!r})" if where else f"field {field!r}"
        super().__init__(f"{where}: {message}" if where else message)


class TeacherFatalError(DistillError):
    """The teacher refused for good (bad key, no balance): stop now, keep what was received."""

    exit_code = 3


class BudgetExceeded(DistillError):
    """The cost cap was reached: sending stopped, everything received was written."""

    exit_code = 4


class SamplesFailed(DistillError):
    """Some samples are left failed (written with their error; a re-run retries them)."""

    exit_code = 5


class OutputLocked(DistillError):
    """Another process holds the output (a traces file, a run folder): nothing was done."""

    exit_code = 6


class HubError(DistillError):
    """The Hugging Face Hub refused or could not be reached (the message is redacted)."""

    exit_code = 7


class RegressionBlocked(DistillError):
    """Publish refused an adapter whose held-out (or guard) accuracy got worse; allow_regression=true overrides."""

    exit_code = 8
