"""Replaying a stored session on a plain terminal, paced by its timestamps."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from workbench.events import (
    Event,
)

if TYPE_CHECKING:
    from rich.console import Console


# -- replay on a plain terminal -----------------------------------------------------------------


def replay_plain(
    events: Iterable[Event],
    console: Console,
    *,
    speed: float = math.inf,
    max_gap: float = 1.5,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Print a session's transcript (as ``sessions show`` does), paced by its timestamps.

    Args:
        events: The events, in order.
        console: Where to print.
        speed: How many times faster than recorded; ``inf`` (or 0) prints at once.
        max_gap: A recorded pause longer than this (after ``speed``) is cut to it, so a
            session that idled for an hour replays without the hour.
        sleep: Waits (tests pass a recorder).

    Returns:
        How many events were replayed.
    """
    from workbench.render import TranscriptPrinter

    paced = speed > 0 and math.isfinite(speed)
    printer = TranscriptPrinter(console, live=False)
    previous: float | None = None
    count = 0
    try:
        for e in events:
            if paced and previous is not None:
                wait = min((e.ts - previous) / speed, max_gap)
                if wait > 0:
                    sleep(wait)
            previous = e.ts
            printer.feed(e)
            count += 1
    finally:
        printer.close()
    return count
