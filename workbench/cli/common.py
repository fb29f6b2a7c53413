"""What every command shares: exit codes, the usage error, messages on stderr, opening the
engine and the TUI."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any

from workbench.errors import WorkbenchError

if TYPE_CHECKING:
    import argparse

    from workbench.engine import Engine


EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_WAITING, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class CliError(WorkbenchError):
    """A usage or configuration problem: printed, exit code 2."""


def _hint(msg: str) -> None:
    from rich.console import Console
    from rich.markup import escape

    from workbench.termsafe import visible

    Console(stderr=True).print(f"[yellow]hint:[/] {escape(visible(msg))}")


def _read_only_note(store: Any) -> None:
    """Say on stderr that the store could only be opened for reading, and why."""
    if store.read_only is not None:
        _note(f"{store.read_only.message}: the store is open read-only (showing what it holds)")


def _err(msg: str) -> None:
    from rich.console import Console
    from rich.markup import escape

    from workbench.termsafe import visible

    Console(stderr=True).print(f"[bold red]error:[/] {escape(visible(msg))}")


def _run_tui(**options: Any) -> int:
    """Open the TUI (``screens.app.run_app`` with ``options``); returns its exit code."""
    with keys_as_typed():
        try:
            from screens.app import run_app  # the only place workbench imports the UI
        except ImportError as exc:
            raise CliError(f"the TUI is not available: {exc}") from exc
        return int(run_app(**options) or 0)


@contextmanager
def keys_as_typed(fd: int | None = None) -> Iterator[None]:
    """Keys typed while the TUI starts reach it as typed; the terminal is given back as it
    was.

    Until Textual takes the terminal (its first frame, a quarter of a second or more), the
    terminal is in line mode: what is typed is echoed over the shell, and Enter is turned
    into a line feed, which the app then reads as ctrl+j (a new line in the prompt, not
    send). So the terminal is put in the input mode Textual uses (no line editing, no
    echo, carriage returns kept) at once, before the UI is imported; ctrl+c still
    interrupts the start-up. Textual restores this mode when it exits, and this restores
    the one the shell gave us. Not a terminal (tests, pipes): nothing is changed.
    """
    try:
        import termios
    except ImportError:  # not a POSIX terminal
        yield
        return
    try:
        fd = sys.stdin.fileno() if fd is None else fd
        before = termios.tcgetattr(fd)
    except (termios.error, OSError, ValueError, AttributeError):  # not a terminal
        yield
        return
    mode = termios.tcgetattr(fd)
    mode[0] &= ~(termios.ICRNL | termios.INLCR | termios.IGNCR)  # iflag: Enter stays \r
    mode[3] &= ~(termios.ECHO | termios.ICANON)  # lflag: no echo, no line editing
    mode[6][termios.VMIN], mode[6][termios.VTIME] = 1, 0
    try:
        termios.tcsetattr(fd, termios.TCSANOW, mode)
    except termios.error:
        yield
        return
    try:
        yield
    finally:
        with suppress(termios.error):
            termios.tcsetattr(fd, termios.TCSANOW, before)


def _engine(args: argparse.Namespace, kind: str = "engine") -> Engine:
    from workbench.engine import Engine

    return Engine.open(args.workspace, args.db, kind=kind)


def _note(msg: str) -> None:
    """A line for people on stderr (stdout carries what scripts read)."""
    from rich.console import Console
    from rich.markup import escape

    from workbench.termsafe import visible

    Console(stderr=True, highlight=False).print(f"[dim]{escape(visible(msg))}[/]")


def _asdict(obj: Any) -> dict[str, Any]:
    import dataclasses

    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    dump = getattr(obj, "model_dump", None)
    return dict(dump()) if dump else dict(vars(obj))


def _when(ts: float) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))
