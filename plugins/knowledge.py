"""The ``knowledge`` toolkit: ``knowledge.search`` over the workspace's ingested documents.

Documents get in with ``workbench knowledge add [PATH...]`` (see
:mod:`workbench.knowledge`), which chunks them into LanceDB under
``<workspace>/.workbench/lancedb``. Settings (``toolkits: knowledge:`` in
``workbench.yaml``), all optional::

    toolkits:
      knowledge:
        sources: [docs]   # search only these sources (default: all)
        refresh: true     # sync the configured sources before a search whenever their
                          # files changed (default: false)
        timeout: 120      # seconds a search (with its refresh) may take
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from workbench.tools import FunctionToolkit, ToolError, tool

__all__ = ["KnowledgeToolkit", "format_hits"]

log = logging.getLogger("workbench.knowledge")


def format_hits(hits: list[Any]) -> str:
    """Hits as numbered passages, each under its file and heading."""
    parts = []
    for n, hit in enumerate(hits, start=1):
        where = f"{hit.path} - {hit.heading}" if hit.heading else hit.path
        also = getattr(hit, "also", None)
        same = f"\n(the same passage is also in: {', '.join(also)})" if also else ""
        parts.append(f"[{n}] {where} (score {hit.score:.3g})\n{hit.text}{same}")
    return "\n\n".join(parts)


class KnowledgeToolkit(FunctionToolkit):
    """Search the workspace's knowledge base: ``search(query, limit=5)``. Read-only."""

    def __init__(self, name: str, config: dict[str, Any], root: Path) -> None:
        super().__init__(name, config, root)
        sources = config.get("sources")
        self.sources: list[str] | None = [str(s) for s in sources] if sources is not None else None
        """Only these sources are searched (``None``: all)."""
        self.refresh: bool = bool(config.get("refresh", False))
        """Sync the workspace's sources before a search, whenever their files changed (a
        walk and a ``stat`` per file tells; unchanged files are not read again)."""
        self._synced: str | None = None
        self._lock = asyncio.Lock()
        timeout = float(config.get("timeout") or 120)
        self.add(
            tool(
                name="search",
                timeout=timeout,
                description=self._description(),
                idempotent=True,
            )(self.search)
        )

    def _description(self) -> str:
        base = (
            "Search the workspace's knowledge base (its documents, notes and code) and return "
            "the passages that best match, with the file each comes from."
        )
        try:
            from workbench.workspace import load_workspace

            ws = load_workspace(self.root) if (self.root / "workbench.yaml").is_file() else None
        except Exception:  # the description is a nicety; a broken file is reported elsewhere
            return base
        if ws is None or not ws.knowledge:
            return base
        listed = [
            f"{n} ({s.description})" if s.description else n
            for n, s in ws.knowledge.items()
            if self.sources is None or n in self.sources
        ]
        return f"{base} Sources: {', '.join(listed)}." if listed else base

    async def search(self, query: str, limit: int = 5) -> str:
        """Search the knowledge base for passages about a query.

        Args:
            query: What to look for: keywords or a question.
            limit: How many passages to return (1 to 20).
        """
        from workbench.knowledge import KnowledgeError, data_dir
        from workbench.knowledge import search as search_knowledge

        if not query.strip():
            raise ToolError("query is empty: say what to look for")
        limit = max(1, min(int(limit), 20))
        if self.refresh:
            async with self._lock:
                await asyncio.to_thread(self._sync_if_changed)
        try:
            hits = await asyncio.to_thread(
                search_knowledge, self.root, query, limit, sources=self.sources
            )
        except KnowledgeError as exc:
            raise ToolError(str(exc)) from exc
        if hits:
            return format_hits(hits)
        if not data_dir(self.root).is_dir():
            return (
                "The knowledge base is empty: nothing has been added yet (run "
                "`workbench knowledge add PATH` or list sources under knowledge: in "
                "workbench.yaml and run `workbench knowledge add`)."
            )
        return f"No passage matches {query!r}."

    def _sync_if_changed(self) -> None:
        from workbench.knowledge import KnowledgeError, ingest, sources_state
        from workbench.workspace import WorkspaceError, load_workspace

        try:
            ws = load_workspace(self.root)
        except WorkspaceError as exc:
            raise ToolError(f"refreshing the knowledge base failed: {exc}") from exc
        # Taken before the sync: a file changed while it runs is seen by the next search.
        state = sources_state(self.root, ws.knowledge)
        if state == self._synced:
            return
        try:
            if ws.knowledge:
                report = ingest(self.root, ws.knowledge, ())
                log.info(
                    "knowledge refreshed: %d added, %d unchanged, %d removed",
                    len(report.added_files),
                    len(report.skipped_unchanged),
                    len(report.removed),
                )
        except KnowledgeError as exc:
            raise ToolError(f"refreshing the knowledge base failed: {exc}") from exc
        self._synced = state
