"""The worker's fetch (private.fetch_job, migration 20261207100000_fetch_job_stable_plan.sql):
the job procrastinate's own fetch would take, found without reading the whole backlog when the
queue table's statistics were taken while it was quiet."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import psycopg
import pytest
from builders import fresh_database

from viewzenix.jobs import FETCH_JOB_UNLESS_PAUSED

ROOT = Path(__file__).resolve().parents[2]
FETCH_PLAN_DB = "viewzenix_test_fetch_job"
PROCRASTINATE_FETCH = "select id from procrastinate_fetch_job_v2(%(queues)s::varchar[], null)"
OUR_FETCH = "select id from private.fetch_job(%(queues)s::varchar[], null)"

# A backlog of BACKLOG jobs over LOCKS locks: LOCK_DEPTH jobs queued a lock.
BACKLOG, LOCKS = 2000, 50
LOCK_DEPTH = BACKLOG // LOCKS


@pytest.fixture
def queue_url(database_url: str) -> Iterator[str]:
    """A new database for each test, so that procrastinate_jobs starts with no statistics at all
    (TRUNCATE would keep pg_statistic's), autovacuum off for it so that a test sets them."""
    url = fresh_database(database_url, FETCH_PLAN_DB)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("alter table procrastinate_jobs set (autovacuum_enabled = false)")
    yield url
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(f'drop database if exists "{FETCH_PLAN_DB}" with (force)')


@pytest.fixture
def conn(queue_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(queue_url, autocommit=True) as conn:
        yield conn


def _defer(conn, jobs: list[tuple]) -> list[int]:
    """Defer ``jobs`` (queue, priority, lock, scheduled_at) through procrastinate's own function."""
    rows = conn.execute(
        "select unnest(procrastinate_defer_jobs_v1(%s::procrastinate_job_to_defer_v1[]))",
        ([(queue, "t", priority, lock, None, "{}", at) for queue, priority, lock, at in jobs],),
    ).fetchall()
    return [row[0] for row in rows]


def _burst(conn: psycopg.Connection, count: int, locks: int, prefix: str = "lock") -> list[int]:
    """Defer ``count`` jobs, round robin over ``locks`` locks named ``<prefix>-<n>``."""
    return _defer(conn, [("signals", 0, f"{prefix}-{i % locks}", None) for i in range(count)])


def _drain(conn, count: int) -> None:
    """Fetch and finish ``count`` jobs with procrastinate's own functions."""
    for _ in range(count):
        (job_id,) = conn.execute(PROCRASTINATE_FETCH, {"queues": None}).fetchone()
        conn.execute("select procrastinate_finish_job_v1(%s, 'succeeded', false)", (job_id,))


# Scans started on procrastinate_jobs and on each of its indexes, and index entries read.
READS = """
select t.seq_scan,
       coalesce(jsonb_object_agg(i.indexrelname, i.idx_scan), '{}') as index_scans,
       coalesce(jsonb_object_agg(i.indexrelname, i.idx_tup_read), '{}') as entries_read
    from pg_stat_user_tables t left join pg_stat_user_indexes i on i.relid = t.relid
    where t.relid = 'procrastinate_jobs'::regclass
    group by t.seq_scan
"""
# What our fetch may scan: the queue in order, a lock's jobs, the chosen job by id.
FETCH_INDEXES = {
    "procrastinate_jobs_priority_idx_v1",
    "viewzenix_procrastinate_jobs_lock_id_idx",
    "procrastinate_jobs_pkey",
}
# The walk over the queue in order. Its entries of jobs no longer queued stay until a vacuum and
# are read until a scan marks them dead, which other transactions on the server can delay: so
# its entries are not counted where a bound is asserted.
QUEUE_WALK = "procrastinate_jobs_priority_idx_v1"


class Reads(NamedTuple):
    rows: list[tuple]  # what the query returned
    entries: dict[str, int]  # index entries read, by index
    seq_scans: int  # sequential scans of procrastinate_jobs
    scanned: set[str]  # the indexes scanned

    @property
    def job_id(self) -> int | None:
        """A fetch's job id (None when it found no job)."""
        return self.rows[0][0] if self.rows else None

    @property
    def lock_checks(self) -> int:
        """Index entries read, but for the walk over the queue: the lock checks' (and the
        primary key's, one or two)."""
        return sum(n for name, n in self.entries.items() if name != QUEUE_WALK)


def _reads(conn, query: str, params: dict) -> Reads:
    """Run ``query`` (a fetch) and return what it read (pg_stat_user_tables and
    pg_stat_user_indexes, flushed with pg_stat_force_next_flush, outside a transaction, where
    they are flushed)."""
    conn.execute("set stats_fetch_consistency = none")
    conn.execute("select pg_stat_force_next_flush()")
    before = conn.execute(READS).fetchone()
    rows = conn.execute(query, params).fetchall()
    conn.execute("select pg_stat_force_next_flush()")
    after = conn.execute(READS).fetchone()
    return Reads(
        rows=[tuple(row) for row in rows],
        entries={name: n - before[2].get(name, 0) for name, n in after[2].items()},
        seq_scans=after[0] - before[0],
        scanned={name for name, scans in after[1].items() if scans > before[1].get(name, 0)},
    )


def _both_fetches(conn, queues: list[str] | None = None) -> tuple[int | None, int | None]:
    """The job procrastinate's fetch takes and the one ours takes, each in a transaction rolled
    back, so that both see the same queue."""
    taken = []
    for query in (PROCRASTINATE_FETCH, OUR_FETCH):
        with conn.transaction(force_rollback=True):
            taken.append(conn.execute(query, {"queues": queues}).fetchone()[0])
    return taken[0], taken[1]


def _set_status(conn, job_id: int, status: str) -> None:
    conn.execute("update procrastinate_jobs set status = %s where id = %s", (status, job_id))


def test_both_fetches_take_the_same_job(conn):
    """procrastinate's rules, case by case: priority first, then the queue's order; a job waits
    while its lock has a running job, or one queued before it or with a higher priority; a job
    without a lock never waits; a job scheduled later waits; a queue filter is honoured."""
    assert _both_fetches(conn) == (None, None)

    first, second = _defer(conn, [("signals", 0, "a", None), ("signals", 0, "a", None)])
    assert _both_fetches(conn) == (first, first)
    _set_status(conn, first, "doing")
    # The lock's next job waits behind the running one; nothing else is queued.
    assert _both_fetches(conn) == (None, None)

    (unlocked,) = _defer(conn, [("signals", 0, None, None)])
    assert _both_fetches(conn) == (unlocked, unlocked)
    _set_status(conn, first, "succeeded")
    assert _both_fetches(conn) == (second, second)

    # A higher priority goes first, even queued later, and holds back its lock's earlier job.
    (urgent,) = _defer(conn, [("signals", 5, "a", None)])
    assert _both_fetches(conn) == (urgent, urgent)
    _set_status(conn, urgent, "succeeded")
    (urgent_other_lock,) = _defer(conn, [("signals", 5, "b", None)])
    assert _both_fetches(conn) == (urgent_other_lock, urgent_other_lock)
    _set_status(conn, urgent_other_lock, "succeeded")

    (later,) = _defer(conn, [("signals", 9, "c", "2999-01-01T00:00:00Z")])
    (elsewhere,) = _defer(conn, [("maintenance", 9, "d", None)])
    assert _both_fetches(conn) == (elsewhere, elsewhere)
    assert _both_fetches(conn, ["signals"]) == (second, second)
    assert _both_fetches(conn, ["nothing-here"]) == (None, None)
    _set_status(conn, later, "succeeded")

    # Our function marks the job doing, as procrastinate's does.
    (taken,) = conn.execute(OUR_FETCH, {"queues": ["signals"]}).fetchone()
    assert taken == second
    status = conn.execute("select status from procrastinate_jobs where id = %s", (taken,)).fetchone()
    assert status == ("doing",)


FETCH_AS_WORKER = {
    "procrastinate's": "select id, worker_id, status from procrastinate_fetch_job_v2(null, %(worker_id)s)",
    "ours": "select id, worker_id, status from private.fetch_job(null, %(worker_id)s)",
}


@pytest.mark.parametrize("function", list(FETCH_AS_WORKER))
def test_two_workers_fetching_at_once_never_run_two_jobs_of_one_lock(conn, queue_url, function):
    """Worker A's fetch has taken lock a's first job and not committed yet: worker B skips that
    row (SKIP LOCKED), leaves lock a's second job waiting behind it, and takes the others; each
    job is marked doing for the worker that took it, with procrastinate's started event. Both
    functions take the same jobs in the same order."""
    fetch = FETCH_AS_WORKER[function]
    worker_a, worker_b = (
        conn.execute("select worker_id from procrastinate_register_worker_v1()").fetchone()[0]
        for _ in range(2)
    )
    first_a, second_a, unlocked, first_b = _defer(
        conn,
        [
            ("signals", 0, "a", None),
            ("signals", 0, "a", None),
            ("signals", 0, None, None),
            ("signals", 0, "b", None),
        ],
    )
    # A fetch that waited on the other worker's uncommitted row would wait on this very thread:
    # the timeouts make that a failure instead of a hang.
    timeouts = "-c statement_timeout=5000 -c lock_timeout=5000"
    with (
        psycopg.connect(queue_url, options=timeouts) as a,
        psycopg.connect(queue_url, autocommit=True, options=timeouts) as b,
    ):
        assert a.execute(fetch, {"worker_id": worker_a}).fetchone() == (first_a, worker_a, "doing")
        assert b.execute(fetch, {"worker_id": worker_b}).fetchone() == (unlocked, worker_b, "doing")
        assert b.execute(fetch, {"worker_id": worker_b}).fetchone() == (first_b, worker_b, "doing")
        assert b.execute(fetch, {"worker_id": worker_b}).fetchone() == (None, None, None)
        a.commit()
        assert b.execute(fetch, {"worker_id": worker_b}).fetchone() == (None, None, None)
        a.execute("select procrastinate_finish_job_v1(%s, 'succeeded', false)", (first_a,))
        a.commit()
        assert b.execute(fetch, {"worker_id": worker_b}).fetchone() == (second_a, worker_b, "doing")
    started = conn.execute(
        "select job_id from procrastinate_events where type = 'started' order by id"
    ).fetchall()
    assert [row[0] for row in started] == [first_a, unlocked, first_b, second_a]


def test_the_manager_fetches_through_our_function():
    assert "private.fetch_job(" in FETCH_JOB_UNLESS_PAUSED
    assert "procrastinate_fetch_job" not in FETCH_JOB_UNLESS_PAUSED


# How the table's statistics were left when a backlog of BACKLOG jobs arrived; each returns the
# backlog's job ids.
def _analyzed_while_quiet(conn) -> list[int]:
    """Statistics (and the partial indexes' sizes) taken when every job had succeeded."""
    _burst(conn, 300, 50, prefix="quiet")
    _drain(conn, 300)
    conn.execute("analyze procrastinate_jobs")
    return _burst(conn, BACKLOG, LOCKS)


def _vacuumed_while_quiet(conn) -> list[int]:
    _burst(conn, 300, 50, prefix="quiet")
    _drain(conn, 300)
    conn.execute("vacuum analyze procrastinate_jobs")
    return _burst(conn, BACKLOG, LOCKS)


def _never_analyzed(conn) -> list[int]:
    """A table created and never analyzed (a new database)."""
    return _burst(conn, BACKLOG, LOCKS)


def _analyzed_with_the_backlog(conn) -> list[int]:
    """Fresh statistics: taken with the backlog queued."""
    backlog = _burst(conn, BACKLOG, LOCKS)
    conn.execute("analyze procrastinate_jobs")
    return backlog


STATISTICS = {
    "analyzed while quiet": _analyzed_while_quiet,
    "vacuumed while quiet": _vacuumed_while_quiet,
    "never analyzed": _never_analyzed,
    "analyzed with the backlog": _analyzed_with_the_backlog,
}


@pytest.mark.parametrize("statistics", list(STATISTICS))
def test_a_fetch_reads_its_locks_jobs_not_the_backlog(conn, statistics):
    """Under each kind of statistics, a fetch from a backlog of 2,000 jobs over 50 locks reads
    the queued jobs of the locks it checks (40 a lock), not the backlog (procrastinate's fetch,
    planned under statistics taken while the queue was quiet, reads every queued job for each
    job it checks)."""
    backlog = STATISTICS[statistics](conn)
    params = {"queues": None, "worker_id": None}
    if statistics == "analyzed while quiet":
        # The case this function exists for: procrastinate's own fetch reads the backlog.
        # (Counted outside a transaction, where the counts are flushed; then handed back.)
        theirs = _reads(conn, PROCRASTINATE_FETCH, params)
        assert theirs.job_id == backlog[0]
        assert theirs.lock_checks > BACKLOG // 2
        _set_status(conn, theirs.job_id, "todo")

    # The first fetch reads the first job's lock: its LOCK_DEPTH queued jobs, and a few more.
    first = _reads(conn, FETCH_JOB_UNLESS_PAUSED, params)
    assert first.job_id == backlog[0]
    assert first.lock_checks <= 3 * LOCK_DEPTH
    # Never the whole table, nor procrastinate's (id, lock) index, whose look-up of a lock reads
    # every queued job's entry.
    assert (first.seq_scans, first.scanned - FETCH_INDEXES) == (0, set())
    # Every lock busy but one: the walk passes the busy locks' next jobs (each a look-up of its
    # lock) until it finds the free lock's.
    for _ in range(LOCKS - 1):
        conn.execute(OUR_FETCH, params)
    free = LOCKS // 2
    conn.execute("select procrastinate_finish_job_v1(%s, 'succeeded', false)", (backlog[free],))
    walk = _reads(conn, FETCH_JOB_UNLESS_PAUSED, params)
    assert walk.job_id == backlog[LOCKS + free]
    assert (walk.seq_scans, walk.scanned - FETCH_INDEXES) == (0, set())
    # A running job is its lock's first entry, so each look-up stops at once (about 2 entries a
    # job passed); procrastinate's plan above reads the backlog for each.
    assert walk.lock_checks <= 3 * (free + 1) + 2 * LOCK_DEPTH


@pytest.mark.parametrize("statistics", ["analyzed while quiet", "analyzed with the backlog"])
def test_the_queue_counts_read_only_queued_and_running_jobs(conn, statistics):
    """/healthz's signals_waiting and /metrics' queue depth count queued and running jobs through
    their statuses' partial indexes, not by scanning the finished jobs kept for
    JOB_RETENTION_DAYS (they used procrastinate's (id, lock) index, which the fetch's migration
    dropped)."""
    from viewzenix.health import SIGNALS_WAITING
    from viewzenix.metrics import QUEUE

    conn.execute(
        """insert into procrastinate_jobs (queue_name, task_name, lock, args, status)
           select 'signals', 't', 'lock-' || (i % 50), '{}', 'succeeded' from generate_series(1, 20000) i"""
    )
    if statistics == "analyzed while quiet":
        conn.execute("analyze procrastinate_jobs")
    _burst(conn, 100, LOCKS)
    for _ in range(5):
        conn.execute(OUR_FETCH, {"queues": None})
    if statistics == "analyzed with the backlog":
        conn.execute("analyze procrastinate_jobs")
    for query, expected in (
        (SIGNALS_WAITING, [(100,)]),
        (QUEUE, [("signals", "doing", 5), ("signals", "todo", 95)]),
    ):
        reads = _reads(conn, query, {})
        assert sorted(row[:3] for row in reads.rows) == expected
        assert reads.seq_scans == 0, "a sequential scan of procrastinate_jobs"
        assert sum(reads.entries.values()) <= 2 * 100, "more than two index entries read a job queued"


MIGRATION = ROOT / "supabase" / "migrations" / "20261207100000_fetch_job_stable_plan.sql"


def test_the_migration_gives_up_on_a_busy_queue_table_instead_of_stalling_it(conn, queue_url) -> None:
    """Its DROP INDEX needs an exclusive lock on procrastinate_jobs: behind another transaction
    on the table it fails after its lock_timeout (lock_not_available) instead of waiting, and
    holding back every intake and fetch queued behind it; once the table is free it applies."""
    # The schema before this migration: procrastinate's (id, lock) index, no private.fetch_job.
    conn.execute("drop function private.fetch_job(varchar[], bigint)")
    conn.execute(
        "create index procrastinate_jobs_id_lock_idx_v1 on procrastinate_jobs (id, lock)"
        " where status = any (array['todo'::procrastinate_job_status, 'doing'::procrastinate_job_status])"
    )
    sql = MIGRATION.read_text()
    with psycopg.connect(queue_url) as busy, psycopg.connect(queue_url, autocommit=True) as migrator:
        busy.execute("select count(*) from procrastinate_jobs")  # holds ACCESS SHARE until it ends
        # A hang guard well above the migration's own 500 ms: without its lock_timeout, this one fires.
        migrator.execute("set statement_timeout = '15s'")
        with pytest.raises(psycopg.errors.LockNotAvailable):
            with migrator.transaction():
                migrator.execute(sql)
        assert conn.execute("select to_regclass('public.procrastinate_jobs_id_lock_idx_v1')").fetchone()[0]
        busy.rollback()
        with migrator.transaction():
            migrator.execute(sql)
    assert (
        conn.execute("select to_regclass('public.procrastinate_jobs_id_lock_idx_v1')").fetchone()[0] is None
    )
    assert conn.execute("select to_regprocedure('private.fetch_job(varchar[], bigint)')").fetchone()[0]
