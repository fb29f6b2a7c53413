"""The lossless JSONL archive: reading a stored session, writing and reading an export, importing it.

The format and its rules are described in :mod:`workbench.sessions`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TextIO

from workbench.errors import WorkbenchError
from workbench.events import (
    Event,
    EventBase,
    SessionImported,
    TeamDelegated,
    dump_event,
    parse_event,
)

if TYPE_CHECKING:
    from workbench.store import SessionInfo, Store


FORMAT_NAME: Final = "workbench-session"
"""The ``format`` of a JSONL export's header line."""
FORMAT_VERSION: Final = 1
"""The ``version`` of the JSONL export format this code writes (and the newest it reads)."""

_PAGE: Final = 2000
"""Events read from the store at a time."""


class SessionsError(WorkbenchError):
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
