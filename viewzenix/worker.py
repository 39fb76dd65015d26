"""The job worker process: ``python -m viewzenix.worker`` (Procfile ``worker``).

Runs procrastinate's worker on the ``signals`` queue. ``WORKER_CONCURRENCY`` (default 4) jobs run
at once; jobs of one (config, symbol) never run together (procrastinate ``lock``).
"""

from __future__ import annotations

import logging
import os

from config import load_config
from viewzenix.jobs.tasks import register_tasks
from viewzenix.logs import configure_logging
from viewzenix.runtime import build_runtime

logger = logging.getLogger(__name__)


def main() -> None:
    """Build the runtime from the environment and run the worker until SIGINT/SIGTERM."""
    config = load_config()
    configure_logging(config.LOG_LEVEL, config.LOG_FORMAT)
    runtime = build_runtime(config)
    register_tasks(
        runtime.jobs,
        runtime.db,
        reconcile_cron=config.RECONCILE_CRON,
        stalled_job_seconds=config.STALLED_JOB_SECONDS,
        stalled_jobs_cron=config.STALLED_JOBS_CRON,
        order_sync_cron=config.ORDER_SYNC_CRON,
    )
    concurrency = int(os.environ.get("WORKER_CONCURRENCY") or 4)
    logger.info("worker starting (concurrency %s)", concurrency, extra={"action": "worker_start"})
    try:
        # Workers wake on NOTIFY (inserts, and lock releases: see migrations); the poll is a fallback.
        runtime.jobs.run_worker(
            concurrency=concurrency,
            shutdown_graceful_timeout=10,
            fetch_job_polling_interval=1.0,
            # Heartbeats well inside the stalled-job threshold, so a live worker is never "dead".
            update_heartbeat_interval=min(10.0, config.STALLED_JOB_SECONDS / 3),
            stalled_worker_timeout=config.STALLED_JOB_SECONDS,
        )
    finally:
        runtime.close()
        logger.info("worker stopped", extra={"action": "worker_stop"})


if __name__ == "__main__":
    main()
