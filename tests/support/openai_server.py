"""A scripted, OpenAI-compatible chat-completions server for tests and benchmarks.

The server speaks just enough HTTP/1.1 (keep-alive, ``Content-Length`` or chunked
request bodies, chunked or close-delimited SSE responses) on top of
``asyncio.start_server`` to let the real ``openai`` / ``litellm`` HTTP clients talk to
a "model" whose answers are scripted by the test. Standard library only.

Endpoints: ``POST /v1/chat/completions`` (also ``/chat/completions``),
``POST /v1/messages`` (Anthropic's Messages API, streamed or not, answering from the same
script: the request is read as the equivalent chat request, the reply written in
Anthropic's shape; it checks what the real API refuses: no ``max_tokens``, no
``anthropic-version``, empty text blocks, a ``tool_use`` without its ``tool_result`` in the
next turn), ``GET /v1/models`` (also ``/models`` and ``/v1/models/<id>``), ``GET /health``.

Where each answer comes from, in order:

1. the :class:`Script` queue (replies consumed in order), then
2. the ``responder`` callable (``request_json -> Reply | str | None``, may be async;
   ``None`` falls through), then
3. :func:`echo_responder` (call the first offered tool with minimal schema-valid
   arguments when the user just spoke; ``"done: <tool content>"`` after a tool result;
   ``"echo: <last message>"`` otherwise).

A reply that carries neither text, tool calls, an error nor ``hang`` (e.g.
``Reply(delay=0.2)``) takes its content from the echo responder.

Usage::

    async with FakeOpenAI(script=[Reply(text="hi"), Reply(error=429)]) as srv:
        client = openai.AsyncOpenAI(base_url=srv.base_url, api_key="x")
        ...
        assert srv.chat_requests[0].messages[-1]["content"] == "hello"

    with FakeOpenAIThread(responder=lambda req: Reply(text="pong")) as srv:
        ...  # sync code; the server runs its own loop in a daemon thread

CLI (for other processes)::

    python -m tests.support.openai_server --port 8799 --script replies.json
    # prints "READY http://127.0.0.1:8799/v1" once listening
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import inspect
import itertools
import json
import re
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeAlias

__all__ = [
    "FakeOpenAI",
    "FakeOpenAIThread",
    "RecordedRequest",
    "Reply",
    "ReplyLike",
    "Responder",
    "Script",
    "ToolCallSpec",
    "echo_responder",
    "main",
    "minimal_args",
]

JSONDict: TypeAlias = dict[str, Any]
#: ``(name, arguments)`` or ``(name, arguments, id)``; arguments as a mapping (JSON
#: encoded for you) or a raw string sent verbatim (handy for malformed-JSON tests).
ToolCallSpec: TypeAlias = (
    tuple[str, Mapping[str, Any] | str] | tuple[str, Mapping[str, Any] | str, str]
)


# --------------------------------------------------------------------------- replies


@dataclass(slots=True)
class Reply:
    """One scripted model turn.

    text:         assistant text (may be combined with ``tool_calls``).
    tool_calls:   ``[(name, args), ...]``; ids are generated as ``call_<n>``.
    chunks:       number of stream chunks for ``text`` (default: one per word).
    arg_chunks:   number of stream fragments for each tool call's arguments.
    error:        HTTP status (400/401/403/404/429/500/503...) answered with an
                  OpenAI error JSON body; ``message`` overrides its text.
    delay:        seconds to wait before answering.
    chunk_delay:  seconds to wait between stream chunks.
    hang:         never answer (until the server stops) - for timeout tests.
    hang_after:   streaming only: send this many SSE events, then hang.
    usage:        ``(prompt_tokens, completion_tokens)`` override.
    finish_reason: override (default ``"tool_calls"`` if tool calls else ``"stop"``).
    headers:      extra response headers (e.g. ``{"retry-after": "0"}``).
    """

    text: str | None = None
    tool_calls: Sequence[ToolCallSpec] = ()
    chunks: int | None = None
    arg_chunks: int = 3
    error: int | None = None
    message: str | None = None
    delay: float = 0.0
    chunk_delay: float = 0.0
    hang: bool = False
    hang_after: int | None = None
    usage: tuple[int, int] | None = None
    finish_reason: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.error is not None and not 400 <= self.error <= 599:
            raise ValueError(f"Reply.error must be an HTTP error status, got {self.error}")
        if self.chunks is not None and self.chunks < 1:
            raise ValueError("Reply.chunks must be >= 1")
        if self.arg_chunks < 1:
            raise ValueError("Reply.arg_chunks must be >= 1")

    @property
    def has_content(self) -> bool:
        """True when the reply says something itself (else echo fills it in)."""
        return self.text is not None or bool(self.tool_calls) or self.error is not None or self.hang

    @classmethod
    def from_json(cls, obj: ReplyLike) -> Reply:
        """Coerce a reply-like value: a :class:`Reply`, a string (text) or a mapping
        of :class:`Reply` fields as found in ``--script`` JSON files. Tool calls may be
        ``[name, args]`` pairs or ``{"name": ..., "arguments": ..., "id": ...}``."""
        if isinstance(obj, Reply):
            return obj
        if isinstance(obj, str):
            return cls(text=obj)
        if not isinstance(obj, Mapping):
            raise TypeError(f"cannot make a Reply from {type(obj).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(obj) - known
        if unknown:
            raise ValueError(f"unknown Reply fields: {sorted(unknown)}")
        kwargs: dict[str, Any] = dict(obj)
        if "tool_calls" in kwargs:
            kwargs["tool_calls"] = [_coerce_tool_call(tc) for tc in kwargs["tool_calls"]]
        if kwargs.get("usage") is not None:
            prompt, completion = kwargs["usage"]
            kwargs["usage"] = (int(prompt), int(completion))
        return cls(**kwargs)


ReplyLike: TypeAlias = Reply | str | Mapping[str, Any]
Responder: TypeAlias = Callable[[JSONDict], ReplyLike | None | Awaitable[ReplyLike | None]]


def _coerce_tool_call(tc: Any) -> ToolCallSpec:
    if isinstance(tc, Mapping):
        args = tc.get("arguments", tc.get("args", {}))
        if "id" in tc:
            return (str(tc["name"]), args, str(tc["id"]))
        return (str(tc["name"]), args)
    if isinstance(tc, list | tuple) and len(tc) in (2, 3):
        if len(tc) == 3:
            return (str(tc[0]), tc[1], str(tc[2]))
        return (str(tc[0]), tc[1])
    raise ValueError(f"bad tool call spec: {tc!r}")


class Script:
    """A thread-safe FIFO of replies, consumed one per chat-completion request."""

    def __init__(self, replies: Iterable[ReplyLike] = ()) -> None:
        self._queue: deque[Reply] = deque(Reply.from_json(r) for r in replies)
        self._lock = threading.Lock()

    def add(self, *replies: ReplyLike) -> None:
        coerced = [Reply.from_json(r) for r in replies]
        with self._lock:
            self._queue.extend(coerced)

    def next(self) -> Reply | None:
        with self._lock:
            return self._queue.popleft() if self._queue else None

    def __len__(self) -> int:
        return len(self._queue)

    @classmethod
    def load(cls, source: str | Path | Sequence[Any] | Mapping[str, Any]) -> Script:
        """Build from a JSON file path, or already-parsed JSON: a list of replies or
        ``{"replies": [...]}``."""
        data: Any = source
        if isinstance(source, str | Path):
            data = json.loads(Path(source).read_text(encoding="utf-8"))
        if isinstance(data, Mapping):
            data = data.get("replies", [])
        if not isinstance(data, list):
            raise ValueError("a script must be a JSON list of replies")
        return cls(data)


# ------------------------------------------------------------------ echo responder


def minimal_args(schema: Mapping[str, Any] | None) -> Any:
    """Minimal value valid for a JSON schema: only required properties, string ->
    ``"test"``, integer -> 1, number -> 1.0, boolean -> True, array -> [] (or
    ``minItems`` items), object -> {} recursively; honours ``enum``/``const``,
    ``anyOf``/``oneOf`` (first non-null), ``allOf``, local ``$ref`` and numeric/length
    bounds."""
    if not schema:
        return {}
    return _minimal(schema, schema, 0)


def _resolve_ref(ref: str, root: Mapping[str, Any]) -> Mapping[str, Any]:
    if not ref.startswith("#"):
        return {}
    node: Any = root
    for part in ref.lstrip("#").split("/"):
        if not part:
            continue
        part = part.replace("~1", "/").replace("~0", "~")
        node = node.get(part, {}) if isinstance(node, Mapping) else {}
    return node if isinstance(node, Mapping) else {}


def _minimal(schema: Any, root: Mapping[str, Any], depth: int) -> Any:
    if depth > 64 or not isinstance(schema, Mapping):
        return None
    if "$ref" in schema:
        return _minimal(_resolve_ref(schema["$ref"], root), root, depth + 1)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if options:
            non_null = [
                o for o in options if not (isinstance(o, Mapping) and o.get("type") == "null")
            ]
            return _minimal((non_null or options)[0], root, depth + 1)
    if schema.get("allOf"):
        merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        for sub in schema["allOf"]:
            sub = _resolve_ref(sub["$ref"], root) if "$ref" in sub else sub
            for k, v in sub.items():
                if k == "properties":
                    merged["properties"] = {**merged.get("properties", {}), **v}
                elif k == "required":
                    merged["required"] = [*merged.get("required", []), *v]
                else:
                    merged.setdefault(k, v)
        return _minimal(merged, root, depth + 1)

    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "array" if "items" in schema else "string"

    if kind == "string":
        value = "test"
        min_len, max_len = schema.get("minLength"), schema.get("maxLength")
        if isinstance(min_len, int) and len(value) < min_len:
            value += "x" * (min_len - len(value))
        if isinstance(max_len, int):
            value = value[:max_len]
        return value
    if kind in ("integer", "number"):
        num: float = 1
        if "minimum" in schema and num < schema["minimum"]:
            num = schema["minimum"]
        if "exclusiveMinimum" in schema and num <= schema["exclusiveMinimum"]:
            num = schema["exclusiveMinimum"] + 1
        if "maximum" in schema and num > schema["maximum"]:
            num = schema["maximum"]
        if "exclusiveMaximum" in schema and num >= schema["exclusiveMaximum"]:
            num = schema["exclusiveMaximum"] - 1
        return int(num) if kind == "integer" else float(num)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    if kind == "array":
        count = schema.get("minItems", 0)
        return [_minimal(schema.get("items", {}), root, depth + 1) for _ in range(count)]
    # object
    props = schema.get("properties") or {}
    return {
        name: _minimal(props.get(name, {}), root, depth + 1) for name in schema.get("required", [])
    }


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, Mapping))
    return str(content)


def echo_responder(request: Mapping[str, Any]) -> Reply:
    """The default "model": call the first offered tool (or the one ``tool_choice``
    names) with :func:`minimal_args` when the last message is from the user; answer
    ``"done: <tool content>"`` after a tool result; otherwise ``"echo: <last message>"``."""
    messages = request.get("messages") or []
    last: Mapping[str, Any] = messages[-1] if messages and isinstance(messages[-1], Mapping) else {}
    role = last.get("role")
    if role == "tool":
        return Reply(text=f"done: {_content_text(last.get('content'))}")
    tools = [t for t in request.get("tools") or [] if isinstance(t, Mapping) and "function" in t]
    choice = request.get("tool_choice")
    if tools and role == "user" and choice != "none":
        fn = tools[0]["function"]
        if isinstance(choice, Mapping):
            wanted = (choice.get("function") or {}).get("name")
            fn = next((t["function"] for t in tools if t["function"].get("name") == wanted), fn)
        return Reply(tool_calls=[(str(fn.get("name", "tool")), minimal_args(fn.get("parameters")))])
    return Reply(text=f"echo: {_content_text(last.get('content'))}")


# ------------------------------------------------------------------ recorded requests


@dataclass(slots=True)
class RecordedRequest:
    """One request as the server saw it (headers lower-cased)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    json: JSONDict | None = None
    reply: Reply | None = None
    server_time: float | None = None  # seconds from request head to response written

    @property
    def messages(self) -> list[JSONDict]:
        return list((self.json or {}).get("messages") or [])

    @property
    def tools(self) -> list[JSONDict]:
        return list((self.json or {}).get("tools") or [])

    @property
    def tool_names(self) -> list[str]:
        return [t.get("function", {}).get("name", "") for t in self.tools]

    @property
    def system(self) -> str:
        """Concatenated system/developer prompt text."""
        return "\n".join(
            _content_text(m.get("content"))
            for m in self.messages
            if m.get("role") in ("system", "developer")
        )

    @property
    def last_message(self) -> JSONDict:
        msgs = self.messages
        return msgs[-1] if msgs else {}

    @property
    def model(self) -> str | None:
        return (self.json or {}).get("model")

    @property
    def stream(self) -> bool:
        return bool((self.json or {}).get("stream"))


# ------------------------------------------------------------------------- helpers

_TOKEN_RE = re.compile(r"\s*\S+|\s+")
_ERROR_KINDS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("permission_error", None, "You are not allowed to access this resource."),
    404: (
        "invalid_request_error",
        "model_not_found",
        "The model does not exist or you do not have access to it.",
    ),
    409: ("invalid_request_error", None, "Conflict."),
    422: ("invalid_request_error", None, "Unprocessable entity."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests."),
}
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _split_text(text: str, chunks: int | None) -> list[str]:
    """Split ``text`` into stream pieces: one per word by default, else ``chunks``
    contiguous pieces (by words when there are enough, by characters otherwise)."""
    if not text:
        return []
    tokens = _TOKEN_RE.findall(text)
    if chunks is None:
        return tokens
    if chunks >= len(text):
        return list(text)
    if chunks > len(tokens):
        tokens = list(text)
    size, extra = divmod(len(tokens), chunks)
    out: list[str] = []
    pos = 0
    for i in range(chunks):
        n = size + (1 if i < extra else 0)
        out.append("".join(tokens[pos : pos + n]))
        pos += n
    return out


def _split_even(s: str, parts: int) -> list[str]:
    if not s:
        return []
    parts = min(parts, len(s))
    size, extra = divmod(len(s), parts)
    out: list[str] = []
    pos = 0
    for i in range(parts):
        n = size + (1 if i < extra else 0)
        out.append(s[pos : pos + n])
        pos += n
    return out


def _count_prompt_chars(request: Mapping[str, Any]) -> int:
    total = 0
    for m in request.get("messages") or []:
        if not isinstance(m, Mapping):
            continue
        total += len(_content_text(m.get("content")))
        for tc in m.get("tool_calls") or []:
            if isinstance(tc, Mapping):
                total += len(str((tc.get("function") or {}).get("arguments", "")))
    return total


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


# -------------------------------------------------------------------------- server


class FakeOpenAI:
    """The server, running in the current event loop (``async with``)."""

    def __init__(
        self,
        script: Script | Iterable[ReplyLike] | None = None,
        responder: Responder | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        models: Sequence[str] = ("fake",),
        always_stream_usage: bool = True,
        verbose: bool = False,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """``tls``: serve HTTPS with this server context.

        ``always_stream_usage``: put ``usage`` on the final (finish_reason) chunk
        even when ``stream_options.include_usage`` was not requested; when it *is*
        requested the exact OpenAI shape is used (an extra chunk with empty
        ``choices`` and ``usage``) regardless."""
        self.script: Script = script if isinstance(script, Script) else Script(script or ())
        self.responder = responder
        self.host = host
        self.port = port
        self.models = list(models)
        self.always_stream_usage = always_stream_usage
        self.verbose = verbose
        self.tls = tls
        self.requests: list[RecordedRequest] = []
        #: exceptions raised by the responder (each answered with HTTP 500)
        self.errors: list[BaseException] = []
        #: TCP connections accepted so far (keep-alive reuse shows as few connections)
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._call_ids = itertools.count(1)
        self._completion_ids = itertools.count(1)

    # -- public API ---------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://host:port`` (``https`` when serving TLS; no ``/v1``)."""
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """``http://host:port/v1`` - what OpenAI clients want as ``base_url``."""
        return f"{self.url}/v1"

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        """Only the chat-completion requests (what replies were consumed for)."""
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    @property
    def messages_requests(self) -> list[RecordedRequest]:
        """Only the Anthropic Messages requests."""
        return [r for r in self.requests if r.path.rstrip("/").endswith("/messages")]

    def push(self, *replies: ReplyLike) -> None:
        """Append replies to the script queue (safe from any thread)."""
        self.script.add(*replies)

    async def start(self) -> Self:
        self._server = await asyncio.start_server(
            self._handle, self.host, self.port, limit=1 << 20, ssl=self.tls
        )
        sock = self._server.sockets[0]
        self.port = int(sock.getsockname()[1])
        return self

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for writer in list(self._writers):
            writer.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- connection handling ----------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        self.connections += 1
        try:
            while await self._serve_one(reader, writer):
                pass
        except asyncio.CancelledError:
            # We cancel handlers ourselves in stop(); finishing normally keeps
            # asyncio's done-callback (3.11) from logging a spurious error.
            pass
        except (ConnectionError, OSError):
            pass
        finally:
            self._tasks.discard(task)
            self._writers.discard(writer)
            writer.close()

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Serve one request; return whether to keep the connection open."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False
        except asyncio.LimitOverrunError:
            await self._send_json(
                writer, 431, _error_body(431, "Request headers too large."), False
            )
            return False
        t0 = time.perf_counter()
        lines = head[:-4].decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            await self._send_json(writer, 400, _error_body(400, "Malformed request line."), False)
            return False
        method, target, version = parts
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            key = name.strip().lower()
            value = value.strip()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        conn = headers.get("connection", "").lower()
        http11 = version == "HTTP/1.1"
        keep_alive = ("close" not in conn) if http11 else ("keep-alive" in conn)

        if headers.get("expect", "").lower() == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if "chunked" in headers.get("transfer-encoding", "").lower():
            body = await _read_chunked(reader)
        else:
            length = int(headers.get("content-length") or 0)
            body = await reader.readexactly(length) if length else b""

        path = target.split("?", 1)[0]
        record = RecordedRequest(method=method, path=path, headers=headers, body=body)
        self.requests.append(record)
        try:
            keep_alive = await self._route(record, writer, keep_alive, http11)
        finally:
            record.server_time = time.perf_counter() - t0
        if self.verbose:
            kind = _describe(record.reply)
            print(
                f"{method} {path} -> {kind} ({record.server_time * 1000:.2f} ms)",
                file=sys.stderr,
                flush=True,
            )
        return keep_alive

    async def _route(
        self, record: RecordedRequest, writer: asyncio.StreamWriter, keep_alive: bool, http11: bool
    ) -> bool:
        path, method = record.path.rstrip("/"), record.method
        if path in ("/v1/chat/completions", "/chat/completions"):
            if method != "POST":
                await self._send_json(writer, 405, _error_body(405, "Use POST."), keep_alive)
                return keep_alive
            return await self._chat(record, writer, keep_alive, http11)
        if path in ("/v1/messages", "/messages"):
            if method != "POST":
                await self._send_json(writer, 405, _anthropic_error(405, "Use POST."), keep_alive)
                return keep_alive
            return await self._messages(record, writer, keep_alive, http11)
        if method == "GET" and path in ("/v1/models", "/models"):
            data = [
                {"id": m, "object": "model", "created": 0, "owned_by": "workbench"}
                for m in self.models
            ]
            await self._send_json(writer, 200, {"object": "list", "data": data}, keep_alive)
            return keep_alive
        if method == "GET" and path.startswith(("/v1/models/", "/models/")):
            model_id = path.split("/models/", 1)[1]
            if model_id in self.models:
                body = {"id": model_id, "object": "model", "created": 0, "owned_by": "workbench"}
                await self._send_json(writer, 200, body, keep_alive)
            else:
                await self._send_json(
                    writer,
                    404,
                    _error_body(404, f"The model `{model_id}` does not exist."),
                    keep_alive,
                )
            return keep_alive
        if method == "GET" and path == "/health":
            await self._send_json(writer, 200, {"status": "ok"}, keep_alive)
            return keep_alive
        await self._send_json(
            writer,
            404,
            _error_body(404, f"Unknown endpoint {method} {record.path}", code=None),
            keep_alive,
        )
        return keep_alive

    async def _select(self, request: JSONDict) -> Reply:
        reply = self.script.next()
        if reply is None and self.responder is not None:
            result = self.responder(request)
            if inspect.isawaitable(result):
                result = await result
            reply = Reply.from_json(result) if result is not None else None
        if reply is None:
            return echo_responder(request)
        if not reply.has_content:
            fill = echo_responder(request)
            reply = dataclasses.replace(reply, text=fill.text, tool_calls=fill.tool_calls)
        return reply

    async def _chat(
        self, record: RecordedRequest, writer: asyncio.StreamWriter, keep_alive: bool, http11: bool
    ) -> bool:
        try:
            request = json.loads(record.body or b"null")
        except ValueError as exc:
            await self._send_json(
                writer, 400, _error_body(400, f"Invalid JSON body: {exc}"), keep_alive
            )
            return keep_alive
        if not isinstance(request, dict):
            await self._send_json(
                writer, 400, _error_body(400, "Body must be a JSON object."), keep_alive
            )
            return keep_alive
        record.json = request
        try:
            reply = await self._select(request)
        except Exception as exc:  # a broken responder must not kill the server
            self.errors.append(exc)
            body = _error_body(500, f"responder raised {type(exc).__name__}: {exc}")
            await self._send_json(writer, 500, body, keep_alive)
            return keep_alive
        record.reply = reply
        if reply.delay > 0:
            await asyncio.sleep(reply.delay)
        if reply.hang:
            await asyncio.Future()  # until stop() cancels us
        if reply.error is not None:
            body = _error_body(reply.error, reply.message)
            await self._send_json(writer, reply.error, body, keep_alive, reply.headers)
            return keep_alive

        model = str(request.get("model") or (self.models[0] if self.models else "fake"))
        text = reply.text
        calls = [self._tool_call(spec) for spec in reply.tool_calls]
        finish = reply.finish_reason or ("tool_calls" if calls else "stop")
        usage = self._usage(request, reply, text, calls)
        completion_id = f"chatcmpl-fake{next(self._completion_ids)}"
        created = int(time.time())

        if not request.get("stream"):
            message: JSONDict = {
                "role": "assistant",
                "content": text if (text is not None or not calls) else None,
                "refusal": None,
            }
            if message["content"] is None and not calls:
                message["content"] = ""
            if calls:
                message["tool_calls"] = calls
            body = {
                "id": completion_id,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [
                    {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
                ],
                "usage": usage,
                "system_fingerprint": "fp_fake",
            }
            await self._send_json(writer, 200, body, keep_alive, reply.headers)
            return keep_alive

        include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
        events = self._stream_events(
            completion_id, created, model, reply, text, calls, finish, usage, include_usage
        )
        return await self._send_sse(writer, events, reply, keep_alive, http11)

    def _tool_call(self, spec: ToolCallSpec) -> JSONDict:
        name, args = spec[0], spec[1]
        call_id = spec[2] if len(spec) == 3 else f"call_{next(self._call_ids)}"
        arguments = args if isinstance(args, str) else _dumps(args)
        return {
            "id": call_id,
            "type": "function",
            "function": {"name": name, "arguments": arguments},
        }

    def _usage(
        self, request: JSONDict, reply: Reply, text: str | None, calls: list[JSONDict]
    ) -> JSONDict:
        if reply.usage is not None:
            prompt, completion = reply.usage
        else:
            prompt = _count_prompt_chars(request) // 4
            completion = len((text or "").split()) + sum(
                len(c["function"]["arguments"].split()) for c in calls
            )
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }

    def _stream_events(
        self,
        completion_id: str,
        created: int,
        model: str,
        reply: Reply,
        text: str | None,
        calls: list[JSONDict],
        finish: str,
        usage: JSONDict,
        include_usage: bool,
    ) -> list[bytes]:
        # Every chunk shares this prefix; only the choices (and usage) differ.
        prefix = (
            '{"id":'
            + _dumps(completion_id)
            + ',"object":"chat.completion.chunk","created":'
            + str(created)
            + ',"model":'
            + _dumps(model)
            + ',"system_fingerprint":"fp_fake"'
        )
        usage_null = ',"usage":null' if include_usage else ""

        def event(delta: JSONDict, finish_reason: str | None = None, extra: str = "") -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            return (
                "data: "
                + prefix
                + ',"choices":['
                + _dumps(choice)
                + "]"
                + (extra or usage_null)
                + "}\n\n"
            ).encode()

        events = [event({"role": "assistant", "content": "" if text is not None else None})]
        for piece in _split_text(text or "", reply.chunks):
            events.append(event({"content": piece}))
        for index, call in enumerate(calls):
            fn = call["function"]
            head = {
                "index": index,
                "id": call["id"],
                "type": "function",
                "function": {"name": fn["name"], "arguments": ""},
            }
            events.append(event({"tool_calls": [head]}))
            for frag in _split_even(fn["arguments"], reply.arg_chunks):
                events.append(
                    event({"tool_calls": [{"index": index, "function": {"arguments": frag}}]})
                )
        if include_usage:
            events.append(event({}, finish))
            events.append(
                ("data: " + prefix + ',"choices":[],"usage":' + _dumps(usage) + "}\n\n").encode()
            )
        elif self.always_stream_usage:
            events.append(event({}, finish, ',"usage":' + _dumps(usage)))
        else:
            events.append(event({}, finish))
        events.append(b"data: [DONE]\n\n")
        return events

    # -- Anthropic's Messages API -------------------------------------------------------

    async def _messages(
        self, record: RecordedRequest, writer: asyncio.StreamWriter, keep_alive: bool, http11: bool
    ) -> bool:
        try:
            request = json.loads(record.body or b"null")
        except ValueError as exc:
            body = _anthropic_error(400, f"Invalid JSON body: {exc}")
            await self._send_json(writer, 400, body, keep_alive)
            return keep_alive
        problem = _anthropic_problem(request, record.headers)
        if problem is not None:
            await self._send_json(writer, 400, _anthropic_error(400, problem), keep_alive)
            return keep_alive
        record.json = request
        chat = _chat_from_anthropic(request)
        try:
            reply = await self._select(chat)
        except Exception as exc:  # a broken responder must not kill the server
            self.errors.append(exc)
            body = _anthropic_error(500, f"responder raised {type(exc).__name__}: {exc}")
            await self._send_json(writer, 500, body, keep_alive)
            return keep_alive
        record.reply = reply
        if reply.delay > 0:
            await asyncio.sleep(reply.delay)
        if reply.hang:
            await asyncio.Future()  # until stop() cancels us
        if reply.error is not None:
            body = _anthropic_error(reply.error, reply.message)
            await self._send_json(writer, reply.error, body, keep_alive, reply.headers)
            return keep_alive
        model = str(request.get("model") or "fake")
        text = reply.text or ""
        calls = [self._tool_call(spec) for spec in reply.tool_calls]
        uses = [
            (
                c["id"] if len(spec) == 3 else f"toolu_{c['id']}",
                c["function"]["name"],
                c["function"]["arguments"],
            )
            for spec, c in zip(reply.tool_calls, calls, strict=True)
        ]
        usage = self._usage(chat, reply, text, calls)
        reason = {"stop": "end_turn", "tool_calls": "tool_use", "length": "max_tokens"}
        stop = reason.get(reply.finish_reason or "", reply.finish_reason) or (
            "tool_use" if uses else "end_turn"
        )
        message_id = f"msg_fake{next(self._completion_ids)}"
        if not request.get("stream"):
            content: list[JSONDict] = [{"type": "text", "text": text}] if text else []
            for call_id, name, arguments in uses:
                content.append(
                    {"type": "tool_use", "id": call_id, "name": name, "input": _input(arguments)}
                )
            body = {
                "id": message_id,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": content,
                "stop_reason": stop,
                "stop_sequence": None,
                "usage": {
                    "input_tokens": usage["prompt_tokens"],
                    "output_tokens": usage["completion_tokens"],
                },
            }
            await self._send_json(writer, 200, body, keep_alive, reply.headers)
            return keep_alive

        def event(kind: str, data: JSONDict) -> bytes:
            return f"event: {kind}\ndata: {_dumps({'type': kind, **data})}\n\n".encode()

        start = {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": usage["prompt_tokens"], "output_tokens": 1},
        }
        events = [event("message_start", {"message": start}), event("ping", {})]
        index = 0
        if text:
            events.append(
                event(
                    "content_block_start",
                    {"index": 0, "content_block": {"type": "text", "text": ""}},
                )
            )
            for piece in _split_text(text, reply.chunks):
                delta = {"type": "text_delta", "text": piece}
                events.append(event("content_block_delta", {"index": 0, "delta": delta}))
            events.append(event("content_block_stop", {"index": 0}))
            index = 1
        for call_id, name, arguments in uses:
            block = {"type": "tool_use", "id": call_id, "name": name, "input": {}}
            events.append(event("content_block_start", {"index": index, "content_block": block}))
            for frag in _split_even(arguments, reply.arg_chunks):
                delta = {"type": "input_json_delta", "partial_json": frag}
                events.append(event("content_block_delta", {"index": index, "delta": delta}))
            events.append(event("content_block_stop", {"index": index}))
            index += 1
        events.append(
            event(
                "message_delta",
                {
                    "delta": {"stop_reason": stop, "stop_sequence": None},
                    "usage": {"output_tokens": usage["completion_tokens"]},
                },
            )
        )
        events.append(event("message_stop", {}))
        return await self._send_sse(writer, events, reply, keep_alive, http11)

    # -- writing ----------------------------------------------------------------

    async def _send_json(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        body: Any,
        keep_alive: bool,
        extra_headers: Mapping[str, str] | None = None,
    ) -> None:
        payload = _dumps(body).encode()
        head = (
            f"HTTP/1.1 {status} {_reason(status)}\r\n"
            "content-type: application/json\r\n"
            f"content-length: {len(payload)}\r\n"
            f"connection: {'keep-alive' if keep_alive else 'close'}\r\n"
        )
        if extra_headers:
            head += "".join(f"{k}: {v}\r\n" for k, v in extra_headers.items())
        writer.write(head.encode("latin-1") + b"\r\n" + payload)
        await writer.drain()

    async def _send_sse(
        self,
        writer: asyncio.StreamWriter,
        events: list[bytes],
        reply: Reply,
        keep_alive: bool,
        http11: bool,
    ) -> bool:
        chunked = http11  # HTTP/1.0 clients get a close-delimited body
        keep_alive = keep_alive and chunked
        head = (
            "HTTP/1.1 200 OK\r\n"
            "content-type: text/event-stream; charset=utf-8\r\n"
            "cache-control: no-cache\r\n"
            f"connection: {'keep-alive' if keep_alive else 'close'}\r\n"
        )
        if chunked:
            head += "transfer-encoding: chunked\r\n"
        if reply.headers:
            head += "".join(f"{k}: {v}\r\n" for k, v in reply.headers.items())
        head_bytes = head.encode("latin-1") + b"\r\n"

        def frame(data: bytes) -> bytes:
            return b"%x\r\n%b\r\n" % (len(data), data) if chunked else data

        terminator = b"0\r\n\r\n" if chunked else b""
        hang_at = reply.hang_after
        if hang_at is None and reply.chunk_delay <= 0:
            # Fast path: a single write for the whole response.
            writer.write(head_bytes + b"".join(frame(e) for e in events) + terminator)
            await writer.drain()
            return keep_alive
        writer.write(head_bytes)
        for i, data in enumerate(events):
            if hang_at is not None and i >= hang_at:
                await writer.drain()
                await asyncio.Future()  # until stop() cancels us
            if i and reply.chunk_delay > 0:
                await asyncio.sleep(reply.chunk_delay)
            writer.write(frame(data))
            await writer.drain()
        writer.write(terminator)
        await writer.drain()
        return keep_alive


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            # trailers until an empty line
            while (await reader.readuntil(b"\r\n")) != b"\r\n":
                pass
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


def _error_body(status: int, message: str | None, *, code: str | None | bool = False) -> JSONDict:
    default_type = "server_error" if status >= 500 else "invalid_request_error"
    kind, default_code, default_message = _ERROR_KINDS.get(
        status, (default_type, None, "The server had an error while processing your request.")
    )
    return {
        "error": {
            "message": message or default_message,
            "type": kind,
            "param": None,
            "code": default_code if code is False else code,
        }
    }


_ANTHROPIC_ERRORS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def _anthropic_error(status: int, message: str | None) -> JSONDict:
    kind = _ANTHROPIC_ERRORS.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": kind, "message": message or kind}}


def _anthropic_problem(request: Any, headers: Mapping[str, str]) -> str | None:
    """What the real Messages API would refuse in this request, or ``None``."""
    if not isinstance(request, dict):
        return "Body must be a JSON object."
    if not headers.get("anthropic-version"):
        return "anthropic-version: header is required"
    if not isinstance(request.get("max_tokens"), int):
        return "max_tokens: Field required"
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    pending: set[str] = set()
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or m.get("role") not in ("user", "assistant"):
            return f"messages.{i}.role: Input should be 'user' or 'assistant'"
        content = m.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if not isinstance(blocks, list) or not blocks:
            return f"messages.{i}.content: must not be empty"
        results = {str(b.get("tool_use_id")) for b in blocks if b.get("type") == "tool_result"}
        if pending and (m.get("role") != "user" or not pending <= results):
            return (
                f"messages.{i}: `tool_use` ids were found without `tool_result` blocks "
                f"immediately after: {', '.join(sorted(pending - results))}"
            )
        for b in blocks:
            if b.get("type") == "text" and not b.get("text"):
                return f"messages.{i}: text content blocks must be non-empty"
        pending = {str(b.get("id")) for b in blocks if b.get("type") == "tool_use"}
    return None


def _input(arguments: str) -> Any:
    try:
        value = json.loads(arguments)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _chat_from_anthropic(request: Mapping[str, Any]) -> JSONDict:
    """The chat-completions request that says what a Messages request says (for the
    script's responder and the echo responder)."""
    messages: list[JSONDict] = []
    system = request.get("system")
    if isinstance(system, list):
        system = "".join(str(b.get("text", "")) for b in system if isinstance(b, Mapping))
    if system:
        messages.append({"role": "system", "content": system})
    for m in request.get("messages") or []:
        content = m.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        texts = [str(b.get("text", "")) for b in blocks if b.get("type") == "text"]
        if m.get("role") == "assistant":
            msg: JSONDict = {"role": "assistant", "content": "".join(texts) or None}
            calls = [
                {
                    "id": b.get("id"),
                    "type": "function",
                    "function": {"name": b.get("name"), "arguments": _dumps(b.get("input"))},
                }
                for b in blocks
                if b.get("type") == "tool_use"
            ]
            if calls:
                msg["tool_calls"] = calls
            messages.append(msg)
            continue
        for b in blocks:
            if b.get("type") == "tool_result":
                result = b.get("content")
                if isinstance(result, list):
                    result = "".join(str(x.get("text", "")) for x in result)
                messages.append(
                    {"role": "tool", "tool_call_id": b.get("tool_use_id"), "content": result}
                )
        if texts:
            messages.append({"role": "user", "content": "".join(texts)})
    chat: JSONDict = {"model": request.get("model"), "messages": messages}
    tools = request.get("tools") or []
    if tools:
        chat["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.get("name"),
                    "description": t.get("description", ""),
                    "parameters": t.get("input_schema") or {},
                },
            }
            for t in tools
        ]
    choice = request.get("tool_choice") or {}
    if choice.get("type") == "any":
        chat["tool_choice"] = "required"
    elif choice.get("type") == "none":
        chat["tool_choice"] = "none"
    elif choice.get("type") == "tool":
        chat["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
    return chat


def _describe(reply: Reply | None) -> str:
    if reply is None:
        return "-"
    if reply.hang:
        return "hang"
    if reply.error is not None:
        return f"error {reply.error}"
    names = [spec[0] for spec in reply.tool_calls]
    text = (reply.text or "")[:40]
    return f"text={text!r} tools={names}" if names else f"text={text!r}"


# ------------------------------------------------------------------ sync wrapper


class FakeOpenAIThread:
    """:class:`FakeOpenAI` on its own event loop in a daemon thread, for sync code.

    Takes the same arguments as :class:`FakeOpenAI`. The responder runs in the
    server thread.
    """

    def __init__(
        self,
        script: Script | Iterable[ReplyLike] | None = None,
        responder: Responder | None = None,
        **kwargs: Any,
    ) -> None:
        self.server = FakeOpenAI(script, responder, **kwargs)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def script(self) -> Script:
        return self.server.script

    @property
    def requests(self) -> list[RecordedRequest]:
        return self.server.requests

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return self.server.chat_requests

    @property
    def messages_requests(self) -> list[RecordedRequest]:
        return self.server.messages_requests

    @property
    def errors(self) -> list[BaseException]:
        return self.server.errors

    @property
    def connections(self) -> int:
        return self.server.connections

    def push(self, *replies: ReplyLike) -> None:
        self.server.push(*replies)

    def start(self, timeout: float = 10.0) -> Self:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self.server.start())
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self.server.stop())
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=run, name="FakeOpenAI", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise TimeoutError("FakeOpenAI did not start")
        if failure:
            raise failure[0]
        return self

    def stop(self, timeout: float = 10.0) -> None:
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is None or thread is None:
            return
        if not loop.is_closed():
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# --------------------------------------------------------------------------- CLI


def spawn() -> tuple[subprocess.Popen[str], str]:
    """The server in a process of its own (``python -m tests.support.openai_server``),
    answering at once: the process (terminate it when done) and its base URL (``.../v1``).
    What the benchmarks measure against, so that its work is not theirs."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.openai_server", "--port", "0"],
        cwd=Path(__file__).resolve().parent.parent.parent,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("READY"):
        proc.kill()
        raise SystemExit(f"the fake model server did not start: {line!r}")
    return proc, line.split()[1]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.openai_server",
        description="Scripted OpenAI-compatible chat-completions server.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = ephemeral (default)")
    parser.add_argument("--script", help="JSON file: a list of replies (strings or Reply fields)")
    parser.add_argument("--verbose", "-v", action="store_true", help="log each request to stderr")
    args = parser.parse_args(argv)
    script = Script.load(args.script) if args.script else Script()

    async def run() -> None:
        async with FakeOpenAI(script, host=args.host, port=args.port, verbose=args.verbose) as srv:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(sig, stop.set)
            print(f"READY {srv.base_url}", flush=True)
            await stop.wait()

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
