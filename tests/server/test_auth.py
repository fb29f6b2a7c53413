"""The token: wrong or missing gives 401 and nothing runs; health stays open."""

from __future__ import annotations

import io
import re

import httpx
import pytest

from tests.server.conftest import MakeServer, read_until
from workbench.events import TERMINAL_TYPES
from workbench.server import ServerConfig, new_token

TOKEN = "s3cret-token-for-tests"


@pytest.fixture
def secured(make_server: MakeServer) -> str:
    return make_server(token=TOKEN).url


ROUTES = [
    ("GET", "/ready"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/api/catalogue"),
    ("GET", "/api/workspace"),
    ("GET", "/api/sessions"),
    ("GET", "/api/approvals"),
    ("GET", "/api/runs/r_x"),
    ("POST", "/api/runs"),
    ("POST", "/api/runs/r_x/cancel"),
    ("POST", "/api/approvals/r_1/call_1"),
    ("DELETE", "/api/sessions/s_x"),
    ("DELETE", "/api/rules/r_x"),
    ("GET", "/api/sessions/s_x/stream"),
    ("GET", "/v1/models"),
    ("POST", "/v1/chat/completions"),
    ("POST", "/mcp"),
    ("GET", "/api/nowhere"),
]


BODY = {
    "target": "chat",
    "input": "x",
    "model": "chat",
    "messages": [{"role": "user", "content": "x"}],
}


def test_wrong_or_missing_token_gets_401_and_nothing_runs(secured: str) -> None:
    for auth in (None, "Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x", "Bearer", TOKEN):
        headers = {"Authorization": auth} if auth else {}
        with httpx.Client(base_url=secured, headers=headers) as c:
            for method, path in ROUTES:
                r = c.request(method, path, json=BODY)
                assert r.status_code == 401, (auth, method, path, r.status_code)
                # the OpenAI-compatible routes answer as OpenAI does (its SDKs read it)
                kind = "invalid_request_error" if path.startswith("/v1/") else "unauthorized"
                assert r.json()["error"]["type"] == kind
                assert r.headers["www-authenticate"].startswith("Bearer")
            assert c.get("/health").status_code == 200
    with httpx.Client(base_url=secured, headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        assert c.get("/api/sessions").json() == []  # nothing ran


def test_the_right_token_opens_every_route(secured: str) -> None:
    with httpx.Client(base_url=secured, headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        assert c.get("/ready").status_code == 200
        body = c.post("/api/runs", json={"target": "chat", "input": "hi"}).json()
        events = read_until(
            c, f"/api/runs/{body['run_id']}/stream", lambda e: e.type in TERMINAL_TYPES
        )
        assert events[-1].type == "run.completed"
        assert c.get("/v1/models").status_code == 200


def test_event_streams_also_take_the_token_in_the_query(secured: str) -> None:
    with httpx.Client(base_url=secured) as c:
        body = c.post(
            "/api/runs",
            json={"target": "chat", "input": "hi"},
            headers={"Authorization": f"Bearer {TOKEN}"},
        ).json()
        events = read_until(
            c,
            f"/api/runs/{body['run_id']}/stream",
            lambda e: e.type in TERMINAL_TYPES,
            params={"token": TOKEN},
        )
        assert events[-1].type == "run.completed"
        assert (
            c.get(f"/api/runs/{body['run_id']}/stream", params={"token": "nope"}).status_code == 401
        )
        # only streams: other routes want the header
        assert c.get("/api/sessions", params={"token": TOKEN}).status_code == 401


def test_serve_on_a_public_address_generates_a_token_and_prints_it_once(
    workspace: object, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from workbench.server import _serve

    class Stop(Exception):
        pass

    def fake_open(root: object, db: object, **options: object) -> object:
        raise Stop  # stop before binding anything

    monkeypatch.setattr("workbench.engine.Engine.open", staticmethod(fake_open))
    out = io.StringIO()
    config = ServerConfig(host="0.0.0.0", port=0)
    with pytest.raises(Stop):
        _serve.serve(None, db_url, config, out=out)
    printed = out.getvalue()
    assert isinstance(config.token, str) and len(config.token) >= 40
    assert printed.count(config.token) == 1
    assert re.search("needs a token", printed)
    assert new_token() != new_token()


# -- DNS rebinding: without a token, only requests that name this server ----------------------

FOREIGN = [
    {"Host": "attacker.example"},
    {"Host": "attacker.example:8765"},
    {"Host": "127.0.0.1.attacker.example"},
    {"Host": "localhost.attacker.example"},
    {"Origin": "http://attacker.example"},
    {"Origin": "http://localhost.attacker.example:8765"},
    {"Origin": "null"},
    {"Origin": "chrome-extension://abcdef"},
]


def test_without_a_token_a_foreign_host_or_origin_gets_403_on_every_route(
    make_server: MakeServer,
) -> None:
    srv = make_server(cors_origins=["https://app.example"])
    port = srv.url.rsplit(":", 1)[1]
    with httpx.Client(base_url=srv.url) as c:
        for headers in FOREIGN:
            for method, path in [*ROUTES, ("GET", "/health"), ("GET", "/mcp")]:
                r = c.request(method, path, json=BODY, headers=headers)
                assert r.status_code == 403, (headers, method, path, r.status_code)
                error = r.json()["error"]
                kind = "invalid_request_error" if path.startswith("/v1/") else "forbidden"
                assert error["type"] == kind and "DNS rebinding" in error["message"]
        assert c.get("/api/sessions").json() == []  # nothing ran
        own = [
            {},
            {"Host": f"localhost:{port}"},
            {"Host": "LOCALHOST"},
            {"Host": f"[::1]:{port}"},
            {"Host": f"127.0.0.2:{port}"},
            {"Origin": f"http://localhost:{port}"},
            {"Origin": "http://127.0.0.1:5173"},  # a page served from this machine
            {"Origin": "https://app.example"},  # allowed by --cors
        ]
        for headers in own:
            assert c.get("/health", headers=headers).status_code == 200, headers
            assert c.get("/api/sessions", headers=headers).status_code == 200, headers
        r = c.post("/api/runs", json={"target": "chat", "input": "hi"}, headers=own[1])
        assert r.status_code == 202


def test_with_a_token_the_token_is_what_counts(secured: str) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=secured) as c:
        for headers in FOREIGN:
            assert c.get("/api/sessions", headers={**headers, **auth}).status_code == 200
            assert c.get("/api/sessions", headers=headers).status_code == 401
