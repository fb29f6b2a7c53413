"""The ``mcp`` toolkit: the tools of an MCP server, as ``<server>.<tool>``.

One :class:`McpToolkit` serves one server from ``workbench.yaml``::

    mcp:
      time: { command: mcp-server-time }
      git:  { command: mcp-server-git, args: [--repository, .], timeout: 20 }
      docs: { url: "http://127.0.0.1:8000/mcp", headers: { Authorization: "Bearer ${TOKEN}" } }

A ``command`` is started as a subprocess speaking MCP over stdio (in the workspace folder
unless ``cwd`` says otherwise; ``env`` is added to a minimal inherited environment); a
``url`` is reached over streamable HTTP (or the older SSE transport when the path ends in
``/sse``). Both go through the official ``mcp`` SDK.

How it lives:

- The server starts on first use (listing its tools or calling one), not when the
  workspace opens.
- The SDK's transport and session are async context managers whose anyio cancel scopes
  must be entered and left by the same task, so each connection is owned by one
  background task that enters them, keeps them open and leaves them when told to stop.
  Calls hold the session object and send their requests through it.
- Every failure is a :class:`~workbench.tools.ToolError` that names the server and, for a
  stdio server, quotes the tail of its stderr (which goes to a temporary file, never to
  the terminal): a command that cannot start or exits at once, a server that dies during
  a call, a call that gets no answer within ``timeout`` seconds (default 30; the server
  is then stopped, killed if it does not exit), a protocol error. Starting gets
  ``startup_timeout`` seconds (default: ``timeout``, but at least 30).
- After a failure the next call starts the server again.
- ``notifications/tools/list_changed`` marks the tool list stale; the next
  :meth:`McpToolkit.list_tools` asks the server again. Otherwise the list is cached.
- :meth:`McpToolkit.aclose` stops the server: stdin is closed, then the SDK escalates
  to SIGTERM and SIGKILL of the server's process group if it does not exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from workbench.tools import Tool, ToolContext, ToolError, Toolkit

if TYPE_CHECKING:
    from mcp.client.session import ClientSession

__all__ = ["DEFAULT_STARTUP_TIMEOUT", "DEFAULT_TIMEOUT", "McpTool", "McpToolkit", "result_text"]

log = logging.getLogger("workbench.mcp")

DEFAULT_TIMEOUT = 30.0
"""Seconds to wait for each call, unless ``timeout`` says."""

DEFAULT_STARTUP_TIMEOUT = 30.0
"""The least number of seconds a server gets to start (``startup_timeout`` overrides)."""

_TAIL_LINES = 20
_TAIL_CHARS = 4000
_ERRLOG_MAX = 1 << 20
"""Bytes of a stdio server's stderr kept on disk before the file is cut to its tail."""
_ERRLOG_KEEP = 64 << 10
"""Bytes of stderr kept when it is cut."""
_STOP_GRACE = 10.0
"""Seconds :meth:`McpToolkit.aclose` waits for a connection's owner task to wind down
(the SDK's own escalation takes at most about 4 s: stdin close, SIGTERM, SIGKILL)."""


class McpTool(Tool):
    """A tool of an MCP server; :meth:`call` forwards to the server's ``tools/call``."""

    def __init__(
        self, toolkit: McpToolkit, remote_name: str, description: str, schema: dict[str, Any]
    ) -> None:
        super().__init__(
            f"{toolkit.name}.{remote_name}",
            description,
            schema,
            # The toolkit applies the server's timeout itself, so it can stop the server
            # and say what its stderr said; no second, shorter timer around it.
            timeout=None,
            source=f"mcp {toolkit.name}",
        )
        self.remote_name = remote_name
        """The tool's name on the server (without the ``<server>.`` prefix)."""
        self._toolkit = toolkit

    async def call(self, arguments: dict[str, Any], ctx: ToolContext) -> Any:
        return await self._toolkit.call_tool(self.remote_name, arguments)


def result_text(result: Any) -> str:
    """A ``CallToolResult``'s content blocks as the text a model reads.

    Text blocks are joined with blank lines; embedded text resources give their text;
    images, audio, blobs and resource links are named, not inlined. With no content but
    ``structuredContent``, that is returned as JSON.
    """
    parts: list[str] = []
    for block in getattr(result, "content", None) or []:
        kind = getattr(block, "type", "")
        if kind == "text":
            parts.append(block.text)
        elif kind in ("image", "audio"):
            parts.append(f"[{kind}: {block.mime_type}, {len(block.data) * 3 // 4} bytes]")
        elif kind == "resource_link":
            parts.append(f"[resource: {block.uri}]")
        elif kind == "resource":
            res = block.resource
            text = getattr(res, "text", None)
            parts.append(
                text if text is not None else f"[resource: {res.uri} ({res.mime_type or 'binary'})]"
            )
        else:
            parts.append(f"[{kind or 'unknown'} content]")
    structured = getattr(result, "structured_content", None)
    if not parts and structured is not None:
        return json.dumps(structured, ensure_ascii=False, default=str)
    return "\n\n".join(parts)


class _Connection:
    """One session with one server process (or HTTP endpoint), owned by one task.

    The owner task enters the transport and the session, initializes, then waits until it
    is told to stop or the transport ends; it then leaves them (which stops the process).
    """

    def __init__(self, toolkit: McpToolkit) -> None:
        self._toolkit = toolkit
        self.server = toolkit.name
        self.session: ClientSession | None = None
        """The initialized session while the connection is up."""
        self.lost: str | None = None
        """Why the connection ended on its own (the server exited, the stream closed)."""
        self.task: asyncio.Task[None] | None = None
        """The owner task."""
        self._wake = asyncio.Event()
        self._stopping = False
        self._init_scope: Any = None
        self._errlog: IO[str] | None = None
        self._appending = False
        self._final_tail = ""
        self._loop = asyncio.get_running_loop()

    @property
    def alive(self) -> bool:
        """Whether calls can use the session."""
        return (
            self.session is not None
            and self.lost is None
            and not self._stopping
            and self.task is not None
            and not self.task.done()
        )

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the owner task and wait until the session is initialized.

        Raises:
            ToolError: the server did not start, with its stderr tail.
        """
        ready: asyncio.Future[None] = self._loop.create_future()
        # Retrieve the outcome even if nobody awaits it any more (a cancelled start).
        ready.add_done_callback(lambda f: f.cancelled() or f.exception())
        self.task = asyncio.create_task(self._own(ready), name=f"mcp server {self.server}")
        try:
            await asyncio.shield(ready)
        except asyncio.CancelledError:
            self.request_stop()
            raise
        except ToolError:
            self.request_stop()
            raise
        except Exception as exc:  # anything the owner reported
            self.request_stop()
            raise ToolError(
                f"MCP server {self.server!r} failed to start: {_describe(exc)}{self.tail_note()}"
            ) from exc

    def request_stop(self) -> None:
        """Tell the owner task to leave the session and stop the server (returns at once)."""
        self._stopping = True
        self._wake.set()
        scope = self._init_scope
        if scope is not None:
            scope.cancel()

    async def wait_closed(self, timeout: float = _STOP_GRACE) -> None:
        """Wait for the owner task to finish; cancel it if it takes longer than ``timeout``."""
        task = self.task
        if task is None or task.done():
            if task is not None and not task.cancelled():
                task.exception()  # retrieved, so asyncio never logs it as unhandled
            return
        done, _ = await asyncio.wait({task}, timeout=timeout)
        if not done:
            log.warning("MCP server %s did not stop within %gs; cancelling", self.server, timeout)
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        elif not task.cancelled():
            task.exception()

    async def _own(self, ready: asyncio.Future[None]) -> None:
        import anyio
        from mcp.client.session import ClientSession

        started = time.monotonic()
        timeout = self._toolkit.startup_timeout
        try:
            async with contextlib.AsyncExitStack() as stack:
                read, write = await self._open_transport(stack)
                # The session reads through a relay, so this task learns when the server's
                # stream ends (the process exited) even while no call is in flight.
                send, recv = anyio.create_memory_object_stream[Any](0)
                stack.callback(send.close)
                stack.callback(recv.close)
                relay_group = await stack.enter_async_context(anyio.create_task_group())
                relay_group.start_soon(self._relay, read, send)
                stack.callback(relay_group.cancel_scope.cancel)
                session = await stack.enter_async_context(
                    ClientSession(
                        recv,
                        write,
                        message_handler=self._toolkit._on_message,
                        logging_callback=self._toolkit._on_log,
                    )
                )
                remaining = max(0.0, timeout - (time.monotonic() - started))
                self._init_scope = anyio.CancelScope(deadline=anyio.current_time() + remaining)
                if self._stopping:
                    self._init_scope.cancel()
                with self._init_scope:
                    await session.initialize()
                scope, self._init_scope = self._init_scope, None
                if scope.cancelled_caught:
                    if self._stopping:
                        raise ToolError(f"MCP server {self.server!r} was stopped while starting")
                    raise ToolError(
                        f"MCP server {self.server!r} did not answer within {timeout:g}s of "
                        f"starting; it was stopped{self.tail_note()}"
                    )
                self.session = session
                ready.set_result(None)
                await self._wake.wait()
                self.session = None
        except BaseException as exc:
            self.session = None
            if not ready.done():
                if isinstance(exc, asyncio.CancelledError):
                    ready.cancel()
                else:
                    ready.set_exception(_unwrap(exc))
            elif not isinstance(exc, asyncio.CancelledError | GeneratorExit):
                log.warning("MCP server %s: connection ended with %s", self.server, _describe(exc))
            if not isinstance(exc, Exception):
                raise
        finally:
            self.session = None
            self._close_errlog()
            log.info("MCP server %s stopped", self.server)

    async def _relay(self, source: Any, sink: Any) -> None:
        import anyio

        try:
            async with sink:
                async for item in source:
                    if isinstance(item, Exception):
                        log.debug("MCP server %s transport error: %r", self.server, item)
                    await sink.send(item)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream):
            pass
        except Exception as exc:
            log.debug("MCP server %s relay ended: %r", self.server, exc)
        finally:
            if not self._stopping and self.lost is None:
                self.lost = (
                    "the server closed the connection"
                    if self._toolkit.url is not None
                    else "the server's process exited"
                )
                log.warning("MCP server %s: %s%s", self.server, self.lost, self.tail_note())
            self._wake.set()

    async def _open_transport(self, stack: contextlib.AsyncExitStack) -> tuple[Any, Any]:
        tk = self._toolkit
        if tk.url is not None:
            from mcp.shared._httpx_utils import create_mcp_http_client

            if tk.url.rstrip("/").endswith("/sse"):
                from mcp.client.sse import sse_client

                streams = await stack.enter_async_context(
                    sse_client(tk.url, headers=dict(tk.headers), timeout=tk.timeout)
                )
            else:
                from mcp.client.streamable_http import streamable_http_client

                client = await stack.enter_async_context(
                    create_mcp_http_client(headers=dict(tk.headers))
                )
                streams = await stack.enter_async_context(
                    streamable_http_client(tk.url, http_client=client)
                )
            return streams[0], streams[1]

        from mcp.client.stdio import StdioServerParameters, stdio_client

        assert tk.command is not None
        self._errlog = tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace")
        # O_APPEND on the open file (which the server's stderr shares): its writes always
        # land at the end, so the file can be cut to its tail while it runs (trim_errlog).
        with contextlib.suppress(ImportError, OSError):  # POSIX only; else never cut
            import fcntl

            fd = self._errlog.fileno()
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_APPEND)
            self._appending = True
        params = StdioServerParameters(
            command=tk.resolved_command(),
            args=list(tk.args),
            env=dict(tk.env) or None,
            cwd=tk.cwd,
            encoding_error_handler="replace",
        )
        try:
            streams = await stack.enter_async_context(stdio_client(params, errlog=self._errlog))
        except FileNotFoundError as exc:
            raise ToolError(
                f"MCP server {self.server!r} failed to start: command not found: {tk.command!r}"
                + (f" (cwd {tk.cwd})" if tk.cwd else "")
            ) from exc
        except PermissionError as exc:
            raise ToolError(
                f"MCP server {self.server!r} failed to start: {tk.command!r} is not executable"
            ) from exc
        except OSError as exc:
            raise ToolError(f"MCP server {self.server!r} failed to start: {exc}") from exc
        return streams[0], streams[1]

    # -- stderr ---------------------------------------------------------------------------

    def trim_errlog(self) -> bool:
        """Cut the stderr file to its last :data:`_ERRLOG_KEEP` bytes once it passes
        :data:`_ERRLOG_MAX`, so a chatty server that runs for days does not fill the disk.
        A line the server writes while the file is being cut may be lost. True if cut."""
        f = self._errlog
        if f is None or not self._appending:
            return False
        try:
            fd = f.fileno()
            size = os.fstat(fd).st_size
            if size <= _ERRLOG_MAX:
                return False
            kept = os.pread(fd, _ERRLOG_KEEP, size - _ERRLOG_KEEP)
            os.ftruncate(fd, 0)
            os.write(fd, kept)  # O_APPEND: at the new end, as the server's next line is
        except (OSError, ValueError):
            return False
        log.debug("MCP server %s: stderr cut from %d to %d bytes", self.server, size, len(kept))
        return True

    def tail(self) -> str:
        """The last lines the server wrote to stderr ("" for HTTP or a silent server)."""
        f = self._errlog
        if f is None:
            return self._final_tail
        try:
            fd = f.fileno()
            size = os.fstat(fd).st_size
            start = max(0, size - _TAIL_CHARS)
            # pread: the server shares this file's offset, which must not move under it.
            data = os.pread(fd, size - start, start).decode("utf-8", "replace")
        except (OSError, ValueError):
            return self._final_tail
        lines = data.splitlines()
        if start > 0 and lines:
            lines = lines[1:]  # the first line is probably cut
        return "\n".join(line.rstrip() for line in lines[-_TAIL_LINES:]).strip()

    def tail_note(self) -> str:
        """The stderr tail as a paragraph to append to an error message ("" if none)."""
        tail = self.tail()
        if not tail:
            return ""
        indented = "\n".join(f"  {line}" for line in tail.splitlines())
        return f"\nserver stderr (last lines):\n{indented}"

    def _close_errlog(self) -> None:
        if self._errlog is not None:
            self._final_tail = self.tail()
            if self._final_tail:
                log.debug("MCP server %s stderr tail:\n%s", self.server, self._final_tail)
            with contextlib.suppress(OSError):
                self._errlog.close()
            self._errlog = None


class McpToolkit(Toolkit):
    """The tools of one MCP server, named ``<server>.<tool>`` with the server's schemas.

    Config keys (the server's table in ``workbench.yaml``): ``command``, ``args``, ``env``,
    ``cwd`` for a stdio server, or ``url`` and ``headers`` for an HTTP one; ``timeout``
    (seconds, default 30) for each call; ``startup_timeout`` (default ``timeout``, at least
    30) for starting. ``name``, when present, overrides the toolkit name (the server's
    name under ``mcp:``).
    """

    def __init__(self, name: str, config: dict[str, Any], root: Path) -> None:
        name = str(config.get("name") or name)
        super().__init__(name, config, root)
        self.command: str | None = config.get("command") or None
        """The program of a stdio server."""
        self.args: list[str] = [str(a) for a in config.get("args") or []]
        """Its arguments."""
        self.env: dict[str, str] = {str(k): str(v) for k, v in (config.get("env") or {}).items()}
        """Extra environment variables for it."""
        cwd = config.get("cwd")
        self.cwd: Path | None = (root / cwd) if cwd else (root if root.is_dir() else None)
        """Its working folder (the workspace folder by default)."""
        self.url: str | None = config.get("url") or None
        """The endpoint of an HTTP server."""
        self.headers: dict[str, str] = {
            str(k): str(v) for k, v in (config.get("headers") or {}).items()
        }
        """HTTP headers sent to it."""
        self.timeout: float = float(config.get("timeout") or DEFAULT_TIMEOUT)
        """Seconds to wait for each call (and for the tool list)."""
        self.startup_timeout: float = float(
            config.get("startup_timeout") or max(self.timeout, DEFAULT_STARTUP_TIMEOUT)
        )
        """Seconds to wait for the server to start and answer ``initialize``: ``timeout``,
        but at least 30 (a cold start under load, or a first ``npx``/``uvx`` download, is
        slower than any call should be)."""
        if (self.command is None) == (self.url is None):
            raise ValueError(f"MCP server {name!r} needs exactly one of 'command' or 'url'")
        self._conn: _Connection | None = None
        self._retiring: set[_Connection] = set()
        self._lock: asyncio.Lock | None = None
        self._tools: list[Tool] | None = None
        self._tools_from: _Connection | None = None
        self._stale = False
        self._closed = False
        self.on_tools_changed: Callable[[], None] | None = None
        """Called when the server says its tool list changed (the list itself is re-read by
        the next :meth:`list_tools`)."""

    # -- Toolkit --------------------------------------------------------------------------

    async def list_tools(self) -> list[Tool]:
        """The server's tools (started on first use; asked again after a change notice).

        Raises:
            ToolError: the server cannot be reached and no earlier list is known.
        """
        if (
            self._tools is not None
            and not self._stale
            and self._conn is not None
            and self._conn.alive
        ):
            return list(self._tools)
        try:
            conn = await self._connection()
            self._stale = False
            self._tools = await self._fetch_tools(conn)
            self._tools_from = conn
        except ToolError as exc:
            if self._tools is None:
                raise
            # Calls will report the failure; the model still sees what it can ask for.
            log.warning("MCP server %s: using the last known tool list: %s", self.name, exc)
        return list(self._tools)

    async def aclose(self) -> None:
        """Stop the server (and any connection still winding down)."""
        self._closed = True
        conns = [c for c in (self._conn, *self._retiring) if c is not None]
        self._conn = None
        self._retiring.clear()
        for c in conns:
            c.request_stop()
        await asyncio.gather(*(c.wait_closed() for c in conns), return_exceptions=True)

    # -- calls ----------------------------------------------------------------------------

    async def call_tool(self, tool: str, arguments: dict[str, Any]) -> str:
        """Call ``tool`` on the server and return its content as text.

        Raises:
            ToolError: the tool reported an error (``isError``), the server failed to start,
                died during the call, or did not answer within the timeout, or the call was
                refused (unknown tool, bad arguments).
        """
        from mcp.shared.exceptions import MCPError
        from mcp_types import CONNECTION_CLOSED

        conn = await self._connection()
        session = conn.session
        if session is None:  # stopped between start and here
            raise ToolError(f"MCP server {self.name!r} is not running")
        conn.trim_errlog()
        try:
            async with asyncio.timeout(self.timeout):
                result = await session.call_tool(tool, arguments)
        except TimeoutError:
            self._retire(conn)
            stopped = "connection was closed" if self.url else "server was stopped"
            raise ToolError(
                f"MCP server {self.name!r}: {tool} did not answer within {self.timeout:g}s; the "
                f"{stopped} and starts again on the next call{conn.tail_note()}"
            ) from None
        except MCPError as exc:
            if exc.code == CONNECTION_CLOSED or conn.lost is not None:
                self._retire(conn)
                raise ToolError(
                    f"MCP server {self.name!r} exited during {tool} ({exc.message.lower()}); it "
                    f"starts again on the next call{conn.tail_note()}"
                ) from None
            raise ToolError(f"MCP server {self.name!r} refused {tool}: {exc.message}") from None
        except ToolError:
            raise
        except Exception as exc:
            if conn.lost is not None:
                self._retire(conn)
                raise ToolError(
                    f"MCP server {self.name!r} exited during {tool}; it starts again on the next "
                    f"call{conn.tail_note()}"
                ) from exc
            raise ToolError(f"MCP server {self.name!r}: {tool} failed: {_describe(exc)}") from exc
        text = result_text(result)
        if getattr(result, "is_error", False):
            raise ToolError(text or f"{tool} reported an error without a message")
        return text

    # -- internals ------------------------------------------------------------------------

    async def _connection(self) -> _Connection:
        """The live connection, started (again) if there is none."""
        if self._closed:
            raise ToolError(f"MCP server {self.name!r}: the toolkit is closed")
        conn = self._conn
        if conn is not None and conn.alive and conn._loop is asyncio.get_running_loop():
            return conn
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            await _import_sdk()
            conn = self._conn
            if conn is not None and conn.alive:
                return conn
            if conn is not None:
                if conn.lost:
                    log.info("MCP server %s: restarting (%s)", self.name, conn.lost)
                self._retire(conn)
            self._reap()
            conn = _Connection(self)
            log.info("MCP server %s: starting", self.name)
            try:
                await conn.start()
            except BaseException:
                self._retiring.add(conn)
                raise
            self._conn = conn
            self._stale = True  # a new process may offer other tools
            return conn

    async def _fetch_tools(self, conn: _Connection) -> list[Tool]:
        import mcp_types as types
        from mcp.shared.exceptions import MCPError

        session = conn.session
        if session is None:
            raise ToolError(f"MCP server {self.name!r} is not running")
        tools: list[Tool] = []
        cursor: str | None = None
        try:
            async with asyncio.timeout(self.timeout):
                for _ in range(100):  # a server whose cursor never ends cannot hang us
                    params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
                    page = await session.list_tools(params=params)
                    for t in page.tools:
                        schema = dict(t.input_schema or {})
                        schema.setdefault("type", "object")
                        schema.setdefault("properties", {})
                        schema.pop("title", None)
                        tools.append(McpTool(self, t.name, t.description or t.title or "", schema))
                    cursor = page.next_cursor
                    if not cursor:
                        break
        except TimeoutError:
            self._retire(conn)
            raise ToolError(
                f"MCP server {self.name!r} did not list its tools within {self.timeout:g}s"
                f"{conn.tail_note()}"
            ) from None
        except MCPError as exc:
            if conn.lost is not None or exc.code == types.CONNECTION_CLOSED:
                self._retire(conn)
            raise ToolError(
                f"MCP server {self.name!r} failed to list its tools: {exc.message}{conn.tail_note()}"
            ) from None
        return tools

    def _retire(self, conn: _Connection) -> None:
        """Stop ``conn`` in the background; the next call starts a new one."""
        conn.request_stop()
        if self._conn is conn:
            self._conn = None
        self._retiring.add(conn)

    def _reap(self) -> None:
        """Forget retired connections whose owner task has finished."""
        for c in list(self._retiring):
            if c.task is not None and c.task.done():
                self._retiring.discard(c)
                if not c.task.cancelled():
                    c.task.exception()  # retrieved, so asyncio never reports it

    async def _on_message(self, message: Any) -> None:
        import mcp_types as types

        if isinstance(message, types.ToolListChangedNotification):
            log.info("MCP server %s: its tool list changed", self.name)
            self._stale = True
            if self.on_tools_changed is not None:
                try:
                    self.on_tools_changed()
                except Exception:
                    log.exception("on_tools_changed callback failed")
        elif isinstance(message, Exception):
            log.debug("MCP server %s: transport error: %r", self.name, message)

    async def _on_log(self, params: Any) -> None:
        level = {
            "debug": logging.DEBUG,
            "info": logging.INFO,
            "notice": logging.INFO,
            "warning": logging.WARNING,
        }.get(str(params.level), logging.ERROR)
        log.log(level, "MCP server %s says: %s", self.name, params.data)

    def resolved_command(self) -> str:
        """The command as a path when it can be found: on ``PATH``, or next to this
        Python (so a server installed in Workbench's own environment is found even when
        that environment is not on ``PATH``)."""
        command = self.command or ""
        if os.sep in command or (os.altsep and os.altsep in command):
            path = Path(command)
            if not path.is_absolute() and self.cwd is not None:
                path = self.cwd / path
            return str(path)
        found = shutil.which(command)
        if found:
            return found
        beside = Path(sys.executable).parent / command
        if beside.is_file() and os.access(beside, os.X_OK):
            return str(beside)
        return command


_sdk_imported = False


async def _import_sdk() -> None:
    """Import the SDK in a thread the first time: it takes about a second, which would
    otherwise freeze the event loop (and the TUI drawn by it)."""
    global _sdk_imported
    if _sdk_imported:
        return

    def load() -> None:
        import mcp.client.session  # noqa: F401
        import mcp.client.sse  # noqa: F401
        import mcp.client.stdio  # noqa: F401
        import mcp.client.streamable_http  # noqa: F401
        import mcp.shared.exceptions  # noqa: F401
        import mcp_types  # noqa: F401

    await asyncio.to_thread(load)
    _sdk_imported = True


def _unwrap(exc: BaseException) -> BaseException:
    """The one interesting exception inside (nested) exception groups."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    if isinstance(exc, BaseExceptionGroup):
        for sub in exc.exceptions:
            if isinstance(sub, ToolError):
                return sub
    return exc


def _describe(exc: BaseException) -> str:
    exc = _unwrap(exc)
    from_mcp = getattr(exc, "error", None)
    message = getattr(from_mcp, "message", None) or str(exc) or type(exc).__name__
    if type(exc).__name__ in ("MCPError",):
        return message
    return f"{type(exc).__name__}: {message}" if not isinstance(exc, ToolError) else message
