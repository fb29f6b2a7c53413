"""One description of events: every kind of event reaches one method of every renderer."""

from __future__ import annotations

import inspect
from typing import Any, get_args, get_type_hints

import pytest

from workbench import events
from workbench.describe import EventRenderer, describe
from workbench.render import TranscriptPrinter
from workbench.sessions.html_export import _Html
from workbench.sessions.markdown_export import _Markdown

EVENT_CLASSES: list[type[events.EventBase]] = list(get_args(get_args(events.Event)[0]))
METHODS = sorted(
    name
    for name, _ in inspect.getmembers(EventRenderer, inspect.isfunction)
    if not name.startswith("_")
)


class _Recorder:
    """A renderer that answers every method with its own name."""

    def __getattr__(self, name: str) -> Any:
        if name not in METHODS:
            raise AttributeError(name)
        return lambda e: (name, e)


def test_the_union_is_the_whole_vocabulary() -> None:
    assert len(EVENT_CLASSES) == len(set(EVENT_CLASSES)) == len(METHODS)
    # every concrete event class (one with its own ``type``) is in the union
    concrete = {
        c
        for c in vars(events).values()
        if isinstance(c, type)
        and issubclass(c, events.EventBase)
        and "type" in c.model_fields
        and isinstance(c.model_fields["type"].default, str)
    }
    assert concrete == set(EVENT_CLASSES)


@pytest.mark.parametrize("cls", EVENT_CLASSES, ids=lambda c: c.__name__)
def test_every_event_kind_is_described(cls: type[events.EventBase]) -> None:
    ev = cls.model_construct()
    name, seen = describe(ev, _Recorder())
    assert seen is ev
    # the method's parameter is annotated with this very class: one kind, one method
    assert get_type_hints(getattr(EventRenderer, name))["e"] is cls


def test_each_kind_has_its_own_method() -> None:
    names = [describe(cls.model_construct(), _Recorder())[0] for cls in EVENT_CLASSES]
    assert sorted(names) == METHODS


@pytest.mark.parametrize("renderer", [TranscriptPrinter, _Markdown, _Html])
def test_every_renderer_renders_every_kind(renderer: type) -> None:
    missing = [m for m in METHODS if not callable(getattr(renderer, m, None))]
    assert missing == []
