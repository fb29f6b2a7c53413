"""Running the server: ``workbench serve`` in the foreground, or a server in a thread."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TextIO

import uvicorn

from ._app import create_app
from ._config import ServerConfig, is_loopback, new_token

if TYPE_CHECKING:
    from fastapi import FastAPI

    from workbench.engine import Engine

__all__ = ["ServerThread", "serve"]

log = logging.getLogger("workbench.server")

GRACEFUL_SHUTDOWN_S = 5
"""Seconds requests in flight get to finish when the server stops."""


class _Uvicorn(uvicorn.Server):
    """uvicorn, ending every event stream first when asked to stop (so it can stop)."""

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self._app = app

    async def shutdown(self, sockets: list[Any] | None = None) -> None:
        self._app.state.wb.begin_shutdown()
        await super().shutdown(sockets)

    def url(self) -> str:
        """The address actually bound (the port may have been 0)."""
        for server in self.servers:
            for sock in server.sockets:
                host, port = sock.getsockname()[:2]
                if ":" in host:
                    host = f"[{host}]"
                return f"http://{host}:{port}"
        raise RuntimeError("the server is not listening")


def _uvicorn_config(app: FastAPI, config: ServerConfig) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        ws="none",
    )


def serve(
    workspace: Path | None,
    db: str | None,
    config: ServerConfig,
    *,
    out: TextIO | None = None,
) -> int:
    """Serve a workspace until interrupted (``workbench serve``).

    A non-loopback address without a token gets a fresh token, printed once.

    Args:
        workspace: The workspace folder (None: the current one).
        db: The store's URL (None: the default SQLite file).
        config: Address, token, CORS, limits.
        out: Where the address (and a generated token) is printed; stdout by default.

    Returns:
        The exit code.
    """
    from workbench.engine import Engine

    out = out or sys.stdout
    if not config.token and not is_loopback(config.host):
        config.token = new_token()
        print(
            f"workbench: binding {config.host} needs a token; generated one (shown once):\n"
            f"  {config.token}",
            file=out,
            flush=True,
        )
    config.check()
    _log_problems_to_stderr()
    engine = Engine.open(workspace, db, kind="serve", lease_s=config.lease)
    app = create_app(engine, config, owns_engine=True)
    server = _Uvicorn(_uvicorn_config(app, config), app)
    from workbench.startup import resume_collector

    resume_collector()  # paused by the command line for the start-up

    async def main() -> None:
        async def announce() -> None:
            while not server.started:
                if server.should_exit:
                    return
                await asyncio.sleep(0.02)
            print(
                f"workbench: listening on {server.url()} "
                f"(workspace {engine.root}, database {engine.store.url})",
                file=out,
                flush=True,
            )

        task = asyncio.create_task(announce())
        try:
            await server.serve()
        finally:
            task.cancel()

    asyncio.run(main())
    return 0 if server.started else 1


def _log_problems_to_stderr() -> None:
    """Warnings and errors also go to stderr: a server has no TUI to protect."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    for name in ("workbench", "uvicorn.error"):
        logging.getLogger(name).addHandler(handler)


class ServerThread:
    """A server for an engine in a thread of its own, on a free loopback port (tests, benches).

    The engine is closed when the server stops.

        with ServerThread(Engine.open(root, db)) as srv:
            httpx.get(srv.url + "/health")

    Args:
        engine: The engine to serve (its runs execute in the server's thread).
        config: Settings; host and port default to 127.0.0.1 and a free port.
    """

    def __init__(self, engine: Engine, config: ServerConfig | None = None) -> None:
        self.config = config or ServerConfig(port=0)
        self.engine = engine
        self.app = create_app(engine, self.config, owns_engine=True)
        self._server = _Uvicorn(_uvicorn_config(self.app, self.config), self.app)
        self._thread = threading.Thread(target=self._run, name="workbench-server", daemon=True)
        self._error: BaseException | None = None
        self.url = ""
        """``http://127.0.0.1:PORT`` once started."""
        self.loop: asyncio.AbstractEventLoop | None = None
        """The server's event loop (where the engine's runs execute), once started."""

    def _run(self) -> None:
        async def main() -> None:
            self.loop = asyncio.get_running_loop()
            await self._server.serve()

        try:
            asyncio.run(main())
        except BaseException as exc:  # reported by start()
            self._error = exc

    def start(self, timeout: float = 20.0) -> ServerThread:
        """Start and wait until it accepts connections."""
        self._thread.start()
        deadline = threading.Event()
        waited = 0.0
        while not self._server.started:
            if self._error is not None or not self._thread.is_alive():
                raise RuntimeError(f"the server did not start: {self._error!r}")
            if waited >= timeout:
                raise TimeoutError("the server did not start in time")
            deadline.wait(0.01)
            waited += 0.01
        self.url = self._server.url()
        return self

    def stop(self, timeout: float = 20.0) -> None:
        """Stop (ending event streams) and wait for the thread."""
        self._server.should_exit = True
        self._thread.join(timeout)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
