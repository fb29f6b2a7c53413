"""The ``memory`` toolkit: facts an agent keeps across sessions, per workspace.

``memory.remember(fact, tags)`` stores a fact; ``memory.recall(query, limit)`` finds the
facts that match a query (BM25 full text, or hybrid with vectors). Facts live in the
workspace's LanceDB (``<workspace>/.workbench/lancedb``, see :mod:`workbench.knowledge`)
in a table of their own: ``memory``, or ``memory_<hash>`` with a ``vector`` column when an
embedding model is set. The same fact told twice (ignoring case and spacing) is kept once;
its tags are merged.

Settings (``toolkits: memory:`` in ``workbench.yaml``, or the top-level ``memory:``
table), optional::

    toolkits:
      memory:
        embedding_model: embedder   # a name from models: or a litellm embedding model

Switching to a new embedding model starts a new table, filled from the old one.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from workbench.tools import FunctionToolkit, ToolError, tool

__all__ = ["MemoryToolkit", "fact_id"]

log = logging.getLogger("workbench.memory")

_TABLE = "memory"
_MAX_FACT = 4000


def fact_id(fact: str) -> str:
    """The identity of a fact: the same text up to case and spacing is the same fact."""
    normal = " ".join(fact.split()).casefold()
    return hashlib.sha256(normal.encode("utf-8")).hexdigest()[:32]


class MemoryToolkit(FunctionToolkit):
    """Long-term memory for agents: ``remember`` and ``recall``. Writes only its own table."""

    def __init__(self, name: str, config: dict[str, Any], root: Path) -> None:
        super().__init__(name, config, root)
        model = config.get("embedding_model") or _workspace_setting(root, "embedding_model")
        self.embedding_model: str | None = str(model) if model else None
        """The embedding model for hybrid recall (``None``: full text only)."""
        self.table_name = _TABLE
        """The LanceDB table of this toolkit's facts."""
        if self.embedding_model:
            digest = hashlib.sha1(self.embedding_model.encode()).hexdigest()[:10]
            self.table_name = f"{_TABLE}_{digest}"
        self._lock = asyncio.Lock()
        self.add(tool(name="remember", timeout=60.0)(self.remember))
        self.add(tool(name="recall", timeout=60.0, idempotent=True)(self.recall))

    # -- tools ----------------------------------------------------------------------------

    async def remember(self, fact: str, tags: list[str] = []) -> str:  # noqa: B006 - schema default
        """Remember a fact for later sessions (a preference, a decision, a finding).

        Args:
            fact: The fact, as one self-contained statement.
            tags: Words to file it under (optional).
        """
        fact = fact.strip()
        if not fact:
            raise ToolError("fact is empty: say what to remember")
        if len(fact) > _MAX_FACT:
            raise ToolError(f"fact is too long ({len(fact)} characters; at most {_MAX_FACT})")
        clean_tags = sorted({t.strip().lower() for t in tags if t.strip()})
        async with self._lock:
            return await asyncio.to_thread(self._remember, fact, clean_tags)

    async def recall(self, query: str, limit: int = 5) -> str:
        """Recall remembered facts that match a query (an empty query gives the latest).

        Args:
            query: What the facts are about: keywords or a question.
            limit: How many facts to return (1 to 50).
        """
        limit = max(1, min(int(limit), 50))
        return await asyncio.to_thread(self._recall, query, limit)

    # -- storage (in a worker thread) ------------------------------------------------------

    def _embed(self, texts: list[str]) -> list[list[float]]:
        from workbench.knowledge import KnowledgeError, resolve_embedder

        assert self.embedding_model is not None
        try:
            return resolve_embedder(self.root, self.embedding_model).embed(texts)
        except KnowledgeError as exc:
            raise ToolError(str(exc)) from exc

    def _table(self, create: bool) -> Any:
        """The facts table; created (and filled from other memory tables) if ``create``."""
        from workbench.knowledge import ensure_fts_index, open_db, table_names

        db = open_db(self.root, create=create)
        if db is None:
            return None
        names = table_names(db)
        if self.table_name in names:
            return db.open_table(self.table_name)
        if not create:
            return None
        # A new table (a first fact, or a new embedding model) starts with the facts kept
        # so far in the other memory tables.
        rows: dict[str, dict[str, Any]] = {}
        for other in sorted(names):
            if other == _TABLE or other.startswith(f"{_TABLE}_"):
                for r in db.open_table(other).to_arrow().to_pylist():
                    rows.setdefault(r["id"], {k: v for k, v in r.items() if k != "vector"})
        records = list(rows.values())
        if self.embedding_model and records:
            for r, v in zip(records, self._embed([r["content"] for r in records]), strict=True):
                r["vector"] = v
        table = db.create_table(self.table_name, data=self._arrow(records))
        ensure_fts_index(table, "content")
        return table

    def _arrow(self, records: list[dict[str, Any]], dim: int | None = None) -> Any:
        import pyarrow as pa

        if dim is None and records and "vector" in records[0]:
            dim = len(records[0]["vector"])
        fields = [
            pa.field("id", pa.string()),
            pa.field("fact", pa.string()),
            pa.field("tags", pa.list_(pa.string())),
            pa.field("content", pa.string()),
            pa.field("created_at", pa.timestamp("us", tz="UTC")),
            pa.field("updated_at", pa.timestamp("us", tz="UTC")),
        ]
        if self.embedding_model:
            if dim is None:
                dim = len(self._embed(["dimension probe"])[0])
            fields.append(pa.field("vector", pa.list_(pa.float32(), dim)))
        return pa.Table.from_pylist(records, schema=pa.schema(fields))

    def _remember(self, fact: str, tags: list[str]) -> str:
        from workbench.knowledge import sql_quote

        tbl = self._table(create=True)
        ident = fact_id(fact)
        existing = tbl.search().where(f"id = {sql_quote(ident)}").limit(1).to_list()
        now = datetime.now(UTC)
        if existing:
            old = existing[0]
            merged = sorted(set(old.get("tags") or []) | set(tags))
            if merged == sorted(old.get("tags") or []):
                return f"Already remembered: {old['fact']}"
            record = {k: v for k, v in old.items() if not k.startswith("_")}
            record.update(tags=merged, content=_content(old["fact"], merged), updated_at=now)
            if self.embedding_model:
                record["vector"] = self._embed([record["content"]])[0]
            data = self._arrow([record])
            tbl.merge_insert("id").when_matched_update_all().when_not_matched_insert_all().execute(
                data
            )
            return f"Already remembered; tags now: {', '.join(merged)}"
        record = {
            "id": ident,
            "fact": fact,
            "tags": tags,
            "content": _content(fact, tags),
            "created_at": now,
            "updated_at": now,
        }
        if self.embedding_model:
            record["vector"] = self._embed([record["content"]])[0]
        # merge_insert on the id: two writers telling the same fact still keep one row.
        tbl.merge_insert("id").when_matched_update_all().when_not_matched_insert_all().execute(
            self._arrow([record])
        )
        suffix = f" [{', '.join(tags)}]" if tags else ""
        return f"Remembered: {fact}{suffix}"

    def _recall(self, query: str, limit: int) -> str:
        tbl = self._table(create=False)
        if tbl is None or tbl.count_rows() == 0:
            return "Nothing is remembered yet."
        query = " ".join(query.split())
        if not query:
            rows = tbl.to_arrow().to_pylist()
            rows.sort(key=lambda r: r["updated_at"], reverse=True)
            return _format(rows[:limit])
        columns = ["id", "fact", "tags", "created_at", "updated_at"]
        if self.embedding_model:
            from lancedb.rerankers import RRFReranker

            vector = self._embed([query])[0]
            q = (
                tbl.search(query_type="hybrid", fts_columns="content")
                .vector(vector)
                .text(query)
                .rerank(RRFReranker())
            )
        else:
            q = tbl.search(query, query_type="fts", fts_columns="content")
            columns.append("_score")
        rows = q.select(columns).limit(limit).to_list()
        if not rows:
            return f"Nothing remembered matches {query!r}."
        return _format(rows)


def _workspace_setting(root: Path, key: str) -> Any:
    """A key of the top-level ``memory:`` table of ``workbench.yaml`` (``None`` if unset)."""
    if not (root / "workbench.yaml").is_file():
        return None
    try:
        from workbench.workspace import load_workspace

        return load_workspace(root).memory.get(key)
    except Exception:  # a broken file is reported where the workspace is opened
        return None


def _content(fact: str, tags: list[str]) -> str:
    return f"{fact}\n{' '.join(tags)}" if tags else fact


def _format(rows: list[dict[str, Any]]) -> str:
    lines = []
    for r in rows:
        tags = f" [{', '.join(r['tags'])}]" if r.get("tags") else ""
        when = r.get("created_at")
        date = when.date().isoformat() if isinstance(when, datetime) else ""
        lines.append(f"- {r['fact']}{tags}" + (f" (remembered {date})" if date else ""))
    return "\n".join(lines)
