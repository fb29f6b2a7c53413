"""Models: streaming chat with tool calls, the offline ``test`` model, ``replay``.

A model of a provider that speaks the OpenAI wire format (OpenAI, Gemini, Mistral, Groq,
OpenRouter, DeepSeek, xAI, Ollama, any OpenAI-compatible ``api_base``) or Anthropic's
Messages API is called directly over one kept-alive httpx client (see
:mod:`workbench.providers`); every other provider goes through litellm. litellm takes
seconds and 200 MB to import, so it is imported only when such a model is first called, in a
thread (:func:`litellm_async`: the event loop never waits on the import lock), with
``LITELLM_LOCAL_MODEL_COST_MAP=True`` set first (otherwise it fetches a price list from the
network) and its loggers routed into ours. Prices and context windows come from litellm's
price map read as a file (:mod:`workbench.prices`), never from litellm itself.

A model's :meth:`Model.stream` is an async iterator of text deltas (``str``) that ends with
one :class:`ModelTurn` (the whole message: text, tool calls, usage, cost). Transient failures
(429, 5xx, timeouts, dropped connections) are retried with exponential back-off before any
text has streamed; everything else raises :class:`ModelError` with a hint that says what to
fix.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import json
import logging
import os
import random
import sys
import threading
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from workbench import prices
from workbench.errors import WorkbenchError
from workbench.events import MessageCompleted, Usage
from workbench.providers import Route, needs_litellm, route

if TYPE_CHECKING:
    import ssl

__all__ = [
    "LiteLLMModel",
    "Model",
    "ModelError",
    "ModelTurn",
    "ReplayModel",
    "RetryPolicy",
    "TestModel",
    "TurnToolCall",
    "estimate_tokens",
    "litellm_async",
    "litellm_loaded",
    "litellm_module",
    "make_model",
    "start_litellm_import",
    "warm_up",
]

log = logging.getLogger("workbench.models")

Message = dict[str, Any]
"""An OpenAI-format chat message."""


class ModelError(WorkbenchError):
    """A model call that failed for good.

    Attributes:
        hint: what the user should do about it.
        retryable: whether trying again later could work.
    """

    def __init__(self, message: str, hint: str | None = None, retryable: bool = False) -> None:
        super().__init__(message, hint)
        self.retryable = retryable


@dataclass
class TurnToolCall:
    """A tool call in a model turn, under the provider-safe name."""

    id: str
    """Provider call id."""
    name: str
    """Provider-safe tool name (see :class:`workbench.tools.ToolNames`)."""
    arguments: str
    """The arguments as the JSON text the model sent."""


@dataclass
class ModelTurn:
    """One whole assistant turn."""

    text: str = ""
    """The text."""
    tool_calls: list[TurnToolCall] = field(default_factory=list)
    """Tool calls asked for."""
    usage: Usage = field(default_factory=Usage)
    """Tokens of this call."""
    cost: float | None = None
    """USD, when the price is known."""
    finish_reason: str | None = None
    """Why the model stopped."""
    model: str = ""
    """The model that answered."""


@dataclass
class RetryPolicy:
    """Back-off for transient failures."""

    attempts: int = 4
    """Tries in all (the first included)."""
    base_delay: float = 0.5
    """Seconds before the second try; doubled each time, with jitter."""
    max_delay: float = 8.0
    """Cap on one back-off."""


OnRetry = Callable[[int, str, float], Awaitable[None]]
"""Called before a back-off with (attempt, error, delay)."""


class Model(ABC):
    """A chat model."""

    name: str
    """What the UI shows (the test model says it is one)."""

    @property
    def context_window(self) -> int | None:
        """Tokens the model accepts, when known."""
        return None

    def accepts(self, kind: str) -> bool:
        """Whether the model takes ``image`` or ``audio`` content parts (tool results'
        media reach it only then; otherwise it reads their description)."""
        return False

    @abstractmethod
    def stream(
        self,
        messages: Sequence[Message],
        tools: Sequence[dict[str, Any]] = (),
        *,
        on_retry: OnRetry | None = None,
    ) -> AsyncIterator[str | ModelTurn]:
        """Stream a reply: text deltas, then exactly one :class:`ModelTurn`."""

    async def complete(self, messages: Sequence[Message]) -> ModelTurn:
        """A whole reply without tools (used for summaries)."""
        turn = ModelTurn()
        async for item in self.stream(messages):
            if isinstance(item, ModelTurn):
                turn = item
        return turn

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


# -- litellm ---------------------------------------------------------------------------

_litellm_lock = threading.Lock()
_litellm: concurrent.futures.Future[Any] | None = None
"""The import of litellm, once started (it runs once per process, in its own thread)."""


def _import_litellm() -> Any:
    # Before anything imports litellm: its price list from the file it ships, not the
    # network, and no debug chatter.
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    os.environ.setdefault("LITELLM_LOG", "WARNING")
    import litellm

    litellm.suppress_debug_info = True
    litellm.set_verbose = False  # type: ignore[attr-defined]
    litellm.turn_off_message_logging = True
    litellm.disable_token_counter = True
    # litellm adds stream handlers to its loggers at import; move them into our file.
    from workbench.logs import LIBRARY_LOGGERS

    ours = logging.getLogger("workbench")
    for name in LIBRARY_LOGGERS:
        lg = logging.getLogger(name)
        lg.handlers[:] = list(ours.handlers)
        lg.propagate = False
        lg.setLevel(logging.WARNING)
    _first_call(litellm)
    return litellm


def _first_call(litellm: Any) -> None:
    """One streamed completion answered by litellm itself (``mock_response``: nothing is
    sent; the address is a closed local port all the same), so that the ≈ 60 modules
    litellm imports on its first call (≈ 330 ms) are imported here, with litellm, in the
    background, and not on a person's first call (366 ms then, ≈ 40 ms after this)."""

    async def once() -> None:
        stream = await litellm.acompletion(
            model="openai/gpt-4o-mini",
            messages=[{"role": "user", "content": "warm-up"}],
            mock_response="ok",
            stream=True,
            api_base="http://127.0.0.1:9/v1",
            api_key="unused",
        )
        async for _ in stream:
            pass

    try:
        asyncio.run(once())
    except Exception as exc:  # a warm-up: the real call says what is wrong, if anything
        log.debug("litellm's warm-up call failed: %s", exc)


def start_litellm_import() -> concurrent.futures.Future[Any]:
    """Start importing litellm in a background thread, once; returns the import's future
    (already done after the first import). Cheap to call again."""
    global _litellm
    with _litellm_lock:
        if _litellm is None:
            future: concurrent.futures.Future[Any] = concurrent.futures.Future()
            # Running from the start, so a waiter that gives up cannot cancel the import
            # that others wait for.
            future.set_running_or_notify_cancel()

            def work() -> None:
                try:
                    future.set_result(_import_litellm())
                except BaseException as exc:  # reported to every waiter
                    future.set_exception(exc)

            threading.Thread(target=work, name="import litellm", daemon=True).start()
            _litellm = future
        return _litellm


def litellm_loaded() -> bool:
    """Whether litellm is imported (a call through it will not wait for the import)."""
    future = _litellm
    return future is not None and future.done() and future.exception() is None


def litellm_module() -> Any:
    """litellm, imported once, quietly and offline (blocks until it is; from a thread)."""
    return start_litellm_import().result()


async def litellm_async() -> Any:
    """litellm, awaited without blocking the event loop while it imports."""
    future = start_litellm_import()
    if future.done():
        return future.result()
    try:
        return await asyncio.wrap_future(future)
    except ImportError as exc:
        raise ModelError(
            f"litellm could not be imported: {exc}",
            hint="reinstall workbench (litellm is one of its dependencies)",
        ) from exc


PRICE_MAP_DELAY_S = 2.0
"""How long after the warm-up the whole price map is read."""


def warm_up(models: Iterable[tuple[str, Mapping[str, Any] | None]]) -> bool:
    """Read the price map in a background thread, a moment from now, and, if one of these
    models (model string, its table) is called through litellm, start importing litellm
    in another, now. Returns whether litellm is being (or was) imported.

    Nothing waits for the price map (a lookup before it is read reads the file for its
    own entries), and reading its 3.4 MB is a few milliseconds of CPU that, at start-up,
    would be taken from what a person waits for (the app's first answer): it is read once
    that has passed."""
    timer = threading.Timer(PRICE_MAP_DELAY_S, prices.warm)
    timer.name, timer.daemon = "read the price map", True
    timer.start()
    if any(needs_litellm(model, params) for model, params in models):
        start_litellm_import()
        return True
    return False


def _classify(exc: BaseException, model: str, params: dict[str, Any]) -> ModelError:
    """Turn a litellm/httpx exception into a ModelError with a hint."""
    ll = litellm_module() if type(exc).__module__.startswith("litellm") else _NoLiteLLM
    name = type(exc).__name__
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else name
    msg = msg[:500]
    base = params.get("api_base")
    where = f" at {base}" if base else ""
    if _refused(exc):
        return ModelError(
            f"cannot reach {model}{where}: connection refused or failed",
            hint="is the server running and the api_base right? "
            "(Ollama: 'ollama serve'; any OpenAI-compatible server: its /v1 URL)",
            retryable=True,
        )
    status = getattr(exc, "status_code", None)
    if isinstance(exc, ll.AuthenticationError) or status in (401, 403):
        provider = model.split("/", 1)[0] if "/" in model else "the provider"
        return ModelError(
            f"authentication failed for {model}: {msg}",
            hint=f"set a valid API key for {provider} (e.g. {provider.upper()}_API_KEY) "
            "or api_key in workbench.yaml models:",
        )
    if isinstance(exc, ll.NotFoundError) or status == 404:
        return ModelError(
            f"model not found: {model}{where}: {msg}",
            hint="check the model name in workbench.yaml (litellm form 'provider/model')",
        )
    if isinstance(exc, ll.RateLimitError) or status == 429:
        return ModelError(f"rate limited by {model}: {msg}", retryable=True)
    if isinstance(exc, ll.Timeout | TimeoutError) or name in ("APITimeoutError", "ReadTimeout"):
        return ModelError(f"{model} timed out{where}", retryable=True)
    if isinstance(exc, ll.APIConnectionError) or name == "APIConnectionError":
        return ModelError(
            f"cannot reach {model}{where}: {msg}",
            hint="is the server running and the api_base right? "
            "(Ollama: 'ollama serve'; any OpenAI-compatible server: its /v1 URL)",
            retryable=True,
        )
    if isinstance(exc, ll.ContextWindowExceededError):
        return ModelError(f"context window exceeded for {model}: {msg}")
    if isinstance(status, int) and status >= 500:
        return ModelError(f"{model} server error {status}: {msg}", retryable=True)
    if isinstance(exc, ll.BadRequestError) and "LLM Provider NOT provided" in str(exc):
        return ModelError(
            f"unknown model '{model}'",
            hint="name it with its provider, e.g. 'openai/gpt-4o', "
            "'anthropic/claude-sonnet-4-5', 'ollama/llama3', or 'test' for the offline model",
        )
    return ModelError(f"{model}: {name}: {msg}")


class _NoLiteLLM:
    """Stands in for litellm's exception classes when the error did not come from it."""

    class _Never(Exception):
        pass

    AuthenticationError = NotFoundError = RateLimitError = Timeout = _Never
    APIConnectionError = ContextWindowExceededError = BadRequestError = _Never


def _refused(exc: BaseException) -> bool:
    """Whether a connection could not be made at all (litellm reports it as a 500)."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, ConnectionError) or type(cur).__name__ in (
            "ConnectError",
            "ClientConnectorError",
        ):
            return True
        cur = cur.__cause__ or cur.__context__
    return False


class LiteLLMModel(Model):
    """A provider's model: directly over httpx where the provider allows, else litellm.

    The direct path (see :mod:`workbench.providers`) speaks the provider's wire format to
    its endpoint over one kept-alive httpx client: the OpenAI chat-completions request that
    litellm would send (its SSE stream read to the end so the connection is kept alive), or
    Anthropic's Messages API (:mod:`workbench.messages_api`). It skips litellm's import
    (seconds), its per-chunk stream wrapper, the logging and cost callbacks it schedules
    after each call, and the openai SDK's per-request type transforms: most of the overhead
    measured in bench/engine_overhead.py. Every other provider, a model table with
    arguments outside the wire format, or ``direct: false`` in the model's table, goes
    through ``litellm.acompletion``, imported on the first call.

    Args:
        model: the litellm model string (``openai/gpt-4o``).
        params: other litellm arguments (api_base, api_key, temperature ...).
        context_window: overrides the price map's context window.
        retry: back-off for transient failures.
        stream: stream the reply (``False``: one whole response).
        direct: allow the direct path.
        media: the content parts it takes (``image``, ``audio``); ``None``: what the price
            map says (``supports_vision``, ``supports_audio_input``).
    """

    def __init__(
        self,
        model: str,
        params: dict[str, Any] | None = None,
        *,
        context_window: int | None = None,
        retry: RetryPolicy | None = None,
        stream: bool = True,
        direct: bool = True,
        media: Sequence[str] | None = None,
    ) -> None:
        self.name = model
        self.model = model
        self.params = dict(params or {})
        self._media: frozenset[str] | None = None if media is None else frozenset(media)
        self.retry = retry or RetryPolicy()
        self.use_stream = stream
        self._context_window = context_window
        self.route: Route | None = route(model, self.params, direct=direct)
        """Where the model is called directly; ``None``: through litellm."""
        self.direct = self.route is not None
        """Whether the model is called without litellm."""
        self._client: Any = None

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    def _http(self, r: Route) -> Any:
        if self._client is None:
            import httpx

            if r.wire == "anthropic":
                from workbench.messages_api import ANTHROPIC_VERSION

                headers = {"anthropic-version": ANTHROPIC_VERSION}
                if r.api_key:
                    headers["x-api-key"] = r.api_key
            else:
                headers = {"Authorization": f"Bearer {r.api_key}"} if r.api_key else {}
            headers.update(self.params.get("extra_headers") or {})
            self._client = httpx.AsyncClient(
                base_url=r.base_url,
                headers=headers,
                timeout=float(self.params.get("timeout") or 120),
                verify=_tls_for(r.base_url),
            )
        return self._client

    def _body(
        self, r: Route, messages: Sequence[Message], kwargs: dict[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        """The request's path and JSON body."""
        if r.wire == "anthropic":
            from workbench.messages_api import request

            info = prices.model_info(self.model) or {}
            default = info.get("max_output_tokens") or info.get("max_tokens")
            body = request(
                r.model,
                messages,
                kwargs.get("tools") or (),
                kwargs,
                stream=self.use_stream,
                max_tokens=int(default) if isinstance(default, int) else None,
            )
            return "/messages", body
        body = {
            k: v
            for k, v in kwargs.items()
            if k not in ("api_base", "api_key", "extra_headers", "timeout")
        }
        body["model"] = r.model
        body["messages"] = list(messages)
        if self.use_stream:
            body["stream"] = True
            if r.provider.stream_usage:
                body["stream_options"] = {"include_usage": True}
        return "/chat/completions", body

    async def _direct_call(
        self, messages: Sequence[Message], kwargs: dict[str, Any]
    ) -> AsyncIterator[str | ModelTurn]:
        """The direct path (see the class docstring): the provider's wire format, as is."""
        _import_httpx_as_a_library()  # the one way in to httpx: _http and TLS come after
        import httpx

        r = self.route
        assert r is not None
        if r.api_key is None and r.key_source is not None:
            raise ModelError(
                f"no API key for {self.model}: {r.key_source} is not set",
                hint=f"set {r.key_source} (or api_key under models: in workbench.yaml)",
            )
        path, body = self._body(r, messages, kwargs)
        client = self._http(r)
        try:
            if not self.use_stream:
                resp = await client.post(path, json=body)
                if resp.status_code >= 400:
                    raise _http_error(resp.status_code, resp.text, self.model, r)
                if r.wire == "anthropic":
                    from workbench.messages_api import turn_from_message

                    turn = turn_from_message(resp.json(), self.model)
                else:
                    turn = _turn_from_dict(resp.json(), self.model)
                if turn.text:
                    yield turn.text
                yield turn
                return
            async with client.stream("POST", path, json=body) as resp:
                if resp.status_code >= 400:
                    await resp.aread()
                    raise _http_error(resp.status_code, resp.text, self.model, r)
                add: Callable[[dict[str, Any]], str]
                done: Callable[[], ModelTurn]
                if r.wire == "anthropic":
                    from workbench.messages_api import StreamReader

                    reader = StreamReader(self.model)
                    add, done = reader.add, reader.turn
                else:
                    acc = _Accumulator(self.model)
                    add, done = acc.add, acc.turn
                # Read to the end (past [DONE]) so the connection is kept alive for the next call.
                async for line in resp.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if not data or data == "[DONE]":
                        continue
                    delta = add(json.loads(data))
                    if delta:
                        yield delta
            yield done()
        except httpx.TimeoutException as exc:
            raise ModelError(f"{self.model} timed out at {r.base_url}", retryable=True) from exc
        except httpx.TransportError as exc:
            raise _transport_error(exc, self.model, r.base_url) from exc

    async def _litellm_call(
        self, messages: Sequence[Message], kwargs: dict[str, Any]
    ) -> AsyncIterator[str | ModelTurn]:
        ll = await litellm_async()
        if not self.use_stream:
            resp = await ll.acompletion(
                model=self.model, messages=list(messages), num_retries=0, **kwargs
            )
            turn = _turn_from_response(resp, self.model)
            if turn.text:
                yield turn.text
            yield turn
            return
        resp = await ll.acompletion(
            model=self.model,
            messages=list(messages),
            stream=True,
            stream_options={"include_usage": True},
            num_retries=0,
            **kwargs,
        )
        acc = _Accumulator(self.model)
        async for chunk in resp:
            delta = acc.add(chunk)
            if delta:
                yield delta
        yield acc.turn()

    def accepts(self, kind: str) -> bool:
        """From the ``media`` setting, else the price map's entry for the model (read as a
        file, no litellm import; asked only when a tool returned media), else no."""
        if self._media is None:
            info = prices.model_info(self.model) or {}
            self._media = frozenset(
                k
                for k, key in (("image", "supports_vision"), ("audio", "supports_audio_input"))
                if info.get(key)
            )
        return kind in self._media

    @property
    def context_window(self) -> int | None:
        """From the config, else litellm's price map, else unknown."""
        if self._context_window is not None:
            return self._context_window
        return prices.context_window(self.model)

    async def stream(
        self,
        messages: Sequence[Message],
        tools: Sequence[dict[str, Any]] = (),
        *,
        on_retry: OnRetry | None = None,
    ) -> AsyncIterator[str | ModelTurn]:
        kwargs: dict[str, Any] = dict(self.params)
        kwargs.setdefault("timeout", 120)
        if tools:
            kwargs["tools"] = list(tools)
        attempt = 0
        while True:
            attempt += 1
            streamed_any = False
            call = self._direct_call if self.direct else self._litellm_call
            try:
                async for item in call(messages, kwargs):
                    if isinstance(item, ModelTurn):
                        item.cost = _cost(self.model, item.usage)
                        yield item
                        return
                    streamed_any = True
                    yield item
                return
            except (asyncio.CancelledError, GeneratorExit):
                raise
            except Exception as exc:
                err = exc if isinstance(exc, ModelError) else _classify(exc, self.model, kwargs)
                # Once text has streamed to the user a retry would duplicate it: fail instead.
                if not err.retryable or streamed_any or attempt >= self.retry.attempts:
                    if err.retryable and err.hint is None:
                        err.hint = f"gave up after {attempt} attempt(s); try again later"
                    raise err from exc
                delay = min(self.retry.max_delay, self.retry.base_delay * 2 ** (attempt - 1))
                delay *= 0.75 + random.random() / 2
                log.warning("model %s attempt %d failed (%s); retrying", self.model, attempt, err)
                if on_retry is not None:
                    await on_retry(attempt, str(err), delay)
                await asyncio.sleep(delay)


def _transport_error(exc: BaseException, model: str, base_url: str) -> ModelError:
    """A connection that failed: a certificate that does not verify is said so (and not
    retried: it will not verify the next time either), anything else names its cause."""
    import ssl

    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, ssl.SSLCertVerificationError):
        cause = cause.__cause__ or cause.__context__
    if cause is not None:
        reason = getattr(cause, "verify_message", "") or str(cause)
        return ModelError(
            f"cannot verify the TLS certificate of {base_url} ({model}): {reason}",
            hint="a private or self-signed certificate? point SSL_CERT_FILE (or SSL_CERT_DIR) "
            "at the certificate of the authority that signed it",
        )
    detail = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
    return ModelError(
        f"cannot reach {model} at {base_url}: {type(exc).__name__}"
        + (f" ({detail})" if detail else ""),
        hint="is the server running and the api_base right? "
        "(Ollama: 'ollama serve'; any OpenAI-compatible server: its /v1 URL)",
        retryable=True,
    )


def _tls_for(base_url: str) -> ssl.SSLContext | bool:
    """The TLS context of a model's client. httpx builds a verifying one per client,
    loading the CA bundle each time (≈ 18 ms, on the first answer's path): an ``https``
    base shares one, built as httpx builds it (``SSL_CERT_FILE``, ``SSL_CERT_DIR``,
    certifi); a plain ``http`` base (a local server) never uses TLS (the client talks
    only to its base and follows no redirect), so it gets a verifying context without
    loading any CA: were TLS ever tried, it would fail closed."""
    import ssl

    if base_url.lower().startswith("http://"):
        return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    return _shared_tls()


def _import_httpx_as_a_library() -> None:
    """Import httpx, if nothing has, without its command-line client.

    ``import httpx`` also imports ``httpx._main``, its CLI, whenever click is installed (it
    is: uvicorn and litellm need it), and with it click and rich's progress bars: ≈ 18 ms of
    the direct path's first call (a third of httpx's import), for a CLI the engine never
    runs. While httpx is imported, ``httpx._main`` is marked missing, so httpx defines its
    stand-in ``main`` (which says the CLI cannot run); the mark is removed at once, so an
    explicit ``import httpx._main`` later works as usual."""
    if "httpx" in sys.modules or "httpx._main" in sys.modules:
        return
    sys.modules["httpx._main"] = None  # type: ignore[assignment]
    try:
        import httpx  # noqa: F401
    finally:
        if "httpx._main" in sys.modules and sys.modules["httpx._main"] is None:
            del sys.modules["httpx._main"]


@functools.cache
def _shared_tls() -> ssl.SSLContext | bool:
    import httpx

    make = getattr(httpx, "create_ssl_context", None)  # public since httpx 0.28
    return True if make is None else make()  # True: httpx builds its own, per client


def _field(obj: Any, key: str) -> Any:
    """``obj[key]`` of a chunk parsed from the wire, ``obj.key`` of litellm's objects; None
    when it has none."""
    if isinstance(obj, dict):
        return obj.get(key)
    return getattr(obj, key, None)


class _Accumulator:
    """Assembles a streamed OpenAI-style completion into a turn: litellm's chunks
    (``ModelResponseStream`` objects) or the direct path's (JSON parsed from the wire)."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.text: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}
        self.usage = Usage()
        self.finish: str | None = None

    def add(self, chunk: Any) -> str:
        """Take one chunk; returns the text it adds."""
        usage = _field(chunk, "usage")
        if not usage and isinstance(chunk, dict):
            # Groq reports usage under its own key when not asked through stream_options
            # (litellm's chunks have it where it belongs).
            usage = (chunk.get("x_groq") or {}).get("usage")
        if usage:
            self.usage = Usage(
                prompt_tokens=int(_field(usage, "prompt_tokens") or 0),
                completion_tokens=int(_field(usage, "completion_tokens") or 0),
            )
        choices = _field(chunk, "choices") or []
        if not choices:
            return ""
        choice = choices[0]
        finish = _field(choice, "finish_reason")
        if finish:
            self.finish = finish
        delta = _field(choice, "delta")
        if delta is None:
            return ""
        for tc in _field(delta, "tool_calls") or []:
            index = _field(tc, "index")
            if index is None:
                index = len(self.calls)
            slot = self.calls.setdefault(index, {"id": "", "name": "", "arguments": ""})
            call_id = _field(tc, "id")
            if call_id:
                slot["id"] = call_id
            fn = _field(tc, "function")
            if fn is not None:
                name = _field(fn, "name")
                if name:
                    slot["name"] = name
                arguments = _field(fn, "arguments")
                if arguments:
                    slot["arguments"] += arguments
        content = _field(delta, "content")
        if content:
            self.text.append(content)
            return str(content)
        return ""

    def turn(self) -> ModelTurn:
        calls = [
            TurnToolCall(id=c["id"] or f"call_{i}", name=c["name"], arguments=c["arguments"])
            for i, c in sorted(self.calls.items())
            if c["name"]
        ]
        return ModelTurn(
            text="".join(self.text),
            tool_calls=calls,
            usage=self.usage,
            finish_reason=self.finish,
            model=self.model,
        )


def _turn_from_response(resp: Any, model: str) -> ModelTurn:
    choice = resp.choices[0]
    msg = choice.message
    calls = [
        TurnToolCall(id=tc.id, name=tc.function.name, arguments=tc.function.arguments or "")
        for tc in (getattr(msg, "tool_calls", None) or [])
    ]
    usage = getattr(resp, "usage", None)
    return ModelTurn(
        text=msg.content or "",
        tool_calls=calls,
        usage=Usage(
            prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
        ),
        finish_reason=choice.finish_reason,
        model=model,
    )


def _turn_from_dict(data: dict[str, Any], model: str) -> ModelTurn:
    choice = (data.get("choices") or [{}])[0]
    msg = choice.get("message") or {}
    usage = data.get("usage") or {}
    return ModelTurn(
        text=msg.get("content") or "",
        tool_calls=[
            TurnToolCall(
                id=tc.get("id") or f"call_{i}",
                name=(tc.get("function") or {}).get("name", ""),
                arguments=(tc.get("function") or {}).get("arguments") or "",
            )
            for i, tc in enumerate(msg.get("tool_calls") or [])
        ],
        usage=Usage(
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
        ),
        finish_reason=choice.get("finish_reason"),
        model=model,
    )


def _http_error(status: int, body: str, model: str, r: Route) -> ModelError:
    """An HTTP error from a provider's endpoint, as a ModelError with a hint."""
    try:
        detail = json.loads(body).get("error", {})
        message = detail.get("message") if isinstance(detail, dict) else str(detail)
    except (ValueError, AttributeError):
        message = None
    message = (message or body or f"HTTP {status}").strip()[:500]
    where = f" at {r.base_url}"
    if status in (401, 403):
        key = f"set a valid {r.key_source}" if r.key_source else "set a valid API key"
        return ModelError(
            f"authentication failed for {model}{where}: {message}",
            hint=f"{key} (or api_key under models: in workbench.yaml)",
        )
    if status == 404:
        return ModelError(
            f"model not found: {model}{where}: {message}",
            hint="check the model name in workbench.yaml (litellm form 'provider/model')",
        )
    if status == 429:
        return ModelError(f"rate limited by {model}: {message}", retryable=True)
    if status >= 500:
        return ModelError(f"{model} server error {status}: {message}", retryable=True)
    lower = message.lower()
    if ("context" in lower and "length" in lower) or "prompt is too long" in lower:
        return ModelError(f"context window exceeded for {model}: {message}")
    return ModelError(f"{model}: HTTP {status}: {message}")


def _cost(model: str, usage: Usage) -> float | None:
    """USD from litellm's price map (read as a file); ``None`` when the price is unknown."""
    if not usage.total_tokens:
        return None
    return prices.cost(model, usage.prompt_tokens, usage.completion_tokens)


# -- the offline test model ---------------------------------------------------------------


def _example(schema: dict[str, Any]) -> Any:
    """A minimal value valid for a JSON schema."""
    if "default" in schema:
        return schema["default"]
    if "enum" in schema and schema["enum"]:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
            return _example(options[0])
    t = schema.get("type")
    if isinstance(t, list):
        t = next((x for x in t if x != "null"), "null")
    if t == "string":
        return "test".ljust(int(schema.get("minLength", 0)), "t")
    if t == "integer":
        return max(1, int(schema.get("minimum", 1)))
    if t == "number":
        return float(schema.get("minimum", 1.0))
    if t == "boolean":
        return True
    if t == "array":
        return [_example(schema.get("items", {})) for _ in range(int(schema.get("minItems", 0)))]
    if t == "null":
        return None
    props = schema.get("properties", {})
    return {k: _example(props.get(k, {})) for k in schema.get("required", [])}


_SCHEMA_MARK = "valid against this schema:"
"""How the agent's output-schema correction introduces the schema (workbench/agent.py)."""


def _requested_schema(message: Message) -> dict[str, Any] | None:
    """The JSON schema a user message asks the answer to follow, or ``None``."""
    content = message.get("content")
    if not isinstance(content, str) or _SCHEMA_MARK not in content:
        return None
    try:
        schema = json.loads(content.rsplit(_SCHEMA_MARK, 1)[1])
    except ValueError:
        return None
    return schema if isinstance(schema, dict) else None


class TestModel(Model):
    """Offline and deterministic, for demos and tests.

    On a user turn with tools offered it calls each offered tool once with schema-valid
    arguments; after the results it answers with a short summary of them. With no tools it
    answers from the prompt. Its text says that it is the test model.
    """

    __test__ = False  # not a pytest class
    name = "test"

    @property
    def context_window(self) -> int | None:
        """A fixed window, so context budgets can be shown offline."""
        return 32_000

    def accepts(self, kind: str) -> bool:
        """Images and audio, so media from tools can be followed offline."""
        return kind in ("image", "audio")

    def __init__(self, delay: float = 0.0, max_tools: int = 8) -> None:
        self.delay = delay
        self.max_tools = max_tools

    async def stream(
        self,
        messages: Sequence[Message],
        tools: Sequence[dict[str, Any]] = (),
        *,
        on_retry: OnRetry | None = None,
    ) -> AsyncIterator[str | ModelTurn]:
        last = messages[-1] if messages else {"role": "user", "content": ""}
        prompt_tokens = estimate_tokens(messages)
        seen_media = _media_parts(last) if last.get("role") == "user" else []
        if seen_media and len(messages) > 1 and messages[-2].get("role") == "tool":
            last = messages[-2]  # the media of a tool batch follow its results
        if tools and last.get("role") == "user":
            calls = []
            for i, t in enumerate(tools[: self.max_tools]):
                fn = t["function"]
                calls.append(
                    TurnToolCall(
                        id=f"call_t{len(messages)}_{i}",
                        name=fn["name"],
                        arguments=json.dumps(_example(fn.get("parameters", {}))),
                    )
                )
            yield ModelTurn(
                tool_calls=calls,
                usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=10 * len(calls)),
                finish_reason="tool_calls",
                model=self.name,
            )
            return
        schema = _requested_schema(last) if last.get("role") == "user" else None
        if schema is not None:
            # Asked for JSON valid against a schema (an agent's output_schema correction):
            # a minimal valid value, so route and leader_follower teams run offline too.
            text = json.dumps(_example(schema))
            yield text
            yield ModelTurn(
                text=text,
                usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=len(text) // 4 + 1),
                finish_reason="stop",
                model=self.name,
            )
            return
        if last.get("role") == "tool":
            results = []
            end = len(messages) - (1 if seen_media else 0)
            for m in reversed(messages[:end]):
                if m.get("role") != "tool":
                    break
                results.append(str(m.get("content", ""))[:200])
            text = "[test model] Tool results: " + " | ".join(reversed(results))
            if seen_media:
                text += f" | and I see {len(seen_media)} attachment(s): {', '.join(seen_media)}"
        else:
            content = last.get("content")
            said = content if isinstance(content, str) else json.dumps(content)
            text = f"[test model] You said: {said}"
        words = text.split(" ")
        for i, w in enumerate(words):
            if self.delay:
                await asyncio.sleep(self.delay)
            yield w if i == 0 else " " + w
        yield ModelTurn(
            text=text,
            usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=len(words)),
            finish_reason="stop",
            model=self.name,
        )


def _media_parts(message: Message) -> list[str]:
    """The kinds of the media content parts in a message (``image/png`` ...)."""
    content = message.get("content")
    if not isinstance(content, list):
        return []
    found = []
    for part in content:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "image_url":
            url = str((part.get("image_url") or {}).get("url", ""))
            found.append(url[5:].split(";", 1)[0] if url.startswith("data:") else "image")
        elif part.get("type") == "input_audio":
            found.append(f"audio/{(part.get('input_audio') or {}).get('format', '?')}")
    return found


class ReplayModel(Model):
    """Serves the assistant turns recorded in a session, in order, with no model calls.

    Used to re-run a session with real tools (a regression test for an agent) and to fork a
    session. When the recording runs out it raises :class:`ModelError`.
    """

    name = "replay"

    def __init__(self, turns: Sequence[MessageCompleted], summaries: Sequence[str] = ()) -> None:
        self.turns = [t for t in turns if t.role == "assistant"]
        self.index = 0
        self.summaries = list(summaries)
        """The recorded ``context.summarized`` summaries, served by :meth:`complete`."""

    async def complete(self, messages: Sequence[Message]) -> ModelTurn:
        """The next recorded summary (the agent asks for one when its history outgrows the
        context window, as it did in the recording)."""
        if not self.summaries:
            raise ModelError(
                "the recording has no more context summaries",
                hint="the re-run's history outgrew the context window where the recorded "
                "one did not",
            )
        return ModelTurn(text=self.summaries.pop(0), model="replay")

    async def stream(
        self,
        messages: Sequence[Message],
        tools: Sequence[dict[str, Any]] = (),
        *,
        on_retry: OnRetry | None = None,
    ) -> AsyncIterator[str | ModelTurn]:
        from workbench.tools import ToolNames

        if self.index >= len(self.turns):
            raise ModelError(
                "the recording has no more model responses",
                hint="the re-run asked the model more often than the recorded session did",
            )
        rec = self.turns[self.index]
        self.index += 1
        if rec.content:
            yield rec.content
        yield ModelTurn(
            text=rec.content,
            tool_calls=[
                TurnToolCall(
                    id=c.id, name=ToolNames.encode(c.tool), arguments=json.dumps(c.arguments)
                )
                for c in rec.tool_calls
            ],
            usage=rec.usage or Usage(),
            finish_reason="tool_calls" if rec.tool_calls else "stop",
            model=f"replay:{rec.model or ''}",
        )


class Recording:
    """The model turns of a recorded run tree, served again agent by agent.

    ``sessions rerun`` hands one to a re-run of a team or a workflow: every agent run in
    the new tree (the top-level agent, each member, leader, judge and step) gets a
    :class:`ReplayModel` with the turns its counterpart made in the recording. Counterparts
    are found by agent name and input, in the order the recorded runs started; when the
    input differs (an earlier tool result changed what a leader delegated), the next
    unused recorded run of the same agent stands in, and an agent with none left gets an
    empty recording, so its first model call fails with a clear error.
    """

    def __init__(self) -> None:
        self._runs: list[_RecordedRun] = []

    def add(
        self,
        agent: str,
        input: str,
        turns: Sequence[MessageCompleted],
        summaries: Sequence[str] = (),
    ) -> None:
        """Record one agent run: its messages and the summaries it made of its history
        (call in the order the runs started)."""
        answers = [t for t in turns if t.role == "assistant"]
        self._runs.append(_RecordedRun(agent, input, answers, list(summaries)))

    def model_for(self, agent: str, input: str) -> ReplayModel:
        """The replay model for the next run of ``agent`` on ``input`` (each served once)."""
        left = [r for r in self._runs if not r.used and r.agent == agent]
        pick = next((r for r in left if r.input == input), left[0] if left else None)
        if pick is None:
            return ReplayModel(())
        pick.used = True
        return ReplayModel(pick.turns, pick.summaries)

    @property
    def unused(self) -> list[str]:
        """The agents of recorded runs no re-run asked for."""
        return [r.agent for r in self._runs if not r.used]


@dataclass
class _RecordedRun:
    agent: str
    input: str
    turns: list[MessageCompleted]
    summaries: list[str]
    used: bool = False


def estimate_tokens(messages: Sequence[Message]) -> int:
    """A cheap token estimate (4 characters a token), used for context budgets."""
    total = 0
    for m in messages:
        content = m.get("content")
        if isinstance(content, str):
            total += len(content)
        elif content is not None:
            total += len(json.dumps(content))
        for tc in m.get("tool_calls") or []:
            total += len(json.dumps(tc))
        total += 16
    return total // 4 + 1


def make_model(model: str, params: dict[str, Any] | None = None, **kw: Any) -> Model:
    """The model for a litellm string, ``test``, or a table of litellm arguments."""
    if model == "test":
        return TestModel()
    p = dict(params or {})
    # ``stream: false`` in a models: table asks for whole responses instead of a stream.
    stream = bool(p.pop("stream", True))
    # ``retries`` / ``retry_delay`` tune the back-off on 429, 5xx and timeouts.
    retry = RetryPolicy(
        attempts=int(p.pop("retries", RetryPolicy.attempts)),
        base_delay=float(p.pop("retry_delay", RetryPolicy.base_delay)),
    )
    # ``direct: false`` sends an OpenAI-compatible model through litellm too.
    direct = bool(p.pop("direct", True))
    # ``media: [image, audio]`` says which content parts the model takes (default: litellm's
    # model map); tools' images and audio reach it only then.
    media = p.pop("media", None)
    return LiteLLMModel(
        model,
        p,
        stream=stream,
        retry=retry,
        direct=direct,
        media=None if media is None else [str(m) for m in media],
        **kw,
    )
