"""A replayed source fed into a paper config: bars stored, applied in order, brackets worked."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pandas as pd
import pytest
from builders import NOW, make_config, run_signal

from viewzenix.domain.model import Action, Signal, StopLoss, TakeProfit
from viewzenix.jobs import build_job_app
from viewzenix.marketdata.replay import Replay
from viewzenix.services.market_feed import MarketFeed

pytestmark = pytest.mark.db


def frame() -> pd.DataFrame:
    index = pd.DatetimeIndex([NOW + timedelta(minutes=m) for m in range(3)])
    return pd.DataFrame(
        {
            "Open": [100.0, 99.0, 97.0],
            "High": [101.0, 99.5, 98.0],
            "Low": [99.0, 96.0, 94.0],
            "Close": [99.5, 97.0, 95.5],
        },
        index=index,
    )


def test_a_replayed_bar_fills_a_bracket_stop_through_the_queue(db, jobs, database_url):
    job_app = build_job_app(database_url)
    config = make_config(db, time_in_force="gtc")
    run_signal(
        db,
        config,
        Signal(
            ticker="AAPL",
            action=Action.BUY,
            quantity=Decimal(10),
            signal_price=Decimal(100),
            stop_loss=StopLoss(stop_price=Decimal(95)),
            take_profit=TakeProfit(limit_price=Decimal(110)),
        ),
        expect="executed",
    )
    replay = Replay.from_frame(frame(), "AAPL")
    feed = MarketFeed(db, job_app, config["id"], replay, ["AAPL"]).start()

    replay.run()
    replay._cursor = 1  # the stream repeats bars 2 and 3 (a reconnect): duplicates, not fills
    replay.run()
    feed.close()
    jobs()

    assert feed.outcomes == {"accepted": 3, "duplicate": 2}
    with db.transaction() as conn:
        orders = {
            r["purpose"]: (r["status"], r["filled_avg_price"])
            for r in conn.execute("select * from public.orders where config_id = %s", (config["id"],))
        }
        applied = conn.execute(
            "select count(*) as n from public.bars where config_id = %s and status = 'applied'",
            (config["id"],),
        ).fetchone()["n"]
    assert orders == {
        "entry": ("filled", Decimal(100)),
        "stop_loss": ("filled", Decimal(95)),
        "take_profit": ("canceled", None),
    }
    assert applied == 3


def test_the_cli_feeds_a_csv_into_a_config_and_the_worker_applies_it(app, db, jobs, tmp_path):
    from backtesting.test import GOOG

    path = tmp_path / "goog.csv"
    GOOG.head(5).to_csv(path)
    config = make_config(db)

    result = app.test_cli_runner().invoke(
        args=["market-feed", str(config["id"]), "goog", "--replay", str(path)]
    )
    jobs()

    assert result.exit_code == 0, result.output
    assert 'fed 5 bar(s): {"accepted": 5}' in result.output
    with db.transaction() as conn:
        rows = conn.execute(
            "select status, close from public.bars where config_id = %s order by bar_at", (config["id"],)
        ).fetchall()
    assert [(r["status"], r["close"]) for r in rows] == [
        ("applied", Decimal(repr(c))) for c in GOOG.Close.head(5)
    ]
