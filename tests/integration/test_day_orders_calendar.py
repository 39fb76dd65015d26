"""``day`` orders expire at the real close (exchange_calendars), through housekeeping and the ledger.

The periodic expiry (``services.housekeeping.expire_day_orders``) used to take 16:00 New York on
every weekday; now the close is the exchange calendar's: none on Thanksgiving, 13:00 New York
(18:00 UTC) on the Friday after it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from builders import make_config, trade

from viewzenix.domain.model import Action, OrderType, Signal, TimeInForce
from viewzenix.services.housekeeping import expire_day_orders

pytestmark = pytest.mark.db

THANKSGIVING = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)
BLACK_FRIDAY = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)


def resting_day_buy() -> Signal:
    return Signal(
        ticker="AAPL",
        action=Action.BUY,
        quantity=Decimal(1),
        order_type=OrderType.LIMIT,
        limit_price=Decimal(90),
        time_in_force=TimeInForce.DAY,
        signal_price=Decimal(100),
    )


def status(db, order) -> tuple[str, str | None]:
    with db.transaction() as conn:
        row = conn.execute(
            "select status, status_code from public.orders where id = %s", (order["id"],)
        ).fetchone()
    return row["status"], row["status_code"]


def test_a_day_order_expires_at_the_13_00_early_close_not_at_16_00(db):
    config = make_config(db, name="early-close")
    order = trade(db, config, resting_day_buy(), clock=lambda: BLACK_FRIDAY)

    before = expire_day_orders(db, now=datetime(2026, 11, 27, 17, 55, tzinfo=UTC), config_id=config["id"])
    after = expire_day_orders(db, now=datetime(2026, 11, 27, 18, 5, tzinfo=UTC), config_id=config["id"])

    assert before["orders_expired"] == 0
    assert (after["session_close"], after["orders_expired"]) == (datetime(2026, 11, 27, 18, 0, tzinfo=UTC), 1)
    assert status(db, order) == ("expired", "day_order_expired")


def test_a_day_order_placed_on_thanksgiving_lives_through_the_holiday(db):
    config = make_config(db, name="holiday")
    order = trade(db, config, resting_day_buy(), clock=lambda: THANKSGIVING)

    holiday_evening = expire_day_orders(
        db, now=datetime(2026, 11, 26, 21, 30, tzinfo=UTC), config_id=config["id"]
    )

    assert holiday_evening["orders_expired"] == 0  # no session on Thanksgiving: Wednesday's close
    assert status(db, order) == ("accepted", None)
    expire_day_orders(db, now=datetime(2026, 11, 27, 18, 1, tzinfo=UTC), config_id=config["id"])
    assert status(db, order) == ("expired", "day_order_expired")
