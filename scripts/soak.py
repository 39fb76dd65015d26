"""Endurance run: mixed traffic against the whole stack for a chosen time, sampled each minute.

``make soak`` ≡ ``python scripts/soak.py`` (``SOAK_MINUTES``, default 30; ``PORT``, default 8105).

Brings up ``scripts/stack.py``'s stack (embedded Postgres under ``.data/soak``, migrations, a
demo webhook config on the simulated broker, gunicorn ``web`` and the job ``worker``) with
``WEBHOOK_SECRET`` set, then keeps an open-loop mix of requests going at ``--rate`` per second:

* 40 % alerts: ``POST /webhooks/<config>/<token>`` (a unique buy or sell of one share, so each is
  stored and executed by the worker);
* 30 % API reads: ``GET /api/signals``, ``/api/orders``, ``/api/positions``, ``/api/account``;
* 10 % API writes: ``PATCH /api/webhook-configs/<id>`` with an ``Idempotency-Key`` (one in three
  replays an earlier key, which must answer the stored result);
* 20 % hook deliveries: signed ``public.user_symbols`` INSERT/UPDATE/DELETE events on
  ``POST /hooks/supabase/db``.

Each minute it samples: the resident memory (RSS, ``/proc/<pid>/status``) of every process —
gunicorn's master and workers, the job worker, and each Postgres process — the open Postgres
connections to the stack's database (``pg_stat_activity``), the queue depth (todo + doing jobs),
the latency percentiles of that minute's requests and its error count (anything but 2xx, or no
answer). At the end it prints one row per minute and a verdict, and writes the samples as JSON
(``--json``).

It fails (exit 1) on any error, on memory growth (a process group whose RSS over the last third
of the run exceeds the first third — after a one-minute warm-up — by more than ``--max-growth``
percent and 10 MB), on connections that keep growing, or on a queue left undrained at the end.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import queue
import random
import statistics
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import requests
from bench_hooks import event as hook_event
from benchkit import percentile
from stack import Stack, running_stack

SECRET = "soak-secret"
KINDS = ("alert", "api_read", "api_write", "hook")
WEIGHTS = (40, 30, 10, 20)
READ_PATHS = ("/api/signals?page_size=20", "/api/orders?page_size=20", "/api/positions", "/api/account")


# --------------------------------------------------------------------------- processes


def _ppid(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def descendants(root: int) -> list[int]:
    """Return ``root`` and every process below it (from ``/proc``)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            parent = _ppid(int(entry.name))
            if parent is not None:
                parents.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(parents.get(pid, []))
    return found


def rss_mb(pid: int, field: str = "VmRSS") -> float | None:
    """Return process ``pid``'s ``field`` of ``/proc/<pid>/status`` in MB; None when it is gone.

    ``VmRSS``: resident memory (for Postgres it counts the shared buffers each backend touched);
    ``RssAnon``: its private part, where a leak shows.
    """
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def postmaster_pid(stack: Stack) -> int | None:
    """The embedded Postgres server's pid (``postmaster.pid``), None on an external server."""
    try:
        return int((stack.data_dir / "pg" / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def process_groups(stack: Stack) -> dict[str, list[int]]:
    """Return the stack's processes by group: ``web`` (gunicorn), ``worker``, ``postgres``."""
    groups = {name: descendants(proc.pid) for name, proc in stack.children.items()}
    pg = postmaster_pid(stack)
    if pg is not None:
        groups["postgres"] = descendants(pg)
    return groups


# --------------------------------------------------------------------------- traffic


@dataclass
class Result:
    kind: str
    at: float
    ms: float
    ok: bool
    detail: str = ""


def _alert_body(n: int) -> bytes:
    side = "buy" if n % 2 == 0 else "sell"
    body = {
        "ticker": f"SK{n % 5}",
        "action": side,
        "quantity": 1,
        "signalPrice": 100.25,
        "extras": {"soak": f"{uuid.uuid4()}"},
    }
    return json.dumps(body).encode()


class Traffic:
    """An open-loop generator: ``rate`` requests per second spread over ``threads`` senders."""

    def __init__(self, stack: Stack, rate: float, threads: int, seed: int = 7) -> None:
        self.stack = stack
        self.rate = rate
        self.threads = threads
        self.results: queue.Queue[Result] = queue.Queue()
        self.stop = threading.Event()
        self.slots: queue.Queue[int] = queue.Queue(maxsize=threads * 4)
        self.random = random.Random(seed)
        self.keys: list[str] = []
        self.keys_lock = threading.Lock()
        self.counter = 0
        self.counter_lock = threading.Lock()

    def _next(self) -> int:
        with self.counter_lock:
            self.counter += 1
            return self.counter

    def run(self, seconds: float) -> None:
        """Send for ``seconds``; results go to ``self.results``."""
        workers = [threading.Thread(target=self._sender, args=(i,), daemon=True) for i in range(self.threads)]
        for w in workers:
            w.start()
        interval = 1.0 / self.rate
        deadline = time.monotonic() + seconds
        next_at = time.monotonic()
        k = 0
        while time.monotonic() < deadline and not self.stop.is_set():
            next_at += interval
            try:
                self.slots.put(k, timeout=1.0)  # when every sender is busy the generator waits
            except queue.Full:
                self.results.put(Result("generator", time.time(), 0.0, False, "all senders busy"))
            k += 1
            pause = next_at - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            else:
                next_at = time.monotonic()
        self.stop.set()
        for w in workers:
            w.join(timeout=30)

    def _sender(self, index: int) -> None:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {self.stack.access_token}"
        hook_session = requests.Session()
        user_id = str(uuid.uuid4())
        live: list[str] = []
        rnd = random.Random(index)
        while not self.stop.is_set():
            try:
                self.slots.get(timeout=0.5)
            except queue.Empty:
                continue
            kind = rnd.choices(KINDS, WEIGHTS)[0]
            n = self._next()
            started = time.perf_counter()
            detail = ""
            try:
                if kind == "alert":
                    r = requests.post(
                        self.stack.webhook_url,
                        data=_alert_body(n),
                        headers={"Content-Type": "application/json"},
                        timeout=10,
                    )
                elif kind == "api_read":
                    path = rnd.choice(READ_PATHS)
                    if path == "/api/account":
                        path += f"?config_id={self.stack.config_id}"
                    r = session.get(self.stack.base_url + path, timeout=10)
                elif kind == "api_write":
                    with self.keys_lock:
                        replay = self.keys and rnd.random() < 1 / 3
                        key = rnd.choice(self.keys) if replay else f"soak-{uuid.uuid4()}"
                        if not replay:
                            self.keys.append(key)
                            del self.keys[:-50]
                    # The body is derived from the key, so a replay is the same request.
                    r = session.patch(
                        f"{self.stack.base_url}/api/webhook-configs/{self.stack.config_id}",
                        json={"name": f"soak {key[-8:]}"},
                        headers={"Idempotency-Key": key},
                        timeout=10,
                    )
                else:
                    roll = n % 10
                    if roll < 6 or not live:
                        op, symbol = "INSERT", f"W{index}X{n}"
                        live.append(symbol)
                    elif roll < 9:
                        op, symbol = "UPDATE", live[-1]
                    else:
                        op, symbol = "DELETE", live.pop()
                    raw = hook_event(op, user_id, symbol, n)
                    signature = hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
                    r = hook_session.post(
                        f"{self.stack.base_url}/hooks/supabase/db",
                        data=raw,
                        headers={"x-hmac-sha256": signature, "Content-Type": "application/json"},
                        timeout=10,
                    )
                ok = 200 <= r.status_code < 300
                if not ok:
                    detail = f"{r.status_code} {r.text[:200]}"
            except requests.RequestException as exc:
                ok, detail = False, f"{type(exc).__name__}: {exc}"
            ms = (time.perf_counter() - started) * 1000
            self.results.put(Result(kind, time.time(), ms, ok, detail))


# --------------------------------------------------------------------------- sampling


@dataclass
class Sample:
    minute: int
    requests: int
    errors: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    by_kind: dict[str, dict[str, float]]
    rss_mb: dict[str, float]
    anon_mb: dict[str, float]
    processes: dict[str, int]
    pg_connections: int
    queue_depth: int
    error_examples: list[str] = field(default_factory=list)


def database_figures(database_url: str) -> tuple[int, int]:
    """Return (open connections to this database, todo + doing jobs)."""
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        conns = conn.execute(
            "select count(*) from pg_stat_activity where datname = current_database() "
            "and pid <> pg_backend_pid()"
        ).fetchone()[0]
        # One count per status, each through its partial index (as viewzenix/health.py does).
        depth = conn.execute(
            "select (select count(*) from public.procrastinate_jobs where status = 'todo')"
            " + (select count(*) from public.procrastinate_jobs where status = 'doing')"
        ).fetchone()[0]
    return conns, depth


def take_sample(minute: int, stack: Stack, results: list[Result]) -> Sample:
    """Sample memory, connections and queue now; latency and errors from ``results``."""
    groups = process_groups(stack)
    rss: dict[str, float] = {}
    anon: dict[str, float] = {}
    counts: dict[str, int] = {}
    for name, pids in groups.items():
        values = [v for v in (rss_mb(p) for p in pids) if v is not None]
        rss[name] = round(sum(values), 1)
        anon[name] = round(sum(v for v in (rss_mb(p, "RssAnon") for p in pids) if v is not None), 1)
        counts[name] = len(values)
    conns, depth = database_figures(stack.database_url)
    ms = [r.ms for r in results]
    by_kind = {}
    for kind in KINDS:
        mine = [r.ms for r in results if r.kind == kind]
        by_kind[kind] = {
            "n": len(mine),
            "errors": sum(1 for r in results if r.kind == kind and not r.ok),
            "p95_ms": round(percentile(mine, 95), 1) if mine else 0.0,
        }
    errors = [r for r in results if not r.ok]
    return Sample(
        minute=minute,
        requests=len(results),
        errors=len(errors),
        p50_ms=round(percentile(ms, 50), 1) if ms else 0.0,
        p95_ms=round(percentile(ms, 95), 1) if ms else 0.0,
        p99_ms=round(percentile(ms, 99), 1) if ms else 0.0,
        by_kind=by_kind,
        rss_mb=rss,
        anon_mb=anon,
        processes=counts,
        pg_connections=conns,
        queue_depth=depth,
        error_examples=[f"{r.kind}: {r.detail}" for r in errors[:3]],
    )


# --------------------------------------------------------------------------- verdict


def slope_per_hour(values: list[float], every_seconds: float = 60.0) -> float:
    """Least-squares slope of ``values`` sampled every ``every_seconds``, per hour."""
    if len(values) < 2:
        return 0.0
    xs = list(range(len(values)))
    mx, my = statistics.fmean(xs), statistics.fmean(values)
    var = sum((x - mx) ** 2 for x in xs)
    if not var:
        return 0.0
    return 3600 / every_seconds * sum((x - mx) * (y - my) for x, y in zip(xs, values, strict=True)) / var


def verdict(samples: list[Sample], max_growth: float, final_depth: int) -> list[str]:
    """Return the reasons the run failed (empty: it passed)."""
    failures = []
    errors = sum(s.errors for s in samples)
    if errors:
        first = next(e for s in samples for e in s.error_examples)
        failures.append(f"{errors} requests failed (first: {first})")
    steady = samples[1:] if len(samples) > 3 else samples
    third = max(1, len(steady) // 3)
    for group in samples[0].anon_mb:
        first = statistics.fmean(s.anon_mb.get(group, 0.0) for s in steady[:third])
        last = statistics.fmean(s.anon_mb.get(group, 0.0) for s in steady[-third:])
        if last - first > 10 and last > first * (1 + max_growth / 100):
            failures.append(
                f"{group} private memory grew from {first:.0f} MB to {last:.0f} MB (> {max_growth:.0f} %)"
            )
    conns = [s.pg_connections for s in steady]
    if len(conns) >= 3 and max(conns[-third:]) > max(conns[:third]) + 5:
        failures.append(f"Postgres connections grew from {max(conns[:third])} to {max(conns[-third:])}")
    if final_depth > 50:
        failures.append(f"{final_depth} jobs still queued a minute after the traffic stopped")
    return failures


def print_table(samples: list[Sample], every_seconds: float = 60.0) -> None:
    groups = list(samples[0].rss_mb) if samples else []
    head = ["min", "reqs", "errs", "p50 ms", "p95 ms", "p99 ms"] + [f"{g} MB rss/anon" for g in groups]
    head += ["pg conns", "queue"]
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---:" for _ in head) + "|")
    for s in samples:
        row = [s.minute, s.requests, s.errors, s.p50_ms, s.p95_ms, s.p99_ms]
        row += [f"{s.rss_mb.get(g, 0.0)}/{s.anon_mb.get(g, 0.0)}" for g in groups]
        row += [s.pg_connections, s.queue_depth]
        print("| " + " | ".join(str(v) for v in row) + " |")
    if len(samples) >= 3:
        print()
        print("| group, memory | minute 2 MB | last MB | slope MB/h (least squares) | 24 h at that slope |")
        print("|---|---:|---:|---:|---:|")
        for g in groups:
            for label, series in (("rss", "rss_mb"), ("anon", "anon_mb")):
                values = [getattr(s, series).get(g, 0.0) for s in samples[1:]]
                slope = slope_per_hour(values, every_seconds)
                print(
                    f"| {g} {label} | {values[0]:.1f} | {values[-1]:.1f} | {slope:+.1f} "
                    f"| {values[-1] + slope * 24:.0f} MB |"
                )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=float(os.environ.get("SOAK_MINUTES") or 30))
    parser.add_argument("--rate", type=float, default=8.0, help="requests per second (all kinds)")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 8105))
    parser.add_argument("--web-concurrency", type=int, default=None)
    parser.add_argument("--max-growth", type=float, default=15.0, help="percent")
    parser.add_argument("--sample-seconds", type=float, default=60.0)
    parser.add_argument("--json", type=Path, default=None, help="write the samples here")
    args = parser.parse_args(argv)

    print(f"soak: {args.minutes:g} min at {args.rate:g} req/s on port {args.port}", flush=True)
    with running_stack(
        "soak",
        port=args.port,
        web_concurrency=args.web_concurrency,
        extra_env={"WEBHOOK_SECRET": SECRET, "LOG_LEVEL": "WARNING"},
    ) as stack:
        traffic = Traffic(stack, args.rate, args.threads)
        sender = threading.Thread(target=traffic.run, args=(args.minutes * 60,), daemon=True)
        sender.start()
        samples: list[Sample] = []
        minute = 0
        started = time.monotonic()
        while sender.is_alive():
            sender.join(timeout=max(0.0, started + (minute + 1) * args.sample_seconds - time.monotonic()))
            minute += 1
            batch: list[Result] = []
            while True:
                try:
                    batch.append(traffic.results.get_nowait())
                except queue.Empty:
                    break
            if not batch and not sender.is_alive():
                break
            stack.check_alive()
            sample = take_sample(minute, stack, batch)
            samples.append(sample)
            print(
                f"minute {minute}: {sample.requests} requests, {sample.errors} errors, "
                f"p95 {sample.p95_ms} ms, rss {sample.rss_mb}, pg conns {sample.pg_connections}, "
                f"queue {sample.queue_depth}"
                + (f" e.g. {sample.error_examples[0]}" if sample.errors else ""),
                flush=True,
            )
        # Let the worker drain what the last minute queued.
        drain_until = time.monotonic() + 60
        depth = database_figures(stack.database_url)[1]
        while depth and time.monotonic() < drain_until:
            time.sleep(2)
            depth = database_figures(stack.database_url)[1]
        print()
        print_table(samples, args.sample_seconds)
        failures = verdict(samples, args.max_growth, depth)
        if args.json:
            args.json.write_text(json.dumps([asdict(s) for s in samples], indent=1))
        print()
        if failures:
            print("SOAK FAILED:\n  " + "\n  ".join(failures))
            return 1
        print(f"soak passed: {sum(s.requests for s in samples)} requests, no errors, no growth")
        return 0


if __name__ == "__main__":
    sys.exit(main())
