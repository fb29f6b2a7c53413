"""Session routes under ``/api``: search, fork, export (JSONL, Markdown, HTML) and import.

Thin wrappers of :mod:`workbench.sessions`. This router is included before the main one,
so that ``/api/sessions/search`` is not taken for a session id.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from workbench import sessions as lib

from ._api import SessionOut, _session_out
from ._state import ServerState, state_of

__all__ = ["router"]

router = APIRouter(prefix="/api", tags=["sessions"])

Wb = Annotated[ServerState, Depends(state_of)]

_ID_PATTERN = r"^[A-Za-z0-9_.:\-]{1,128}$"
SessionId = Annotated[str, Path(pattern=_ID_PATTERN, description="A session id.")]

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "The request cannot be done (the message says why)."},
    404: {"description": "No such session."},
}


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SearchHitOut(_Out):
    """A session whose messages or tool calls match."""

    session_id: str
    title: str
    workspace: str
    updated_at: float
    seq: int
    """The session's first matching event."""
    type: str
    """That event's type."""
    snippet: str
    """An excerpt of it around the match."""
    highlights: list[tuple[int, int]]
    """``[start, end)`` character offsets of the matched words in ``snippet``."""
    matches: int
    """How many of the session's events match."""


class ForkIn(BaseModel):
    """Where to fork: the last event (or message) the new session keeps: ``at_seq`` or
    ``message_id``, exactly one of them."""

    model_config = ConfigDict(
        extra="forbid",
        # what the server accepts, said in the schema: one place, not both, not none
        json_schema_extra={
            "oneOf": [
                {"required": ["at_seq"], "properties": {"at_seq": {"type": "integer"}}},
                {"required": ["message_id"], "properties": {"message_id": {"type": "string"}}},
            ]
        },
    )

    at_seq: int | None = Field(default=None, ge=1, le=2**53)
    """The seq of the last event to keep."""
    message_id: str | None = Field(default=None, pattern=_ID_PATTERN)
    """Or: the id of the last message to keep."""
    title: str | None = Field(default=None, max_length=500)
    """The new session's title (default "fork of <title>")."""

    @model_validator(mode="after")
    def _one_place(self) -> ForkIn:
        if (self.at_seq is None) == (self.message_id is None):
            raise ValueError("give at_seq or message_id (exactly one)")
        return self


def _hit(hit: Any) -> SearchHitOut:
    snippet, spans, at = "", [], 0
    for text, matched in hit.parts():
        if matched:
            spans.append((at, at + len(text)))
        snippet += text
        at += len(text)
    return SearchHitOut(
        session_id=hit.session_id,
        title=hit.title,
        workspace=hit.workspace,
        updated_at=hit.updated_at,
        seq=hit.seq,
        type=hit.type,
        snippet=snippet,
        highlights=spans,
        matches=hit.matches,
    )


def _failed(exc: lib.SessionsError) -> HTTPException:
    if isinstance(exc, lib.SessionNotFoundError):
        return HTTPException(404, str(exc))
    if isinstance(exc, lib.SessionExistsError):
        return HTTPException(409, str(exc))
    return HTTPException(400, str(exc))


@router.get("/sessions/search", response_model=list[SearchHitOut])
async def search_sessions(
    wb: Wb,
    q: Annotated[str, Query(min_length=1, max_length=500, description="Words to find.")],
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    prefix: Annotated[
        bool, Query(description="The last word may be the start of a word (as you type).")
    ] = False,
) -> list[SearchHitOut]:
    """Sessions whose messages, tool calls or tool results contain every word of ``q``
    (stemmed), most recently active first, each with an excerpt of its first match."""
    hits = await asyncio.to_thread(
        wb.engine.store.search_sessions, q.replace("\x00", " "), limit, 0, prefix=prefix
    )
    return [_hit(h) for h in hits]


@router.post(
    "/sessions/{session_id}/fork",
    status_code=201,
    response_model=SessionOut,
    responses=_ERRORS,
)
async def fork_session(wb: Wb, session_id: SessionId, body: ForkIn) -> SessionOut:
    """A new session with this one's events up to and including ``at_seq`` (or the
    message ``message_id``); start a run in it to continue from there."""
    title = body.title.replace("\x00", "\ufffd") if body.title is not None else None
    try:
        info = await asyncio.to_thread(
            lib.fork_session,
            wb.engine.store,
            session_id,
            at_seq=body.at_seq,
            message_id=body.message_id,
            title=title,
        )
    except lib.SessionsError as exc:
        raise _failed(exc) from None
    return _session_out(info)


_MEDIA = {"jsonl": "application/x-ndjson", "md": "text/markdown", "html": "text/html"}


@router.get(
    "/sessions/{session_id}/export/{format}",
    response_class=Response,
    responses={
        200: {
            "content": {media: {} for media in _MEDIA.values()},
            "description": "The session as a JSONL archive (lossless: the header, then the "
            "events), a Markdown transcript or a self-contained HTML page.",
        },
        404: _ERRORS[404],
    },
)
async def export_session(
    wb: Wb, session_id: SessionId, format: Literal["jsonl", "md", "html"]
) -> Response:
    """A session as ``workbench sessions export`` writes it."""
    store = wb.engine.store
    if await asyncio.to_thread(store.get_session, session_id) is None:
        raise HTTPException(404, f"no session '{session_id}'")
    headers = {"Content-Disposition": f'attachment; filename="{session_id}.{format}"'}
    media = f"{_MEDIA[format]}; charset=utf-8"
    if format != "jsonl":
        try:
            body = await asyncio.to_thread(lib.export_session, store, session_id, format)
        except lib.SessionsError as exc:
            raise _failed(exc) from None
        return Response(body, media_type=media, headers=headers)
    lines = lib.iter_jsonl(store, session_id)

    async def chunks() -> AsyncIterator[str]:
        while True:
            batch = await asyncio.to_thread(_take, lines, 1000)
            if not batch:
                return
            yield "".join(batch)

    return StreamingResponse(chunks(), media_type=media, headers=headers)


def _take(lines: Any, n: int) -> list[str]:
    out: list[str] = []
    for line in lines:
        out.append(line)
        if len(out) >= n:
            break
    return out


@router.post(
    "/sessions/import",
    status_code=201,
    response_model=SessionOut,
    responses={**_ERRORS, 409: {"description": "The session is already in the store."}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/x-ndjson": {"schema": {"type": "string", "minLength": 1}},
                "text/plain": {"schema": {"type": "string", "minLength": 1}},
            },
            "description": "A JSONL export (``workbench sessions export --format jsonl``).",
        }
    },
)
async def import_session(
    wb: Wb,
    request: Request,
    as_new: Annotated[bool, Query(description="Give the session (and its runs) new ids.")] = False,
) -> SessionOut:
    """Import a JSONL export; refused (409) when the session is already here, unless
    ``as_new``."""
    raw = await request.body()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPException(400, "the export must be UTF-8 text") from None
    try:
        info = await asyncio.to_thread(
            lib.import_session,
            wb.engine.store,
            text.splitlines(keepends=True),
            as_new=as_new,
            name="the request body",
        )
    except lib.SessionsError as exc:
        raise _failed(exc) from None
    return _session_out(info)
