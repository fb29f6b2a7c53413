"""Searching sessions, and deleting the ones not used for a while."""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from workbench.store import SearchHit, SessionInfo, Store


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
