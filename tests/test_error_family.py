"""One error family: every error a person reads is a :class:`WorkbenchError` with a message
and maybe a hint, formatted as "message (hint)" in one place (:meth:`describe`).

The classes keep their names and modules; ``str()`` stays the message alone (what events
and logs record), so nothing a user reads changed.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from workbench.errors import WorkbenchError, with_hint

FAMILY = [
    ("workbench.workspace", "WorkspaceError"),
    ("workbench.approvals", "ApprovalConfigError"),
    ("workbench.models", "ModelError"),
    ("workbench.tools", "ToolError"),
    ("workbench.tools", "ToolDefinitionError"),
    ("workbench.registry", "PluginError"),
    ("workbench.store", "StoreError"),
    ("workbench.runtime", "RunError"),
    ("workbench.client", "RemoteError"),
    ("workbench.sessions", "SessionsError"),
    ("workbench.sessions", "SessionNotFoundError"),
    ("workbench.knowledge", "KnowledgeError"),
    ("workbench.init", "InitError"),
    ("workbench.cli", "CliError"),
]


@pytest.mark.parametrize(("module", "name"), FAMILY, ids=[n for _, n in FAMILY])
def test_each_error_is_a_workbench_error_where_it_was(module: str, name: str) -> None:
    cls = getattr(importlib.import_module(module), name)
    assert cls.__name__ == name
    assert issubclass(cls, WorkbenchError)


def test_config_errors_are_still_value_errors() -> None:
    """Raised inside pydantic validators, they must stay ValueErrors to be reported."""
    from workbench.approvals import ApprovalConfigError
    from workbench.tools import ToolDefinitionError

    assert issubclass(ApprovalConfigError, ValueError)
    assert issubclass(ToolDefinitionError, ValueError)


def test_the_message_is_str_and_the_hint_is_added_once() -> None:
    from workbench.client import RemoteError
    from workbench.models import ModelError
    from workbench.runtime import RunError

    err = RunError("no agent, team or workflow named 'x'", hint="the workspace has: a, b")
    assert str(err) == "no agent, team or workflow named 'x'"
    assert err.describe() == "no agent, team or workflow named 'x' (the workspace has: a, b)"
    assert RunError("it failed").describe() == "it failed"
    remote = RemoteError("unauthorized (HTTP 401)", status=401, hint="check the token")
    assert (remote.status, remote.describe()) == (401, "unauthorized (HTTP 401) (check the token)")
    model = ModelError("rate limited", retryable=True)
    model.hint = "gave up after 3 attempt(s); try again later"  # as the retry loop sets it
    assert model.describe() == "rate limited (gave up after 3 attempt(s); try again later)"
    assert with_hint("the run failed", None) == "the run failed"
    assert with_hint("the run failed", "") == "the run failed"


def test_a_located_config_error_describes_as_its_location(tmp_path: Path) -> None:
    from workbench.workspace import WorkspaceError, load_workspace

    (tmp_path / "workbench.yaml").write_text("agents:\n  a:\n    model: 12\n    bogus: 1\n")
    with pytest.raises(WorkspaceError) as info:
        load_workspace(tmp_path)
    err = info.value
    assert str(err).startswith(f"{tmp_path / 'workbench.yaml'}:")
    assert err.describe() == str(err)  # no hint: the location and the message
    assert err.message in str(err)


def test_a_damaged_store_error_has_its_hint_in_describe(tmp_path: Path) -> None:
    from workbench.store import Store, StoreError

    db = tmp_path / "wb.db"
    db.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError) as info:
        Store.open(f"sqlite:///{db}").close()
    err = info.value
    assert err.hint and "doctor --repair" in err.hint
    assert err.describe() == f"{err.message} ({err.hint})"
    assert str(err) == err.message


def test_a_plugin_catches_the_family_at_once() -> None:
    """A caller (a plugin, a script) catches every workbench error with one clause."""
    from workbench.tools import ToolError

    class Refused(ToolError):
        pass

    with pytest.raises(WorkbenchError) as info:
        raise Refused("outside the workspace: /etc/passwd")
    assert info.value.describe() == "outside the workspace: /etc/passwd"
    assert info.value.hint is None
