"""The store: sessions, their event logs, runs, approval rules, knowledge sources.

SQLite in WAL mode by default (under the user data directory), or any SQLAlchemy URL
(``postgresql+psycopg://...``) so several processes can share one database. Open with
:meth:`Store.open`; the schema is migrated on open.

    with Store.open() as store:
        stored = await store.append(event)   # committed; stored.seq is set
        store.events(stored.session_id)
"""

from __future__ import annotations

from ._errors import StoreError, store_error
from .migrations import MIGRATIONS, Migration, SchemaTooNewError, latest_version, migrate
from .store import (
    DB_ENV_VAR,
    SNIPPET_END,
    SNIPPET_START,
    RuleDecision,
    RuleInfo,
    RuleScope,
    RunInfo,
    RunStatus,
    SearchHit,
    SessionInfo,
    Store,
    StoreClosedError,
    create_engine_for,
    default_url,
    new_id,
    process_owner,
)

__all__ = [
    "DB_ENV_VAR",
    "MIGRATIONS",
    "Migration",
    "RuleDecision",
    "RuleInfo",
    "RuleScope",
    "RunInfo",
    "RunStatus",
    "SNIPPET_END",
    "SNIPPET_START",
    "SchemaTooNewError",
    "SearchHit",
    "SessionInfo",
    "Store",
    "StoreClosedError",
    "StoreError",
    "create_engine_for",
    "default_url",
    "latest_version",
    "migrate",
    "new_id",
    "process_owner",
    "store_error",
]
