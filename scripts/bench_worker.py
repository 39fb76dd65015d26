"""Measure the job workers: signals executed per second (1 and 2 processes), enqueue-to-start latency.

    make bench-worker            # .venv/bin/python scripts/bench_worker.py
    .venv/bin/python scripts/bench_worker.py --alerts 2000 --symbols 50 --concurrency 4 --rate 100

Signals are stored with their ``execute_signal`` job in one transaction each, exactly as intake
does after parsing (``signals`` row + procrastinate job, locked per config and symbol), straight
into the database: what is measured is the queue and the workers, not HTTP. Market alerts
alternate buy / sell-to-flat per symbol, round robin over ``--symbols``, one config, simulated
broker. Three phases on one fresh database:

1. **Drain, 1 worker**: ``--alerts`` signals queued, then one worker process
   (``python -m viewzenix.worker``, ``WORKER_CONCURRENCY=--concurrency``) starts; signals/s =
   signals ÷ (last job's end − first job's start), from procrastinate's events (server clock).
   Also **signals per CPU-second**: signals finished from a tenth of the drain to its end ÷ the
   CPU the workers and Postgres used meanwhile (/proc), and each one's milliseconds of CPU a
   signal. Alone on a machine, that is signals/s per core, the figure to size workers with.
2. **Drain, 2 workers**: the same with two worker processes (``--drain-workers``, default
   ``1,2``: the process counts of phases 1-2, e.g. ``1,2,3,4``).
3. **Latency at ``--rate`` jobs/s, open loop**: with the two workers idle, signals are enqueued on
   a fixed schedule for ``--seconds`` (a late send does not delay the next ones); enqueue-to-start
   = the job's ``started`` event − its ``deferred`` event (both server-side). Then the same with
   one worker.

Every signal must end ``executed``; the script says so when not.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import psycopg
from benchkit import percentile, postgres_cpu_seconds, process_cpu_seconds
from stack import running_stack

from viewzenix.db import Database
from viewzenix.domain.model import Action, Sentiment, Signal
from viewzenix.domain.parsing import signal_to_dict
from viewzenix.jobs import build_job_app, defer_execute_signal
from viewzenix.repositories import signals as signals_repo

SENDERS = 8  # threads of the open-loop sender: a slow commit does not hold the next send back
DRAIN_WINDOW = """
select min(s.at) as first_start, max(e.at) as last_end, count(*) as jobs
from procrastinate_jobs j
join procrastinate_events s on s.job_id = j.id and s.type = 'started'
join procrastinate_events e on e.job_id = j.id and e.type = 'succeeded'
where j.id = any(%s)
"""
LATENCIES = """
select extract(epoch from s.at - d.at) * 1000 as ms
from procrastinate_events d join procrastinate_events s on s.job_id = d.job_id and s.type = 'started'
where d.type = 'deferred' and d.job_id = any(%s)
"""


class Queue:
    """Stores signals with their jobs, one transaction each, as intake does."""

    def __init__(self, database_url: str, config_id: str) -> None:
        self.db = Database(database_url, min_size=1, max_size=SENDERS).open()
        self.job_app = build_job_app(database_url)
        self.config_id = uuid.UUID(config_id)
        with self.db.transaction() as conn:
            self.user_id = conn.execute(
                "select user_id from webhook_configs where id = %s", (self.config_id,)
            ).fetchone()["user_id"]
        self.count = 0
        self.lock = threading.Lock()

    def enqueue(self, symbols: int) -> int:
        """Store the next signal (round robin over ``symbols``) with its job; return the job id."""
        with self.lock:
            i = self.count
            self.count += 1
        buy = (i // symbols) % 2 == 0
        signal = Signal(
            ticker=f"S{i % symbols:03d}",
            action=Action.BUY if buy else Action.SELL,
            sentiment=Sentiment.LONG if buy else Sentiment.FLAT,
            quantity=Decimal(10),
            signal_price=Decimal("100.50"),
        )
        signal_id, data = uuid.uuid4(), signal_to_dict(signal)
        with self.db.transaction() as conn:
            job_id = defer_execute_signal(
                self.job_app, conn, signal_id=signal_id, config_id=self.config_id, symbol=signal.ticker
            )
            signals_repo.insert(
                conn,
                signal_id=signal_id,
                user_id=self.user_id,
                config_id=self.config_id,
                status="accepted",
                raw_body="{}",
                content_type="application/json",
                source_ip=None,
                signal=data,
                ticker=signal.ticker,
                action=data["action"],
                job_id=job_id,
            )
        return job_id


def wait_drained(conn: psycopg.Connection, stack, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        left = conn.execute(
            "select count(*) from signals where status in ('accepted', 'submitting')"
        ).fetchone()[0]
        if left == 0:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"{left} signals still queued after {timeout:.0f} s (log: {stack.log_path})")
        stack.check_alive()
        time.sleep(0.05)


def start_workers(stack, count: int) -> list[str]:
    names = [f"worker-{n}" for n in range(1, count + 1)]
    for name in names:
        stack.start_worker(name)
    return names


FINISHED = "select count(*) from signals where status not in ('accepted', 'submitting')"


def drain(stack, queue: Queue, conn, *, workers: int, alerts: int, symbols: int, timeout: float) -> str:
    """Queue ``alerts`` signals, drain them with ``workers`` processes; return the figures line.

    Signals/s over the drain (first start to last end), and signals per CPU-second: the signals
    finished between a tenth of the drain and its end, divided by the CPU seconds the worker
    processes and every ``postgres`` process on this machine used meanwhile (/proc; the workers'
    start-up is left out; a Postgres process that starts and ends inside the window, e.g. an
    autovacuum worker, is not counted). On a machine they have to themselves, that is
    signals/s per core. Postgres on another host: its CPU is not seen.
    """
    jobs = [queue.enqueue(symbols) for _ in range(alerts)]
    finished_before = conn.execute(FINISHED).fetchone()[0]
    names = start_workers(stack, workers)
    pids = [stack.children[name].pid for name in names]
    deadline = time.monotonic() + timeout
    while conn.execute(FINISHED).fetchone()[0] - finished_before < max(1, alerts // 10):
        if time.monotonic() > deadline:
            log = stack.log_path
            raise SystemExit(f"a tenth of {alerts} signals not done in {timeout:.0f} s (log: {log})")
        stack.check_alive()
        time.sleep(0.01)
    first = _sample(conn, pids)
    wait_drained(conn, stack, timeout)
    last = _sample(conn, pids)
    for name in names:
        stack.stop(name)
    row = conn.execute(DRAIN_WINDOW, (jobs,)).fetchone()
    seconds = (row[1] - row[0]).total_seconds()
    signals, worker_cpu, postgres_cpu = (b - a for a, b in zip(first, last, strict=True))
    if signals == 0 or worker_cpu + postgres_cpu == 0:  # a drain too small to measure
        return f"{row[2] / seconds:.0f} signals/s ({row[2]} jobs in {seconds:.2f} s); too short for CPU"
    per_cpu = signals / (worker_cpu + postgres_cpu)
    return (
        f"{row[2] / seconds:.0f} signals/s ({row[2]} jobs in {seconds:.2f} s, first start to last end); "
        f"{per_cpu:.0f} signals per CPU-second (worker {worker_cpu / signals * 1000:.2f} ms + "
        f"Postgres {postgres_cpu / signals * 1000:.2f} ms of CPU a signal, over {signals} signals)"
    )


def _sample(conn, pids: list[int]) -> tuple[int, float, float]:  # type: ignore[no-untyped-def]
    """(signals finished, the workers' CPU seconds, this machine's Postgres CPU seconds) so far."""
    finished = conn.execute(FINISHED).fetchone()[0]
    return finished, sum(process_cpu_seconds(pid) for pid in pids), postgres_cpu_seconds() or 0.0


def latency(stack, queue: Queue, conn, *, workers: int, rate: float, seconds: float, symbols: int) -> str:
    names = start_workers(stack, workers)
    time.sleep(3)  # started and listening
    sends, late = [], 0
    interval, started = 1.0 / rate, time.perf_counter()
    with ThreadPoolExecutor(SENDERS) as senders:
        for n in range(int(rate * seconds)):
            due = started + n * interval
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            elif wait < -interval:
                late += 1
            sends.append(senders.submit(queue.enqueue, symbols))
        jobs = [send.result() for send in sends]
    achieved = len(jobs) / (time.perf_counter() - started)
    wait_drained(conn, stack, 300)
    for name in names:
        stack.stop(name)
    ms = sorted(float(r[0]) for r in conn.execute(LATENCIES, (jobs,)).fetchall())
    p50 = statistics.median(ms)
    p99 = percentile(ms, 99)
    return (
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {ms[-1]:.1f} ms "
        f"({len(ms)} jobs, sent at {achieved:.0f}/s, {late} sends late by more than one interval)"
    )


def process_counts(text: str) -> list[int]:
    """``"1,2,3"`` → ``[1, 2, 3]``; argparse's error for anything but distinct positive integers."""
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: comma-separated integers, e.g. 1,2,3") from None
    if any(n < 1 for n in counts) or len(set(counts)) != len(counts):
        raise argparse.ArgumentTypeError(f"{text!r}: distinct positive process counts, e.g. 1,2,3")
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=2000, help="signals per drain phase")
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=4, help="WORKER_CONCURRENCY of each worker")
    parser.add_argument(
        "--drain-workers",
        type=process_counts,
        default="1,2",
        help="worker process counts of the drain phases, comma-separated, each run once",
    )
    parser.add_argument("--rate", type=float, default=100.0, help="jobs/s of the latency phase")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the latency phase")
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()

    env = {"WORKER_CONCURRENCY": str(args.concurrency), "RECONCILE_CRON": "", "DAY_ORDER_EXPIRY_CRON": ""}
    with running_stack("bench-worker", worker=False, extra_env=env) as stack:
        queue = Queue(stack.database_url, stack.config_id)
        with psycopg.connect(stack.database_url, autocommit=True) as conn:
            common = {"alerts": args.alerts, "symbols": args.symbols, "timeout": args.timeout}
            drains = {n: drain(stack, queue, conn, workers=n, **common) for n in args.drain_workers}
            timing = {"rate": args.rate, "seconds": args.seconds, "symbols": args.symbols}
            lat_two = latency(stack, queue, conn, workers=2, **timing)
            lat_one = latency(stack, queue, conn, workers=1, **timing)
            statuses = dict(conn.execute("select status, count(*) from signals group by status").fetchall())
        queue.db.close()
    print(
        f"bench-worker: simulated broker, one config, {args.symbols} symbols, "
        f"WORKER_CONCURRENCY={args.concurrency} per worker process"
    )
    for n, figure in drains.items():
        print(f"  drain {args.alerts} queued signals, {n} worker{'s:' if n > 1 else ': '} {figure}")
    print(f"  enqueue-to-start at {args.rate:.0f} jobs/s for {args.seconds:.0f} s, 2 workers: {lat_two}")
    print(f"  enqueue-to-start at {args.rate:.0f} jobs/s for {args.seconds:.0f} s, 1 worker:  {lat_one}")
    print(f"  signal statuses: {statuses}")


if __name__ == "__main__":
    main()
