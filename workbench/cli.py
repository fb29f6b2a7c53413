"""The ``workbench`` command.

``workbench`` alone opens the TUI; the subcommands work with no terminal at all. Imports are
lazy: the TUI's first frame must not wait for litellm, the engine or rich's heavier parts.

Exit codes: 0 success; 1 the run failed (or a check failed); 2 bad usage or configuration;
3 a run is waiting for an approval nobody could give; 130 interrupted.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse

    from rich.console import Console

    from workbench.approvals import PendingApproval, Resolution
    from workbench.engine import Engine
    from workbench.render import TranscriptPrinter
    from workbench.store import Store

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_WAITING, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class CliError(Exception):
    """A usage or configuration problem: printed, exit code 2."""


def _common(p: argparse.ArgumentParser) -> None:
    """``-w`` and ``--db`` of the bare command (before any subcommand): their defaults."""
    p.add_argument(
        "-w", "--workspace", type=Path, default=None, help="workspace folder (default: .)"
    )
    p.add_argument(
        "--db",
        default=None,
        help="SQLAlchemy URL of the store (default: SQLite in the user data dir)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (kept separate so the docs and tests can read it)."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="workbench",
        description="A terminal workbench for multi-agent systems. With no command, opens the TUI.",
    )
    _common(parser)
    parser.add_argument(
        "--serve", action="store_true", help="run headless: same as 'workbench serve'"
    )
    _serve_options(parser)
    parser.add_argument("--version", action="store_true", help="print the version")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    from workbench.init import add_parser as add_init_parser

    add_init_parser(sub)

    run = sub.add_parser("run", help="run an agent, team or workflow and stream it")
    _late_common(run)
    who = run.add_mutually_exclusive_group()
    who.add_argument("--agent", help="agent name (default: the first agent)")
    who.add_argument("--team", help="team name")
    who.add_argument("--workflow", help="workflow name")
    run.add_argument(
        "--model", help="use this model instead (a models: name or litellm string, or 'test')"
    )
    run.add_argument("--session", help="continue this session (its earlier turns are the history)")
    run.add_argument("--resume", metavar="RUN_ID", help="continue a run whose process died")
    run.add_argument("--json", action="store_true", help="print events as JSON lines")
    run.add_argument(
        "--approve",
        choices=["ask", "never", "all"],
        default=None,
        help="decide tool calls that need approval: ask (on a terminal, the default), "
        "never (refuse them; the default with no terminal), all (allow them)",
    )
    run.add_argument("prompt", nargs="*", help="the prompt ('-' reads standard input)")

    sessions = sub.add_parser(
        "sessions",
        help="list, show, delete, export, import, fork, re-run, search or prune sessions",
    )
    _late_common(sessions)
    ssub = sessions.add_subparsers(dest="action", metavar="ACTION")
    sl = ssub.add_parser("list", help="newest first")
    sl.add_argument("--limit", type=int, default=30)
    sl.add_argument("--json", action="store_true")
    _late_common(sl)
    ss = ssub.add_parser("show", help="print a session's transcript")
    ss.add_argument("id")
    ss.add_argument("--json", action="store_true", help="print its events as JSON lines")
    _late_common(ss)
    sd = ssub.add_parser("delete", help="delete a session")
    sd.add_argument("id")
    _late_common(sd)
    _session_actions(ssub)

    replay = sub.add_parser(
        "replay", help="replay a stored session (or an exported .jsonl file) in the TUI or as text"
    )
    _late_common(replay)
    replay.add_argument("target", metavar="ID|FILE", help="a session id, or a JSONL export")
    replay.add_argument(
        "--speed",
        type=float,
        default=None,
        help="times faster than recorded (0 or inf: instant; default 1, and instant for "
        "--plain when stdout is not a terminal)",
    )
    replay.add_argument(
        "--plain", action="store_true", help="print the transcript to stdout instead of the TUI"
    )

    doctor = sub.add_parser("doctor", help="check the workspace, keys and endpoints")
    _late_common(doctor)
    doctor.add_argument("--offline", action="store_true", help="do not contact model endpoints")
    doctor.add_argument(
        "--versions",
        action="store_true",
        help="only the versions of Python, litellm, textual, mcp, lancedb ... in use, "
        "against the tested ranges",
    )
    doctor.add_argument(
        "--repair",
        action="store_true",
        help="move a damaged store aside (to FILE.corrupt-TIME) and start an empty one",
    )

    tools = sub.add_parser(
        "tools",
        help="list every tool the workspace can use, with its policy, and each toolkit's and "
        "MCP server's state",
    )
    _late_common(tools)
    tools.add_argument(
        "--wait",
        type=float,
        default=15.0,
        metavar="SECONDS",
        help="how long to wait for MCP servers that are starting (default 15; they start "
        "concurrently)",
    )
    tools.add_argument("--json", action="store_true", help="print the report as JSON")

    serve = sub.add_parser(
        "serve", help="serve the workspace over HTTP: REST + SSE, OpenAI-compatible chat, MCP"
    )
    _late_common(serve)
    _serve_options(serve)

    attach = sub.add_parser("attach", help="open the TUI on a running 'workbench serve'")
    attach.add_argument("url", help="the server, e.g. http://127.0.0.1:8765")
    attach.add_argument("--token", default=None, help="its API token (default: $WORKBENCH_TOKEN)")

    knowledge = sub.add_parser("knowledge", help="the workspace's knowledge base (LanceDB)")
    _late_common(knowledge, db=False)
    ksub = knowledge.add_subparsers(dest="action", metavar="ACTION")
    ka = ksub.add_parser(
        "add", help="ingest files (text, Markdown, code, PDF); unchanged files are skipped"
    )
    _late_common(ka, db=False)
    ka.add_argument(
        "paths", nargs="*", type=Path, help="files or folders (default: the knowledge: sources)"
    )
    ks = ksub.add_parser("search", help="search the knowledge base as knowledge.search does")
    _late_common(ks, db=False)
    ks.add_argument("--limit", type=int, default=5, help="how many passages (default 5)")
    ks.add_argument("--source", action="append", default=None, help="only this source (repeatable)")
    ks.add_argument("--json", action="store_true", help="print the hits as JSON")
    ks.add_argument("query", nargs="+", help="what to look for")

    rules = sub.add_parser("rules", help="saved approval rules")
    _late_common(rules)
    rsub = rules.add_subparsers(dest="action", metavar="ACTION")
    _late_common(rsub.add_parser("list", help="list rules"))
    rr = rsub.add_parser("rm", help="remove a rule")
    rr.add_argument("id")
    _late_common(rr)
    return parser


def _late_common(p: argparse.ArgumentParser, *, db: bool = True) -> None:
    """``-w`` and ``--db`` on a subcommand or an action (``workbench run -w DIR``,
    ``sessions export ID --db URL``). SUPPRESS keeps a subparser from resetting what was given
    before it: ``workbench -w DIR run ...`` is honoured, and the last one given wins."""
    import argparse

    p.add_argument(
        "-w",
        "--workspace",
        type=Path,
        default=argparse.SUPPRESS,
        help="workspace folder (default: .)",
    )
    if db:
        p.add_argument(
            "--db",
            default=argparse.SUPPRESS,
            help="SQLAlchemy URL of the store (default: $WORKBENCH_DB, else SQLite in the "
            "user data dir)",
        )


def _session_actions(ssub: Any) -> None:
    """export, import, fork, rerun, search, prune (see workbench.sessions)."""
    se = ssub.add_parser("export", help="write a session as JSONL (lossless), Markdown or HTML")
    se.add_argument("id")
    se.add_argument(
        "--format",
        choices=["jsonl", "md", "html"],
        default=None,
        help="default: from the -o file's suffix, else jsonl",
    )
    se.add_argument("-o", "--output", type=Path, default=None, help="file (default: stdout)")
    _late_common(se)
    si = ssub.add_parser("import", help="import a JSONL export; prints the session id")
    si.add_argument("file", help="the .jsonl file ('-' reads standard input)")
    si.add_argument(
        "--as-new", action="store_true", help="give it a new id (to keep a copy beside it)"
    )
    _late_common(si)
    sf = ssub.add_parser(
        "fork",
        help="a new session with the history up to one message; prints its id "
        "(continue it with: workbench run --session NEW ...)",
    )
    sf.add_argument("id")
    at = sf.add_mutually_exclusive_group(required=True)
    at.add_argument("--at", type=int, metavar="SEQ", help="the last event to keep")
    at.add_argument("--message", metavar="MESSAGE_ID", help="the last message to keep")
    sf.add_argument("--title", default=None, help="default: 'fork of <title>'")
    _late_common(sf)
    sr = ssub.add_parser(
        "rerun",
        help="run a session again with the recorded model answers and real tools; "
        "exit 1 when a tool result differs",
    )
    sr.add_argument("id", help="a session id, or a JSONL export (imported into the store once)")
    sr.add_argument(
        "--model",
        default="replay",
        help="replay (the recorded answers, no model calls; default) or a model name",
    )
    sr.add_argument(
        "--approve",
        choices=["recorded", "all", "never"],
        default="recorded",
        help="decide tool calls that need approval as recorded (default), allow all, or none",
    )
    _late_common(sr)
    sq = ssub.add_parser("search", help="full-text search over messages and tool calls")
    sq.add_argument("text", nargs="+")
    sq.add_argument("--limit", type=int, default=30)
    sq.add_argument("--json", action="store_true", help="one JSON object a line")
    _late_common(sq)
    sp = ssub.add_parser("prune", help="delete sessions not updated for a while")
    sp.add_argument("--older-than", required=True, metavar="AGE", help="e.g. 30d, 12h, 45m, 2w")
    sp.add_argument("--dry-run", action="store_true", help="only list what would go")
    _late_common(sp)


def _serve_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("server (serve, --serve)")
    g.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    g.add_argument("--port", type=int, default=8765, help="port (default: 8765; 0 picks one)")
    g.add_argument(
        "--token",
        default=None,
        help="API token (default: $WORKBENCH_TOKEN; generated when binding beyond loopback)",
    )
    g.add_argument(
        "--cors",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="allow this browser origin (repeatable)",
    )
    g.add_argument(
        "--take-over",
        action="store_true",
        help="resume the runs of servers sharing the database that die (their lease runs "
        "out), from their last checkpoint",
    )
    g.add_argument(
        "--no-listen",
        action="store_true",
        help="on PostgreSQL, poll for other servers' work instead of LISTEN/NOTIFY (for "
        "connection poolers that do not pass LISTEN on)",
    )
    g.add_argument(
        "--lease",
        type=float,
        default=None,
        metavar="SECONDS",
        help="how long this server may go silent before the others count it dead "
        "(default: $WORKBENCH_LEASE, else 10)",
    )


EXIT_BROKEN_PIPE = 1
"""The reader of our output went away (``workbench sessions export ID | head``): exit
quietly, with the code rich's console uses for the same (the Python docs' recipe)."""


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``workbench`` script."""
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
        if command is None:
            if getattr(args, "serve", False):
                return cmd_serve(args)  # type: ignore[arg-type]
            return _open_tui(args)
        return int(_COMMANDS[command](args))
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

    from sqlalchemy.exc import DBAPIError

    from workbench.store import DB_ENV_VAR, StoreError, store_error

    if isinstance(exc, StoreError):
        return exc
    if not isinstance(exc, DBAPIError | sqlite3.Error):
        return None
    from workbench.store import default_url

    url = db or os.environ.get(DB_ENV_VAR, "").strip() or default_url()
    return store_error(exc, url)


def _hint(msg: str) -> None:
    from rich.console import Console
    from rich.markup import escape

    from workbench.termsafe import visible

    Console(stderr=True).print(f"[yellow]hint:[/] {escape(visible(msg))}")


def _read_only_note(store: Any) -> None:
    """Say on stderr that the store could only be opened for reading, and why."""
    if store.read_only is not None:
        _note(f"{store.read_only.message}: the store is open read-only (showing what it holds)")


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


def _err(msg: str) -> None:
    from rich.console import Console
    from rich.markup import escape

    from workbench.termsafe import visible

    Console(stderr=True).print(f"[bold red]error:[/] {escape(visible(msg))}")


def _run_tui(**options: Any) -> int:
    """Open the TUI (``screens.app.run_app`` with ``options``); returns its exit code."""
    try:
        from screens.app import run_app  # the only place workbench imports the UI
    except ImportError as exc:
        raise CliError(f"the TUI is not available: {exc}") from exc
    return int(run_app(**options) or 0)


def _open_tui(args: argparse.Namespace | SimpleNamespace) -> int:
    return _run_tui(workspace=args.workspace, db=args.db)


def _engine(args: argparse.Namespace, kind: str = "engine") -> Engine:
    from workbench.engine import Engine

    return Engine.open(args.workspace, args.db, kind=kind)


# -- run ---------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    import asyncio

    prompt = " ".join(args.prompt).strip()
    if prompt == "-":
        prompt = sys.stdin.read().strip()
    if not prompt and not args.resume:
        raise CliError("give a prompt: workbench run 'your question'")
    engine = _engine(args, "run")
    return asyncio.run(_run(engine, args, prompt))


async def _run(engine: Engine, args: argparse.Namespace, prompt: str) -> int:
    import asyncio
    import signal

    from rich.console import Console

    from workbench.events import ApprovalRequired, dump_event
    from workbench.render import TranscriptPrinter
    from workbench.runtime import RunError
    from workbench.termsafe import json_visible

    console = Console(highlight=False)
    err = Console(stderr=True, highlight=False)
    interactive = sys.stdin.isatty() and sys.stdout.isatty() and not args.json
    mode = args.approve or ("ask" if interactive else "never")
    if mode == "ask" and not interactive:
        raise CliError("--approve ask needs a terminal; use --approve never or --approve all")
    if mode != "ask":
        engine.broker.auto_decider = _auto_decider(mode)
        if args.approve is None:
            err.print(
                "[yellow]No terminal to ask on: tool calls that need approval will be refused "
                "(--approve never). Pass --approve all to allow them.[/]"
            )
    printer = TranscriptPrinter(console, live=True)
    if args.json:
        engine.add_listener(lambda e: print(json_visible(dump_event(e)), flush=True))
    else:
        engine.add_listener(
            lambda e: None if isinstance(e, ApprovalRequired) and mode == "ask" else printer.feed(e)
        )
    prompter = _Prompter(engine, console, printer) if mode == "ask" else None
    async with engine:
        try:
            if args.resume:
                handle = await engine.resume(args.resume)
            else:
                kind, target = _target(engine, args)
                handle = await engine.start_run(
                    target, prompt, session_id=args.session, kind=kind, model=args.model
                )
        except RunError as exc:
            raise CliError(str(exc) + (f" ({exc.hint})" if exc.hint else "")) from None
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, lambda: engine.cancel(handle.run_id))
        if prompter is not None:
            prompter.start()
        try:
            outcome = await handle.wait()
        finally:
            loop.remove_signal_handler(signal.SIGINT)
            if prompter is not None:
                await prompter.stop()
            printer.close()
        if not args.json:
            if outcome.status == "completed":
                err.print(f"[dim]session {handle.session_id} · run {handle.run_id}[/]")
            else:
                err.print(
                    f"[dim]session {handle.session_id} · run {handle.run_id} {outcome.status}[/]"
                )
    if outcome.status == "completed":
        return EXIT_OK
    if outcome.status == "cancelled":
        return EXIT_INTERRUPTED
    return EXIT_FAILED


def _target(engine: Engine, args: argparse.Namespace) -> tuple[Any, str]:
    ws = engine.workspace
    if args.team:
        if args.team not in ws.teams:
            raise CliError(f"no team named '{args.team}' (teams: {', '.join(ws.teams) or 'none'})")
        return "team", args.team
    if args.workflow:
        if args.workflow not in ws.workflows:
            raise CliError(
                f"no workflow named '{args.workflow}' (workflows: {', '.join(ws.workflows) or 'none'})"
            )
        return "workflow", args.workflow
    name = args.agent or ws.default_agent()
    if name is None or name not in ws.agents:
        raise CliError(f"no agent named '{name}' (agents: {', '.join(ws.agents) or 'none'})")
    return "agent", name


def _auto_decider(mode: str) -> Any:
    from workbench.approvals import Resolution

    def decide(p: PendingApproval) -> Resolution:
        if mode == "all":
            return Resolution(decision="allow", scope="once", decided_by="--approve all")
        note = "no one could approve this call (run with --approve all to allow it)"
        if p.interrupted:
            note = (
                f"{p.tool} started before the process stopped and may already have run; with "
                "no one to ask it is not run again (resume in a terminal to decide, or with "
                "--approve all to run it again)"
            )
        return Resolution(decision="deny", scope="once", note=note, decided_by="--approve never")

    return decide


class _Prompter:
    """Asks on the terminal for each pending approval, one at a time.

    The transcript is held back while a question is on screen, so the prompt is the last
    thing drawn, right under the call it is about: no output of a tool or a model lands
    under it (or pretends to be it)."""

    def __init__(self, engine: Engine, console: Console, printer: TranscriptPrinter) -> None:
        import asyncio

        self.engine = engine
        self.console = console
        self.printer = printer
        self.queue: asyncio.Queue[PendingApproval] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None
        self._remove: Any = None

    def start(self) -> None:
        import asyncio

        def on_change(kind: str, p: PendingApproval) -> None:
            if kind == "added":
                self.queue.put_nowait(p)

        self._remove = self.engine.broker.subscribe(on_change)
        for p in reversed(self.engine.broker.pending()):
            self.queue.put_nowait(p)
        self.task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        import asyncio

        if self._remove:
            self._remove()
        if self.task:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            p = await self.queue.get()
            if p.future is None or p.future.done():
                continue
            self.printer.hold()
            try:
                res = await self._ask(p)
                self.engine.resolve_approval(p.run_id, p.call_id, res)
            finally:
                self.printer.release()

    async def _ask(self, p: PendingApproval) -> Resolution:
        import json

        from prompt_toolkit import PromptSession
        from rich.markup import escape
        from rich.panel import Panel
        from rich.syntax import Syntax

        from workbench.approvals import Resolution
        from workbench.termsafe import json_visible, visible

        def safe(text: str) -> str:
            return escape(visible(text))

        c = self.console
        c.print()
        if p.diff:  # the file's text comes first; the call and the question come after it
            c.print(Syntax(visible(p.diff), "diff", theme="ansi_dark"))
        body = f"[bold]{safe(p.tool)}[/] asked by [cyan]{safe(p.source)}[/]\n[dim]{safe(p.reason)}[/]\n"
        body += escape(json_visible(json.dumps(p.arguments, indent=2, ensure_ascii=False)))
        if p.parts and len(p.parts) > 1:
            body += "\n[bold]command parts:[/]\n" + "\n".join(f"  • {safe(x)}" for x in p.parts)
        c.print(Panel(body, title="approval needed", border_style="yellow"))
        session: PromptSession[str] = PromptSession()
        while True:
            key = (
                (
                    await session.prompt_async(
                        "[y] allow once  [s] this session  [a] always  [n] deny  [e] edit > "
                    )
                )
                .strip()
                .lower()
            )
            if key in ("y", "yes"):
                return Resolution(decision="allow", scope="once")
            if key == "s":
                return Resolution(decision="allow", scope="session")
            if key == "a":
                rules = p.rules_for("workspace", root=self.engine.root)
                c.print("This will save: " + "; ".join(safe(r.display()) for r in rules))
                ok = (await session.prompt_async("save? [y/n] > ")).strip().lower()
                if ok in ("y", "yes"):
                    return Resolution(decision="allow", scope="workspace")
                continue
            if key in ("n", "no"):
                note = (await session.prompt_async("note for the model (optional) > ")).strip()
                return Resolution(decision="deny", scope="once", note=note or None)
            if key == "e":
                text = await session.prompt_async(
                    "arguments (JSON) > ",
                    default=json_visible(json.dumps(p.arguments, ensure_ascii=False)),
                )
                try:
                    edited = json.loads(text)
                    if not isinstance(edited, dict):
                        raise ValueError("not an object")
                except ValueError as exc:
                    c.print(f"[red]not a JSON object: {escape(str(exc))}[/]")
                    continue
                return Resolution(decision="allow", scope="once", edited_arguments=edited)


# -- sessions ----------------------------------------------------------------------------


def cmd_sessions(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from workbench.store import Store

    console = Console(highlight=False)
    action = args.action or "list"
    if action in ("export", "import", "fork", "rerun", "search", "prune"):
        return _session_action(args)
    with Store.open(args.db, read_only_fallback=True) as store:
        _read_only_note(store)
        # Runs whose process died show as interrupted, never as still running.
        store.mark_interrupted()
        if action == "list":
            items = store.list_sessions(limit=args.limit if hasattr(args, "limit") else 30)
            if getattr(args, "json", False):
                import json

                for s in items:
                    print(json.dumps(_asdict(s), default=str))
                return EXIT_OK
            if not items:
                console.print("No sessions yet. Start one with: workbench run 'hello'")
                return EXIT_OK
            from rich.text import Text

            from workbench.termsafe import visible

            table = Table("id", "title", "runs", "updated", box=None)
            for s in items:
                table.add_row(
                    s.id,
                    Text(visible(s.title)),
                    str(getattr(s, "run_count", "")),
                    _when(s.updated_at),
                )
            console.print(table)
            return EXIT_OK
        if action == "show":
            if store.get_session(args.id) is None:
                raise CliError(f"no session '{args.id}' (see: workbench sessions list)")
            events = store.events(args.id)
            if args.json:
                from workbench.events import dump_event
                from workbench.termsafe import json_visible

                for e in events:
                    print(json_visible(dump_event(e)))
                return EXIT_OK
            from rich.markup import escape

            from workbench.render import TranscriptPrinter
            from workbench.termsafe import visible

            printer = TranscriptPrinter(console, live=False)
            for e in events:
                printer.feed(e)
            printer.close()
            for run in store.list_runs(args.id):
                if run.status in ("interrupted", "waiting", "running"):
                    hint = (
                        f" — resume with: workbench run --resume {run.id}"
                        if run.parent_run_id is None and run.status == "interrupted"
                        else ""
                    )
                    what = escape(visible(f"{run.target_kind} {run.target} {run.status}{hint}"))
                    console.print(f"[yellow]■ {what}[/]")
            return EXIT_OK
        if action == "delete":
            if not store.delete_session(args.id):
                raise CliError(f"no session '{args.id}'")
            console.print(f"deleted {args.id}")
            return EXIT_OK
    raise CliError(f"unknown action {action}")


def _session_action(args: argparse.Namespace) -> int:
    """export, import, fork, rerun, search, prune: thin wrappers of workbench.sessions."""
    from workbench import sessions as lib

    try:
        if args.action == "rerun":
            return _rerun(args)
        from workbench.store import Store

        with Store.open(args.db, read_only_fallback=args.action in ("export", "search")) as store:
            _read_only_note(store)
            return int(_SESSION_ACTIONS[args.action](store, args))
    except lib.SessionsError as exc:
        raise CliError(str(exc)) from None


def _export(store: Any, args: argparse.Namespace) -> int:
    import io

    from workbench.sessions import write_export

    fmt = args.format
    if fmt is None:
        suffix = args.output.suffix.lower() if args.output else ""
        fmt = {".md": "md", ".markdown": "md", ".html": "html", ".htm": "html"}.get(suffix, "jsonl")
    if args.output is None:
        out = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="\n")
        try:
            write_export(store, args.id, fmt, out)
        finally:
            out.flush()
            out.detach()
        return EXIT_OK
    tmp = args.output.with_name(args.output.name + ".part")
    try:
        with tmp.open("w", encoding="utf-8", newline="\n") as f:
            write_export(store, args.id, fmt, f)
        tmp.replace(args.output)
    finally:
        tmp.unlink(missing_ok=True)
    _note(f"wrote {args.output} ({fmt})")
    return EXIT_OK


def _import(store: Any, args: argparse.Namespace) -> int:
    import io

    from workbench.sessions import import_session

    if args.file == "-":
        stdin = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", newline="\n")
        info = import_session(store, stdin, as_new=args.as_new, name="<stdin>")
    else:
        info = import_session(store, Path(args.file), as_new=args.as_new)
    print(info.id)
    _note(f"imported {info.id} “{info.title}” ({info.last_seq} events)")
    return EXIT_OK


def _fork(store: Any, args: argparse.Namespace) -> int:
    from workbench.sessions import fork_session

    info = fork_session(store, args.id, at_seq=args.at, message_id=args.message, title=args.title)
    print(info.id)
    _note(
        f"forked {args.id} at event {info.forked_from_seq} into {info.id}; continue it with: "
        f"workbench run --session {info.id} '...'"
    )
    return EXIT_OK


def _search(store: Any, args: argparse.Namespace) -> int:
    import re

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    hits = store.search_sessions(" ".join(args.text), limit=args.limit)
    if args.json:
        import json

        for h in hits:
            print(
                json.dumps(
                    {
                        "session_id": h.session_id,
                        "title": h.title,
                        "updated_at": h.updated_at,
                        "seq": h.seq,
                        "type": h.type,
                        "snippet": h.text,
                        "matches": h.matches,
                    },
                    ensure_ascii=False,
                )
            )
        return EXIT_OK
    from workbench.termsafe import visible

    console = Console(highlight=False)
    if not hits:
        console.print("No session matches.")
        return EXIT_OK
    table = Table("session", "updated", "title", "match", box=None)
    for h in hits:
        snippet = Text()
        for part, matched in h.parts():
            snippet.append(visible(re.sub(r"\s+", " ", part)), "bold yellow" if matched else "")
        where = Text(f"  #{h.seq} {h.type}", style="dim")
        table.add_row(h.session_id, _when(h.updated_at), Text(visible(h.title)), snippet + where)
    console.print(table)
    return EXIT_OK


def _prune(store: Any, args: argparse.Namespace) -> int:
    from rich.console import Console

    from workbench.sessions import parse_age, prune_sessions

    try:
        age = parse_age(args.older_than)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    gone = prune_sessions(store, age, dry_run=args.dry_run)
    console = Console(highlight=False)
    verb = "would delete" if args.dry_run else "deleted"
    for s in gone:
        console.print(f"{verb} {s.id}  {_when(s.updated_at)}  {s.title}", markup=False)
    console.print(f"{verb} {len(gone)} session{'s' if len(gone) != 1 else ''}")
    return EXIT_OK


def _recorded_session(store: Store, target: str) -> str:
    """A session id, or an export file imported into the store (once) for a re-run."""
    from workbench import sessions as lib

    path = Path(target)
    if store.get_session(target) is not None or not path.is_file():
        return target
    header, _ = lib.read_archive(path)
    if store.get_session(header.session_id) is None:
        lib.import_session(store, path)
        _note(f"imported {path} as session {header.session_id}")
    return header.session_id


def _rerun(args: argparse.Namespace) -> int:
    import asyncio

    from rich.console import Console
    from rich.markup import escape as markup_escape
    from rich.syntax import Syntax
    from rich.table import Table

    from workbench.sessions import rerun_session
    from workbench.termsafe import visible

    def escape(text: str) -> str:
        return markup_escape(visible(text))

    console = Console(highlight=False)
    engine = _engine(args)

    async def go() -> Any:
        async with engine:
            return await rerun_session(
                engine,
                _recorded_session(engine.store, args.id),
                model=args.model,
                approve=args.approve,
                on_run=lambda run, new: console.print(
                    f"[bold]▶ {escape(run.target)}[/] [dim]{escape(run.id)} → {escape(new)}[/] "
                    f"{escape(run.input[:80])}"
                ),
            )

    report = asyncio.run(go())
    style = {"same": "green", "changed": "red", "missing": "red", "extra": "red"}
    for run in report.runs:
        if run.skipped:
            console.print(f"[yellow]skipped {escape(run.old_run_id)}: {escape(run.skipped)}[/]")
            continue
        if run.new_status != run.old_status:
            error = f": {escape(run.new_error)}" if run.new_error else ""
            console.print(
                f"[red]run {escape(run.old_run_id)} was {run.old_status}, "
                f"now {run.new_status}{error}[/]"
            )
        elif run.output_changed:
            console.print(f"[red]run {escape(run.old_run_id)} gave another answer[/]")
            console.print(Syntax(visible(run.answer_diff()), "diff", theme="ansi_dark"))
        if run.calls:
            table = Table("agent", "tool", "call", "result", "recorded", "now", box=None)
            for c in run.calls:
                table.add_row(
                    escape(c.agent),
                    escape(c.tool),
                    escape(c.call_id),
                    f"[{style[c.status]}]{c.status}[/]",
                    f"{c.old_ms:.0f} ms" if c.status != "extra" else "",
                    f"{c.new_ms:.0f} ms" if c.status != "missing" else "",
                )
            console.print(table)
        for c in run.calls:
            if not c.same:
                console.print(Syntax(visible(c.unified_diff()), "diff", theme="ansi_dark"))
    if not report.rerun:
        raise CliError(f"nothing in session {args.id} could be re-run")
    calls = [c for r in report.runs for c in r.calls]
    differ = report.differing_calls
    _note(f"re-run in session {report.session_id}")
    if report.identical:
        n = len(report.rerun)
        answers = f" and {n} answer{'s' if n != 1 else ''}" if report.model == "replay" else ""
        console.print(f"[green]identical: {len(calls)} tool results{answers} as recorded[/]")
        return EXIT_OK
    console.print(f"[red]{len(differ)} of {len(calls)} tool results differ[/]")
    return EXIT_FAILED


_SESSION_ACTIONS: dict[str, Any] = {
    "export": _export,
    "import": _import,
    "fork": _fork,
    "search": _search,
    "prune": _prune,
}


def _note(msg: str) -> None:
    """A line for people on stderr (stdout carries what scripts read)."""
    from rich.console import Console
    from rich.markup import escape

    from workbench.termsafe import visible

    Console(stderr=True, highlight=False).print(f"[dim]{escape(visible(msg))}[/]")


# -- replay ------------------------------------------------------------------------------


def cmd_replay(args: argparse.Namespace) -> int:
    import math

    from workbench import sessions as lib

    path = Path(args.target)
    is_file = path.suffix.lower() in (".jsonl", ".json", ".ndjson") or path.is_file()
    speed = args.speed
    if speed is not None and (math.isnan(speed) or speed < 0):
        raise CliError("--speed must be 0 (instant), a positive number or inf")
    if speed == 0:
        speed = math.inf
    try:
        if args.plain:
            from rich.console import Console

            if speed is None:
                speed = 1.0 if sys.stdout.isatty() else math.inf
            console = Console(highlight=False)
            if is_file:
                _, events = lib.read_archive(path)
                lib.replay_plain(events, console, speed=speed)
                return EXIT_OK
            from workbench.store import Store

            with Store.open(args.db, read_only_fallback=True) as store:
                _read_only_note(store)
                if store.get_session(args.target) is None:
                    raise CliError(f"no session '{args.target}' (see: workbench sessions list)")
                lib.replay_plain(lib.iter_events(store, args.target), console, speed=speed)
            return EXIT_OK
        from workbench.store import Store

        if not is_file:
            with Store.open(args.db) as store:
                found = store.get_session(args.target)
            if found is None:
                raise CliError(f"no session '{args.target}' (see: workbench sessions list)")
            return _replay_tui(args, args.db, found.id, found.workspace, speed)
        # The file is replayed from memory, the TUI on the real store: what is typed after
        # the replay is kept (a fork imports the file first).
        header, events = lib.read_archive(path)
        return _replay_tui(
            args, args.db, header.session_id, header.workspace, speed, file=path, events=events
        )
    except lib.SessionsError as exc:
        raise CliError(str(exc)) from None


def _replay_tui(
    args: argparse.Namespace,
    db: str | None,
    session_id: str,
    recorded_in: str,
    speed: float | None,
    *,
    file: Path | None = None,
    events: list[Any] | None = None,
) -> int:
    workspace = args.workspace
    if workspace is None and not Path("workbench.yaml").is_file():
        # Outside a workspace: the one the session ran in, if it is here (workflow graphs).
        if recorded_in and (Path(recorded_in) / "workbench.yaml").is_file():
            workspace = Path(recorded_in)
    return _run_tui(
        workspace=workspace,
        db=db,
        replay=session_id,
        replay_speed=speed,
        replay_file=file,
        replay_events=events,
    )


def _asdict(obj: Any) -> dict[str, Any]:
    import dataclasses

    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    dump = getattr(obj, "model_dump", None)
    return dict(dump()) if dump else dict(vars(obj))


def _when(ts: float) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


# -- doctor ------------------------------------------------------------------------------


def cmd_doctor(args: argparse.Namespace) -> int:
    from rich.console import Console

    from workbench.doctor import repair_store, run_doctor

    if args.repair:
        repair_store(args.db, Console(highlight=False))
    return run_doctor(
        args.workspace,
        args.db,
        Console(highlight=False),
        offline=args.offline,
        versions_only=args.versions,
    )


# -- tools and rules ---------------------------------------------------------------------


def cmd_tools(args: argparse.Namespace) -> int:
    import asyncio
    import json

    from rich.console import Console
    from rich.table import Table

    engine = _engine(args)

    async def collect() -> tuple[list[tuple[str, str, str, str]], list[Any], dict[str, str]]:
        async with engine:
            tools, statuses, broken = await engine.catalogue_tools(wait=max(0.0, args.wait))
            rows: list[tuple[str, str, str, str]] = []
            for t in tools:
                v = engine.policy.evaluate(
                    t.name, t.match_on, {}, engine.saved_rules(""), root=engine.root
                )
                rows.append(
                    (t.name, t.source, v.decision, (t.description or "").split("\n")[0][:70])
                )
            return rows, statuses, broken

    from rich.text import Text

    from workbench.termsafe import json_visible, visible

    rows, statuses, broken = asyncio.run(collect())
    rows = sorted(set(rows))
    if args.json:
        print(
            json_visible(
                json.dumps(
                    {
                        "tools": [
                            {"name": r[0], "source": r[1], "policy": r[2], "description": r[3]}
                            for r in rows
                        ],
                        "toolkits": [s.to_dict() for s in statuses],
                        "broken": broken,
                    },
                    indent=2,
                    ensure_ascii=False,
                )
            )
        )
    else:
        console = Console(highlight=False)
        table = Table("tool", "source", "policy", "description", box=None)
        for r in rows:
            style = {"allow": "green", "ask": "yellow", "deny": "red"}.get(r[2], "")
            # Names and descriptions may come from an MCP server: text, never markup or escapes.
            table.add_row(
                Text(visible(r[0])), Text(visible(r[1])), Text(r[2], style), Text(visible(r[3]))
            )
        console.print(table)
        _print_toolkit_states(console, statuses, broken, args.wait)
    bad = [s for s in statuses if s.state == "failed" and s.kind == "mcp"]
    return EXIT_FAILED if bad or broken else EXIT_OK


def _print_toolkit_states(
    console: Console, statuses: list[Any], broken: dict[str, str], waited: float
) -> None:
    """The MCP servers (every one, whatever its state) and the toolkits that failed."""
    from rich.markup import escape

    from workbench.termsafe import visible

    def safe(text: str) -> str:
        # A server's name, command, stderr and skipped items: text, never markup or escapes.
        return escape(visible(text))

    shown = [s for s in statuses if s.kind == "mcp" or s.state == "failed"]
    if not shown and not broken:
        return
    console.print()
    for s in shown:
        what = "mcp server" if s.kind == "mcp" else "toolkit"
        if s.state == "ready":
            mark, state = "[green]✓[/]", f"ready, {len(s.tools)} tools"
        elif s.state == "failed":
            mark, state = "[red]✗[/]", "failed"
        elif s.state == "starting":
            mark, state = "[yellow]…[/]", f"still starting after {waited:g}s"
        else:
            mark, state = "[dim]·[/]", "not started"
        req = " (required)" if getattr(s, "required", False) else ""
        console.print(
            f"{mark} {what} [bold]{safe(s.name)}[/]{req}: {state}  [dim]{safe(s.detail)}[/]"
        )
        if s.error:
            for line in s.error.splitlines():
                console.print(f"    {safe(line)}")
        for note in s.skipped:
            console.print(f"    [dim]not offered: {safe(note)}[/]")
    for spec, error in broken.items():
        console.print(f"[red]✗[/] tool [bold]{safe(spec)}[/]: {safe(error)}")


def cmd_rules(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from workbench.store import Store
    from workbench.workspace import load_workspace

    console = Console(highlight=False)
    root = str(load_workspace(args.workspace).root)
    with Store.open(args.db) as store:
        if args.action in (None, "list"):
            rules = store.list_rules(root)
            if not rules:
                console.print("No saved rules. They are made by 'allow always' decisions.")
                return EXIT_OK
            from rich.text import Text

            from workbench.termsafe import visible

            table = Table("id", "scope", "rule", box=None)
            for r in rules:
                pattern = f' "{r.pattern}"' if r.pattern else ""
                table.add_row(r.id, r.scope, Text(visible(f"{r.decision} {r.tool}{pattern}")))
            console.print(table)
            return EXIT_OK
        if not store.delete_rule(args.id):
            raise CliError(f"no rule '{args.id}' (see: workbench rules list)")
        console.print(f"removed {args.id}")
        return EXIT_OK


# -- serve and attach --------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    from workbench.server import ServerConfig, serve

    config = ServerConfig(
        host=args.host,
        port=args.port,
        token=args.token or os.environ.get("WORKBENCH_TOKEN") or None,
        cors_origins=list(args.cors),
        take_over=args.take_over,
        listen=not args.no_listen,
        lease=args.lease,
    )
    try:
        return serve(args.workspace, args.db, config)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None


def cmd_attach(args: argparse.Namespace) -> int:
    from workbench.client import RemoteEngine, RemoteError

    token = args.token or os.environ.get("WORKBENCH_TOKEN") or None
    try:
        first = [RemoteEngine.open(args.url, token)]  # fail here, before the TUI takes over
    except RemoteError as exc:
        raise CliError(str(exc) + (f" ({exc.hint})" if exc.hint else "")) from None

    def factory() -> RemoteEngine:
        return first.pop() if first else RemoteEngine.open(args.url, token)

    # The workspace lives on the server: nothing to watch here.
    return _run_tui(engine_factory=factory, watch_workspace=False, warm_up=False)


def cmd_knowledge(args: argparse.Namespace) -> int:
    if args.action == "search":
        return cmd_knowledge_search(
            args.workspace, " ".join(args.query), args.limit, args.source, as_json=args.json
        )
    if args.action != "add":
        raise CliError(
            "usage: workbench knowledge add [-w DIR] [PATH...] | "
            "workbench knowledge search [-w DIR] QUERY..."
        )
    return cmd_knowledge_add(args.workspace, list(args.paths))


def cmd_knowledge_add(workspace: Path | None, paths: list[Path]) -> int:
    """``workbench knowledge add [-w DIR] [PATH...]``: ingest files with a progress bar.

    With no paths, every source under ``knowledge:`` in ``workbench.yaml`` is synced.

    Returns:
        The exit status: 0 when the files are indexed (those that could not be read are
        listed, as skipped), 1 when none could be or ingesting failed, 2 for a bad
        workspace.
    """
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    from workbench.knowledge import KnowledgeError, data_dir, ingest
    from workbench.workspace import WorkspaceError, load_workspace

    out = Console()
    err = Console(stderr=True)
    try:
        ws = load_workspace(workspace)
    except WorkspaceError as exc:
        err.print(f"[red]{escape(str(exc))}[/red]")
        return 2
    if not paths and not ws.knowledge:
        err.print(
            "[yellow]Nothing to ingest:[/yellow] give files or folders, or list sources under "
            "[bold]knowledge:[/bold] in workbench.yaml."
        )
        return 1
    try:
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        ) as bar:
            task = bar.add_task("scanning", total=None)

            def progress(what: str, done: int, total: int) -> None:
                bar.update(task, description=what[-60:], completed=done, total=total or None)

            report = ingest(ws.root, ws.knowledge, paths, progress)
    except KnowledgeError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        return 1
    for path, why in report.errors:
        err.print(f"[yellow]skipped[/yellow] {escape(path)}: {escape(why)}")
    skipped = f", {len(report.errors)} skipped" if report.errors else ""
    out.print(
        f"Added {len(report.added_files)} file{'s' * (len(report.added_files) != 1)} "
        f"({report.chunks} chunk{'s' * (report.chunks != 1)}), "
        f"{len(report.skipped_unchanged)} unchanged, {len(report.removed)} removed{skipped} "
        f"-> {escape(str(data_dir(ws.root)))}",
        highlight=False,
    )
    indexed = report.added_files or report.skipped_unchanged or report.removed
    return 1 if report.errors and not indexed else 0


def cmd_knowledge_search(
    workspace: Path | None,
    query: str,
    limit: int = 5,
    sources: Sequence[str] | None = None,
    *,
    as_json: bool = False,
) -> int:
    """``workbench knowledge search [-w DIR] QUERY``: the passages ``knowledge.search``
    would give a model.

    Returns:
        The exit status: 0 with hits, 1 with none (or an error), 2 for a bad workspace or
        an unknown source.
    """
    import dataclasses
    import json as jsonlib

    from rich.console import Console
    from rich.markup import escape

    from workbench.knowledge import ADDED_SOURCE, KnowledgeError, data_dir, search
    from workbench.workspace import WorkspaceError, load_workspace

    out = Console(highlight=False)
    err = Console(stderr=True, highlight=False)
    try:
        ws = load_workspace(workspace)
    except WorkspaceError as exc:
        err.print(f"[red]{escape(str(exc))}[/red]")
        return 2
    if sources:
        known = set(ws.knowledge) | {ADDED_SOURCE}
        unknown = [s for s in sources if s not in known]
        if unknown:
            listed = ", ".join(sorted(ws.knowledge)) or "none"
            err.print(f"[red]no knowledge source {unknown[0]!r}[/red] (sources: {listed})")
            return 2
    try:
        hits = search(ws.root, query, max(1, limit), sources=sources)
    except KnowledgeError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        return 1
    if as_json:
        print(jsonlib.dumps([dataclasses.asdict(h) for h in hits], indent=2, ensure_ascii=False))
        return 0 if hits else 1
    if not hits:
        if not data_dir(ws.root).is_dir():
            err.print("The knowledge base is empty: run `workbench knowledge add` first.")
        else:
            err.print(f"No passage matches {query!r}.")
        return 1
    for n, hit in enumerate(hits, start=1):
        where = f"{hit.path} - {hit.heading}" if hit.heading else hit.path
        out.print(f"[bold][{n}] {escape(where)}[/bold] [dim](score {hit.score:.3g})[/dim]")
        out.print(escape(hit.text))
        if hit.also:
            out.print(f"[dim](the same passage is also in: {escape(', '.join(hit.also))})[/dim]")
        out.print()
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from workbench.init import cmd_init as run_init

    return run_init(args)


_COMMANDS: dict[str, Any] = {
    "init": cmd_init,
    "knowledge": cmd_knowledge,
    "run": cmd_run,
    "serve": cmd_serve,
    "attach": cmd_attach,
    "sessions": cmd_sessions,
    "replay": cmd_replay,
    "doctor": cmd_doctor,
    "tools": cmd_tools,
    "rules": cmd_rules,
}

if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
