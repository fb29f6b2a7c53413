"""The error of knowledge: what a person must fix (a model, a path, a file that cannot be read)."""

from __future__ import annotations

from workbench.errors import WorkbenchError


class KnowledgeError(WorkbenchError):
    """Ingesting or searching failed in a way the user must fix (a model, a path)."""
