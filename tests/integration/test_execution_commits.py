"""Which of the signal job's commits may return before their WAL flush (docs/scaling.md).

With the paper broker, whose books share our server and so our WAL, every transaction of the job
(and of the exchange) commits with ``synchronous_commit = off``: a crash of Postgres loses a
suffix of them, the state a crash of the worker leaves. With any other broker (Alpaca, outside our
WAL) none does: an order is durably PENDING_NEW before it is sent.
"""

from __future__ import annotations

from contextlib import contextmanager
from decimal import Decimal

import pytest
from builders import NOW, make_config, store_signal
from fake_broker import FakeBroker

from viewzenix.domain.model import Action, Signal
from viewzenix.services import execution

pytestmark = pytest.mark.db

BUY = Signal(ticker="AAPL", action=Action.BUY, quantity=Decimal(10), signal_price=Decimal(100))


def _settings_at_commit(db, monkeypatch, **kwargs) -> list[str]:  # type: ignore[no-untyped-def]
    """Run one buy; return ``synchronous_commit`` as each of the job's own transactions ends.

    Read just before the COMMIT: in the block of last statements that carries it
    (``ending_transaction``), else once the transaction's block is done.
    """
    from viewzenix.repositories import execution_reads

    seen: list[str] = []
    real, real_ending = execution._Execution._transaction, execution.ending_transaction

    def read(conn) -> None:  # type: ignore[no-untyped-def]
        seen.append(conn.execute("show synchronous_commit").fetchone()["synchronous_commit"])

    def spying(self):  # type: ignore[no-untyped-def]
        with real(self) as conn:
            yield conn
            if not getattr(conn, "ended", False):
                read(conn)

    def spying_ending(conn):  # type: ignore[no-untyped-def]
        with real_ending(conn):
            read(conn)
            yield

    monkeypatch.setattr(execution._Execution, "_transaction", contextmanager(spying))
    monkeypatch.setattr(execution, "ending_transaction", contextmanager(spying_ending))
    monkeypatch.setattr(execution_reads, "ending_transaction", contextmanager(spying_ending))
    config = make_config(db)
    status = execution.execute_signal(db, store_signal(db, config, BUY), clock=lambda: NOW, **kwargs)
    assert status == "executed"
    return seen


def test_with_the_paper_broker_the_jobs_commits_do_not_wait_for_the_flush(db, monkeypatch):
    seen = _settings_at_commit(db, monkeypatch)
    assert seen and set(seen) == {"off"}


def test_with_a_broker_outside_our_wal_every_commit_waits_for_the_flush(db, monkeypatch):
    broker = FakeBroker()
    seen = _settings_at_commit(db, monkeypatch, brokers=lambda config: broker)
    assert seen and set(seen) == {"on"}


def test_the_paper_exchange_commits_without_waiting_for_the_flush(db):
    from viewzenix.brokers.simulated import SimulatedBroker

    config = make_config(db)
    broker = SimulatedBroker.for_config(db, config)
    with broker._transaction() as conn:
        assert conn.execute("show synchronous_commit").fetchone()["synchronous_commit"] == "off"
    with db.transaction() as conn:  # ours, on the same pool: untouched
        assert conn.execute("show synchronous_commit").fetchone()["synchronous_commit"] == "on"
