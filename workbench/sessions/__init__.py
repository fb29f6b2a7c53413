"""What can be done with a stored session: export, import, fork, re-run, search, prune, replay.

Everything here works on a :class:`~workbench.store.Store` (and, to re-run, an
:class:`~workbench.engine.Engine`); the CLI (``workbench sessions ...``, ``workbench
replay``), the TUI and the server are thin wrappers.

Formats:

* ``jsonl`` is lossless. The first line is a header, ``{"format": "workbench-session",
  "version": 1, "session_id", "title", "workspace", "created_at", "forked_from",
  "forked_from_seq"}``; then one event per line exactly as
  :func:`~workbench.events.dump_event` writes it (the bytes the store keeps). Exporting,
  importing into an empty store and exporting again gives the same bytes, followed by one
  ``session.imported`` event: the import's own record that what came before it was made
  elsewhere.
* ``md`` and ``html`` are for people: the transcript with every tool call (arguments,
  result or error, duration) and every approval (what was asked, who decided what). The
  HTML page is one self-contained file: inline CSS, no scripts, no external references,
  every text escaped.

Run ids are unique across a store (the ``runs`` table is keyed by them), so a fork, or an
import under a new session id, gives every copied run a new id; the events are otherwise
copied as they are.

A log is evidence, not authority. An imported session ends with a ``session.imported``
event (a fork of one gets one too): the approvals before it were not decided in this store,
so a re-run shows them but does not replay them. ``rerun --approve recorded`` replays a
decision only when this store made it and the call is the one it was made on (same tool,
same arguments), and every replayed edit is judged by the current rules like a new call.
"""

from __future__ import annotations

from .archive import (
    FORMAT_NAME,
    FORMAT_VERSION,
    ArchiveError,
    ArchiveHeader,
    SessionExistsError,
    SessionNotFoundError,
    SessionsError,
    import_session,
    iter_events,
    iter_jsonl,
    read_archive,
)
from .export import EXPORT_FORMATS, ExportFormat, export_session, write_export
from .fork import fork_session
from .html_export import export_html
from .markdown_export import export_markdown
from .prune import parse_age, prune_sessions, search_sessions
from .replay import replay_plain
from .rerun import ApproveMode, CallDiff, CallStatus, RerunReport, RunDiff, rerun_session

__all__ = [
    "EXPORT_FORMATS",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "ApproveMode",
    "ArchiveError",
    "ArchiveHeader",
    "CallDiff",
    "CallStatus",
    "ExportFormat",
    "RerunReport",
    "RunDiff",
    "SessionExistsError",
    "SessionNotFoundError",
    "SessionsError",
    "export_html",
    "export_markdown",
    "export_session",
    "fork_session",
    "import_session",
    "iter_events",
    "iter_jsonl",
    "parse_age",
    "prune_sessions",
    "read_archive",
    "replay_plain",
    "rerun_session",
    "search_sessions",
    "write_export",
]
