"""``POST /api/jobs/run``: the cron-driven runner runs real jobs, behind its shared secret.

The runner's tests run on a database of their own (``viewzenix_test_runner``, migrated like the
session's), so the queue holds only the jobs these tests defer: a runner call takes any due job,
and the session's database keeps jobs of other tests (test-only tasks, retries scheduled later).
Before each test the queue is drained by a runner call, so every test starts with no due job.
"""

from __future__ import annotations

import itertools
import threading
import uuid

import psycopg
import pytest
from builders import enqueue_signal, make_config, orders_of, signal_row
from psycopg.conninfo import conninfo_to_dict, make_conninfo

import config as app_config
from viewzenix.db.migrate import apply_migrations
from viewzenix.domain.model import Action, Signal
from viewzenix.jobs import (
    EXECUTE_SIGNAL,
    PURGE_EXPIRED,
    RETRY_STALLED_JOBS,
    build_job_app,
    defer_execute_signal,
)
from viewzenix.jobs.runner import StoppedBy, run_due_jobs

pytestmark = pytest.mark.db

SECRET = "s3cret-runner-" + "x" * 32
RUNNER_DB = "viewzenix_test_runner"
PERIODIC_TASKS = {RETRY_STALLED_JOBS, PURGE_EXPIRED}


@pytest.fixture(scope="module")
def runner_database_url(database_url: str) -> str:
    params = conninfo_to_dict(database_url)
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(f'drop database if exists "{RUNNER_DB}" with (force)')
        admin.execute(f'create database "{RUNNER_DB}"')
    params["dbname"] = RUNNER_DB
    url = make_conninfo(**params)
    apply_migrations(url)
    return url


@pytest.fixture(scope="module")
def runner_app(runner_database_url: str, tmp_path_factory: pytest.TempPathFactory):
    from viewzenix import create_app

    config = app_config.TestingConfig(
        {
            "DATABASE_URL": runner_database_url,
            "DATA_DIR": str(tmp_path_factory.mktemp("runner-data")),
            "JOB_QUEUE_RUNNER_SECRET": SECRET,
            "RECONCILE_CRON": "",
        }
    )
    app = create_app(config)
    yield app
    app.extensions["viewzenix"].close()


@pytest.fixture()
def runtime(runner_app):
    return runner_app.extensions["viewzenix"]


@pytest.fixture(autouse=True)
def drained(runtime):
    """Start every test with no due job (what earlier tests left, periodic ticks included)."""
    report = run_due_jobs(runtime.config, runtime.db, runtime.database_url, limit=1000)
    assert report.stopped_by is StoppedBy.QUEUE_EMPTY


@pytest.fixture()
def runner(runner_app):
    return runner_app.test_client()


def post_run(client, *, secret: str | None = SECRET, **kwargs):
    headers = kwargs.pop("headers", {})
    if secret is not None:
        headers["Authorization"] = f"Bearer {secret}"
    return client.post("/api/jobs/run", headers=headers, **kwargs)


def enqueue(runtime, config, ticker: str) -> tuple[uuid.UUID, int]:
    """A stored signal with its job deferred (as intake does); return (signal_id, job_id)."""
    signal_id = enqueue_signal(
        runtime.db,
        runtime.database_url,
        config,
        Signal(ticker=ticker, action=Action.BUY, quantity=1, signal_price=100),
    )
    return signal_id, signal_row(runtime.db, signal_id)["job_id"]


def enqueue_unreadable(runtime, config) -> tuple[uuid.UUID, int]:
    """A signal whose stored body has no action: its job raises ValueError (not retryable)."""
    from builders import add_signal

    signal_id = uuid.uuid4()
    with runtime.db.transaction() as conn:
        job_id = defer_execute_signal(
            build_job_app(runtime.database_url),
            conn,
            signal_id=signal_id,
            config_id=config["id"],
            symbol="BADX",
        )
        add_signal(conn, config, {"ticker": "BADX"}, signal_id=signal_id, job_id=job_id)
    return signal_id, job_id


def job_status(runtime, job_id: int) -> str:
    with runtime.db.transaction() as conn:
        return conn.execute(
            "select status::text as status from procrastinate_jobs where id = %s", (job_id,)
        ).fetchone()["status"]


def attempts(runtime, job_ids) -> list[dict]:
    with runtime.db.transaction() as conn:
        return conn.execute(
            "select job_id, attempt, outcome, worker, error from private.job_attempts "
            "where job_id = any(%s) order by job_id, attempt",
            (list(job_ids),),
        ).fetchall()


def mine(body: dict, job_ids) -> list[dict]:
    return [r for r in body["results"] if r["job_id"] in set(job_ids)]


def others(body: dict, job_ids) -> list[dict]:
    return [r for r in body["results"] if r["job_id"] not in set(job_ids)]


# --- running jobs ----------------------------------------------------------------------------


def test_a_call_executes_due_signals_and_reports_each_run_with_a_failures_error(runner, runtime):
    config = make_config(runtime.db, name="runner")
    good = [enqueue(runtime, config, ticker) for ticker in ("RUNA", "RUNB", "RUNC")]
    bad_signal, bad_job = enqueue_unreadable(runtime, config)
    good_jobs = [job_id for _, job_id in good]

    response = post_run(runner)

    assert response.status_code == 200
    body = response.get_json()
    assert [
        (r["job_id"], r["task"], r["attempt"], r["status"], r["error"]) for r in mine(body, good_jobs)
    ] == [(job_id, EXECUTE_SIGNAL, 1, "succeeded", None) for job_id in good_jobs]
    [failed] = mine(body, [bad_job])
    assert (failed["task"], failed["status"], failed["error"]) == (
        EXECUTE_SIGNAL,
        "failed",
        "ValueError: stored signal has no action",
    )
    assert all(r["duration_ms"] >= 0 for r in body["results"])
    # Anything else it ran is a periodic task it deferred (see test_periodic_tasks_...).
    assert {r["task"] for r in others(body, [*good_jobs, bad_job])} <= PERIODIC_TASKS
    assert body["processed"] == len(body["results"])
    assert body["succeeded"] == sum(r["status"] == "succeeded" for r in body["results"])
    assert body["failed"] == body["processed"] - body["succeeded"] == 1
    assert body["stopped_by"] == "queue_empty"
    for signal_id, job_id in good:
        assert signal_row(runtime.db, signal_id)["status"] == "executed"
        assert [o["status"] for o in orders_of(runtime.db, signal_id)] == ["filled"]
        assert job_status(runtime, job_id) == "succeeded"
    assert job_status(runtime, bad_job) == "failed"
    assert signal_row(runtime.db, bad_signal)["status"] == "failed"
    # The attempt history is the worker's, labelled as the runner's.
    assert [
        (a["job_id"], a["outcome"], a["worker"], a["error"]) for a in attempts(runtime, [*good_jobs, bad_job])
    ] == [
        *((job_id, "succeeded", "runner", None) for job_id in good_jobs),
        (bad_job, "failed", "runner", "stored signal has no action"),
    ]


def test_a_call_with_nothing_due_runs_nothing_but_periodic_tasks(runner):
    response = post_run(runner, json={})

    assert response.status_code == 200
    body = response.get_json()
    assert {r["task"] for r in body["results"]} <= PERIODIC_TASKS
    assert body["stopped_by"] == "queue_empty"
    assert body["processed"] == len(body["results"]) == body["succeeded"]


def test_a_call_stops_after_limit_runs_and_the_next_call_takes_the_rest(runner, runtime):
    config = make_config(runtime.db, name="limit")
    jobs = [enqueue(runtime, config, f"LIM{i}")[1] for i in range(5)]

    first = post_run(runner, query_string={"limit": 2})

    assert first.status_code == 200
    body = first.get_json()
    # The oldest due jobs first (procrastinate: priority, then id).
    assert [r["job_id"] for r in body["results"]] == jobs[:2]
    assert (body["processed"], body["succeeded"], body["failed"], body["stopped_by"]) == (2, 2, 0, "limit")
    assert [job_status(runtime, j) for j in jobs] == ["succeeded"] * 2 + ["todo"] * 3

    rest = post_run(runner, json={"limit": 10})

    assert rest.status_code == 200
    assert [r["job_id"] for r in mine(rest.get_json(), jobs)] == jobs[2:]
    assert [job_status(runtime, j) for j in jobs] == ["succeeded"] * 5


def test_the_json_body_wins_over_the_query_string(runner, runtime):
    config = make_config(runtime.db, name="both")
    jobs = [enqueue(runtime, config, f"BTH{i}")[1] for i in range(3)]

    response = post_run(runner, query_string={"limit": 3}, json={"limit": 1})

    assert response.status_code == 200
    assert [r["job_id"] for r in response.get_json()["results"]] == jobs[:1]


def test_no_job_starts_once_the_time_budget_is_spent(runtime):
    config = make_config(runtime.db, name="budget")
    jobs = [enqueue(runtime, config, f"BUD{i}")[1] for i in range(4)]
    # A fake clock read at the start (0 s) and when each run ends: 10 s, 20 s, ...
    clock = itertools.count(0, 10).__next__

    report = run_due_jobs(
        runtime.config, runtime.db, runtime.database_url, limit=50, time_budget_s=15, clock=clock
    )

    # The first run ends at 10 s (within 15 s): the next starts; the second ends at 20 s: stop.
    assert [r.job_id for r in report.results] == jobs[:2]
    assert (report.processed, report.stopped_by) == (2, StoppedBy.TIME_BUDGET)
    assert [job_status(runtime, j) for j in jobs] == ["succeeded"] * 2 + ["todo"] * 2


def test_periodic_tasks_run_in_a_runner_only_deployment_and_recover_a_dead_runners_job(runner, runtime):
    """A runner killed mid-job (gunicorn's timeout, a deploy) leaves its job ``doing``: the next
    call's stalled-job sweep (a periodic task the call defers) retries it, and the call runs it."""
    config = make_config(runtime.db, name="stalled")
    signal_id, job_id = enqueue(runtime, config, "STALL")
    with runtime.db.transaction() as conn:
        dead = conn.execute(
            "insert into procrastinate_workers (last_heartbeat) values (now() - interval '1 hour') "
            "returning id"
        ).fetchone()["id"]
        conn.execute(
            "update procrastinate_jobs set status = 'doing', worker_id = %s where id = %s", (dead, job_id)
        )
        # Forget the sweep ticks already deferred (by the drain): as when a tick has passed
        # since the last call.
        conn.execute("delete from procrastinate_periodic_defers where task_name = %s", (RETRY_STALLED_JOBS,))

    response = post_run(runner)

    assert response.status_code == 200
    body = response.get_json()
    assert [(r["task"], r["status"]) for r in body["results"] if r["task"] == RETRY_STALLED_JOBS] == [
        (RETRY_STALLED_JOBS, "succeeded")
    ]
    assert [(r["job_id"], r["attempt"], r["status"]) for r in mine(body, [job_id])] == [
        (job_id, 2, "succeeded")
    ]
    assert [(a["attempt"], a["outcome"], a["worker"]) for a in attempts(runtime, [job_id])] == [
        (1, "worker_died", "runner"),
        (2, "succeeded", "runner"),
    ]
    assert signal_row(runtime.db, signal_id)["status"] == "executed"
    assert len(orders_of(runtime.db, signal_id)) == 1


def test_two_concurrent_calls_never_run_the_same_job(runner_app, runtime, monkeypatch):
    config = make_config(runtime.db, name="concurrent")
    jobs = [enqueue(runtime, config, f"CC{i:02d}")[1] for i in range(40)]
    # The first two runs wait for each other: one call cannot run a second job before its first
    # ends, so they belong to the two calls, which are then both running a job at once.
    from viewzenix.services import execution

    real = execution.execute_signal
    barrier = threading.Barrier(2, timeout=30)
    started = itertools.count()

    def execute_signal(*args, **kwargs):
        if next(started) < 2:
            barrier.wait()
        return real(*args, **kwargs)

    monkeypatch.setattr(execution, "execute_signal", execute_signal)
    answers: list = [None, None]

    def call(index: int) -> None:
        answers[index] = post_run(runner_app.test_client(), json={"limit": 100})

    threads = [threading.Thread(target=call, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [a.status_code for a in answers] == [200, 200]
    ran = [[r["job_id"] for r in mine(a.get_json(), jobs)] for a in answers]
    assert all(ran), f"both calls ran jobs: {[len(r) for r in ran]}"
    assert not set(ran[0]) & set(ran[1])
    assert sorted(ran[0] + ran[1]) == jobs
    rows = attempts(runtime, jobs)
    assert [(a["job_id"], a["attempt"], a["outcome"]) for a in rows] == [(j, 1, "succeeded") for j in jobs]
    assert {job_status(runtime, j) for j in jobs} == {"succeeded"}


# --- the secret ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "runner_secret_missing"),
        ({"Authorization": "Bearer wrong-" + "x" * 40}, "runner_secret_invalid"),
        ({"Authorization": f"Bearer {SECRET}x"}, "runner_secret_invalid"),
        ({"Authorization": f"Bearer {SECRET[:-1]}"}, "runner_secret_invalid"),
        ({"Authorization": f"Basic {SECRET}"}, "runner_secret_malformed"),
        ({"Authorization": f"Bearer {SECRET} extra"}, "runner_secret_malformed"),
    ],
)
def test_a_missing_or_wrong_secret_is_401_and_runs_nothing(runner, runtime, headers, code):
    config = make_config(runtime.db, name="auth")
    _, job_id = enqueue(runtime, config, "AUTH")

    # Invalid arguments too: the secret is checked first.
    response = post_run(runner, secret=None, headers=dict(headers), json={"limit": 0})

    assert response.status_code == 401
    body = response.get_json()
    assert (body["code"], body["status"]) == (code, 401)
    assert "JOB_QUEUE_RUNNER_SECRET" in body["message"]
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="viewzenix-job-runner"'
    assert job_status(runtime, job_id) == "todo"
    assert attempts(runtime, [job_id]) == []


def test_a_users_access_token_is_not_the_runner_secret(runner, runtime, runner_app):
    from viewzenix.cli import ensure_local_user

    email = f"admin-{uuid.uuid4().hex[:8]}@example.test"
    token = runtime.local_signer.issue(
        ensure_local_user(runtime.db, email), email, app_metadata={"role": "admin"}
    )
    config = make_config(runtime.db, name="user-token")
    _, job_id = enqueue(runtime, config, "UTOK")

    response = post_run(runner, secret=token)

    assert response.status_code == 401
    assert response.get_json()["code"] == "runner_secret_invalid"
    assert job_status(runtime, job_id) == "todo"


def test_the_right_secret_runs_jobs(runner, runtime):
    config = make_config(runtime.db, name="right")
    signal_id, job_id = enqueue(runtime, config, "RGHT")

    response = post_run(runner, headers={"Authorization": f"bearer  {SECRET} "})

    assert response.status_code == 200
    assert [r["status"] for r in mine(response.get_json(), [job_id])] == ["succeeded"]
    assert signal_row(runtime.db, signal_id)["status"] == "executed"


def test_the_endpoint_is_off_when_no_secret_is_configured(client):
    # The session's app has no JOB_QUEUE_RUNNER_SECRET.
    response = post_run(client)

    assert response.status_code == 404
    assert response.get_json() == {
        "code": "job_runner_disabled",
        "status": 404,
        "message": "POST /api/jobs/run is off: set JOB_QUEUE_RUNNER_SECRET to use the cron-driven runner.",
    }
    assert post_run(client, secret=None).status_code == 404


# --- arguments -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "location", "field"),
    [
        ({"query_string": {"limit": 0}}, "query", "limit"),
        ({"query_string": {"limit": "ten"}}, "query", "limit"),
        ({"query_string": {"limit": 1001}}, "query", "limit"),
        ({"query_string": {"time_budget_s": 0}}, "query", "time_budget_s"),
        ({"query_string": {"time_budget_s": 26}}, "query", "time_budget_s"),
        ({"query_string": {"time_budget_s": "nan"}}, "query", "time_budget_s"),
        ({"json": {"limit": -1}}, "json", "limit"),
        ({"json": {"limit": "5"}}, "json", "limit"),
        ({"json": {"limit": 2.5}}, "json", "limit"),
        ({"json": {"limit": True}}, "json", "limit"),
        ({"json": {"time_budget_s": 600}}, "json", "time_budget_s"),
        ({"json": {"limt": 5}}, "json", "limt"),
    ],
)
def test_bad_arguments_are_422_with_the_field_and_run_nothing(runner, runtime, kwargs, location, field):
    config = make_config(runtime.db, name="args")
    _, job_id = enqueue(runtime, config, "ARGS")

    response = post_run(runner, **kwargs)

    assert response.status_code == 422
    body = response.get_json()
    assert (body["code"], body["status"]) == ("validation_error", 422)
    assert list(body["errors"][location]) == [field]
    assert job_status(runtime, job_id) == "todo"


def test_a_body_that_is_not_an_object_is_422(runner):
    response = post_run(runner, json=[1, 2])

    assert response.status_code == 422
    assert response.get_json()["code"] == "validation_error"


def test_an_idempotency_key_is_ignored_each_call_runs_what_is_due(runner, runtime):
    config = make_config(runtime.db, name="idem")
    headers = {"Idempotency-Key": "cron-1"}
    _, first = enqueue(runtime, config, "IDM1")
    one = post_run(runner, headers=dict(headers))
    _, second = enqueue(runtime, config, "IDM2")
    two = post_run(runner, headers=dict(headers))

    assert (one.status_code, two.status_code) == (200, 200)
    assert "Idempotent-Replayed" not in two.headers
    assert [r["job_id"] for r in mine(one.get_json(), [first, second])] == [first]
    assert [r["job_id"] for r in mine(two.get_json(), [first, second])] == [second]


def test_the_openapi_document_names_the_runner_secret(runner):
    spec = runner.get("/api/openapi.json").get_json()

    operation = spec["paths"]["/api/jobs/run"]["post"]
    assert operation["security"] == [{"jobRunnerSecret": []}]
    assert spec["components"]["securitySchemes"]["jobRunnerSecret"]["scheme"] == "bearer"
