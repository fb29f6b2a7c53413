"""``workbench serve`` / ``--serve`` / ``attach``: arguments reach the server and the TUI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.server.conftest import MakeServer
from workbench.cli import run_cli
from workbench.client import RemoteEngine
from workbench.server import ServerConfig


@pytest.fixture(autouse=True)
def _keep_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    """run_cli re-homes every logger into a file for good: not in a shared test process."""
    monkeypatch.setattr("workbench.logs.setup_logging", lambda *a, **k: None)


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, Any, ServerConfig]]:
    calls: list[tuple[Any, Any, ServerConfig]] = []

    def fake_serve(workspace: Any, db: Any, config: ServerConfig) -> int:
        calls.append((workspace, db, config))
        return 0

    monkeypatch.setattr("workbench.server.serve", fake_serve)
    return calls


def test_serve_and_the_headless_flag_are_the_same(
    served: list[tuple[Any, Any, ServerConfig]], monkeypatch: pytest.MonkeyPatch
) -> None:
    args = [
        "-w",
        "ws",
        "--db",
        "sqlite:///x.db",
        "--host",
        "0.0.0.0",
        "--port",
        "9",
        "--token",
        "t",
    ]
    assert (
        run_cli(["serve", *args, "--cors", "https://a.example", "--cors", "https://b.example"]) == 0
    )
    assert run_cli(["--serve", *args]) == 0
    (ws1, db1, c1), (ws2, db2, c2) = served
    assert ws1 == ws2 == Path("ws") and db1 == db2 == "sqlite:///x.db"
    assert (c1.host, c1.port, c1.token) == (c2.host, c2.port, c2.token) == ("0.0.0.0", 9, "t")
    assert c1.cors_origins == ["https://a.example", "https://b.example"] and c2.cors_origins == []
    assert (c1.take_over, c1.lease, c1.listen) == (False, None, True)
    assert run_cli(["serve", *args, "--take-over", "--lease", "2.5", "--no-listen"]) == 0
    assert (served[-1][2].take_over, served[-1][2].lease, served[-1][2].listen) == (
        True,
        2.5,
        False,
    )
    monkeypatch.setenv("WORKBENCH_TOKEN", "from-env")
    assert run_cli(["serve"]) == 0
    assert (served[-1][2].host, served[-1][2].port, served[-1][2].token) == (
        "127.0.0.1",
        8765,
        "from-env",
    )


def test_attach_refuses_an_unreachable_server(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["attach", "http://127.0.0.1:9"]) == 2
    assert "cannot reach http://127.0.0.1:9" in capsys.readouterr().err


def test_attach_opens_the_tui_on_a_remote_engine(
    make_server: MakeServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    srv = make_server(token="tok")
    assert run_cli(["attach", srv.url, "--token", "bad"]) == 2
    assert "401" in capsys.readouterr().err
    opened: dict[str, Any] = {}

    def fake_run(self: Any) -> int:
        opened["options"] = (self._watch_workspace, self._warm_up)
        opened["engine"] = self._engine_factory()
        opened["again"] = self._engine_factory()
        return 0

    monkeypatch.setattr("screens.app.WorkbenchApp.run", fake_run)
    monkeypatch.setenv("WORKBENCH_TOKEN", "tok")
    assert run_cli(["attach", srv.url]) == 0
    assert opened["options"] == (False, False)
    for engine in (opened["engine"], opened["again"]):
        assert isinstance(engine, RemoteEngine) and engine.catalogue_names()[0] == "chat"
        engine._sync.close()
