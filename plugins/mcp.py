"""The ``mcp`` toolkit: the tools of an MCP server, as ``<server>.<tool>``.

One :class:`McpToolkit` serves one server from ``workbench.yaml``::

    mcp:
      time: { command: mcp-server-time }
      git:  { command: mcp-server-git, args: [--repository, .], timeout: 20, required: true }
      docs: { url: "http://127.0.0.1:8000/mcp", headers: { Authorization: "Bearer ${TOKEN}" } }

A ``command`` is started as a subprocess speaking MCP over stdio (in the workspace folder
unless ``cwd`` says otherwise; ``env`` is added to a minimal inherited environment); a
``url`` is reached over streamable HTTP (or the older SSE transport when the path ends in
``/sse``). All of it goes through the official ``mcp`` SDK (``ClientSession`` over
``stdio_client``, ``streamable_http_client`` or ``sse_client``).

How it lives:

- :meth:`McpToolkit.start` starts the server in the background and returns at once; the
  engine warms every configured server concurrently, and an agent waits only for the
  servers its tools need. :attr:`McpToolkit.status` says where it stands (``idle``,
  ``starting``, ``ready``, ``failed`` with the reason and the stderr tail);
  :attr:`McpToolkit.on_status` hears every change.
- The SDK's transport and session are async context managers whose anyio cancel scopes
  must be entered and left by the same task, so each connection is owned by one
  background task that enters them, keeps them open and leaves them when told to stop.
  Calls hold the session object and send their requests through it.
- A stdio server runs under a guard (:mod:`plugins._mcp_guard`) that leads its process
  group: when Workbench dies, even by SIGKILL, Linux's parent-death signal reaches the guard
  and the whole group (the server and its children) is stopped.
- Every failure is a :class:`~workbench.tools.ToolError` that names the server and, for a
  stdio server, quotes the tail of its stderr (which goes to a temporary file, never to
  the terminal); for an HTTP server, the status and URL of a failed request. A call that
  gets no answer within ``timeout`` seconds (default 30; progress notifications restart
  the clock, up to ten times ``timeout`` in all) stops the server, killed if it does not
  exit. Starting gets ``startup_timeout`` seconds (default: ``timeout``, but at least 30).
- After a failure the next use starts the server again (a server that failed to start is
  tried again at most every ``retry_after`` seconds, default 10; until then the last error
  is reported at once).
- An HTTP session the server no longer knows (a 404 for a request that carried the
  session id: the server restarted, or expired the session) is replaced by a new session
  and the call is sent once more, as the MCP specification says.
- ``notifications/tools/list_changed`` marks the tool list stale; the next
  :meth:`McpToolkit.list_tools` asks the server again. Otherwise the list is cached. Tools
  that require MCP tasks (``execution.taskSupport: required``) are not offered: Workbench
  does not run tasks.
- Results: text blocks are joined; images and audio come with the text as
  :class:`~workbench.tools.Media` (models that accept them get them as content parts);
  structured content is kept for the log. Progress notifications reach the running
  call's :attr:`~workbench.tools.ToolContext.progress`; an elicitation (the server asking
  the person for input) goes to :attr:`~workbench.tools.ToolContext.ask`, which the agent
  routes into the approvals queue.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from workbench.tools import (
    Media,
    Tool,
    ToolContext,
    ToolError,
    Toolkit,
    ToolkitState,
    ToolkitStatus,
    ToolOutput,
)

if TYPE_CHECKING:
    from mcp.client.session import ClientSession

__all__ = [
    "DEFAULT_RETRY_AFTER",
    "DEFAULT_STARTUP_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "McpTool",
    "McpToolkit",
    "result_output",
    "result_text",
]

log = logging.getLogger("workbench.mcp")

DEFAULT_TIMEOUT = 30.0
"""Seconds to wait for each call, unless ``timeout`` says."""

DEFAULT_STARTUP_TIMEOUT = 30.0
"""The least number of seconds a server gets to start (``startup_timeout`` overrides)."""

DEFAULT_RETRY_AFTER = 10.0
"""Seconds after a failed start before a use tries the server again (``retry_after``)."""

_TAIL_LINES = 20
_TAIL_CHARS = 4000
_ERRLOG_MAX = 1 << 20
"""Bytes of a stdio server's stderr kept on disk before the file is cut to its tail."""
_ERRLOG_KEEP = 64 << 10
"""Bytes of stderr kept when it is cut."""
_STOP_GRACE = 10.0
"""Seconds :meth:`McpToolkit.aclose` waits for a connection's owner task to wind down
(the SDK's own escalation takes at most about 4 s: stdin close, SIGTERM, SIGKILL)."""
_PROGRESS_STRETCH = 10
"""Progress notifications restart a call's clock, up to this many times ``timeout``."""
_MAX_MEDIA_BYTES = 5 << 20
"""Decoded bytes of images and audio one result may pass on to a model."""
_GUARD = Path(__file__).with_name("_mcp_guard.py")
DEFAULT_MAX_MESSAGE_BYTES = 32 << 20
"""The largest message an HTTP server may send in one server-sent event (the SDK's default,
1 MiB, fails a 2 MB result outright; the result is capped after it arrives)."""


class McpTool(Tool):
    """A tool of an MCP server; :meth:`call` forwards to the server's ``tools/call``."""

    def __init__(
        self,
        toolkit: McpToolkit,
        remote_name: str,
        description: str,
        schema: dict[str, Any],
        output_schema: dict[str, Any] | None = None,
        hints: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            f"{toolkit.name}.{remote_name}",
            description,
            schema,
            # The toolkit applies the server's timeout itself, so it can stop the server
            # and say what its stderr said; no second, shorter timer around it.
            timeout=None,
            source=f"mcp {toolkit.name}",
            # Never idempotent on a server's word: its readOnlyHint / idempotentHint are
            # hints the MCP spec tells clients not to trust, and a resumed run would re-run
            # a call that may have run, unasked. Such a call is offered to a person again.
            idempotent=False,
        )
        self.hints = dict(hints or {})
        """What the server says of the tool (``readOnlyHint``, ``idempotentHint``, ...):
        shown, never acted on."""
        self.remote_name = remote_name
        """The tool's name on the server (without the ``<server>.`` prefix)."""
        self.output_schema = output_schema
        """The schema of its structured content, when it declares one."""
        self._toolkit = toolkit

    async def call(self, arguments: dict[str, Any], ctx: ToolContext) -> Any:
        return await self._toolkit.call_tool(self.remote_name, arguments, ctx)


def _hints(tool: Any) -> dict[str, Any]:
    """A listed tool's annotations (``readOnlyHint`` ...), as the server sent them."""
    annotations = getattr(tool, "annotations", None)
    if annotations is None:
        return {}
    dump = getattr(annotations, "model_dump", None)
    data = dump(by_alias=True, exclude_none=True) if dump is not None else {}
    return data if isinstance(data, dict) else {}


def result_output(result: Any) -> ToolOutput:
    """A ``CallToolResult`` as text, media and structured content.

    Text blocks are joined with blank lines; embedded text resources give their text;
    images and audio are named in the text and returned as :class:`Media` (up to 5 MB in
    all; beyond that they are only named); blobs and resource links are named. With no
    content but ``structuredContent``, that is the text, as JSON.
    """
    out = _blocks_output(getattr(result, "content", None) or [])
    structured = getattr(result, "structured_content", None)
    if not out.text and not out.media and structured is not None:
        out.text = json.dumps(structured, ensure_ascii=False, default=str)
    out.structured = structured
    return out


def _blocks_output(blocks: Any) -> ToolOutput:
    parts: list[str] = []
    media: list[Media] = []
    budget = _MAX_MEDIA_BYTES
    for block in blocks:
        kind = getattr(block, "type", "")
        if kind == "text":
            parts.append(block.text)
        elif kind in ("image", "audio"):
            item = Media(
                kind="image" if kind == "image" else "audio",
                mime_type=block.mime_type,
                data=block.data,
            )
            note = f"[{kind}: {block.mime_type}, {item.size} bytes]"
            if item.size <= budget:
                media.append(item)
                budget -= item.size
            else:
                note = f"[{kind}: {block.mime_type}, {item.size} bytes: too large to pass on]"
            parts.append(note)
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
    return ToolOutput("\n\n".join(parts), media=media)


def result_text(result: Any) -> str:
    """A ``CallToolResult``'s content blocks as the text a model reads (see
    :func:`result_output`)."""
    return result_output(result).text


@dataclass
class _Call:
    """A call in flight: where its progress and its questions go."""

    ctx: ToolContext | None
    deadline: asyncio.Timeout
    timeout: float
    started: float = field(default_factory=time.monotonic)


class _SessionGone(Exception):
    """The HTTP server answered 404 to a request that carried our session id."""


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
        self.http_error: tuple[int, str] | None = None
        """The status and URL of the last HTTP request that failed."""
        self.session_gone = False
        """The server no longer knows our session (HTTP 404 with the session id)."""
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
            and not self.session_gone
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
                f"MCP server {self.server!r} failed to start: {self.describe(exc)}"
                f"{self.tail_note()}"
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
        tk = self._toolkit
        timeout = tk.startup_timeout
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
                        message_handler=tk._on_message,
                        logging_callback=tk._on_log,
                        elicitation_callback=tk._on_elicit,
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
                self._toolkit._connection_lost(self)
            self._wake.set()

    # -- transports -----------------------------------------------------------------------

    def _http_client(
        self,
        headers: dict[str, str] | None = None,
        timeout: Any = None,
        auth: Any = None,
    ) -> Any:
        """An httpx2 client like the SDK's own, which also notes failed requests: their
        status and URL for error messages, and a 404 for our session id."""
        import httpx2
        from mcp.shared._httpx_utils import MCP_DEFAULT_SSE_READ_TIMEOUT, MCP_DEFAULT_TIMEOUT

        async def on_response(response: Any) -> None:
            if response.status_code < 400:
                return
            request = response.request
            url = str(request.url)
            self.http_error = (response.status_code, url)
            if response.status_code == 404 and request.headers.get("mcp-session-id"):
                self.session_gone = True
            log.info("MCP server %s: HTTP %d from %s", self.server, response.status_code, url)

        return httpx2.AsyncClient(
            headers=headers,
            timeout=timeout
            or httpx2.Timeout(MCP_DEFAULT_TIMEOUT, read=MCP_DEFAULT_SSE_READ_TIMEOUT),
            auth=auth,
            event_hooks={"response": [on_response]},
        )

    async def _open_transport(self, stack: contextlib.AsyncExitStack) -> tuple[Any, Any]:
        tk = self._toolkit
        if tk.url is not None:
            if tk.url.rstrip("/").endswith("/sse"):
                from mcp.client.sse import sse_client

                streams = await stack.enter_async_context(
                    sse_client(
                        tk.url,
                        headers=dict(tk.headers),
                        timeout=tk.timeout,
                        httpx_client_factory=self._http_client,
                    )
                )
            else:
                from mcp.client.streamable_http import streamable_http_client

                client = await stack.enter_async_context(self._http_client(dict(tk.headers)))
                streams = await stack.enter_async_context(
                    streamable_http_client(
                        tk.url, http_client=client, max_sse_event_size=tk.max_message_bytes
                    )
                )
            return streams[0], streams[1]

        from mcp.client.stdio import StdioServerParameters, stdio_client

        self._errlog = tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace")
        # O_APPEND on the open file (which the server's stderr shares): its writes always
        # land at the end, so the file can be cut to its tail while it runs (trim_errlog).
        with contextlib.suppress(ImportError, OSError):  # POSIX only; else never cut
            import fcntl

            fd = self._errlog.fileno()
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_APPEND)
            self._appending = True
        try:
            command, args = tk.launch()
            params = StdioServerParameters(
                command=command,
                args=args,
                env=dict(tk.env) or None,
                cwd=tk.cwd,
                encoding_error_handler="replace",
            )
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

    def describe(self, exc: BaseException) -> str:
        """An exception as a message, naming the HTTP status and URL when a request
        failed (the SDK says only "Server returned an error response")."""
        text = _describe(exc)
        if self.http_error is not None:
            status, url = self.http_error
            return f"HTTP {status} from {url} ({text})"
        return text

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
    30) for starting; ``retry_after`` (default 10) between attempts to start a server that
    failed; ``required`` (default false): agents that use the server fail when it does,
    instead of running without its tools; ``max_output``: the characters of a result kept
    (see :func:`workbench.tools.cap_text`); ``max_message_bytes`` (32 MiB): the largest
    message a streamable HTTP server may send. ``name``, when present, overrides the toolkit
    name (the server's name under ``mcp:``).
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
        retry = config.get("retry_after")
        self.retry_after: float = float(DEFAULT_RETRY_AFTER if retry is None else retry)
        """Seconds after a failed start during which uses get the failure at once."""
        self.required: bool = bool(config.get("required", False))
        """Whether agents that use it fail when it does."""
        self.max_message_bytes: int = int(
            config.get("max_message_bytes") or DEFAULT_MAX_MESSAGE_BYTES
        )
        """The largest message a streamable HTTP server may send (in bytes)."""
        if (self.command is None) == (self.url is None):
            raise ValueError(f"MCP server {name!r} needs exactly one of 'command' or 'url'")
        self.output_limit(self.name)  # a bad max_output is a config error now, not at a call
        self._conn: _Connection | None = None
        self._retiring: set[_Connection] = set()
        self._lock: asyncio.Lock | None = None
        self._tools: list[Tool] | None = None
        self._tools_from: _Connection | None = None
        self._stale = False
        self._closed = False
        self._starting: asyncio.Task[list[Tool]] | None = None
        self._state: ToolkitState = "idle"
        self._since = time.time()
        self._error: str | None = None
        self._failed_at: float | None = None
        self._skipped: list[str] = []
        self._instructions: str | None = None
        self._calls: dict[int, _Call] = {}
        self._call_seq = 0
        self.on_tools_changed: Callable[[], None] | None = None
        """Called when the server says its tool list changed (the list itself is re-read by
        the next :meth:`list_tools`)."""
        self.on_status: Callable[[ToolkitStatus], None] | None = None
        """Called with the new :attr:`status` whenever it changes."""

    # -- status ---------------------------------------------------------------------------

    @property
    def transport(self) -> str:
        """``stdio``, ``http`` (streamable HTTP) or ``sse``."""
        if self.url is None:
            return "stdio"
        return "sse" if self.url.rstrip("/").endswith("/sse") else "http"

    @property
    def target(self) -> str:
        """The command line or the URL."""
        if self.url is not None:
            return self.url
        return " ".join([self.command or "", *self.args]).strip()

    @property
    def instructions(self) -> str | None:
        """What the server says about how to use it (``initialize``'s ``instructions``)."""
        return self._instructions

    @property
    def status(self) -> ToolkitStatus:
        """Where the server stands."""
        return ToolkitStatus(
            name=self.name,
            kind="mcp",
            state=self._state,
            detail=f"{self.transport}: {self.target}",
            error=self._error,
            tools=[t.name for t in self._tools or []],
            since=self._since,
            required=self.required,
            instructions=self._instructions,
            skipped=list(self._skipped),
        )

    def _set_state(self, state: ToolkitState, error: str | None = None) -> None:
        if state == self._state and error == self._error:
            return
        self._state, self._error, self._since = state, error, time.time()
        if state == "failed":
            self._failed_at = time.monotonic()
        elif state == "ready":
            self._failed_at = None
        if self.on_status is not None:
            try:
                self.on_status(self.status)
            except Exception:
                log.exception("on_status callback failed")

    # -- Toolkit --------------------------------------------------------------------------

    def start(self, *, force: bool = False) -> asyncio.Task[list[Tool]]:
        """Start the server (and list its tools) in the background; returns at once.

        The task is shared: calling again while it runs returns the same one. After a
        failure a new attempt starts only once ``retry_after`` seconds have passed (or at
        once with ``force``); until then the failed task is returned again.
        """
        task = self._starting
        if task is not None and not task.done():
            return task
        if (
            task is not None
            and not force
            and self._state == "failed"
            and self._failed_at is not None
            and time.monotonic() - self._failed_at < self.retry_after
        ):
            return task
        if task is not None and not task.cancelled():
            task.exception()  # retrieved: asyncio must not report it
        self._starting = asyncio.create_task(self._load(), name=f"mcp start {self.name}")
        self._starting.add_done_callback(lambda t: t.cancelled() or t.exception())
        return self._starting

    async def _load(self) -> list[Tool]:
        try:
            conn = await self._connection()
            self._stale = False
            tools = await self._fetch_tools(conn)
        except ToolError as exc:
            self._set_state("failed", str(exc))
            raise
        except asyncio.CancelledError:
            if self._state == "starting":
                self._set_state("idle")
            raise
        except Exception as exc:
            self._set_state("failed", f"MCP server {self.name!r}: {_describe(exc)}")
            raise ToolError(f"MCP server {self.name!r}: {_describe(exc)}") from exc
        self._tools = tools
        self._tools_from = conn
        self._set_state("ready")
        return tools

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
        if self._closed:
            raise ToolError(f"MCP server {self.name!r}: the toolkit is closed")
        task = self.start()
        try:
            return list(await asyncio.shield(task))
        except ToolError as exc:
            if self._tools is None:
                raise
            # Calls will report the failure; the model still sees what it can ask for.
            log.warning("MCP server %s: using the last known tool list: %s", self.name, exc)
        return list(self._tools)

    async def aclose(self) -> None:
        """Stop the server (and any connection still winding down)."""
        self._closed = True
        if self._starting is not None and not self._starting.done():
            self._starting.cancel()
            with contextlib.suppress(BaseException):
                await self._starting
        conns = [c for c in (self._conn, *self._retiring) if c is not None]
        self._conn = None
        self._retiring.clear()
        for c in conns:
            c.request_stop()
        await asyncio.gather(*(c.wait_closed() for c in conns), return_exceptions=True)
        if self._state in ("ready", "starting"):
            self._set_state("idle")

    async def restart(self) -> list[Tool]:
        """Stop the server and start it again (the MCP pane's restart).

        Raises:
            ToolError: it does not start.
        """
        conn = self._conn
        if conn is not None:
            self._retire(conn)
        self._tools = None
        return list(await asyncio.shield(self.start(force=True)))

    # -- calls ----------------------------------------------------------------------------

    async def call_tool(
        self, tool: str, arguments: dict[str, Any], ctx: ToolContext | None = None
    ) -> ToolOutput:
        """Call ``tool`` on the server.

        An HTTP session the server no longer knows is replaced and the call sent once more.

        Raises:
            ToolError: the tool reported an error (``isError``), the server failed to start,
                died during the call, or did not answer within the timeout, or the call was
                refused (unknown tool, bad arguments).
        """
        for attempt in (1, 2):
            conn = await self._connection()
            try:
                return await self._call_once(conn, tool, arguments, ctx)
            except _SessionGone:
                self._retire(conn)
                where = f" from {conn.http_error[1]}" if conn.http_error else ""
                if attempt == 2:
                    raise ToolError(
                        f"MCP server {self.name!r} lost the connection during {tool}: the new "
                        f"session was not found either (HTTP 404{where})"
                    ) from None
                log.info(
                    "MCP server %s: the session is gone (HTTP 404%s); starting a new one",
                    self.name,
                    where,
                )
        raise AssertionError("unreachable")  # pragma: no cover

    async def _call_once(
        self, conn: _Connection, tool: str, arguments: dict[str, Any], ctx: ToolContext | None
    ) -> ToolOutput:
        from mcp.shared.exceptions import MCPError
        from mcp_types import CONNECTION_CLOSED

        session = conn.session
        if session is None:  # stopped between start and here
            raise ToolError(f"MCP server {self.name!r} is not running")
        conn.trim_errlog()
        conn.http_error = None
        self._call_seq += 1
        key = self._call_seq
        started = time.monotonic()

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            call = self._calls.get(key)
            if call is None:
                return
            # Progress restarts the clock, within a bound: a server that reports forever
            # does not keep a call alive forever.
            loop = asyncio.get_running_loop()
            stretch = started + self.timeout * _PROGRESS_STRETCH - time.monotonic()
            call.deadline.reschedule(loop.time() + max(0.0, min(self.timeout, stretch)))
            if ctx is not None and ctx.progress is not None:
                try:
                    await ctx.progress(progress, total, message)
                except Exception:
                    log.exception("progress callback failed")

        try:
            async with asyncio.timeout(self.timeout) as deadline:
                self._calls[key] = _Call(ctx, deadline, self.timeout)
                result = await session.call_tool(tool, arguments, progress_callback=on_progress)
        except TimeoutError:
            self._retire(conn)
            stopped = "connection was closed" if self.url else "server was stopped"
            raise ToolError(
                f"MCP server {self.name!r}: {tool} did not answer within {self.timeout:g}s; the "
                f"{stopped} and starts again on the next call{conn.tail_note()}"
            ) from None
        except MCPError as exc:
            if conn.session_gone:
                raise _SessionGone() from None
            if "byte limit" in exc.message and "exceeded" in exc.message:
                self._retire(conn)
                raise ToolError(
                    f"MCP server {self.name!r}: the answer to {tool} is larger than "
                    f"{self.max_message_bytes:,} bytes (max_message_bytes under mcp: "
                    f"{self.name}:); the connection was closed and starts again on the next call"
                ) from None
            if exc.code == CONNECTION_CLOSED or conn.lost is not None:
                self._retire(conn)
                what = "lost the connection" if self.url else "exited"
                raise ToolError(
                    f"MCP server {self.name!r} {what} during {tool} "
                    f"({conn.describe(exc).lower()}); it starts again on the next call"
                    f"{conn.tail_note()}"
                ) from None
            if conn.http_error is not None:
                raise ToolError(
                    f"MCP server {self.name!r}: {tool} failed: {conn.describe(exc)}"
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
            raise ToolError(
                f"MCP server {self.name!r}: {tool} failed: {conn.describe(exc)}"
            ) from exc
        finally:
            self._calls.pop(key, None)
        out = result_output(result)
        if getattr(result, "is_error", False):
            raise ToolError(out.text or f"{tool} reported an error without a message")
        return out

    # -- resources and prompts ------------------------------------------------------------

    async def list_resources(self) -> list[dict[str, Any]]:
        """The server's resources: ``uri``, ``name``, ``description``, ``mime_type``
        (``[]`` when it offers none).

        Raises:
            ToolError: the server cannot be reached or refuses.
        """
        session = await self._ready_session()
        caps = session.server_capabilities
        if caps is not None and caps.resources is None:
            return []
        out: list[dict[str, Any]] = []
        cursor: str | None = None
        async with self._bounded("list its resources"):
            for _ in range(100):
                page = await session.list_resources(params=self._page(cursor))
                for r in page.resources:
                    out.append(
                        {
                            "uri": str(r.uri),
                            "name": r.name,
                            "description": r.description or "",
                            "mime_type": r.mime_type,
                        }
                    )
                cursor = page.next_cursor
                if not cursor:
                    break
        return out

    async def read_resource(self, uri: str) -> str:
        """A resource's text (binary contents are named, not inlined).

        Raises:
            ToolError: the server cannot be reached, or refuses.
        """
        session = await self._ready_session()
        async with self._bounded(f"read {uri}"):
            result = await session.read_resource(uri)
        parts: list[str] = []
        for c in result.contents:
            text = getattr(c, "text", None)
            if text is not None:
                parts.append(text)
            else:
                size = len(getattr(c, "blob", "") or "") * 3 // 4
                parts.append(f"[{c.mime_type or 'binary'} resource {c.uri}, {size} bytes]")
        return "\n\n".join(parts)

    async def list_prompts(self) -> list[dict[str, Any]]:
        """The server's prompts: ``name``, ``description``, ``arguments`` (each with
        ``name``, ``description``, ``required``); ``[]`` when it offers none.

        Raises:
            ToolError: the server cannot be reached or refuses.
        """
        session = await self._ready_session()
        caps = session.server_capabilities
        if caps is not None and caps.prompts is None:
            return []
        out: list[dict[str, Any]] = []
        cursor: str | None = None
        async with self._bounded("list its prompts"):
            for _ in range(100):
                page = await session.list_prompts(params=self._page(cursor))
                for p in page.prompts:
                    out.append(
                        {
                            "name": p.name,
                            "description": p.description or "",
                            "arguments": [
                                {
                                    "name": a.name,
                                    "description": a.description or "",
                                    "required": bool(a.required),
                                }
                                for a in p.arguments or []
                            ],
                        }
                    )
                cursor = page.next_cursor
                if not cursor:
                    break
        return out

    async def get_prompt(self, name: str, arguments: dict[str, str] | None = None) -> str:
        """A prompt's messages as text (one paragraph each).

        Raises:
            ToolError: the server cannot be reached, or refuses (a missing argument, say).
        """
        session = await self._ready_session()
        async with self._bounded(f"get the prompt {name}"):
            result = await session.get_prompt(name, arguments or {})
        return _blocks_output([m.content for m in result.messages]).text

    async def _ready_session(self) -> ClientSession:
        await self.list_tools()
        conn = await self._connection()
        if conn.session is None:
            raise ToolError(f"MCP server {self.name!r} is not running")
        return conn.session

    @staticmethod
    def _page(cursor: str | None) -> Any:
        import mcp_types as types

        return types.PaginatedRequestParams(cursor=cursor) if cursor else None

    @contextlib.asynccontextmanager
    async def _bounded(self, what: str) -> Any:
        from mcp.shared.exceptions import MCPError

        try:
            async with asyncio.timeout(self.timeout):
                yield
        except TimeoutError:
            raise ToolError(
                f"MCP server {self.name!r} did not {what} within {self.timeout:g}s"
            ) from None
        except MCPError as exc:
            raise ToolError(f"MCP server {self.name!r} could not {what}: {exc.message}") from None

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
            self._set_state("starting")
            try:
                await conn.start()
            except ToolError as exc:
                self._retiring.add(conn)
                self._set_state("failed", str(exc))
                raise
            except BaseException:
                self._retiring.add(conn)
                if self._state == "starting":
                    self._set_state("idle")
                raise
            self._conn = conn
            if self._tools is not None:
                self._set_state("ready")
            session = conn.session
            self._instructions = (session.instructions or None) if session is not None else None
            self._stale = True  # a new process may offer other tools
            return conn

    async def _fetch_tools(self, conn: _Connection) -> list[Tool]:
        import mcp_types as types
        from mcp.shared.exceptions import MCPError

        session = conn.session
        if session is None:
            raise ToolError(f"MCP server {self.name!r} is not running")
        tools: list[Tool] = []
        skipped: list[str] = []
        cursor: str | None = None
        try:
            async with asyncio.timeout(self.timeout):
                for _ in range(100):  # a server whose cursor never ends cannot hang us
                    page = await session.list_tools(params=self._page(cursor))
                    for t in page.tools:
                        support = getattr(t.execution, "task_support", None)
                        if support == "required":
                            skipped.append(f"{t.name}: requires MCP tasks, which Workbench lacks")
                            continue
                        schema = dict(t.input_schema or {})
                        schema.setdefault("type", "object")
                        schema.setdefault("properties", {})
                        schema.pop("title", None)
                        tools.append(
                            McpTool(
                                self,
                                t.name,
                                t.description or t.title or "",
                                schema,
                                output_schema=t.output_schema,
                                hints=_hints(t),
                            )
                        )
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
                f"MCP server {self.name!r} failed to list its tools: {conn.describe(exc)}"
                f"{conn.tail_note()}"
            ) from None
        for note in skipped:
            log.info("MCP server %s: not offering %s", self.name, note)
        self._skipped = skipped
        self.apply_limits(tools)
        return tools

    def _retire(self, conn: _Connection) -> None:
        """Stop ``conn`` in the background; the next call starts a new one."""
        conn.request_stop()
        if self._conn is conn:
            self._conn = None
        self._retiring.add(conn)

    def _connection_lost(self, conn: _Connection) -> None:
        """The server went away on its own: its status says so until it starts again."""
        if conn is self._conn and not self._closed:
            self._set_state("failed", f"MCP server {self.name!r}: {conn.lost}{conn.tail_note()}")
            # Not a failed start: the next use may start it again at once.
            self._failed_at = None

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

    async def _on_elicit(self, context: Any, params: Any) -> Any:
        """The server asks the person for input: through the asking call's
        :attr:`ToolContext.ask` (the approvals queue). The call's clock stops meanwhile.
        With no call in flight, or nobody to ask, the request is declined."""
        import mcp_types as types

        # The request does not say which call it serves; the oldest call in flight that
        # can ask is the one (servers ask from within a call).
        call = next((c for c in self._calls.values() if c.ctx and c.ctx.ask), None)
        if call is None or call.ctx is None or call.ctx.ask is None:
            log.info("MCP server %s asked for input with nobody to ask: declined", self.name)
            return types.ElicitResult(action="decline")
        url = getattr(params, "url", None)
        if url is not None:
            schema: dict[str, Any] = {"type": "object", "properties": {}}
            message = f"{params.message}\nOpen: {url}"
        else:
            schema = dict(params.requested_schema or {})
            message = params.message
        call.deadline.reschedule(None)
        try:
            action, content = await call.ctx.ask(message, schema)
        except Exception as exc:
            log.exception("asking for input failed")
            return types.ErrorData(code=types.INTERNAL_ERROR, message=f"asking failed: {exc}")
        finally:
            call.deadline.reschedule(asyncio.get_running_loop().time() + call.timeout)
        if action == "accept":
            return types.ElicitResult(action="accept", content=None if url else content or {})
        return types.ElicitResult(action="decline" if action == "decline" else "cancel")

    def launch(self) -> tuple[str, list[str]]:
        """The program and arguments that start a stdio server: the command under the
        guard that stops it with Workbench (POSIX), or the command itself.

        Raises:
            FileNotFoundError: the command cannot be found.
            PermissionError: it is not executable.
        """
        command = self.resolved_command()
        if sys.platform == "win32":  # pragma: no cover - the SDK uses a Job Object there
            return command, list(self.args)
        path = command if os.sep in command else shutil.which(command)
        if path is None or not os.path.exists(path):
            raise FileNotFoundError(command)
        if os.path.isdir(path) or not os.access(path, os.X_OK):
            raise PermissionError(command)
        return sys.executable, ["-I", "-S", str(_GUARD), str(os.getpid()), path, *self.args]

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
        import httpx2  # noqa: F401
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
