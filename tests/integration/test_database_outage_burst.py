"""Concurrent alerts during a database outage: each answered 503 at once, none held on the pool.

A throwaway Postgres cluster serves the app behind a real threaded HTTP server; the cluster is
stopped and 20 alerts are sent at once (a bar close), then 20 more. Every answer must be 503
``database_unavailable`` with ``Retry-After``; and once the database is known down, requests do
not wait on the pool: the second burst, sent once the first has opened the breaker, reaches it at
most once (a re-probe per ``DB_OUTAGE_REPROBE_SECONDS``). Without the breaker each of the 40 waited its
``DB_POOL_TIMEOUT_SECONDS`` (40 pool timeouts), holding a gunicorn worker each time. The
latency itself is measured by ``scripts/bench_outage.py``, not asserted here.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from test_database_outage import cluster_under
from werkzeug.serving import make_server

import config as config_module
from viewzenix.db.migrate import apply_migrations

pytestmark = pytest.mark.db
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def cluster():
    yield from cluster_under("outage-burst")


@pytest.fixture()
def served(cluster):
    """The app on the cluster behind a threaded HTTP server: ``(base_url, app, webhook_path)``."""
    from viewzenix import create_app
    from viewzenix.cli import ensure_local_user

    apply_migrations(cluster.url)
    app = create_app(
        config_module.TestingConfig(
            {
                "DATABASE_URL": cluster.url,
                "DATA_DIR": str(cluster.pgdata.parent / "data"),
                "RECONCILE_CRON": "",
                "DB_OUTAGE_REPROBE_SECONDS": "5",  # one re-probe at most during the test's bursts
                "WEBHOOK_FAILED_AUTH_LIMIT": "",
            }
        )
    )
    runtime = app.extensions["viewzenix"]
    user_id = ensure_local_user(runtime.db, "burst@example.test")
    headers = {"Authorization": f"Bearer {runtime.local_signer.issue(user_id, 'burst@example.test')}"}
    config = (
        app.test_client()
        .post("/api/webhook-configs", json={"name": "burst", "max_signal_age_seconds": None}, headers=headers)
        .json
    )
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", app, f"/webhooks/{config['id']}/{config['token']}"
    server.shutdown()
    runtime.close()


def send_burst(base: str, path: str, count: int) -> list[requests.Response]:
    def one(n: int) -> requests.Response:
        body = {"ticker": f"BURST{n}", "action": "buy", "price": 10}
        return requests.post(base + path, json=body, timeout=30)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def test_concurrent_alerts_during_an_outage_are_each_answered_503_without_waiting_on_the_pool(
    cluster, served
):
    base, app, path = served
    pool = app.extensions["viewzenix"].db.pool
    assert send_burst(base, path, 1)[0].status_code == 200  # up: accepted
    cluster.stop()
    pool.pop_stats()
    answers = send_burst(base, path, 20)
    first = pool.pop_stats()
    answers += send_burst(base, path, 20)
    second = pool.pop_stats()
    assert [a.status_code for a in answers] == [503] * 40
    assert {a.json()["code"] for a in answers} == {"database_unavailable"}
    assert all(a.headers["Retry-After"] == "5" for a in answers)
    # The first burst arrives before anything is known: the requests already on their way when the
    # first one fails may still reach the pool (how many depends on scheduling; 1–5 seen here).
    # Once the breaker is open, the second burst does not wait on the pool at all (one re-probe at
    # most, should the 5 s window pass). Without the breaker all 20 of it did.
    assert second.get("requests_num", 0) <= 1, second
    assert first.get("requests_num", 0) < 20, first
    health = requests.get(base + "/healthz", timeout=30)
    assert (health.status_code, health.json()["code"]) == (503, "database_unavailable")

    cluster.start()
    deadline = time.monotonic() + 60  # a bound on recovery, not a speed figure
    while True:
        answer = send_burst(base, path, 1)[0]
        if answer.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert answer.status_code == 200, answer.text
