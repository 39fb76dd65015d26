"""Specification of the order ledger (the one writer of our books) and our books' read models.

Real Postgres. Most tests hand the ledger ``BrokerOrder`` reports made by hand, the way any
broker adapter would (``record_new_order``, then ``record_report`` in ``db.transaction()``);
a few build their data through the real path, a stored signal run by ``execute_signal`` with the
paper broker. Each test opens its own user and webhook config. Money is Decimal, in the
account currency; every expected number is worked out in the test.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from builders import (
    NOW,
    clock,
    held,
    make_config,
    order_events,
    order_fills,
    position_of,
    run_signal,
    store_signal,
    summary,
)

from viewzenix.brokers import broker_for
from viewzenix.brokers.base import BrokerFill, BrokerOrder
from viewzenix.db import Database
from viewzenix.domain.engine import Denial, OrderPurpose, OrderRequest
from viewzenix.domain.model import Action, OrderSide, OrderStatus, OrderType, Signal, TimeInForce
from viewzenix.repositories import accounts as accounts_repo
from viewzenix.repositories import orders as orders_repo
from viewzenix.repositories import positions as positions_repo
from viewzenix.services import ledger
from viewzenix.services.ledger import Book, Recorded

pytestmark = pytest.mark.db

LATER = NOW + timedelta(minutes=1)
LATEST = NOW + timedelta(minutes=2)
D = Decimal
BUY, SELL = OrderSide.BUY, OrderSide.SELL
ACCEPTED, FILLED = OrderStatus.ACCEPTED, OrderStatus.FILLED
PARTIALLY_FILLED = OrderStatus.PARTIALLY_FILLED


# --- helpers -------------------------------------------------------------------------------


def open_config(db: Database, **settings: Any) -> dict[str, Any]:
    """A new user and config whose account in our books is open with the config's starting cash."""
    config = make_config(db, **settings)
    with db.transaction() as conn:
        ledger.open_account(conn, Book.for_config(config), config["starting_cash"])
    return config


def open_book(db: Database, **settings: Any) -> Book:
    return Book.for_config(open_config(db, **settings))


def buy_signal(qty: str, price: str) -> Signal:
    return Signal(ticker="AAPL", action=Action.BUY, quantity=D(qty), signal_price=D(price))


def exit_signal(price: str) -> Signal:
    return Signal(ticker="AAPL", action=Action.EXIT, signal_price=D(price))


def request(
    client_order_id: str,
    side: OrderSide = BUY,
    qty: str = "10",
    *,
    symbol: str = "AAPL",
    order_type: OrderType = OrderType.MARKET,
    purpose: OrderPurpose = OrderPurpose.ENTRY,
    parent: str | None = None,
    limit_price: str | None = None,
    stop_price: str | None = None,
) -> OrderRequest:
    return OrderRequest(
        client_order_id=client_order_id,
        symbol=symbol,
        side=side,
        qty=D(qty),
        order_type=order_type,
        time_in_force=TimeInForce.DAY,
        purpose=purpose,
        limit_price=None if limit_price is None else D(limit_price),
        stop_price=None if stop_price is None else D(stop_price),
        parent_client_order_id=parent,
    )


def fill(trade_id: str, qty: str, price: str, commission: str = "0", at: datetime = NOW) -> BrokerFill:
    return BrokerFill(trade_id=trade_id, qty=D(qty), price=D(price), commission=D(commission), filled_at=at)


def report(
    req: OrderRequest,
    status: OrderStatus,
    *fills: BrokerFill,
    filled_qty: str | None = None,
    filled_avg_price: str | None = None,
    **fields: Any,
) -> BrokerOrder:
    """What a broker reports of ``req``: ``fills`` are every execution so far.

    ``filled_qty`` and ``filled_avg_price`` default to what the fills add up to.
    """
    qty = sum((f.qty for f in fills), D(0)) if filled_qty is None else D(filled_qty)
    if filled_avg_price is not None:
        avg: Decimal | None = D(filled_avg_price)
    elif fills:
        avg = sum((f.qty * f.price for f in fills), D(0)) / qty
    else:
        avg = None
    return BrokerOrder(
        client_order_id=req.client_order_id,
        broker_order_id=f"broker-{req.client_order_id}",
        status=status,
        symbol=req.symbol,
        side=str(req.side),
        qty=req.qty,
        filled_qty=qty,
        filled_avg_price=avg,
        submitted_at=NOW,
        filled_at=max((f.filled_at for f in fills), default=None),
        parent_client_order_id=req.parent_client_order_id,
        fills=fills,
        order_type=str(req.order_type),
        limit_price=req.limit_price,
        **fields,
    )


def new_order(
    db: Database, book: Book, req: OrderRequest, *, signal_id: uuid.UUID | None = None
) -> dict[str, Any]:
    with db.transaction() as conn:
        return ledger.record_new_order(conn, book, req, signal_id=signal_id, intent="enter", at=NOW)


def record(db: Database, book: Book, rep: BrokerOrder, at: datetime = NOW) -> Recorded | None:
    with db.transaction() as conn:
        return ledger.record_report(conn, book, rep, at)


def fill_columns(book: Book, order: dict[str, Any], trade_id: str, qty: str, price: str) -> dict[str, Any]:
    """A buy fill's ``public.fills`` columns (``positions.record_fill_and_save``), at NOW."""
    return {
        "order_id": order["id"],
        "user_id": book.user_id,
        "config_id": book.config_id,
        "trade_id": trade_id,
        "symbol": "AAPL",
        "side": "buy",
        "last_qty": D(qty),
        "last_px": D(price),
        "commission": D("0"),
        "filled_at": NOW,
    }


def trade(db: Database, book: Book, req: OrderRequest, *fills: BrokerFill) -> None:
    """Record ``req`` as a new order, then the broker's report of it filled by ``fills``."""
    new_order(db, book, req)
    record(db, book, report(req, FILLED, *fills))


def order_of(db: Database, book: Book, client_order_id: str) -> dict[str, Any]:
    with db.transaction() as conn:
        row = orders_repo.get_by_client_order_id(conn, book.config_id, client_order_id)
    assert row is not None
    return row


def event_names(db: Database, book: Book, client_order_id: str) -> list[str]:
    return order_events(db, order_of(db, book, client_order_id)["id"])


def fills_of(db: Database, book: Book, client_order_id: str) -> list[dict[str, Any]]:
    return order_fills(db, order_of(db, book, client_order_id)["id"])


def cash(db: Database, book: Book) -> Decimal:
    return summary(db, book)["cash"]


def orders_count(db: Database, book: Book) -> int:
    with db.transaction() as conn:
        return conn.execute(
            "select count(*) as n from public.orders where config_id = %s", (book.config_id,)
        ).fetchone()["n"]


def claims(user_id: uuid.UUID) -> dict[str, Any]:
    return {"sub": str(user_id), "role": "authenticated", "aud": "authenticated"}


# --- read models for the REST API (caller's connection, RLS) -------------------------------


class TestReadModels:
    @pytest.fixture()
    def traded(self, db: Database) -> Book:
        """A config with a filled AAPL long, a resting AAPL limit and a closed MSFT round trip.

        Commission 1 per fill; AAPL marked at 104 after its fill.
        """
        book = open_book(db)
        trade(db, book, request("m1", BUY, "10"), fill("t-m1", "10", "100", "1"))
        limit = request("l1", BUY, "10", order_type=OrderType.LIMIT, limit_price="90")
        new_order(db, book, limit)
        record(db, book, report(limit, ACCEPTED))
        trade(db, book, request("m2", BUY, "1", symbol="MSFT"), fill("t-m2", "1", "50", "1"))
        trade(db, book, request("m3", SELL, "1", symbol="MSFT"), fill("t-m3", "1", "60", "1"))
        with db.transaction() as conn:
            ledger.mark(conn, book, "AAPL", D("104"))
        return book

    def test_orders_list_page_is_newest_first_with_filters_and_total(self, db, traded):
        with db.transaction(claims=claims(traded.user_id)) as conn:
            rows, total = orders_repo.list_page(
                conn, config_id=traded.config_id, status=None, symbol=None, signal_id=None, limit=2, offset=0
            )
            assert total == 4
            assert [r["client_order_id"] for r in rows] == ["m3", "m2"]
            assert "total_count" not in rows[0]
            rows, total = orders_repo.list_page(
                conn, config_id=traded.config_id, status=None, symbol=None, signal_id=None, limit=2, offset=2
            )
            assert (total, [r["client_order_id"] for r in rows]) == (4, ["l1", "m1"])
            rows, total = orders_repo.list_page(
                conn, config_id=None, status="accepted", symbol="AAPL", signal_id=None, limit=10, offset=0
            )
            assert (total, [r["client_order_id"] for r in rows]) == (1, ["l1"])
            assert orders_repo.list_page(
                conn, config_id=None, status=None, symbol="TSLA", signal_id=None, limit=10, offset=0
            ) == ([], 0)

    def test_orders_list_page_filters_by_signal(self, db):
        config = make_config(db)
        first = run_signal(db, config, buy_signal("10", "100"))
        run_signal(db, config, exit_signal("101"))

        with db.transaction(claims=claims(config["user_id"])) as conn:
            rows, total = orders_repo.list_page(
                conn, config_id=None, status=None, symbol=None, signal_id=first, limit=10, offset=0
            )
        assert (total, [r["client_order_id"] for r in rows]) == (1, [f"vzx-{first.hex}-en"])

    def test_order_detail_shows_the_events_and_fills_of_an_executed_signal(self, db):
        config = make_config(db, commission_fixed=D("1"))
        signal_id = run_signal(db, config, buy_signal("10", "100"))

        with db.transaction(claims=claims(config["user_id"])) as conn:
            [listed], _ = orders_repo.list_page(
                conn, config_id=None, status="filled", symbol="AAPL", signal_id=None, limit=10, offset=0
            )
            detail = orders_repo.get(conn, listed["id"])
            events = orders_repo.events_for(conn, listed["id"])
            [only_fill] = orders_repo.fills_for(conn, listed["id"])
        assert detail["client_order_id"] == f"vzx-{signal_id.hex}-en"
        assert (detail["status"], detail["filled_qty"], detail["filled_avg_price"]) == (
            "filled",
            D("10"),
            D("100"),
        )
        assert [(e["event_type"], e["from_status"], e["to_status"]) for e in events] == [
            ("OrderInitialized", None, "pending_new"),
            ("OrderSubmitted", "pending_new", "submitted"),
            ("OrderAccepted", "submitted", "accepted"),
            ("OrderFilled", "accepted", "filled"),
        ]
        assert events[-1]["detail"]["last_qty"] == "10"
        assert (only_fill["last_qty"], only_fill["last_px"], only_fill["commission"]) == (
            D("10"),
            D("100"),
            D("1"),
        )

    def test_positions_list_for_adds_side_market_value_and_unrealized_pnl(self, db, traded):
        with db.transaction(claims=claims(traded.user_id)) as conn:
            [aapl] = positions_repo.list_for(conn, config_id=traded.config_id)
            everything = positions_repo.list_for(conn, include_flat=True)
        assert (aapl["symbol"], aapl["side"], aapl["qty"], aapl["avg_entry_price"]) == (
            "AAPL",
            "long",
            D("10"),
            D("100"),
        )
        assert (aapl["market_value"], aapl["unrealized_pnl"]) == (D("1040"), D("40"))
        assert [(p["symbol"], p["side"], p["realized_pnl"]) for p in everything] == [
            ("AAPL", "long", D("0")),
            ("MSFT", "flat", D("10")),
        ]

    def test_a_short_position_is_listed_short_and_counts_negative_in_the_summary(self, db):
        book = open_book(db)
        trade(db, book, request("s1", SELL, "5"), fill("t-s1", "5", "100"))
        with db.transaction() as conn:
            ledger.mark(conn, book, "AAPL", D("90"))

        with db.transaction(claims=claims(book.user_id)) as conn:
            [short] = positions_repo.list_for(conn, config_id=book.config_id)
        assert (short["side"], short["qty"], short["market_value"], short["unrealized_pnl"]) == (
            "short",
            D("-5"),
            D("-450"),
            D("50"),  # (90 - 100) * -5
        )
        account = summary(db, book)
        assert (account["cash"], account["positions_value"], account["equity"]) == (
            D("100500"),
            D("-450"),
            D("100050"),
        )
        assert account["unrealized_pnl"] == D("50")

    def test_account_summary(self, db, traded):
        with db.transaction(claims=claims(traded.user_id)) as conn:
            account = accounts_repo.summary(conn, traded.config_id)
        # cash = 100000 - 1001 (AAPL) - 51 (MSFT buy) + 59 (MSFT sell) = 99007
        assert account["cash"] == D("99007")
        assert account["positions_value"] == D("1040")  # 10 * 104
        assert account["equity"] == D("100047")
        assert (account["realized_pnl"], account["unrealized_pnl"]) == (D("10"), D("40"))
        assert account["commission_paid"] == D("3")
        assert account["starting_cash"] == D("100000")
        assert account["updated_at"] is not None
        # 100047 - 100000 = 10 + 40 - 3
        assert account["equity"] - account["starting_cash"] == D("47")

    def test_account_summary_after_executed_signals_agrees_with_the_paper_brokers_account(self, db):
        config = make_config(db, commission_rate=D("0.001"))
        run_signal(db, config, buy_signal("10", "100"))
        run_signal(db, config, exit_signal("112"))

        with db.transaction(claims=claims(config["user_id"])) as conn:
            account = accounts_repo.summary(conn, config["id"])
        # 100000 - 1000 - 1 (buy, commission 0.1%) + 1120 - 1.12 (sell) = 100117.88
        assert (account["cash"], account["equity"]) == (D("100117.88"), D("100117.88"))
        assert (account["realized_pnl"], account["commission_paid"]) == (D("120"), D("2.12"))
        assert account["cash"] == broker_for(db, config, clock=clock).get_account().cash

    def test_summary_before_the_first_trade_shows_the_starting_cash(self, db):
        config = make_config(db, starting_cash=D("777"))

        with db.transaction(claims=claims(config["user_id"])) as conn:
            account = accounts_repo.summary(conn, config["id"])

        assert (account["cash"], account["equity"], account["starting_cash"]) == (
            D("777"),
            D("777"),
            D("777"),
        )
        assert (account["positions_value"], account["realized_pnl"], account["unrealized_pnl"]) == (0, 0, 0)
        assert (account["commission_paid"], account["updated_at"]) == (0, None)

    def test_another_users_rows_are_invisible(self, db, traded):
        m1 = order_of(db, traded, "m1")
        stranger = uuid.uuid4()

        with db.transaction(claims=claims(stranger)) as conn:
            assert accounts_repo.summary(conn, traded.config_id) is None
            assert positions_repo.list_for(conn, config_id=traded.config_id, include_flat=True) == []
            assert orders_repo.list_page(
                conn, config_id=traded.config_id, status=None, symbol=None, signal_id=None, limit=10, offset=0
            ) == ([], 0)
            assert orders_repo.get(conn, m1["id"]) is None
            assert orders_repo.events_for(conn, m1["id"]) == []
            assert orders_repo.fills_for(conn, m1["id"]) == []
        with db.transaction(claims=claims(traded.user_id)) as conn:  # the owner sees them
            assert orders_repo.get(conn, m1["id"]) is not None
            assert len(orders_repo.fills_for(conn, m1["id"])) == 1


# --- recording reports ---------------------------------------------------------------------


class TestRecordingReports:
    def test_recording_the_same_report_twice_changes_nothing(self, db):
        book = open_book(db)
        req = request("same", BUY, "10")
        new_order(db, book, req)
        filled = report(req, FILLED, fill("t-same", "10", "100", "2"))
        first = record(db, book, filled)
        order_once = order_of(db, book, "same")
        events_once = event_names(db, book, "same")

        second = record(db, book, filled, at=LATER)

        assert first is not None and first.changed
        assert second is not None and not second.changed and second.new_fills == ()
        assert len(fills_of(db, book, "same")) == 1
        assert event_names(db, book, "same") == events_once
        unchanged = {k: v for k, v in order_of(db, book, "same").items() if k != "updated_at"}
        assert unchanged == {k: v for k, v in order_once.items() if k != "updated_at"}
        assert held(db, book) == D("10")
        account = summary(db, book)
        assert (account["cash"], account["commission_paid"]) == (D("98998"), D("2"))  # -1000 - 2

    def test_fills_arriving_in_two_reports_are_recorded_each_once_and_move_the_position_by_each(self, db):
        book = open_book(db)
        req = request("twice", BUY, "10")
        new_order(db, book, req)
        first = fill("t-1", "4", "100", at=NOW)
        second = fill("t-2", "6", "101", at=LATER)

        record(db, book, report(req, PARTIALLY_FILLED, first))
        assert (held(db, book), cash(db, book)) == (D("4"), D("99600"))
        assert order_of(db, book, "twice")["status"] == "partially_filled"
        record(db, book, report(req, FILLED, first, second), at=LATER)  # every fill so far

        order = order_of(db, book, "twice")
        assert (order["status"], order["filled_qty"], order["filled_avg_price"]) == (
            "filled",
            D("10"),
            D("100.6"),
        )
        assert [(f["trade_id"], f["last_qty"], f["last_px"]) for f in fills_of(db, book, "twice")] == [
            ("t-1", D("4"), D("100")),
            ("t-2", D("6"), D("101")),
        ]
        assert event_names(db, book, "twice") == [
            "OrderInitialized",
            "OrderSubmitted",
            "OrderAccepted",
            "OrderPartiallyFilled",
            "OrderFilled",
        ]
        assert held(db, book) == D("10")
        assert position_of(db, book)["avg_entry_price"] == D("100.6")
        assert cash(db, book) == D("98994")  # 100000 - 400 - 606

    def test_a_report_without_fills_but_a_larger_filled_qty_is_recorded_as_one_implied_fill(self, db):
        book = open_book(db)
        req = request("implied", BUY, "10")
        new_order(db, book, req)

        record(db, book, report(req, PARTIALLY_FILLED, filled_qty="4", filled_avg_price="100"))
        record(db, book, report(req, FILLED, filled_qty="10", filled_avg_price="100.6"), at=LATER)

        # the second 6 shares: (10 * 100.6 - 4 * 100) / 6 = 101
        fills = [
            (f["trade_id"], f["last_qty"], f["last_px"], f["commission"])
            for f in fills_of(db, book, "implied")
        ]
        assert fills == [("implied-q4", D("4"), D("100"), D("0")), ("implied-q10", D("6"), D("101"), D("0"))]
        order = order_of(db, book, "implied")
        assert (order["status"], order["filled_qty"], order["filled_avg_price"]) == (
            "filled",
            D("10"),
            D("100.6"),
        )
        assert event_names(db, book, "implied")[-2:] == ["OrderPartiallyFilled", "OrderFilled"]
        assert held(db, book) == D("10")
        assert cash(db, book) == D("98994")  # 100000 - 400 - 606

    def test_fills_reported_after_an_implied_fill_never_fill_the_order_twice(self, db):
        book = open_book(db)
        req = request("twice", BUY, "10")
        new_order(db, book, req)
        record(db, book, report(req, FILLED, filled_qty="10", filled_avg_price="100"))

        record(db, book, report(req, FILLED, fill("real-1", "10", "100")), at=LATER)

        assert [f["last_qty"] for f in fills_of(db, book, "twice")] == [D("10")]
        assert held(db, book) == D("10")

    def test_a_rejected_report_keeps_the_reason_and_leaves_position_and_cash_untouched(self, db):
        book = open_book(db)
        req = request("refused", BUY, "10")
        new_order(db, book, req)

        record(
            db,
            book,
            report(
                req,
                OrderStatus.REJECTED,
                status_code="insufficient_buying_power",
                status_message="insufficient buying power",
            ),
        )

        order = order_of(db, book, "refused")
        assert (order["status"], order["status_code"], order["status_message"]) == (
            "rejected",
            "insufficient_buying_power",
            "insufficient buying power",
        )
        assert event_names(db, book, "refused") == ["OrderInitialized", "OrderSubmitted", "OrderRejected"]
        assert fills_of(db, book, "refused") == []
        assert held(db, book) == D("0")
        assert (cash(db, book), summary(db, book)["commission_paid"]) == (D("100000"), D("0"))

    def test_a_held_leg_is_held_then_accepted_then_filled_as_later_reports_say(self, db):
        book = open_book(db)
        trade(db, book, request("parent", BUY, "10"), fill("t-parent", "10", "100"))
        leg = request(
            "leg-tp",
            SELL,
            "10",
            order_type=OrderType.LIMIT,
            purpose=OrderPurpose.TAKE_PROFIT,
            parent="parent",
            limit_price="110",
        )
        new_order(db, book, leg)
        assert order_of(db, book, "leg-tp")["parent_order_id"] == order_of(db, book, "parent")["id"]

        record(db, book, report(leg, OrderStatus.HELD))
        assert order_of(db, book, "leg-tp")["status"] == "held"
        record(db, book, report(leg, ACCEPTED), at=LATER)
        assert order_of(db, book, "leg-tp")["status"] == "accepted"
        assert held(db, book) == D("10")
        record(db, book, report(leg, FILLED, fill("t-leg", "10", "110", at=LATEST)), at=LATEST)

        assert order_of(db, book, "leg-tp")["status"] == "filled"
        with db.transaction() as conn:
            events = orders_repo.events_for(conn, order_of(db, book, "leg-tp")["id"])
        assert [(e["event_type"], e["from_status"], e["to_status"]) for e in events] == [
            ("OrderInitialized", None, "pending_new"),
            ("OrderSubmitted", "pending_new", "held"),
            ("OrderAccepted", "held", "accepted"),
            ("OrderFilled", "accepted", "filled"),
        ]
        assert (held(db, book), position_of(db, book)["realized_pnl"]) == (D("0"), D("100"))

    def test_a_report_for_an_unknown_client_order_id_returns_none_and_writes_nothing(self, db):
        book = open_book(db)
        stranger = request("never-recorded", BUY, "10")

        recorded = record(db, book, report(stranger, FILLED, fill("t-unknown", "10", "100")))

        assert recorded is None
        assert orders_count(db, book) == 0
        assert position_of(db, book) is None
        assert cash(db, book) == D("100000")
        with db.transaction() as conn:
            assert (
                conn.execute(
                    "select count(*) as n from public.fills where config_id = %s", (book.config_id,)
                ).fetchone()["n"]
                == 0
            )

    def test_a_report_for_a_denied_order_changes_nothing(self, db):
        book = open_book(db)
        req = request("denied", BUY, "10")
        with db.transaction() as conn:
            ledger.record_denial(
                conn,
                book,
                Denial("max_position_qty", "max_position_qty 5 < 10", req),
                signal_id=None,
                intent="enter",
                at=NOW,
            )
        denied = order_of(db, book, "denied")

        recorded = record(db, book, report(req, FILLED, fill("t-denied", "10", "100")))

        assert recorded is not None and not recorded.changed
        assert order_of(db, book, "denied") == denied
        assert (denied["status"], denied["status_code"]) == ("denied", "max_position_qty")
        assert event_names(db, book, "denied") == ["OrderDenied"]
        assert fills_of(db, book, "denied") == []
        assert (held(db, book), cash(db, book)) == (D("0"), D("100000"))

    def test_record_new_order_twice_with_the_same_client_order_id_returns_the_same_row(self, db):
        book = open_book(db)

        first = new_order(db, book, request("once", BUY, "10"))
        second = new_order(db, book, request("once", BUY, "99"))  # a retried plan

        assert second == first
        assert (first["status"], first["qty"]) == ("pending_new", D("10"))
        assert orders_count(db, book) == 1
        assert event_names(db, book, "once") == ["OrderInitialized"]

    def test_a_cancel_requested_by_a_signal_then_a_canceled_report_is_canceled_by_signal(self, db):
        config = open_config(db)
        book = Book.for_config(config)
        signal_id = store_signal(db, config, Signal(ticker="AAPL", action=Action.CANCEL))
        req = request("resting", BUY, "10", order_type=OrderType.LIMIT, limit_price="90")
        new_order(db, book, req)
        record(db, book, report(req, ACCEPTED))

        with db.transaction() as conn:
            row = orders_repo.get_by_client_order_id(conn, book.config_id, "resting")
            ledger.request_cancel(conn, book, row, signal_id=signal_id, reason="cancel signal", at=LATER)
        canceled = report(req, OrderStatus.CANCELED, status_code="canceled", canceled_at=LATER)
        record(db, book, canceled, at=LATER)

        order = order_of(db, book, "resting")
        assert (order["status"], order["status_code"]) == ("canceled", "canceled_by_signal")
        assert order["status_message"] == f"canceled by signal {signal_id}"
        assert (order["cancel_requested_by"], order["canceled_at"]) == (signal_id, LATER)
        assert event_names(db, book, "resting")[-2:] == ["OrderCancelRequested", "OrderCanceled"]

    def test_a_canceled_report_without_a_cancel_request_keeps_the_brokers_code(self, db):
        book = open_book(db)
        req = request("oco", SELL, "10", order_type=OrderType.LIMIT, limit_price="110")
        new_order(db, book, req)
        record(db, book, report(req, ACCEPTED))

        record(db, book, report(req, OrderStatus.CANCELED, status_code="oco"), at=LATER)

        assert order_of(db, book, "oco")["status_code"] == "oco"


# --- our books: positions, cash, commissions -----------------------------------------------


class TestBooks:
    def test_each_fills_commission_is_paid_from_cash_and_added_to_commission_paid(self, db):
        book = open_book(db)
        req = request("fees", BUY, "10")
        new_order(db, book, req)
        first = fill("t-fee-1", "4", "100", "1.5", at=NOW)
        second = fill("t-fee-2", "6", "100", "0.25", at=LATER)

        record(db, book, report(req, PARTIALLY_FILLED, first))
        record(db, book, report(req, FILLED, first, second), at=LATER)

        assert [f["commission"] for f in fills_of(db, book, "fees")] == [D("1.5"), D("0.25")]
        account = summary(db, book)
        assert account["commission_paid"] == D("1.75")
        assert account["cash"] == D("98998.25")  # 100000 - 1000 - 1.75

    def test_equity_less_starting_cash_is_realized_plus_unrealized_less_commission(self, db):
        book = open_book(db)
        trade(db, book, request("in", BUY, "10"), fill("t-in", "10", "100", "1.5"))
        trade(db, book, request("out", SELL, "4"), fill("t-out", "4", "110", "0.5"))
        with db.transaction() as conn:
            ledger.mark(conn, book, "AAPL", D("105"))

        account = summary(db, book)

        assert account["cash"] == D("99438")  # 100000 - 1000 - 1.5 + 440 - 0.5
        assert account["positions_value"] == D("630")  # 6 * 105
        assert account["equity"] == D("100068")
        assert account["realized_pnl"] == D("40")  # (110 - 100) * 4
        assert account["unrealized_pnl"] == D("30")  # (105 - 100) * 6
        assert account["commission_paid"] == D("2")
        assert account["equity"] - account["starting_cash"] == (
            account["realized_pnl"] + account["unrealized_pnl"] - account["commission_paid"]
        )

    def test_a_short_then_cover_realises_avg_minus_exit_times_qty(self, db):
        book = open_book(db)
        trade(db, book, request("short", SELL, "10"), fill("t-short", "10", "100"))
        assert (held(db, book), position_of(db, book)["side"]) == (D("-10"), "short")
        assert cash(db, book) == D("101000")

        trade(db, book, request("cover", BUY, "10", purpose=OrderPurpose.EXIT), fill("t-cover", "10", "90"))

        covered = position_of(db, book)
        assert (covered["qty"], covered["side"], covered["avg_entry_price"]) == (D("0"), "flat", D("0"))
        assert covered["realized_pnl"] == D("100")  # (100 - 90) * 10
        assert covered["opened_at"] is None
        assert cash(db, book) == D("100100")

    def test_a_short_covered_at_a_loss_realises_a_negative_pnl(self, db):
        book = open_book(db)
        trade(db, book, request("short", SELL, "10"), fill("t-short", "10", "100"))

        trade(db, book, request("cover", BUY, "4", purpose=OrderPurpose.EXIT), fill("t-cover", "4", "120"))

        partly = position_of(db, book)
        assert (partly["qty"], partly["avg_entry_price"]) == (D("-6"), D("100"))
        assert partly["realized_pnl"] == D("-80")  # (100 - 120) * 4

    def test_a_flip_through_zero_opens_the_new_side_at_the_fill_price(self, db):
        book = open_book(db)
        trade(db, book, request("long", BUY, "10"), fill("t-long", "10", "100", at=NOW))

        trade(db, book, request("flip", SELL, "15"), fill("t-flip", "15", "110", at=LATER))

        flipped = position_of(db, book)
        assert (flipped["qty"], flipped["side"], flipped["avg_entry_price"]) == (D("-5"), "short", D("110"))
        assert flipped["realized_pnl"] == D("100")  # (110 - 100) * 10 closed; 5 opened short
        assert flipped["opened_at"] == LATER
        assert cash(db, book) == D("100650")  # 100000 - 1000 + 1650


# --- stale reports -------------------------------------------------------------------------


class TestStaleReports:
    """A report fetched outside any transaction can be older than what the ledger has recorded."""

    def test_an_earlier_report_delivered_after_the_fill_changes_nothing(self, db):
        book = open_book(db)
        req = request("late", BUY, "10")
        new_order(db, book, req)
        first = fill("t-1", "4", "100", at=NOW)
        partial = report(req, PARTIALLY_FILLED, first)
        record(db, book, partial)
        record(db, book, report(req, FILLED, first, fill("t-2", "6", "101", at=LATER)), at=LATER)
        filled = order_of(db, book, "late")

        record(db, book, partial, at=LATEST)  # e.g. reconciliation's snapshot, taken before the fill

        late = order_of(db, book, "late")
        assert (late["status"], late["filled_qty"]) == ("filled", D("10"))
        assert (late["filled_avg_price"], late["filled_at"]) == (
            filled["filled_avg_price"],
            filled["filled_at"],
        )

    def test_an_earlier_report_does_not_move_a_partially_filled_order_back_to_accepted(self, db):
        book = open_book(db)
        req = request("back", BUY, "10", order_type=OrderType.LIMIT, limit_price="100")
        new_order(db, book, req)
        accepted = report(req, ACCEPTED)
        record(db, book, accepted)
        record(db, book, report(req, PARTIALLY_FILLED, fill("t-1", "4", "100")), at=LATER)

        record(db, book, accepted, at=LATEST)  # looked up before the fill, recorded after it

        order = order_of(db, book, "back")
        assert (order["status"], order["filled_qty"]) == ("partially_filled", D("4"))


class TestConcurrentRecording:
    def test_a_report_waiting_for_the_order_lock_sees_the_fills_recorded_meanwhile(self, db):
        import threading

        book = open_book(db)
        req = request("race", BUY, "10")
        new_order(db, book, req)
        implied = report(req, PARTIALLY_FILLED, filled_qty="5", filled_avg_price="100")
        later = report(req, FILLED, filled_qty="10", filled_avg_price="100")
        with db.transaction() as first:  # records 5 while holding the order's row lock
            ledger.record_report(first, book, implied, NOW)
            waiter = threading.Thread(target=record, args=(db, book, later, LATER))
            waiter.start()
            waiter.join(0.5)  # it waits for our lock
            assert waiter.is_alive()
        waiter.join(10)

        assert [f["last_qty"] for f in fills_of(db, book, "race")] == [D("5"), D("5")]
        assert order_of(db, book, "race")["filled_qty"] == D("10")


def test_an_order_refused_before_sending_is_denied_and_notified_like_any_denial(db):
    from dataclasses import replace

    destination = {"id": "d-1", "url_encrypted": "stored", "events": ["order_denied"], "level": "all"}
    book = replace(open_book(db), notification_preferences={"destinations": [destination]})
    order = new_order(db, book, request("unsent-1"))

    with db.transaction() as conn:
        ledger.deny_unsent(conn, book, order, "crypto_time_in_force", "crypto takes gtc or ioc", NOW)

    assert order_of(db, book, "unsent-1")["status"] == "denied"
    with db.transaction() as conn:
        notified = conn.execute(
            "select args from procrastinate_jobs where task_name = 'viewzenix.notify' "
            "and args->>'order_id' = %s",
            (str(order["id"]),),
        ).fetchall()
    assert [(n["args"]["event"], n["args"]["destination_id"]) for n in notified] == [("order_denied", "d-1")]


class TestOneFillsStatements:
    """A fill's writes to our books go out in fewer statements; what they guard stays."""

    def test_a_fill_for_a_config_without_an_account_in_our_books_writes_nothing(self, db):
        # The position and cash are written by one statement that returns the account row: a
        # config whose account was never opened refuses the fill instead of losing its cash.
        book = Book.for_config(make_config(db))  # no ledger.open_account
        req = request("no-account", BUY, "10")
        new_order(db, book, req)
        with pytest.raises(LookupError, match="has no account in our books"):
            record(db, book, report(req, FILLED, fill("t-na", "10", "100")))
        assert fills_of(db, book, "no-account") == []
        assert order_of(db, book, "no-account")["status"] == "pending_new"
        with db.transaction() as conn:
            position = conn.execute(
                "select qty from public.positions where config_id = %s", (book.config_id,)
            ).fetchone()
        assert position is None or position["qty"] == 0

    def test_nothing_of_a_fill_is_written_when_the_account_is_missing(self, db):
        # In the statement itself, not only by the caller's rollback: the fill row waits for the
        # account, and the cash and position for the fill. The LookupError is Python's (the
        # statement succeeded), so the transaction goes on and shows what the statement wrote.
        book = Book.for_config(make_config(db))
        order = new_order(db, book, request("no-account-2", BUY, "10"))
        fill = fill_columns(book, order, "t-na-2", "10", "100")
        with db.transaction() as conn:
            locked = positions_repo.lock(conn, config_id=book.config_id, user_id=book.user_id, symbol="AAPL")
            bought = replace(locked, qty=D("10"), avg_entry_price=D("100"))
            with pytest.raises(LookupError, match="has no account in our books"):
                positions_repo.record_fill_and_save(conn, fill, bought, D("-1000"), D("0"))
            row = conn.execute(
                "select qty from public.positions where config_id = %s and symbol = 'AAPL'",
                (book.config_id,),
            ).fetchone()
            fills = conn.execute(
                "select * from public.fills where config_id = %s", (book.config_id,)
            ).fetchall()
        assert row["qty"] == 0
        assert fills == []

    def test_a_fill_recorded_already_moves_neither_cash_nor_position(self, db):
        book = open_book(db)
        req = request("twice", BUY, "10")
        new_order(db, book, req)
        record(db, book, report(req, FILLED, fill("t-tw", "10", "100")))
        cash_before = cash(db, book)
        again = fill_columns(book, order_of(db, book, "twice"), "t-tw", "10", "100")
        with db.transaction() as conn:
            locked = positions_repo.lock(conn, config_id=book.config_id, user_id=book.user_id, symbol="AAPL")
            doubled = replace(locked, qty=D("20"))
            assert positions_repo.record_fill_and_save(conn, again, doubled, D("-1000"), D("0")) is False
        assert cash(db, book) == cash_before
        assert position_of(db, book, "AAPL")["qty"] == D("10")
        assert len(fills_of(db, book, "twice")) == 1

    def test_a_report_with_no_new_quantity_takes_no_position_lock(self, db, database_url):
        # A report repeating fills already recorded (an order sync, a stream's replay) locks the
        # order only, as before fills were recorded with the position locked up front: it must not
        # wait for (nor deadlock with) a plan holding the position.
        import psycopg

        book = open_book(db)
        req = request("again", BUY, "10")
        trade(db, book, req, fill("t-again", "10", "100"))
        with psycopg.connect(database_url) as holder:
            holder.execute(
                "select * from public.positions where config_id = %s and symbol = 'AAPL' for update",
                (book.config_id,),
            )
            with db.transaction() as conn:
                conn.execute("set local lock_timeout = '300ms'")
                recorded = ledger.record_report(
                    conn, book, report(req, FILLED, fill("t-again", "10", "100")), LATER
                )
            holder.rollback()
        assert recorded is not None and recorded.new_fills == ()
        assert position_of(db, book, "AAPL")["qty"] == D("10")

    def test_a_fills_order_state_and_events_are_recorded_in_order(self, db):
        book = open_book(db)
        req = request("together", BUY, "10")
        new_order(db, book, req)
        record(db, book, report(req, FILLED, fill("t-tg", "10", "100")))
        order = order_of(db, book, "together")
        with db.transaction() as conn:
            events = conn.execute(
                "select event_type, from_status, to_status from public.order_events"
                " where order_id = %s order by id",
                (order["id"],),
            ).fetchall()
        assert order["status"] == "filled" and order["filled_qty"] == D("10")
        assert [(e["from_status"], e["to_status"]) for e in events] == [
            (None, "pending_new"),
            ("pending_new", "submitted"),
            ("submitted", "accepted"),
            ("accepted", "filled"),
        ]
