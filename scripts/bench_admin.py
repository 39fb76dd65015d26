"""Time the job queue's admin reads on a large queue: metrics, list pages, one job's detail.

    .venv/bin/python scripts/bench_admin.py [--jobs 200000]

Fills a fresh database with ``--jobs`` finished signal jobs (one in twenty failed) and one
recorded run each, spread over the last two hours, then times each admin service call (the
HTTP layer adds little: serialisation of at most 200 rows). Uses DATABASE_URL's server when set,
else an embedded Postgres under .data/bench-admin. Prints milliseconds per call (median, min,
max) and per metrics query.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from benchkit import fresh_database as fresh_scratch_database  # noqa: E402

from viewzenix.db import Database  # noqa: E402
from viewzenix.repositories import jobs as jobs_repo  # noqa: E402
from viewzenix.services import job_admin  # noqa: E402
from viewzenix.services.common import Caller  # noqa: E402

DB_NAME = "viewzenix_bench_admin"

FILL_JOBS = """
insert into procrastinate_jobs (queue_name, task_name, lock, args, status, attempts)
select 'signals', 'viewzenix.execute_signal', 'signal:bench:' || (i %% 50),
       jsonb_build_object('signal_id', gen_random_uuid()), 'todo', 0
from generate_series(1, %(jobs)s) i
"""
FINISH_JOBS = """
update procrastinate_jobs
set status = (case when id % 20 = 0 then 'failed' else 'succeeded' end)::procrastinate_job_status,
    attempts = 1
"""
FILL_ATTEMPTS = """
insert into private.job_attempts
    (job_id, attempt, task_name, started_at, finished_at, duration_ms, outcome, error_type, error)
select id, 1, task_name, now() - random() * interval '2 hours', now(), 20, status::text,
       case when status = 'failed' then 'RuntimeError' end,
       case when status = 'failed' then 'the broker said no' end
from procrastinate_jobs
"""


def fresh_database(jobs: int) -> tuple[str, object]:
    url, handle = fresh_scratch_database(DB_NAME, ROOT / ".data" / "bench-admin")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(FILL_JOBS, {"jobs": jobs})
        conn.execute(FINISH_JOBS)
        conn.execute(FILL_ATTEMPTS)
        conn.execute("vacuum analyze")
    return url, handle


def timed(name: str, call: Callable[[], object], rounds: int = 10) -> None:
    call()  # warm
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    print(
        f"  {name:<34} median {statistics.median(times):7.1f} ms"
        f"  (min {min(times):.1f}, max {max(times):.1f}, {rounds} calls)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200_000)
    args = parser.parse_args()
    url, _handle = fresh_database(args.jobs)
    db = Database(url, min_size=1, max_size=2).open()
    admin = Caller(
        user_id=uuid.uuid4(), email="bench@example.test", claims={"app_metadata": {"role": "admin"}}
    )
    print(f"{args.jobs} finished jobs, one run each over the last 2 hours:")
    timed("GET /api/admin/jobs/metrics", lambda: job_admin.metrics(db, admin))
    for name in ("COUNTS", "OLDEST_DUE"):

        def query(name: str = name) -> None:
            with db.transaction() as conn:
                conn.execute(getattr(jobs_repo, name), {"queue": None, "task": None}).fetchall()

        timed(f"  of which {name}", query)
    timed("jobs, first page of 50", lambda: job_admin.list_jobs(db, admin, filters={}, limit=50))
    failed = {"status": ["failed"], "since": datetime(2000, 1, 1, tzinfo=UTC)}
    timed("jobs, failed since …, 50", lambda: job_admin.list_jobs(db, admin, filters=failed, limit=50))
    middle = args.jobs // 2
    timed(
        "jobs, a page in the middle",
        lambda: job_admin.list_jobs(db, admin, filters={}, limit=50, cursor=middle),
    )
    timed("one job's detail", lambda: job_admin.get_job(db, admin, args.jobs // 3))
    db.close()


if __name__ == "__main__":
    main()
