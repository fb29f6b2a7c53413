"""Exports: a session written in the format asked for (JSONL, Markdown or HTML)."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Final, Literal, TextIO

if TYPE_CHECKING:
    from workbench.store import Store

from .archive import ArchiveHeader, _session, iter_events, iter_jsonl
from .html_export import export_html
from .markdown_export import export_markdown

ExportFormat = Literal["jsonl", "md", "html"]
"""What ``export`` writes."""
EXPORT_FORMATS: Final[tuple[ExportFormat, ...]] = ("jsonl", "md", "html")
"""Every export format."""

# -- export for people --------------------------------------------------------------------------


def export_session(store: Store, session_id: str, fmt: ExportFormat = "jsonl") -> str:
    """A session in an export format, as text.

    Raises:
        SessionNotFoundError: No such session.
        ValueError: An unknown format.
    """
    out = io.StringIO(newline="\n")
    write_export(store, session_id, fmt, out)
    return out.getvalue()


def write_export(store: Store, session_id: str, fmt: ExportFormat, out: TextIO) -> None:
    """Write a session in an export format to an open text file.

    Raises:
        SessionNotFoundError: No such session.
        ValueError: An unknown format.
    """
    if fmt == "jsonl":
        for line in iter_jsonl(store, session_id):
            out.write(line)
        return
    info = _session(store, session_id)
    header = ArchiveHeader.of(info)
    events = iter_events(store, session_id)
    if fmt == "md":
        out.write(export_markdown(header, events))
    elif fmt == "html":
        out.write(export_html(header, events))
    else:
        raise ValueError(f"unknown format '{fmt}': use one of {', '.join(EXPORT_FORMATS)}")
