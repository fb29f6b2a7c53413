"""The ``workbench`` command.

``workbench`` alone opens the TUI; the subcommands work with no terminal at all. Imports are
lazy: the TUI's first frame must not wait for litellm, the engine or rich's heavier parts.

Exit codes: 0 success; 1 the run failed (or a check failed); 2 bad usage or configuration;
3 a run is waiting for an approval nobody could give; 130 interrupted.

One module per command group (:mod:`~workbench.cli.run`, :mod:`~workbench.cli.sessions`,
:mod:`~workbench.cli.replay`, :mod:`~workbench.cli.tools`, :mod:`~workbench.cli.serve`,
:mod:`~workbench.cli.knowledge`, :mod:`~workbench.cli.setup`); the parser in
:mod:`~workbench.cli.parser`; this module parses and dispatches.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse

from .common import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, CliError, _err, _hint, _run_tui
from .parser import build_parser

__all__ = ["build_parser", "main", "run_cli"]


EXIT_BROKEN_PIPE = 1
"""The reader of our output went away (``workbench sessions export ID | head``): exit
quietly, with the code rich's console uses for the same (the Python docs' recipe)."""


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``workbench`` script."""
    from workbench.startup import pause_collector

    pause_collector()  # each command resumes it when its start-up is over (run_cli)
    try:
        code = run_cli(list(sys.argv[1:] if argv is None else argv))
        sys.stdout.flush()  # a closed pipe shows here, not at exit with a traceback
    except BrokenPipeError:
        _stdout_to_devnull()
        code = EXIT_BROKEN_PIPE
    sys.exit(code)


def _stdout_to_devnull() -> None:
    """The reader left: what is still buffered goes nowhere (no "Exception ignored ...
    BrokenPipeError" at exit)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def _bare(argv: list[str]) -> SimpleNamespace | None:
    """The options of a bare ``workbench`` (open the TUI: ``-w DIR``, ``--db URL``), or None
    when ``argv`` asks for anything else.

    The TUI's first frame is the start-up people feel, and building the full parser (every
    subcommand's options and help) costs a tenth of it; anything unusual (a subcommand,
    ``--help``, a missing value) goes to the full parser, which also reports errors.
    """
    values: dict[str, str | None] = {"workspace": None, "db": None}
    names = {"-w": "workspace", "--workspace": "workspace", "--db": "db"}
    i = 0
    while i < len(argv):
        flag, eq, value = argv[i].partition("=")
        name = names.get(flag)
        if name is None or values[name] is not None:
            return None
        if not eq:
            i += 1
            if i == len(argv) or argv[i].startswith("-"):
                return None
            value = argv[i]
        if not value:
            return None
        values[name] = value
        i += 1
    ws = values["workspace"]
    return SimpleNamespace(workspace=Path(ws) if ws else None, db=values["db"])


def run_cli(argv: list[str]) -> int:
    """Parse and dispatch; returns the exit code."""
    args: argparse.Namespace | SimpleNamespace | None = _bare(argv)
    if args is None:
        args = build_parser().parse_args(argv)
        if args.version:
            from importlib.metadata import version

            print(f"workbench {version('workbench-agents')}")
            return EXIT_OK
        from workbench.logs import setup_logging

        # The TUI (a bare workbench) sets up logging itself, after its first frame.
        setup_logging()
    try:
        command = getattr(args, "command", None)
        _refuse_flags(command, args)
        if command not in (None, "run", "serve") and not getattr(args, "serve", False):
            # The TUI, run and serve resume the collector once their engine is open.
            from workbench.startup import resume_collector

            resume_collector()
        if command is None:
            if getattr(args, "serve", False):
                return _command("serve")(args)
            return _open_tui(args)
        return int(_command(command)(args))
    except CliError as exc:
        _err(str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as exc:
        from workbench.registry import PluginError
        from workbench.workspace import WorkspaceError

        if isinstance(exc, WorkspaceError | PluginError):
            _err(str(exc))
            for extra in getattr(exc, "errors", [])[1:]:
                _err(str(extra))
            return EXIT_USAGE
        problem = _store_problem(exc, getattr(args, "db", None))
        if problem is not None:
            _err(problem.message)
            _hint(problem.hint)
            return EXIT_USAGE
        raise


def _store_problem(exc: BaseException, db: str | None) -> Any:
    """A :class:`~workbench.store.StoreError` for an error of the database (damaged,
    read-only, full, unreachable), raised when the store was opened or later; else None."""
    import sqlite3

    from workbench.store import StoreError, store_error, store_url

    if isinstance(exc, StoreError):
        return exc
    # SQLAlchemy's error only when SQLAlchemy is loaded (else exc is not one): importing
    # it for a plain sqlite3 error would cost ≈ 150 ms of the message.
    sa_exc = sys.modules.get("sqlalchemy.exc")
    if not isinstance(exc, sqlite3.Error) and not (
        sa_exc is not None and isinstance(exc, sa_exc.DBAPIError)
    ):
        return None
    return store_error(exc, store_url(db))


_NO_WORKSPACE_FLAG: dict[str, str] = {
    "init": "init makes the folder it is given: workbench init DIR",
    "attach": "attach opens the server's workspace, not a local one",
}
_NO_DB_FLAG: dict[str, str] = {
    "init": "init writes files only, no store",
    "attach": "attach uses the server's store",
    "knowledge": "the knowledge base lives in the workspace (.workbench/lancedb), not the store",
}


def _refuse_flags(command: str | None, args: Any) -> None:
    """``-w`` and ``--db`` before a subcommand they do not apply to: a clear error, not a
    silent no-op (``workbench --db URL attach ...`` would otherwise look as if it worked)."""
    if command is None:
        return
    if getattr(args, "workspace", None) is not None and command in _NO_WORKSPACE_FLAG:
        raise CliError(f"-w does not apply to '{command}': {_NO_WORKSPACE_FLAG[command]}")
    if getattr(args, "db", None) is not None and command in _NO_DB_FLAG:
        raise CliError(f"--db does not apply to '{command}': {_NO_DB_FLAG[command]}")


def _open_tui(args: argparse.Namespace | SimpleNamespace) -> int:
    return _run_tui(workspace=args.workspace, db=args.db)


_COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("setup", "cmd_init"),
    "knowledge": ("knowledge", "cmd_knowledge"),
    "run": ("run", "cmd_run"),
    "serve": ("serve", "cmd_serve"),
    "attach": ("serve", "cmd_attach"),
    "sessions": ("sessions", "cmd_sessions"),
    "replay": ("replay", "cmd_replay"),
    "doctor": ("setup", "cmd_doctor"),
    "tools": ("tools", "cmd_tools"),
    "rules": ("tools", "cmd_rules"),
}
"""Each command: the module of this package that runs it, and its function. Only the
command that runs is imported."""


def _command(name: str) -> Callable[[Any], int]:
    import importlib

    module, function = _COMMANDS[name]
    run: Callable[[Any], int] = getattr(importlib.import_module(f"{__name__}.{module}"), function)
    return run
