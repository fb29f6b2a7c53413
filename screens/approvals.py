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
from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Input, OptionList, Static, TextArea
from textual.widgets.option_list import Option

from screens.card import DECIDE_KEYS, KEY_HINT, DecideHow, approval_detail, args_json
from screens.pane import Pane
from screens.state import ApprovalState, CallKey, SessionState, call_summary
from workbench.termsafe import visible

__all__ = [
    "DECIDE_KEYS",
    "ApprovalsPane",
    "ConfirmRulesModal",
    "DecideHow",
    "DenyNoteModal",
    "EditArgumentsModal",
    "RulesList",
    "approval_detail",
]

RulesPreview = Callable[[ApprovalState], Awaitable[list[str]]]
"""Says which rules an 'allow always' would save for a call."""


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
                args_json(self.approval.arguments),
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


class RulesList(OptionList):
    """The rules in force; ``del`` (or ``x``) asks to remove the highlighted one."""

    BINDINGS: ClassVar[list[Any]] = [
        Binding("delete,x,backspace", "remove", "Remove rule"),
    ]

    class Remove(Message):
        """Remove the highlighted rule, please."""

    def action_remove(self) -> None:
        """Ask to remove the highlighted rule."""
        self.post_message(self.Remove())


class ApprovalsPane(Vertical, Pane):
    """The queue of pending tool calls (oldest first, the order they are decided in), the
    details of the highlighted one, and the saved rules.

    The pane says what a person asked for (:class:`ApprovalsPane.Decide`,
    :class:`ApprovalsPane.RemoveRule`); the app does it, the same way as for the keys typed
    in the chat or a lane.
    """

    BINDINGS: ClassVar[list[Any]] = [
        Binding("y", "decide('once')", "Allow once"),
        Binding("s", "decide('session')", "Allow session"),
        Binding("a", "decide('always')", "Allow always"),
        Binding("n", "decide('deny')", "Deny"),
        Binding("e", "decide('edit')", "Edit+allow"),
        Binding("r", "rules", "Saved rules"),
    ]

    @dataclass
    class Decide(Message):
        """A person asked to decide a pending call (``how``: once, session, always, deny,
        edit)."""

        pane: ApprovalsPane
        """The pane."""
        approval: ApprovalState
        """The call."""
        how: DecideHow
        """What the key asked for."""

        @property
        def control(self) -> ApprovalsPane:
            """The pane."""
            return self.pane

    @dataclass
    class RemoveRule(Message):
        """A person asked to remove a rule in force."""

        pane: ApprovalsPane
        """The pane."""
        rule: Any
        """The rule (a :class:`workbench.approvals.Rule`)."""

        @property
        def control(self) -> ApprovalsPane:
            """The pane."""
            return self.pane

    def __init__(
        self,
        *,
        read_only: bool = False,
        deciding: set[CallKey] | None = None,
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self.read_only = read_only
        """A replay shows decisions but cannot make them."""
        self.deciding: set[CallKey] = deciding if deciding is not None else set()
        """Calls decided here whose decision the log does not show yet (shared with the
        app: they leave the queue at once, and a second key decides the next call)."""
        self._shown: list[ApprovalState] = []
        self._pending: list[ApprovalState] = []
        self._state: SessionState | None = None
        self._rules: list[Any] = []
        self.elsewhere: list[ApprovalState] = []
        """Calls waiting in other sessions (queued after the session's own)."""

    def compose(self) -> Any:
        yield Static("", id="approvals-head")
        with Horizontal(id="approvals-body"):
            with Vertical(id="approvals-left"):
                yield OptionList(id="approvals-queue")
                yield Static("", id="rules-head")
                yield RulesList(id="rules-list")
            with VerticalScroll(id="approvals-detail"):
                yield Static("", id="approval-detail")

    def on_mount(self) -> None:
        self.set_class(self.read_only, "-read-only")
        # Textual calls a widget mounted only once its mount handlers are done: the queue,
        # the rules and the state it was handed before (it may mount late) are drawn just
        # after.
        self.call_later(self._redraw)
        self.call_later(self._draw_rules)
        self.catch_up()

    @property
    def queue(self) -> OptionList:
        """The list of calls."""
        return self.query_one("#approvals-queue", OptionList)

    @property
    def rules_list(self) -> RulesList:
        """The rules in force."""
        return self.query_one("#rules-list", RulesList)

    @property
    def highlighted(self) -> ApprovalState | None:
        """The call the keys act on."""
        index = self.queue.highlighted
        if index is None or not 0 <= index < len(self._shown):
            return None
        return self._shown[index]

    @property
    def waiting(self) -> list[ApprovalState]:
        """The calls that wait for a decision, oldest first (as shown)."""
        return list(self._pending)

    def rebuild(self, state: SessionState) -> None:
        """Draw a whole state."""
        self._state = state
        self._redraw()

    def set_elsewhere(self, approvals: list[ApprovalState]) -> None:
        """The calls waiting in other sessions (the app follows every session's)."""
        if approvals != self.elsewhere:
            self.elsewhere = list(approvals)
            self._redraw()

    def sync(self, state: SessionState, changes: Any) -> None:
        """Draw one frame's changes."""
        self._state = state
        if changes.approvals:
            self._redraw()

    def refresh_queue(self) -> None:
        """Redraw after a decision made elsewhere (the chat's keys)."""
        self._redraw()

    def _redraw(self) -> None:
        if not self.is_mounted:
            return
        state = self._state
        pending = list(reversed(state.pending_approvals())) if state else []
        pending += [a for a in self.elsewhere if not self.read_only]
        pending = [a for a in pending if a.key not in self.deciding]
        decided: list[ApprovalState] = []
        if state is not None:
            decided = sorted(
                (a for a in state.approvals.values() if a not in pending),
                key=lambda a: a.seq,
                reverse=True,
            )[:20]
        queue = self.queue
        current = self.highlighted
        index = queue.highlighted or 0
        self._pending = pending
        self._shown = pending + decided
        queue.set_options([Option(_row(a, a in pending)) for a in self._shown])
        if pending:
            # A waiting call stays highlighted; once decided (or when the highlight was on
            # a decided one) the next waiting call takes its place.
            index = pending.index(current) if current in pending else min(index, len(pending) - 1)
            queue.highlighted = index
        elif self._shown:
            queue.highlighted = self._shown.index(current) if current in self._shown else 0
        n = len(pending)
        head = Text(no_wrap=True, overflow="ellipsis")
        if n:
            head.append(f"{n} waiting", style="bold yellow")
            if not self.read_only:
                head.append(f"  {KEY_HINT} · r saved rules", style="dim")
        else:
            head.append("Nothing waits for a decision.", style="dim")
            if not self.read_only:
                head.append("  r saved rules", style="dim")
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

    def action_decide(self, how: DecideHow) -> None:
        """Decide on the highlighted call."""
        a = self.highlighted
        if self.read_only:
            self.notify("This is a replay: decisions are not possible here.", severity="warning")
            return
        if a is None or a.status != "pending" or a.key in self.deciding:
            self.notify("No waiting call is selected.", severity="warning")
            return
        self.post_message(self.Decide(self, a, how))

    # -- saved rules -----------------------------------------------------------------------

    def show_rules(self, rules: list[Any]) -> None:
        """The rules in force (the session's and the saved ones), each removable."""
        self._rules = list(rules)
        self._draw_rules()

    def _draw_rules(self) -> None:
        if not self.is_mounted:
            return
        rules_list = self.rules_list
        index = rules_list.highlighted or 0
        rules_list.set_options([Option(_rule_row(r)) for r in self._rules])
        if self._rules:
            rules_list.highlighted = min(index, len(self._rules) - 1)
        self.set_class(not self._rules, "-no-rules")
        head = Text("Saved rules", style="bold")
        if self._rules:
            head.append(f" ({len(self._rules)}) · del removes", style="dim")
        else:
            head.append(" · none yet ('a' or 's' saves one)", style="dim")
        self.query_one("#rules-head", Static).update(head)

    def action_rules(self) -> None:
        """Show the saved rules and move to them (and back). A small terminal shows them
        only then."""
        if self.read_only:
            return
        if self.rules_list.has_focus or (self.has_class("-show-rules") and not self._rules):
            self.remove_class("-show-rules")
            self.queue.focus()
        else:
            self.add_class("-show-rules")
            self.rules_list.focus()

    @on(OptionList.OptionHighlighted, "#rules-list")
    def _show_rule(self) -> None:
        index = self.rules_list.highlighted
        if index is None or not 0 <= index < len(self._rules):
            return
        rule = self._rules[index]
        text = Text(_rule_text(rule), style="bold")
        text.append(f"\n{_scope_words(rule)}", style="dim")
        if getattr(rule, "note", None):
            text.append(f"\n{rule.note}", style="italic")
        text.append("\n\ndel (or x) removes it: the next call it matched asks again.", style="dim")
        self.query_one("#approval-detail", Static).update(text)

    @on(RulesList.Remove)
    def _remove_rule(self, event: RulesList.Remove) -> None:
        index = self.rules_list.highlighted
        if self.read_only or index is None or not 0 <= index < len(self._rules):
            return
        self.post_message(self.RemoveRule(self, self._rules[index]))


def _row(a: ApprovalState, waiting: bool) -> Text:
    """Two lines: the tool and who asks; what it would do (enough to tell calls apart)."""
    label = Text()
    if waiting:
        label.append("⚠ ", style="bold yellow")
        label.append(a.tool, style="bold")
    else:
        mark = {"allowed": "✓ ", "denied": "✗ ", "cancelled": "■ "}.get(a.status, "· ")
        label.append(mark, style="green" if a.status == "allowed" else "red")
        label.append(a.tool, style="dim")
    label.append(f"  {a.source}", style="cyan" if waiting else "dim")
    if a.session_id:  # another session's (the detail names it in full)
        label.append(f"  ↪ {a.session_id[:10]}", style="dim")
    args = a.edited_arguments if a.edited_arguments is not None else a.arguments
    summary = call_summary(args, 44)
    if summary:
        label.append(f"\n  {summary}", style="" if waiting else "dim")
    return label


def _rule_text(rule: Any) -> str:
    display = getattr(rule, "display", None)
    return visible(str(display()) if callable(display) else str(rule))


def _scope_words(rule: Any) -> str:
    return {
        "session": "for this session (kept in this process)",
        "workspace": "for this workspace (saved in the store)",
        "always": "in every workspace (saved in the store)",
    }.get(getattr(rule, "scope", ""), str(getattr(rule, "scope", "")))


def _rule_row(rule: Any) -> Text:
    text = Text(_rule_text(rule))
    scope = getattr(rule, "scope", "")
    text.append(f"  {scope}", style="dim")
    return text
