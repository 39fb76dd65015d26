"""``GET /metrics``: Prometheus text format (prometheus-client), for any number of processes.

Two sources, one answer:

* **In-process**, measured where it happens: intake requests (``POST /webhook...``) by outcome
  and route, with a latency histogram, and REST API requests (``/api/...``) by method, route
  template and status class, 5xx errors and a latency histogram, from a before/after-request
  hook installed by ``install(app)``; Idempotency-Key hits and misses
  (``viewzenix.api.idempotency``); Supabase hook deliveries by source table and outcome with a
  latency histogram (``viewzenix.services.supabase_hooks``). Under gunicorn every worker process
  writes its values to ``PROMETHEUS_MULTIPROC_DIR`` (set by ``gunicorn.conf.py`` before the
  workers start; ``child_exit`` marks dead ones) and the scrape merges them
  (``prometheus_client.multiprocess``); without that variable (tests, ``flask run``) the
  process's own registry is served.
* **Read from Postgres at scrape time**, so the figures are right whichever host runs the
  workers: signals and orders by status, job attempts by task and outcome with a duration
  histogram (``private.job_attempts``), queue depth and the oldest due job's age
  (``procrastinate_jobs``), worker heartbeat age, notification deliveries by event and outcome,
  the latest reconciliation drift, configs gone silent, the Supabase receiver's last event time
  per source table, and the latest drift check per target (drift rate, rows repaired, failed).

Access (config): ``METRICS_ENABLED=false`` answers 404; with ``METRICS_TOKEN`` the request needs
``Authorization: Bearer <token>`` (401 otherwise); without it only loopback clients are served
(403 otherwise), i.e. a Prometheus on the same host or a sidecar.
"""

from __future__ import annotations

import hmac
import os
import time
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Flask, Response, g, request
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from viewzenix.auth import AuthError, bearer_token
from viewzenix.runtime import get_runtime

if TYPE_CHECKING:
    from viewzenix.db import Database

bp = Blueprint("metrics", __name__)

# Seconds; TradingView gives up after 3 s (docs/tradingview.md), the goal is p99 ≤ 25 ms.
INTAKE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 3.0)
JOB_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0)

INTAKE_REQUESTS = Counter(
    "viewzenix_intake_requests",
    "Alert webhook requests answered, by outcome (from the HTTP status) and route.",
    ["outcome", "route"],
)
INTAKE_LATENCY = Histogram(
    "viewzenix_intake_request_duration_seconds",
    "Time to answer an alert webhook request (seconds), by route.",
    ["route"],
    buckets=INTAKE_BUCKETS,
)

API_REQUESTS = Counter(
    "viewzenix_api_requests",
    "REST API (/api/...) requests answered, by method, route template (never the raw path) and "
    "status class (2xx, 3xx, 4xx, 5xx).",
    ["method", "route", "status_class"],
)
API_ERRORS = Counter(
    "viewzenix_api_errors",
    "REST API requests answered with a server error (5xx), by method, route template and status.",
    ["method", "route", "status"],
)
API_LATENCY = Histogram(
    "viewzenix_api_request_duration_seconds",
    "Time to answer a REST API request (seconds), by method and route template.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)

# Intake's answers (services/intake.py): 200 stored (accepted or duplicate), 400 not JSON,
# 401 wrong passphrase, 403 config inactive, 404 unknown URL, 413 too large, 422 refused.
_OUTCOMES = {
    200: "accepted",
    400: "invalid_json",
    401: "unauthorized",
    403: "inactive",
    404: "not_found",
    413: "too_large",
    422: "refused",
}


def _outcome(status: int) -> str:
    if status >= 500:
        return "error"
    return _OUTCOMES.get(status, str(status))


def install(app: Flask) -> None:
    """Time every alert webhook and REST API request and serve ``/metrics`` on ``app``.

    A request that raises past Flask's handlers (an unhandled 500) is not seen by
    ``after_request``; Flask answers it through the error handler, whose response is.
    """

    @app.before_request
    def _start_timer() -> None:
        if request.path.startswith(("/webhook", "/api/")):
            g.metrics_started = time.perf_counter()

    @app.after_request
    def _observe(response: Response) -> Response:
        started = g.pop("metrics_started", None)
        if started is not None:
            # The rule's template (/api/orders/<uuid:order_id>), never the raw path: one series per route.
            route = request.url_rule.rule if request.url_rule is not None else "unmatched"
            elapsed = time.perf_counter() - started
            if request.path.startswith("/api/"):
                status = response.status_code
                API_LATENCY.labels(request.method, route).observe(elapsed)
                API_REQUESTS.labels(request.method, route, f"{status // 100}xx").inc()
                if status >= 500:
                    API_ERRORS.labels(request.method, route, str(status)).inc()
            else:
                INTAKE_LATENCY.labels(route).observe(elapsed)
                INTAKE_REQUESTS.labels(_outcome(response.status_code), route).inc()
        return response

    app.register_blueprint(bp)


def _denied(status: int, code: str, message: str) -> tuple[dict[str, Any], int]:
    return {"code": code, "status": status, "message": message}, status


_FORWARDED = ("X-Forwarded-For", "Forwarded", "X-Real-IP")


def operator_access_refused(config: Any) -> tuple[dict[str, Any], int] | None:
    """Return the error answer for a caller who may not read operator endpoints, else None.

    For ``GET /metrics`` and ``GET /hooks/supabase/health``: with ``METRICS_TOKEN``, only
    ``Authorization: Bearer <METRICS_TOKEN>`` (constant-time compare) → else 401. Without it,
    only a direct loopback client: a request that came through a proxy (``X-Forwarded-For``,
    ``Forwarded`` or ``X-Real-IP`` present) is refused even from 127.0.0.1, since a reverse
    proxy on the same host makes every outside caller look local → 403.
    """
    if config.METRICS_TOKEN:
        try:
            given = bearer_token(request.headers.get("Authorization"))
        except AuthError:
            given = ""
        if not hmac.compare_digest(given.encode(), config.METRICS_TOKEN.encode()):
            return _denied(401, "unauthorized", "This endpoint needs Authorization: Bearer <METRICS_TOKEN>.")
        return None
    if request.remote_addr not in ("127.0.0.1", "::1") or any(h in request.headers for h in _FORWARDED):
        return _denied(
            403, "forbidden", "Without METRICS_TOKEN, this endpoint answers direct loopback clients only."
        )
    return None


@bp.get("/metrics")
def metrics():
    """Answer the Prometheus text exposition (see the module doc for access rules)."""
    config = get_runtime().config
    if not config.METRICS_ENABLED:
        return _denied(404, "not_found", "Metrics are turned off (METRICS_ENABLED=false).")
    refused = operator_access_refused(config)
    if refused is not None:
        return refused
    body = generate_latest(_process_registry()) + generate_latest(_database_registry(get_runtime().db))
    return Response(body, mimetype=CONTENT_TYPE_LATEST)


def _process_registry() -> CollectorRegistry:
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


def _database_registry(db: Database) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(db))
    return registry


COUNTS = """
select 'signal' as kind, status, count(*) as n from public.signals group by status
union all
select 'order', status, count(*) from public.orders group by status
"""

JOB_ATTEMPTS = """
select task_name, outcome, count(*) as n, coalesce(sum(duration_ms), 0) / 1000.0 as seconds,
       {buckets}
from private.job_attempts group by task_name, outcome
"""

# Queued and running jobs per queue, and the oldest due one's age. One arm per status, so that
# each can be read through that status's partial index instead of a scan of the finished jobs
# kept for JOB_RETENTION_DAYS (as viewzenix/health.py's SIGNALS_WAITING).
QUEUE = """
select j.queue_name, 'todo' as status, count(*) as n,
       coalesce(extract(epoch from now() - min(coalesce(j.scheduled_at, d.at))
                filter (where j.scheduled_at is null or j.scheduled_at <= now())),
                0) as oldest_due_seconds
from public.procrastinate_jobs j
left join lateral (
    select min(e.at) as at from public.procrastinate_events e where e.job_id = j.id and e.type = 'deferred'
) d on true
where j.status = 'todo'
group by j.queue_name
union all
select queue_name, 'doing', count(*), 0
from public.procrastinate_jobs
where status = 'doing'
group by queue_name
"""

WORKERS = """
select count(*) as n, extract(epoch from now() - max(last_heartbeat)) as heartbeat_age
from public.procrastinate_workers
"""

DELIVERIES = """
select event, outcome, count(*) as n from private.notification_deliveries group by event, outcome
"""

# The latest run per config: how many configs are in drift, and the worst drift rate (percent).
DRIFT = """
select count(*) filter (where orders_in_drift + positions_in_drift > 0) as configs_in_drift,
       coalesce(max(drift_rate), 0) as max_drift_rate
from (
    select distinct on (config_id) config_id, orders_in_drift, positions_in_drift, drift_rate
    from public.reconciliations where error is null order by config_id, started_at desc
) latest
"""

# Active configs that got at least 5 alerts in the last 7 days, none in the last 24 hours.
SILENT = """
select count(*) as n from (
    select config_id from public.signals
    where received_at > now() - interval '7 days'
    group by config_id
    having count(*) >= 5 and max(received_at) < now() - interval '24 hours'
) quiet join public.webhook_configs c on c.id = quiet.config_id and c.is_active
"""


# The newest delivery per source table the receiver routes (an index range scan each).
HOOK_LAST_EVENTS = """
select s.source, (select max(e.received_at) from private.hook_events e
                  where e.schema_name = s.schema_name and e.table_name = s.table_name) as last_at
from (values ('public.user_symbols', 'public', 'user_symbols'), ('auth.users', 'auth', 'users'))
     as s(source, schema_name, table_name)
"""

SYNC_CHECKS = """
select distinct on (target) target, drift_rate, repaired, error is not null as failed,
       extract(epoch from now() - started_at) as age
from private.sync_checks order by target, started_at desc
"""


class DatabaseCollector:
    """A prometheus-client collector reading the figures above from Postgres at scrape time."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def collect(self):
        buckets = ", ".join(
            f"count(*) filter (where duration_ms <= {b * 1000}) as le_{i}" for i, b in enumerate(JOB_BUCKETS)
        )
        with self.db.transaction() as conn:
            counts = conn.execute(COUNTS).fetchall()
            attempts = conn.execute(JOB_ATTEMPTS.format(buckets=buckets)).fetchall()
            queue = conn.execute(QUEUE).fetchall()
            workers = conn.execute(WORKERS).fetchone()
            deliveries = conn.execute(DELIVERIES).fetchall()
            drift = conn.execute(DRIFT).fetchone()
            silent = conn.execute(SILENT).fetchone()
            hook_last = conn.execute(HOOK_LAST_EVENTS).fetchall()
            sync_checks = conn.execute(SYNC_CHECKS).fetchall()

        signals = GaugeMetricFamily("viewzenix_signals", "Stored signals by status.", labels=["status"])
        orders = GaugeMetricFamily("viewzenix_orders", "Orders by status.", labels=["status"])
        for row in counts:
            (signals if row["kind"] == "signal" else orders).add_metric([row["status"]], row["n"])
        yield signals
        yield orders

        total = CounterMetricFamily(
            "viewzenix_job_attempts", "Runs of jobs by task and outcome.", labels=["task", "outcome"]
        )
        duration = HistogramMetricFamily(
            "viewzenix_job_attempt_duration_seconds",
            "Duration of job runs (seconds), by task and outcome.",
            labels=["task", "outcome"],
        )
        for row in attempts:
            labels = [row["task_name"], row["outcome"]]
            total.add_metric(labels, row["n"])
            le = [(str(b), row[f"le_{i}"]) for i, b in enumerate(JOB_BUCKETS)] + [("+Inf", row["n"])]
            duration.add_metric(labels, le, float(row["seconds"]))
        yield total
        yield duration

        depth = GaugeMetricFamily(
            "viewzenix_queue_jobs",
            "Jobs waiting (todo) or running (doing), by queue.",
            labels=["queue", "status"],
        )
        oldest = GaugeMetricFamily(
            "viewzenix_queue_oldest_due_job_age_seconds",
            "How long the oldest job that is due has waited (seconds; 0 when none), by queue.",
            labels=["queue"],
        )
        ages: dict[str, float] = {}
        for row in queue:
            depth.add_metric([row["queue_name"], row["status"]], row["n"])
            ages[row["queue_name"]] = max(ages.get(row["queue_name"], 0.0), float(row["oldest_due_seconds"]))
        for name, age in ages.items():
            oldest.add_metric([name], age)
        yield depth
        yield oldest

        yield GaugeMetricFamily(
            "viewzenix_workers", "Job workers registered (procrastinate_workers).", value=workers["n"]
        )
        if workers["heartbeat_age"] is not None:
            yield GaugeMetricFamily(
                "viewzenix_worker_heartbeat_age_seconds",
                "Seconds since the freshest worker heartbeat.",
                value=float(workers["heartbeat_age"]),
            )

        sent = CounterMetricFamily(
            "viewzenix_notification_deliveries",
            "Notification delivery attempts by event and outcome (sent, failed, refused, skipped).",
            labels=["event", "outcome"],
        )
        for row in deliveries:
            sent.add_metric([row["event"], row["outcome"]], row["n"])
        yield sent

        yield GaugeMetricFamily(
            "viewzenix_reconciliation_configs_in_drift",
            "Configs whose latest reconciliation found drift.",
            value=drift["configs_in_drift"],
        )
        yield GaugeMetricFamily(
            "viewzenix_reconciliation_drift_rate_max",
            "Highest drift rate (percent of orders compared) among the configs' latest reconciliations.",
            value=float(drift["max_drift_rate"]),
        )
        yield GaugeMetricFamily(
            "viewzenix_configs_silent",
            "Active configs with 5+ alerts in the last 7 days and none in the last 24 hours.",
            value=silent["n"],
        )

        last_event = GaugeMetricFamily(
            "viewzenix_supabase_hook_last_event_timestamp_seconds",
            "Unix time of the newest Supabase webhook delivery recorded, by source table (absent: none yet).",
            labels=["source"],
        )
        for row in hook_last:
            if row["last_at"] is not None:
                last_event.add_metric([row["source"]], row["last_at"].timestamp())
        yield last_event

        drift_rate = GaugeMetricFamily(
            "viewzenix_supabase_sync_drift_rate",
            "Drift rate (percent of compared keys in disagreement) of the latest drift check, by target.",
            labels=["target"],
        )
        repaired = GaugeMetricFamily(
            "viewzenix_supabase_sync_repaired_rows",
            "Rows the latest drift check repaired, by target.",
            labels=["target"],
        )
        failed = GaugeMetricFamily(
            "viewzenix_supabase_sync_check_failed",
            "1 when the latest drift check failed or refused removals, by target.",
            labels=["target"],
        )
        age = GaugeMetricFamily(
            "viewzenix_supabase_sync_check_age_seconds",
            "Seconds since the latest drift check started, by target.",
            labels=["target"],
        )
        for row in sync_checks:
            drift_rate.add_metric([row["target"]], float(row["drift_rate"]))
            repaired.add_metric([row["target"]], row["repaired"])
            failed.add_metric([row["target"]], 1 if row["failed"] else 0)
            age.add_metric([row["target"]], float(row["age"]))
        yield drift_rate
        yield repaired
        yield failed
        yield age
