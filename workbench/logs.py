"""Logging: everything, ours and every library's, goes to one file, never over the TUI.

litellm, httpx, the MCP SDK and LanceDB all log (and litellm sometimes prints). The TUI owns
the terminal, so their records are routed into the ``workbench`` log file under the user log
directory; ``WORKBENCH_LOG`` overrides the path and ``WORKBENCH_LOG_LEVEL`` the level.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
from pathlib import Path

__all__ = ["LIBRARY_LOGGERS", "log_path", "setup_logging"]

LIBRARY_LOGGERS = (
    "LiteLLM",
    "LiteLLM Router",
    "LiteLLM Proxy",
    "litellm",
    "httpx",
    "httpcore",
    "openai",
    "mcp",
    "lancedb",
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
    "asyncio",
    "sqlalchemy",
    "primp",
    "ddgs",
    "client",  # the MCP SDK's ClientSession logs under this bare name
    "pypdf",
)
"""Library loggers re-homed into our file."""

_configured: Path | None = None


def log_path() -> Path:
    """Where the log file lives."""
    env = os.environ.get("WORKBENCH_LOG")
    if env:
        return Path(env)
    from platformdirs import user_log_dir

    return Path(user_log_dir("workbench")) / "workbench.log"


def _ours(name: str) -> list[logging.Handler]:
    """The handlers an earlier :func:`setup_logging` put on a logger."""
    return [h for h in logging.getLogger(name).handlers if getattr(h, _MARK, False)]


_MARK = "_workbench_log"


def setup_logging(level: str | None = None) -> Path:
    """Route our logger and every library logger into the log file. Idempotent.

    Returns:
        The log file's path.
    """
    global _configured
    path = log_path()
    if _configured == path:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(
        path, maxBytes=5_000_000, backupCount=2, encoding="utf-8", delay=True
    )
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    setattr(handler, _MARK, True)
    lvl = (level or os.environ.get("WORKBENCH_LOG_LEVEL") or "INFO").upper()
    root = logging.getLogger("workbench")
    # A new log path (WORKBENCH_LOG changed): the old file is closed, not left to the GC.
    for old in {h for n in ("workbench", "py.warnings", *LIBRARY_LOGGERS) for h in _ours(n)}:
        old.close()
    root.handlers[:] = [handler]
    root.setLevel(lvl)
    root.propagate = False
    for name in LIBRARY_LOGGERS:
        lg = logging.getLogger(name)
        lg.handlers[:] = [handler]
        lg.propagate = False
        if lg.level == logging.NOTSET or lg.level < logging.WARNING:
            lg.setLevel(logging.WARNING)
    logging.captureWarnings(True)
    wlog = logging.getLogger("py.warnings")
    wlog.handlers[:] = [handler]
    wlog.propagate = False
    _configured = path
    return path
