"""Where one alert's intake CPU goes, layer by layer, in this process: ``make bench-intake``.

    make bench-intake        # .venv/bin/python scripts/bench_intake.py
    .venv/bin/python scripts/bench_intake.py --alerts 3000 --rounds 3

``make bench``'s ratio compares intake with a bare Flask app doing one INSERT, both under
gunicorn, and says how far apart they are, not why. This script says why. It builds the real
app (``viewzenix.create_app``, the environment's settings) on a fresh database (``DATABASE_URL``'s
server when set, else an embedded Postgres under ``.data/bench-intake``), creates one webhook
config as ``flask demo-config`` does, and calls the app's WSGI entry directly with the bodies
``make bench`` sends (the TradersPost strategy template, each body unique so none is a
duplicate): no HTTP server, no socket, one request at a time. Around each layer it adds the
main thread's CPU time (``time.thread_time``) spent inside it:

- **request**: the whole WSGI call (Flask's request context, hooks, the view, the response);
- **view**: the webhook view with its rate-limit wrapper;
- **intake.receive**: authenticate, parse, store (the service);
- **parse**: ``intake.read`` (parse the body, mask its secrets, the dedupe key);
- **statement**: ``INTAKE_PARSED_ALERT`` through psycopg (adapting the parameters, sending,
  reading the row; the wait for Postgres is not CPU of this thread);

and, when Postgres runs on this machine, the CPU its backend used (``/proc``) per alert. The
same loop runs ``scripts/bench_baseline.py``'s app (one INSERT of the body) for comparison,
in alternating rounds. Figures are medians over ``--rounds``; each round is ``--alerts``
requests after a warm-up. They are lower than under gunicorn (``make bench``'s "server CPU per
request"): no HTTP parsing or socket, and one process with warm caches; docs/scaling.md
("Eighth pass") gives both.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from benchkit import fresh_database, process_cpu_seconds  # noqa: E402

DB_NAME = "viewzenix_bench_intake"
LAYERS = ("request", "view", "intake.receive", "parse", "statement")


def bodies(count: int) -> list[bytes]:
    """``count`` unique alert bodies in ``make bench``'s template (buy then sell, 50 symbols)."""
    from bench import alert_bodies

    template = alert_bodies(50)
    run = uuid.uuid4().hex[:8]
    return [template[k % len(template)].replace(b"{{seq}}", f"{run}-{k}".encode()) for k in range(count)]


def environ_for(path: str, body: bytes) -> dict[str, Any]:
    """A WSGI environ of ``POST path`` with a JSON ``body``, as gunicorn would pass it."""
    return {
        "REQUEST_METHOD": "POST",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_HOST": "127.0.0.1:8000",
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }


class Meter:
    """Thread CPU seconds spent inside wrapped callables, by layer name."""

    def __init__(self) -> None:
        self.spent = dict.fromkeys((*LAYERS, "baseline"), 0.0)

    def wrap(self, layer: str, func: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return func(*args, **kwargs)
            finally:
                self.spent[layer] += time.thread_time() - started

        return timed


def call(app: Callable[..., Any], path: str, body: bytes) -> str:
    """Run one request through ``app``'s WSGI entry; return its status line."""
    statuses: list[str] = []
    result = app(environ_for(path, body), lambda status, headers, exc_info=None: statuses.append(status))
    try:
        b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close:
            close()
    return statuses[0]


def local_backend_pid(source) -> int | None:
    """The backend pid of the one connection ``source`` (a ``Database`` or a pool) holds, when it
    is a Postgres process on this machine; None when the server is remote, or in a container
    with its own pid namespace, where the same number names another process."""
    with source.connection() as conn:
        pid = conn.info.backend_pid
    try:
        return pid if Path(f"/proc/{pid}/comm").read_text().startswith("postgres") else None
    except OSError:
        return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alerts", type=int, default=2000, help="requests per round and app")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of each app")
    parser.add_argument("--warmup", type=int, default=300, help="requests before the first round")
    parser.add_argument(
        "--cprofile",
        type=int,
        default=0,
        help="then profile one more round (cProfile, wall clock); print the N costliest functions",
    )
    args = parser.parse_args()
    if args.alerts < 1 or args.rounds < 1 or args.warmup < 0 or args.cprofile < 0:
        parser.error("--alerts and --rounds must be positive, --warmup and --cprofile not negative")

    url, handle = fresh_database(DB_NAME, ROOT / ".data" / "bench-intake")
    os.environ.update(
        DATABASE_URL=url,
        DATA_DIR=str(ROOT / ".data" / "bench-intake-app"),
        DB_POOL_MIN_SIZE="1",
        DB_POOL_MAX_SIZE="1",  # one connection: its backend is the one measured
    )
    from bench_baseline import CREATE_TABLE
    from bench_baseline import create_app as create_baseline

    from viewzenix import create_app
    from viewzenix.repositories import webhook_configs as configs_repo
    from viewzenix.services import intake
    from viewzenix.services import webhook_configs as configs_service
    from viewzenix.services.common import Caller
    from viewzenix.services.local_signin import ensure_local_user

    app = create_app()
    runtime = app.extensions["viewzenix"]
    if runtime.local_signer is None:
        raise SystemExit("bench_intake signs in a local user: unset SUPABASE_URL (local sign-in mode)")
    email = "bench-intake@example.test"
    user_id = ensure_local_user(runtime.db, email)
    caller = Caller(
        user_id=user_id,
        email=email,
        claims=runtime.verifier.verify(runtime.local_signer.issue(user_id, email)).raw,
    )
    settings = {
        "name": "bench intake",
        "starting_cash": "10000000",
        "quantity_type": "fixed_quantity",
        "quantity": "1",
    }
    row, token = configs_service.create(runtime.db, caller, settings)
    path = f"/webhooks/{row['id']}/{token}"
    with runtime.db.statement() as conn:
        conn.execute(CREATE_TABLE)
    baseline = create_baseline()

    meter = Meter()
    view_name = "intake.receive_webhook"
    app.view_functions[view_name] = meter.wrap("view", app.view_functions[view_name])
    intake.receive = meter.wrap("intake.receive", intake.receive)
    intake.read = meter.wrap("parse", intake.read)
    configs_repo.intake_parsed_alert = meter.wrap("statement", configs_repo.intake_parsed_alert)
    request = meter.wrap("request", app.wsgi_app)
    baseline_request = meter.wrap("baseline", baseline.wsgi_app)  # the same harness around both
    pg_pid = local_backend_pid(runtime.db)
    base_pg_pid = local_backend_pid(baseline.extensions["bench_baseline_pool"])

    sent = bodies(args.warmup + args.warmup // 3 + (args.rounds * 2 + 1) * args.alerts)
    cursor = 0

    def run(target: Callable[..., Any], target_path: str, count: int) -> None:
        nonlocal cursor
        for body in sent[cursor : cursor + count]:
            status = call(target, target_path, body)
            if not status.startswith("200"):
                raise SystemExit(f"{target_path}: answered {status}")
        cursor += count

    run(request, path, args.warmup)
    run(baseline.wsgi_app, "/baseline", args.warmup // 3)
    per_round: dict[str, list[float]] = {
        name: [] for name in (*LAYERS, "postgres", "baseline", "baseline postgres")
    }
    for _ in range(args.rounds):
        before = dict(meter.spent)
        pg_before = process_cpu_seconds(pg_pid) if pg_pid else 0.0
        run(request, path, args.alerts)
        for layer in LAYERS:
            per_round[layer].append(1000 * (meter.spent[layer] - before[layer]) / args.alerts)
        if pg_pid:
            per_round["postgres"].append(1000 * (process_cpu_seconds(pg_pid) - pg_before) / args.alerts)
        base_before = meter.spent["baseline"]
        base_pg_before = process_cpu_seconds(base_pg_pid) if base_pg_pid else 0.0
        run(baseline_request, "/baseline", args.alerts)
        per_round["baseline"].append(1000 * (meter.spent["baseline"] - base_before) / args.alerts)
        if base_pg_pid:
            per_round["baseline postgres"].append(
                1000 * (process_cpu_seconds(base_pg_pid) - base_pg_before) / args.alerts
            )
    if args.cprofile:
        import cProfile
        import pstats

        profile = cProfile.Profile()
        profile.enable()
        run(request, path, args.alerts)
        profile.disable()
        pstats.Stats(profile).sort_stats("tottime").print_stats(args.cprofile)
    with runtime.db.statement() as conn:
        stored = conn.execute(
            "select count(*) as n from public.signals where config_id = %s and status = 'accepted'",
            (row["id"],),
        ).fetchone()["n"]
    expected = args.warmup + (args.rounds + (1 if args.cprofile else 0)) * args.alerts
    if stored != expected:
        raise SystemExit(f"{stored} accepted signals stored, {expected} sent: the figures are not of intake")

    med = {name: statistics.median(values) for name, values in per_round.items() if values}
    print(
        f"Intake CPU by layer, in process — {args.rounds} rounds of {args.alerts} alerts, medians "
        f"(main thread CPU, ms per alert; {stored} accepted signals stored)"
    )
    rows = [
        ("request (WSGI call)", med["request"], "Flask's request context, hooks, the view, the response"),
        (
            "  outside the view",
            med["request"] - med["view"],
            "request context, before/after hooks, response",
        ),
        ("  view", med["view"], "rate-limit wrapper, body read, the service, the answer"),
        ("    intake.receive", med["intake.receive"], "the service"),
        ("      parse", med["parse"], "intake.read: parse, mask secrets, dedupe key"),
        ("      statement", med["statement"], "INTAKE_PARSED_ALERT through psycopg (CPU, not the wait)"),
        (
            "      rest of receive",
            med["intake.receive"] - med["parse"] - med["statement"],
            "token digest, parameters, the pool's connection, the outcome",
        ),
    ]
    if "postgres" in med:
        rows.append(("Postgres backend", med["postgres"], "the statement's server CPU"))
    rows.append(("baseline request", med["baseline"], "bench_baseline: bare Flask, one INSERT"))
    if "baseline postgres" in med:
        rows.append(("baseline Postgres backend", med["baseline postgres"], "its INSERT's server CPU"))
    for label, value, what in rows:
        print(f"  {label:<28} {value:6.3f} ms   {what}")
    if "postgres" in med and "baseline postgres" in med:
        ours = med["request"] + med["postgres"]
        theirs = med["baseline"] + med["baseline postgres"]
        print(
            f"  baseline / intake, app + Postgres CPU: {theirs / ours:.2f} "
            "(in process; make bench: under gunicorn)"
        )
    del handle
    return 0


if __name__ == "__main__":
    sys.exit(main())
