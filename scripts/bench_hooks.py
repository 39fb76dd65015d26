"""Benchmark of POST /hooks/supabase/db: p50/p95/p99 latency and sustained events/s.

Runs the app under gunicorn on loopback (``scripts/stack.py``, no job worker) with WEBHOOK_SECRET
set, then for ``--seconds`` keeps ``--connections`` closed-loop clients posting signed
(x-hmac-sha256) ``public.user_symbols`` events: a mix of INSERT (70 %), UPDATE (20 %) and DELETE
(10 %) of distinct watchers, each with a newer ``updated_at``. Prints client-side latency
percentiles, events/s, the server-side latencies recorded in ``private.hook_events``, and the
outcome counts (every event must be applied). ``make bench-hooks`` ≡ this script.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import statistics
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import requests
from benchkit import percentile
from stack import running_stack

SECRET = "bench-secret"


def event(op: str, user_id: str, symbol: str, n: int) -> bytes:
    row = {
        "id": str(uuid.uuid4()),
        "user_id": user_id,
        "symbol": symbol,
        "timeframe": "1h",
        "strategy": {"n": n},
        "active": True,
        "updated_at": datetime.now(UTC).isoformat(),
    }
    body = {
        "type": op,
        "table": "user_symbols",
        "schema": "public",
        "record": None if op == "DELETE" else row,
        "old_record": None if op == "INSERT" else row,
    }
    return json.dumps(body).encode()


def client(url: str, stop_at: float, latencies: list[float], errors: list[str], seed: int) -> None:
    session = requests.Session()
    user_id = str(uuid.uuid4())
    n = 0
    live: list[str] = []
    while time.perf_counter() < stop_at:
        n += 1
        roll = n % 10
        if roll < 7 or not live:
            symbol = f"S{seed}X{n}"
            op = "INSERT"
            live.append(symbol)
        elif roll < 9:
            op, symbol = "UPDATE", live[-1]
        else:
            op, symbol = "DELETE", live.pop()
        raw = event(op, user_id, symbol, n)
        signature = hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
        started = time.perf_counter()
        response = session.post(url, data=raw, headers={"x-hmac-sha256": signature})
        latencies.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200 or response.json().get("outcome") != "applied":
            errors.append(f"{response.status_code} {response.text[:200]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--web-concurrency", type=int, default=None)
    args = parser.parse_args()
    with running_stack(
        "bench_hooks",
        worker=False,
        web_concurrency=args.web_concurrency,
        extra_env={"WEBHOOK_SECRET": SECRET, "LOG_LEVEL": "WARNING", "SYNC_CHECK_CRON": ""},
    ) as stack:
        url = f"http://127.0.0.1:{stack.port}/hooks/supabase/db"
        # Warm-up: every gunicorn worker opens its pool.
        warm: list[float] = []
        client(url, time.perf_counter() + 2, warm, [], seed=999)
        latencies: list[float] = []
        errors: list[str] = []
        stop_at = time.perf_counter() + args.seconds
        cpu0 = time.process_time()
        threads = [
            threading.Thread(target=client, args=(url, stop_at, latencies, errors, i))
            for i in range(args.connections)
        ]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu0
        import psycopg

        with psycopg.connect(stack.database_url) as conn:
            server = conn.execute(
                "select count(*), percentile_cont(array[0.5, 0.95, 0.99]) within group (order by latency_ms) "
                "from private.hook_events where outcome = 'applied'"
            ).fetchone()
            outcomes = dict(
                conn.execute("select outcome, count(*) from private.hook_events group by 1").fetchall()
            )
    print(f"POST /hooks/supabase/db, {args.connections} connections, {elapsed:.1f} s, gunicorn on loopback")
    print(f"  events: {len(latencies)} ({len(latencies) / elapsed:.0f} events/s), errors: {len(errors)}")
    print(
        f"  client latency ms: p50 {percentile(latencies, 50):.1f}, p95 {percentile(latencies, 95):.1f}, "
        f"p99 {percentile(latencies, 99):.1f}, mean {statistics.fmean(latencies):.1f}"
    )
    p = server[1] or [0, 0, 0]
    print(f"  server latency ms (hook_events): p50 {p[0]:.2f}, p95 {p[1]:.2f}, p99 {p[2]:.2f}")
    print(f"  outcomes recorded: {outcomes}")
    print(f"  load generator CPU: {cpu / elapsed * 100:.0f} % of one core")
    for e in errors[:5]:
        print("  error:", e)
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
