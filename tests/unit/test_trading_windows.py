"""Trading windows: entries only inside them, on the market's own calendar and clock; exits pass."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from viewzenix.domain.engine import plan_signal
from viewzenix.domain.model import AccountState, Action, PositionState, RiskRules, Signal, TradingSettings
from viewzenix.domain.windows import (
    WindowsInvalid,
    due_controls,
    entry_denial,
    parse_windows,
    session_date,
    stored_windows,
    windows_to_dict,
)

NY = ZoneInfo("America/New_York")
NYSE = {"calendar": "XNYS", "entry_windows": [{"start": "09:30", "end": "15:45"}], "flatten_at": "15:55"}
CRYPTO = {"calendar": "24/7", "entry_windows": [{"start": "08:00", "end": "20:00"}]}


def ny(*args: int) -> datetime:
    return datetime(*args, tzinfo=NY)


def plan_at(
    now: datetime,
    action: str,
    position: str = "0",
    windows: dict | None = NYSE,
    ticker: str = "AAPL",
    qty: int = 1,
):
    settings = TradingSettings(risk=RiskRules(trading_windows=parse_windows(windows)))
    return plan_signal(
        signal=Signal(ticker=ticker, action=Action(action), quantity=Decimal(qty), signal_price=Decimal(100)),
        signal_id=uuid.uuid4(),
        position=PositionState(ticker, Decimal(position), Decimal(90)),
        account=AccountState(Decimal(100000), Decimal(100000)),
        open_orders=(),
        settings=settings,
        now=now.astimezone(UTC),
    )


# --- the entry rule, through the engine ---------------------------------------------------------


def test_an_entry_at_0929_new_york_is_denied_and_at_0931_it_goes():
    early = plan_at(ny(2026, 12, 7, 9, 29), "buy")  # a Monday, an NYSE session
    on_time = plan_at(ny(2026, 12, 7, 9, 31), "buy")

    assert [d.code for d in early.denials] == ["outside_trading_window"]
    assert early.orders == ()
    assert early.denials[0].order is not None and early.denials[0].order.qty == 1  # recorded as DENIED
    assert (
        "2026-12-07 09:29 America/New_York is outside the entry windows 09:30–15:45"
        in early.denials[0].message
    )
    assert [(o.purpose, o.side, o.qty) for o in on_time.orders] == [("entry", "buy", 1)]
    assert on_time.denials == ()


def test_the_window_start_is_inclusive_and_its_end_exclusive():
    assert plan_at(ny(2026, 12, 7, 9, 30), "buy").orders
    assert [d.code for d in plan_at(ny(2026, 12, 7, 15, 45), "buy").denials] == ["outside_trading_window"]
    assert plan_at(ny(2026, 12, 7, 15, 44, 59), "buy").orders


def test_a_holiday_is_not_a_trading_day():
    result = plan_at(ny(2026, 12, 25, 10, 0), "buy")  # Christmas, a Friday

    assert [d.code for d in result.denials] == ["outside_trading_window"]
    assert "2026-12-25 10:00 America/New_York is not a trading day of XNYS" in result.denials[0].message


def test_a_weekend_is_not_a_trading_day():
    assert [d.code for d in plan_at(ny(2026, 12, 5, 10, 0), "buy").denials] == ["outside_trading_window"]


def test_the_window_follows_new_york_daylight_saving():
    # 09:31 New York is 13:31 UTC in summer (EDT) and 14:31 UTC in winter (EST).
    summer_open = datetime(2026, 7, 1, 13, 31, tzinfo=UTC)
    winter_same_utc = datetime(2026, 12, 7, 13, 31, tzinfo=UTC)  # 08:31 New York: before the window
    winter_open = datetime(2026, 12, 7, 14, 31, tzinfo=UTC)

    assert plan_at(summer_open, "buy").orders
    assert [d.code for d in plan_at(winter_same_utc, "buy").denials] == ["outside_trading_window"]
    assert plan_at(winter_open, "buy").orders


def test_an_early_close_ends_the_window_at_the_close():
    # The day after Thanksgiving 2026 (27 Nov): NYSE closes at 13:00.
    assert plan_at(ny(2026, 11, 27, 12, 59), "buy").orders
    late = plan_at(ny(2026, 11, 27, 13, 30), "buy")
    assert [d.code for d in late.denials] == ["outside_trading_window"]
    assert "(the session closes at 13:00)" in late.denials[0].message


def test_exits_always_pass_outside_the_window():
    for action, position in (("exit", "10"), ("sell", "10")):
        result = plan_at(ny(2026, 12, 25, 3, 0), action, position=position)  # a holiday, at night
        assert result.denials == ()
        assert [(o.purpose, o.side, o.qty) for o in result.orders] == [
            ("exit", "sell", 1)  # the signal's quantity 1 of 10 held
        ]


def test_a_reversal_outside_the_window_exits_but_does_not_enter():
    result = plan_at(ny(2026, 12, 7, 17, 0), "sell", position="1", qty=3)

    assert [(o.purpose, o.side, o.qty) for o in result.orders] == [("exit", "sell", 1)]
    assert [d.code for d in result.denials] == ["outside_trading_window"]


def test_a_crypto_window_in_utc_holds_every_day_including_holidays_and_weekends():
    christmas_noon = datetime(2026, 12, 25, 12, 0, tzinfo=UTC)
    saturday_night = datetime(2026, 12, 5, 21, 0, tzinfo=UTC)

    assert plan_at(christmas_noon, "buy", windows=CRYPTO, ticker="BTC/USD").orders
    denied = plan_at(saturday_night, "buy", windows=CRYPTO, ticker="BTC/USD")
    assert [d.code for d in denied.denials] == ["outside_trading_window"]
    assert "2026-12-05 21:00 UTC is outside the entry windows 08:00–20:00" in denied.denials[0].message


def test_no_windows_or_no_entry_windows_limit_nothing():
    assert plan_at(ny(2026, 12, 25, 3, 0), "buy", windows=None).orders
    assert (
        entry_denial(parse_windows({"calendar": "XNYS", "flatten_at": "15:55"}), ny(2026, 12, 25, 3, 0))
        is None
    )


def test_two_windows_leave_the_lunch_break_closed():
    windows = {
        "calendar": "XNYS",
        "entry_windows": [{"start": "13:00", "end": "15:00"}, {"start": "09:30", "end": "11:30"}],
    }
    assert plan_at(ny(2026, 12, 7, 10, 0), "buy", windows=windows).orders
    assert plan_at(ny(2026, 12, 7, 12, 0), "buy", windows=windows).denials
    assert plan_at(ny(2026, 12, 7, 14, 0), "buy", windows=windows).orders


# --- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "code", "field"),
    [
        ({"calendar": "NOPE"}, "unknown_calendar", "calendar"),
        ({"calendar": "XNYS", "timezone": "Mars/Olympus"}, "unknown_time_zone", "timezone"),
        (
            {"calendar": "XNYS", "entry_windows": [{"start": "15:45", "end": "09:30"}]},
            "window_ends_before_start",
            "entry_windows.0.end",
        ),
        (
            {"calendar": "XNYS", "entry_windows": [{"start": "10:00", "end": "10:00"}]},
            "window_ends_before_start",
            "entry_windows.0.end",
        ),
        (
            {
                "calendar": "XNYS",
                "entry_windows": [{"start": "09:30", "end": "12:00"}, {"start": "11:00", "end": "15:00"}],
            },
            "windows_overlap",
            "entry_windows.1",
        ),
        (
            {"calendar": "XNYS", "entry_windows": [{"start": "9:30", "end": "12:00"}]},
            "invalid_time",
            "entry_windows.0.start",
        ),
        ({"calendar": "XNYS", "flatten_at": "25:00"}, "invalid_time", "flatten_at"),
    ],
)
def test_unusable_windows_are_refused_with_a_code_and_the_field(data, code, field):
    with pytest.raises(WindowsInvalid) as refused:
        parse_windows(data)
    assert (refused.value.code, refused.value.field) == (code, field)


@pytest.mark.parametrize(
    ("data", "code", "field"),
    [
        # Stored JSON written past the API (Supabase REST): each once raised AttributeError,
        # IsADirectoryError... instead of WindowsInvalid.
        (
            {"calendar": "24/7", "entry_windows": [1], "flatten_at": "10:00"},
            "invalid_windows",
            "entry_windows.0",
        ),
        ({"calendar": "24/7", "entry_windows": "09:30-15:45"}, "invalid_windows", "entry_windows"),
        ({"calendar": "24/7", "entry_windows": {"start": "09:30"}}, "invalid_windows", "entry_windows"),
        ({"calendar": "XNYS", "timezone": "America"}, "unknown_time_zone", "timezone"),  # a directory
        ({"calendar": "XNYS", "timezone": "x" * 300}, "unknown_time_zone", "timezone"),  # name too long
        ({"calendar": "XNYS", "timezone": "/etc/passwd"}, "unknown_time_zone", "timezone"),
        ({"calendar": "XNYS", "timezone": 5}, "unknown_time_zone", "timezone"),
        ({"calendar": ["XNYS"]}, "unknown_calendar", "calendar"),
        ({"calendar": "24/7", "cancel_at_window_end": "false"}, "invalid_windows", "cancel_at_window_end"),
        ({"calendar": "24/7", "flatten_at": 1000}, "invalid_time", "flatten_at"),
        (["XNYS"], "invalid_windows", "_schema"),
    ],
)
def test_malformed_json_is_refused_as_windows_invalid_never_another_error(data, code, field):
    with pytest.raises(WindowsInvalid) as refused:
        parse_windows(data)
    assert (refused.value.code, refused.value.field) == (code, field)


def test_malformed_stored_windows_refuse_entries_and_let_exits_and_schedule_nothing():
    windows = stored_windows({"calendar": "24/7", "entry_windows": [1], "flatten_at": "10:00"})
    settings = TradingSettings(risk=RiskRules(trading_windows=windows))

    def plan(action: str, position: str):
        return plan_signal(
            signal=Signal(
                ticker="AAPL", action=Action(action), quantity=Decimal(1), signal_price=Decimal(100)
            ),
            signal_id=uuid.uuid4(),
            position=PositionState("AAPL", Decimal(position), Decimal(90)),
            account=AccountState(Decimal(100000), Decimal(100000)),
            open_orders=(),
            settings=settings,
            now=ny(2026, 12, 7, 11, 0).astimezone(UTC),
        )

    entry, exit_ = plan("buy", "0"), plan("exit", "5")

    assert [d.code for d in entry.denials] == ["outside_trading_window"]
    assert "stored trading windows are invalid (entry_windows.0:" in entry.denials[0].message
    assert entry.orders == ()
    assert [(o.purpose, o.side, o.qty) for o in exit_.orders] == [("exit", "sell", 1)]
    assert exit_.denials == ()
    assert due_controls(windows, ny(2026, 12, 7, 11, 0)) == []
    assert session_date(windows, ny(2026, 12, 7, 11, 0)) is None
    assert stored_windows(NYSE) == parse_windows(NYSE)
    assert stored_windows(None) is None


# --- the session's close, every day -------------------------------------------------------------


def test_the_calendar_is_the_regular_session_an_after_hours_window_never_opens():
    after_hours = {"calendar": "XNYS", "entry_windows": [{"start": "16:00", "end": "20:00"}]}
    extended = {**after_hours, "calendar": "24/7", "timezone": "America/New_York"}

    denied = plan_at(ny(2026, 12, 7, 17, 0), "buy", windows=after_hours)  # a regular Monday

    assert [d.code for d in denied.denials] == ["outside_trading_window"]
    assert "(the session closes at 16:00)" in denied.denials[0].message
    assert plan_at(ny(2026, 12, 7, 17, 0), "buy", windows=extended).orders
    # The start is not moved: a pre-market window on the calendar opens.
    premarket = {"calendar": "XNYS", "entry_windows": [{"start": "04:00", "end": "09:30"}]}
    assert plan_at(ny(2026, 12, 7, 8, 0), "buy", windows=premarket).orders


def test_a_flatten_after_the_close_comes_five_minutes_before_the_close_every_day():
    windows = parse_windows({"calendar": "XNYS", "flatten_at": "17:00"})

    assert due_controls(windows, ny(2026, 12, 7, 15, 54)) == []
    assert due_controls(windows, ny(2026, 12, 7, 15, 55)) == ["flatten"]


def test_a_calendar_whose_data_begins_after_2020_is_usable():
    # exchange_calendars refuses XSAU from 2020-01-01 (its data begins in 2021): a ValueError once.
    windows = parse_windows({"calendar": "XSAU", "entry_windows": [{"start": "10:00", "end": "15:00"}]})

    assert windows.timezone == "Asia/Riyadh"
    riyadh = ZoneInfo("Asia/Riyadh")
    assert entry_denial(windows, datetime(2026, 12, 6, 11, 0, tzinfo=riyadh)) is None  # a Sunday session
    assert entry_denial(windows, datetime(2026, 12, 4, 11, 0, tzinfo=riyadh)) is not None  # a Friday


def test_touching_windows_do_not_overlap_and_are_stored_in_order_with_the_calendar_zone():
    parsed = parse_windows(
        {
            "calendar": "XNYS",
            "entry_windows": [{"start": "12:00", "end": "15:00"}, {"start": "09:30", "end": "12:00"}],
        }
    )
    assert windows_to_dict(parsed) == {
        "calendar": "XNYS",
        "timezone": "America/New_York",
        "entry_windows": [{"start": "09:30", "end": "12:00"}, {"start": "12:00", "end": "15:00"}],
        "flatten_at": None,
        "cancel_at_window_end": False,
    }
    assert parse_windows({"calendar": "24/7"}).timezone == "UTC"


# --- scheduled controls -------------------------------------------------------------------------


def test_the_flatten_is_due_from_its_time_on_a_session_day_only():
    windows = parse_windows({**NYSE, "cancel_at_window_end": True})

    assert due_controls(windows, ny(2026, 12, 7, 15, 44)) == []
    assert due_controls(windows, ny(2026, 12, 7, 15, 50)) == ["cancel@15:45"]
    assert due_controls(windows, ny(2026, 12, 7, 15, 55)) == ["cancel@15:45", "flatten"]
    assert due_controls(windows, ny(2026, 12, 25, 16, 0)) == []  # a holiday
    assert session_date(windows, ny(2026, 12, 7, 23, 0)).isoformat() == "2026-12-07"
    assert session_date(windows, ny(2026, 12, 25, 12, 0)) is None


def test_on_an_early_close_the_flatten_comes_five_minutes_before_the_close():
    windows = parse_windows(NYSE)

    assert due_controls(windows, ny(2026, 11, 27, 12, 54)) == []
    assert due_controls(windows, ny(2026, 11, 27, 12, 55)) == ["flatten"]


def test_a_crypto_flatten_is_due_every_day():
    windows = parse_windows({**CRYPTO, "flatten_at": "21:00"})

    assert due_controls(windows, datetime(2026, 12, 25, 21, 0, tzinfo=UTC)) == ["flatten"]
    assert due_controls(windows, datetime(2026, 12, 26, 20, 59, tzinfo=UTC)) == []
