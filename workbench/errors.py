"""The one error family: what went wrong, and what to do about it.

Every error a person is meant to read derives from :class:`WorkbenchError`: a bad
``workbench.yaml`` (:class:`~workbench.workspace.WorkspaceError`), a model call that failed
(:class:`~workbench.models.ModelError`), a tool (:class:`~workbench.tools.ToolError`), a
plugin that cannot load (:class:`~workbench.registry.PluginError`), a store that cannot be
used (:class:`~workbench.store.StoreError`), a run (:class:`~workbench.runtime.RunError`) and
a server's refusal (:class:`~workbench.client.RemoteError`). Each keeps its name and its
module; catching ``WorkbenchError`` catches them all.

``str(error)`` is the message alone (what events and logs record); :meth:`WorkbenchError.
describe` adds the hint, the one place "message (hint)" is formatted.

This module imports nothing: any module may raise from it.
"""

from __future__ import annotations

__all__ = ["WorkbenchError", "with_hint"]


def with_hint(message: str, hint: str | None) -> str:
    """``message (hint)``, or the message alone when there is no hint.

    For a failure known by its parts (a run's outcome, an event) rather than raised.
    """
    return f"{message} ({hint})" if hint else message


class WorkbenchError(Exception):
    """An error a person reads: a message, and maybe a hint saying what to do.

    Args:
        message: What went wrong (``str()`` of the error).
        hint: What to do about it, when known.
    """

    hint: str | None = None
    """What to do about it (None: the message says it all)."""

    def __init__(self, message: str = "", hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint

    def describe(self) -> str:
        """The message and the hint, as one line: ``message (hint)``."""
        return with_hint(str(self), self.hint)
