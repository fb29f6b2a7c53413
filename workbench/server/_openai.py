"""OpenAI-compatible chat: ``POST /v1/chat/completions`` and ``GET /v1/models``.

The model name is an agent, team or workflow of the workspace. Each request is a new
session: the earlier messages of the request are written to its log first (so they are the
run's history, and the transcript shows them), then the last user message starts a run.
Streaming sends the run's own text as it is written (``message.delta`` of the top-level
run); a team or a workflow, whose text comes from its members, sends its answer when done.
The ``system`` messages of a request are kept in the log but not sent to the model: the
agent's own instructions apply.

Nothing waits for a client that left: a client that disconnects cancels its run, streaming
or not (a run waiting for an approval included), and so does the request's ``timeout`` (an
extension: seconds the run may take). A stream that waits (on an approval, a slow tool)
sends an SSE comment every ``sse_ping`` seconds, so that proxies and clients keep it open.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from workbench.errors import with_hint
from workbench.events import TERMINAL_TYPES, MessageCompleted
from workbench.runtime import RunError, RunOutcome
from workbench.store import new_id

from ._guard import openai_error
from ._state import ServerState, state_of

if TYPE_CHECKING:
    from workbench.engine import RunHandle

__all__ = ["router"]

log = logging.getLogger("workbench.server")


class OpenAIErrorDetail(BaseModel):
    """What went wrong, as OpenAI's API words it (its SDKs read these)."""

    message: str
    type: str
    """``invalid_request_error`` (4xx) or ``server_error`` (5xx)."""
    param: str | None = None
    """The request field at fault, if one is."""
    code: str | None = None
    """``model_not_found``, ``invalid_api_key``, ``run_failed``, ``timeout``..."""


class OpenAIErrorBody(BaseModel):
    """Every error of the OpenAI-compatible routes."""

    error: OpenAIErrorDetail


_OPENAI_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": OpenAIErrorBody, "description": "Missing or wrong API key (the token)."},
    404: {"model": OpenAIErrorBody, "description": "No such model (agent, team, workflow)."},
    413: {"model": OpenAIErrorBody, "description": "The request body is too large."},
    422: {"model": OpenAIErrorBody, "description": "The request is invalid."},
    "4XX": {"model": OpenAIErrorBody, "description": "Bad request, forbidden..."},
}

router = APIRouter(prefix="/v1", tags=["openai"], responses=_OPENAI_ERRORS)


class OpenAIError(HTTPException):
    """An HTTP error with OpenAI's ``param`` and ``code``."""

    def __init__(
        self, status: int, message: str, *, param: str | None = None, code: str | None = None
    ) -> None:
        super().__init__(status, message)
        self.param = param
        self.code = code


Wb = Annotated[ServerState, Depends(state_of)]


class ChatMessage(BaseModel):
    """One message of the conversation."""

    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None


class ChatRequest(BaseModel):
    """A chat completion request (fields the workbench does not use are accepted and ignored)."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, max_length=200, description="An agent, team or workflow name.")
    messages: list[ChatMessage] = Field(min_length=1, max_length=10_000)
    stream: bool | None = False
    stream_options: dict[str, Any] | None = None
    timeout: float | None = Field(
        default=None,
        gt=0,
        le=86_400,
        description="Seconds the run may take, approvals included; it is cancelled after "
        "(a workbench extension; a client that disconnects cancels its run too).",
    )


class ModelOut(BaseModel):
    """A runnable name, as a model."""

    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str


class ModelList(BaseModel):
    """Every runnable name."""

    object: Literal["list"] = "list"
    data: list[ModelOut]


class ChoiceMessage(BaseModel):
    """The answer."""

    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    """The one choice."""

    index: int = 0
    message: ChoiceMessage
    finish_reason: str = "stop"


class UsageOut(BaseModel):
    """Tokens over the run."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(BaseModel):
    """A whole answer."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: UsageOut


def _text(content: str | list[dict[str, Any]] | None) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(
        str(p.get("text", "")) for p in content if p.get("type") in ("text", "input_text")
    )


def _model_error(name: str) -> HTTPException:
    return OpenAIError(
        404,
        f"the model '{name}' does not exist: use an agent, team or workflow name (GET /v1/models)",
        param="model",
        code="model_not_found",
    )


def _models(wb: ServerState) -> list[ModelOut]:
    ws = wb.engine.workspace
    return [
        *(ModelOut(id=n, owned_by="workbench:agent") for n in ws.agents),
        *(ModelOut(id=n, owned_by="workbench:team") for n in ws.teams),
        *(ModelOut(id=n, owned_by="workbench:workflow") for n in ws.workflows),
    ]


@router.get("/models", response_model=ModelList)
async def list_models(wb: Wb) -> ModelList:
    """The workspace's agents, teams and workflows, as models."""
    return ModelList(data=_models(wb))


@router.get("/models/{model}", response_model=ModelOut)
async def get_model(wb: Wb, model: Annotated[str, Path(min_length=1, max_length=200)]) -> ModelOut:
    """One of them."""
    for m in _models(wb):
        if m.id == model:
            return m
    raise _model_error(model)


def _usage(outcome: RunOutcome) -> UsageOut:
    u = outcome.usage
    return UsageOut(
        prompt_tokens=u.prompt_tokens,
        completion_tokens=u.completion_tokens,
        total_tokens=u.prompt_tokens + u.completion_tokens,
    )


def _failure(outcome: RunOutcome) -> str:
    if outcome.status == "cancelled":
        return "the run was cancelled"
    return f"the run failed: {with_hint(outcome.error or 'unknown error', outcome.hint)}"


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "With stream: chunks."},
        502: {"model": OpenAIErrorBody, "description": "The run failed or was cancelled."},
        504: {"model": OpenAIErrorBody, "description": "The run took longer than `timeout`."},
    },
)
async def chat_completions(wb: Wb, body: ChatRequest, request: Request) -> Any:
    """Run an agent, team or workflow on the conversation and answer like a chat model."""
    engine = wb.engine
    kind = engine.workspace.target_kind(body.model)
    if kind is None:
        raise _model_error(body.model)
    last = body.messages[-1]
    if last.role != "user":
        raise OpenAIError(400, "the last message must come from the user", param="messages")
    sid = new_id("s")  # its row is made by its first event
    for m in body.messages[:-1]:
        role = {"developer": "system"}.get(m.role, m.role)
        if role not in ("system", "user", "assistant"):
            continue  # tool messages belong to the client's own tool loop
        await engine.publish(
            MessageCompleted(
                session_id=sid,
                message_id="m_" + secrets.token_hex(6),
                role=role,
                content=_text(m.content),
                source="openai",
            ),
            durable=True,
        )
    seeded = len(body.messages) > 1
    after = await asyncio.to_thread(engine.store.last_seq, sid) if seeded else 0
    try:
        handle = await engine.start_run(
            body.model, _text(last.content), session_id=sid if seeded else None, kind=kind
        )
    except RunError as exc:
        raise OpenAIError(400, str(exc), param="model") from None
    completion_id = f"chatcmpl-{handle.run_id}"
    created = int(time.time())
    sid = handle.session_id
    headers = {"X-Workbench-Session": sid, "X-Workbench-Run": handle.run_id}
    if not body.stream:
        outcome = await _outcome_unless_abandoned(wb, request, handle, body.timeout)
        if outcome is None:  # the client left: nobody reads an answer
            return Response(status_code=499)
        if outcome.status == "cancelled" and body.timeout is not None:
            return JSONResponse(
                openai_error(504, _timed_out(body.timeout), param="timeout", code="timeout"),
                504,
                headers=headers,
            )
        if not outcome.ok:
            return JSONResponse(
                openai_error(502, _failure(outcome), code="run_failed"), 502, headers=headers
            )
        return JSONResponse(
            ChatCompletion(
                id=completion_id,
                created=created,
                model=body.model,
                choices=[Choice(message=ChoiceMessage(content=outcome.output))],
                usage=_usage(outcome),
            ).model_dump(),
            headers=headers,
        )
    include_usage = bool((body.stream_options or {}).get("include_usage"))

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        data = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": body.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra,
        }
        return f"data: {json.dumps(data)}\n\n"

    async def chunks() -> AsyncIterator[str]:
        finished = False
        deadline = None if body.timeout is None else time.monotonic() + body.timeout
        try:
            yield chunk({"role": "assistant", "content": ""})
            streamed = False
            async with _with_keepalive(
                wb.hub.stream(sid, after, run_id=handle.run_id), wb.config.sse_ping, deadline
            ) as events:
                async for ev in events:
                    if ev is None:  # nothing for a while: keep the stream open
                        yield ": keep-alive\n\n"
                        continue
                    if ev.run_id != handle.run_id:
                        continue
                    if ev.type == "message.delta":
                        streamed = True
                        yield chunk({"content": getattr(ev, "text", "")})
                    elif ev.type in TERMINAL_TYPES:
                        break
            if not handle.task.done():  # the deadline passed
                engine.cancel(handle.run_id)
            outcome = await handle.wait()
            finished = True
            if outcome.status == "cancelled" and body.timeout is not None:
                err = openai_error(504, _timed_out(body.timeout), param="timeout", code="timeout")
                yield f"data: {json.dumps(err)}\n\n"
                yield "data: [DONE]\n\n"
                return
            if not outcome.ok:
                err = openai_error(502, _failure(outcome), code="run_failed")
                yield f"data: {json.dumps(err)}\n\n"
                yield "data: [DONE]\n\n"
                return
            if not streamed and outcome.output:
                yield chunk({"content": outcome.output})
            yield chunk({}, "stop")
            if include_usage:
                usage = _usage(outcome).model_dump()
                data = {
                    "id": completion_id,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": body.model,
                    "choices": [],
                    "usage": usage,
                }
                yield f"data: {json.dumps(data)}\n\n"
            yield "data: [DONE]\n\n"
        finally:
            if not finished and not handle.task.done():
                engine.cancel(handle.run_id)  # the client went away

    return StreamingResponse(chunks(), media_type="text/event-stream", headers=headers)


def _timed_out(timeout: float) -> str:
    return f"the run took longer than the request's timeout ({timeout:g} s) and was cancelled"


async def _disconnected(request: Request) -> None:
    """Until the client disconnects (its body was read: nothing else comes before that)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def _outcome_unless_abandoned(
    wb: ServerState, request: Request, handle: RunHandle, timeout: float | None
) -> RunOutcome | None:
    """The run's outcome; or None when the client disconnected first, its run cancelled;
    the run is cancelled after ``timeout`` seconds too (its outcome says so)."""
    gone = asyncio.create_task(_disconnected(request))
    try:
        done, _ = await asyncio.wait(
            {handle.task, gone}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        gone.cancel()
    if handle.task.done():
        return await handle.wait()
    wb.engine.cancel(handle.run_id)
    if gone in done:
        log.info("run %s cancelled: its client went away", handle.run_id)
        await handle.wait()
        return None
    return await handle.wait()


_Item = TypeVar("_Item")


@contextlib.asynccontextmanager
async def _with_keepalive(
    source: AsyncGenerator[_Item, None], every: float, deadline: float | None
) -> AsyncIterator[AsyncIterator[_Item | None]]:
    """``source``'s items, with None whenever ``every`` seconds pass without one; ends at
    ``deadline`` (``time.monotonic()``) too. A pump task reads the source, so that a
    wait never cancels the generator halfway."""
    queue: asyncio.Queue[tuple[bool, _Item | None]] = asyncio.Queue(maxsize=1)

    async def pump() -> None:
        async with contextlib.aclosing(source) as items:
            async for item in items:
                await queue.put((False, item))
        await queue.put((True, None))

    task = asyncio.create_task(pump())

    async def items() -> AsyncGenerator[_Item | None, None]:
        while True:
            wait = every
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
                if wait <= 0:
                    return
            try:
                async with asyncio.timeout(wait):
                    ended, item = await queue.get()
            except TimeoutError:
                if deadline is not None and time.monotonic() >= deadline:
                    return
                yield None
                continue
            if ended:
                return
            yield item

    gen = items()
    try:
        yield gen
    finally:
        await gen.aclose()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
