"""Shared fixtures: an isolated store and log per test, a workspace writer, the fake model server."""

from __future__ import annotations

import os
import textwrap
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.server._postgres import PostgresServer

# No test may reach a model provider or litellm's price list on the network.
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
for _key in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "WORKBENCH_DB"):
    os.environ.pop(_key, None)


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own user data, config and log directories."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / "state"))
    monkeypatch.setenv("WORKBENCH_LOG", str(home / "workbench.log"))


WriteWorkspace = Callable[..., Path]


@pytest.fixture(autouse=True)
def _logging_restored() -> Iterator[None]:
    """Logging as it was before the test: the CLI and the app route every library logger
    into the log file (``workbench.logs.setup_logging``), which must not outlive the test
    (later tests read records with caplog; the file handler must be closed)."""
    import logging
    import warnings

    import workbench.logs as logs

    names = ["workbench", "py.warnings", *logs.LIBRARY_LOGGERS]
    saved = {}
    for name in names:
        lg = logging.getLogger(name)
        saved[name] = (lg.handlers[:], lg.propagate, lg.level)
    configured = logs._configured
    showwarning = warnings.showwarning
    yield
    for name, (handlers, propagate, level) in saved.items():
        lg = logging.getLogger(name)
        for h in lg.handlers:
            if h not in handlers:
                h.close()
        lg.handlers[:] = handlers
        lg.propagate = propagate
        lg.setLevel(level)
    if warnings.showwarning is not showwarning:
        logging.captureWarnings(False)
    logs._configured = configured


@pytest.fixture
def write_workspace(tmp_path: Path) -> WriteWorkspace:
    """Write ``workbench.yaml`` (dedented) and optional extra files; returns the folder."""

    def write(yaml_text: str, files: dict[str, str] | None = None, name: str = "ws") -> Path:
        root = tmp_path / name
        root.mkdir(exist_ok=True)
        (root / "workbench.yaml").write_text(textwrap.dedent(yaml_text))
        for rel, content in (files or {}).items():
            p = root / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(textwrap.dedent(content))
        return root

    return write


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """A fresh SQLite store for the test."""
    return f"sqlite:///{tmp_path}/wb.db"


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL cluster for the whole test run, shared by every test that needs one
    (each takes a fresh database of it: :func:`pg_url`); skipped without the binaries."""
    from tests.server._postgres import PostgresServer, find_bin_dir

    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) are not installed")
    pg = PostgresServer(bin_dir).start()
    try:
        yield pg
    finally:
        pg.stop()


@pytest.fixture
def pg_url(postgres: PostgresServer) -> str:
    """A fresh database on :func:`postgres`."""
    return postgres.create_database()


@pytest.fixture
async def fake_model() -> AsyncIterator[object]:
    """The scripted OpenAI-compatible server on 127.0.0.1, in this test's loop."""
    from tests.support.openai_server import FakeOpenAI

    async with FakeOpenAI() as srv:
        yield srv


@pytest.fixture
def fake_model_thread() -> Iterator[object]:
    """The scripted server in its own thread (for tests that block, e.g. subprocesses)."""
    from tests.support.openai_server import FakeOpenAIThread

    with FakeOpenAIThread() as srv:
        yield srv
