"""Forking a session: a copy of its events up to a point, under a new session, with new run ids."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from workbench.events import (
    TERMINAL_TYPES,
    EventBase,
    MessageCompleted,
    RunCancelled,
    RunStarted,
    SessionImported,
)

if TYPE_CHECKING:
    from workbench.store import SessionInfo, Store

from .archive import SessionsError, _remap_runs, _session, iter_events

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
