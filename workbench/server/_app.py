"""The FastAPI application: routes, error handlers, the door, the lifespan."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from sqlalchemy import text
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Route

from workbench.events import TERMINAL_TYPES, Event, RunStarted
from workbench.runtime import RunError

from . import _api, _openai, _sessions
from ._access import AccessLogMiddleware
from ._config import ServerConfig, workbench_version
from ._control import ControlPlane
from ._guard import GuardMiddleware, is_openai_path, openai_error
from ._hub import EventHub
from ._leases import Ownership
from ._mcp import McpEndpoint
from ._metrics import CONTENT_TYPE, Metrics
from ._notify import Listener
from ._state import ApprovalFeed, ServerState, state_of

if TYPE_CHECKING:
    from workbench.engine import Engine

__all__ = ["create_app"]

log = logging.getLogger("workbench.server")

Wb = Annotated[ServerState, Depends(state_of)]

_ERROR_TYPES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "request_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "too_many_requests",
    502: "run_failed",
    503: "unavailable",
}


class ErrorDetail(BaseModel):
    """What went wrong."""

    type: str
    """A short machine-readable kind: ``not_found``, ``unauthorized``, ``invalid_request``..."""
    message: str
    """A sentence for people."""
    details: list[dict[str, str]] | None = None
    """For invalid requests: each field and its problem."""


class ErrorBody(BaseModel):
    """Every error answers with this body (never a stack trace)."""

    error: ErrorDetail


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Missing or wrong API token."},
    413: {"model": ErrorBody, "description": "The request body is too large."},
    422: {"model": ErrorBody, "description": "The request is invalid."},
    "4XX": {"model": ErrorBody, "description": "Not found, conflict, bad request..."},
}
"""Declared on every operation."""


class Health(BaseModel):
    """The process is up."""

    status: str


class Ready(BaseModel):
    """The process can serve: its database answers."""

    status: str
    workspace: str
    runs_in_flight: int
    version: str
    process: str
    """This process's lease id, what its runs record as their owner."""
    notifications: Literal["listen", "poll"]
    """How it learns what other processes sharing the database did."""


def _error(status: int, message: str, **extra: object) -> JSONResponse:
    kind = _ERROR_TYPES.get(status, "error")
    return JSONResponse({"error": {"type": kind, "message": message, **extra}}, status_code=status)


def _allowed_methods(request: Request) -> set[str]:
    """The methods the API document lists for the request's path (Starlette's 405 names
    those of the first route that matched only: ``GET`` for ``/api/sessions/{id}``, which
    also takes ``DELETE``)."""
    table: list[tuple[re.Pattern[str], set[str]]] | None = getattr(
        request.app.state, "allow_table", None
    )
    if table is None:
        table = [
            (
                re.compile(re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(path))),
                {m.upper() for m in ops if m.isalpha()},
            )
            for path, ops in request.app.openapi().get("paths", {}).items()
        ]
        request.app.state.allow_table = table
    return next((methods for rx, methods in table if rx.fullmatch(request.url.path)), set())


def _validation_message(exc: RequestValidationError) -> tuple[str, list[dict[str, str]]]:
    details: list[dict[str, str]] = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        details.append({"field": loc, "problem": str(err.get("msg", "invalid"))})
    summary = "; ".join(f"{d['field']}: {d['problem']}" for d in details[:5]) or "invalid request"
    return f"invalid request: {summary}", details


ROUTES_AFTER_S = 1.0
"""How long after it starts the server builds its routes (see :func:`_build_routes`)."""


async def _build_routes(app: FastAPI) -> None:
    """FastAPI (0.137 on) builds an included router's routes (their validators) on the
    first request that reaches them: ≈ 85 ms that the first client waited for. Building
    the OpenAPI schema walks every route; it is done in a thread, a second after the server
    starts: before listening it would delay that by more than it saves, and at once it
    would slow a client that was waiting for the port."""
    await asyncio.sleep(ROUTES_AFTER_S)
    await asyncio.to_thread(app.openapi)


def create_app(
    engine: Engine, config: ServerConfig | None = None, *, owns_engine: bool = False
) -> FastAPI:
    """The server for an engine.

    Args:
        engine: The engine every route drives (runs execute in the server's event loop).
        config: Token, CORS, limits; defaults to loopback without a token.
        owns_engine: Close the engine when the application shuts down.

    Raises:
        ValueError: The config would expose the server without a token.
    """
    config = config or ServerConfig()
    config.check()
    hub = EventHub(engine, queue_size=config.client_queue_size, poll_interval=config.poll_interval)
    control = ControlPlane(engine, poll_interval=config.poll_interval)
    metrics = Metrics()
    approvals = ApprovalFeed(engine)
    ownership = Ownership(engine, take_over=config.take_over, on_change=approvals.changed)
    mcp = McpEndpoint(engine, config)
    listener: Listener | None = None
    if config.listen and engine.store.engine.dialect.name == "postgresql":

        def moved(sessions: dict[str, int], approvals_changed: bool) -> None:
            hub.moved(sessions)
            if approvals_changed:
                approvals.changed()

        def listening(on: bool) -> None:
            hub.set_listening(on)
            control.set_listening(on)
            approvals.set_listening(on)

        listener = Listener(
            engine.store.engine.url,
            on_events=moved,
            on_control=lambda _: control.wake(),
            on_state=listening,
        )
    wb = ServerState(engine, config, hub, control, metrics, approvals, ownership, listener)

    def watch(event: Event) -> None:
        metrics.feed(event)
        if event.type.startswith("approval.") or event.type in TERMINAL_TYPES:
            approvals.changed()
        if isinstance(event, RunStarted) and event.resumed:
            control.wake()  # a cancel or decision may have been queued while it was down

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # What the first runs would wait for: the price map, litellm only if a model needs
        # it, and the MCP servers (concurrently, so the first run does not wait for them).
        engine.warm_up()
        routes = asyncio.create_task(_build_routes(app), name="build the routes")
        hub.start()
        control.start()
        ownership.start()
        if listener is not None:
            listener.start()
        remove = hub.add_watcher(watch)
        try:
            async with mcp.run():
                yield
        finally:
            routes.cancel()
            remove()
            if listener is not None:
                await listener.aclose()
            await ownership.aclose()
            await hub.aclose()
            await control.aclose()
            if owns_engine:
                await engine.aclose()

    app = FastAPI(
        title="Workbench",
        version=workbench_version(),
        description="Run a workbench workspace's agents, teams and workflows over HTTP: REST, "
        "server-sent events, OpenAI-compatible chat and MCP. Every route but /health needs "
        "'Authorization: Bearer <token>' when the server has a token.",
        lifespan=lifespan,
        redoc_url=None,
        responses=ERROR_RESPONSES,
    )
    app.state.wb = wb

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if is_openai_path(request.url.path):
            response = JSONResponse(
                openai_error(
                    exc.status_code,
                    str(exc.detail),
                    param=getattr(exc, "param", None),
                    code=getattr(exc, "code", None),
                ),
                exc.status_code,
            )
        else:
            response = _error(exc.status_code, str(exc.detail))
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        if exc.status_code == 405:
            allowed = _allowed_methods(request)
            if allowed:
                response.headers["Allow"] = ", ".join(sorted(allowed))
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        message, details = _validation_message(exc)
        if is_openai_path(request.url.path):
            param = details[0]["field"] if details else None
            return JSONResponse(openai_error(422, message, param=param), 422)
        return _error(422, message, details=details)

    @app.exception_handler(RunError)
    async def run_error(request: Request, exc: RunError) -> JSONResponse:
        message = exc.describe()
        if is_openai_path(request.url.path):
            return JSONResponse(openai_error(400, message), 400)
        return _error(400, message)

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        message = f"internal error ({type(exc).__name__}); see the server log"
        if is_openai_path(request.url.path):
            return JSONResponse(openai_error(500, message), 500)
        return _error(500, message)

    @app.get("/health", response_model=Health, tags=["server"])
    async def health() -> Health:
        """Liveness: the process answers (no token needed)."""
        return Health(status="ok")

    @app.get(
        "/ready",
        response_model=Ready,
        tags=["server"],
        responses={503: {"description": "Not ready."}},
    )
    async def ready(wb: Wb) -> Ready:
        """Readiness: the database answers."""

        def ping() -> None:
            with wb.engine.store.engine.connect() as conn:
                conn.execute(text("SELECT 1"))

        try:
            await asyncio.to_thread(ping)
        except Exception as exc:
            raise HTTPException(
                503, f"the database does not answer: {type(exc).__name__}"
            ) from None
        return Ready(
            status="ready",
            workspace=str(wb.engine.root),
            runs_in_flight=len(wb.engine.running()),
            version=workbench_version(),
            process=wb.engine.store.owner,
            notifications="listen" if wb.listener is not None and wb.listener.listening else "poll",
        )

    @app.get(
        "/metrics",
        tags=["server"],
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text format."}},
    )
    async def prometheus(wb: Wb) -> Response:
        """Counters, gauges and histograms in the Prometheus text format."""

        def runs_by_state() -> dict[str, int]:
            with wb.engine.store.engine.connect() as conn:
                rows = conn.execute(text("SELECT status, COUNT(*) FROM runs GROUP BY status")).all()
            return {str(s): int(n) for s, n in rows}

        counts = await asyncio.to_thread(runs_by_state)
        pending = len(await wb.approvals.current())
        body = wb.metrics.render(counts, pending, wb.hub.client_count, wb.hub.overflows)
        return Response(body, media_type=CONTENT_TYPE)

    app.include_router(_sessions.router)  # first: /api/sessions/search is no session id
    app.include_router(_api.router)
    app.include_router(_openai.router)
    app.router.routes.append(Route("/mcp", endpoint=mcp.app, include_in_schema=False))

    app.add_middleware(
        GuardMiddleware,
        token=config.token,
        max_body_bytes=config.max_body_bytes,
        bound_host=config.host,
        cors_origins=config.cors_origins,
    )
    if config.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=config.cors_origins,
            allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "Last-Event-ID",
                "Mcp-Session-Id",
                "Mcp-Protocol-Version",
            ],
            expose_headers=["Mcp-Session-Id", "X-Workbench-Session", "X-Workbench-Run"],
        )
    app.add_middleware(AccessLogMiddleware)  # outermost: refusals at the door are logged too
    return app
