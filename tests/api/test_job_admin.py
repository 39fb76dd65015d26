"""The job queue's admin API on real jobs: metrics, lists, a job's attempts and error text, the
signal and orders it belongs to, retry / cancel / run-now with their record, and 403 for
everyone who is not an admin.

Jobs run through real procrastinate workers in this process (``run_worker(wait=False)`` with the
attempt middleware, as ``python -m viewzenix.worker``) on our real Postgres. Tasks of a test run
on a queue of its own, so its figures are its own.
"""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from typing import Any

import pytest
from builders import enqueue_signal, make_config, orders_of, signal_row
from fake_broker import FakeBroker
from procrastinate.jobs import Status

from viewzenix.db import Database
from viewzenix.domain.model import Action, Signal
from viewzenix.jobs import EXECUTE_SIGNAL, QUEUE, build_job_app
from viewzenix.jobs.attempts import AttemptRecorder
from viewzenix.jobs.retry import SIGNAL_RETRY, Backoff
from viewzenix.services.execution import execute_signal

pytestmark = pytest.mark.db


@pytest.fixture()
def admin(app) -> tuple[str, dict[str, str]]:
    """An admin's email and headers (app_metadata.role = admin, as only the server can set)."""
    from viewzenix.cli import ensure_local_user

    runtime = app.extensions["viewzenix"]
    email = f"admin-{uuid.uuid4().hex[:8]}@example.test"
    user_id = ensure_local_user(runtime.db, email)
    token = runtime.local_signer.issue(user_id, email, app_metadata={"role": "admin"})
    return email, {"Authorization": f"Bearer {token}"}


@pytest.fixture()
def admin_headers(admin) -> dict[str, str]:
    return admin[1]


@pytest.fixture()
def queue() -> str:
    return f"test-admin-{uuid.uuid4().hex[:8]}"


def task_app(database_url: str, queue: str):
    """A job app with test tasks on ``queue``: ok, bug (fails for good), flaky (fails once)."""
    job_app = build_job_app(database_url)

    @job_app.task(name="test.ok", queue=queue)
    def ok(n: int) -> None:
        pass

    @job_app.task(
        name="test.bug", queue=queue, retry=Backoff(max_attempts=3, base_seconds=60, cap_seconds=60)
    )
    def bug(n: int) -> None:
        raise ValueError("quantity must be positive")

    @job_app.task(
        name="test.flaky",
        queue=queue,
        pass_context=True,
        retry=Backoff(max_attempts=3, base_seconds=0, cap_seconds=0),
    )
    def flaky(context, n: int) -> None:
        if context.job.attempts == 0:
            raise ConnectionError("connection reset by peer")

    return job_app


def defer(job_app, task: str, n: int = 0, **configure: Any) -> int:
    with job_app.open():
        return job_app.tasks[task].configure(**configure).defer(n=n)


def work(job_app, queues: list[str] | None) -> None:
    job_app.run_worker(
        wait=False,
        install_signal_handlers=False,
        listen_notify=False,
        queues=queues,
        worker_middleware=[AttemptRecorder()],
    )


def buy(ticker: str = "AAPL") -> Signal:
    return Signal(ticker=ticker, action=Action.BUY, quantity=Decimal(3), signal_price=Decimal(100))


class BrokenBroker(FakeBroker):
    """The fake broker, whose submit_order raises a bug (not a transient error): no retry."""

    def submit_order(self, request):
        raise RuntimeError("the broker's answer had no 'status' field")


def run_signals_with_broken_broker(database_url: str, db: Database, broken: set[uuid.UUID]) -> None:
    """Run the queued signal jobs; the signals in ``broken`` meet BrokenBroker (the others the paper
    broker), so their jobs fail for good on their first run."""
    job_app = build_job_app(database_url)

    @job_app.task(name=EXECUTE_SIGNAL, queue=QUEUE, pass_context=True, retry=SIGNAL_RETRY)
    def execute(context, signal_id: str) -> None:
        broker = BrokenBroker()
        brokers = (lambda config: broker) if uuid.UUID(signal_id) in broken else None
        execute_signal(db, uuid.UUID(signal_id), job_id=context.job.id, brokers=brokers)

    for _ in range(10):  # again while jobs wait for their symbol's lock
        work(job_app, [QUEUE])


def job_of(db: Database, signal_id: uuid.UUID) -> int:
    return signal_row(db, signal_id)["job_id"]


def audit(client, headers, **params) -> list[dict]:
    response = client.get("/api/admin/audit", query_string=params, headers=headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["actions"]


# --- a failed signal job: its error, its signal, its orders; retried, executed once ----------


def test_a_failed_signal_job_shows_its_error_signal_and_orders_and_a_retry_places_one_order(
    client, db, database_url, admin, jobs
):
    email, headers = admin
    config = make_config(db)
    signal_id = enqueue_signal(db, database_url, config, buy())
    job_id = job_of(db, signal_id)
    run_signals_with_broken_broker(database_url, db, {signal_id})

    detail = client.get(f"/api/admin/jobs/{job_id}", headers=headers).get_json()

    assert detail["status"] == "failed"
    assert (detail["task"], detail["queue"]) == (EXECUTE_SIGNAL, QUEUE)
    assert detail["args"] == {"signal_id": str(signal_id)}
    assert detail["lock"] == f"signal:{config['id']}:AAPL"
    assert detail["signal_id"] == str(signal_id)
    [attempt] = detail["attempt_history"]
    assert attempt["attempt"] == 1
    assert attempt["outcome"] == "failed"
    assert attempt["error_type"] == "RuntimeError"
    assert attempt["error"] == "the broker's answer had no 'status' field"
    assert "RuntimeError" in attempt["traceback"]
    assert attempt["context"] == {"signal_id": str(signal_id)}
    assert detail["signal"]["id"] == str(signal_id)
    assert detail["signal"]["status"] == "failed"
    assert "the broker's answer had no 'status' field" in detail["signal"]["outcome_message"]
    assert detail["signal"]["user_id"] == str(config["user_id"])
    [order] = detail["orders"]
    assert (order["status"], order["qty"], order["signal_id"]) == ("pending_new", "3", str(signal_id))
    assert [e["type"] for e in detail["events"]][:2] == ["deferred", "started"]
    assert detail["events"][-1]["type"] == "failed"
    assert detail["actions"] == []

    listed = client.get(
        "/api/admin/jobs",
        query_string={"status": "failed", "task": EXECUTE_SIGNAL, "lock": detail["lock"]},
        headers=headers,
    ).get_json()
    assert [(j["id"], j["last_outcome"], j["last_error"]) for j in listed["jobs"]] == [
        (job_id, "failed", "RuntimeError: the broker's answer had no 'status' field")
    ]

    retried = client.post(f"/api/admin/jobs/{job_id}/retry", headers=headers)

    assert retried.status_code == 200, retried.get_json()
    body = retried.get_json()
    assert body["job"]["status"] == "todo"
    assert body["action"]["action"] == "retry"
    assert (body["action"]["result"], body["action"]["from_status"], body["action"]["to_status"]) == (
        "done",
        "failed",
        "todo",
    )
    assert body["action"]["actor_email"] == email
    assert body["action"]["signal_id"] == str(signal_id)

    jobs()  # the real worker and the paper broker

    assert signal_row(db, signal_id)["status"] == "executed"
    [order] = orders_of(db, signal_id)
    assert (order["status"], order["filled_qty"]) == ("filled", Decimal(3))
    after = client.get(f"/api/admin/jobs/{job_id}", headers=headers).get_json()
    assert after["status"] == "succeeded"
    assert [(a["attempt"], a["outcome"]) for a in after["attempt_history"]] == [
        (1, "failed"),
        (2, "succeeded"),
    ]
    assert [(a["action"], a["result"], a["actor_email"]) for a in after["actions"]] == [
        ("retry", "done", email)
    ]
    assert [a["id"] for a in audit(client, headers, job_id=job_id)] == [after["actions"][0]["id"]]


def test_a_signal_job_is_not_retried_after_a_later_signal_of_its_symbol_has_run(
    client, db, database_url, admin_headers
):
    config = make_config(db)
    first = enqueue_signal(db, database_url, config, buy())
    second = enqueue_signal(db, database_url, config, buy())
    run_signals_with_broken_broker(database_url, db, {first})
    assert signal_row(db, second)["status"] == "executed"

    response = client.post(f"/api/admin/jobs/{job_of(db, first)}/retry", headers=admin_headers)

    assert response.status_code == 409
    body = response.get_json()
    assert body["code"] == "job_superseded"
    assert str(second) in body["message"]
    assert body["errors"]["job_status"] == "failed"
    [record] = audit(client, admin_headers, job_id=job_of(db, first))
    assert (record["action"], record["result"], record["code"]) == ("retry", "refused", "job_superseded")
    assert record["id"] == body["errors"]["action_id"]
    assert signal_row(db, first)["status"] == "failed"
    assert len(orders_of(db, second)) == 1


# --- cancel --------------------------------------------------------------------------------


def test_canceling_a_queued_signal_job_fails_its_signal_and_a_retry_runs_it(
    client, db, database_url, admin, jobs
):
    email, headers = admin
    config = make_config(db)
    signal_id = enqueue_signal(db, database_url, config, buy("MSFT"))
    job_id = job_of(db, signal_id)

    canceled = client.post(f"/api/admin/jobs/{job_id}/cancel", headers=headers)

    assert canceled.status_code == 200, canceled.get_json()
    assert canceled.get_json()["job"]["status"] == "cancelled"
    assert canceled.get_json()["action"]["message"].startswith("todo → cancelled; signal")
    signal = signal_row(db, signal_id)
    assert signal["status"] == "failed"
    assert signal["outcome_message"] == f"execution canceled by an admin ({email}); job {job_id} canceled"

    again = client.post(f"/api/admin/jobs/{job_id}/cancel", headers=headers)

    assert again.status_code == 409
    assert again.get_json()["code"] == "job_not_cancelable"
    assert again.get_json()["errors"]["job_status"] == "cancelled"

    assert client.post(f"/api/admin/jobs/{job_id}/retry", headers=headers).status_code == 200
    jobs()

    assert signal_row(db, signal_id)["status"] == "executed"
    assert [o["status"] for o in orders_of(db, signal_id)] == ["filled"]
    records = audit(client, headers, job_id=job_id)
    assert [(r["action"], r["result"], r["code"], r["from_status"], r["to_status"]) for r in records] == [
        ("retry", "done", None, "cancelled", "todo"),
        ("cancel", "refused", "job_not_cancelable", "cancelled", "cancelled"),
        ("cancel", "done", None, "todo", "cancelled"),
    ]
    assert {r["actor_email"] for r in records} == {email}


def test_canceling_a_running_job_requests_its_abort_and_an_aborted_job_can_be_retried(
    client, db, database_url, queue, admin_headers
):
    job_app = task_app(database_url, queue)
    job_id = defer(job_app, "test.ok")
    with db.transaction() as conn:  # a worker has taken it (procrastinate's fetch sets doing)
        conn.execute("update procrastinate_jobs set status = 'doing' where id = %s", (job_id,))

    response = client.post(f"/api/admin/jobs/{job_id}/cancel", headers=admin_headers)

    assert response.status_code == 200, response.get_json()
    job = response.get_json()["job"]
    assert (job["status"], job["abort_requested"]) == ("doing", True)
    assert response.get_json()["action"]["message"].startswith("abort requested while running")

    async def end_aborted() -> None:  # the worker honours the request: the run ends aborted
        async with job_app.open_async():
            await job_app.job_manager.finish_job_by_id_async(job_id, status=Status.ABORTED, delete_job=False)

    asyncio.run(end_aborted())
    retried = client.post(f"/api/admin/jobs/{job_id}/retry", headers=admin_headers)
    assert retried.status_code == 200, retried.get_json()
    assert (retried.get_json()["job"]["status"], retried.get_json()["job"]["abort_requested"]) == (
        "todo",
        False,
    )
    work(job_app, [queue])
    assert client.get(f"/api/admin/jobs/{job_id}", headers=admin_headers).get_json()["status"] == "succeeded"


# --- run-now -------------------------------------------------------------------------------


def test_run_now_makes_a_job_scheduled_later_due_and_refuses_one_already_due(
    client, database_url, queue, admin_headers
):
    job_app = task_app(database_url, queue)
    later = defer(job_app, "test.ok", schedule_in={"hours": 1})
    work(job_app, [queue])
    assert client.get(f"/api/admin/jobs/{later}", headers=admin_headers).get_json()["status"] == "todo"

    response = client.post(f"/api/admin/jobs/{later}/run-now", headers=admin_headers)

    assert response.status_code == 200, response.get_json()
    assert response.get_json()["action"]["message"].endswith("→ due now")
    assert response.get_json()["action"]["from_status"] == "todo"
    again = client.post(f"/api/admin/jobs/{later}/run-now", headers=admin_headers)
    assert again.status_code == 409
    assert again.get_json()["code"] == "job_not_scheduled"
    assert "already due" in again.get_json()["message"]

    work(job_app, [queue])

    detail = client.get(f"/api/admin/jobs/{later}", headers=admin_headers).get_json()
    assert detail["status"] == "succeeded"
    assert [a["outcome"] for a in detail["attempt_history"]] == ["succeeded"]
    finished = client.post(f"/api/admin/jobs/{later}/run-now", headers=admin_headers)
    assert finished.status_code == 409
    assert finished.get_json()["errors"]["job_status"] == "succeeded"


def test_a_finished_job_cannot_be_retried_nor_canceled_and_an_unknown_one_is_404(
    client, database_url, queue, admin_headers
):
    job_app = task_app(database_url, queue)
    done = defer(job_app, "test.ok")
    work(job_app, [queue])

    retry = client.post(f"/api/admin/jobs/{done}/retry", headers=admin_headers)
    cancel = client.post(f"/api/admin/jobs/{done}/cancel", headers=admin_headers)

    assert (retry.status_code, retry.get_json()["code"]) == (409, "job_not_retryable")
    assert retry.get_json()["message"] == (
        f"Job {done} is succeeded: only a failed, cancelled or aborted job can be retried."
    )
    assert (cancel.status_code, cancel.get_json()["code"]) == (409, "job_not_cancelable")
    for path in ("/api/admin/jobs/999999999999", "/api/admin/jobs/999999999999/retry"):
        method = client.post if path.endswith("retry") else client.get
        response = method(path, headers=admin_headers)
        assert (response.status_code, response.get_json()["code"]) == (404, "not_found")
    huge = client.post(f"/api/admin/jobs/{2**64}/cancel", headers=admin_headers)
    assert (huge.status_code, huge.get_json()["code"]) == (404, "not_found")
    [missing] = audit(client, admin_headers, job_id=999999999999)
    assert (missing["action"], missing["result"], missing["code"]) == ("retry", "refused", "not_found")


def test_an_action_sent_twice_with_one_idempotency_key_runs_once(client, database_url, queue, admin_headers):
    job_app = task_app(database_url, queue)
    job_id = defer(job_app, "test.ok", schedule_in={"hours": 1})
    headers = {**admin_headers, "Idempotency-Key": f"cancel-{job_id}"}

    first = client.post(f"/api/admin/jobs/{job_id}/cancel", headers=headers)
    second = client.post(f"/api/admin/jobs/{job_id}/cancel", headers=headers)

    assert first.status_code == second.status_code == 200
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.get_json() == first.get_json()
    assert [r["result"] for r in audit(client, admin_headers, job_id=job_id)] == ["done"]


# --- metrics, lists ------------------------------------------------------------------------


def test_metrics_count_jobs_by_status_and_task_and_the_runs_of_the_last_hour(
    client, database_url, queue, admin_headers
):
    job_app = task_app(database_url, queue)
    for n in range(3):
        defer(job_app, "test.ok", n)
    defer(job_app, "test.bug")
    defer(job_app, "test.flaky")
    work(job_app, [queue])
    due = defer(job_app, "test.ok", 9)
    later = defer(job_app, "test.ok", 10, schedule_in={"hours": 2})

    response = client.get("/api/admin/jobs/metrics", query_string={"queue": queue}, headers=admin_headers)

    assert response.status_code == 200
    metrics = response.get_json()
    assert metrics["by_status"] == {
        "todo": 2,
        "doing": 0,
        "succeeded": 4,
        "failed": 1,
        "cancelled": 0,
        "aborted": 0,
    }
    assert metrics["total"] == 7
    assert [(t["task"], t["total"]) for t in metrics["by_task"]] == [
        ("test.bug", 1),
        ("test.flaky", 1),
        ("test.ok", 5),
    ]
    assert metrics["by_task"][2]["by_status"]["todo"] == 2
    assert metrics["oldest_due_job_id"] == due
    assert metrics["oldest_due_age_seconds"] >= 0
    assert metrics["runs"] == {"succeeded": 4, "retrying": 1, "failed": 1, "aborted": 0, "worker_died": 0}
    assert metrics["jobs_ended"] == 5
    assert metrics["jobs_per_minute"] == round(5 / 60, 3)
    assert metrics["runs_per_minute"] == round(6 / 60, 3)
    assert metrics["failure_rate"] == 0.2
    assert metrics["run_failure_rate"] == round(2 / 6, 4)
    assert metrics["attempts_histogram"] == [{"attempts": 1, "jobs": 4}, {"attempts": 2, "jobs": 1}]
    one_task = client.get(
        "/api/admin/jobs/metrics", query_string={"queue": queue, "task": "test.bug"}, headers=admin_headers
    ).get_json()
    assert (one_task["total"], one_task["failure_rate"], one_task["oldest_due_job_id"]) == (1, 1.0, None)

    for job_id in (due, later):  # leave no queued job behind
        assert client.post(f"/api/admin/jobs/{job_id}/cancel", headers=admin_headers).status_code == 200


def test_jobs_are_listed_newest_first_with_filters_and_keyset_pages(
    client, database_url, queue, admin_headers
):
    job_app = task_app(database_url, queue)
    ids = [defer(job_app, "test.ok", n) for n in range(5)]
    locked = defer(job_app, "test.bug", lock=f"{queue}-lock")
    work(job_app, [queue])

    pages, cursor = [], None
    while True:
        params = {"queue": queue, "limit": 2, **({"cursor": cursor} if cursor else {})}
        body = client.get("/api/admin/jobs", query_string=params, headers=admin_headers).get_json()
        pages.append([j["id"] for j in body["jobs"]])
        cursor = body["next_cursor"]
        if cursor is None:
            break

    assert pages == [[locked, ids[4]], [ids[3], ids[2]], [ids[1], ids[0]]]

    def listed(**params) -> list[int]:
        response = client.get(
            "/api/admin/jobs", query_string={"queue": queue, **params}, headers=admin_headers
        )
        assert response.status_code == 200, response.get_json()
        return [j["id"] for j in response.get_json()["jobs"]]

    assert listed(status="failed") == [locked]
    assert listed(status=["failed", "succeeded"]) == [locked, *reversed(ids)]
    assert listed(task="test.ok") == list(reversed(ids))
    assert listed(lock=f"{queue}-lock") == [locked]
    assert listed(since="2000-01-01T00:00:00+00:00", until="2999-01-01T00:00:00+00:00") == [
        locked,
        *reversed(ids),
    ]
    assert listed(since="2999-01-01T00:00:00+00:00") == []
    assert listed(queue=f"{queue}-other") == []
    [item] = client.get(
        "/api/admin/jobs", query_string={"queue": queue, "status": "failed"}, headers=admin_headers
    ).get_json()["jobs"]
    assert item["last_error"] == "ValueError: quantity must be positive"
    assert (item["task"], item["attempts"], item["signal_id"]) == ("test.bug", 1, None)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "stuck"}, "status"),
        ({"limit": 0}, "limit"),
        ({"limit": 201}, "limit"),
        ({"cursor": "abc"}, "cursor"),
        ({"since": "2026-11-27T10:00:00"}, "since"),  # no offset
        ({"since": "2026-11-27T10:00:00+00:00", "until": "2026-11-27T09:00:00+00:00"}, "until"),
        ({"task": "a\x00b"}, "task"),
    ],
)
def test_bad_filters_are_422_with_a_message_for_the_field(client, admin_headers, params, field):
    response = client.get("/api/admin/jobs", query_string=params, headers=admin_headers)

    assert response.status_code == 422
    body = response.get_json()
    assert body["code"] == "validation_error"
    assert field in body["errors"]["query"]


def test_bad_metrics_and_audit_arguments_are_422(client, admin_headers):
    metrics = client.get("/api/admin/jobs/metrics", query_string={"window_minutes": 0}, headers=admin_headers)
    audit_ = client.get("/api/admin/audit", query_string={"action": "delete"}, headers=admin_headers)

    assert (metrics.status_code, list(metrics.get_json()["errors"]["query"])) == (422, ["window_minutes"])
    assert (audit_.status_code, list(audit_.get_json()["errors"]["query"])) == (422, ["action"])


# --- who may -------------------------------------------------------------------------------

ADMIN_ROUTES = [
    ("get", "/api/admin/jobs/metrics"),
    ("get", "/api/admin/jobs"),
    ("get", "/api/admin/jobs?status=stuck"),  # forbidden before validated
    ("get", "/api/admin/jobs/{job_id}"),
    ("get", "/api/admin/audit"),
    ("post", "/api/admin/jobs/{job_id}/retry"),
    ("post", "/api/admin/jobs/{job_id}/cancel"),
    ("post", "/api/admin/jobs/{job_id}/run-now"),
]


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES)
def test_non_admins_get_403_on_every_admin_route(client, app, database_url, queue, make_user, method, path):
    job_app = task_app(database_url, queue)
    job_id = defer(job_app, "test.ok", schedule_in={"hours": 1})
    runtime = app.extensions["viewzenix"]
    user_id, token = make_user()
    # user_metadata is the user's to write: it grants nothing.
    self_declared = runtime.local_signer.issue(user_id, "x@example.test", user_metadata={"role": "admin"})

    try:
        for bearer in (token, self_declared):
            response = getattr(client, method)(
                path.format(job_id=job_id), headers={"Authorization": f"Bearer {bearer}"}
            )
            assert response.status_code == 403
            assert response.get_json()["code"] == "admin_required"
        assert getattr(client, method)(path.format(job_id=job_id)).status_code == 401
        with runtime.db.transaction() as conn:
            row = conn.execute(
                "select status::text as status, scheduled_at > now() as later from procrastinate_jobs "
                "where id = %s",
                (job_id,),
            ).fetchone()
            recorded = conn.execute(
                "select count(*) as n from private.job_admin_actions where job_id = %s", (job_id,)
            ).fetchone()["n"]
        assert (row["status"], row["later"], recorded) == ("todo", True, 0)
    finally:
        with runtime.db.transaction() as conn:  # leave no queued job behind
            conn.execute("update procrastinate_jobs set status = 'cancelled' where id = %s", (job_id,))


def test_the_api_roles_cannot_read_the_admin_record(db):
    with db.transaction({"sub": str(uuid.uuid4()), "role": "authenticated"}) as conn:
        with pytest.raises(Exception, match="permission denied"):
            conn.execute("select * from private.job_admin_actions")


def test_local_token_admin_gives_a_token_the_admin_api_accepts(app, client):
    runner = app.test_cli_runner()
    admin_token = runner.invoke(args=["local-token", "ops@example.test", "--admin"]).output.strip()
    user_token = runner.invoke(args=["local-token", "ops@example.test"]).output.strip()

    as_admin = client.get("/api/admin/jobs/metrics", headers={"Authorization": f"Bearer {admin_token}"})
    as_user = client.get("/api/admin/jobs/metrics", headers={"Authorization": f"Bearer {user_token}"})

    assert as_admin.status_code == 200
    assert set(as_admin.get_json()["by_status"]) == {
        "todo",
        "doing",
        "succeeded",
        "failed",
        "cancelled",
        "aborted",
    }
    assert as_user.status_code == 403


def test_the_services_refuse_a_non_admin_caller_themselves(app, make_user):
    from viewzenix.errors import Forbidden
    from viewzenix.services import job_admin
    from viewzenix.services.common import Caller

    runtime = app.extensions["viewzenix"]
    user_id, _ = make_user()
    caller = Caller(user_id=user_id, claims={"app_metadata": {}, "user_metadata": {"role": "admin"}})
    calls = [
        lambda: job_admin.metrics(runtime.db, caller),
        lambda: job_admin.list_jobs(runtime.db, caller, filters={}, limit=1),
        lambda: job_admin.get_job(runtime.db, caller, 1),
        lambda: job_admin.list_actions(runtime.db, caller, limit=1),
        lambda: job_admin.retry(runtime.db, runtime.jobs, caller, 1),
        lambda: job_admin.cancel(runtime.db, runtime.jobs, caller, 1),
        lambda: job_admin.run_now(runtime.db, runtime.jobs, caller, 1),
    ]
    for call in calls:
        with pytest.raises(Forbidden) as refused:
            call()
        assert refused.value.code == "admin_required"


def test_a_job_cancelled_with_an_abort_request_by_procrastinate_itself_can_be_retried(
    client, database_url, queue, admin_headers
):
    job_app = task_app(database_url, queue)
    job_id = defer(job_app, "test.ok")
    with job_app.open():  # procrastinate's own cancel with abort=True leaves abort_requested set
        assert job_app.job_manager.cancel_job_by_id(job_id, abort=True)

    response = client.post(f"/api/admin/jobs/{job_id}/retry", headers=admin_headers)

    assert response.status_code == 200, response.get_json()
    job = response.get_json()["job"]
    assert (job["status"], job["abort_requested"]) == ("todo", False)
    work(job_app, [queue])
    assert client.get(f"/api/admin/jobs/{job_id}", headers=admin_headers).get_json()["status"] == "succeeded"
