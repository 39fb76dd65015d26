"""Measure how long a notification takes to reach the service after its event.

``.venv/bin/python scripts/bench_notify.py`` (``--alerts``, ``--rate``) starts a fresh stack
(``scripts/stack.py``: Postgres in ``.data/bench-notify``, gunicorn, the job worker) and a fake
ntfy server on a local port (``POST /`` JSON publish, as docs.ntfy.sh documents; the stack gets
``NOTIFY_ALLOW_PRIVATE_HOSTS`` naming only that address). Its config has ``max_position_qty`` 1
and one destination wanting ``order_denied``; every alert asks for 10 shares, so every alert
gives one denied order and one notification. The fake stamps each message when it arrives
(``time.time()``, same host clock as Postgres); the script reads each denied order's
``created_at`` (its event) and its signal's ``received_at`` (intake) from the database and
prints p50/p95/max of event → fake and alert → fake. Goal: p95 event → fake ≤ 1 s.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchkit import percentile
from stack import running_stack

ARRIVALS: dict[str, float] = {}  # client_order_id -> arrival time (epoch seconds)


class FakeNtfy(BaseHTTPRequestHandler):
    """ntfy's JSON publish endpoint: ``POST /`` with ``{"topic", "title", "message"}``."""

    def do_POST(self) -> None:
        arrived = time.time()
        payload = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        found = re.search(r"client_order_id (\S+)", payload.get("message", ""))
        if found:
            ARRIVALS[found.group(1)] = arrived
        body = json.dumps(
            {
                "id": str(len(ARRIVALS)),
                "time": int(arrived),
                "event": "message",
                "topic": payload.get("topic"),
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alerts", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20.0, help="alerts per second (open loop)")
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args(argv)

    fake = ThreadingHTTPServer(("127.0.0.1", 0), FakeNtfy)
    threading.Thread(target=fake.serve_forever, daemon=True).start()
    address = f"127.0.0.1:{fake.server_address[1]}"
    settings = {"max_position_qty": "1", "max_signal_age_seconds": None}
    with running_stack(
        "bench-notify", settings=settings, extra_env={"NOTIFY_ALLOW_PRIVATE_HOSTS": address}
    ) as stack:
        headers = {"Authorization": f"Bearer {stack.access_token}"}
        destination = {"url": f"ntfy://{address}/bench", "events": ["order_denied"]}
        response = requests.patch(
            f"{stack.base_url}/api/webhook-configs/{stack.config_id}",
            json={"notification_preferences": {"destinations": [destination]}},
            headers=headers,
            timeout=30,
        )
        response.raise_for_status()
        interval = 1.0 / args.rate
        start = time.monotonic()
        for i in range(args.alerts):
            time.sleep(max(0.0, start + i * interval - time.monotonic()))
            alert = {
                "ticker": f"N{i % 50:03d}",
                "action": "buy",
                "quantity": "10",
                "price": "100",
                "id": f"n{i}",
            }
            requests.post(stack.webhook_url, json=alert, timeout=10).raise_for_status()
        deadline = time.monotonic() + args.timeout
        while len(ARRIVALS) < args.alerts and time.monotonic() < deadline:
            time.sleep(0.2)
        with psycopg.connect(stack.database_url) as conn:
            rows = conn.execute(
                "select o.client_order_id, extract(epoch from o.created_at),"
                " extract(epoch from s.received_at) from orders o join signals s on s.id = o.signal_id"
                " where o.status = 'denied'"
            ).fetchall()
    fake.shutdown()
    event_ms = [(ARRIVALS[c] - float(e)) * 1000 for c, e, _ in rows if c in ARRIVALS]
    alert_ms = [(ARRIVALS[c] - float(r)) * 1000 for c, _, r in rows if c in ARRIVALS]
    print(
        f"notifications: {len(ARRIVALS)} of {args.alerts} alerts ({len(rows)} denied orders) at {args.rate}/s"
    )
    if not event_ms:
        print("no notification arrived")
        return 0
    for label, values in (("denied order recorded → fake", event_ms), ("alert received → fake", alert_ms)):
        print(
            f"  {label:<30} p50 {statistics.median(values):8.1f} ms  p95 {percentile(values, 95):8.1f} ms"
            f"  max {max(values):8.1f} ms"
        )
    verdict = "PASS" if percentile(event_ms, 95) <= 1000 else "MISS"
    print(f"goal p95 event → fake ≤ 1000 ms: {verdict} (reported only)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
