"""OpenAI-compatible chat, driven by the official ``openai`` client."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from tests.server.conftest import MakeServer
from workbench.server import ServerThread

TOKEN = "chat-token"


@pytest.fixture
def srv(make_server: MakeServer) -> ServerThread:
    return make_server(token=TOKEN)


@pytest.fixture
def oai(srv: ServerThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.url + "/v1", api_key=TOKEN, max_retries=0)


def test_models_are_the_agents_teams_and_workflows(oai: openai.OpenAI) -> None:
    models = oai.models.list()
    assert [(m.id, m.owned_by) for m in models.data] == [
        ("chat", "workbench:agent"),
        ("helper", "workbench:agent"),
        ("sleeper", "workbench:agent"),
        ("duo", "workbench:team"),
        ("flow", "workbench:workflow"),
    ]
    assert oai.models.retrieve("flow").id == "flow"
    with pytest.raises(openai.NotFoundError):
        oai.models.retrieve("gpt-4o")


def test_a_chat_completion(oai: openai.OpenAI, srv: ServerThread) -> None:
    raw = oai.chat.completions.with_raw_response.create(
        model="chat",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "earlier question"},
            {"role": "assistant", "content": "earlier answer"},
            {"role": "user", "content": [{"type": "text", "text": "and now?"}]},
        ],
        temperature=0.2,
    )
    reply = raw.parse()
    assert reply.choices[0].message.content == "[test model] You said: and now?"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.model == "chat" and reply.usage is not None and reply.usage.total_tokens > 0
    sid = raw.headers["x-workbench-session"]
    assert reply.id == "chatcmpl-" + raw.headers["x-workbench-run"]
    # the earlier turns are in the session's log, before the run
    with httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        events = c.get(f"/api/sessions/{sid}/events").json()
    said = [(e["role"], e["content"]) for e in events if e["type"] == "message.completed"]
    assert said[:4] == [
        ("system", "Be brief."),
        ("user", "earlier question"),
        ("assistant", "earlier answer"),
        ("user", "and now?"),
    ]


def test_a_streamed_chat_completion(oai: openai.OpenAI) -> None:
    stream = oai.chat.completions.create(
        model="chat",
        messages=[{"role": "user", "content": "stream these words please"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "[test model] You said: stream these words please"
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 3
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_a_workflow_as_a_model(oai: openai.OpenAI) -> None:
    reply = oai.chat.completions.create(model="flow", messages=[{"role": "user", "content": "go"}])
    assert reply.choices[0].message.content == "[test model] You said: [test model] You said: go"
    streamed = oai.chat.completions.create(
        model="flow", messages=[{"role": "user", "content": "go"}], stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
    assert text == "[test model] You said: [test model] You said: go"


def test_errors_come_back_as_openai_errors(oai: openai.OpenAI) -> None:
    """Shaped as OpenAI's (message, type, param, code), so the SDK fills its fields in."""
    with pytest.raises(openai.NotFoundError, match="does not exist") as missing:
        oai.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert (missing.value.type, missing.value.param, missing.value.code) == (
        "invalid_request_error",
        "model",
        "model_not_found",
    )
    with pytest.raises(openai.NotFoundError) as retrieved:
        oai.models.retrieve("gpt-4o")
    assert retrieved.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError, match="last message") as last:
        oai.chat.completions.create(model="chat", messages=[{"role": "assistant", "content": "x"}])
    assert (last.value.type, last.value.param) == ("invalid_request_error", "messages")
    with pytest.raises(openai.UnprocessableEntityError) as invalid:
        oai.chat.completions.create(model="chat", messages=[])
    assert (invalid.value.type, invalid.value.param) == ("invalid_request_error", "messages")
    with (
        openai.OpenAI(base_url=oai.base_url, api_key="wrong", max_retries=0) as wrong,
        pytest.raises(openai.AuthenticationError) as unauthorized,
    ):
        wrong.models.list()
    assert (unauthorized.value.type, unauthorized.value.code) == (
        "invalid_request_error",
        "invalid_api_key",
    )


# -- nothing waits for a client that left ---------------------------------------------------


def _nothing_left(srv: ServerThread) -> list[dict[str, object]]:
    """The runs of the server, once none is running or waiting any more."""
    import time

    with httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        deadline = time.monotonic() + 15
        while True:
            runs = [
                r
                for s in c.get("/api/sessions").json()
                for r in c.get(f"/api/sessions/{s['id']}").json()["runs"]
            ]
            if runs and all(r["status"] not in ("running", "waiting") for r in runs):
                assert c.get("/api/approvals").json() == []
                return runs
            assert time.monotonic() < deadline, runs
            time.sleep(0.05)


def test_a_client_that_gives_up_on_a_waiting_call_cancels_its_run(srv: ServerThread) -> None:
    """helper's tool asks for approval; the client stops waiting after a second."""
    with (
        openai.OpenAI(
            base_url=srv.url + "/v1", api_key=TOKEN, max_retries=0, timeout=1.0
        ) as impatient,
        pytest.raises(openai.APITimeoutError),
    ):
        impatient.chat.completions.create(
            model="helper", messages=[{"role": "user", "content": "count"}]
        )
    assert [r["status"] for r in _nothing_left(srv)] == ["cancelled"]


def test_the_request_timeout_ends_a_run_that_waits(oai: openai.OpenAI, srv: ServerThread) -> None:
    with pytest.raises(
        openai.APIStatusError, match="took longer than the request's timeout"
    ) as exc:
        oai.chat.completions.create(
            model="helper",
            messages=[{"role": "user", "content": "count"}],
            extra_body={"timeout": 0.5},
        )
    assert exc.value.status_code == 504
    assert (exc.value.type, exc.value.code, exc.value.param) == (
        "server_error",
        "timeout",
        "timeout",
    )
    assert [r["status"] for r in _nothing_left(srv)] == ["cancelled"]


def test_a_waiting_stream_sends_keep_alives_and_leaving_it_cancels_the_run(
    make_server: MakeServer,
) -> None:
    srv = make_server(token=TOKEN, sse_ping=0.2)
    with httpx.Client(base_url=srv.url, headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        body = {
            "model": "helper",
            "messages": [{"role": "user", "content": "count"}],
            "stream": True,
        }
        with c.stream("POST", "/v1/chat/completions", json=body, timeout=10) as resp:
            comments = 0
            for line in resp.iter_lines():
                if line.startswith(":"):
                    comments += 1
                    if comments == 3:
                        break  # the client leaves while the run waits for a decision
    assert comments == 3
    assert [r["status"] for r in _nothing_left(srv)] == ["cancelled"]


def test_the_routes_are_built_once_the_server_listens(make_server: MakeServer) -> None:
    """FastAPI (0.137 on) builds an included router's routes on the first request that
    reaches them; the server builds them itself (with the OpenAPI schema, in a thread) once
    it listens, so a first client does not wait for that. The schema it serves is that one."""
    srv = make_server(token=TOKEN)
    deadline = time.monotonic() + 30
    while srv.app.openapi_schema is None and time.monotonic() < deadline:
        time.sleep(0.02)
    schema = srv.app.openapi_schema
    assert schema is not None and "/v1/chat/completions" in schema["paths"]
    r = httpx.get(srv.url + "/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200 and r.json() == schema
