"""The dashboard's age of a position's last price ("5 min ago")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0 s ago"), (59, "59 s ago"), (60, "1 min ago"), (7200, "2 h ago"), (90000, "1 d ago")],
)
def test_the_dashboard_says_how_old_a_price_is(seconds, text):
    from viewzenix.dashboard.views import age

    now = datetime(2026, 12, 4, tzinfo=UTC)
    assert age(now - timedelta(seconds=seconds), now) == text
