"""Both engines have the shape the TUI is written against (:mod:`screens.engine_api`).

mypy checks it statically (the assignments at the end of ``screens/engine_api.py``, in the
type step of ``scripts/test``); this is the fast runtime check, so the test suite fails too
when an engine drifts from the seam: a member gone, a method async on one side and blocking
on the other, a parameter renamed or dropped.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from screens.engine_api import BrokerLike, EngineLike, RunHandleLike


def _members(protocol: type) -> Iterator[tuple[str, Any]]:
    for name, member in vars(protocol).items():
        if not name.startswith("_"):
            yield name, member


def _check_method(owner: str, name: str, wanted: Callable[..., Any], got: Any) -> None:
    assert callable(got), f"{owner}.{name} is not a method"
    assert inspect.iscoroutinefunction(got) == inspect.iscoroutinefunction(wanted), (
        f"{owner}.{name}: async on one side only"
    )
    want_params = list(inspect.signature(wanted).parameters.values())[1:]  # without self
    have = inspect.signature(got).parameters
    accepts_any = {p.kind for p in have.values()} & {
        inspect.Parameter.VAR_KEYWORD,
        inspect.Parameter.VAR_POSITIONAL,
    }
    for p in want_params:
        if accepts_any:
            break
        assert p.name in have, f"{owner}.{name} has no parameter {p.name!r}"
        assert have[p.name].kind == p.kind, f"{owner}.{name}({p.name}): {have[p.name].kind}"
        if p.default is not inspect.Parameter.empty:
            assert have[p.name].default == p.default, f"{owner}.{name}({p.name}=) default"
    extra = [p for n, p in have.items() if n not in {w.name for w in want_params} | {"self"}]
    for p in extra:  # what the seam does not pass must not be required
        assert p.default is not inspect.Parameter.empty or p.kind in (
            inspect.Parameter.VAR_KEYWORD,
            inspect.Parameter.VAR_POSITIONAL,
        ), f"{owner}.{name} requires {p.name!r}, which the TUI never passes"


def _check(protocol: type, obj: object) -> list[str]:
    """Check ``obj`` against ``protocol``; the names checked."""
    owner = type(obj).__name__
    checked = []
    for name, member in _members(protocol):
        if isinstance(member, property):
            # An attribute set in __init__ or a property: found without being read (a remote
            # engine's workspace raises until it is connected).
            missing = object()
            assert inspect.getattr_static(obj, name, missing) is not missing, (
                f"{owner} has no {name}"
            )
        elif callable(member):
            _check_method(owner, name, member, getattr(obj, name, None))
        else:
            continue
        checked.append(name)
    return checked


async def test_the_local_engine_has_the_seam(tmp_path: Path) -> None:
    from workbench.engine import Engine

    (tmp_path / "workbench.yaml").write_text("agents: {a: {model: test}}\n")
    engine = Engine.open(tmp_path, f"sqlite:///{tmp_path}/wb.db")
    try:
        checked = _check(EngineLike, engine)
        _check(BrokerLike, engine.broker)
        handle = await engine.start_run("a", "hello")
        _check(RunHandleLike, handle)
        assert (await handle.wait()).ok
    finally:
        await engine.aclose()
    # every data method the TUI calls on its loop has its async twin on the seam
    for name in ("sessions", "session_events", "runs", "delete_session", "search_sessions"):
        assert name in checked and f"a{name}" in checked
    assert {"workspace", "root", "policy", "broker", "asaved_rules", "aremove_rule"} <= set(checked)


async def test_the_remote_engine_has_the_seam() -> None:
    import asyncio

    from workbench.client import RemoteEngine, RemoteRunHandle
    from workbench.runtime import RunOutcome

    engine = RemoteEngine("http://127.0.0.1:9")  # never connected: nothing is asked of it
    try:
        checked = _check(EngineLike, engine)
        _check(BrokerLike, engine.broker)
    finally:
        await engine.aclose()

    async def done() -> RunOutcome:
        return RunOutcome("completed", output="hi", run_id="r_1")

    handle = RemoteRunHandle("r_1", "s_1", asyncio.create_task(done()))
    _check(RunHandleLike, handle)
    assert (await handle.wait()).output == "hi"
    assert set(checked) == {name for name, _ in _members(EngineLike)}
