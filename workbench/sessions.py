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

import asyncio
import datetime as dt
import difflib
import html
import io
import json
import math
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, TextIO

from workbench.events import (
    TERMINAL_TYPES,
    ApprovalRequired,
    ApprovalResolved,
    ContextSummarized,
    Event,
    EventBase,
    MessageCompleted,
    ModelRetry,
    RunCancelled,
    RunCompleted,
    RunFailed,
    RunInterrupted,
    RunStarted,
    SessionImported,
    TeamDelegated,
    TeamVote,
    ToolCall,
    ToolResult,
    WorkflowConflict,
    WorkflowStepCompleted,
    WorkflowStepStarted,
    dump_event,
    parse_event,
)

if TYPE_CHECKING:
    from rich.console import Console

    from workbench.approvals import PendingApproval, Resolution
    from workbench.engine import Engine
    from workbench.store import RunInfo, SearchHit, SessionInfo, Store

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

FORMAT_NAME: Final = "workbench-session"
"""The ``format`` of a JSONL export's header line."""
FORMAT_VERSION: Final = 1
"""The ``version`` of the JSONL export format this code writes (and the newest it reads)."""

ExportFormat = Literal["jsonl", "md", "html"]
"""What ``export`` writes."""
EXPORT_FORMATS: Final[tuple[ExportFormat, ...]] = ("jsonl", "md", "html")
"""Every export format."""

ApproveMode = Literal["recorded", "all", "never"]
"""How a re-run decides tool calls that need approval: as the recording did, allow all, or
refuse all."""

_PAGE: Final = 2000
"""Events read from the store at a time."""


class SessionsError(Exception):
    """A session operation could not be done; the message says why (and what to do)."""


class SessionNotFoundError(SessionsError):
    """No session with that id."""


class SessionExistsError(SessionsError):
    """An import would overwrite a session that is already in the store."""


class ArchiveError(SessionsError):
    """A file is not a session export this version can read."""


# -- reading a session ------------------------------------------------------------------------


def _session(store: Store, session_id: str) -> SessionInfo:
    info = store.get_session(session_id)
    if info is None:
        raise SessionNotFoundError(
            f"no session '{session_id}' in this store (see: workbench sessions list)"
        )
    return info


def iter_events(store: Store, session_id: str, up_to: int | None = None) -> Iterator[Event]:
    """A session's events in seq order, read a page at a time (up to seq ``up_to``)."""
    after = 0
    while up_to is None or after < up_to:
        limit = _PAGE if up_to is None else min(_PAGE, up_to - after)
        page = store.events(session_id, after_seq=after, limit=limit)
        if not page:
            return
        yield from page
        after = page[-1].seq


# -- the JSONL archive ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ArchiveHeader:
    """The first line of a JSONL export: the session's own row."""

    session_id: str
    """The session's id."""
    title: str = ""
    """Its title."""
    workspace: str = ""
    """Its workspace folder, as recorded where it ran."""
    created_at: float = 0.0
    """Epoch seconds."""
    forked_from: str | None = None
    """The session it was forked from, if any."""
    forked_from_seq: int | None = None
    """The seq it was forked at."""

    @classmethod
    def of(cls, info: SessionInfo) -> ArchiveHeader:
        """The header of a stored session."""
        return cls(
            session_id=info.id,
            title=info.title,
            workspace=info.workspace,
            created_at=info.created_at,
            forked_from=info.forked_from,
            forked_from_seq=info.forked_from_seq,
        )

    def to_json(self) -> str:
        """The header line (without its newline)."""
        return json.dumps(
            {
                "format": FORMAT_NAME,
                "version": FORMAT_VERSION,
                "session_id": self.session_id,
                "title": self.title,
                "workspace": self.workspace,
                "created_at": self.created_at,
                "forked_from": self.forked_from,
                "forked_from_seq": self.forked_from_seq,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )


def iter_jsonl(store: Store, session_id: str) -> Iterator[str]:
    """The lines of a session's JSONL export, each ending in a newline.

    Raises:
        SessionNotFoundError: No such session.
    """
    info = _session(store, session_id)
    yield ArchiveHeader.of(info).to_json() + "\n"
    for event in iter_events(store, session_id):
        yield dump_event(event) + "\n"


def _header_from(data: dict[str, Any], where: str) -> ArchiveHeader:
    if data.get("format") != FORMAT_NAME:
        raise ArchiveError(f"{where}: not a workbench session export (no '{FORMAT_NAME}' header)")
    version = data.get("version")
    if not isinstance(version, int) or version < 1:
        raise ArchiveError(f"{where}: the header has no valid version")
    if version > FORMAT_VERSION:
        raise ArchiveError(
            f"{where}: the export is format version {version}, newer than this workbench "
            f"reads ({FORMAT_VERSION}): upgrade workbench"
        )
    session_id = data.get("session_id")
    if not isinstance(session_id, str) or not session_id:
        raise ArchiveError(f"{where}: the header has no session_id")
    seq = data.get("forked_from_seq")
    return ArchiveHeader(
        session_id=session_id,
        title=str(data.get("title") or ""),
        workspace=str(data.get("workspace") or ""),
        created_at=float(data.get("created_at") or 0.0),
        forked_from=data.get("forked_from") or None,
        forked_from_seq=int(seq) if isinstance(seq, int) else None,
    )


def read_archive(
    source: str | Path | TextIO | Iterable[str], name: str | None = None
) -> tuple[ArchiveHeader, list[Event]]:
    """Read a JSONL export.

    A file of bare events (one a line, as ``GET /api/sessions/{id}/export`` or
    ``sessions show --json`` give) is read too: its header is made from the first event.

    Args:
        source: A path, an open text file, or the lines.
        name: What to call the source in messages (default: the path, or ``<input>``).

    Returns:
        The header and the events, in order.

    Raises:
        ArchiveError: The file is not an export, is newer than this code, or has a line
            that is not an event of the session.
    """
    if isinstance(source, str | Path):
        path = Path(source)
        try:
            with path.open(encoding="utf-8", newline="\n") as f:
                return read_archive(f, name or str(path))
        except OSError as exc:
            raise ArchiveError(f"cannot read {path}: {exc.strerror or exc}") from None
    where = name or "<input>"
    header: ArchiveHeader | None = None
    events: list[Event] = []
    for number, line in enumerate(source, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ArchiveError(f"{where}, line {number}: not JSON ({exc.msg})") from None
        if not isinstance(data, dict):
            raise ArchiveError(f"{where}, line {number}: not a JSON object")
        if header is None and not events and "type" not in data:
            header = _header_from(data, f"{where}, line {number}")
            continue
        try:
            event = parse_event(data)
        except ValueError as exc:
            first = str(exc).splitlines()[0]
            raise ArchiveError(f"{where}, line {number}: not an event ({first})") from None
        if header is None:
            header = ArchiveHeader(session_id=event.session_id, created_at=event.ts)
        if event.session_id != header.session_id:
            raise ArchiveError(
                f"{where}, line {number}: an event of session '{event.session_id}' "
                f"in the export of '{header.session_id}'"
            )
        events.append(event)
    if header is None:
        raise ArchiveError(f"{where}: empty")
    for expected, event in enumerate(events, start=1):
        if event.seq != expected:
            raise ArchiveError(
                f"{where}: event seqs must run 1, 2, 3 ... without gaps; "
                f"found {event.seq} where {expected} belongs"
            )
    return header, events


def _remap_runs(events: Sequence[Event], session_id: str) -> list[EventBase]:
    """Copies of ``events`` in ``session_id``, every run id replaced by a new one."""
    from workbench.runtime import new_run_id

    ids: dict[str, str] = {}

    def new(run_id: str | None) -> str | None:
        if not run_id:
            return run_id
        if run_id not in ids:
            ids[run_id] = new_run_id()
        return ids[run_id]

    out: list[EventBase] = []
    for e in events:
        update: dict[str, Any] = {
            "session_id": session_id,
            "run_id": new(e.run_id) or "",
            "parent_run_id": new(e.parent_run_id),
        }
        if isinstance(e, TeamDelegated):
            update["child_run_id"] = new(e.child_run_id)
        out.append(e.model_copy(update=update))
    return out


def import_session(
    store: Store,
    source: str | Path | TextIO | Iterable[str],
    *,
    as_new: bool = False,
    name: str | None = None,
) -> SessionInfo:
    """Import a JSONL export into the store.

    Without ``as_new`` the session keeps its id, its run ids and every byte of its events
    (its export is the file imported). With ``as_new`` it gets a new session id and new
    run ids, so a copy can sit beside the original.

    Args:
        store: Where to import.
        source: A path, an open text file, or the lines.
        as_new: Give the session a new id (and its runs new ids).
        name: What to call the source in messages.

    Returns:
        The imported session.

    Raises:
        ArchiveError: The file cannot be read as an export.
        SessionExistsError: The session (or one of its runs) is already in the store.
    """
    header, events = read_archive(source, name)
    if as_new:
        from workbench.store import new_id

        session_id = new_id("s")
        to_store: list[EventBase] = _remap_runs(events, session_id)
    else:
        session_id = header.session_id
        if store.get_session(session_id) is not None:
            raise SessionExistsError(
                f"session {session_id} is already in this store; import it with --as-new "
                "to give the copy a new id, or delete the stored one first"
            )
        run_ids = dict.fromkeys(e.run_id for e in events if e.run_id)
        taken = next((r for r in run_ids if store.get_run(r) is not None), None)
        if taken is not None:
            raise SessionExistsError(
                f"run {taken} of session {session_id} is already in this store (in another "
                "session); import with --as-new to give the copy new ids"
            )
        to_store = list(events)
    store.create_session(
        session_id,
        title=header.title,
        workspace=header.workspace,
        created_at=header.created_at or None,
        forked_from=header.forked_from,
        forked_from_seq=header.forked_from_seq,
    )
    # The import's own record: what came before it was decided elsewhere (evidence only).
    origin = name or (str(source) if isinstance(source, str | Path) else "<stream>")
    to_store.append(
        SessionImported(session_id=session_id, source="import", origin=origin, events=len(to_store))
    )
    try:
        store.append_many(to_store)
    except BaseException:
        store.delete_session(session_id)  # no half-imported session is left behind
        raise
    return _session(store, session_id)


# -- fork -------------------------------------------------------------------------------------


def fork_session(
    store: Store,
    session_id: str,
    *,
    at_seq: int | None = None,
    message_id: str | None = None,
    title: str | None = None,
) -> SessionInfo:
    """A new session holding an old one's history up to and including one event.

    The events up to ``at_seq`` (or up to the ``message.completed`` with ``message_id``)
    are copied into a new session with seqs from 1 and new run ids. A run that had not
    ended by then gets a ``run.cancelled`` ("forked before it ended") so that nothing in
    the fork looks live. The fork records where it came from (``forked_from``,
    ``forked_from_seq``) and is titled "fork of <title>". A run started in it takes
    the copied conversation as its history, so ``workbench run --session NEW ...``
    continues from that message with whatever model is configured.

    Args:
        store: The store holding the session (the fork goes there too).
        session_id: The session to fork.
        at_seq: The last event to keep.
        message_id: Or: the message to keep last (its ``message.completed``).
        title: The fork's title (default "fork of <title>").

    Returns:
        The new session.

    Raises:
        SessionNotFoundError: No such session.
        SessionsError: Neither or both of ``at_seq`` and ``message_id``, or no such event.
    """
    from workbench.store import new_id

    info = _session(store, session_id)
    if (at_seq is None) == (message_id is None):
        raise SessionsError("fork at one point: give a seq or a message id")
    if message_id is not None:
        found = next(
            (
                e.seq
                for e in iter_events(store, session_id)
                if isinstance(e, MessageCompleted) and e.message_id == message_id
            ),
            None,
        )
        if found is None:
            raise SessionsError(f"session {session_id} has no message '{message_id}'")
        at_seq = found
    assert at_seq is not None
    if not 1 <= at_seq <= info.last_seq:
        raise SessionsError(
            f"session {session_id} has events 1 to {info.last_seq}; cannot fork at {at_seq}"
        )
    events = list(iter_events(store, session_id, up_to=at_seq))
    new_session = new_id("s")
    copied = _remap_runs(events, new_session)
    imported_later = any(
        isinstance(e, SessionImported) for e in iter_events(store, session_id) if e.seq > at_seq
    )
    if imported_later:  # what is copied came from elsewhere: the fork says so too
        copied.append(
            SessionImported(
                session_id=new_session,
                source="fork",
                origin=f"fork of imported session {session_id}",
                events=len(copied),
            )
        )
    copied.extend(_close_open_runs(copied, f"forked at event {at_seq} of {session_id}"))
    store.create_session(
        new_session,
        title=title if title is not None else f"fork of {info.title or session_id}",
        workspace=info.workspace,
        forked_from=session_id,
        forked_from_seq=at_seq,
    )
    try:
        store.append_many(copied)
    except BaseException:
        store.delete_session(new_session)
        raise
    return _session(store, new_session)


def _close_open_runs(events: Sequence[EventBase], reason: str) -> list[EventBase]:
    """``run.cancelled`` for each run started in ``events`` without a terminal event,
    children before their parents."""
    started: dict[str, EventBase] = {}
    ended: set[str] = set()
    for e in events:
        if isinstance(e, RunStarted):
            started[e.run_id] = e
        elif e.type in TERMINAL_TYPES:
            ended.add(e.run_id)
    open_runs = [e for run_id, e in started.items() if run_id not in ended]
    if not open_runs:
        return []
    ts = events[-1].ts

    def depth(e: EventBase) -> int:
        d, parent = 0, e.parent_run_id
        while parent is not None and parent in started and d < 100:
            d, parent = d + 1, started[parent].parent_run_id
        return d

    open_runs.sort(key=depth, reverse=True)
    return [
        RunCancelled(
            session_id=e.session_id,
            run_id=e.run_id,
            parent_run_id=e.parent_run_id,
            source=e.source,
            ts=ts,
            reason=reason,
        )
        for e in open_runs
    ]


# -- search and prune ---------------------------------------------------------------------------


def search_sessions(
    store: Store, query: str, limit: int = 50, *, prefix: bool = False
) -> list[SearchHit]:
    """Sessions whose messages, tool calls or tool results contain every word of ``query``,
    most recently active first, each with an excerpt of its first match.

    See :meth:`workbench.store.Store.search_sessions`.
    """
    return store.search_sessions(query, limit=limit, prefix=prefix)


_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.I)


def parse_age(text: str) -> float:
    """Seconds in an age like ``30d``, ``12h``, ``45m``, ``2w`` (or ``90s``).

    Raises:
        ValueError: Not a number followed by one of s, m, h, d, w.
    """
    m = _AGE.match(text)
    if m is None:
        raise ValueError(
            f"'{text}' is not an age: write a number and a unit, s m h d or w (e.g. 30d)"
        )
    return float(m.group(1)) * _UNITS[m.group(2).lower()]


def prune_sessions(
    store: Store, older_than: float, *, dry_run: bool = False, now: float | None = None
) -> list[SessionInfo]:
    """Delete the sessions not updated for ``older_than`` seconds, with their runs and events.

    Sessions with a run that is still running or waiting are kept, however old.

    Args:
        store: The store.
        older_than: Seconds.
        dry_run: Only say which sessions would go.
        now: The time to count from (default: now).

    Returns:
        The sessions deleted (or that would be), oldest first.
    """
    if older_than < 0:
        raise ValueError("the age must not be negative")
    store.mark_interrupted()  # a run whose process died is not live
    cutoff = (time.time() if now is None else now) - older_than
    doomed = store.sessions_not_updated_since(cutoff)
    if doomed and not dry_run:
        store.delete_sessions(s.id for s in doomed)
    return doomed


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


def _utc(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def _seconds(ms: float) -> str:
    return f"{ms:.0f} ms" if ms < 1000 else f"{ms / 1000:.1f} s"


@dataclass
class _Entry:
    """One tool call and what became of it, gathered across its events."""

    call_id: str
    tool: str
    arguments: dict[str, Any] | None = None
    required: ApprovalRequired | None = None
    resolved: ApprovalResolved | None = None
    result: ToolResult | None = None


def _gather(events: Iterable[Event]) -> tuple[list[Event], dict[tuple[str, str], _Entry]]:
    """The events to show, and each tool call's approval and result by (run, call id).

    A tool call is shown once, where it first appears (its approval request, or the call),
    with its approval, arguments and result together.
    """
    shown: list[Event] = []
    entries: dict[tuple[str, str], _Entry] = {}
    for e in events:
        if e.type == "message.delta":
            continue
        if isinstance(e, ApprovalRequired | ApprovalResolved | ToolCall | ToolResult):
            key = (e.run_id, e.call_id)
            entry = entries.get(key)
            if entry is None:
                entry = entries[key] = _Entry(e.call_id, e.tool)
                shown.append(e)
            if isinstance(e, ApprovalRequired):
                entry.required = e
                entry.arguments = entry.arguments or e.arguments
            elif isinstance(e, ApprovalResolved):
                entry.resolved = e
            elif isinstance(e, ToolCall):
                entry.arguments = e.arguments
            else:
                entry.result = e
            continue
        shown.append(e)
    return shown, entries


def _depths(events: Iterable[Event]) -> dict[str, int]:
    depth: dict[str, int] = {}
    for e in events:
        if isinstance(e, RunStarted):
            depth[e.run_id] = depth.get(e.parent_run_id or "", -1) + 1 if e.parent_run_id else 0
    return depth


def _decision_words(r: ApprovalResolved) -> str:
    if r.decision == "deny":
        return "denied"
    return "allowed once" if r.scope == "once" else f"allowed for {r.scope}"


# -- Markdown --


def _md_inline(text: str) -> str:
    """Text safe inside a Markdown paragraph (no markup, no HTML)."""
    text = " ".join(text.split())
    text = re.sub(r"([\\`*_\[\]|~<>])", r"\\\1", text)
    if text[:1] in ("#", "+", "-", ">", "="):
        text = "\\" + text  # would start a heading, a list or a quote
    elif m := re.match(r"\d+(?=[.)])", text):
        text = f"{m.group()}\\{text[m.end() :]}"  # would start a numbered list
    return text.replace("&", "&amp;")


def _md_code(text: str) -> str:
    """An inline code span holding ``text`` whatever backticks it has."""
    text = " ".join(text.split())
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    ticks = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or longest else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def _md_block(text: str, lang: str = "") -> str:
    """A fenced code block holding ``text`` whatever fences it has."""
    longest = max((len(m) for m in re.findall(r"`{3,}", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{lang}\n{text.rstrip()}\n{fence}\n"


def _md_quote(text: str) -> str:
    """Message text as a block quote: verbatim Markdown, as the author wrote it."""
    lines = text.rstrip().splitlines() or [""]
    return "\n".join(f"> {line}" if line.strip() else ">" for line in lines) + "\n"


def export_markdown(header: ArchiveHeader, events: Iterable[Event]) -> str:
    """A session as a Markdown transcript.

    Messages are block quotes holding the text as written (it is Markdown already); every
    other text (names, arguments, results, notes) is escaped or fenced.
    """
    shown, entries = _gather(events)
    depth = _depths(shown)
    out: list[str] = [f"# {_md_inline(header.title or header.session_id)}\n"]
    meta = [
        f"- Session: {_md_code(header.session_id)}",
        f"- Workspace: {_md_code(header.workspace) if header.workspace else '(unknown)'}",
        f"- Created: {_utc(header.created_at)}",
    ]
    if header.forked_from:
        meta.append(
            f"- Forked from: {_md_code(header.forked_from)} at event {header.forked_from_seq}"
        )
    out.append("\n".join(meta) + "\n")
    for e in shown:
        level = "#" * min(6, 2 + depth.get(e.run_id, 0))
        who = _md_inline(e.source or "agent")
        if isinstance(e, RunStarted):
            model = f" · model {_md_code(e.model)}" if e.model else ""
            resumed = " · resumed" if e.resumed else ""
            out.append(
                f"{level} ▶ {e.target_kind} {_md_inline(e.target)}\n\n"
                f"Run {_md_code(e.run_id)}{model}{resumed}\n"
            )
        elif isinstance(e, MessageCompleted):
            if e.role == "assistant" and not e.content:
                continue
            name = {"user": "You" if e.parent_run_id is None else "Task", "system": "System"}
            out.append(f"**{name.get(e.role, who)}:**\n\n{_md_quote(e.content)}")
        elif isinstance(e, ApprovalRequired | ApprovalResolved | ToolCall | ToolResult):
            out.append(_md_tool(entries[(e.run_id, e.call_id)], who))
        elif isinstance(e, RunCompleted):
            cost = f" · ${e.cost:.4f}" if e.cost else ""
            out.append(
                f"✓ {who} done in {_seconds(e.duration_ms)} · {e.usage.prompt_tokens}+"
                f"{e.usage.completion_tokens} tokens{cost}\n"
            )
        elif isinstance(e, RunFailed):
            hint = f"\n\nHint: {_md_inline(e.hint)}" if e.hint else ""
            out.append(f"**✗ {who} failed:**\n\n{_md_block(e.error)}{hint}\n")
        elif isinstance(e, RunCancelled):
            out.append(f"■ {who} cancelled ({_md_inline(e.reason)})\n")
        elif isinstance(e, RunInterrupted):
            out.append(f"⚠ {who} interrupted ({_md_inline(e.reason)})\n")
        elif isinstance(e, TeamDelegated):
            out.append(f"⇢ delegated to **{_md_inline(e.member)}**:\n\n{_md_quote(e.task)}")
        elif isinstance(e, TeamVote):
            verdict = "agrees" if e.agree else "disagrees"
            out.append(
                f"Round {e.round}: **{_md_inline(e.member)}** {verdict}\n\n{_md_quote(e.position)}"
            )
        elif isinstance(e, WorkflowStepStarted):
            out.append(f"◆ step {_md_code(e.path)} ({e.kind}) started\n")
        elif isinstance(e, WorkflowStepCompleted):
            detail = e.error if e.error is not None else e.output
            body = f"\n\n{_md_block(detail)}" if detail else "\n"
            out.append(f"◇ step {_md_code(e.path)} {e.status}{body}")
        elif isinstance(e, WorkflowConflict):
            out.append(
                f"! state conflict on {_md_code(e.key)} in {_md_code(e.path)}:\n\n"
                f"{_md_block(_json(e.values), 'json')}"
            )
        elif isinstance(e, ContextSummarized):
            out.append(
                f"⋯ {e.turns} earlier messages summarised ({e.tokens_before} → "
                f"{e.tokens_after} tokens):\n\n{_md_quote(e.summary)}"
            )
        elif isinstance(e, ModelRetry):
            out.append(
                f"↻ model call failed (attempt {e.attempt}), retry in {e.delay_s:.1f} s: "
                f"{_md_code(e.error)}\n"
            )
    return "\n".join(out)


def _md_tool(entry: _Entry, who: str) -> str:
    parts = [f"**→ {who} calls {_md_code(entry.tool)}** ({_md_code(entry.call_id)})\n"]
    if entry.arguments is not None:
        parts.append(_md_block(_json(entry.arguments), "json"))
    if entry.required is not None:
        parts.append(f"Approval asked: {_md_inline(entry.required.reason)}\n")
        if entry.required.diff:
            parts.append(_md_block(entry.required.diff, "diff"))
    if entry.resolved is not None:
        r = entry.resolved
        line = f"Approval: **{_decision_words(r)}** by **{_md_inline(r.decided_by)}**"
        if r.note:
            line += f" — {_md_inline(r.note)}"
        if r.rule:
            line += f" (rule saved: {_md_code(r.rule)})"
        parts.append(line + "\n")
        if r.edited_arguments is not None:
            parts.append("Edited arguments:\n\n" + _md_block(_json(r.edited_arguments), "json"))
    res = entry.result
    if res is not None:
        if res.error is not None:
            parts.append(
                f"**✗ error** after {_seconds(res.duration_ms)}:\n\n{_md_block(res.error)}"
            )
        else:
            parts.append(
                f"**← result** in {_seconds(res.duration_ms)}:\n\n{_md_block(res.output or '')}"
            )
    return "\n".join(parts)


# -- HTML --

_CSS: Final = """
:root { --fg: #1f2328; --dim: #656d76; --bg: #ffffff; --panel: #f6f8fa; --line: #d0d7de;
  --user: #0969da; --agent: #8250df; --ok: #1a7f37; --bad: #cf222e; --warn: #9a6700; }
@media (prefers-color-scheme: dark) {
  :root { --fg: #e6edf3; --dim: #8d96a0; --bg: #0d1117; --panel: #161b22; --line: #30363d;
    --user: #4493f8; --agent: #ab7df8; --ok: #3fb950; --bad: #f85149; --warn: #d29922; } }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 60rem; padding: 1.5rem; background: var(--bg);
  color: var(--fg); font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; }
h1 { font-size: 1.5rem; margin: 0 0 .5rem; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: .1rem 1rem;
  color: var(--dim); margin: 0 0 1.5rem; }
dl.meta dt { font-weight: 600; } dl.meta dd { margin: 0; }
.ev { margin: .5rem 0; }
.run { border-top: 1px solid var(--line); padding-top: .5rem; margin-top: 1rem; font-weight: 600; }
.id, .dim { color: var(--dim); font-weight: normal; font-size: .85em; }
.msg .who { font-weight: 600; }
.msg.user .who { color: var(--user); } .msg.assistant .who { color: var(--agent); }
.text { white-space: pre-wrap; overflow-wrap: anywhere; }
pre { background: var(--panel); border: 1px solid var(--line); border-radius: 6px;
  padding: .5rem .75rem; overflow-x: auto; white-space: pre-wrap; overflow-wrap: anywhere;
  margin: .25rem 0; font: 13px/1.4 ui-monospace, SFMono-Regular, Menlo, monospace; }
.tool { border-left: 3px solid var(--agent); padding-left: .75rem; }
.tool summary { cursor: pointer; }
.ok { color: var(--ok); } .bad { color: var(--bad); } .warn { color: var(--warn); }
.label { font-size: .8em; text-transform: uppercase; letter-spacing: .04em; color: var(--dim); }
code { font: 13px ui-monospace, SFMono-Regular, Menlo, monospace; }
"""


def _h(value: object) -> str:
    return html.escape(str(value), quote=True)


def _pre(text: str, cls: str = "") -> str:
    attr = f' class="{cls}"' if cls else ""
    return f"<pre{attr}>{_h(text)}</pre>"


def export_html(header: ArchiveHeader, events: Iterable[Event]) -> str:
    """A session as one self-contained HTML page: inline CSS, no scripts, nothing fetched,
    every text escaped."""
    shown, entries = _gather(events)
    depth = _depths(shown)
    title = header.title or header.session_id
    body: list[str] = []
    for e in shown:
        indent = depth.get(e.run_id, 0)
        style = f' style="margin-left:{indent * 1.5:g}rem"' if indent else ""
        who = _h(e.source or "agent")
        if isinstance(e, RunStarted):
            model = f' <span class="dim">model {_h(e.model)}</span>' if e.model else ""
            resumed = ' <span class="warn">(resumed)</span>' if e.resumed else ""
            body.append(
                f'<div class="ev run"{style}>▶ {_h(e.target_kind)} {_h(e.target)}{model}'
                f'{resumed} <span class="id">{_h(e.run_id)}</span></div>'
            )
        elif isinstance(e, MessageCompleted):
            if e.role == "assistant" and not e.content:
                continue
            name = {"user": "you" if e.parent_run_id is None else "task", "system": "system"}
            body.append(
                f'<div class="ev msg {_h(e.role)}"{style}><div class="who">'
                f"{name.get(e.role, who)}</div>"
                f'<div class="text">{_h(e.content)}</div></div>'
            )
        elif isinstance(e, ApprovalRequired | ApprovalResolved | ToolCall | ToolResult):
            body.append(_html_tool(entries[(e.run_id, e.call_id)], who, style))
        elif isinstance(e, RunCompleted):
            cost = f" · ${e.cost:.4f}" if e.cost else ""
            body.append(
                f'<div class="ev ok"{style}>✓ {who} done in {_seconds(e.duration_ms)} · '
                f"{e.usage.prompt_tokens}+{e.usage.completion_tokens} tokens{_h(cost)}</div>"
            )
        elif isinstance(e, RunFailed):
            hint = f'<div class="warn">hint: {_h(e.hint)}</div>' if e.hint else ""
            body.append(f'<div class="ev bad"{style}>✗ {who} failed{_pre(e.error)}{hint}</div>')
        elif isinstance(e, RunCancelled):
            body.append(f'<div class="ev warn"{style}>■ {who} cancelled ({_h(e.reason)})</div>')
        elif isinstance(e, RunInterrupted):
            body.append(f'<div class="ev warn"{style}>⚠ {who} interrupted ({_h(e.reason)})</div>')
        elif isinstance(e, TeamDelegated):
            body.append(
                f'<div class="ev"{style}>⇢ delegated to <b>{_h(e.member)}</b>'
                f'<div class="text">{_h(e.task)}</div></div>'
            )
        elif isinstance(e, TeamVote):
            verdict = "agrees" if e.agree else "disagrees"
            body.append(
                f'<div class="ev"{style}>round {e.round}: <b>{_h(e.member)}</b> {verdict}'
                f'<div class="text">{_h(e.position)}</div></div>'
            )
        elif isinstance(e, WorkflowStepStarted):
            body.append(
                f'<div class="ev"{style}>◆ step <code>{_h(e.path)}</code> '
                f'<span class="dim">{_h(e.kind)}</span></div>'
            )
        elif isinstance(e, WorkflowStepCompleted):
            cls = {"done": "ok", "failed": "bad", "cancelled": "warn"}.get(e.status, "dim")
            detail = e.error if e.error is not None else e.output
            body.append(
                f'<div class="ev"{style}><span class="{cls}">◇ step <code>{_h(e.path)}</code> '
                f"{_h(e.status)}</span>{_pre(detail) if detail else ''}</div>"
            )
        elif isinstance(e, WorkflowConflict):
            body.append(
                f'<div class="ev warn"{style}>! state conflict on <code>{_h(e.key)}</code> in '
                f"<code>{_h(e.path)}</code>{_pre(_json(e.values))}</div>"
            )
        elif isinstance(e, ContextSummarized):
            body.append(
                f'<div class="ev warn"{style}>⋯ {e.turns} earlier messages summarised '
                f"({e.tokens_before} → {e.tokens_after} tokens)"
                f'<div class="text">{_h(e.summary)}</div></div>'
            )
        elif isinstance(e, ModelRetry):
            body.append(
                f'<div class="ev warn"{style}>↻ model call failed (attempt {e.attempt}), '
                f"retry in {e.delay_s:.1f} s: {_h(e.error)}</div>"
            )
    meta = [
        ("Session", header.session_id),
        ("Workspace", header.workspace or "(unknown)"),
        ("Created", _utc(header.created_at)),
    ]
    if header.forked_from:
        meta.append(("Forked from", f"{header.forked_from} at event {header.forked_from_seq}"))
    meta_html = "".join(f"<dt>{_h(k)}</dt><dd>{_h(v)}</dd>" for k, v in meta)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<meta name="generator" content="workbench sessions export">\n'
        f"<title>{_h(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f'<header><h1>{_h(title)}</h1><dl class="meta">{meta_html}</dl></header>\n'
        "<main>\n" + "\n".join(body) + "\n</main>\n</body>\n</html>\n"
    )


def _html_tool(entry: _Entry, who: str, style: str) -> str:
    res = entry.result
    if res is None:
        status = '<span class="warn">no result</span>'
    elif res.error is not None:
        status = (
            f'<span class="bad">error</span> <span class="dim">{_seconds(res.duration_ms)}</span>'
        )
    else:
        status = f'<span class="ok">ok</span> <span class="dim">{_seconds(res.duration_ms)}</span>'
    parts = [
        f'<details class="ev tool" open{style}><summary>→ {who} calls '
        f"<code>{_h(entry.tool)}</code> {status} "
        f'<span class="id">{_h(entry.call_id)}</span></summary>'
    ]
    if entry.arguments is not None:
        parts.append(f'<div class="label">arguments</div>{_pre(_json(entry.arguments))}')
    if entry.required is not None:
        parts.append(
            f'<div class="warn">approval asked: {_h(entry.required.reason)}</div>'
            + (_pre(entry.required.diff) if entry.required.diff else "")
        )
    if entry.resolved is not None:
        r = entry.resolved
        cls = "ok" if r.decision == "allow" else "bad"
        note = f" — {_h(r.note)}" if r.note else ""
        rule = f' <span class="dim">(rule saved: {_h(r.rule)})</span>' if r.rule else ""
        parts.append(
            f'<div class="approval"><span class="{cls}">{_decision_words(r)}</span> by '
            f"<b>{_h(r.decided_by)}</b>{note}{rule}</div>"
        )
        if r.edited_arguments is not None:
            parts.append(
                f'<div class="label">edited arguments</div>{_pre(_json(r.edited_arguments))}'
            )
    if res is not None:
        if res.error is not None:
            parts.append(f'<div class="label">error</div>{_pre(res.error)}')
        else:
            parts.append(f'<div class="label">result</div>{_pre(res.output or "")}')
    parts.append("</details>")
    return "".join(parts)


# -- replay on a plain terminal -----------------------------------------------------------------


def replay_plain(
    events: Iterable[Event],
    console: Console,
    *,
    speed: float = math.inf,
    max_gap: float = 1.5,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Print a session's transcript (as ``sessions show`` does), paced by its timestamps.

    Args:
        events: The events, in order.
        console: Where to print.
        speed: How many times faster than recorded; ``inf`` (or 0) prints at once.
        max_gap: A recorded pause longer than this (after ``speed``) is cut to it, so a
            session that idled for an hour replays without the hour.
        sleep: Waits (tests pass a recorder).

    Returns:
        How many events were replayed.
    """
    from workbench.render import TranscriptPrinter

    paced = speed > 0 and math.isfinite(speed)
    printer = TranscriptPrinter(console, live=False)
    previous: float | None = None
    count = 0
    try:
        for e in events:
            if paced and previous is not None:
                wait = min((e.ts - previous) / speed, max_gap)
                if wait > 0:
                    sleep(wait)
            previous = e.ts
            printer.feed(e)
            count += 1
    finally:
        printer.close()
    return count


# -- re-run -------------------------------------------------------------------------------------


CallStatus = Literal["same", "changed", "missing", "extra"]
"""How a re-run tool call compares with the recorded one."""


@dataclass
class CallDiff:
    """One tool call of a re-run, next to the recorded one."""

    call_id: str
    """The call id (the recorded one: the replay model asks with the same ids)."""
    tool: str
    """The tool."""
    arguments: dict[str, Any]
    """The arguments it was called with."""
    status: CallStatus
    """``same`` result, ``changed`` result, ``missing`` (recorded, not made again) or
    ``extra`` (made again, not recorded)."""
    old_output: str | None = None
    """The recorded output."""
    old_error: str | None = None
    """The recorded error."""
    new_output: str | None = None
    """The output now."""
    new_error: str | None = None
    """The error now."""
    old_ms: float = 0.0
    """The recorded duration."""
    new_ms: float = 0.0
    """The duration now."""
    agent: str = ""
    """The agent that made the call (in a team or a workflow, one of many)."""

    @property
    def same(self) -> bool:
        """The result did not change."""
        return self.status == "same"

    def unified_diff(self, context: int = 3) -> str:
        """The recorded result against the new one, as a unified diff ('' when the same)."""
        if self.same:
            return ""

        def text(output: str | None, error: str | None, present: bool) -> list[str]:
            if not present:
                return []
            body = f"Error: {error}" if error is not None else (output or "")
            return (body if body.endswith("\n") else body + "\n").splitlines(keepends=True)

        old = text(self.old_output, self.old_error, self.status != "extra")
        new = text(self.new_output, self.new_error, self.status != "missing")
        return "".join(
            difflib.unified_diff(
                old,
                new,
                fromfile=f"recorded {self.tool} {self.call_id}",
                tofile=f"re-run {self.tool} {self.call_id}",
                n=context,
            )
        )


@dataclass
class RunDiff:
    """One top-level run, recorded and re-run."""

    old_run_id: str
    """The recorded run."""
    target: str
    """Its agent."""
    input: str
    """Its prompt."""
    old_status: str
    """How the recorded run ended."""
    new_run_id: str | None = None
    """The re-run (None when skipped)."""
    new_status: str | None = None
    """How the re-run ended."""
    new_error: str | None = None
    """Why the re-run failed, if it did."""
    calls: list[CallDiff] = field(default_factory=list)
    """Its tool calls, in recorded order (extras last)."""
    skipped: str | None = None
    """Why it was not re-run."""
    old_output: str | None = None
    """The recorded answer."""
    new_output: str | None = None
    """The answer now."""
    output_changed: bool = False
    """Under the replay model, the answer is not the recorded one (a workflow's function
    step or a changed tool result upstream of it). A live model's answer is not compared."""

    def answer_diff(self) -> str:
        """The recorded answer against the new one, as a unified diff ('' when not changed)."""
        if not self.output_changed:
            return ""
        return "".join(
            difflib.unified_diff(
                (self.old_output or "").splitlines(keepends=True),
                (self.new_output or "").splitlines(keepends=True),
                fromfile=f"recorded answer of {self.target}",
                tofile=f"re-run answer of {self.target}",
            )
        )

    @property
    def differs(self) -> bool:
        """Re-run, and it ended otherwise, gave another answer under the replay model, or
        some tool result changed."""
        if self.skipped is not None:
            return False
        return (
            self.new_status != self.old_status
            or self.output_changed
            or not all(c.same for c in self.calls)
        )


@dataclass
class RerunReport:
    """A session re-run: where the new tool results differ from the recorded ones."""

    source_session_id: str
    """The recorded session."""
    session_id: str
    """The new session holding the re-run."""
    model: str
    """``replay`` or the model used."""
    runs: list[RunDiff] = field(default_factory=list)
    """One per top-level run of the recorded session."""

    @property
    def identical(self) -> bool:
        """No re-run ended otherwise than recorded, and no tool result changed (runs
        that were skipped do not count either way)."""
        return not any(r.differs for r in self.runs)

    @property
    def rerun(self) -> list[RunDiff]:
        """The runs that were re-run (not skipped)."""
        return [r for r in self.runs if r.skipped is None]

    @property
    def differing_calls(self) -> list[CallDiff]:
        """Every call whose result differs."""
        return [c for r in self.runs for c in r.calls if not c.same]


@dataclass
class _Recorded:
    """A recorded decision and the call it was made on."""

    decision: ApprovalResolved
    arguments: dict[str, Any]
    """The arguments the person was shown (the ``approval.required`` it answered)."""
    trusted: bool
    """Made in this store (not imported)."""


def _recorded_decisions(events: Sequence[Event]) -> dict[tuple[str, str], list[_Recorded]]:
    """The decisions people (or a decider) made on asked calls, per agent and call id, in
    order; each with the arguments it was asked on and whether this store made it."""
    imported_through = max((e.seq for e in events if isinstance(e, SessionImported)), default=0)
    asked: dict[tuple[str, str, str], dict[str, Any]] = {}
    out: dict[tuple[str, str], list[_Recorded]] = {}
    for e in events:
        if isinstance(e, ApprovalRequired):
            asked[(e.run_id, e.source, e.call_id)] = e.arguments
        elif isinstance(e, ApprovalResolved):
            args = asked.pop((e.run_id, e.source, e.call_id), None)
            if args is None:
                continue  # the policy decided; it decides again
            out.setdefault((e.source, e.call_id), []).append(
                _Recorded(e, args, trusted=e.seq > imported_through)
            )
    return out


def _recorded_decider(
    mode: ApproveMode, decisions: dict[tuple[str, str], list[_Recorded]]
) -> Callable[[PendingApproval], Resolution]:
    """Decide as recorded: each recorded decision once, in order, per agent and call id;
    only a decision this store made, on the same call."""
    from workbench.approvals import Resolution

    def decide(p: PendingApproval) -> Resolution:
        if mode == "all":
            return Resolution("allow", decided_by="rerun --approve all")
        if mode == "never":
            return Resolution(
                "deny", note="refused by the re-run", decided_by="rerun --approve never"
            )
        # Call ids are the model's: two agents of a team may both have made a 'call_1'.
        queue = decisions.get((p.source, p.call_id))
        recorded = queue.pop(0) if queue else None
        if recorded is None:
            return Resolution(
                "deny",
                note="no decision was recorded for this call (rerun with --approve all)",
                decided_by="rerun: none recorded",
            )
        if not recorded.trusted:
            return Resolution(
                "deny",
                note="the recorded decision was imported (made elsewhere): a re-run shows it "
                "but does not trust it (rerun with --approve all to allow such calls)",
                decided_by="rerun: imported decision not trusted",
            )
        if p.tool != recorded.decision.tool or p.arguments != recorded.arguments:
            return Resolution(
                "deny",
                note="the recorded decision was made on another call (its tool or arguments "
                "differ now); rerun with --approve all to allow it",
                decided_by="rerun: another call",
            )
        was = recorded.decision
        # A recorded rule-saving allow applies to this session only: a re-run saves nothing.
        scope: Literal["once", "session"] = "once" if was.scope == "once" else "session"
        return Resolution(
            was.decision,
            scope=scope if was.decision == "allow" else "once",
            note=was.note,
            edited_arguments=was.edited_arguments,
            decided_by=f"rerun: recorded {was.decided_by}",
        )

    return decide


def _results(events: Iterable[Event]) -> list[tuple[ToolResult, dict[str, Any]]]:
    args: dict[str, dict[str, Any]] = {}
    out: list[tuple[ToolResult, dict[str, Any]]] = []
    for e in events:
        if isinstance(e, ToolCall):
            args[e.call_id] = e.arguments
        elif isinstance(e, MessageCompleted):
            for c in e.tool_calls:
                args.setdefault(c.id, c.arguments)
        elif isinstance(e, ToolResult):
            out.append((e, args.get(e.call_id, {})))
    return out


def _compare(
    old: list[tuple[ToolResult, dict[str, Any]]],
    new: list[tuple[ToolResult, dict[str, Any]]],
    by_id: bool,
) -> list[CallDiff]:
    # Calls are matched per agent (members of a team run at once, so only each agent's own
    # calls keep their order): by call id and occurrence under the replay model, which asks
    # with the recorded ids, else by position.
    def keyed(items: list[tuple[ToolResult, dict[str, Any]]]) -> dict[tuple[str, str, int], Any]:
        seen: dict[tuple[str, str], int] = {}
        out: dict[tuple[str, str, int], Any] = {}
        for r, a in items:
            name = (r.source, r.call_id if by_id else "")
            n = seen[name] = seen.get(name, -1) + 1
            out[(*name, n)] = (r, a)
        return out

    old_k, new_k = keyed(old), keyed(new)
    diffs: list[CallDiff] = []
    for key, (r, a) in old_k.items():
        match = new_k.get(key)
        if match is None:
            diffs.append(
                CallDiff(
                    r.call_id,
                    r.tool,
                    a,
                    "missing",
                    old_output=r.output,
                    old_error=r.error,
                    old_ms=r.duration_ms,
                    agent=r.source,
                )
            )
            continue
        n, _ = match
        same = n.tool == r.tool and n.output == r.output and n.error == r.error
        diffs.append(
            CallDiff(
                r.call_id,
                r.tool,
                a,
                "same" if same else "changed",
                old_output=r.output,
                old_error=r.error,
                new_output=n.output,
                new_error=n.error,
                old_ms=r.duration_ms,
                new_ms=n.duration_ms,
                agent=r.source,
            )
        )
    for key, (n, a) in new_k.items():
        if key not in old_k:
            diffs.append(
                CallDiff(
                    n.call_id,
                    n.tool,
                    a,
                    "extra",
                    new_output=n.output,
                    new_error=n.error,
                    new_ms=n.duration_ms,
                    agent=n.source,
                )
            )
    return diffs


def _subtree(runs: Sequence[RunInfo], root: str) -> set[str]:
    """``root`` and every run below it (runs are listed parents first)."""
    ids = {root}
    for r in runs:
        if r.parent_run_id in ids:
            ids.add(r.id)
    return ids


async def rerun_session(
    engine: Engine,
    session_id: str,
    *,
    model: str = "replay",
    approve: ApproveMode = "recorded",
    on_run: Callable[[RunInfo, str], None] | None = None,
) -> RerunReport:
    """Run a session's top-level runs again, in a new session, and compare tool results.

    With the ``replay`` model every agent of a run answers with the turns its recorded
    counterpart made (:class:`~workbench.models.Recording`): a top-level agent, and in a
    team or a workflow each member, leader, judge and step, matched by agent name and
    input. No model is called, the same tool calls are made, with the same ids, and the
    tools really run, so a saved session works as a regression test for an agent, a team or
    a workflow. With another model name the runs go to that model and calls are compared
    agent by agent in order.

    Tool calls that need approval are decided as recorded (an allow that saved a rule only
    allows for the re-run's session), or all allowed, or all refused (``approve``). A
    recorded decision is replayed only when this store made it (an imported session's are
    shown, not trusted) and only on the call it was made on; an edit it replays is judged by
    the current rules like a new call, so a deny rule wins.

    Args:
        engine: An engine on the store holding the session, with the workspace whose tools
            the agents use.
        session_id: The recorded session.
        model: ``replay``, or a model name or litellm string for live calls.
        approve: ``recorded``, ``all`` or ``never``.
        on_run: Called with each recorded run and the new run's id as it starts.

    Returns:
        The report; ``report.identical`` is the verdict.

    Raises:
        SessionNotFoundError: No such session.
        SessionsError: The session has no top-level run.
    """
    from workbench.models import Recording
    from workbench.store import new_id

    store = engine.store
    info = _session(store, session_id)
    runs = store.list_runs(session_id)
    top = [r for r in runs if r.parent_run_id is None]
    if not top:
        raise SessionsError(f"session {session_id} has no run to re-run")
    events = list(iter_events(store, session_id))
    new_session = new_id("s")
    store.create_session(
        new_session,
        title=f"rerun of {info.title or session_id}",
        workspace=str(engine.root),
    )
    report = RerunReport(session_id, new_session, model)
    ws = engine.workspace
    defined: dict[str, Any] = {"agent": ws.agents, "team": ws.teams, "workflow": ws.workflows}
    previous = engine.broker.auto_decider, engine.model_override
    try:
        for run in top:
            diff = RunDiff(run.id, run.target, run.input, run.status, old_output=run.output)
            report.runs.append(diff)
            if run.target not in defined.get(run.target_kind, ()):
                diff.skipped = f"the workspace has no {run.target_kind} '{run.target}' now"
                continue
            tree = _subtree(runs, run.id)
            recorded = [e for e in events if e.run_id in tree]
            decisions = _recorded_decisions(
                [e for e in events if e.run_id in tree or isinstance(e, SessionImported)]
            )
            engine.broker.auto_decider = _recorded_decider(approve, decisions)
            recording: Recording | None = None
            if model == "replay":
                recording = Recording()
                for r in runs:
                    if r.id in tree and r.target_kind == "agent":
                        own = [e for e in recorded if e.run_id == r.id]
                        recording.add(
                            r.target,
                            r.input,
                            [e for e in own if isinstance(e, MessageCompleted)],
                            [e.summary for e in own if isinstance(e, ContextSummarized)],
                        )
            else:
                engine.model_override = model
            handle = await engine.start_run(
                run.target,
                run.input,
                session_id=new_session,
                kind=run.target_kind,  # type: ignore[arg-type]
                recording=recording,
            )
            if on_run is not None:
                on_run(run, handle.run_id)
            outcome = await handle.wait()
            diff.new_run_id = handle.run_id
            diff.new_status = outcome.status
            diff.new_error = outcome.error
            diff.new_output = outcome.output if outcome.ok else None
            diff.output_changed = model == "replay" and diff.new_output != diff.old_output
            await asyncio.to_thread(store.flush)
            fresh_tree = _subtree(store.list_runs(new_session), handle.run_id)
            fresh = [e for e in store.events(new_session) if e.run_id in fresh_tree]
            diff.calls = _compare(_results(recorded), _results(fresh), by_id=model == "replay")
    finally:
        engine.broker.auto_decider, engine.model_override = previous
    return report
