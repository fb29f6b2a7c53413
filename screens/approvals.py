"""The approvals pane: one queue for every run of the session, newest first.

Each pending call shows its tool, its arguments (the diff of a file edit, the parts of a
shell command), which agent asks and why. Keys act on the highlighted call: ``y`` allow
once, ``s`` allow for this session, ``a`` allow always (the rules that will be saved are
shown first and must be confirmed), ``n`` deny with an optional note for the model, ``e``
edit the arguments as JSON, then allow. The pane only says what was decided (a
:class:`ApprovalsPane.Decided` message); the app passes it to the engine.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from rich.console import Group, RenderableType
from rich.text import Text
from textual import on, work
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Input, OptionList, Static, TextArea
from textual.widgets.option_list import Option

from screens.pane import Pane
from screens.state import ApprovalState, SessionState
from workbench.termsafe import json_visible

__all__ = [
    "ApprovalsPane",
    "ConfirmRulesModal",
    "DenyNoteModal",
    "EditArgumentsModal",
    "approval_detail",
]

RulesPreview = Callable[[ApprovalState], Awaitable[list[str]]]
"""Says which rules an 'allow always' would save for a call."""


def _args_json(args: dict[str, Any]) -> str:
    # Escapes what a terminal would obey without changing the value (edits stay exact).
    return json_visible(json.dumps(args, indent=2, ensure_ascii=False, default=str))


def _form_fields(form: dict[str, Any]) -> Text:
    """The fields of an input form: name, type, required, what it is for."""
    out = Text("\nform\n", style="bold")
    required = set(form.get("required") or [])
    props = form.get("properties") or {}
    for name, spec in props.items() if isinstance(props, dict) else []:
        spec = spec if isinstance(spec, dict) else {}
        kind = spec.get("type", "")
        if spec.get("enum"):
            kind = " | ".join(str(v) for v in spec["enum"])
        out.append(f"  • {name}", style="bold")
        out.append(f" ({kind}{', required' if name in required else ''})")
        about = spec.get("description") or spec.get("title")
        if about:
            out.append(f": {about}", style="dim")
        out.append("\n")
    return out


def approval_detail(a: ApprovalState, *, wide: bool = True) -> RenderableType:
    """What a person needs to decide: tool, who asks and why, arguments, diff or parts."""
    from rich.syntax import Syntax

    head = Text()
    head.append(a.tool, style="bold")
    if a.kind == "input":
        head.append(" asks for input", style="bold yellow")
        head.append(" (e fill in and send · y send these values · n decline)", style="dim")
    else:
        head.append("  asked by ")
        head.append(a.source or "?", style="bold cyan")
    head.append(f"\n{a.reason}", style="italic")
    if a.status != "pending":
        head.append(f"\n{a.decision or a.status}", style="dim")
    parts: list[RenderableType] = [head]
    if a.parts:
        cmd = Text("\ncommand parts (each needs a rule):\n", style="bold")
        for p in a.parts:
            cmd.append(f"  • {p}\n")
        parts.append(cmd)
    if a.diff:
        parts.append(Text("\ndiff", style="bold"))
        parts.append(
            Syntax(a.diff, "diff", theme="ansi_dark", word_wrap=True, background_color="default")
        )
    if a.kind == "input" and a.form:
        parts.append(_form_fields(a.form))
    parts.append(Text("\nvalues" if a.kind == "input" else "\narguments", style="bold"))
    parts.append(
        Syntax(
            _args_json(a.arguments),
            "json",
            theme="ansi_dark",
            word_wrap=True,
            background_color="default",
        )
    )
    return Group(*parts)


def _steady_cursor(screen: ModalScreen[Any]) -> None:
    """No blinking cursor when the app runs without animations (snapshot tests)."""
    if getattr(screen.app, "animations", True):
        return
    for widget in screen.query("Input, TextArea"):
        widget.cursor_blink = False  # type: ignore[attr-defined]


class DenyNoteModal(ModalScreen[str | None]):
    """Deny, with an optional note for the model. Dismisses with the note ('' for none)
    or None when the person changes their mind."""

    AUTO_FOCUS = "#deny-note"
    BINDINGS: ClassVar[list[Any]] = [Binding("escape", "cancel", "Back")]

    def __init__(self, approval: ApprovalState) -> None:
        super().__init__(classes="approval-modal")
        self.approval = approval

    def compose(self) -> Any:
        with Vertical(classes="dialog"):
            yield Static(Text(f"Deny {self.approval.tool}?", style="bold"), classes="title")
            yield Static("A note tells the model why (optional). enter denies, escape goes back.")
            yield Input(placeholder="note for the model", id="deny-note")
            with Horizontal(classes="buttons"):
                yield Button("Deny", variant="error", id="deny")
                yield Button("Back", id="back")

    def on_mount(self) -> None:
        _steady_cursor(self)

    @on(Input.Submitted, "#deny-note")
    @on(Button.Pressed, "#deny")
    def _deny(self) -> None:
        self.dismiss(self.query_one("#deny-note", Input).value.strip())

    @on(Button.Pressed, "#back")
    def action_cancel(self) -> None:
        """Back without deciding."""
        self.dismiss(None)


class EditArgumentsModal(ModalScreen[dict[str, Any] | None]):
    """Edit the arguments as JSON, then allow. Invalid JSON is refused in place."""

    AUTO_FOCUS = "#edit-args"
    BINDINGS: ClassVar[list[Any]] = [
        Binding("escape", "cancel", "Back"),
        Binding("ctrl+s", "allow", "Allow with these arguments", priority=True),
    ]

    def __init__(self, approval: ApprovalState) -> None:
        super().__init__(classes="approval-modal")
        self.approval = approval

    def compose(self) -> Any:
        with Vertical(classes="dialog -wide"):
            yield Static(
                Text(f"Edit the arguments of {self.approval.tool}", style="bold"), classes="title"
            )
            yield Static("JSON object. ctrl+s allows with these arguments, escape goes back.")
            yield TextArea(
                _args_json(self.approval.arguments),
                language=None,
                id="edit-args",
                show_line_numbers=True,
                tab_behavior="indent",
            )
            yield Static("", id="edit-error", markup=False)
            with Horizontal(classes="buttons"):
                yield Button("Allow", variant="success", id="allow")
                yield Button("Back", id="back")

    def on_mount(self) -> None:
        _steady_cursor(self)

    def parsed(self) -> dict[str, Any] | str:
        """The edited arguments, or what is wrong with them."""
        text = self.query_one("#edit-args", TextArea).text
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            return f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        if not isinstance(value, dict):
            return "the arguments must be a JSON object ({...})"
        return value

    @on(Button.Pressed, "#allow")
    def action_allow(self) -> None:
        """Allow with the edited arguments, if they parse."""
        value = self.parsed()
        if isinstance(value, str):
            self.query_one("#edit-error", Static).update(value)
            return
        self.dismiss(value)

    @on(Button.Pressed, "#back")
    def action_cancel(self) -> None:
        """Back without deciding."""
        self.dismiss(None)


class ConfirmRulesModal(ModalScreen[bool]):
    """Shows the rules an 'allow always' would save and asks to confirm."""

    BINDINGS: ClassVar[list[Any]] = [
        Binding("escape,n", "cancel", "Back"),
        Binding("y,enter", "confirm", "Save"),
    ]

    def __init__(self, approval: ApprovalState, rules: list[str]) -> None:
        super().__init__(classes="approval-modal")
        self.approval = approval
        self.rules = rules

    def compose(self) -> Any:
        with Vertical(classes="dialog"):
            yield Static(Text(f"Always allow {self.approval.tool}?", style="bold"), classes="title")
            body = Text("These rules will be saved in the workspace:\n")
            for r in self.rules or ["(none: this call matches no rule that could be saved)"]:
                body.append(f"  • {r}\n", style="bold")
            body.append("Remove one later with: workbench rules rm ID", style="dim")
            yield Static(body, id="rules")
            with Horizontal(classes="buttons"):
                yield Button("Save and allow (y)", variant="warning", id="confirm")
                yield Button("Back (n)", id="back")

    @on(Button.Pressed, "#confirm")
    def action_confirm(self) -> None:
        """Save the rules and allow."""
        self.dismiss(True)

    @on(Button.Pressed, "#back")
    def action_cancel(self) -> None:
        """Back without deciding."""
        self.dismiss(False)


class ApprovalsPane(Vertical, Pane):
    """The queue of pending tool calls and the details of the highlighted one."""

    BINDINGS: ClassVar[list[Any]] = [
        Binding("y", "decide('once')", "Allow once"),
        Binding("s", "decide('session')", "Allow session"),
        Binding("a", "decide('always')", "Allow always"),
        Binding("n", "decide('deny')", "Deny"),
        Binding("e", "decide('edit')", "Edit+allow"),
    ]

    @dataclass
    class Decided(Message):
        """A person decided on a pending call."""

        pane: ApprovalsPane
        """The pane."""
        call_id: str
        """The call."""
        decision: Literal["allow", "deny"]
        """allow or deny."""
        scope: Literal["once", "session", "workspace", "always"] = "once"
        """How far an allow reaches."""
        note: str | None = None
        """A deny's note for the model."""
        edited_arguments: dict[str, Any] | None = None
        """Arguments the person changed."""

        @property
        def control(self) -> ApprovalsPane:
            """The pane."""
            return self.pane

    def __init__(
        self,
        *,
        read_only: bool = False,
        rules_preview: RulesPreview | None = None,
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self.read_only = read_only
        """A replay shows decisions but cannot make them."""
        self.rules_preview = rules_preview
        """Which rules 'allow always' would save (None: cannot say)."""
        self._shown: list[ApprovalState] = []
        self._state: SessionState | None = None
        self._decided: set[str] = set()

    def compose(self) -> Any:
        yield Static("", id="approvals-head")
        with Horizontal(id="approvals-body"):
            yield OptionList(id="approvals-queue")
            with VerticalScroll(id="approvals-detail"):
                yield Static("", id="approval-detail")

    def on_mount(self) -> None:
        self._redraw()
        self.catch_up()

    @property
    def queue(self) -> OptionList:
        """The list of calls."""
        return self.query_one("#approvals-queue", OptionList)

    @property
    def highlighted(self) -> ApprovalState | None:
        """The call the keys act on."""
        index = self.queue.highlighted
        if index is None or not 0 <= index < len(self._shown):
            return None
        return self._shown[index]

    def rebuild(self, state: SessionState) -> None:
        """Draw a whole state."""
        self._state = state
        self._redraw()

    def sync(self, state: SessionState, changes: Any) -> None:
        """Draw one frame's changes."""
        self._state = state
        for asked in changes.new_approvals:  # asked (again, after an edit): decidable again
            self._decided.discard(asked.call_id)
        if changes.approvals:
            self._redraw()

    def _redraw(self) -> None:
        if not self.is_mounted:
            return
        state = self._state
        pending = state.pending_approvals() if state else []
        pending = [a for a in pending if a.call_id not in self._decided]
        decided = []
        if state is not None:
            decided = sorted(
                (a for a in state.approvals.values() if a not in pending),
                key=lambda a: a.seq,
                reverse=True,
            )[:20]
        current = self.highlighted
        self._shown = pending + decided
        queue = self.queue
        options = []
        for a in self._shown:
            label = Text()
            if a in pending:
                label.append("⚠ ", style="bold yellow")
                label.append(a.tool, style="bold")
            else:
                mark = "✓ " if a.status == "allowed" else "✗ " if a.status == "denied" else "· "
                label.append(mark, style="green" if a.status == "allowed" else "red")
                label.append(a.tool, style="dim")
            label.append(f"  {a.source}", style="cyan" if a in pending else "dim")
            options.append(Option(label, id=a.call_id))
        queue.set_options(options)
        if self._shown:
            index = 0
            if current is not None and current in self._shown:
                index = self._shown.index(current)
            queue.highlighted = index
        n = len(pending)
        head = Text()
        if n:
            head.append(f"{n} pending", style="bold yellow")
            if not self.read_only:
                head.append("  y allow once · s session · a always · n deny · e edit", style="dim")
        else:
            head.append("Nothing waits for a decision.", style="dim")
        self.query_one("#approvals-head", Static).update(head)
        self._show_detail()

    @on(OptionList.OptionHighlighted, "#approvals-queue")
    def _show_detail(self) -> None:
        a = self.highlighted
        detail = self.query_one("#approval-detail", Static)
        if a is None:
            detail.update(Text("Tool calls that need your decision appear here.", style="dim"))
        else:
            detail.update(approval_detail(a))

    def action_decide(self, how: str) -> None:
        """Decide on the highlighted call."""
        a = self.highlighted
        if self.read_only:
            self.notify("This is a replay: decisions are not possible here.", severity="warning")
            return
        if a is None or a.status != "pending" or a.call_id in self._decided:
            self.notify("No pending call is selected.", severity="warning")
            return
        if how == "once":
            self._decide(a, "allow", "once")
        elif how == "session":
            self._decide(a, "allow", "session")
        elif how == "always":
            self._confirm_always(a)
        elif how == "deny":
            self.app.push_screen(
                DenyNoteModal(a),
                lambda note: (
                    None if note is None else self._decide(a, "deny", "once", note=note or None)
                ),
            )
        elif how == "edit":
            self.app.push_screen(
                EditArgumentsModal(a),
                lambda args: (
                    None if args is None else self._decide(a, "allow", "once", edited=args)
                ),
            )

    @work(
        exclusive=True,
        group="approval-rules",
        description="rules an 'allow always' saves",
        exit_on_error=False,
    )
    async def _confirm_always(self, a: ApprovalState) -> None:
        rules = await self.rules_preview(a) if self.rules_preview else []
        ok = await self.app.push_screen_wait(ConfirmRulesModal(a, rules))
        if ok:
            self._decide(a, "allow", "workspace")

    def _decide(
        self,
        a: ApprovalState,
        decision: Literal["allow", "deny"],
        scope: Literal["once", "session", "workspace", "always"],
        *,
        note: str | None = None,
        edited: dict[str, Any] | None = None,
    ) -> None:
        if a.call_id in self._decided:
            return
        self._decided.add(a.call_id)
        self.post_message(self.Decided(self, a.call_id, decision, scope, note, edited))
        self._redraw()

    def undecide(self, call_id: str) -> None:
        """The engine did not take a decision: show the call as pending again."""
        self._decided.discard(call_id)
        self._redraw()
