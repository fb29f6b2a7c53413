"""What every pane of a session shares: it may be mounted after the first frame.

The panes other than the chat are mounted after the first frame (in the app, built and
mounted once a prompt typed at once has its answer or when their tab is shown; in a replay,
right after the first refresh), so neither waits for their modules and widgets. A state
handed to a pane before it is mounted is kept and drawn when it mounts (Textual calls a
widget mounted only once its mount handlers are done: what a pane draws only when mounted,
it draws just after).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from screens.state import Changes, SessionState

__all__ = ["Pane"]


class Pane:
    """Mixin for the panes of :class:`~screens.session_view.SessionView`."""

    pending_state: SessionState | None = None
    """A state that arrived before the pane was mounted."""

    if TYPE_CHECKING:
        # Every pane is also a Textual widget: this is Widget.is_mounted (a read-only
        # property), declared for the type checker only so the widget's own is used.
        @property
        def is_mounted(self) -> bool: ...

    def rebuild(self, state: SessionState) -> None:
        """Draw a whole state."""
        raise NotImplementedError

    def sync(self, state: SessionState, changes: Changes) -> None:
        """Draw one frame's changes."""
        raise NotImplementedError

    def show_state(self, state: SessionState) -> None:
        """Rebuild now, or once mounted."""
        if self.is_mounted:
            self.rebuild(state)
        else:
            self.pending_state = state

    def show_changes(self, state: SessionState, changes: Changes) -> None:
        """Sync now; a pane not mounted yet catches up with the whole state when it is."""
        if self.is_mounted:
            self.sync(state, changes)
        else:
            self.pending_state = state

    def catch_up(self, *_: Any) -> None:
        """Draw the state that arrived before mount (call at the end of on_mount)."""
        state, self.pending_state = self.pending_state, None
        if state is not None:
            self.rebuild(state)
