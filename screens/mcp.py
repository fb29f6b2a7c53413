"""The MCP screen (F9): the workspace's MCP servers, their state, tools, resources, prompts.

Each server shows where it stands (``· idle``, ``… starting``, ``✓ ready``, ``✗ failed``),
live: the engine tells the screen of every change. The selected server's details follow: its
command or URL, why it failed (with its stderr tail), its instructions, the tools it offers
and those it does not (a tool that requires MCP tasks), then its resources and prompts.

``r`` starts (or restarts) the selected server. ``enter`` on a resource attaches it to the
prompt: its text goes into the prompt box, wrapped in ``<resource uri="...">``, where the
person sees and can edit what will be sent. ``enter`` on a prompt asks for its arguments
(if it has any) and puts the prompt's text in the prompt box the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.types import CSSPathType
from textual.widgets import Button, DataTable, Input, Static

from workbench.termsafe import visible

__all__ = ["McpScreen", "PromptArguments", "resource_block", "state_mark"]

_MARKS = {"idle": ("·", "dim"), "starting": ("…", "yellow"), "ready": ("✓", "green")}


def state_mark(state: str) -> Text:
    """A server's state as a mark and a word (``✓ ready``)."""
    mark, style = _MARKS.get(state, ("✗", "red"))
    return Text(f"{mark} {state}", style=style)


def resource_block(uri: str, text: str) -> str:
    """A resource as it goes into the prompt: its text, marked with where it came from."""
    return f'<resource uri="{uri}">\n{text.rstrip()}\n</resource>\n'


def _first_line(text: str | None) -> str:
    """The first non-empty line of a description."""
    return next((line.strip() for line in (text or "").splitlines() if line.strip()), "")


class PromptArguments(ModalScreen[dict[str, str] | None]):
    """Ask for a prompt's arguments: one field each; enter on the last one (or ctrl+s)
    gets the prompt."""

    BINDINGS: ClassVar[list[Any]] = [
        Binding("escape", "cancel", "Back"),
        Binding("ctrl+s", "done", "Get the prompt", priority=True),
    ]

    def __init__(self, server: str, prompt: dict[str, Any]) -> None:
        super().__init__(classes="mcp-args-modal")
        self.server = server
        self.prompt = prompt

    def compose(self) -> Any:
        with Vertical(classes="dialog"):
            yield Static(
                Text(visible(f"{self.server} prompt {self.prompt['name']}"), style="bold"),
                classes="title",
            )
            if self.prompt.get("description"):
                yield Static(Text(visible(self.prompt["description"]), style="italic"))
            for arg in self.prompt.get("arguments", []):
                label = arg["name"] + (" (required)" if arg.get("required") else "")
                yield Static(Text(visible(label), style="bold"))
                yield Input(
                    placeholder=visible(arg.get("description") or arg["name"]),
                    id=f"arg-{arg['name']}",
                )
            with Horizontal(classes="buttons"):
                yield Button("Get the prompt (ctrl+s)", variant="primary", id="ok")
                yield Button("Back (esc)", id="back")

    def values(self) -> dict[str, str]:
        """The arguments typed so far (empty ones left out)."""
        out: dict[str, str] = {}
        for arg in self.prompt.get("arguments", []):
            value = self.query_one(f"#arg-{arg['name']}", Input).value
            if value:
                out[arg["name"]] = value
        return out

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        inputs = list(self.query(Input))
        if inputs and event.input is inputs[-1]:
            self.action_done()
        else:
            self.focus_next()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "ok":
            self.action_done()
        else:
            self.dismiss(None)

    def action_done(self) -> None:
        """Get the prompt with these arguments."""
        self.dismiss(self.values())

    def action_cancel(self) -> None:
        """Back without a prompt."""
        self.dismiss(None)


class McpScreen(Screen[None]):
    """The MCP servers of the workspace. Needs an engine with ``toolkit_statuses``."""

    CSS_PATH: ClassVar[CSSPathType | None] = [Path(__file__).parent / "mcp.tcss"]
    AUTO_FOCUS = "#mcp-servers"
    BINDINGS: ClassVar[list[Any]] = [
        Binding("escape", "back", "Back"),
        Binding("r", "restart", "Start / restart"),
        Binding("pageup", "scroll_detail(-1)", "Details up", show=False),
        Binding("pagedown", "scroll_detail(1)", "Details down", show=False),
    ]

    @dataclass
    class StatusChanged(Message):
        """A server started, became ready or failed."""

        status: Any
        """Its :class:`workbench.tools.ToolkitStatus`."""

    @dataclass
    class Loaded(Message):
        """A ready server's resources and prompts came back."""

        server: str
        """Which server."""
        resources: list[dict[str, Any]]
        """Its resources."""
        prompts: list[dict[str, Any]]
        """Its prompts."""
        error: str | None = None
        """Why they could not be listed."""
        tools: dict[str, str] = field(default_factory=dict)
        """Its tools' names with the first line of each one's description."""

    @dataclass
    class Attach(Message):
        """Text to put in the prompt box."""

        text: str
        """The resource or prompt, ready to send."""

    def __init__(self, engine: Any) -> None:
        super().__init__()
        self.engine = engine
        self.statuses: dict[str, Any] = {}
        """The MCP servers' statuses, by name, in workspace order."""
        self.listing: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]], str | None]] = {}
        """A server's resources, prompts and listing error, once loaded."""
        self._tool_about: dict[str, dict[str, str]] = {}
        """A server's tools with the first line of their descriptions, once loaded."""
        self.selected: str | None = None
        """The server whose details show."""
        self._rows: list[tuple[str, dict[str, Any]]] = []
        self._items_shown: tuple[Any, ...] | None = None
        self._listed_version = 0
        self._unlisten: Any = None

    def compose(self) -> Any:
        yield Static(Text("MCP servers", style="bold"), id="mcp-title")
        with Horizontal(id="mcp-body"):
            servers: DataTable[Any] = DataTable(id="mcp-servers", cursor_type="row")
            yield servers
            with Vertical(id="mcp-right"):
                with VerticalScroll(id="mcp-detail-box"):
                    yield Static(id="mcp-detail")
                items: DataTable[Any] = DataTable(id="mcp-items", cursor_type="row")
                yield items
        yield Static(
            "↑↓ server · tab items · enter attach · r restart · pgup/pgdn details · esc",
            id="mcp-hint",
        )

    def on_mount(self) -> None:
        servers = self.query_one("#mcp-servers", DataTable)
        servers.add_columns("server", "state", "tools")
        items = self.query_one("#mcp-items", DataTable)
        items.add_columns("kind", "name", "about")
        # tab goes from the servers to their items; the details scroll with the mouse.
        self.query_one("#mcp-detail-box").can_focus = False
        listen = getattr(self.engine, "add_toolkit_listener", None)
        if listen is not None:
            self._unlisten = listen(lambda s: self.post_message(self.StatusChanged(s)))
        self.refresh_statuses()

    def on_unmount(self) -> None:
        if self._unlisten is not None:
            self._unlisten()

    # -- servers ---------------------------------------------------------------------------

    def refresh_statuses(self) -> None:
        """Read every MCP server's status from the engine and redraw the list."""
        get = getattr(self.engine, "toolkit_statuses", None)
        statuses = [s for s in get() if s.kind == "mcp"] if get is not None else []
        self.statuses = {s.name: s for s in statuses}
        self._draw_servers()

    def _draw_servers(self, changed: str | None = None) -> None:
        """Redraw the server list; the details and items follow the selected server only
        when it is the one that ``changed`` (or when none is named), so a person reading
        one server's items keeps their place while another starts."""
        table = self.query_one("#mcp-servers", DataTable)
        keep = self.selected
        table.clear()
        for name, s in self.statuses.items():
            tools = str(len(s.tools)) if s.state == "ready" else ""
            table.add_row(Text(visible(name)), state_mark(s.state), tools, key=name)
        if not self.statuses:
            get = getattr(self.engine, "toolkit_statuses", None)
            why = (
                "This workspace has no MCP servers (add them under mcp: in workbench.yaml)."
                if get is not None
                else "MCP servers are not shown here when attached to a server: see "
                "GET /api/toolkits."
            )
            self.query_one("#mcp-detail", Static).update(Text(why, style="italic"))
            return
        names = list(self.statuses)
        row = names.index(keep) if keep in names else 0
        table.move_cursor(row=row)
        if changed is None or changed == names[row] or keep not in names:
            self._select(names[row])

    @on(StatusChanged)
    def _status_changed(self, event: StatusChanged) -> None:
        self.statuses[event.status.name] = event.status
        if event.status.state != "ready" and self.listing.pop(event.status.name, None):
            self._listed_version += 1
        self._draw_servers(changed=event.status.name)

    @on(DataTable.RowHighlighted, "#mcp-servers")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None:
            self._select(str(event.row_key.value))

    def _select(self, name: str) -> None:
        self.selected = name
        s = self.statuses.get(name)
        if s is None:
            return
        self.query_one("#mcp-detail", Static).update(self._detail(s))
        if s.state == "ready" and name not in self.listing:
            self._load(name)
        self._draw_items()

    def _detail(self, s: Any) -> Text:
        # A server's stderr, instructions and names are its own text: shown, never obeyed.
        out = Text()
        out.append(visible(s.name), style="bold")
        out.append("  ")
        out.append_text(state_mark(s.state))
        if s.required:
            out.append("  (required)", style="bold")
        out.append("\n")
        if s.error:  # what went wrong first: at 80x24 the box is small
            out.append(f"{visible(s.error)}\n\n", style="red")
        out.append(f"{visible(s.detail)}\n", style="dim")
        if s.state == "idle":
            out.append("\nNot started yet: r starts it.\n", style="italic")
        if s.instructions:
            out.append("\ninstructions\n", style="bold")
            out.append(f"{visible(s.instructions.strip())}\n")
        for note in s.skipped:
            out.append(f"not offered: {visible(note)}\n", style="dim")
        listed = self.listing.get(s.name)
        if listed is not None and listed[2]:
            out.append(f"\n{visible(listed[2])}\n", style="yellow")
        return out

    # -- tools, resources, prompts ------------------------------------------------------------

    def _draw_items(self) -> None:
        name = self.selected
        s = self.statuses.get(name or "")
        listed = self.listing.get(s.name) if s is not None else None
        shown = (name, tuple(s.tools) if s is not None else (), self._listed_version)
        if shown == self._items_shown:
            return  # the same rows: the person keeps their place in them
        self._items_shown = shown
        table = self.query_one("#mcp-items", DataTable)
        table.clear()
        self._rows = []
        if s is None:
            return
        resources, prompts, _ = listed or ([], [], None)
        for r in resources:
            self._rows.append(("resource", r))
            about = r.get("description") or r.get("mime_type") or ""
            table.add_row("resource", Text(visible(r["uri"])), Text(visible(about)))
        for p in prompts:
            self._rows.append(("prompt", p))
            args = ", ".join(a["name"] for a in p.get("arguments", []))
            about = (p.get("description") or "") + (f" ({args})" if args else "")
            table.add_row("prompt", Text(visible(p["name"])), Text(visible(about)))
        about_tools = self._tool_about.get(s.name, {})
        for tool in s.tools:
            self._rows.append(("tool", {"name": tool}))
            table.add_row("tool", Text(visible(tool)), Text(visible(about_tools.get(tool, ""))))

    @work(group="mcp-list", exclusive=True, description="list resources and prompts")
    async def _load(self, name: str) -> None:
        try:
            server = await self.engine.mcp_server(name)
            tools = {t.name: _first_line(t.description) for t in await server.list_tools()}
            resources = await server.list_resources()
            prompts = await server.list_prompts()
        except Exception as exc:
            self.post_message(self.Loaded(name, [], [], f"resources and prompts: {exc}"))
            return
        self.post_message(self.Loaded(name, resources, prompts, tools=tools))

    @on(Loaded)
    def _loaded(self, event: Loaded) -> None:
        self.listing[event.server] = (event.resources, event.prompts, event.error)
        self._tool_about[event.server] = event.tools
        self._listed_version += 1
        if event.server == self.selected:
            s = self.statuses.get(event.server)
            if s is not None:
                self.query_one("#mcp-detail", Static).update(self._detail(s))
            self._draw_items()

    @on(DataTable.RowSelected, "#mcp-items")
    def _item_chosen(self, event: DataTable.RowSelected) -> None:
        row = event.cursor_row
        if self.selected is None or not 0 <= row < len(self._rows):
            return
        kind, item = self._rows[row]
        if kind == "resource":
            self._attach_resource(self.selected, item["uri"])
        elif kind == "prompt":
            if item.get("arguments"):
                server = self.selected

                def got(values: dict[str, str] | None) -> None:
                    if values is not None:
                        self._attach_prompt(server, item["name"], values)

                self.app.push_screen(PromptArguments(server, item), got)
            else:
                self._attach_prompt(self.selected, item["name"], {})
        else:
            self.notify(f"{item['name']}: agents that list it can call it", timeout=4)

    @work(group="mcp-attach", exclusive=True, description="read a resource")
    async def _attach_resource(self, server: str, uri: str) -> None:
        try:
            text = await (await self.engine.mcp_server(server)).read_resource(uri)
        except Exception as exc:
            self.notify(str(exc), title=f"{server}: cannot read {uri}", severity="error")
            return
        self.post_message(self.Attach(resource_block(uri, text)))

    @work(group="mcp-attach", exclusive=True, description="get a prompt")
    async def _attach_prompt(self, server: str, name: str, values: dict[str, str]) -> None:
        try:
            text = await (await self.engine.mcp_server(server)).get_prompt(name, values)
        except Exception as exc:
            self.notify(str(exc), title=f"{server}: prompt {name}", severity="error")
            return
        self.post_message(self.Attach(text.rstrip() + "\n"))

    @on(Attach)
    def _attach_text(self, event: Attach) -> None:
        prompt = getattr(self.app, "prompt", None)
        if prompt is None:
            return
        prompt.insert(event.text)
        self.dismiss(None)
        prompt.focus()

    # -- actions ------------------------------------------------------------------------------

    def action_restart(self) -> None:
        """Start the selected server, or stop it and start it again."""
        if self.selected is not None:
            if self.listing.pop(self.selected, None):
                self._listed_version += 1
            self._restart(self.selected)

    @work(group="mcp-restart", description="restart an MCP server")
    async def _restart(self, name: str) -> None:
        try:
            await (await self.engine.mcp_server(name)).restart()
        except Exception as exc:  # the status shows why; say it here too
            self.notify(str(exc).splitlines()[0], title=f"{name} did not start", severity="error")

    def action_scroll_detail(self, pages: int) -> None:
        """Scroll the details (they take no focus, so tab goes from servers to items)."""
        box = self.query_one("#mcp-detail-box", VerticalScroll)
        box.scroll_to(y=box.scroll_y + pages * max(1, box.size.height - 1), animate=False)

    def action_back(self) -> None:
        """Back to the chat."""
        self.dismiss(None)
