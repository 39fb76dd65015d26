"""Trading windows of a webhook config: when entries may be placed, when to flatten, when to cancel.

A trader's most common intraday setting (TradersPost, OpenAlgo, PineConnector): "entries only
09:30–15:45 exchange time, flatten at 15:55, exits always allowed". Here:

- ``calendar``: an ``exchange_calendars`` code (``XNYS``, ``XLON``, ``XTKS``...; its aliases such
  as ``NYSE`` too) whose sessions say which days trade (holidays and weekends do not) and when
  each day's REGULAR session closes (16:00 on XNYS, 13:00 on an early close), or ``24/7``
  (crypto: every day is a session, no close). Every session day, entries and the flatten end
  at that close: a 16:00–20:00 window on XNYS never opens. For extended hours use ``24/7``
  with a ``timezone`` (then holidays and weekends are not closed either).
- ``timezone``: the IANA zone the times are read in; default the calendar's own (New York for
  XNYS), UTC for ``24/7``. Daylight saving follows the zone: 09:30 New York is 13:30 UTC in
  summer and 14:30 UTC in winter.
- ``entry_windows``: ``[{"start": "09:30", "end": "15:45"}]``, start inclusive, end exclusive,
  at most 8, none overlapping, none ending at or before its start (a window cannot cross
  midnight: use two). Empty: entries are not limited by time (only flatten/cancel apply). An
  entry outside every window, or on a day that is not a session, is denied
  ``outside_trading_window``. A window ends at the session's close at the latest, every day
  (the regular close, or the early close); its start is not moved (a 04:00–09:30 pre-market
  window on XNYS opens). Exits and cancels always pass.
- ``flatten_at``: ``"15:55"`` or null: at that time of each session the config's positions are
  closed and its working orders canceled (source ``schedule``); no later than 5 minutes before
  the session's close, every day (``"17:00"`` on XNYS flattens at 15:55; 12:55 on an early close).
- ``cancel_at_window_end``: at the end of each entry window its working orders are canceled.

Pure: no clock and no I/O besides reading ``exchange_calendars``' built-in calendars (once per
process and calendar). Times given as ``now`` are timezone-aware.
"""

from __future__ import annotations

import itertools
import re
import warnings
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

ALWAYS_OPEN = "24/7"
MAX_WINDOWS = 8
EARLY_CLOSE_FLATTEN_MARGIN = timedelta(minutes=5)
CALENDAR_START = "2020-01-01"
DENIAL_CODE = "outside_trading_window"
_TIME = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")


class WindowsInvalid(ValueError):
    """Trading windows that cannot be used: ``code``, the ``field`` (a dotted path) and why."""

    def __init__(self, code: str, field: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Window:
    """One entry window, local times: ``start`` inclusive, ``end`` exclusive, ``start < end``."""

    start: time
    end: time


@dataclass(frozen=True)
class TradingWindows:
    """A config's trading windows (see the module docstring for each field's meaning)."""

    calendar: str
    timezone: str
    entry_windows: tuple[Window, ...] = ()
    flatten_at: time | None = None
    cancel_at_window_end: bool = False
    invalid: str | None = None  # why stored windows do not parse (``stored_windows``): entries refused

    @property
    def always_open(self) -> bool:
        return self.calendar == ALWAYS_OPEN


# --- parsing and validation -----------------------------------------------------------------


def parse_windows(data: dict[str, Any] | None) -> TradingWindows | None:
    """Build ``TradingWindows`` from its JSON shape (None stays None).

    Any other input raises ``WindowsInvalid`` (never another error: stored JSON may have been
    written past the API, e.g. through Supabase REST), with code ``invalid_windows`` (a value of
    the wrong type: field ``_schema`` for the whole value, ``entry_windows``,
    ``entry_windows.N``, ``cancel_at_window_end``), ``unknown_calendar`` (field ``calendar``),
    ``unknown_time_zone`` (``timezone``), ``invalid_time`` (``entry_windows.N.start``... or
    ``flatten_at``: not ``HH:MM``), ``window_ends_before_start`` (``entry_windows.N.end``),
    ``windows_overlap`` (``entry_windows.N``), ``too_many_windows`` (``entry_windows``).
    """
    if data is None:
        return None
    if not isinstance(data, dict):
        raise WindowsInvalid("invalid_windows", "_schema", "trading windows must be a JSON object")
    calendar = data.get("calendar")
    if not isinstance(calendar, str) or (calendar != ALWAYS_OPEN and not _known_calendar(calendar)):
        raise WindowsInvalid(
            "unknown_calendar",
            "calendar",
            f"{calendar!r} is not an exchange_calendars code (e.g. XNYS, XLON) nor {ALWAYS_OPEN!r}",
        )
    zone = data.get("timezone")
    if zone is None or zone == "":
        zone = _calendar_zone(calendar) if calendar != ALWAYS_OPEN else "UTC"
    if not _known_zone(zone):
        raise WindowsInvalid(
            "unknown_time_zone", "timezone", f"{zone!r} is not an IANA time zone (e.g. America/New_York)"
        )
    raw_windows = data.get("entry_windows")
    if raw_windows is None:
        raw_windows = []
    if not isinstance(raw_windows, list):
        raise WindowsInvalid(
            "invalid_windows", "entry_windows", 'entry_windows must be a list of {"start", "end"} objects'
        )
    if len(raw_windows) > MAX_WINDOWS:
        raise WindowsInvalid("too_many_windows", "entry_windows", f"at most {MAX_WINDOWS} entry windows")
    windows = []
    for index, raw in enumerate(raw_windows):
        if not isinstance(raw, dict):
            raise WindowsInvalid(
                "invalid_windows",
                f"entry_windows.{index}",
                f'{raw!r} is not an entry window: use {{"start": "HH:MM", "end": "HH:MM"}}',
            )
        start = _parse_time(raw.get("start"), f"entry_windows.{index}.start")
        end = _parse_time(raw.get("end"), f"entry_windows.{index}.end")
        if end <= start:
            raise WindowsInvalid(
                "window_ends_before_start",
                f"entry_windows.{index}.end",
                f"the window {_hhmm(start)}–{_hhmm(end)} ends at or before it starts "
                "(a window cannot cross midnight: use two)",
            )
        windows.append((index, Window(start, end)))
    ordered = sorted(windows, key=lambda pair: pair[1].start)
    for (_, before), (index, after) in itertools.pairwise(ordered):
        if after.start < before.end:
            raise WindowsInvalid(
                "windows_overlap",
                f"entry_windows.{index}",
                f"the window {_hhmm(after.start)}–{_hhmm(after.end)} overlaps "
                f"{_hhmm(before.start)}–{_hhmm(before.end)}",
            )
    flatten_at = data.get("flatten_at")
    cancel = data.get("cancel_at_window_end")
    if cancel is not None and not isinstance(cancel, bool):
        raise WindowsInvalid("invalid_windows", "cancel_at_window_end", f"{cancel!r} is not true or false")
    return TradingWindows(
        calendar=calendar,
        timezone=zone,
        entry_windows=tuple(w for _, w in ordered),
        flatten_at=None if flatten_at is None else _parse_time(flatten_at, "flatten_at"),
        cancel_at_window_end=bool(cancel),
    )


def stored_windows(data: dict[str, Any] | None) -> TradingWindows | None:
    """``parse_windows`` for windows read back from storage, to run a signal with: never raises.

    Stored windows that do not parse (written past the API) come back as windows whose
    ``invalid`` says why: ``entry_denial`` then refuses every entry (fail closed) while exits
    and cancels still run, and ``due_controls`` schedules nothing.
    """
    try:
        return parse_windows(data)
    except WindowsInvalid as error:
        return TradingWindows(calendar="", timezone="UTC", invalid=f"{error.field}: {error.message}")


def windows_to_dict(windows: TradingWindows | None) -> dict[str, Any] | None:
    """Return the JSON shape of ``windows`` (what is stored and shown), None for none."""
    if windows is None:
        return None
    return {
        "calendar": windows.calendar,
        "timezone": windows.timezone,
        "entry_windows": [{"start": _hhmm(w.start), "end": _hhmm(w.end)} for w in windows.entry_windows],
        "flatten_at": None if windows.flatten_at is None else _hhmm(windows.flatten_at),
        "cancel_at_window_end": windows.cancel_at_window_end,
    }


def _parse_time(value: Any, field: str) -> time:
    match = _TIME.match(value) if isinstance(value, str) else None
    if match is None:
        raise WindowsInvalid("invalid_time", field, f"{value!r} is not a time as HH:MM (24 h, e.g. 09:30)")
    return time(int(match.group(1)), int(match.group(2)))


def _hhmm(value: time) -> str:
    return value.strftime("%H:%M")


def _known_zone(zone: Any) -> bool:
    if not isinstance(zone, str):
        return False
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # "America" is a directory: IsADirectoryError
        return False
    return True


# --- the rules ------------------------------------------------------------------------------


def entry_denial(windows: TradingWindows | None, now: datetime) -> str | None:
    """Return why an entry at ``now`` is outside the windows (a message), or None when it may go.

    Denied: a day that is not a session of the calendar, or a time outside every entry window
    (start inclusive, end exclusive; the session's close, regular or early, ends every window),
    or stored windows that did not parse (``invalid``: fail closed). No windows, or empty
    ``entry_windows``: None. Exits are never passed here (the engine checks entries only).
    """
    if windows is None:
        return None
    if windows.invalid is not None:
        return (
            f"the stored trading windows are invalid ({windows.invalid}): entries are refused until "
            "they are saved again (exits still run)"
        )
    if not windows.entry_windows:
        return None
    local = now.astimezone(ZoneInfo(windows.timezone))
    close = _session_close(windows, local.date())
    where = f"{local.strftime('%Y-%m-%d %H:%M')} {windows.timezone}"
    if close is _NO_SESSION:
        return f"{where} is not a trading day of {windows.calendar}: entries are refused (exits still run)"
    shown = ", ".join(f"{_hhmm(w.start)}–{_hhmm(w.end)}" for w in windows.entry_windows)
    for window in windows.entry_windows:
        start = datetime.combine(local.date(), window.start, local.tzinfo)
        end = datetime.combine(local.date(), window.end, local.tzinfo)
        if close is not None:
            end = min(end, close.astimezone(local.tzinfo))
        if start <= local < end:
            return None
    early = "" if close is None else f" (the session closes at {close.astimezone(local.tzinfo):%H:%M})"
    return f"{where} is outside the entry windows {shown}{early}: entries are refused (exits still run)"


def session_date(windows: TradingWindows, now: datetime) -> date | None:
    """Return the local date of ``now`` when it is a session day of the windows' calendar, else None."""
    if windows.invalid is not None:
        return None
    local_date = now.astimezone(ZoneInfo(windows.timezone)).date()
    return None if _session_close(windows, local_date) is _NO_SESSION else local_date


def due_controls(windows: TradingWindows | None, now: datetime) -> list[str]:
    """Return the scheduled controls due at ``now`` in today's session, oldest first.

    ``"flatten"`` once ``flatten_at`` has passed (5 minutes before the session's close at the
    latest, every day); ``"cancel@HH:MM"`` for each entry window that has ended (its ``end``, or
    the session's close) when ``cancel_at_window_end``. Nothing on a day that is not a session,
    nor for windows that did not parse (``invalid``).
    The caller runs each at most once per (config, session date, kind).
    """
    if windows is None or windows.invalid is not None:
        return []
    zone = ZoneInfo(windows.timezone)
    local = now.astimezone(zone)
    close = _session_close(windows, local.date())
    if close is _NO_SESSION:
        return []
    due: list[tuple[datetime, str]] = []
    if windows.flatten_at is not None:
        at = datetime.combine(local.date(), windows.flatten_at, zone)
        if close is not None:
            at = min(at, close.astimezone(zone) - EARLY_CLOSE_FLATTEN_MARGIN)
        if local >= at:
            due.append((at, "flatten"))
    if windows.cancel_at_window_end:
        for window in windows.entry_windows:
            end = datetime.combine(local.date(), window.end, zone)
            if close is not None:
                end = min(end, close.astimezone(zone))
            if local >= end:
                due.append((end, f"cancel@{_hhmm(window.end)}"))
    return [kind for _, kind in sorted(due)]


# --- calendars ------------------------------------------------------------------------------

_NO_SESSION: Any = object()


def _session_close(windows: TradingWindows, day: date) -> datetime | None:
    """The UTC close of the session labelled ``day``; None when every day trades (24/7);
    ``_NO_SESSION`` when ``day`` is not a session (holiday, weekend)."""
    if windows.always_open:
        return None
    closes = _session_closes(windows.calendar)
    return closes.get(day, _NO_SESSION)


@lru_cache(maxsize=64)
def _known_calendar(code: str) -> bool:
    if not code:
        return False
    import exchange_calendars

    return code in exchange_calendars.get_calendar_names(include_aliases=True)


@lru_cache(maxsize=16)
def _calendar(code: str) -> Any:
    import exchange_calendars

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return exchange_calendars.get_calendar(code, start=CALENDAR_START)
        except ValueError:  # a calendar whose data begins later (XSAU: 2021): from its own start
            return exchange_calendars.get_calendar(code)


def _calendar_zone(code: str) -> str:
    return str(_calendar(code).tz)


@lru_cache(maxsize=16)
def _session_closes(code: str) -> dict[date, datetime]:
    """Each session's label date → its close (UTC), read once from exchange_calendars."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        closes = _calendar(code).closes
        return {
            label.date(): close.to_pydatetime().astimezone(UTC)
            for label, close in zip(closes.index.tolist(), closes.tolist(), strict=True)
        }
