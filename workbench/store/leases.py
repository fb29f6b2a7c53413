"""Leases: which process runs what, and how the others notice when it dies.

Every engine registers its process in the ``processes`` table and renews a heartbeat there
from a thread of its own, every third of its lease. A run's ``owner`` is the id of such a
row. A process whose heartbeat is older than its lease (by the *database's* clock, so that
servers on different hosts agree) counts as dead, and so does one on this host whose pid
is gone; any live process then marks the dead one's runs ``interrupted``
(:meth:`Store.mark_interrupted <workbench.store.Store.mark_interrupted>`), with a
``run.interrupted`` event in each run's session so that every stream says so. Resume and
take-over are one conditional update (:meth:`Store.claim_run
<workbench.store.Store.claim_run>`): exactly one process wins a run.

A process that finds its own row gone (another process declared it dead: it could not
reach the database for longer than its lease) has lost its runs: its engine stops them
without writing anything more for them, and the lease registers again under a new id.

The lease is ``$WORKBENCH_LEASE`` seconds (10 by default).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from ._db import Database

__all__ = [
    "DEFAULT_LEASE_S",
    "LEASE_ENV_VAR",
    "Lease",
    "ProcessInfo",
    "lease_seconds",
    "new_process_id",
    "now_sql",
    "owner_host_pid",
    "pid_alive",
]

log = logging.getLogger("workbench.store")

LEASE_ENV_VAR: Final = "WORKBENCH_LEASE"
"""Environment variable holding the lease in seconds."""

DEFAULT_LEASE_S: Final = 10.0
"""Seconds without a heartbeat after which a process counts as dead."""


def lease_seconds(value: float | None = None) -> float:
    """The lease to hold: ``value``, else ``$WORKBENCH_LEASE``, else 10 seconds.

    Raises:
        ValueError: Not a positive number.
    """
    if value is None:
        raw = os.environ.get(LEASE_ENV_VAR, "").strip()
        if not raw:
            return DEFAULT_LEASE_S
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"{LEASE_ENV_VAR} must be a number of seconds, not {raw!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise ValueError(f"a lease must be a positive number of seconds, not {value}")
    return float(value)


def now_sql(dialect: str) -> str:
    """The database's clock as epoch seconds, in SQL (servers on several hosts share it)."""
    if dialect == "postgresql":
        return "CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)"
    if dialect == "sqlite":  # one host: its clock
        return "((julianday('now') - 2440587.5) * 86400.0)"
    return "CAST(EXTRACT(EPOCH FROM CURRENT_TIMESTAMP) AS DOUBLE PRECISION)"


def new_process_id() -> str:
    """``hostname:pid:nonce``: the nonce tells a restarted process (same pid, say pid 1 in
    a container) from the one before it."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def owner_host_pid(owner: str) -> tuple[str, int | None]:
    """The host and pid in an owner id (``host:pid`` or ``host:pid:nonce``)."""
    parts = owner.split(":")
    if len(parts) < 2 or not parts[1].isdigit():
        return owner, None
    return parts[0], int(parts[1])


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host (True when it cannot tell)."""
    if pid <= 0:  # os.kill(0, ...) would signal our own process group
        return True
    if sys.platform == "win32":  # os.kill(pid, 0) terminates the process on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: alive, owned by another user
        return True
    return True


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    """A process that holds (or held) a lease."""

    id: str
    """``hostname:pid:nonce``."""
    kind: str
    """``serve``, ``run``, ``tui``, ``engine``..."""
    host: str
    """Its host."""
    pid: int
    """Its pid there."""
    workspace: str
    """The workspace it serves."""
    started_at: float
    """Epoch seconds (database clock) when it registered."""
    heartbeat_at: float
    """Epoch seconds (database clock) of its last heartbeat."""
    lease_s: float
    """Its lease."""

    def expired(self, now: float) -> bool:
        """Whether its heartbeat is older than its lease at ``now`` (database clock)."""
        return self.heartbeat_at + self.lease_s < now

    def dead(self, now: float) -> bool:
        """Expired, or on this host with its pid gone."""
        if self.expired(now):
            return True
        return (
            self.host == socket.gethostname()
            and self.pid != os.getpid()
            and not pid_alive(self.pid)
        )

    def describe(self, now: float | None = None) -> str:
        """``workbench serve (pid 42 on host-a, heartbeat 1.2 s ago)``."""
        what = {"serve": "workbench serve", "run": "workbench run", "tui": "the workbench TUI"}
        ago = "" if now is None else f", heartbeat {max(0.0, now - self.heartbeat_at):.1f} s ago"
        return f"{what.get(self.kind, self.kind)} (pid {self.pid} on {self.host}{ago})"


class Lease:
    """This process's row in ``processes``, renewed by a daemon thread.

    Plain SQL on a DB-API connection from the store's database: a raw sqlite3 one for a
    SQLite file (no SQLAlchemy on the way to a first answer), SQLAlchemy's pool's else.

    Args:
        db: The store's database (its connections and its parameter style).
        lock: Held around each database access (the store's lock for in-memory SQLite).
        kind: What the process is (``serve``, ``run``, ``tui``...).
        workspace: The workspace it serves.
        lease_s: Seconds without a heartbeat after which others count it dead.
        on_lost: Called (from the heartbeat thread) with the old id when the lease was
            lost: another process declared this one dead. Its runs are no longer its own.
    """

    def __init__(
        self,
        db: Database,
        lock: contextlib.AbstractContextManager[Any],
        *,
        kind: str,
        workspace: str,
        lease_s: float,
        on_lost: Callable[[str], None],
    ) -> None:
        self._db = db
        self._lock = lock
        self.kind = kind
        self.workspace = workspace
        self.lease_s = lease_s
        self._on_lost = on_lost
        self._now = now_sql(db.dialect)
        self.id = new_process_id()
        """The id runs record as their owner (a new one after a lost lease)."""
        self._registered = False
        self._last_ok = time.monotonic()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def _write(self, sql: str, **params: Any) -> int:
        """Run one statement in a write transaction of its own; returns its row count."""
        with self._db.transaction(self._lock, write=True) as cursor:
            self._db.sql(sql).run(cursor, **params)
            return int(cursor.rowcount)

    def start(self) -> Lease:
        """Register (raising if the database refuses) and start the heartbeat thread."""
        self._register()
        self._thread = threading.Thread(
            target=self._beat, name="workbench-store-lease", daemon=True
        )
        self._thread.start()
        return self

    def _register(self) -> None:
        self._write(
            "INSERT INTO processes (id, kind, host, pid, workspace, started_at, "
            f"heartbeat_at, lease_s) VALUES (:id, :kind, :host, :pid, :ws, {self._now}, "
            f"{self._now}, :lease)",
            id=self.id,
            kind=self.kind,
            host=socket.gethostname(),
            pid=os.getpid(),
            ws=self.workspace,
            lease=self.lease_s,
        )
        self._registered = True
        self._last_ok = time.monotonic()

    def renew(self) -> bool:
        """One heartbeat. False when the row is gone: the lease was lost."""
        renewed = self._write(
            f"UPDATE processes SET heartbeat_at = {self._now} WHERE id = :id", id=self.id
        )
        if renewed == 1:
            self._last_ok = time.monotonic()
            return True
        return False

    def _beat(self) -> None:
        while not self._stopping.wait(self.lease_s / 3):
            try:
                if not self._registered:
                    self._register()
                    continue
                if self.renew():
                    continue
                self._lose("another process declared this one dead")
            except Exception as exc:
                if self._stopping.is_set():
                    return
                log.warning("lease %s: heartbeat failed: %s", self.id, exc)
                if self._registered and time.monotonic() - self._last_ok > self.lease_s:
                    # Others may already count this process dead and take its runs.
                    self._lose(f"no heartbeat for {self.lease_s:g} s (the database is away)")

    def _lose(self, why: str) -> None:
        old = self.id
        log.error("lease %s lost (%s): its runs are stopped here", old, why)
        self._registered = False
        self.id = new_process_id()
        try:
            self._on_lost(old)
        except Exception:
            log.exception("lease %s: the lost-lease callback failed", old)
        with contextlib.suppress(Exception):  # else the next beat tries again
            self._register()

    def stop(self, *, release: bool = True) -> None:
        """Stop the heartbeat; with ``release``, delete the row (a clean exit: nothing of
        this process is left running)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if release and self._registered:
            try:
                self._write("DELETE FROM processes WHERE id = :id", id=self.id)
            except Exception as exc:  # it expires by itself
                log.warning("lease %s: could not release it: %s", self.id, exc)
            self._registered = False
