"""Workbench: a terminal workbench for people who build multi-agent systems.

The public API, for plugin authors and scripts (the README's "Writing a plugin")::

    from workbench import FunctionToolkit, ToolContext, ToolError, tool

:func:`tool`, :class:`Toolkit`, :class:`FunctionToolkit`, :class:`ToolError`,
:class:`ToolContext` (what a tool may know of its call), :class:`StepContext` (what a
workflow's function step, predicate or router is given), :class:`Engine` (to run a
workspace from a script) and :class:`WorkbenchError` (the base of every error a person
reads). The package is typed (``py.typed``). Other modules are
internal and may move.

Each name loads on first use: ``import workbench`` imports nothing else, so the CLI, the
TUI's first frame and a plugin's entry point stay fast.
"""

import sys

# Not typing's TYPE_CHECKING, nor `from __future__ import annotations`, nor importlib: any
# of them would cost more than this module.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from workbench.engine import Engine
    from workbench.errors import WorkbenchError
    from workbench.tools import FunctionToolkit, ToolContext, ToolError, Toolkit, tool
    from workbench.workflow import StepContext

__all__ = [
    "Engine",
    "FunctionToolkit",
    "StepContext",
    "ToolContext",
    "ToolError",
    "Toolkit",
    "WorkbenchError",
    "tool",
]

_HOMES: dict[str, str] = {
    "Engine": "workbench.engine",
    "FunctionToolkit": "workbench.tools",
    "StepContext": "workbench.workflow",
    "ToolContext": "workbench.tools",
    "ToolError": "workbench.tools",
    "Toolkit": "workbench.tools",
    "WorkbenchError": "workbench.errors",
    "tool": "workbench.tools",
}
"""Where each public name lives."""


if not TYPE_CHECKING:  # hidden from mypy, which would take any name for a public one

    def __getattr__(name: str) -> object:
        home = _HOMES.get(name)
        if home is None:
            # An AttributeError, so `from workbench import server` goes on to import the
            # submodule.
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        __import__(home)
        value = getattr(sys.modules[home], name)
        globals()[name] = value  # the next lookup does not come here
        return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
