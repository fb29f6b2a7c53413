"""``workbench sessions ...``: list, show, export, import, fork, search, prune, re-run."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse

    from workbench.store import Store

from .common import EXIT_FAILED, EXIT_OK, CliError, _asdict, _engine, _note, _read_only_note, _when

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
