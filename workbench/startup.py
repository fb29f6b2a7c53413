"""The cyclic garbage collector waits until a command's start-up is over.

Starting ``workbench`` imports Textual, pydantic and the engine: hundreds of thousands of
objects that all stay alive, and almost no cyclic garbage. The collector walks them all the
same, again and again as they pile up: ≈ 65-75 ms of the TUI's first answer went to 200
young, 19 middle and one full collection (measured with ``gc.callbacks``). So the command
line pauses the collector first thing (:func:`pause_collector`) and each command resumes it
once its start-up is over (:func:`resume_collector`): the TUI when its engine is open (or
could not open, or after :data:`RESUME_AFTER_S` at the latest), ``run`` and ``serve`` once
their engine is open, every other command before it runs. Resuming first moves everything
alive to the permanent generation (:func:`gc.freeze`), so later full collections do not
walk the start-up's objects again. Textual pauses the collector while it scrolls, for the
same reason (``App.PAUSE_GC_ON_SCROLL``).

Only a pause made here is resumed here: in a process that never paused (tests, a library
user opening the app), :func:`resume_collector` does nothing.
"""

from __future__ import annotations

import gc

__all__ = ["RESUME_AFTER_S", "collector_paused", "pause_collector", "resume_collector"]

RESUME_AFTER_S = 5.0
"""The latest the TUI resumes the collector, whatever its engine is doing."""

_paused = False


def pause_collector() -> None:
    """Pause the cyclic collector for the start-up (if it runs)."""
    global _paused
    if gc.isenabled():
        gc.disable()
        _paused = True


def resume_collector() -> None:
    """The start-up is over: freeze what it made and resume the collector it paused."""
    global _paused
    if _paused:
        _paused = False
        gc.freeze()
        gc.enable()


def collector_paused() -> bool:
    """Whether :func:`pause_collector` paused the collector and it is not resumed yet."""
    return _paused
