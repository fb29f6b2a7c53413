"""``workbench tools`` (what the workspace's agents can call) and ``workbench rules`` (saved
approval rules)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse

    from rich.console import Console


from .common import EXIT_FAILED, EXIT_OK, CliError, _engine

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
