"""The ``time`` toolkit: the current time in any IANA zone, and conversion between zones.

(The module is ``clock`` so it does not shadow the standard library's ``time``.)
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from workbench.tools import FunctionToolkit, ToolError, tool

__all__ = ["TimeToolkit", "zone"]

_CLOCK = re.compile(r"^\s*(\d{1,2}):(\d{2})(?::(\d{2}))?\s*([ap]\.?m\.?)?\s*$", re.IGNORECASE)


def zone(name: str) -> tzinfo:
    """The zone called ``name`` (``Europe/Paris``, ``UTC``).

    Raises:
        ToolError: no such zone.
    """
    key = name.strip()
    if key.upper() in ("UTC", "Z", "GMT"):
        return UTC
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ToolError(
            f"unknown time zone {name!r}: use an IANA name such as 'Europe/Paris', "
            "'America/New_York' or 'UTC'"
        ) from None


def _describe(moment: datetime, zone_name: str) -> str:
    abbrev = moment.tzname() or ""
    label = zone_name if abbrev in ("", zone_name) else f"{zone_name}, {abbrev}"
    return f"{moment.isoformat(timespec='seconds')} ({moment.strftime('%A')}, {label})"


def _parse(text: str, tz: tzinfo) -> datetime:
    """An ISO 8601 date-time (``2025-03-01T14:30``), or a clock time (``14:30``, ``2:30 pm``)
    taken as today in ``tz``. An explicit offset in the text wins over ``tz``."""
    value = text.strip()
    if m := _CLOCK.match(value):
        hour, minute, second = int(m[1]), int(m[2]), int(m[3] or 0)
        if m[4]:
            if not 1 <= hour <= 12:
                raise ToolError(f"bad time {text!r}: with am/pm the hour is 1 to 12")
            hour = hour % 12 + (12 if m[4].lower().startswith("p") else 0)
        try:
            clock = time(hour, minute, second)
        except ValueError as exc:
            raise ToolError(f"bad time {text!r}: {exc}") from None
        today: date = datetime.now(tz).date()
        return datetime.combine(today, clock, tzinfo=tz)
    try:
        parsed = datetime.fromisoformat(value.replace(" UTC", "+00:00"))
    except ValueError:
        raise ToolError(
            f"bad time {text!r}: use ISO 8601 ('2025-03-01T14:30', '2025-03-01 14:30') "
            "or a clock time ('14:30', '2:30 pm')"
        ) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=tz)


class TimeToolkit(FunctionToolkit):
    """Time and time zones: ``now`` and ``convert``. Safe to allow: it only reads the clock."""

    def __init__(self, name: str, config: dict[str, Any], root: Path) -> None:
        super().__init__(name, config, root)
        self.add(tool(name="now", timeout=10.0, idempotent=True)(self.now))
        self.add(tool(name="convert", timeout=10.0, idempotent=True)(self.convert))

    def now(self, timezone: str = "UTC") -> str:
        """The current date and time in a time zone, with the weekday.

        Args:
            timezone: An IANA time zone name, e.g. ``Europe/Paris`` (default UTC).
        """
        return _describe(datetime.now(zone(timezone)), timezone.strip())

    def convert(self, time: str, from_tz: str, to_tz: str) -> str:
        """Convert a date and time from one time zone to another.

        Args:
            time: An ISO 8601 date-time (``2025-03-01T14:30``) or a clock time (``14:30``,
                today in ``from_tz``).
            from_tz: The IANA zone ``time`` is in (ignored if ``time`` has an offset).
            to_tz: The IANA zone to convert to.
        """
        source, target = zone(from_tz), zone(to_tz)
        moment = _parse(time, source)
        converted = moment.astimezone(target)
        # An offset written in ``time`` wins over ``from_tz``: label it by that offset.
        source_label = from_tz.strip() if moment.tzinfo is source else moment.tzname() or ""
        return f"{_describe(moment, source_label)} is {_describe(converted, to_tz.strip())}"
