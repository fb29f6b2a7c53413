"""``workbench replay``: a stored session (or an exported file) replayed, in the TUI or plain."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse


from .common import EXIT_OK, CliError, _read_only_note, _run_tui

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
