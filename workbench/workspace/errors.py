"""The error a bad ``workbench.yaml`` raises: file, line, column and key."""

from __future__ import annotations

from pathlib import Path
from typing import (
    Any,
    TypeAlias,
)

from workbench.errors import WorkbenchError

Loc: TypeAlias = tuple[str | int, ...]


# -- errors ------------------------------------------------------------------------------


class WorkspaceError(WorkbenchError):
    """A mistake in ``workbench.yaml``, located by file, line and key.

    ``str()`` reads ``/x/workbench.yaml:7: agents.researcher.model: unknown model ...``.
    When a load finds several mistakes, the first (by line) is raised and all of them are
    in :attr:`errors`, so a UI can list every one.
    """

    path: Path
    """The file (or the folder, when there is no file to blame)."""
    line: int | None
    """1-based line of the offending key or value, when known."""
    column: int | None
    """1-based column, for YAML syntax errors."""
    key: str
    """Dotted path of the offending key, such as ``agents.researcher.tools[2]``; may be empty."""
    message: str
    """What is wrong and what was expected."""
    errors: list[WorkspaceError]
    """Every mistake found by the same load (this one included)."""

    def __init__(
        self,
        path: Path,
        line: int | None,
        key: str,
        message: str,
        *,
        column: int | None = None,
    ) -> None:
        self.path = path
        self.line = line
        self.column = column
        self.key = key
        self.message = message
        self.errors = [self]
        super().__init__(self._format())

    def _format(self) -> str:
        where = str(self.path)
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"

    def __str__(self) -> str:
        return self._format()

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild_error,
            (self.path, self.line, self.key, self.message, self.column),
        )


def _rebuild_error(
    path: Path, line: int | None, key: str, message: str, column: int | None
) -> WorkspaceError:
    return WorkspaceError(path, line, key, message, column=column)
