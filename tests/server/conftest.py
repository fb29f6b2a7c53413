"""Fixtures of the server tests: a workspace on the test model, servers in threads, PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import WriteWorkspace
from workbench.engine import Engine
from workbench.events import Event, parse_event
from workbench.server import ServerConfig, ServerThread

WORKSPACE = """
agents:
  chat:
    model: test
    instructions: Answer.
    description: Says back what it was told.
  helper:
    model: test
    instructions: Count words.
    tools: ["tools:word_count"]
  sleeper:
    model: test
    instructions: Nap.
    tools: ["tools:nap"]
teams:
  duo:
    mode: sequential
    members: [chat, helper]
workflows:
  flow:
    description: Two chats in a row.
    steps:
      - { step: first, agent: chat }
      - { step: second, agent: chat }
approvals:
  default: ask
  allow: ["tools:nap"]
"""

TOOLS = '''
import asyncio


def word_count(text: str) -> int:
    """Count the words in a text.

    Args:
        text: The text to count.
    """
    return len(text.split())


async def nap(seconds: float = 60.0) -> str:
    """Sleep (until cancelled).

    Args:
        seconds: How long.
    """
    await asyncio.sleep(seconds)
    return "rested"
'''


@pytest.fixture
def workspace(write_workspace: WriteWorkspace) -> Path:
    """A workspace whose agents use the offline test model."""
    return write_workspace(WORKSPACE, {"tools.py": TOOLS})


MakeServer = Callable[..., ServerThread]


@pytest.fixture
def make_server(workspace: Path, db_url: str) -> Iterator[MakeServer]:
    """Start servers in threads (stopped after the test); keyword arguments go to ServerConfig."""
    started: list[ServerThread] = []

    def make(db: str | None = None, **config: Any) -> ServerThread:
        config.setdefault("port", 0)
        config.setdefault("poll_interval", 0.05)
        config.setdefault("decision_wait", 3.0)
        srv = ServerThread(Engine.open(workspace, db or db_url), ServerConfig(**config))
        started.append(srv.start())
        return srv

    yield make
    for srv in started:
        srv.stop()


@pytest.fixture
def server(make_server: MakeServer) -> ServerThread:
    """A server without a token."""
    return make_server()


@pytest.fixture
def client(server: ServerThread) -> Iterator[httpx.Client]:
    """An HTTP client of :func:`server`."""
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


# -- SSE -----------------------------------------------------------------------------------


@dataclass
class Sse:
    """One server-sent event."""

    data: str
    id: str | None
    event: str

    @property
    def parsed(self) -> Event:
        """The workbench event it carries."""
        return parse_event(self.data)

    @property
    def json(self) -> Any:
        """Its data as JSON."""
        return json.loads(self.data)


def iter_sse(response: httpx.Response) -> Iterator[Sse]:
    """Parse a streaming ``text/event-stream`` response."""
    data: list[str] = []
    ident: str | None = None
    event = "message"
    for line in response.iter_lines():
        if line == "":
            if data:
                yield Sse("\n".join(data), ident, event)
            data, ident, event = [], None, "message"
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        elif name == "id":
            ident = value
        elif name == "event":
            event = value


def read_until(
    client: httpx.Client,
    path: str,
    stop: Callable[[Event], bool],
    headers: dict[str, str] | None = None,
    params: dict[str, Any] | None = None,
) -> list[Event]:
    """Read an event stream until ``stop(event)`` (the stopping event is included)."""
    out: list[Event] = []
    with client.stream("GET", path, headers=headers, params=params, timeout=30) as resp:
        assert resp.status_code == 200, resp.read()
        for msg in iter_sse(resp):
            ev = msg.parsed
            assert msg.id == str(ev.seq)
            out.append(ev)
            if stop(ev):
                break
    return out


def assert_gap_free(events: list[Event], start: int = 1) -> None:
    """Seqs follow each other from ``start`` without gap or repeat."""
    assert [e.seq for e in events] == list(range(start, start + len(events)))
