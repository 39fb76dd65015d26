"""The stalled-job sweep: retry a dead worker's job, but give up after the last attempt.

The sweep is the worker's periodic task; here it runs against a stand-in for procrastinate's
job manager (a test double of that library's three calls), and our real Postgres.
"""

from __future__ import annotations

import asyncio
import uuid
from types import SimpleNamespace

import pytest
from builders import make_config, signals_of_status, store_signal

from viewzenix.domain.model import Action, Signal
from viewzenix.jobs import EXECUTE_SIGNAL, RETRY_STALLED_JOBS, SIGNAL_RETRY, build_job_app
from viewzenix.jobs.tasks import register_tasks

pytestmark = pytest.mark.db


class FakeJobManager:
    """Stand-in for procrastinate's JobManager: hands out ``stalled`` and records what is done."""

    def __init__(self, stalled):
        self.stalled = stalled
        self.retried: list[int] = []
        self.finished: list[tuple[int, str]] = []

    async def get_stalled_jobs(self, seconds_since_heartbeat):
        return self.stalled

    async def retry_job_by_id_async(self, job_id, retry_at):
        self.retried.append(job_id)

    async def finish_job_by_id_async(self, job_id, status, delete_job):
        self.finished.append((job_id, status.value))

    async def prune_stalled_workers(self, seconds_since_heartbeat):
        return []


def sweep(database_url, db, stalled) -> FakeJobManager:
    job_app = build_job_app(database_url)
    register_tasks(job_app, db)
    manager = FakeJobManager(stalled)
    context = SimpleNamespace(app=SimpleNamespace(job_manager=manager))
    asyncio.run(job_app.tasks[RETRY_STALLED_JOBS].func(context, timestamp=0))
    return manager


def stalled_job(job_id: int, signal_id: uuid.UUID, attempts: int):
    return SimpleNamespace(
        id=job_id, attempts=attempts, task_name=EXECUTE_SIGNAL, task_kwargs={"signal_id": str(signal_id)}
    )


def test_a_dead_workers_job_is_retried(db, database_url):
    config = make_config(db)
    signal_id = store_signal(db, config, Signal(ticker="AAPL", action=Action.BUY))

    manager = sweep(database_url, db, [stalled_job(11, signal_id, attempts=0)])

    assert (manager.retried, manager.finished) == ([11], [])
    assert signals_of_status(db, config, "accepted") == [signal_id]


def test_a_job_that_killed_its_worker_on_its_last_attempt_is_failed_with_its_signal(db, database_url):
    config = make_config(db)
    signal_id = store_signal(db, config, Signal(ticker="AAPL", action=Action.BUY))
    last = (SIGNAL_RETRY.max_attempts or 1) - 1

    manager = sweep(database_url, db, [stalled_job(12, signal_id, attempts=last)])

    assert manager.retried == []
    assert manager.finished == [(12, "failed")]
    assert signals_of_status(db, config, "failed") == [signal_id]
