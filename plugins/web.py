"""The ``web`` toolkit: web and news search through ``ddgs`` (the maintained successor of
``duckduckgo-search``).

``ddgs`` is imported on the first search, not when the toolkit is listed. A search runs in
a daemon thread under a hard overall ``timeout``: without a network it fails with a clear
error within that time and never hangs the run (a stuck thread is abandoned, not awaited).

Config (``tools: web:`` in ``workbench.yaml``; all optional):

- ``timeout`` (10): seconds for the whole search.
- ``proxy``: a proxy URL for ddgs (else ddgs reads ``DDGS_PROXY``).
- ``region`` (``us-en``), ``safesearch`` (``moderate``), ``backend`` (``auto``): passed to ddgs.
"""

from __future__ import annotations

import asyncio
import functools
import math
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from workbench.tools import FunctionToolkit, ToolError, tool

__all__ = ["WebToolkit"]

T = TypeVar("T")

MAX_RESULTS = 25
"""The most results one search returns."""


class _MissingDdgs(Exception):
    pass


async def run_in_daemon_thread(fn: Callable[[], T], timeout: float) -> T:
    """Run blocking ``fn`` in a daemon thread and await it for at most ``timeout`` seconds.

    Unlike :func:`asyncio.to_thread`, a call that never returns is abandoned: the thread is
    a daemon outside the loop's executor, so neither the loop's shutdown nor the
    interpreter's exit waits for it.

    Raises:
        TimeoutError: ``fn`` did not finish in time.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def deliver(apply: Callable[[], None]) -> None:
        def settle() -> None:
            if not future.done():
                apply()

        try:
            loop.call_soon_threadsafe(settle)
        except RuntimeError:  # the loop is closed: nobody waits for the answer any more
            pass

    def runner() -> None:
        try:
            result = fn()
        except Exception as exc:
            # partial binds now: ``exc`` is unbound when the except block ends.
            deliver(functools.partial(future.set_exception, exc))
        else:
            deliver(functools.partial(future.set_result, result))

    threading.Thread(target=runner, name="workbench-web-search", daemon=True).start()
    return await asyncio.wait_for(future, timeout)


class WebToolkit(FunctionToolkit):
    """Web search: ``search`` (pages) and ``news`` (recent articles), through ddgs."""

    def __init__(self, name: str, config: dict[str, Any], root: Path) -> None:
        super().__init__(name, config, root)
        self.timeout = float(config.get("timeout", 10.0))
        """Seconds for a whole search."""
        proxy = config.get("proxy")
        self.proxy: str | None = str(proxy) if proxy else None
        """A proxy for ddgs; ``None`` lets ddgs read ``DDGS_PROXY``."""
        self.region = str(config.get("region", "us-en"))
        self.safesearch = str(config.get("safesearch", "moderate"))
        self.backend = str(config.get("backend", "auto"))
        backstop = self.timeout + 5.0  # the search enforces its own timeout
        self.add(tool(name="search", timeout=backstop, idempotent=True)(self.search))
        self.add(tool(name="news", timeout=backstop, idempotent=True)(self.news))

    async def search(self, query: str, max_results: int = 5) -> str:
        """Search the web; returns titles, URLs and snippets.

        Args:
            query: What to search for.
            max_results: How many results to return (1 to 25).
        """
        results = await self._search("text", query, max_results)
        if not results:
            return f"no results for {query!r}"
        out = []
        for i, r in enumerate(results, 1):
            out.append(f"{i}. {r.get('title', '').strip()}\n   {r.get('href', '')}")
            if body := str(r.get("body", "")).strip():
                out.append(f"   {body}")
        return "\n".join(out)

    async def news(self, query: str, max_results: int = 5) -> str:
        """Search recent news; returns headlines, sources, dates, URLs and summaries.

        Args:
            query: What to search for.
            max_results: How many articles to return (1 to 25).
        """
        results = await self._search("news", query, max_results)
        if not results:
            return f"no news for {query!r}"
        out = []
        for i, r in enumerate(results, 1):
            meta = ", ".join(str(r[k]) for k in ("source", "date") if r.get(k))
            out.append(f"{i}. {str(r.get('title', '')).strip()}" + (f" ({meta})" if meta else ""))
            out.append(f"   {r.get('url', '')}")
            if body := str(r.get("body", "")).strip():
                out.append(f"   {body}")
        return "\n".join(out)

    async def _search(self, kind: str, query: str, max_results: int) -> list[dict[str, Any]]:
        if not query.strip():
            raise ToolError("query must not be empty")
        n = min(max(max_results, 1), MAX_RESULTS)
        inner_timeout = max(1, math.ceil(self.timeout))

        def work() -> list[dict[str, Any]]:
            try:
                from ddgs import DDGS
            except ImportError as exc:
                raise _MissingDdgs(str(exc)) from exc
            client = DDGS(proxy=self.proxy, timeout=inner_timeout)
            found: list[dict[str, Any]] = getattr(client, kind)(
                query,
                max_results=n,
                region=self.region,
                safesearch=self.safesearch,
                backend=self.backend,
            )
            return found

        try:
            return await run_in_daemon_thread(work, self.timeout)
        except TimeoutError:
            raise ToolError(
                f"web search failed: no network? no answer within {self.timeout:g}s"
            ) from None
        except _MissingDdgs as exc:
            raise ToolError(
                f"web search needs the package 'ddgs': pip install ddgs ({exc})"
            ) from None
        except Exception as exc:
            reason = str(exc) or type(exc).__name__
            if reason.strip().rstrip(".").lower() == "no results found":
                return []
            raise ToolError(f"web search failed: no network? {reason}") from None
