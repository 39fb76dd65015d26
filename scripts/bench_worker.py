"""Measure the job worker's throughput on a backlog: queued signals executed per second.

    make bench-worker            # .venv/bin/python scripts/bench_worker.py
    .venv/bin/python scripts/bench_worker.py --alerts 2000 --symbols 50 --concurrency 4

With the worker stopped, ``--alerts`` market alerts (alternating buy/sell per symbol, round robin
over ``--symbols``) are POSTed to the intake; then one worker process (``python -m
viewzenix.worker``, ``WORKER_CONCURRENCY=--concurrency``) starts and the script times how long it
takes until no signal is left ``accepted``. It prints jobs/s over that whole drain. A backlog is
where a queue's fetch cost shows: procrastinate's per-lock look-up used to walk every earlier
queued job (see migrations/20261121090300_procrastinate_lock_lookup_index.sql).
"""

from __future__ import annotations

import argparse
import time

import psycopg
import requests
from stack import running_stack


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=2000)
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=4, help="WORKER_CONCURRENCY of the worker")
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()

    with running_stack(
        "bench-worker", worker=False, extra_env={"WORKER_CONCURRENCY": str(args.concurrency)}
    ) as stack:
        session = requests.Session()
        for i in range(args.alerts):
            buy = (i // args.symbols) % 2 == 0
            alert = {
                "ticker": f"S{i % args.symbols:03d}",
                "action": "buy" if buy else "sell",
                "sentiment": "long" if buy else "flat",
                "quantity": "10",
                "price": "100.50",
                "extras": {"n": i},  # unique: a repeated body within 60 s would be a duplicate
            }
            response = session.post(stack.webhook_url, json=alert, timeout=10)
            response.raise_for_status()
        with psycopg.connect(stack.database_url, autocommit=True) as conn:
            started = time.perf_counter()
            stack.start_worker()
            while True:
                left = conn.execute(
                    "select count(*) from signals where status in ('accepted', 'submitting')"
                ).fetchone()[0]
                elapsed = time.perf_counter() - started
                if left == 0:
                    break
                if elapsed > args.timeout:
                    raise SystemExit(f"{left} signals still queued after {args.timeout:.0f} s")
                stack.check_alive()
                time.sleep(0.05)
            statuses = dict(conn.execute("select status, count(*) from signals group by status").fetchall())
    print(
        f"worker drain: {args.alerts} queued signals ({args.symbols} symbols, one config), "
        f"1 worker process × concurrency {args.concurrency}"
    )
    print(f"  {args.alerts / elapsed:.0f} jobs/s  ({elapsed:.2f} s including worker start-up)  {statuses}")


if __name__ == "__main__":
    main()
