"""The direct path: every provider of the README's table from its model string and its usual
environment variable, without importing litellm; litellm only for the others."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.support.openai_server import FakeOpenAI, FakeOpenAIThread, Reply
from workbench.events import ModelRetry, RunFailed, ToolCall, ToolResult
from workbench.models import LiteLLMModel, ModelError, ModelTurn, make_model
from workbench.providers import PROVIDERS, needs_litellm, route

ROOT = Path(__file__).resolve().parent.parent

# -- the README's table and the routes -----------------------------------------------------


def readme_providers() -> list[tuple[str, str, str]]:
    """(provider, model string, environment) of each row of the README's provider table."""
    text = (ROOT / "README.md").read_text()
    start = text.index("| provider | model string | environment |")
    rows = []
    for line in text[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows.append((cells[0], cells[1], cells[2]))
    return rows


def test_every_provider_of_the_readme_is_called_directly() -> None:
    rows = readme_providers()
    assert len(rows) >= 10
    for name, model_cell, env_cell in rows:
        inline = re.findall(r"`([^`]+)`", model_cell)
        assert inline, f"no model string in the README's row for {name}"
        spec = inline[0]
        if spec.startswith("{"):  # a models: table, as YAML flow
            import yaml

            table = yaml.safe_load(spec)
            model, params = table.pop("model"), table
        else:
            model, params = spec, {}
        r = route(model, params, environ={})
        assert r is not None, f"{name}: {spec} does not take the direct path"
        assert not needs_litellm(model, params)
        for var in re.findall(r"`([A-Z_]+)`", env_cell):
            names = r.provider.key_env + r.provider.base_env
            assert var in names, f"{name}: the README names {var}, the code reads {names}"


KEY = "sk-test-key"

PROVIDER_CASES = [
    # model string, key variable, endpoint, model on the wire, wire format
    ("openai/gpt-4o", "OPENAI_API_KEY", "https://api.openai.com/v1", "gpt-4o", "openai"),
    (
        "anthropic/claude-sonnet-4-5",
        "ANTHROPIC_API_KEY",
        "https://api.anthropic.com/v1",
        "claude-sonnet-4-5",
        "anthropic",
    ),
    (
        "gemini/gemini-2.0-flash",
        "GEMINI_API_KEY",
        "https://generativelanguage.googleapis.com/v1beta/openai",
        "gemini-2.0-flash",
        "openai",
    ),
    (
        "mistral/mistral-large-latest",
        "MISTRAL_API_KEY",
        "https://api.mistral.ai/v1",
        "mistral-large-latest",
        "openai",
    ),
    (
        "groq/llama-3.3-70b-versatile",
        "GROQ_API_KEY",
        "https://api.groq.com/openai/v1",
        "llama-3.3-70b-versatile",
        "openai",
    ),
    (
        "openrouter/openai/gpt-4o",
        "OPENROUTER_API_KEY",
        "https://openrouter.ai/api/v1",
        "openai/gpt-4o",
        "openai",
    ),
    (
        "deepseek/deepseek-chat",
        "DEEPSEEK_API_KEY",
        "https://api.deepseek.com",
        "deepseek-chat",
        "openai",
    ),
    ("xai/grok-2-latest", "XAI_API_KEY", "https://api.x.ai/v1", "grok-2-latest", "openai"),
]


@pytest.mark.parametrize(("model", "var", "base", "wire_model", "wire"), PROVIDER_CASES)
def test_a_provider_from_its_model_string_and_its_key_variable(
    model: str, var: str, base: str, wire_model: str, wire: str
) -> None:
    r = route(model, {}, environ={var: KEY, "UNRELATED_API_KEY": "no"})
    assert r is not None
    assert (r.base_url, r.model, r.api_key, r.wire) == (base, wire_model, KEY, wire)
    assert r.key_source == var
    # Without the variable: still direct, and the missing key is named (no request is made).
    bare = route(model, {}, environ={})
    assert bare is not None and bare.api_key is None and bare.key_source == var
    # The table's api_key wins over the environment.
    own = route(model, {"api_key": "from-yaml"}, environ={var: KEY})
    assert own is not None and own.api_key == "from-yaml"


def test_gemini_also_reads_google_api_key() -> None:
    r = route("gemini/gemini-2.0-flash", {}, environ={"GOOGLE_API_KEY": KEY})
    assert r is not None and r.api_key == KEY


@pytest.mark.parametrize(
    ("model", "env", "base"),
    [
        ("openai/gpt-4o", {"OPENAI_BASE_URL": "http://proxy:4000/v1/"}, "http://proxy:4000/v1"),
        ("openai/gpt-4o", {"OPENAI_API_BASE": "http://proxy:4000/v1"}, "http://proxy:4000/v1"),
        ("groq/llama3-8b", {"GROQ_API_BASE": "http://gw/openai/v1"}, "http://gw/openai/v1"),
        ("mistral/mistral-small", {"MISTRAL_API_BASE": "http://gw"}, "http://gw/v1"),
        ("ollama/llama3", {}, "http://127.0.0.1:11434/v1"),
        ("ollama/llama3", {"OLLAMA_API_BASE": "http://box:11434"}, "http://box:11434/v1"),
        ("ollama_chat/llama3", {"OLLAMA_API_BASE": "http://box:11434/"}, "http://box:11434/v1"),
        (
            "anthropic/claude-sonnet-4-5",
            {"ANTHROPIC_BASE_URL": "https://gw.example"},
            "https://gw.example/v1",
        ),
        (
            "anthropic/claude-sonnet-4-5",
            {"ANTHROPIC_API_BASE": "https://gw.example/v1/messages"},
            "https://gw.example/v1",
        ),
    ],
)
def test_the_endpoint_moves_with_the_providers_variable(
    model: str, env: dict[str, str], base: str
) -> None:
    r = route(model, {}, environ=env)
    assert r is not None and r.base_url == base


def test_ollama_needs_no_key() -> None:
    r = route("ollama/llama3", {}, environ={"OPENAI_API_KEY": KEY})
    assert r is not None and r.api_key is None and r.key_source is None


def test_an_openai_compatible_api_base_never_gets_the_openai_key() -> None:
    params = {"api_base": "http://127.0.0.1:8000/v1"}
    r = route("openai/qwen3", params, environ={"OPENAI_API_KEY": KEY})
    assert r is not None
    assert r.base_url == "http://127.0.0.1:8000/v1" and r.model == "qwen3"
    assert r.api_key == "none" and r.key_source is None
    r = route("openai/qwen3", {**params, "api_key": "local"}, environ={"OPENAI_API_KEY": KEY})
    assert r is not None and r.api_key == "local"


@pytest.mark.parametrize(
    ("model", "params"),
    [
        ("cohere/command-r", {}),  # a provider with its own wire format
        ("bedrock/anthropic.claude-3-haiku", {}),
        ("nosuchprovider/model-x", {}),
        ("openai/gpt-4o", {"direct": False}),  # direct: false forces litellm
        ("ollama/llama3", {"num_ctx": 8192}),  # an argument outside the wire format
        ("anthropic/claude-sonnet-4-5", {"thinking": {"type": "enabled"}}),
        ("anthropic/claude-sonnet-4-5", {"response_format": {"type": "json_object"}}),
        ("gemini/gemini-2.0-flash", {"api_base": "http://gemini-proxy"}),  # native format there
    ],
)
def test_everything_else_goes_through_litellm(model: str, params: dict[str, Any]) -> None:
    assert needs_litellm(model, params)
    m = make_model(model, params)
    assert isinstance(m, LiteLLMModel) and not m.direct and m.route is None


def test_the_offline_models_need_nothing() -> None:
    assert not needs_litellm("test") and not needs_litellm("replay")
    # Workbench's own keys in a models: table are not arguments of the call.
    assert not needs_litellm("openai/gpt-4o", {"stream": False, "retries": 2, "retry_delay": 1})


def test_a_bare_model_name_finds_its_provider_in_the_price_map() -> None:
    r = route("gpt-4o", {}, environ={"OPENAI_API_KEY": KEY})
    assert r is not None and r.provider.name == "openai" and r.model == "gpt-4o"
    r = route("claude-sonnet-4-5", {}, environ={"ANTHROPIC_API_KEY": KEY})
    assert r is not None and r.wire == "anthropic"
    assert route("no-such-model-anywhere", {}, environ={}) is None


# -- each provider, end to end against the local server ------------------------------------


def _pointed_at(model: LiteLLMModel, srv: FakeOpenAI) -> LiteLLMModel:
    """The model with its endpoint replaced by the local server's (the provider is remote)."""
    assert model.route is not None
    base = srv.base_url
    model.route = dataclasses.replace(model.route, base_url=base)
    return model


async def _collect(model: LiteLLMModel, *args: Any, **kw: Any) -> tuple[str, ModelTurn]:
    text, turn = "", None
    async for item in model.stream(*args, **kw):
        if isinstance(item, ModelTurn):
            turn = item
        else:
            text += item
    assert turn is not None
    return text, turn


@pytest.mark.parametrize(("model", "var", "base", "wire_model", "wire"), PROVIDER_CASES)
async def test_each_provider_streams_a_reply_with_its_key(
    fake_model: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
    model: str,
    var: str,
    base: str,
    wire_model: str,
    wire: str,
) -> None:
    monkeypatch.setenv(var, KEY)
    fake_model.push(Reply(text="Hello <b>there</b>", usage=(12, 3)))
    m = make_model(model)
    assert isinstance(m, LiteLLMModel) and m.direct
    _pointed_at(m, fake_model)
    try:
        text, turn = await _collect(m, [{"role": "user", "content": "hi"}])
    finally:
        await m.aclose()
    assert text == turn.text == "Hello <b>there</b>"
    assert (turn.usage.prompt_tokens, turn.usage.completion_tokens) == (12, 3)
    [req] = fake_model.requests
    assert req.json is not None and req.json["model"] == wire_model
    if wire == "anthropic":
        assert req.path == "/v1/messages"
        assert req.headers["x-api-key"] == KEY and "authorization" not in req.headers
    else:
        assert req.path == "/v1/chat/completions"
        assert req.headers["authorization"] == f"Bearer {KEY}"
        usage_asked = "stream_options" in req.json
        assert usage_asked is PROVIDERS[model.split("/")[0]].stream_usage


@pytest.mark.parametrize("model", ["gemini/gemini-2.0-flash", "anthropic/claude-sonnet-4-5"])
async def test_a_missing_key_is_named_before_any_request(
    fake_model: FakeOpenAI, model: str
) -> None:
    m = _pointed_at(LiteLLMModel(model), fake_model)
    with pytest.raises(ModelError) as caught:
        await _collect(m, [{"role": "user", "content": "hi"}])
    var = m.route.key_source if m.route else None
    assert var and var in str(caught.value) and caught.value.hint and var in caught.value.hint
    assert not caught.value.retryable
    assert fake_model.requests == []


@pytest.mark.parametrize("model", ["mistral/mistral-large-latest", "anthropic/claude-sonnet-4-5"])
async def test_a_refused_key_says_which_variable_to_fix(
    fake_model: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, model: str
) -> None:
    var = PROVIDERS[model.split("/")[0]].key_env[0]
    monkeypatch.setenv(var, "wrong")
    fake_model.push(Reply(error=401, message="invalid x-api-key"))
    m = _pointed_at(LiteLLMModel(model), fake_model)
    with pytest.raises(ModelError) as caught:
        try:
            await _collect(m, [{"role": "user", "content": "hi"}])
        finally:
            await m.aclose()
    assert "authentication failed" in str(caught.value) and "invalid x-api-key" in str(caught.value)
    assert caught.value.hint is not None and var in caught.value.hint
    assert len(fake_model.requests) == 1


# -- Anthropic's Messages API ---------------------------------------------------------------


def anthropic_workspace(write: Any, **model: Any) -> Path:
    table = json.dumps({"model": "anthropic/claude-sonnet-4-5", "retry_delay": 0.01, **model})
    return write(
        f"""
        models:
          claude: {table}
        agents:
          helper:
            model: claude
            instructions: You help.
            tools: ["tools:word_count"]
        approvals:
          default: allow
        """,
        {
            "tools.py": '''
            def word_count(text: str) -> int:
                """Count words.

                Args:
                    text: The text.
                """
                return len(text.split())
            '''
        },
    )


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
async def test_anthropic_tool_call_round_trip_through_the_engine(
    fake_model: FakeOpenAI,
    write_workspace: Any,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    stream: bool,
) -> None:
    from workbench.engine import Engine

    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_model.url)
    fake_model.push(
        Reply(text="Let me count.", tool_calls=[("tools_-word_count", {"text": "a b c"})]),
        Reply(text="Three <words>."),
    )
    root = anthropic_workspace(write_workspace, stream=stream)
    seen: list[Any] = []
    async with Engine.open(root, db_url) as engine:
        engine.add_listener(seen.append)
        outcome = await engine.run("helper", "count 'a b c'")
    assert outcome.ok, outcome.error
    assert outcome.output == "Three <words>."
    call = next(e for e in seen if isinstance(e, ToolCall))
    assert call.tool == "tools:word_count" and call.arguments == {"text": "a b c"}
    assert next(e for e in seen if isinstance(e, ToolResult)).output == "3"
    first, second = fake_model.messages_requests
    assert first.json is not None and second.json is not None
    assert first.json["system"] == "You help." and first.json.get("stream", False) is stream
    assert first.json["max_tokens"] > 0  # required by the API: the model's from the map
    assert first.json["tools"][0]["name"] == "tools_-word_count"
    assert first.json["tools"][0]["input_schema"]["required"] == ["text"]
    # The tool result went back as a user turn right after the assistant's tool_use.
    assistant, results = second.json["messages"][-2:]
    use = next(b for b in assistant["content"] if b["type"] == "tool_use")
    assert use["input"] == {"text": "a b c"}
    assert results["role"] == "user"
    assert results["content"] == [{"type": "tool_result", "tool_use_id": use["id"], "content": "3"}]
    done = seen[-1]
    assert done.type == "run.completed" and done.usage.total_tokens > 0
    # Priced from the map as claude-sonnet-4-5.
    assert done.cost is not None and done.cost > 0


async def test_anthropic_overloaded_is_retried_and_a_bad_request_is_not(
    fake_model: FakeOpenAI, write_workspace: Any, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from workbench.engine import Engine

    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_model.url)
    fake_model.push(Reply(error=529, message="Overloaded"), Reply(text="fine"))
    root = anthropic_workspace(write_workspace)
    seen: list[Any] = []
    async with Engine.open(root, db_url) as engine:
        engine.add_listener(seen.append)
        outcome = await engine.run("helper", "hi")
        assert outcome.output == "fine"
        assert [e.attempt for e in seen if isinstance(e, ModelRetry)] == [1]
        fake_model.push(Reply(error=400, message="prompt is too long: 250000 tokens > 200000"))
        failed = await engine.run("helper", "again")
    assert failed.status == "failed"
    assert failed.error is not None and "context window exceeded" in failed.error
    last = seen[-1]
    assert isinstance(last, RunFailed)


def test_anthropic_request_translation() -> None:
    from workbench.messages_api import request

    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "look"}]},
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAA"}}],
        },
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"id": "c1", "function": {"name": "a", "arguments": '{"x": 1}'}},
                {"id": "c2", "function": {"name": "b", "arguments": "{not json"}},
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "one"},
        {"role": "tool", "tool_call_id": "c2", "content": "Error: bad"},
        {"role": "user", "content": "and?"},
        {"role": "developer", "content": "Late rule."},
    ]
    body = request(
        "claude-x",
        messages,
        [{"type": "function", "function": {"name": "a", "parameters": {"type": "object"}}}],
        {"stop": "END", "tool_choice": "required", "parallel_tool_calls": False, "user": "u1"},
        stream=False,
        max_tokens=None,
    )
    assert body["system"] == "Be brief.\n\nLate rule."
    assert body["max_tokens"] == 4096 and "stream" not in body
    assert body["stop_sequences"] == ["END"] and body["metadata"] == {"user_id": "u1"}
    assert body["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    roles = [m["role"] for m in body["messages"]]
    assert roles == ["user", "assistant", "user"]  # neighbours merged, tool results in a user turn
    first, assistant, last = body["messages"]
    assert first["content"][0] == {"type": "text", "text": "look"}
    assert first["content"][1]["source"] == {
        "type": "base64",
        "media_type": "image/png",
        "data": "AAA",
    }
    assert [b["type"] for b in assistant["content"]] == ["tool_use", "tool_use"]  # no empty text
    assert assistant["content"][1]["input"] == {}  # arguments that were not JSON
    assert [b.get("tool_use_id") for b in last["content"]] == ["c1", "c2", None]
    assert last["content"][2] == {"type": "text", "text": "and?"}


async def test_anthropic_error_event_mid_stream(
    fake_model: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    from workbench.messages_api import StreamReader

    reader = StreamReader("anthropic/claude-x")
    reader.add({"type": "message_start", "message": {"usage": {"input_tokens": 5}}})
    with pytest.raises(ModelError) as caught:
        reader.add({"type": "error", "error": {"type": "overloaded_error", "message": "busy"}})
    assert caught.value.retryable and "busy" in str(caught.value)


# -- no litellm on the direct path ----------------------------------------------------------

_RUN_AND_REPORT = textwrap.dedent(
    """
    import json, sys
    from workbench.cli import run_cli
    code = run_cli(sys.argv[1:])
    print(json.dumps({"code": code, "litellm": "litellm" in sys.modules,
                      "openai": "openai" in sys.modules,
                      "sqlmodel": "sqlmodel" in sys.modules,
                      "orm": "sqlalchemy.orm" in sys.modules,
                      "sqlalchemy": "sqlalchemy" in sys.modules,
                      "httpx": "httpx" in sys.modules,
                      "httpx CLI": "httpx._main" in sys.modules or "click" in sys.modules}))
    """
)


def _run_in_subprocess(tmp_path: Path, yaml_text: str, env: dict[str, str]) -> dict[str, Any]:
    ws = tmp_path / "ws"
    ws.mkdir(exist_ok=True)
    (ws / "workbench.yaml").write_text(textwrap.dedent(yaml_text))
    import os

    full = {**os.environ, **env}
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            _RUN_AND_REPORT,
            "run",
            "-w",
            str(ws),
            "--db",
            f"sqlite:///{tmp_path}/wb.db",
            "hello",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=full,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    report["stdout"] = done.stdout
    return report


def test_a_run_through_the_direct_path_never_imports_litellm(tmp_path: Path) -> None:
    with FakeOpenAIThread() as srv:
        workspace = f"""
            models:
              default: {{model: openai/fake, api_base: "{srv.base_url}", api_key: none}}
            agents:
              helper: {{instructions: You help.}}
            """
        report = _run_in_subprocess(tmp_path, workspace, {})
        assert report["code"] == 0 and "echo: hello" in report["stdout"]
        assert report["litellm"] is False and report["openai"] is False
        assert len(srv.chat_requests) == 1
        # httpx, as a library: not its command-line client (click, rich's progress bars:
        # ≈ 18-50 ms of the first call), which it imports whenever click is installed.
        assert report["httpx"] is True and report["httpx CLI"] is False
        # Nor sqlmodel and SQLAlchemy's ORM (≈ 85 ms): the store opens, looks for dead
        # runs and writes with Core and compiled SQL; sqlmodel is for typed reads. Twice:
        # a new database, then one with a run in it.
        assert report["sqlmodel"] is False and report["orm"] is False
        # A new database is migrated, and migrations are written with SQLAlchemy Core: the
        # first run ever imports SQLAlchemy (once per database, not per start).
        assert report["sqlalchemy"] is True
        again = _run_in_subprocess(tmp_path, workspace, {})
        assert again["code"] == 0 and again["sqlmodel"] is False and again["orm"] is False
        # Every later start (≈ 150 ms): the schema is current, so the store opens, leases,
        # looks for dead runs and writes with plain sqlite3.
        assert again["sqlalchemy"] is False


def test_a_run_after_a_killed_one_marks_it_interrupted_without_sqlmodel(tmp_path: Path) -> None:
    """A person closed the terminal mid-answer: the next start notices the dead process and
    marks its run interrupted, with plain SQL (no sqlmodel, no ORM, no SQLAlchemy at all on
    that path either)."""
    import os
    import signal
    import sqlite3
    import time

    with FakeOpenAIThread([Reply(hang=True)]) as srv:
        ws = tmp_path / "ws"
        ws.mkdir()
        (ws / "workbench.yaml").write_text(
            "models:\n"
            f'  default: {{model: openai/fake, api_base: "{srv.base_url}", api_key: none}}\n'
            "agents:\n  helper: {instructions: You help.}\n"
        )
        db = tmp_path / "wb.db"
        args = ["run", "-w", str(ws), "--db", f"sqlite:///{db}"]
        hung = subprocess.Popen(
            [sys.executable, "-m", "workbench.cli", *args, "hello"],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 60
            while not srv.chat_requests:  # the run is in its model call
                assert hung.poll() is None and time.monotonic() < deadline
                time.sleep(0.02)
        finally:
            os.kill(hung.pid, signal.SIGKILL)
            hung.wait()
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT status FROM runs").fetchall() == [("running",)]
        report = _run_in_subprocess(tmp_path, (ws / "workbench.yaml").read_text(), {})
        assert report["code"] == 0 and "echo: hello" in report["stdout"]
        assert report["sqlmodel"] is False and report["orm"] is False
        assert report["sqlalchemy"] is False
        with sqlite3.connect(db) as conn:
            statuses = dict(conn.execute("SELECT status, count(*) FROM runs GROUP BY status"))
            said = conn.execute(
                "SELECT count(*) FROM events WHERE type = 'run.interrupted'"
            ).fetchone()
        assert statuses == {"interrupted": 1, "completed": 1} and said == (1,)


def test_a_provider_from_the_environment_never_imports_litellm(tmp_path: Path) -> None:
    with FakeOpenAIThread() as srv:
        for model, env in [
            ("openai/gpt-4o", {"OPENAI_BASE_URL": srv.base_url, "OPENAI_API_KEY": KEY}),
            (
                "anthropic/claude-sonnet-4-5",
                {"ANTHROPIC_BASE_URL": srv.url, "ANTHROPIC_API_KEY": KEY},
            ),
            ("groq/llama-3.3-70b-versatile", {"GROQ_API_BASE": srv.base_url, "GROQ_API_KEY": KEY}),
        ]:
            report = _run_in_subprocess(
                tmp_path,
                f"models: {{default: {model}}}\nagents: {{helper: {{instructions: Hi.}}}}\n",
                env,
            )
            assert report["code"] == 0 and "echo: hello" in report["stdout"], model
            assert report["litellm"] is False, model
        assert len(srv.requests) == 3


def test_the_test_model_never_imports_litellm(tmp_path: Path) -> None:
    report = _run_in_subprocess(tmp_path, "agents: {helper: {model: test}}\n", {})
    assert report["code"] == 0 and "[test model]" in report["stdout"]
    assert report["litellm"] is False


def test_litellm_is_imported_on_the_first_call_of_a_model_that_needs_it(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        import asyncio, json, sys
        from workbench.engine import Engine

        async def main(root, db):
            async with Engine.open(root, db) as engine:
                await engine.build_agent("helper")
                built = "litellm" in sys.modules
                outcome = await engine.run("helper", "hello")
                return built, outcome.output, "litellm" in sys.modules

        built, output, after = asyncio.run(main(sys.argv[1], sys.argv[2]))
        print(json.dumps([built, output, after]))
        """
    )
    with FakeOpenAIThread() as srv:
        ws = tmp_path / "ws"
        ws.mkdir()
        (ws / "workbench.yaml").write_text(
            f'models: {{default: {{model: openai/fake, api_base: "{srv.base_url}", '
            "api_key: none, direct: false}}\nagents: {helper: {instructions: Hi.}}\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", code, str(ws), f"sqlite:///{tmp_path}/wb.db"],
            capture_output=True,
            text=True,
            timeout=180,
            cwd=ROOT,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [False, "echo: hello", True]
    # litellm's own chatter went to our log, not the terminal.
    assert "LiteLLM" not in done.stderr


def test_nothing_but_models_imports_litellm() -> None:
    """Every import goes through ``litellm_module`` / ``litellm_async``, which sets
    LITELLM_LOCAL_MODEL_COST_MAP and routes litellm's logging first."""
    offenders = []
    for package in ("workbench", "screens", "plugins"):
        for path in (ROOT / package).rglob("*.py"):
            if path == ROOT / "workbench" / "models.py":
                continue
            if re.search(r"^\s*(import litellm|from litellm)", path.read_text(), re.M):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_importing_litellm_sets_the_local_price_map_and_keeps_quiet(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        import json, logging, os, sys
        os.environ.pop("LITELLM_LOCAL_MODEL_COST_MAP", None)
        from workbench.logs import setup_logging
        setup_logging()
        from workbench.models import litellm_module, litellm_loaded
        assert not litellm_loaded()
        litellm_module()
        handlers = {
            name: [type(h).__name__ for h in logging.getLogger(name).handlers]
            for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy")
        }
        print(json.dumps([os.environ.get("LITELLM_LOCAL_MODEL_COST_MAP"), litellm_loaded(),
                          handlers]))
        """
    )
    env = {k: v for k, v in __import__("os").environ.items() if k != "LITELLM_LOCAL_MODEL_COST_MAP"}
    env["WORKBENCH_LOG"] = str(tmp_path / "wb.log")
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    flag, loaded, handlers = json.loads(done.stdout.strip().splitlines()[-1])
    assert flag == "True" and loaded is True
    assert all(kinds == ["RotatingFileHandler"] for kinds in handlers.values()), handlers
    assert done.stderr == ""  # no fetch of the remote price map, no warning printed


# -- which models a target needs, and warming them -------------------------------------------


def test_a_targets_models_include_members_leaders_judges_steps_and_routers(
    write_workspace: Any,
) -> None:
    from workbench.workspace import load_workspace

    root = write_workspace(
        """
        models:
          default: openai/gpt-4o
          lead: anthropic/claude-sonnet-4-5
        agents:
          a: {model: mistral/mistral-small}
          b: {model: groq/llama3-8b}
          c: {model: cohere/command-r}
          picker: {model: xai/grok-2}
          judge: {model: deepseek/deepseek-chat}
          lone: {model: test}
        teams:
          inline: {mode: coordinate, leader: {model: lead}, members: [a, b]}
          voters: {mode: consensus, members: [a, inline], judge: judge}
          chain: {mode: sequential, members: [a]}
        workflows:
          inner:
            steps: [{step: x, agent: c}]
          flow:
            steps:
              - {step: s, team: chain}
              - parallel: [{step: p, agent: b}]
              - router: r
                by: picker
                routes: {one: [{step: w, workflow: inner}]}
              - loop: l
                max_iterations: 2
                steps: [{condition: "steps.s.output contains 'x'", then: [{step: t, agent: lone}]}]
        """
    )
    ws = load_workspace(root)

    def models(kind: str, name: str) -> set[str]:
        return {spec.model for spec in ws.target_models(kind, name)}

    assert models("agent", "c") == {"cohere/command-r"}
    assert models("team", "inline") == {
        "anthropic/claude-sonnet-4-5",
        "mistral/mistral-small",
        "groq/llama3-8b",
    }
    assert models("team", "voters") == {
        "mistral/mistral-small",
        "groq/llama3-8b",
        "anthropic/claude-sonnet-4-5",
        "deepseek/deepseek-chat",
        "openai/gpt-4o",  # its leader is the default model
    }
    assert models("team", "chain") == {"mistral/mistral-small"}  # no leader in sequence
    assert models("workflow", "flow") == {
        "mistral/mistral-small",
        "groq/llama3-8b",
        "xai/grok-2",
        "cohere/command-r",
        "test",
    }
    assert models("agent", "missing") == set()


_WARM = textwrap.dedent(
    """
    import json, socket, sys, time
    import httpx
    from workbench.engine import Engine
    from workbench.server import ServerThread

    tried = []  # every address a socket connects to, from any thread
    connect = socket.socket.connect

    def recording(self, address):
        tried.append(list(address) if isinstance(address, tuple) else address)
        return connect(self, address)

    socket.socket.connect = recording
    with ServerThread(Engine.open(sys.argv[1], sys.argv[2])) as srv:
        assert httpx.get(srv.url + "/health").status_code == 200
        deadline = time.monotonic() + float(sys.argv[3])
        while "litellm" not in sys.modules and time.monotonic() < deadline:
            time.sleep(0.05)
        from workbench.models import start_litellm_import
        loaded = "litellm" in sys.modules
        if loaded:
            start_litellm_import().result(120)
    port = int(srv.url.rsplit(":", 1)[1])
    print(json.dumps({"loaded": loaded, "elsewhere": [a for a in tried if a[1:2] != [port]]}))
    """
)


@pytest.mark.parametrize(
    ("model", "expect"), [("cohere/command-r", True), ("openai/gpt-4o", False), ("test", False)]
)
def test_serve_warms_litellm_at_start_only_when_a_model_needs_it(
    tmp_path: Path, model: str, expect: bool
) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "workbench.yaml").write_text(
        f"models: {{default: {model}}}\nagents: {{helper: {{instructions: Hi.}}}}\n"
    )
    wait = "120" if expect else "1.5"
    done = subprocess.run(
        [sys.executable, "-c", _WARM, str(ws), f"sqlite:///{tmp_path}/wb.db", wait],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["loaded"] is expect
    # Importing litellm and its warm-up call (answered by litellm itself) connect nowhere.
    assert report["elsewhere"] == []


# -- TLS: verified, and built once -------------------------------------------------------


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that nothing trusts, and its key (made by openssl)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
        + ["-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2"]
        + ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )
    return cert, key


async def test_https_is_verified_and_its_context_is_built_once(
    self_signed: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every model's client shares one verifying TLS context (httpx builds one per client,
    loading the CA bundle each time), built as httpx builds it: a certificate nothing
    trusts is refused before a byte of the request is sent, and ``SSL_CERT_FILE`` is
    honoured. A plain-HTTP base loads no CA at all and still verifies, were TLS tried."""
    import ssl

    from workbench import models

    cert, key = self_signed
    served = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    served.load_cert_chain(cert, key)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    params = {"api_key": "none", "retries": 0}
    messages = [{"role": "user", "content": "hi"}]
    models._shared_tls.cache_clear()
    try:
        async with FakeOpenAI(tls=served) as srv:
            assert srv.base_url.startswith("https://")
            untrusted = make_model("openai/fake", {**params, "api_base": srv.base_url})
            assert isinstance(untrusted, LiteLLMModel)
            try:
                with pytest.raises(ModelError, match="cannot verify the TLS certificate") as e:
                    await _collect(untrusted, messages)
                assert "self-signed certificate" in str(e.value)
                assert "SSL_CERT_FILE" in e.value.hint and not e.value.retryable
            finally:
                await untrusted.aclose()
            assert srv.requests == []

            monkeypatch.setenv("SSL_CERT_FILE", str(cert))
            models._shared_tls.cache_clear()
            srv.push(Reply(text="over TLS"), Reply(text="again"))
            one = make_model("openai/fake", {**params, "api_base": srv.base_url})
            two = make_model("openai/fake", {**params, "api_base": srv.base_url + "/"})
            assert isinstance(one, LiteLLMModel) and isinstance(two, LiteLLMModel)
            try:
                assert (await _collect(one, messages))[0] == "over TLS"
                assert (await _collect(two, messages))[0] == "again"
            finally:
                await one.aclose()
                await two.aclose()
            assert models._shared_tls.cache_info().misses == 1  # built once for both
    finally:
        models._shared_tls.cache_clear()

    plain = models._tls_for("http://127.0.0.1:11434/v1")
    assert isinstance(plain, ssl.SSLContext)
    assert plain.verify_mode == ssl.CERT_REQUIRED and plain.check_hostname
    assert plain.cert_store_stats()["x509_ca"] == 0


def test_httpx_imported_as_a_library_keeps_its_cli_importable() -> None:
    """The direct path imports httpx without its CLI module; the CLI can still be imported
    on purpose afterwards (the mark that hid it is gone), and httpx.main says it cannot
    run rather than failing at import."""
    code = textwrap.dedent(
        """
        import sys
        from workbench.models import _import_httpx_as_a_library
        _import_httpx_as_a_library()
        import httpx
        assert "httpx._main" not in sys.modules and "click" not in sys.modules
        assert callable(httpx.main)
        import httpx._main
        assert "click" in sys.modules and callable(httpx._main.main)
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
