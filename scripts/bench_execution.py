"""Time signal execution: the signal job against a procrastinate no-op job, and one job's profile.

    make bench-execution     # .venv/bin/python scripts/bench_execution.py
    .venv/bin/python scripts/bench_execution.py --signals 60 --rounds 10 [--cprofile 25]

One config and symbol, the paper broker, market alerts alternating buy / sell-to-flat (every
signal places one order that fills). Uses DATABASE_URL's server when set, else an embedded
Postgres under .data/bench-execution; a fresh database each run. Five parts, in one run:

1. **Signal job / no-op job**: one procrastinate worker in this process (concurrency 1, the
   worker's own attempt recorder, as ``python -m viewzenix.worker`` runs) drains, in
   ``--rounds`` alternating batches, ``--signals`` no-op jobs and ``--signals`` signal jobs (each
   stored with its job as intake does). Many short rounds pair the two kinds in time: on a VM
   whose speed drifts, three runs of 10 rounds of 60 agreed within 0.15, three of 3 rounds of
   200 differed by 0.8 (docs/scaling.md). A job's cost is the time from its ``started`` event to
   the next job's (procrastinate's events, server clock): fetch, run, finish, attempt record. The
   line ``signal job / no-op job: <ratio>`` divides their medians. Goal: ≤ 3.
   A third kind, the **floor job** (``floor_job``), is drained in the same rounds, deferred and
   run as the signal job is (its lock, context, attempt record): the exactly-once boundary for
   one order that fills and nothing else (the signal read; the order PENDING_NEW committed
   before the broker call; the exchange's order and position; the answer), each phase one
   guarded statement in its own unflushed transaction, on small tables of its own: 4
   statements, 4 round trips, no engine, ledger or paper-exchange code. That is tighter than
   our design can be (it reads under a row lock and decides in Python), so the line
   ``floor job / no-op job`` bounds the ratio above from below for these phases on this
   machine's stack (procrastinate, psycopg, Postgres), whatever our own code saves
   (docs/scaling.md, "Sixth pass").
2. **In process**: ``execute_signal`` called directly for ``--signals`` jobs: ms per job.
3. **Profile of one job** (over those in-process jobs): per transaction (ours and the paper
   broker's, named by the function that opened it) the SQL statements, the commits and the
   milliseconds inside it (BEGIN to COMMIT, Python included); the costliest statements
   (client-timed: round trip + server); with ``--cprofile N`` the N costliest functions of Python
   time. Round trips: each statement our code sends (an unflushed transaction's ``BEGIN; SET
   LOCAL ...`` and its ``COMMIT`` among them) and each BEGIN / COMMIT psycopg sends itself.

4. **CPU split**: ``5 × --signals`` more jobs in process without the profile's instrumentation:
   wall, this process's CPU and the machine's ``postgres`` processes' CPU per job (/proc).
5. **This machine's round trip** (``round_trip``): one prepared one-row statement in autocommit
   on the job's pool, repeated: wall, client CPU and Postgres CPU per round trip, and the three
   jobs' medians and the in-process job expressed in it: how many of the cheapest statement a job
   costs, a figure that moves less between VMs than milliseconds do on a quiet machine; under
   load the unit (one connection in a tight loop) suffers more than the jobs and the counts drop
   (docs/scaling.md, "Tenth pass").

Prints the load average before and after: on a shared machine absolute times move with it, the
same-run ratio much less (docs/scaling.md).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import itertools
import math
import os
import pstats
import statistics
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from benchkit import fresh_database as fresh_scratch_database  # noqa: E402
from benchkit import postgres_cpu_seconds  # noqa: E402

from viewzenix.db import Database  # noqa: E402
from viewzenix.domain.model import Action, Sentiment, Signal  # noqa: E402
from viewzenix.domain.parsing import signal_to_dict  # noqa: E402
from viewzenix.repositories import signals as signals_repo  # noqa: E402
from viewzenix.repositories import webhook_configs as configs_repo  # noqa: E402
from viewzenix.services.execution import execute_signal  # noqa: E402

DB_NAME = "viewzenix_bench_execution"
NOOP_TASK = "bench.noop"
# Frames that name a transaction in the profile: our execution and the paper exchange's calls.
_NAMED = ("services/execution.py", "brokers/simulated.py", "services/accounts.py")


def fresh_database() -> tuple[str, object]:
    url, handle = fresh_scratch_database(DB_NAME, ROOT / ".data" / "bench-execution")
    return url, handle


class Bench:
    def __init__(self, url: str) -> None:
        self.url = url
        self.db = Database(url, min_size=2, max_size=4).open()
        self.user_id = uuid.uuid4()
        with self.db.transaction() as conn:
            configs_repo.ensure_user(conn, self.user_id, "bench@example.test")
            self.config = configs_repo.insert(
                conn,
                user_id=self.user_id,
                token_hash=os.urandom(32),
                token_hint="b",
                values={"name": "bench"},
            )
        self.count = 0

    def store(self, conn: psycopg.Connection, job_app=None) -> uuid.UUID:  # type: ignore[no-untyped-def]
        """Store the next signal (buy, then sell to flat) as intake does; defer its job when asked."""
        from viewzenix.jobs import defer_execute_signal

        i = self.count
        self.count += 1
        buy = i % 2 == 0
        signal = Signal(
            ticker="AAPL",
            action=Action.BUY if buy else Action.SELL,
            sentiment=Sentiment.LONG if buy else Sentiment.FLAT,
            quantity=Decimal(10),
            signal_price=Decimal(100 + i % 7),
        )
        signal_id, data = uuid.uuid4(), signal_to_dict(signal)
        job_id = None
        if job_app is not None:
            job_id = defer_execute_signal(
                job_app, conn, signal_id=signal_id, config_id=self.config["id"], symbol="AAPL"
            )
        signals_repo.insert(
            conn,
            signal_id=signal_id,
            user_id=self.user_id,
            config_id=self.config["id"],
            status="accepted",
            raw_body="{}",
            content_type="application/json",
            source_ip=None,
            signal=data,
            ticker="AAPL",
            action=data["action"],
            job_id=job_id,
        )
        return signal_id


# --------------------------------------------------------------------------- 1. ratio

FLOOR_TASK = "bench.floor"
FLOOR_TABLES = """
create table if not exists bench_floor_orders (
    id uuid primary key default gen_random_uuid(), signal_id uuid not null,
    client_order_id text not null unique, symbol text not null, status text not null,
    qty numeric not null, filled_qty numeric not null default 0, filled_avg_price numeric,
    updated_at timestamptz not null default now());
create table if not exists bench_floor_exchange_orders (
    client_order_id text primary key, symbol text not null, status text not null,
    qty numeric not null, price numeric not null);
create table if not exists bench_floor_positions (
    symbol text primary key, qty numeric not null default 0, last_price numeric);
create table if not exists bench_floor_exchange_positions (
    symbol text primary key, qty numeric not null default 0);
create table if not exists bench_floor_fills (
    id bigint generated always as identity primary key, order_id uuid not null,
    qty numeric not null, price numeric not null, filled_at timestamptz not null default now());
insert into bench_floor_positions (symbol) values ('AAPL') on conflict do nothing;
insert into bench_floor_exchange_positions (symbol) values ('AAPL') on conflict do nothing;
"""


# Each write is one statement, its own implicit transaction, committed without waiting for the
# flush (``set_config(..., true)`` inside it, as the paper exchange's mark does) and guarded so
# that a second run changes nothing.
_UNFLUSHED = "unflushed as materialized (select set_config('synchronous_commit', 'off', true) as mode)"
FLOOR_READ = """
select s.status, s.signal->>'quantity' as qty, s.signal->>'signal_price' as price, s.ticker,
    p.qty as position_qty
from public.signals s left join bench_floor_positions p on p.symbol = s.ticker
where s.id = %(signal_id)s
"""
FLOOR_PLAN = f"""
with {_UNFLUSHED},
submitting as (
    update public.signals set status = 'submitting' from unflushed
    where id = %(signal_id)s and status = 'accepted' returning id
),
recorded as (
    insert into bench_floor_orders (signal_id, client_order_id, symbol, status, qty)
    select id, %(client_order_id)s, %(symbol)s, 'pending_new', %(qty)s from submitting
)
select count(*) as planned from submitting
"""
FLOOR_EXCHANGE = f"""
with {_UNFLUSHED},
placed as (
    insert into bench_floor_exchange_orders (client_order_id, symbol, status, qty, price)
    select %(client_order_id)s, %(symbol)s, 'filled', %(qty)s, %(price)s from unflushed
    on conflict (client_order_id) do nothing returning client_order_id
)
update bench_floor_exchange_positions set qty = qty + %(qty)s
where symbol = %(symbol)s and exists (select 1 from placed)
"""
FLOOR_ANSWER = f"""
with {_UNFLUSHED},
filled as (
    update bench_floor_orders set status = 'filled', filled_qty = qty, filled_avg_price = %(price)s,
        updated_at = now()
    from unflushed
    where client_order_id = %(client_order_id)s and status = 'pending_new' returning id
),
fill as (insert into bench_floor_fills (order_id, qty, price) select id, %(qty)s, %(price)s from filled),
position as (
    update bench_floor_positions set qty = qty + %(qty)s, last_price = %(price)s
    where symbol = %(symbol)s and exists (select 1 from filled)
)
update public.signals set status = 'executed', outcome_message = %(message)s, processed_at = now()
where id = %(signal_id)s and exists (select 1 from filled)
"""


def floor_job(db: Database, signal_id: uuid.UUID) -> str:
    """Run the exactly-once boundary for one signal at its tightest; return the signal's status.

    What the boundary needs for one market order that fills, and nothing else: no engine, sizing
    or risk rules, no ledger events, no paper exchange (price check, mark, buying power), no
    account. Four statements, four round trips, each its own transaction (``FLOOR_*``):

    1. read the signal and its position, the one the plan is made from (autocommit);
    2. plan: the order PENDING_NEW and the signal ``submitting``, committed before the broker
       call (guarded by the signal's status: a second run plans nothing; a run that finds the
       signal ``submitting`` resumes at step 3);
    3. the exchange, outside any transaction of ours: its order (idempotent by
       ``client_order_id``) and its position;
    4. the answer: the order filled, the fill, the position and the signal's outcome (guarded
       by the order's status).

    Tighter than our code can be: it writes each phase as one statement where the real job
    reads under a row lock first and lets Python decide, so its ratio to a no-op job bounds
    the signal job's from below, for this boundary's phases (a read merged into the plan would
    save one more round trip). ``"not_found"`` or the status found when the signal is neither
    ``accepted`` nor ``submitting``.
    """
    with db.statement() as conn:
        row = conn.execute(FLOOR_READ, {"signal_id": signal_id}).fetchone()
        if row is None or row["status"] not in ("accepted", "submitting"):
            return "not_found" if row is None else row["status"]
        qty, price, symbol = Decimal(row["qty"]), Decimal(row["price"]), row["ticker"]
        params = {
            "signal_id": signal_id,
            "client_order_id": f"floor-{signal_id.hex}",
            "symbol": symbol,
            "qty": qty,
            "price": price,
            "message": f"floor {qty} {symbol} filled @ {price}",
        }
        # A run that died after its plan resumes at the exchange (idempotent) and the answer.
        if row["status"] == "accepted" and conn.execute(FLOOR_PLAN, params).fetchone()["planned"] == 0:
            return "not_runnable"
    with db.statement() as conn:  # the exchange: its own connection, as a broker call would be
        conn.execute(FLOOR_EXCHANGE, params)
    with db.statement() as conn:
        conn.execute(FLOOR_ANSWER, params)
    return "executed"


def job_ratio(bench: Bench, per_batch: int, rounds: int) -> tuple[dict[str, float], dict[str, int]]:
    """Drain no-op, signal and floor jobs in alternating batches with one in-process worker.

    Returns (median ms per job by kind: ``{"noop", "signal", "floor"}``, job counts by
    ``"<kind>: <signal status>"``). Raises SystemExit when a batch's jobs did not all start or
    a floor job did not execute.
    """
    from config import load_config
    from viewzenix.jobs import QUEUE, _defer_locked, build_job_app
    from viewzenix.jobs.attempts import AttemptRecorder
    from viewzenix.jobs.tasks import register_tasks
    from viewzenix.services import execution
    from viewzenix.services.accounts import Accounts

    config = load_config()
    app = build_job_app(bench.url, pool_size=2)
    bodies: list[float] = []
    execute = execution.execute_signal

    def timed(*a, **k):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        try:
            return execute(*a, **k)
        finally:
            bodies.append((time.perf_counter() - started) * 1000)

    execution.execute_signal = timed  # what register_tasks imports
    try:
        register_tasks(app, bench.db, config, Accounts(bench.db))
    finally:
        execution.execute_signal = execute

    @app.task(name=NOOP_TASK, queue=QUEUE)
    def noop(n: int) -> None:
        return None

    @app.task(name=FLOOR_TASK, queue=QUEUE, pass_context=True)
    def floor(context, signal_id: str) -> None:  # type: ignore[no-untyped-def]
        status = floor_job(bench.db, uuid.UUID(signal_id))  # as the signal task records its status
        context.additional_context["attempt_context"] = {"signal_status": status}

    with bench.db.transaction() as conn:
        conn.execute(FLOOR_TABLES)
    gaps: dict[str, list[float]] = {"noop": [], "signal": [], "floor": []}
    statuses: Counter[str] = Counter()
    with psycopg.connect(bench.url, autocommit=True) as admin:
        for _ in range(rounds):
            for kind in ("noop", "signal", "floor"):
                ids = []
                with bench.db.transaction() as conn:
                    if kind == "noop":
                        # Deferred as intake defers its job: on our connection, in a transaction.
                        for n in range(per_batch):
                            ids.append(_defer_noop(app, conn, n))
                    elif kind == "floor":  # stored as the signal's, deferred as intake defers it
                        count = bench.count  # the signal batches keep their buy / sell order
                        for _ in range(per_batch):
                            signal_id = str(bench.store(conn))
                            ids.append(
                                _defer_locked(
                                    app,
                                    conn,
                                    FLOOR_TASK,
                                    {"signal_id": signal_id},
                                    bench.config["id"],
                                    "AAPL",
                                )
                            )
                        bench.count = count
                    else:
                        signal_ids = [bench.store(conn, app) for _ in range(per_batch)]
                        ids = [
                            r["job_id"]
                            for r in conn.execute(
                                "select job_id from signals where id = any(%s)", (signal_ids,)
                            ).fetchall()
                        ]
                asyncio.run(_drain(app, AttemptRecorder()))
                starts = [
                    row[0]
                    for row in admin.execute(
                        "select at from procrastinate_events where type = 'started' and job_id = any(%s)"
                        " order by at",
                        (ids,),
                    ).fetchall()
                ]
                if len(starts) != per_batch:
                    raise SystemExit(f"{kind}: {len(starts)} of {per_batch} jobs started")
                gaps[kind] += [(b - a).total_seconds() * 1000 for a, b in itertools.pairwise(starts)]
                if kind != "noop":
                    for (status,) in admin.execute(
                        "select s.status from signals s join procrastinate_jobs j"
                        " on j.args->>'signal_id' = s.id::text where j.id = any(%s)",
                        (ids,),
                    ).fetchall():
                        statuses[f"{kind}: {status}"] += 1
    print(f"signal job's task body (execute_signal in the worker): {statistics.median(bodies):.2f} ms")
    if statuses.get("floor: executed", 0) != per_batch * rounds:  # a floor that did not do its work
        raise SystemExit(f"floor jobs did not all execute: {dict(statuses)}")
    return {kind: statistics.median(values) for kind, values in gaps.items()}, dict(statuses)


def _defer_noop(app, conn, n: int) -> int:  # type: ignore[no-untyped-def]
    """Defer one no-op job on ``conn``'s transaction, as ``viewzenix.jobs`` defers a signal's."""
    from procrastinate import jobs as procrastinate_jobs

    from viewzenix.jobs import QUEUE

    job = procrastinate_jobs.Job(
        queue=QUEUE, lock=None, queueing_lock=None, task_name=NOOP_TASK, task_kwargs={"n": n}
    )
    deferred = app.job_manager.defer_job(job, connection=conn)
    assert deferred.id is not None
    return deferred.id


async def _drain(app, recorder) -> None:  # type: ignore[no-untyped-def]
    from viewzenix.jobs import QUEUE

    async with app.open_async():
        await app.run_worker_async(
            queues=[QUEUE],
            concurrency=1,
            wait=False,
            install_signal_handlers=False,
            listen_notify=False,
            worker_middleware=[recorder],
        )


# --------------------------------------------------------------------------- 2, 3. in process


class Profile:
    """Statements, commits and time per transaction, named by the frame that opened it."""

    def __init__(self) -> None:
        self.statements: Counter[str] = Counter()
        self.ms: Counter[str] = Counter()
        self.transactions: Counter[str] = Counter()
        self.current: list[str] = []
        self.query_ms: Counter[str] = Counter()
        self.query_n: Counter[str] = Counter()
        self.commands: Counter[str] = Counter()  # round trips other than our statements
        self.pipelined: Counter[str] = Counter()  # our statements sent inside a pipeline block
        self.in_pipeline = 0

    @contextmanager
    def installed(self):  # type: ignore[no-untyped-def]
        profile = self
        execute, executemany = psycopg.Cursor.execute, psycopg.Cursor.executemany
        exec_command, pipeline = psycopg.Connection._exec_command, psycopg.Connection.pipeline
        transaction = Database.transaction

        def counting(cursor, query, *a, **k):  # type: ignore[no-untyped-def]
            name = profile.current[-1] if profile.current else "(outside)"
            profile.statements[name] += 1
            if profile.in_pipeline:
                profile.pipelined[name] += 1
            started = time.perf_counter()
            try:
                return execute(cursor, query, *a, **k)
            finally:
                key = f"{name}: {' '.join(str(query).split())[:70]}"
                profile.query_ms[key] += (time.perf_counter() - started) * 1000
                profile.query_n[key] += 1

        def counting_many(cursor, *a, **k):  # type: ignore[no-untyped-def]
            profile.statements[profile.current[-1] if profile.current else "(outside)"] += 1
            return executemany(cursor, *a, **k)

        @contextmanager
        def named(db, *a, **k):  # type: ignore[no-untyped-def]
            name = _caller()
            profile.transactions[name] += 1
            profile.current.append(name)
            started = time.perf_counter()
            try:
                with transaction(db, *a, **k) as conn:
                    yield conn
            finally:
                profile.ms[name] += (time.perf_counter() - started) * 1000
                profile.current.pop()

        def counting_command(conn, command, *a, **k):  # type: ignore[no-untyped-def]
            # psycopg's own BEGIN / COMMIT / ROLLBACK / SAVEPOINT: a round trip each.
            profile.commands[profile.current[-1] if profile.current else "(outside)"] += 1
            return exec_command(conn, command, *a, **k)

        @contextmanager
        def counting_pipeline(conn, *a, **k):  # type: ignore[no-untyped-def]
            # A pipeline block sends its statements, then reads every answer: one round trip.
            profile.in_pipeline += 1
            try:
                with pipeline(conn, *a, **k) as p:
                    yield p
            finally:
                profile.in_pipeline -= 1
                profile.commands[profile.current[-1] if profile.current else "(outside)"] += 1

        psycopg.Connection.pipeline = counting_pipeline  # type: ignore[method-assign]
        psycopg.Cursor.execute = counting  # type: ignore[method-assign]
        psycopg.Cursor.executemany = counting_many  # type: ignore[method-assign]
        psycopg.Connection._exec_command = counting_command  # type: ignore[method-assign]
        Database.transaction = named  # type: ignore[method-assign]
        try:
            yield self
        finally:
            psycopg.Cursor.execute = execute  # type: ignore[method-assign]
            psycopg.Cursor.executemany = executemany  # type: ignore[method-assign]
            psycopg.Connection._exec_command = exec_command  # type: ignore[method-assign]
            psycopg.Connection.pipeline = pipeline  # type: ignore[method-assign]
            Database.transaction = transaction  # type: ignore[method-assign]

    def report(self, jobs: int) -> str:
        names = sorted(set(self.transactions) | set(self.statements), key=lambda n: -self.statements[n])
        header = f"{'transaction (opened by)':<44} {'per job':>8} {'stmts/job':>10}"
        header += f" {'trips/job':>10} {'ms/job':>8}"
        lines = [header]
        total_s = total_t = total_x = total_r = 0.0
        for name in names:
            x = self.transactions[name] / jobs
            s = self.statements[name] / jobs
            r = s + (self.commands[name] - self.pipelined[name]) / jobs
            ms = self.ms[name] / jobs
            total_s, total_t, total_x, total_r = total_s + s, total_t + ms, total_x + x, total_r + r
            lines.append(f"{name:<44} {x:>8.2f} {s:>10.2f} {r:>10.2f} {ms:>8.2f}")
        lines.append(f"{'total':<44} {total_x:>8.2f} {total_s:>10.2f} {total_r:>10.2f} {total_t:>8.2f}")
        lines.append(
            f"per job: {total_r:.1f} round trips ({total_s:.1f} statements sent by our code, a pipeline "
            f"block's counted once, plus psycopg's own BEGIN/COMMIT), {total_x:.1f} transactions (commits), "
            f"{total_t:.1f} ms inside transactions (BEGIN to COMMIT, Python included)"
        )
        lines.append(f"{'statement (client-timed ms per job, calls per job)':<100}")
        for key, ms in self.query_ms.most_common(40):
            lines.append(f"  {ms / jobs:6.3f} ms {self.query_n[key] / jobs:5.2f}x  {key}")
        return "\n".join(lines)


def _caller() -> str:
    frame = sys._getframe(2)
    while frame is not None:
        path = frame.f_code.co_filename.replace(os.sep, "/")
        if any(path.endswith(named) for named in _NAMED) and frame.f_code.co_name != "_transaction":
            return f"{Path(path).stem}.{frame.f_code.co_name}"
        frame = frame.f_back
    return "(other)"


def in_process(bench: Bench, jobs: int, cprofile: int) -> None:
    signal_ids = []
    with bench.db.transaction() as conn:
        signal_ids = [bench.store(conn) for _ in range(jobs)]
    profiler = cProfile.Profile() if cprofile else None
    statuses: Counter[str] = Counter()
    with Profile().installed() as profile:
        started = time.perf_counter()
        if profiler:
            profiler.enable()
        for signal_id in signal_ids:
            statuses[execute_signal(bench.db, signal_id)] += 1
        if profiler:
            profiler.disable()
        elapsed = time.perf_counter() - started
    print(
        f"in process: {jobs} jobs in {elapsed:.2f} s: {elapsed / jobs * 1000:.1f} ms per job"
        f"{' (under cProfile)' if profiler else ''}, {dict(statuses)}"
    )
    print(profile.report(jobs))
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(cprofile)
        print("\n".join(line for line in out.getvalue().splitlines() if line.strip())[:6000])


def per_item_ms(run: Callable[[], object], count: int) -> dict[str, float]:
    """Call ``run`` once (``count`` items of work); return ``{"wall", "cpu", "postgres"}`` in ms
    per item: wall time, this process's CPU, and every ``postgres`` process's CPU on this machine
    (nan when there is none: Postgres elsewhere)."""
    pg_before, cpu_before, started = postgres_cpu_seconds(), time.process_time(), time.perf_counter()
    run()
    wall = (time.perf_counter() - started) / count * 1000
    cpu = (time.process_time() - cpu_before) / count * 1000
    pg_after = postgres_cpu_seconds()
    postgres = float("nan")
    if pg_before is not None and pg_after is not None:
        postgres = (pg_after - pg_before) / count * 1000
    return {"wall": wall, "cpu": cpu, "postgres": postgres}


def cpu_split(bench: Bench, jobs: int) -> float:
    """``execute_signal`` in process without instrumentation: wall, Python CPU, Postgres CPU per job.

    Prints the three; returns the wall time in ms per job.

    On this VM the three add up (client and server take turns), so a statement saved is CPU saved
    on both sides. Postgres CPU is every ``postgres`` process's on this machine (none: not shown).
    """
    with bench.db.transaction() as conn:
        signal_ids = [bench.store(conn) for _ in range(jobs)]

    def run() -> None:
        for signal_id in signal_ids:
            execute_signal(bench.db, signal_id)

    ms = per_item_ms(run, jobs)
    line = f"in process, no profiler: {jobs} jobs: {ms['wall']:.2f} ms per job, Python CPU {ms['cpu']:.2f} ms"
    if not math.isnan(ms["postgres"]):
        line += f", Postgres CPU {ms['postgres']:.2f} ms (this machine's postgres processes)"
    print(line)
    return ms["wall"]


# The cheapest statement the job's pool can send: prepared from its fifth use, one row back.
ROUND_TRIP_SQL = "select 1 as one where %s::int = 1"


def round_trip(bench: Bench, count: int) -> dict[str, float]:
    """One round trip on this machine: ``per_item_ms`` of ``count`` executions of
    ``ROUND_TRIP_SQL`` on one of the job's pool connections in autocommit (as the job's first read
    runs), after 100 to warm it up."""
    with bench.db.statement() as conn:

        def run(times: int) -> None:
            for _ in range(times):
                conn.execute(ROUND_TRIP_SQL, (1,)).fetchone()

        run(100)
        return per_item_ms(lambda: run(count), count)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signals", type=int, default=60, help="jobs per batch and in process")
    parser.add_argument("--rounds", type=int, default=10, help="alternating batches of each job kind")
    parser.add_argument("--cprofile", type=int, default=0, help="print the N costliest functions")
    args = parser.parse_args()
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    url, _handle = fresh_database()
    bench = Bench(url)
    ms, statuses = job_ratio(bench, args.signals, args.rounds)
    print(
        f"no-op job: {ms['noop']:.2f} ms, signal job: {ms['signal']:.2f} ms, floor job: {ms['floor']:.2f} ms "
        f"(medians, one worker, concurrency 1) {statuses}"
    )
    print(f"signal job / no-op job: {ms['signal'] / ms['noop']:.2f}")
    print(
        f"floor job / no-op job: {ms['floor'] / ms['noop']:.2f} (the exactly-once boundary alone, "
        "tighter than our design: a bound from below for the ratio above)"
    )
    print(
        f"our code per signal job (signal job - floor job): {ms['signal'] - ms['floor']:.2f} ms; "
        f"a ratio of 3 leaves {3 * ms['noop'] - ms['floor']:.2f} ms for it"
    )
    in_process(bench, args.signals, args.cprofile)
    in_process_ms = cpu_split(bench, 5 * args.signals)
    unit = round_trip(bench, 2000)
    print(
        f"one round trip on this machine (a prepared one-row statement, autocommit): "
        f"{unit['wall'] * 1000:.0f} us wall, {unit['cpu'] * 1000:.0f} us client CPU, "
        f"{unit['postgres'] * 1000:.0f} us Postgres CPU"
    )
    print(
        "in round trips of that: no-op job {:.1f}, floor job {:.1f}, signal job {:.1f} (a ratio of 3: "
        "{:.1f}); execute_signal in process {:.1f}".format(
            *(value / unit["wall"] for value in (ms["noop"], ms["floor"], ms["signal"], 3 * ms["noop"])),
            in_process_ms / unit["wall"],
        )
    )
    bench.db.close()
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
