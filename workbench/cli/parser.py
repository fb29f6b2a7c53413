"""The argument parser: every command, its options and its help."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse


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
