"""``workbench knowledge add`` and ``workbench knowledge search``: the workspace's knowledge
base from the shell."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse


from .common import CliError


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
