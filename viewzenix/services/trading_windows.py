"""Check a webhook config's trading windows before they are stored (``domain.windows``)."""

from __future__ import annotations

from typing import Any

from viewzenix.domain.windows import WindowsInvalid, parse_windows, windows_to_dict
from viewzenix.exceptions import Invalid


def checked_windows(values: dict[str, Any]) -> dict[str, Any]:
    """Return ``values`` with ``trading_windows`` validated and normalised (time zone filled in).

    Raises ``Invalid`` (422) whose ``code`` is the problem's (``unknown_calendar``,
    ``unknown_time_zone``, ``window_ends_before_start``, ``windows_overlap``, ``invalid_time``,
    ``too_many_windows``, ``invalid_windows``) and whose ``errors`` name the field:
    ``{"json": {"trading_windows": {"entry_windows.1.end": [message]}}}``.
    """
    if "trading_windows" not in values or values["trading_windows"] is None:
        return values
    try:
        windows = parse_windows(values["trading_windows"])
    except WindowsInvalid as error:
        raise Invalid(
            f"trading_windows.{error.field}: {error.message}",
            code=error.code,
            errors={"json": {"trading_windows": {error.field: [error.message]}}},
        ) from error
    return {**values, "trading_windows": windows_to_dict(windows)}
