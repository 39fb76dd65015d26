"""The job worker process: ``python -m viewzenix.worker`` (Procfile ``worker``).

Runs procrastinate's worker on the ``signals`` queue. ``WORKER_CONCURRENCY`` (default 4) jobs run
at once; jobs of one (config, symbol) never run together (procrastinate ``lock``). SIGTERM or
SIGINT: no new job is taken, running ones get ``WORKER_SHUTDOWN_TIMEOUT_SECONDS`` to finish, and
any still running then goes back to the queue before the process exits (``jobs.graceful``).
"""

from __future__ import annotations

import logging
import os

from config import ConfigError, load_config
from viewzenix.jobs.attempts import AttemptRecorder
from viewzenix.jobs.graceful import run_worker
from viewzenix.jobs.tasks import register_tasks
from viewzenix.logs import configure_logging
from viewzenix.runtime import build_runtime

logger = logging.getLogger(__name__)


def serve_metrics(port: int | None, host: str = "127.0.0.1") -> None:
    """Serve this process's Prometheus metrics (broker calls) on ``host:port``; None: don't.

    Loopback only: scrape it from the same host (a sidecar, node agent) — the web's ``/metrics``
    covers everything read from Postgres; this covers what only the worker sees.
    """
    if not port:
        return
    from prometheus_client import start_http_server

    start_http_server(port, addr=host)
    logger.info("worker metrics on http://%s:%s/metrics", host, port, extra={"action": "worker_metrics"})


def main() -> None:
    """Build the runtime from the environment and run the worker until SIGINT/SIGTERM."""
    try:
        config = load_config()
    except ConfigError as error:  # a bad setting stops the process with its name, not a traceback
        raise SystemExit(f"configuration error: {error}") from None
    configure_logging(config.LOG_LEVEL, config.LOG_FORMAT)
    runtime = build_runtime(config)
    register_tasks(runtime.jobs, runtime.db, config, runtime.accounts)
    serve_metrics(config.WORKER_METRICS_PORT)
    concurrency = int(os.environ.get("WORKER_CONCURRENCY") or 4)
    logger.info("worker starting (concurrency %s)", concurrency, extra={"action": "worker_start"})
    try:
        # Workers wake on NOTIFY (inserts, and lock releases: see migrations); the poll is a fallback.
        run_worker(
            runtime.jobs,
            # SIGTERM: running jobs finish within this bound, else go back to the queue (graceful.py).
            shutdown_timeout=config.WORKER_SHUTDOWN_TIMEOUT_SECONDS,
            concurrency=concurrency,
            fetch_job_polling_interval=1.0,
            # Heartbeats well inside the stalled-job threshold, so a live worker is never "dead".
            update_heartbeat_interval=min(10.0, config.STALLED_JOB_SECONDS / 3),
            stalled_worker_timeout=config.STALLED_JOB_SECONDS,
            # One private.job_attempts row and one log line per run (outcome, duration, error).
            worker_middleware=[AttemptRecorder()],
        )
    finally:
        runtime.close()
        logger.info("worker stopped", extra={"action": "worker_stop"})


if __name__ == "__main__":
    main()
