"""The SQL equity curve and closed trades agree with their Python specification, fill for fill."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tests.builders import add_config
from viewzenix.domain.performance import CapitalChange, Fill, closed_trades, equity_curve, performance
from viewzenix.repositories import performance as performance_repo

pytestmark = pytest.mark.db

T0 = datetime(2024, 3, 1, 14, 30, tzinfo=UTC)
HOUR = timedelta(hours=1)


def random_fills(config_id, n: int, seed: int) -> list[Fill]:
    """Fills of two symbols that open, add, reduce, close exactly and reverse through zero."""
    rng = random.Random(seed)
    held = {"AAPL": 0, "MSFT": 0}
    fills = []
    for i in range(n):
        symbol = rng.choice(list(held))
        pos = held[symbol]
        move = rng.choice(["close", "reverse", "add", "reduce"]) if pos else "add"
        direction = (1 if pos > 0 else -1) if pos else rng.choice([1, -1])
        k = rng.choice([1, 2, 5, 10])
        if move == "add":
            signed = direction * k
        elif move == "close":
            signed = -pos
        elif move == "reverse":
            signed = -pos - direction * k
        else:
            signed = -direction * min(k, abs(pos) - 1) if abs(pos) > 1 else -pos
        held[symbol] += signed
        fills.append(
            Fill(
                config_id=config_id,
                symbol=symbol,
                side="buy" if signed > 0 else "sell",
                last_qty=Decimal(abs(signed)),
                last_px=Decimal(rng.randint(9000, 11000)) / 100,
                commission=Decimal(rng.randint(0, 300)) / 100,
                filled_at=T0 + timedelta(seconds=i),
            )
        )
    return fills


def store(conn, config, fills: list[Fill]) -> None:
    for i, f in enumerate(fills):
        order_id = conn.execute(
            "insert into public.orders (user_id, config_id, client_order_id, broker, symbol, side, "
            "order_type, time_in_force, purpose, qty, status, filled_qty, filled_avg_price) values "
            "(%s, %s, %s, 'simulated', %s, %s, 'market', 'day', 'entry', %s, 'filled', %s, %s) returning id",
            (
                config["user_id"],
                config["id"],
                f"perf-{i}",
                f.symbol,
                f.side,
                f.last_qty,
                f.last_qty,
                f.last_px,
            ),
        ).fetchone()["id"]
        conn.execute(
            "insert into public.fills (order_id, user_id, config_id, trade_id, symbol, side, last_qty, "
            "last_px, commission, filled_at) values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                order_id,
                config["user_id"],
                config["id"],
                f"t{i:05d}",
                f.symbol,
                f.side,
                f.last_qty,
                f.last_px,
                f.commission,
                f.filled_at,
            ),
        )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sql_matches_the_python_replay(db, seed) -> None:
    with db.transaction() as conn:
        config = add_config(conn, starting_cash="50000")
        fills = random_fills(config["id"], 300, seed)
        store(conn, config, fills)
        curve = performance_repo.equity_curve(conn, config["id"], max_points=10_000)
        trades, total = performance_repo.closed_trades(conn, config["id"], None)
        newest, newest_total = performance_repo.closed_trades(conn, config["id"], None, limit=5)
        aapl, _ = performance_repo.closed_trades(conn, config["id"], "AAPL")

    start = CapitalChange(config["id"], fills[0].filled_at, Decimal(50000))
    expected_curve = equity_curve(fills, capital=[start])
    assert [(r["at"], r["equity"], r["capital"]) for r in curve] == [
        (p.at, p.equity, p.capital) for p in expected_curve
    ]

    expected = list(reversed(closed_trades(fills)))
    assert (newest, newest_total) == (trades[:5], total)
    assert aapl == [t for t in trades if t["symbol"] == "AAPL"]
    assert total == len(expected) > 20
    # One fill per second: close times are unique, so both orders agree.
    for row, trade in zip(trades, expected, strict=True):
        assert (row["symbol"], row["side"], row["closed_at"], row["opened_at"]) == (
            trade.symbol,
            trade.side,
            trade.closed_at,
            trade.opened_at,
        )
        assert row["qty"] == trade.qty
        close = Decimal("1e-12")  # Python divides (running average); SQL sums exactly
        assert abs(row["gross_pnl"] - trade.gross_pnl) < close
        assert abs(row["entry_price"] - trade.entry_price) < close
        assert abs(row["exit_price"] - trade.exit_price) < close
        assert abs(row["commission"] - trade.commission) < close


def test_the_curve_keeps_at_most_max_points_and_the_last(db) -> None:
    with db.transaction() as conn:
        config = add_config(conn)
        fills = random_fills(config["id"], 95, 7)
        store(conn, config, fills)
        curve = performance_repo.equity_curve(conn, config["id"], max_points=10)
    full = equity_curve(fills, Decimal(100000))
    assert len(curve) <= 12  # the start, every 10th event, the last
    assert curve[-1]["equity"] == full[-1].equity and curve[-1]["at"] == full[-1].at


def add_capital_change(conn, config, at, before, after) -> None:
    conn.execute(
        "insert into public.capital_changes (config_id, user_id, at, starting_cash_before, "
        "starting_cash_after) values (%s, %s, %s, %s, %s)",
        (config["id"], config["user_id"], at, before, after),
    )


def close_enough(a, b) -> bool:
    if a is None or b is None:
        return a is b
    return abs(Decimal(a) - Decimal(b)) < Decimal("1e-12")


@pytest.mark.parametrize("seed", [4, 5])
def test_performance_in_sql_matches_the_python_specification(db, seed) -> None:
    """Figures of two webhooks, one at a time and summed, with a deposit and a withdrawal."""
    with db.transaction() as conn:
        one = add_config(conn, starting_cash="50000")
        fills_one = random_fills(one["id"], 200, seed)
        store(conn, one, fills_one)
        add_capital_change(conn, one, fills_one[60].filled_at, Decimal(50000), Decimal(60000))
        add_capital_change(conn, one, fills_one[150].filled_at, Decimal(60000), Decimal(20000))
        conn.execute("update public.webhook_configs set starting_cash = 20000 where id = %s", (one["id"],))
        conn.execute("delete from public.capital_changes where at > %s", (fills_one[-1].filled_at,))
        figures = performance_repo.performance(conn, one["id"])
        curve = performance_repo.equity_curve(conn, one["id"], max_points=10_000)

    capital = [
        CapitalChange(one["id"], fills_one[0].filled_at, Decimal(50000)),
        CapitalChange(one["id"], fills_one[60].filled_at, Decimal(10000)),
        CapitalChange(one["id"], fills_one[150].filled_at, Decimal(-40000)),
    ]
    expected_curve = equity_curve(fills_one, capital=capital)
    assert [(r["at"], r["equity"], r["kind"]) for r in curve] == [
        (p.at, p.equity, k)
        for p, k in zip(expected_curve, ["start"] + [p.kind for p in expected_curve[1:]], strict=True)
    ]
    assert [r["kind"] for r in curve].count("capital") == 2
    expected = performance(closed_trades(fills_one), expected_curve)
    assert expected.trade_count > 20 and expected.wins and expected.losses
    assert expected.max_drawdown > 0
    for name in expected.__dataclass_fields__:
        assert close_enough(figures[name], getattr(expected, name)), (name, figures[name])


def test_all_webhooks_sum_their_figures_and_curves(db) -> None:
    """The "All" curve is the explicit sum: a second webhook adds its capital as a step at its start."""
    with db.transaction() as conn:
        first = add_config(conn, starting_cash="50000")
        fills_first = random_fills(first["id"], 80, 8)
        store(conn, first, fills_first)
        from viewzenix.repositories import webhook_configs as configs_repo

        second = configs_repo.insert(
            conn, user_id=first["user_id"], token_hash=b"x" * 32, token_hint="abcd", values={"name": "b"}
        )
        late = [
            Fill(second["id"], f.symbol, f.side, f.last_qty, f.last_px, f.commission, f.filled_at + HOUR)
            for f in random_fills(second["id"], 40, 9)
        ]
        store(conn, {**second, "user_id": first["user_id"]}, late)
        claims = f'{{"sub": "{first["user_id"]}"}}'
        conn.execute("select set_config('request.jwt.claims', %s, true)", (claims,))
        conn.execute("set local role authenticated")
        both = performance_repo.performance(conn, None)
        curve = performance_repo.equity_curve(conn, None, max_points=10_000)

    fills = fills_first + late
    capital = [
        CapitalChange(first["id"], fills_first[0].filled_at, Decimal(50000)),
        CapitalChange(second["id"], late[0].filled_at, Decimal(100000)),
    ]
    expected_curve = equity_curve(fills, capital=capital)
    assert [(r["at"], r["equity"]) for r in curve] == [(p.at, p.equity) for p in expected_curve]
    assert [r["kind"] for r in curve].count("start") == 2
    expected = performance(closed_trades(fills), expected_curve)
    for name in expected.__dataclass_fields__:
        assert close_enough(both[name], getattr(expected, name)), name
