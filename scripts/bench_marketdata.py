"""Measure bars pushed over HTTP: ack latency, bars applied per second, bar-to-fill latency.

    make bench-marketdata       # .venv/bin/python scripts/bench_marketdata.py
    .venv/bin/python scripts/bench_marketdata.py --configs 5 --symbols 100 --rounds 3

A fresh stack (``scripts/stack.py``: embedded Postgres, gunicorn, one worker process with
``WORKER_CONCURRENCY`` = ``--concurrency``). Setup: ``--configs`` paper configs, each trading
``--symbols`` symbols; per symbol one bracket alert (buy 1 @ 100, stop loss 90, take profit 110)
whose entry fills and whose two legs rest: configs × symbols × 2 resting orders (1,000 by
default).

Then, measured:
1. ``--rounds`` rounds of one-minute bars for every (config, symbol), inside 99..101 (nothing
   fills; every resting leg is checked), sent while the worker is stopped: ack latency of each
   bar POST (client side, p50/p99; the setup's alerts are sent the same way, for comparison);
   then the worker starts and drains them: bars applied per second = (bars − 1) ÷ (last
   ``applied_at`` − first ``applied_at``), server clock.
2. One round of bars whose high crosses the take profit: every bracket fills (and its stop is
   canceled, OCO); bar-to-fill latency = the bar's ``applied_at`` (the transaction that records
   its fills in our books) − its ``received_at``.

Figures on this machine are measured while other work runs: say so next to them.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import requests
from benchkit import percentile
from psycopg.rows import dict_row
from stack import running_stack

START = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
SETTINGS = {
    "starting_cash": "100000000",
    "time_in_force": "gtc",
    "quantity_type": "fixed_quantity",
    "quantity": "1",
    "max_signal_age_seconds": None,
}


def post_all(session: requests.Session, items: list[tuple[str, str]]) -> list[float]:
    """POST each (url, body) in order; return the latencies in ms. Raises on a non-200."""
    latencies = []
    for url, body in items:
        started = time.perf_counter()
        response = session.post(
            url, data=body.encode(), headers={"Content-Type": "application/json"}, timeout=30
        )
        latencies.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}: {response.text[:300]}")
    return latencies


def bar(symbol: str, minute: int, o: str, h: str, low: str, c: str) -> str:
    moment = START + timedelta(minutes=minute)
    return json.dumps(
        {
            "type": "bar",
            "ticker": symbol,
            "interval": "1",
            "time": moment.isoformat().replace("+00:00", "Z"),
            "open": o,
            "high": h,
            "low": low,
            "close": c,
            "volume": "100",
        }
    )


def wait_until(conn: psycopg.Connection, query: str, expected: int, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        done = conn.execute(query).fetchone()["n"]
        if done >= expected:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: {done} of {expected} after {timeout:.0f} s")
        time.sleep(0.2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", type=int, default=5)
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=4, help="WORKER_CONCURRENCY of the one worker")
    parser.add_argument("--timeout", type=float, default=1800.0)
    args = parser.parse_args(argv)
    symbols = [f"BM{n:03d}" for n in range(args.symbols)]

    env = {"WORKER_CONCURRENCY": str(args.concurrency)}
    with running_stack("bench-marketdata", settings=SETTINGS, extra_env=env) as stack:
        print(f"stack up: {stack.base_url}; log {stack.log_path}")
        api = requests.Session()
        api.headers["Authorization"] = f"Bearer {stack.access_token}"
        urls = [stack.webhook_url]
        for n in range(1, args.configs):
            created = api.post(
                f"{stack.base_url}/api/webhook-configs", json={"name": f"bench-{n}", **SETTINGS}
            )
            created.raise_for_status()
            data = created.json()
            urls.append(data["webhook_url"])
        db = psycopg.connect(stack.database_url, autocommit=True, row_factory=dict_row)
        session = requests.Session()

        # Setup: one bracket per (config, symbol): the entry fills, two legs rest.
        alerts = [
            (
                url,
                json.dumps(
                    {
                        "ticker": s,
                        "action": "buy",
                        "price": "100",
                        "stopLoss": {"stopPrice": "90"},
                        "takeProfit": {"limitPrice": "110"},
                    }
                ),
            )
            for url in urls
            for s in symbols
        ]
        stack.stop("worker")  # acks measured with the queue filling up and no job running
        alert_ms = post_all(session, alerts)
        stack.start_worker()
        resting = 2 * len(alerts)
        wait_until(
            db,
            "select count(*) as n from public.orders where status = 'accepted' and purpose <> 'entry'",
            resting,
            args.timeout,
            "resting legs",
        )
        print(f"setup: {len(alerts)} bracket alerts, {resting} resting legs")

        # 1. Bars that fill nothing.
        items = [
            (url, bar(s, minute, "100", "101", "99", "100.5"))
            for minute in range(args.rounds)
            for url in urls
            for s in symbols
        ]
        stack.stop("worker")
        started = time.monotonic()
        bar_ms = post_all(session, items)
        sent_s = time.monotonic() - started
        stack.start_worker()
        wait_until(
            db,
            "select count(*) as n from public.bars where status = 'applied'",
            len(items),
            args.timeout,
            "bars applied",
        )
        # The drain: from the first bar applied to the last (n - 1 intervals), server clock.
        window = db.execute(
            "select extract(epoch from max(applied_at) - min(applied_at)) as s from public.bars"
        ).fetchone()["s"]
        applied_per_s = (len(items) - 1) / float(window)

        # 2. Bars that cross every take profit.
        crossing = [
            (url, bar(s, args.rounds, "100.5", "111", "100", "110.5")) for url in urls for s in symbols
        ]
        cross_ms = post_all(session, crossing)
        total = len(items) + len(crossing)
        wait_until(
            db,
            "select count(*) as n from public.bars where status = 'applied'",
            total,
            args.timeout,
            "crossing bars",
        )
        fill_ms = [
            float(r["ms"])
            for r in db.execute(
                "select extract(epoch from applied_at - received_at) * 1000 as ms from public.bars"
                " where bar_at = %s",
                (START + timedelta(minutes=args.rounds),),
            ).fetchall()
        ]
        filled = db.execute(
            "select count(*) as n from public.orders where purpose = 'take_profit' and status = 'filled'"
        ).fetchone()["n"]
        canceled = db.execute(
            "select count(*) as n from public.orders where purpose = 'stop_loss' and status = 'canceled'"
        ).fetchone()["n"]

    rows: list[tuple[str, Any]] = [
        (
            "order alert ack p50 / p99 [ms]",
            f"{percentile(alert_ms, 50):.1f} / {percentile(alert_ms, 99):.1f}",
        ),
        ("bar ack p50 / p99 [ms]", f"{percentile(bar_ms, 50):.1f} / {percentile(bar_ms, 99):.1f}"),
        ("bars sent / send rate [1/s]", f"{len(items)} / {len(items) / sent_s:.0f}"),
        ("bars applied per second (queued, drained)", f"{applied_per_s:.1f}"),
        (
            "crossing bar ack p50 / p99 [ms]",
            f"{percentile(cross_ms, 50):.1f} / {percentile(cross_ms, 99):.1f}",
        ),
        ("bar-to-fill p50 / p99 [ms]", f"{percentile(fill_ms, 50):.0f} / {percentile(fill_ms, 99):.0f}"),
        ("take profits filled / stops canceled", f"{filled} / {canceled} (expected {len(crossing)} each)"),
    ]
    print(
        f"\n{args.configs} configs x {args.symbols} symbols, {resting} resting orders, one worker "
        f"(concurrency {args.concurrency}); a shared 2-core machine, loaded by other work"
    )
    width = max(len(r[0]) for r in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {value}")
    return 0 if filled == canceled == len(crossing) else 1


if __name__ == "__main__":
    raise SystemExit(main())
