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
from .connection import create_engine_for
from .leases import DEFAULT_LEASE_S, LEASE_ENV_VAR, ProcessInfo, lease_seconds
from .migrations import MIGRATIONS, Migration, SchemaTooNewError, latest_version, migrate
from .records import (
    DB_ENV_VAR,
    NOTIFY_CHANNEL,
    SNIPPET_END,
    SNIPPET_START,
    Claim,
    RuleDecision,
    RuleInfo,
    RuleScope,
    RunInfo,
    RunStatus,
    SearchHit,
    SessionInfo,
    StoreClosedError,
    default_url,
    new_id,
    notify,
    process_owner,
    store_url,
)
from .store import Store

__all__ = [
    "DB_ENV_VAR",
    "DEFAULT_LEASE_S",
    "LEASE_ENV_VAR",
    "Claim",
    "MIGRATIONS",
    "NOTIFY_CHANNEL",
    "Migration",
    "ProcessInfo",
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
    "lease_seconds",
    "migrate",
    "new_id",
    "notify",
    "process_owner",
    "store_error",
    "store_url",
]
