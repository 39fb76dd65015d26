"""Time the cron-driven runner: what one call of POST /api/jobs/run costs, empty and full.

    .venv/bin/python scripts/bench_runner.py [--signals 50] [--calls 5]

Through the real endpoint (the Flask app in process, the runner secret, no gunicorn): first
``--calls`` calls with nothing due (the fixed cost of a call: a procrastinate pool opened and
closed, the worker registered, periodic ticks checked), then ``--signals`` paper-broker buy
signals on as many symbols, deferred as intake does, run by one call (limit = signals). Uses
DATABASE_URL's server when set, else an embedded Postgres under .data/bench-runner; a fresh
database each run. Prints milliseconds per call and signals per second.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


from benchkit import fresh_database as fresh_scratch_database  # noqa: E402

import config as app_config  # noqa: E402
from viewzenix import create_app  # noqa: E402
from viewzenix.domain.model import Action, Signal  # noqa: E402
from viewzenix.domain.parsing import signal_to_dict  # noqa: E402
from viewzenix.jobs import defer_execute_signal  # noqa: E402
from viewzenix.repositories import signals as signals_repo  # noqa: E402
from viewzenix.repositories import webhook_configs as configs_repo  # noqa: E402

DB_NAME = "viewzenix_bench_runner"
SECRET = "bench-runner-secret-" + "0" * 32


def fresh_database() -> tuple[str, object]:
    url, handle = fresh_scratch_database(DB_NAME, ROOT / ".data" / "bench-runner")
    return url, handle


def enqueue(runtime, config_row: dict, count: int) -> None:
    with runtime.db.transaction() as conn:
        for i in range(count):
            signal = Signal(ticker=f"B{i:04d}", action=Action.BUY, quantity=1, signal_price=100)
            signal_id = uuid.uuid4()
            job_id = defer_execute_signal(
                runtime.jobs, conn, signal_id=signal_id, config_id=config_row["id"], symbol=signal.ticker
            )
            data = signal_to_dict(signal)
            signals_repo.insert(
                conn,
                signal_id=signal_id,
                user_id=config_row["user_id"],
                config_id=config_row["id"],
                status="accepted",
                raw_body="{}",
                content_type="application/json",
                source_ip=None,
                signal=data,
                ticker=data["ticker"],
                action=data["action"],
                job_id=job_id,
            )


def call(client, limit: int) -> tuple[float, dict]:
    started = time.perf_counter()
    response = client.post(
        "/api/jobs/run", headers={"Authorization": f"Bearer {SECRET}"}, json={"limit": limit}
    )
    elapsed = (time.perf_counter() - started) * 1000
    assert response.status_code == 200, response.get_data(as_text=True)
    return elapsed, response.get_json()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signals", type=int, default=50)
    parser.add_argument("--calls", type=int, default=5)
    args = parser.parse_args()
    url, _handle = fresh_database()
    config = app_config.TestingConfig(
        {
            "DATABASE_URL": url,
            "DATA_DIR": tempfile.mkdtemp(prefix="bench-runner-"),
            "JOB_QUEUE_RUNNER_SECRET": SECRET,
            "RECONCILE_CRON": "",
            "LOG_LEVEL": "WARNING",
        }
    )
    app = create_app(config)
    runtime = app.extensions["viewzenix"]
    client = app.test_client()
    user_id = uuid.uuid4()
    with runtime.db.transaction() as conn:
        configs_repo.ensure_user(conn, user_id, "bench@example.test")
        config_row = configs_repo.insert(
            conn, user_id=user_id, token_hash=os.urandom(32), token_hint="bench", values={"name": "bench"}
        )
    call(client, 1000)  # the periodic ticks due now, so the empty calls below find nothing
    empty = [call(client, 1000) for _ in range(args.calls)]
    enqueue(runtime, config_row, args.signals)
    full_ms, body = call(client, args.signals)
    results = body["results"]
    executed = sum(r["task"] == "viewzenix.execute_signal" and r["status"] == "succeeded" for r in results)
    empty_ms = statistics.median(e for e, _ in empty)
    in_jobs = sum(r["duration_ms"] for r in results)
    median_job = statistics.median(r["duration_ms"] for r in results)
    print(f"empty call (nothing due), {args.calls} calls: median {empty_ms:.1f} ms")
    print(
        f"one call, {args.signals} due signals: {full_ms:.0f} ms, {executed} executed "
        f"({executed / (full_ms / 1000):.0f} signals/s), stopped by {body['stopped_by']}"
    )
    print(f"  of which inside the jobs: {in_jobs:.0f} ms (median job {median_job:.1f} ms)")
    app.extensions["viewzenix"].close()


if __name__ == "__main__":
    main()
