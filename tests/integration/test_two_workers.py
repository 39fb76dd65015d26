"""Two real worker processes on one database: every job runs once, and each symbol's jobs keep their order.

Signals alternate buy 10 / sell to flat per symbol, so a sell run before its buy would find the
position flat and place nothing: running out of order, or twice, changes the orders we count.
Which worker ran a signal is read from its JSON log line (``action: signal_executed``).
"""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import pytest
from builders import add_signal, make_config
from worker_processes import start_worker, stop, wait_for

from viewzenix.domain.model import Action, Sentiment, Signal
from viewzenix.jobs import build_job_app, defer_execute_signal

pytestmark = pytest.mark.db
SYMBOLS = ("TWO_A", "TWO_B", "TWO_C")  # fewer than the 4 job slots: a symbol's jobs would overlap
PER_SYMBOL = 30


def logged(path, action: str) -> list[dict]:
    entries = []
    for line in path.read_text().splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("action") == action:
                entries.append(entry)
    return entries


def test_two_workers_run_each_signal_once_and_each_symbols_signals_in_order(db, database_url, tmp_path):
    config = make_config(db, name="two-workers")
    logs = [tmp_path / "worker-1.log", tmp_path / "worker-2.log"]
    files = [path.open("ab") for path in logs]
    env = {"WORKER_CONCURRENCY": "2", "LOG_FORMAT": "json"}
    workers = [start_worker(database_url, tmp_path, log, env) for log in files]
    try:
        wait_for(lambda: all(logged(p, "start_worker") for p in logs), 30, "both workers to start")
        # Every signal stored with its job, as intake does, in one transaction: all become due at
        # once, so both workers (two jobs at a time each) compete for them.
        sequence: dict[str, list] = {symbol: [] for symbol in SYMBOLS}
        job_app = build_job_app(database_url)
        with db.transaction() as conn:
            for k in range(PER_SYMBOL):  # interleaved over symbols, as alerts arrive
                for symbol in SYMBOLS:
                    buy = k % 2 == 0
                    signal = Signal(
                        ticker=symbol,
                        action=Action.BUY if buy else Action.SELL,
                        sentiment=Sentiment.LONG if buy else Sentiment.FLAT,
                        quantity=Decimal(10),
                        signal_price=Decimal(100 + k),
                    )
                    signal_id = uuid.uuid4()
                    job_id = defer_execute_signal(
                        job_app, conn, signal_id=signal_id, config_id=config["id"], symbol=symbol
                    )
                    add_signal(conn, config, signal, signal_id=signal_id, job_id=job_id)
                    sequence[symbol].append(signal_id)

        def all_done() -> bool:
            with db.transaction() as conn:
                return not conn.execute(
                    "select 1 from public.signals where config_id = %s "
                    "and status in ('accepted', 'submitting')",
                    (config["id"],),
                ).fetchone()

        wait_for(all_done, 120, "every signal to be executed")
    finally:
        codes = [stop(worker) for worker in workers]
        for log in files:
            log.close()

    assert codes == [0, 0]
    with db.transaction() as conn:
        signals = {
            r["id"]: r
            for r in conn.execute(
                "select id, status, processed_at from public.signals where config_id = %s", (config["id"],)
            )
        }
        orders = conn.execute(
            "select signal_id, symbol, side, status, created_at from public.orders "
            "where config_id = %s order by created_at, id",
            (config["id"],),
        ).fetchall()
        at_broker = conn.execute(
            "select count(*) as n from paper.orders where config_id = %s", (config["id"],)
        ).fetchone()["n"]
        positions = {
            r["symbol"]: r["qty"]
            for r in conn.execute(
                "select symbol, qty from public.positions where config_id = %s", (config["id"],)
            )
        }

    total = len(SYMBOLS) * PER_SYMBOL
    assert {s["status"] for s in signals.values()} == {"executed"}
    # Each signal placed exactly one order, filled once, and the broker holds exactly those.
    assert sorted(str(o["signal_id"]) for o in orders) == sorted(str(i) for i in signals)
    assert {o["status"] for o in orders} == {"filled"}
    assert at_broker == total
    assert positions == {symbol: Decimal(0) for symbol in SYMBOLS}  # ended flat: buy, sell, ..., sell
    # Per symbol: orders in the signals' order; each signal's job began after the previous one ended.
    for symbol in SYMBOLS:
        ran = [o for o in orders if o["symbol"] == symbol]
        assert [o["signal_id"] for o in ran] == sequence[symbol]
        assert [o["side"] for o in ran] == ["buy", "sell"] * (PER_SYMBOL // 2)
        for previous, following in zip(sequence[symbol], ran[1:], strict=False):
            assert signals[previous]["processed_at"] <= following["created_at"]
    # Each signal was executed by one worker, once; both workers took part.
    ran_by = [{e["signal_id"] for e in logged(path, "signal_executed")} for path in logs]
    mine = {str(i) for i in signals}
    ran_by = [ids & mine for ids in ran_by]
    assert ran_by[0].isdisjoint(ran_by[1])
    assert ran_by[0] | ran_by[1] == mine
    assert all(ran_by), f"one worker ran none of the {total} signals: {[len(r) for r in ran_by]}"
    assert sum(len(logged(path, "signal_already_processed")) for path in logs) == 0
