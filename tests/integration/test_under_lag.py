"""Specification of our books under lag and races (issue 15), against a FakeBroker and real Postgres.

The FakeBroker's reads can lag its writes (``reads_lag``, ``lagging_reads``), as Alpaca's do; a
second writer (the trade_updates stream) is played by a ledger transaction on its own
connection, committed at the moment the scenario needs.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from builders import held, make_config, order_events, order_fills, orders_of, store_signal
from fake_broker import NOW, FakeBroker

from viewzenix.brokers.base import BrokerFill, BrokerOrder, BrokerUnavailable, OrderNotVisibleYet
from viewzenix.db import Database
from viewzenix.domain.engine import OrderPurpose, OrderRequest
from viewzenix.domain.model import Action, OrderSide, OrderStatus, OrderType, Signal, TimeInForce
from viewzenix.jobs.retry import SIGNAL_RETRY
from viewzenix.services import ledger
from viewzenix.services.accounts import NOT_FOUND_GRACE, Accounts
from viewzenix.services.execution import execute_signal
from viewzenix.services.ledger import Book
from viewzenix.services.order_sync import sync_open_orders
from viewzenix.services.reconciliation import reconcile

pytestmark = pytest.mark.db
D = Decimal
JOB = 4242  # no such procrastinate job: the signal's job has ended


def buy(qty: str = "10", **fields: Any) -> Signal:
    return Signal(ticker="AAPL", action=Action.BUY, quantity=D(qty), signal_price=D("100"), **fields)


def accounts_of(db: Database, broker: FakeBroker) -> Accounts:
    return Accounts(db, lambda config: broker, clock=lambda: NOW, sleep=lambda seconds: None)


def execute(db: Database, signal_id, broker: FakeBroker) -> str:
    return execute_signal(db, signal_id, job_id=JOB, clock=lambda: NOW, accounts=accounts_of(db, broker))


def sync(db: Database, config, broker: FakeBroker, now=NOW) -> dict[str, int]:
    return sync_open_orders(
        db, config_id=config["id"], accounts=accounts_of(db, broker), now=now, settle=timedelta(0)
    )


def refuse_next_submit(broker: FakeBroker) -> None:
    """The next submit never reaches the broker (refused at the door: BrokerUnavailable)."""
    real_submit = broker.submit_order

    def down_on_submit(request):
        broker.submit_order = real_submit  # type: ignore[method-assign]
        raise BrokerUnavailable("connection refused (the fake is down)")

    broker.submit_order = down_on_submit  # type: ignore[method-assign]


def lagging() -> FakeBroker:
    broker = FakeBroker()
    broker.reads_lag = True
    return broker


def stream_write(db: Database, config, report: BrokerOrder) -> Callable[[], None]:
    """Begin the stream's transaction recording ``report``; return what commits it."""
    transaction = db.transaction()
    conn = transaction.__enter__()
    ledger.record_report(conn, Book.for_config(config), report, NOW)
    return lambda: transaction.__exit__(None, None, None)


def filled(order: dict[str, Any], qty: str, price: str = "100", trade_id: str = "stream-1") -> BrokerOrder:
    fill = BrokerFill(trade_id=trade_id, qty=D(qty), price=D(price), commission=D(0), filled_at=NOW)
    return BrokerOrder(
        client_order_id=order["client_order_id"],
        broker_order_id="fake-1",
        status=OrderStatus.FILLED if D(qty) == order["qty"] else OrderStatus.PARTIALLY_FILLED,
        symbol=order["symbol"],
        side=order["side"],
        qty=order["qty"],
        filled_qty=D(qty),
        filled_avg_price=D(price),
        submitted_at=NOW,
        filled_at=NOW,
        fills=(fill,),
    )


# --- item 1: every order the broker may have is resolved without a person --------------------


def timed_out_after_accept(db: Database, **config_fields: Any) -> tuple[dict[str, Any], FakeBroker, Any]:
    """A lagging broker placed the signal's order, then the submit timed out (the job failed)."""
    config = make_config(db, name="fake", **config_fields)
    broker = lagging()
    broker.timeout_after_accept = True
    signal_id = store_signal(db, config, buy(), job_id=JOB)
    with pytest.raises(BrokerUnavailable):
        execute(db, signal_id, broker)
    return config, broker, signal_id


class TestUnresolvedOrders:
    def test_a_duplicate_the_broker_does_not_show_yet_is_looked_up_again_and_recorded(self, db):
        config, broker, signal_id = timed_out_after_accept(db)

        broker.lagging_reads = 2  # the retry's look-up and the look-up after "duplicate" both lag
        assert execute(db, signal_id, broker) == "executed"

        [order] = orders_of(db, signal_id)
        assert (order["status"], order["filled_qty"]) == ("filled", D(10))
        assert broker.submits() == 2 and len(broker.orders) == 1  # the resend was refused
        assert held(db, config) == D(10)

    def test_a_duplicate_still_not_shown_is_a_transient_error_the_job_retries(self, db):
        _, broker, signal_id = timed_out_after_accept(db)

        broker.lagging_reads = 100
        with pytest.raises(OrderNotVisibleYet) as raised:
            execute(db, signal_id, broker)

        assert SIGNAL_RETRY.will_retry(raised.value, 1)  # attempt 2 of 8: retried, not failed
        [order] = orders_of(db, signal_id)
        assert order["status"] == "pending_new"

    def test_the_order_sync_records_a_pending_order_whose_job_ended(self, db):
        config, broker, signal_id = timed_out_after_accept(db, broker="alpaca")  # every retry lagged
        [order] = orders_of(db, signal_id)
        assert order["status"] == "pending_new"

        counts = sync(db, config, broker)

        assert counts["resolved"] == 1
        [order] = orders_of(db, signal_id)
        assert (order["status"], order["filled_qty"]) == ("filled", D(10))
        assert held(db, config) == D(10)

    def test_an_order_the_broker_lacks_is_closed_only_after_repeated_not_found_past_the_grace(self, db):
        config = make_config(db, name="fake", broker="alpaca")
        broker = lagging()
        refuse_next_submit(broker)  # the submit never reached the broker
        signal_id = store_signal(db, config, buy(), job_id=JOB)
        with pytest.raises(BrokerUnavailable):
            execute(db, signal_id, broker)

        sync(db, config, broker)
        sync(db, config, broker, now=NOW + timedelta(minutes=1))
        sync(db, config, broker, now=NOW + timedelta(minutes=2))  # three answers, inside the grace
        [order] = orders_of(db, signal_id)
        assert (order["status"], order["not_found_count"]) == ("pending_new", 3)

        counts = sync(db, config, broker, now=NOW + NOT_FOUND_GRACE)

        assert counts["closed"] == 1
        [order] = orders_of(db, signal_id)
        assert (order["status"], order["status_code"]) == ("canceled", "never_submitted")

    def test_the_next_signal_does_not_close_a_lagging_brokers_order_at_its_first_not_found(self, db):
        config = make_config(db, name="fake")
        broker = lagging()
        refuse_next_submit(broker)
        first = store_signal(db, config, buy(), job_id=JOB)
        with pytest.raises(BrokerUnavailable):
            execute(db, first, broker)

        execute(db, store_signal(db, config, buy("5"), job_id=JOB), broker)  # "not found": once

        [earlier] = orders_of(db, first)
        assert (earlier["status"], earlier["not_found_count"]) == ("pending_new", 1)


# --- item 2: a repair never moves an order or a position backwards ---------------------------


def test_a_repair_never_applies_a_stale_answer_over_a_stream_write_in_flight(db):
    config = make_config(db, name="fake")
    broker = FakeBroker()
    accounts = accounts_of(db, broker)
    signal_id = store_signal(db, config, buy(order_type=OrderType.LIMIT, limit_price=D(90)), job_id=JOB)
    execute_signal(db, signal_id, job_id=JOB, clock=lambda: NOW, accounts=accounts)
    [order] = orders_of(db, signal_id)
    assert order["status"] == "accepted"
    coid = order["client_order_id"]
    broker.orders[coid] = filled(order, "5", "90", "fake-trade-5")  # the broker's REST answer: 5
    # the stream is recording the whole fill (10) in a transaction begun before the broker is read
    commit = stream_write(db, config, filled(order, "10", "90", f"{coid}-q10"))

    def commit_once_read(method: str) -> None:
        if method == "get_order_by_client_order_id" and commit is not None:
            commit_it()

    committed = []

    def commit_it() -> None:
        if not committed:
            committed.append(True)
            commit()

    broker.probe = commit_once_read
    [run] = reconcile(db, config_id=config["id"], repair=True, clock=lambda: NOW, accounts=accounts)

    assert committed
    [order] = orders_of(db, signal_id)
    assert (order["status"], order["filled_qty"]) == ("filled", D(10))
    assert sum(f["last_qty"] for f in order_fills(db, order["id"])) == D(10)
    assert held(db, config) == D(10)
    assert run["counts"]["repair_deferred"] >= 1


# --- item 6: closing an unsent order locks and re-reads it -----------------------------------


def test_closing_an_earlier_unsent_order_leaves_a_fill_recorded_meanwhile(db):
    config = make_config(db, name="fake")
    broker = FakeBroker()
    refuse_next_submit(broker)
    first = store_signal(db, config, buy(), job_id=JOB)
    with pytest.raises(BrokerUnavailable):
        execute(db, first, broker)
    [earlier] = orders_of(db, first)

    def fill_arrives(method: str) -> None:  # the stream records a fill of it right after the look-up
        if method == "get_order_by_client_order_id" and broker.calls[-1][1] == earlier["client_order_id"]:
            broker.probe = None
            stream_write(db, config, filled(earlier, "10", "100", "late-fill"))()

    broker.probe = fill_arrives
    execute(db, store_signal(db, config, buy("5"), job_id=JOB), broker)

    [earlier] = orders_of(db, first)
    assert (earlier["status"], earlier["filled_qty"]) == ("filled", D(10))
    assert "OrderCanceled" not in order_events(db, earlier["id"])


# --- item 7: the ledger refuses impossible reports into a recorded anomaly -------------------


def request(coid: str, side: OrderSide = OrderSide.BUY, qty: str = "10", **fields: Any) -> OrderRequest:
    return OrderRequest(
        client_order_id=coid,
        symbol="AAPL",
        side=side,
        qty=D(qty),
        order_type=fields.pop("order_type", OrderType.MARKET),
        time_in_force=TimeInForce.GTC,
        purpose=fields.pop("purpose", OrderPurpose.ENTRY),
        **fields,
    )


def take_profit_leg(coid: str, parent: str) -> OrderRequest:
    return request(
        coid,
        OrderSide.SELL,
        order_type=OrderType.LIMIT,
        limit_price=D(110),
        purpose=OrderPurpose.TAKE_PROFIT,
        parent_client_order_id=parent,
    )


def report_of(req: OrderRequest, status: OrderStatus, qty: str, price: str = "100") -> BrokerOrder:
    fills = ()
    if D(qty) > 0:
        fills = (BrokerFill(f"{req.client_order_id}-t{qty}", D(qty), D(price), D(0), NOW),)
    return BrokerOrder(
        client_order_id=req.client_order_id,
        broker_order_id=f"b-{req.client_order_id}",
        status=status,
        symbol=req.symbol,
        side=str(req.side),
        qty=req.qty,
        filled_qty=D(qty),
        filled_avg_price=D(price) if D(qty) > 0 else None,
        submitted_at=NOW,
        fills=fills,
    )


@pytest.fixture()
def book(db):
    config = make_config(db, name="fake")
    book = Book.for_config(config)
    with db.transaction() as conn:
        ledger.open_account(conn, book, D(100000))
    return book


def record(db, book, *reqs_and_reports):
    with db.transaction() as conn:
        for item in reqs_and_reports:
            if isinstance(item, OrderRequest):
                ledger.record_new_order(conn, book, item, signal_id=None, intent="enter", at=NOW)
            else:
                ledger.record_report(conn, book, item, NOW)


def anomalies(db, book) -> list[tuple[str, str]]:
    with db.transaction() as conn:
        rows = conn.execute(
            "select kind, client_order_id from public.order_anomalies where config_id = %s order by id",
            (book.config_id,),
        ).fetchall()
    return [(r["kind"], r["client_order_id"]) for r in rows]


def status_of(db, book, coid: str) -> tuple[str, Decimal]:
    with db.transaction() as conn:
        row = conn.execute(
            "select status, filled_qty from public.orders where config_id = %s and client_order_id = %s",
            (book.config_id, coid),
        ).fetchone()
    return row["status"], row["filled_qty"]


class TestImpossibleReports:
    def test_both_legs_of_a_bracket_filling_never_turn_a_long_into_a_short(self, db, book):
        entry = request("entry")
        tp = take_profit_leg("tp", "entry")
        sl = request(
            "sl",
            OrderSide.SELL,
            order_type=OrderType.STOP,
            stop_price=D(90),
            purpose=OrderPurpose.STOP_LOSS,
            parent_client_order_id="entry",
        )
        record(db, book, entry, tp, sl, report_of(entry, OrderStatus.FILLED, "10"))
        record(db, book, report_of(tp, OrderStatus.FILLED, "10", "110"))

        record(db, book, report_of(sl, OrderStatus.FILLED, "10", "90"))

        assert held(db, book) == D(0)
        assert status_of(db, book, "sl")[1] == D(0)
        assert anomalies(db, book) == [("oco_both_filled", "sl")]

    def test_a_canceled_report_never_moves_a_filled_order(self, db, book):
        entry = request("e1")
        record(db, book, entry, report_of(entry, OrderStatus.FILLED, "10"))

        record(db, book, report_of(entry, OrderStatus.CANCELED, "0"))
        record(db, book, report_of(entry, OrderStatus.CANCELED, "0"))  # the same report again: one anomaly

        assert status_of(db, book, "e1") == ("filled", D(10))
        assert anomalies(db, book) == [("terminal_to_terminal", "e1")]

    def test_a_fill_beyond_the_orders_quantity_is_refused_not_dropped_silently(self, db, book):
        entry = request("e2")
        record(db, book, entry)

        record(db, book, report_of(entry, OrderStatus.FILLED, "12"))

        assert status_of(db, book, "e2") == ("pending_new", D(0))
        assert held(db, book) == D(0)
        assert anomalies(db, book) == [("overfill", "e2")]

    def test_a_fill_price_is_never_backed_out_of_a_rounded_average(self, db, book):
        entry = request("e3", qty="100")
        record(db, book, entry, report_of(entry, OrderStatus.PARTIALLY_FILLED, "99", "100.00"))

        # the broker's average of 99 @ 100.00 + 1 @ 100.51, rounded: 100.01
        late = BrokerOrder(**{**report_of(entry, OrderStatus.FILLED, "100", "100.01").__dict__, "fills": ()})
        record(db, book, late)

        with db.transaction() as conn:
            prices = [
                r["last_px"]
                for r in conn.execute(
                    "select last_px from public.fills where config_id = %s order by last_qty desc",
                    (book.config_id,),
                )
            ]
        assert prices == [D("100.00"), D("100.01")]  # not 101.00


# --- item 4: each config's sync and stream fail alone, with a log line and a metric ----------


def failures(part: str, error: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value("viewzenix_account_failures_total", {"part": part, "error": error}) or 0


def alpaca_config_with_order(db, broker: FakeBroker, **signal_fields: Any) -> tuple[dict[str, Any], dict]:
    config = make_config(db, name="fake", broker="alpaca")
    signal_id = store_signal(
        db, config, buy(order_type=OrderType.LIMIT, limit_price=D(90), **signal_fields), job_id=JOB
    )
    execute(db, signal_id, broker)
    [order] = orders_of(db, signal_id)
    assert order["status"] == "accepted"
    return config, order


class TestIsolation:
    def test_a_report_with_a_filled_quantity_and_no_price_stops_no_other_config(self, db):
        first, second = FakeBroker(), FakeBroker()
        config_a, order_a = alpaca_config_with_order(db, first)
        config_b, order_b = alpaca_config_with_order(db, second)
        no_price = BrokerOrder(
            **{**filled(order_a, "10", "90").__dict__, "fills": (), "filled_avg_price": None}
        )
        first.orders[order_a["client_order_id"]] = no_price
        second.orders[order_b["client_order_id"]] = filled(order_b, "10", "90", "fake-trade-b")
        brokers = {config_a["id"]: first, config_b["id"]: second}
        accounts = Accounts(db, lambda config: brokers[config["id"]], clock=lambda: NOW, sleep=lambda s: None)

        for config in (config_a, config_b):
            sync_open_orders(db, config_id=config["id"], accounts=accounts, now=NOW)

        assert held(db, config_b) == D(10)
        assert held(db, config_a) == D(0)  # no fill at price 0: it waits for a report with a price

    def test_one_configs_failure_is_logged_counted_and_the_others_are_synced(self, db, caplog):
        first, second = FakeBroker(), FakeBroker()
        config_a, _ = alpaca_config_with_order(db, first)
        config_b, order_b = alpaca_config_with_order(db, second)
        second.orders[order_b["client_order_id"]] = filled(order_b, "10", "90", "fake-trade-b")

        def broken(method: str) -> None:
            if method == "list_open_orders":
                raise RuntimeError("an adapter bug")

        first.probe = broken
        brokers = {config_a["id"]: first, config_b["id"]: second}
        accounts = Accounts(db, lambda config: brokers.get(config["id"], FakeBroker()), clock=lambda: NOW)
        before = failures("order_sync", "RuntimeError")

        counts = sync_open_orders(db, accounts=accounts, now=NOW)

        assert counts["failed"] >= 1
        assert held(db, config_b) == D(10)
        assert failures("order_sync", "RuntimeError") == before + 1
        assert any(
            getattr(r, "action", None) == "order_sync_failed"
            and getattr(r, "config_id", None) == config_a["id"]
            for r in caplog.records
        )

    def test_a_streams_catch_up_failing_on_the_database_still_lets_it_listen(self, db):
        import psycopg

        from viewzenix.services.trade_updates import TradeUpdatesListener

        config = make_config(db, name="fake", broker="alpaca")

        def database_error(config):
            raise psycopg.errors.QueryCanceled("canceling statement due to statement timeout")

        listener = TradeUpdatesListener(db, config, accounts=Accounts(db, database_error))
        config_id = config["id"]
        store_signal(db, config, buy(), job_id=JOB)  # a config the sync visits
        with db.transaction() as conn:  # an acknowledged open order, so the sync builds the broker
            conn.execute(
                "insert into public.orders (user_id, config_id, client_order_id, broker, symbol, side,"
                " order_type, time_in_force, purpose, qty, status)"
                " values (%s, %s, 'x-1', 'alpaca', 'AAPL', 'buy', 'market', 'day', 'entry', 1, 'accepted')",
                (config["user_id"], config_id),
            )
        before = failures("order_sync", "QueryCanceled")

        assert listener._catch_up(config_id)["failed"] == 1  # the failure stayed this config's
        assert failures("order_sync", "QueryCanceled") == before + 1


# --- item 5: one canonical symbol per instrument across adapters and reconcile ---------------


def test_reconcile_sees_tradingviews_btcusd_and_alpacas_btc_usd_as_one_position(db, book):
    from viewzenix.services.reconciliation import reconcile as run_reconcile

    broker = FakeBroker()
    legacy = request("btc-1", qty="2")
    legacy = OrderRequest(**{**legacy.__dict__, "symbol": "BTCUSD"})  # a row from before canonical symbols
    record(db, book, legacy, report_of(legacy, OrderStatus.FILLED, "2", "60000"))
    broker.orders["btc-1"] = BrokerOrder(
        **{**report_of(legacy, OrderStatus.FILLED, "2", "60000").__dict__, "symbol": "BTC/USD"}
    )

    [run] = run_reconcile(db, config_id=book.config_id, repair=True, accounts=accounts_of(db, broker))

    assert run["counts"]["position_differs"] == 0
    assert held(db, book, "BTCUSD") == D(2)  # never zeroed by a repair


# --- reconciliation: never-sent bracket legs are no drift; adopted legs keep their parent ----


def test_bracket_legs_never_sent_are_not_reported_as_drift(db):
    from viewzenix.domain.model import StopLoss, TakeProfit

    config = make_config(db, name="fake")
    broker = FakeBroker()
    broker.refuse = ("insufficient_buying_power", "insufficient buying power")
    bracket = buy(take_profit=TakeProfit(limit_price=D(110)), stop_loss=StopLoss(stop_price=D(95)))
    assert execute(db, store_signal(db, config, bracket, job_id=JOB), broker) == "rejected"

    [run] = reconcile(db, config_id=config["id"], accounts=accounts_of(db, broker))

    assert (run["orders_in_drift"], run["drifts"]) == (0, [])


def test_adopted_bracket_legs_keep_their_parent(db, book):
    broker = FakeBroker()
    entry = request("outside-entry")
    leg = take_profit_leg("outside-tp", "outside-entry")
    broker.orders["outside-tp"] = BrokerOrder(
        **{
            **report_of(leg, OrderStatus.HELD, "0").__dict__,
            "parent_client_order_id": "outside-entry",
            "order_type": "limit",
            "limit_price": D(110),
        }
    )
    broker.orders["outside-entry"] = report_of(entry, OrderStatus.FILLED, "10")

    reconcile(db, config_id=book.config_id, repair=True, accounts=accounts_of(db, broker))

    with db.transaction() as conn:
        rows = {
            r["client_order_id"]: r
            for r in conn.execute(
                "select o.client_order_id, o.purpose, p.client_order_id as parent from public.orders o"
                " left join public.orders p on p.id = o.parent_order_id where o.config_id = %s",
                (book.config_id,),
            )
        }
    assert (rows["outside-tp"]["parent"], rows["outside-tp"]["purpose"]) == ("outside-entry", "take_profit")


def test_reconcile_surfaces_a_refused_report_and_never_repairs_over_it(db, book):
    entry = request("e9")
    record(db, book, entry, report_of(entry, OrderStatus.FILLED, "10"))
    record(db, book, report_of(entry, OrderStatus.CANCELED, "0"))  # refused: an anomaly
    broker = FakeBroker()
    broker.orders["e9"] = report_of(entry, OrderStatus.FILLED, "10")

    [run] = reconcile(db, config_id=book.config_id, repair=True, accounts=accounts_of(db, broker))

    assert run["counts"]["order_anomaly"] == 1
    assert [d["kind"] for d in run["drifts"]] == ["order_anomaly"]
    assert run["drifts"][0]["ours"] == "terminal_to_terminal"
    assert status_of(db, book, "e9") == ("filled", D(10))
