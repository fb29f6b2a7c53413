"""Workspaces: ``workbench.yaml`` as a validated, typed configuration.

A workspace is a folder with a ``workbench.yaml`` and, optionally, Python modules for
custom tools and step functions (``module:function``). :func:`load_workspace` reads the
file, validates it and returns a frozen :class:`Workspace`; every mistake becomes a
:class:`WorkspaceError` that names the file, the line and the key (a dotted path such as
``agents.researcher.tools[2]``) and says what was expected. Loading never writes anything
and never imports the workspace's own modules (it only reads them to check that a named
function exists).

The file is composed into a YAML node tree first, so every key and value keeps its line;
the tree is turned into plain data, validated by the pydantic models below, and each
pydantic error's ``loc`` is mapped back to its line. Checks that span the whole file
(unknown models, tools, agents; cycles; step references in expressions) run afterwards.

Workflow conditions and loop bounds use a tiny expression language, compiled by
:func:`compile_expression` into an :class:`Expression` without ``eval``: only a whitelist of
syntax (names ``input``, ``iteration``, ``state.KEY``, ``steps.NAME.output``; literals;
comparisons; ``and``/``or``/``not``; ``in``, ``not in``, ``contains``; ``len(x)``) is
accepted, and anything else is refused when the workspace loads.

This module is imported on the TUI's start-up path: it must not import litellm, lancedb
or textual.
"""

from __future__ import annotations

from .diff import diff_workspaces
from .errors import WorkspaceError
from .expressions import Expression, ExpressionError, compile_expression, is_function_ref
from .load import load_workspace
from .models import (
    BUILTIN_TOOLKITS,
    WORKSPACE_FILE,
    AgentConfig,
    ApprovalsConfig,
    ConditionNode,
    KnowledgeSource,
    LoopNode,
    McpServerConfig,
    ModelSpec,
    Node,
    ParallelNode,
    RouterNode,
    StepNode,
    TeamConfig,
    TeamMode,
    WorkflowConfig,
    Workspace,
    split_approval_rule,
)

__all__ = [
    "BUILTIN_TOOLKITS",
    "WORKSPACE_FILE",
    "AgentConfig",
    "ApprovalsConfig",
    "ConditionNode",
    "Expression",
    "ExpressionError",
    "KnowledgeSource",
    "LoopNode",
    "McpServerConfig",
    "ModelSpec",
    "Node",
    "ParallelNode",
    "RouterNode",
    "StepNode",
    "TeamConfig",
    "TeamMode",
    "WorkflowConfig",
    "Workspace",
    "WorkspaceError",
    "compile_expression",
    "diff_workspaces",
    "is_function_ref",
    "load_workspace",
    "split_approval_rule",
]
