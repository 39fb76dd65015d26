"""Specification of equity history and closed trades replayed from fills."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from viewzenix.domain.performance import Fill, closed_trades, equity_curve

D = Decimal
CONFIG = uuid.UUID("00000000-0000-4000-8000-000000000001")
OTHER = uuid.UUID("00000000-0000-4000-8000-000000000002")
T0 = datetime(2024, 1, 2, 15, 0, tzinfo=UTC)


def fill(
    n: int, side: str, qty: str, px: str, commission: str = "0", *, symbol="AAPL", config=CONFIG
) -> Fill:
    return Fill(config, symbol, side, D(qty), D(px), D(commission), T0 + timedelta(minutes=n))


def test_equity_marks_open_positions_at_their_last_fill_price() -> None:
    points = equity_curve(
        [fill(0, "buy", "10", "100", "1"), fill(1, "buy", "10", "110"), fill(2, "sell", "20", "105", "2")],
        D("1000"),
    )
    # after 1: cash 1000 - 1001 = -1, 10 @ 100 → 999; after 2: cash -1101 + 20*110 = 1099;
    # after 3: cash -1101 + 2100 - 2 = 997, flat.
    assert [p.equity for p in points] == [D("999"), D("1099"), D("997")]
    assert [p.at for p in points] == [T0, T0 + timedelta(minutes=1), T0 + timedelta(minutes=2)]


def test_equity_counts_shorts_with_their_sign_and_sums_configs() -> None:
    points = equity_curve(
        [fill(0, "sell", "5", "100"), fill(1, "buy", "1", "50", config=OTHER), fill(2, "buy", "5", "90")],
        D("2000"),
    )
    assert [p.equity for p in points] == [D("2000"), D("2000"), D("2050")]


def test_a_round_trip_is_one_closed_trade_with_net_pnl() -> None:
    [trade] = closed_trades([fill(0, "buy", "10", "100", "1"), fill(1, "sell", "10", "112", "1")])
    assert (trade.side, trade.qty, trade.entry_price, trade.exit_price) == ("long", D(10), D(100), D(112))
    assert (trade.gross_pnl, trade.commission, trade.net_pnl) == (D(120), D(2), D(118))
    assert (trade.opened_at, trade.closed_at) == (T0, T0 + timedelta(minutes=1))


def test_partial_exits_close_the_trade_only_when_flat() -> None:
    trades = closed_trades(
        [fill(0, "buy", "10", "100"), fill(1, "sell", "4", "110"), fill(2, "sell", "6", "90")]
    )
    [trade] = trades
    assert trade.exit_price == D("98")  # (4*110 + 6*90) / 10
    assert trade.gross_pnl == D("-20")  # 40 - 60


def test_a_reversal_closes_one_trade_and_opens_the_next_sharing_its_commission() -> None:
    trades = closed_trades(
        [fill(0, "buy", "10", "100"), fill(1, "sell", "20", "120", "4"), fill(2, "buy", "10", "100")]
    )
    assert [(t.side, t.qty, t.gross_pnl, t.commission) for t in trades] == [
        ("long", D(10), D(200), D(2)),
        ("short", D(10), D(200), D(2)),
    ]


def test_an_open_position_is_not_a_closed_trade() -> None:
    assert closed_trades([fill(0, "buy", "10", "100"), fill(1, "sell", "5", "100")]) == []


def test_downsample_keeps_the_last_point_and_the_bound() -> None:
    from viewzenix.domain.performance import downsample

    points = equity_curve([fill(i, "buy", "1", str(100 + i)) for i in range(1000)], D("1000000"))
    kept = downsample(points, 100)
    assert len(kept) == 100
    assert kept[0] == points[0] and kept[-1] == points[-1]
    assert downsample(points[:50], 100) == points[:50]
