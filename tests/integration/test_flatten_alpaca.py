"""A flatten on Alpaca while its first exit is still working (accepted, not filled) sends nothing
new: a double click on "Flatten" never sells twice, never goes short."""

from __future__ import annotations

from decimal import Decimal

import pytest
from builders import held, make_config, orders_of, store_signal
from fakes.alpaca_api import KEY_ID, SECRET_KEY, FakeAlpacaApi

from viewzenix.brokers.alpaca import AlpacaBroker, AlpacaCredentials, RequestBudget
from viewzenix.domain.model import Action, Signal
from viewzenix.services.execution import execute_signal
from viewzenix.services.flatten import flatten_config
from viewzenix.services.order_sync import sync_open_orders

pytestmark = pytest.mark.db


def test_a_second_flatten_while_the_first_exit_works_at_alpaca_sends_nothing(app, db):
    fake = FakeAlpacaApi(auto_fill=False)
    fake.set_price("AAPL", "100")
    job_app = app.extensions["viewzenix"].jobs
    config = make_config(db, broker="alpaca", name="alpaca flatten")
    sent_ids = []
    with fake.running():

        def broker(_config=None) -> AlpacaBroker:
            credentials = AlpacaCredentials(KEY_ID, SECRET_KEY, live=False, api_url=fake.url)
            return AlpacaBroker(credentials, timeout=5.0, budget=RequestBudget(10_000))

        def sync() -> None:
            sync_open_orders(db, config_id=config["id"], brokers=broker)

        entry = store_signal(
            db,
            config,
            Signal(ticker="AAPL", action=Action.BUY, quantity=Decimal(4), signal_price=Decimal(100)),
        )
        execute_signal(db, entry, brokers=broker)
        fake.fill(orders_of(db, entry)[0]["client_order_id"])
        sync()
        assert held(db, config) == 4

        first = flatten_config(db, job_app, config["id"])
        [exit_] = first.sent
        sent_ids.append(exit_.signal_id)
        assert execute_signal(db, exit_.signal_id, brokers=broker) == "executed"
        [exit_order] = orders_of(db, exit_.signal_id)
        assert (exit_order["side"], exit_order["qty"], exit_order["status"]) == ("sell", 4, "submitted")
        assert held(db, config) == 4  # Alpaca has not filled it yet

        second = flatten_config(db, job_app, config["id"])

        assert [(s.symbol, s.status, s.signal_id) for s in second.sent] == [
            ("AAPL", "already_closing", exit_.signal_id)
        ]
        fake.fill(exit_order["client_order_id"])
        sync()
        assert held(db, config) == 0
        assert flatten_config(db, job_app, config["id"]).sent == ()
        assert [o.side for o in fake.orders_of("AAPL")] == ["buy", "sell"]  # sold once
    with db.transaction() as conn:  # the deferred jobs were run by hand above
        conn.execute(
            "delete from procrastinate_jobs where args ->> 'signal_id' = any(%s)",
            ([str(i) for i in sent_ids],),
        )
