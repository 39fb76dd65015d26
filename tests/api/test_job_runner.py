"""``POST /api/jobs/run``: the cron-driven runner runs real jobs, behind its shared secret.

The runner's tests run on a database of their own (``viewzenix_test_runner``, migrated like the
session's), so the queue holds only the jobs these tests defer: a runner call takes any due job,
and the session's database keeps jobs of other tests (test-only tasks, retries scheduled later).
Before each test the queue is drained by a runner call, so every test starts with no due job.
"""

from __future__ import annotations

import itertools
import json
import threading
import uuid

import psycopg
import psycopg.rows
import pytest
from builders import enqueue_signal, fresh_database, make_config, orders_of, signal_row
from conftest import ROOT
from psycopg.conninfo import conninfo_to_dict, make_conninfo

import config as app_config
from viewzenix.domain.model import Action, Signal
from viewzenix.jobs import (
    EXECUTE_SIGNAL,
    RETRY_STALLED_JOBS,
    build_job_app,
    defer_execute_signal,
)
from viewzenix.jobs.runner import StoppedBy, run_due_jobs
from viewzenix.jobs.tasks import register_tasks
from viewzenix.services.approvals import EXPIRE_APPROVALS

pytestmark = pytest.mark.db

SECRET = "s3cret-runner-" + "x" * 32
RUNNER_DB = "viewzenix_test_runner"


@pytest.fixture(scope="module")
def runner_database_url(database_url: str) -> str:
    url = fresh_database(database_url, RUNNER_DB)
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
def periodic_tasks(runtime) -> set[str]:
    """The task names the runner may defer on its own: every periodic task it registers.

    Read from the registry (not listed by hand) so a new periodic task, or a tick that falls due
    during a test (``expire_approvals`` ticks every 15 s), is not taken for a stray job.
    """
    job_app = build_job_app(runtime.database_url)
    register_tasks(job_app, runtime.db, runtime.config)
    return {task_name for task_name, _ in job_app.periodic_registry.periodic_tasks}


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


def test_a_call_executes_due_signals_and_reports_each_run_with_a_failures_error(
    runner, runtime, periodic_tasks
):
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
    assert {r["task"] for r in others(body, [*good_jobs, bad_job])} <= periodic_tasks
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


def test_a_call_with_nothing_due_runs_nothing_but_periodic_tasks(runner, runtime, periodic_tasks):
    # Forget every tick already deferred, as when ticks have passed since the drain: the call
    # must then run those periodic tasks (expire_approvals ticks every 15 s) and nothing else.
    with runtime.db.transaction() as conn:
        conn.execute("delete from procrastinate_periodic_defers")

    response = post_run(runner, json={})

    assert response.status_code == 200
    body = response.get_json()
    assert EXPIRE_APPROVALS in {r["task"] for r in body["results"]}
    assert {r["task"] for r in body["results"]} <= periodic_tasks
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


def test_a_database_that_does_not_answer_is_503_at_once(tmp_path):
    from viewzenix import create_app

    app = create_app(
        app_config.TestingConfig(
            {
                # Nothing listens on port 1: connections are refused.
                "DATABASE_URL": "postgresql://postgres@127.0.0.1:1/viewzenix?connect_timeout=1",
                "DATA_DIR": str(tmp_path),
                "JOB_QUEUE_RUNNER_SECRET": SECRET,
            }
        )
    )
    try:
        response = post_run(app.test_client())
    finally:
        app.extensions["viewzenix"].close()

    assert response.status_code == 503
    assert response.get_json() == {
        "code": "database_unavailable",
        "status": 503,
        "message": "The job queue's database does not answer; nothing ran. Try again later.",
    }


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


# --- the Supabase recipe (supabase/job_runner_cron.sql) on plain Postgres ---------------------

RECIPE = ROOT / "supabase" / "job_runner_cron.sql"
RECIPE_DB = "viewzenix_test_cron_recipe"
RUNNER_URL = "https://app.example.test/api/jobs/run"

# Stand-ins for what Supabase provides, with the shapes the recipe uses: Vault's
# vault.decrypted_secrets (name, decrypted_secret), pg_net's net.http_post(url, body, params,
# headers, timeout_milliseconds) -> request id and net._http_response, pg_cron's cron.job,
# cron.job_run_details and cron.schedule (which updates a job of the same name). The fake
# http_post records each call in net.stand_in_calls instead of sending it.
SUPABASE_STAND_INS = """
create schema vault;
create table vault.decrypted_secrets (name text primary key, decrypted_secret text);
create schema net;
create table net.stand_in_calls (
    id bigint generated always as identity primary key,
    url text, body jsonb, params jsonb, headers jsonb, timeout_milliseconds integer
);
create function net.http_post(
    url text, body jsonb default '{}'::jsonb, params jsonb default '{}'::jsonb,
    headers jsonb default '{"Content-Type": "application/json"}'::jsonb,
    timeout_milliseconds integer default 5000
) returns bigint language sql as $$
    insert into net.stand_in_calls (url, body, params, headers, timeout_milliseconds)
    values (url, body, params, headers, timeout_milliseconds) returning id
$$;
create table net._http_response (
    id bigint, status_code integer, content_type text, headers jsonb, content text,
    timed_out boolean, error_msg text, created timestamptz not null default now()
);
create schema cron;
create table cron.job (
    jobid bigint generated always as identity primary key, schedule text not null,
    command text not null, jobname text unique
);
create table cron.job_run_details (
    jobid bigint, runid bigint generated always as identity, status text, return_message text,
    start_time timestamptz, end_time timestamptz
);
create function cron.schedule(job_name text, schedule text, command text) returns bigint
language sql as $$
    insert into cron.job (jobname, schedule, command) values (job_name, schedule, command)
    on conflict (jobname) do update set schedule = excluded.schedule, command = excluded.command
    returning jobid
$$;
"""


@pytest.fixture(scope="module")
def recipe_database_url(database_url: str) -> str:
    """A database with the Supabase stand-ins (roles anon/authenticated exist: the bootstrap's)."""
    params = conninfo_to_dict(database_url)
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(f'drop database if exists "{RECIPE_DB}" with (force)')
        admin.execute(f'create database "{RECIPE_DB}"')
    params["dbname"] = RECIPE_DB
    url = make_conninfo(**params)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SUPABASE_STAND_INS)
    return url


@pytest.fixture()
def supabase(recipe_database_url: str):
    """A connection whose transaction is rolled back after the test: the recipe applied anew each time."""
    with psycopg.connect(recipe_database_url, row_factory=psycopg.rows.dict_row) as conn:
        yield conn
        conn.rollback()


def store_in_vault(conn, url: str | None = RUNNER_URL, secret: str | None = SECRET) -> None:
    for name, value in (("viewzenix_job_runner_url", url), ("viewzenix_job_runner_secret", secret)):
        if value is not None:
            conn.execute("insert into vault.decrypted_secrets values (%s, %s)", (name, value))


def scheduled_command(conn) -> str:
    return conn.execute("select command from cron.job where jobname = 'viewzenix-job-runner'").fetchone()[
        "command"
    ]


def calls(conn) -> list[dict]:
    return conn.execute("select * from net.stand_in_calls order by id").fetchall()


def test_the_recipe_refuses_a_database_without_supabase_vault(database_url):
    with psycopg.connect(database_url) as conn:
        with pytest.raises(psycopg.errors.RaiseException, match="is for Supabase projects"):
            conn.execute(RECIPE.read_text())
        conn.rollback()


def test_the_recipe_is_no_migration():
    from viewzenix.db.migrate import MIGRATIONS_DIR, discover

    assert RECIPE.exists() and RECIPE.parent != MIGRATIONS_DIR
    assert all(m.path.name != RECIPE.name for m in discover())


def test_the_recipe_schedules_the_runner_every_minute_and_can_be_applied_again(supabase):
    supabase.execute(RECIPE.read_text())
    supabase.execute(RECIPE.read_text())

    rows = supabase.execute("select jobname, schedule, command from cron.job").fetchall()
    assert rows == [
        {
            "jobname": "viewzenix-job-runner",
            "schedule": "* * * * *",
            "command": "select private.run_job_queue()",
        }
    ]


def test_the_scheduled_call_posts_what_the_endpoint_expects_and_its_answer_is_shown(
    supabase, runner, runtime
):
    supabase.execute(RECIPE.read_text())
    store_in_vault(supabase)
    config = make_config(runtime.db, name="cron")
    signal_id, job_id = enqueue(runtime, config, "CRON")

    request_id = supabase.execute(scheduled_command(supabase)).fetchone()["run_job_queue"]

    [call] = calls(supabase)
    assert call["id"] == request_id
    assert call["url"] == RUNNER_URL
    assert call["headers"] == {"Content-Type": "application/json", "Authorization": f"Bearer {SECRET}"}
    assert call["body"] == {"limit": 50, "time_budget_s": 20}
    # Longer than the time budget (pg_net's default, 5 s, would cut a busy call short).
    assert call["timeout_milliseconds"] == 35_000
    # The same request, sent to the real endpoint, runs the due job.
    answer = runner.post(
        call["url"].removeprefix("https://app.example.test"), headers=call["headers"], json=call["body"]
    )
    assert answer.status_code == 200
    assert [r["status"] for r in mine(answer.get_json(), [job_id])] == ["succeeded"]
    assert signal_row(runtime.db, signal_id)["status"] == "executed"
    # pg_net stores the answer; the monitoring view reads it back.
    supabase.execute(
        "insert into net._http_response (id, status_code, content_type, content, timed_out) "
        "values (%s, 200, 'application/json', %s, false)",
        (request_id, answer.get_data(as_text=True)),
    )
    [shown] = supabase.execute("select * from private.job_runner_responses").fetchall()
    body = answer.get_json()
    assert (shown["request_id"], shown["status_code"], shown["error_body"]) == (request_id, 200, None)
    assert (shown["processed"], shown["succeeded"], shown["failed"], shown["stopped_by"]) == (
        body["processed"],
        body["succeeded"],
        body["failed"],
        "queue_empty",
    )
    assert shown["results"] == body["results"]


def test_a_refused_call_and_a_failed_cron_run_are_shown(supabase, runner):
    supabase.execute(RECIPE.read_text())
    store_in_vault(supabase, secret="an-old-secret-that-is-long-enough-0123456789")
    request_id = supabase.execute(scheduled_command(supabase)).fetchone()["run_job_queue"]
    [call] = calls(supabase)
    refused = runner.post("/api/jobs/run", headers=call["headers"], json=call["body"])
    assert refused.status_code == 401
    supabase.execute(
        "insert into net._http_response (id, status_code, content_type, content, timed_out) "
        "values (%s, 401, 'application/json', %s, false)",
        (request_id, refused.get_data(as_text=True)),
    )
    jobid = supabase.execute("select jobid from cron.job").fetchone()["jobid"]
    supabase.execute(
        "insert into cron.job_run_details (jobid, status, return_message, start_time, end_time) "
        "values (%s, 'failed', 'ERROR: the runner URL ...', now(), now())",
        (jobid,),
    )

    [shown] = supabase.execute(
        "select status_code, processed, error_body from private.job_runner_responses"
    ).fetchall()
    assert (shown["status_code"], shown["processed"]) == (401, None)
    assert json.loads(shown["error_body"])["code"] == "runner_secret_invalid"
    [run] = supabase.execute("select status, return_message from private.job_runner_cron_runs").fetchall()
    assert run == {"status": "failed", "return_message": "ERROR: the runner URL ..."}


@pytest.mark.parametrize(
    ("url", "secret", "message"),
    [
        ("http://app.example.test/api/jobs/run", SECRET, "must begin with https://"),
        ("app.example.test/api/jobs/run", SECRET, "must begin with https://"),
        ("HTTPS://app.example.test/api/jobs/run", SECRET, "must begin with https://"),
        (None, SECRET, "no runner URL in Vault"),
        ("  ", SECRET, "no runner URL in Vault"),
        (RUNNER_URL, None, "no runner secret"),
        (RUNNER_URL, "short", "no runner secret"),
    ],
)
def test_the_call_refuses_a_url_without_https_or_a_missing_secret_and_sends_nothing(
    supabase, url, secret, message
):
    supabase.execute(RECIPE.read_text())
    store_in_vault(supabase, url=url, secret=secret)

    with pytest.raises(psycopg.errors.InvalidParameterValue, match=message) as raised:
        with supabase.transaction():
            supabase.execute(scheduled_command(supabase))

    if "https://" in message:
        assert "Out of memory" in raised.value.diag.message_hint
    assert calls(supabase) == []


@pytest.mark.parametrize(("arguments", "message"), [("0, 20", "max_jobs"), ("50, 26", "time_budget_s")])
def test_the_call_refuses_arguments_the_endpoint_would_refuse(supabase, arguments, message):
    supabase.execute(RECIPE.read_text())
    store_in_vault(supabase)

    with pytest.raises(psycopg.errors.InvalidParameterValue, match=message):
        with supabase.transaction():
            supabase.execute(f"select private.run_job_queue({arguments})")
    assert calls(supabase) == []


# --- the global pause and secret rotation ----------------------------------------------------

NEXT_SECRET = "next-runner-secret-" + "y" * 32


def test_a_paused_queue_runs_nothing_and_says_so_then_runs_after_the_resume(runner, runtime):
    config = make_config(runtime.db, name="paused")
    signal_id, job_id = enqueue(runtime, config, "PAUS")
    with runtime.db.transaction() as conn:
        conn.execute("update private.job_queue_state set paused = true, reason = 'test'")
    try:
        response = post_run(runner)
        assert response.status_code == 200
        assert response.get_json() | {"elapsed_ms": 0} == {
            "processed": 0,
            "succeeded": 0,
            "failed": 0,
            "stopped_by": "paused",
            "elapsed_ms": 0,
            "results": [],
        }
        assert job_status(runtime, job_id) == "todo"
    finally:
        with runtime.db.transaction() as conn:
            conn.execute("update private.job_queue_state set paused = false, reason = null")
    response = post_run(runner)
    assert [r["status"] for r in mine(response.get_json(), [job_id])] == ["succeeded"]
    assert signal_row(runtime.db, signal_id)["status"] == "executed"


def test_during_a_rotation_both_the_current_and_the_next_secret_are_accepted(runner, runtime, monkeypatch):
    monkeypatch.setattr(runtime.config, "JOB_QUEUE_RUNNER_SECRET_NEXT", NEXT_SECRET)
    assert post_run(runner, secret=SECRET).status_code == 200
    assert post_run(runner, secret=NEXT_SECRET).status_code == 200
    wrong = post_run(runner, secret=NEXT_SECRET[:-1] + "z")
    assert wrong.status_code == 401
    assert wrong.get_json()["code"] == "runner_secret_invalid"


def test_without_a_next_secret_a_would_be_next_secret_is_refused(runner):
    response = post_run(runner, secret=NEXT_SECRET)
    assert response.status_code == 401
    assert response.get_json()["code"] == "runner_secret_invalid"


def test_a_next_secret_needs_a_current_one_and_32_characters():
    with pytest.raises(app_config.ConfigError, match="JOB_QUEUE_RUNNER_SECRET_NEXT is set without"):
        app_config.load_config({"JOB_QUEUE_RUNNER_SECRET_NEXT": NEXT_SECRET})
    with pytest.raises(app_config.ConfigError, match="JOB_QUEUE_RUNNER_SECRET_NEXT must be at least 32"):
        app_config.load_config({"JOB_QUEUE_RUNNER_SECRET": SECRET, "JOB_QUEUE_RUNNER_SECRET_NEXT": "short"})
