"""Time the worker's fetch of its next job from a backlog: procrastinate's own function against
ours (``private.fetch_job``), under statistics taken while the queue was quiet and under fresh
ones.

    make bench-fetch         # .venv/bin/python scripts/bench_fetch.py
    .venv/bin/python scripts/bench_fetch.py --backlogs 2000,10000 --locks 50 --jobs 300 --running 0,8

Uses DATABASE_URL's server when set, else an embedded Postgres under .data/bench-fetch; a fresh
database each run, autovacuum off for ``procrastinate_jobs`` so that the statistics are the ones
each case sets. For each backlog size, each case and each function, in this process on one
connection:

1. the table is emptied (``TRUNCATE``);
2. the statistics are replaced (``ANALYZE``): **quiet**: 300 jobs (50 locks) deferred, fetched
   and finished with procrastinate's functions, then ``ANALYZE`` (every job succeeded: the
   planner expects no queued job); **fresh**: the backlog is deferred first, then ``ANALYZE``;
3. a backlog of each of ``--backlogs`` jobs over ``--locks`` locks is deferred (for **quiet**);
4. ``--jobs`` jobs are fetched one after another; each is finished at once (``--running 0``) or
   once ``--running`` later ones are running, as that many workers would leave them, so that
   each fetch walks past the running locks' next jobs.

Prints, per line, the milliseconds per fetch and finish (wall, one client) and the index entries
read per fetch and finish on ``procrastinate_jobs`` (the finish's are few: its row by id, the
foreign-key checks of the events it writes) (``pg_stat_user_indexes.idx_tup_read``, flushed with
``pg_stat_force_next_flush``). procrastinate's function runs on this schema, where its (id, lock)
index is dropped: slower under quiet statistics than it was with it (docs/scaling.md gives both).
The reason for our function is in its migration,
``supabase/migrations/20261207100000_fetch_job_stable_plan.sql``; docs/scaling.md, "Seventh pass",
has the figures.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Literal

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from benchkit import fresh_database  # noqa: E402

DB_NAME = "viewzenix_bench_fetch"
FETCHES = {
    "procrastinate_fetch_job_v2": "select id from procrastinate_fetch_job_v2(null, null)",
    "private.fetch_job": "select id from private.fetch_job(null, null)",
}
QUIET_JOBS, QUIET_LOCKS = 300, 50
INDEX_ENTRIES_READ = """
select coalesce(sum(idx_tup_read), 0)::bigint from pg_stat_user_indexes
    where relid = 'procrastinate_jobs'::regclass
"""


def _defer(conn: psycopg.Connection, count: int, locks: int, start: int) -> None:
    conn.execute(
        """select procrastinate_defer_jobs_v1(array(
               select row('signals', 'bench.fetch', 0, 'lock-' || (i %% %(locks)s), null, '{}'::jsonb,
                          null)::procrastinate_job_to_defer_v1
                   from generate_series(%(start)s::int, %(stop)s::int) as i))""",
        {"locks": locks, "start": start, "stop": start + count - 1},
    )


def _drain(conn: psycopg.Connection, fetch: str, count: int, running: int = 0) -> int:
    """Fetch ``count`` jobs and finish them, the oldest once more than ``running`` are running
    (as ``running`` workers would); return how many were fetched."""
    done, doing = 0, []
    for _ in range(count):
        (job_id,) = conn.execute(fetch).fetchone()
        if job_id is None:
            break
        doing.append(job_id)
        while len(doing) > running:
            conn.execute("select procrastinate_finish_job_v1(%s, 'succeeded', false)", (doing.pop(0),))
        done += 1
    for job_id in doing:
        conn.execute("select procrastinate_finish_job_v1(%s, 'succeeded', false)", (job_id,))
    return done


def _index_entries_read(conn: psycopg.Connection) -> int:
    conn.execute("select pg_stat_force_next_flush()")
    return conn.execute(INDEX_ENTRIES_READ).fetchone()[0]


def measure(
    conn: psycopg.Connection,
    fetch: str,
    *,
    case: Literal["quiet", "fresh"],
    backlog: int,
    locks: int,
    jobs: int,
    running: int,
) -> str:
    """One line: ms per fetch and finish, and index entries read per fetch and finish (see
    module doc). ``case``: "quiet" or "fresh". Raises SystemExit if fewer than ``jobs`` jobs
    could be fetched."""
    conn.execute("truncate procrastinate_jobs cascade")
    if case == "quiet":
        _defer(conn, QUIET_JOBS, QUIET_LOCKS, start=backlog)
        _drain(conn, FETCHES["procrastinate_fetch_job_v2"], QUIET_JOBS)
        conn.execute("analyze procrastinate_jobs")
        _defer(conn, backlog, locks, start=0)
    else:
        _defer(conn, backlog, locks, start=0)
        conn.execute("analyze procrastinate_jobs")
    before = _index_entries_read(conn)
    started = time.perf_counter()
    done = _drain(conn, fetch, jobs, running)
    elapsed = time.perf_counter() - started
    if done != jobs:
        raise SystemExit(f"{fetch}: fetched {done} of {jobs} jobs")
    read = _index_entries_read(conn) - before
    per_job = elapsed / done * 1000
    return f"{per_job:6.3f} ms a fetch and finish, {read / done:8.1f} index entries read a fetch and finish"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backlogs", default="2000,10000", help="queued jobs, comma-separated")
    parser.add_argument("--locks", type=int, default=50, help="locks the backlog is spread over")
    parser.add_argument("--jobs", type=int, default=300, help="jobs fetched and finished per line")
    parser.add_argument(
        "--running", default="0,8", help="jobs left running while the next is fetched, comma-separated"
    )
    args = parser.parse_args(argv)
    try:
        backlogs = [int(value) for value in args.backlogs.split(",")]
        runnings = [int(value) for value in args.running.split(",")]
    except ValueError:
        parser.error("--backlogs and --running take comma-separated whole numbers (2000,10000)")
    if args.locks < 1 or args.jobs < 1 or min(backlogs) < 1 or min(runnings) < 0:
        parser.error("--locks, --jobs and --backlogs must be at least 1, --running at least 0")
    if args.jobs > min(backlogs):
        parser.error(f"--jobs {args.jobs} is more than the smallest backlog, {min(backlogs)}")
    if max(runnings) >= args.locks:
        parser.error(f"--running {max(runnings)} leaves no lock free: it must be below --locks {args.locks}")

    url, handle = fresh_database(DB_NAME, ROOT / ".data" / "bench-fetch")
    print(
        f"bench-fetch: {args.jobs} jobs fetched and finished one after another, "
        f"backlog over {args.locks} locks"
    )
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("alter table procrastinate_jobs set (autovacuum_enabled = false)")
        conn.execute("set stats_fetch_consistency = none")
        for running in runnings:
            for backlog in backlogs:
                for case, label in (
                    ("quiet", "analyzed while quiet"),
                    ("fresh", "analyzed with the backlog"),
                ):
                    for name, fetch in FETCHES.items():
                        line = measure(
                            conn,
                            fetch,
                            case=case,
                            backlog=backlog,
                            locks=args.locks,
                            jobs=args.jobs,
                            running=running,
                        )
                        print(f"  {running} running, {backlog:6d} queued, {label:26s} {name:27s} {line}")
    del handle
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
