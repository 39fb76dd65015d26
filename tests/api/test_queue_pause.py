"""The job queue's global pause and the archive of failed jobs, through the admin API.

A paused queue: real procrastinate workers (``run_worker(wait=False)``, as ``python -m
viewzenix.worker``) on our real Postgres take no job, the job stays ``todo`` untouched (the fetch
function is not even called), alerts are still stored and their jobs queued, and ``/readyz``
says so; after the resume the same worker runs it. Every pause and resume is in the audit.
"""

from __future__ import annotations

import uuid

import pytest

from viewzenix.jobs import build_job_app

pytestmark = pytest.mark.db


@pytest.fixture()
def admin_headers(app) -> dict[str, str]:
    from viewzenix.cli import ensure_local_user

    runtime = app.extensions["viewzenix"]
    email = f"admin-{uuid.uuid4().hex[:8]}@example.test"
    user_id = ensure_local_user(runtime.db, email)
    token = runtime.local_signer.issue(user_id, email, app_metadata={"role": "admin"})
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture()
def resumed(db):
    """Leave the shared database's queue running whatever the test did."""
    yield
    with db.transaction() as conn:
        conn.execute("update private.job_queue_state set paused = false, reason = null")


def task_app(database_url: str, queue: str, ran: list[int]):
    job_app = build_job_app(database_url)

    @job_app.task(name="test.pause", queue=queue)
    def work(n: int) -> None:
        ran.append(n)

    return job_app


def status_of(db, job_id: int) -> tuple[str, int | None]:
    with db.transaction() as conn:
        row = conn.execute(
            "select status::text as status, worker_id from procrastinate_jobs where id = %s", (job_id,)
        ).fetchone()
    return row["status"], row["worker_id"]


def run_once(job_app, queue: str) -> None:
    job_app.run_worker(wait=False, install_signal_handlers=False, listen_notify=False, queues=[queue])


def test_a_paused_queue_runs_no_job_until_resumed_and_both_are_audited(
    client, db, database_url, admin_headers, resumed
):
    queue = f"test-pause-{uuid.uuid4().hex[:8]}"
    ran: list[int] = []
    job_app = task_app(database_url, queue, ran)
    with job_app.open():
        job_id = job_app.tasks["test.pause"].defer(n=7)

    paused = client.post("/api/admin/queue/pause", json={"reason": "broker outage"}, headers=admin_headers)
    assert paused.status_code == 200, paused.get_json()
    body = paused.get_json()
    assert body["paused"] is True and body["reason"] == "broker outage"
    assert body["action"]["action"] == "pause" and body["action"]["job_id"] is None
    assert (body["action"]["from_status"], body["action"]["to_status"]) == ("running", "paused")

    run_once(job_app, queue)
    assert ran == []
    assert status_of(db, job_id) == ("todo", None)  # never fetched: not marked doing and dropped

    state = client.get("/api/admin/queue", headers=admin_headers).get_json()
    assert state["paused"] is True and state["waiting"] >= 1

    resumed_answer = client.post("/api/admin/queue/resume", headers=admin_headers)
    assert resumed_answer.status_code == 200
    assert resumed_answer.get_json()["paused"] is False

    run_once(job_app, queue)
    assert ran == [7]
    assert status_of(db, job_id)[0] == "succeeded"

    actions = client.get("/api/admin/audit", headers=admin_headers, query_string={"limit": 5}).get_json()
    mine = [(a["action"], a["to_status"]) for a in actions["actions"][:2]]
    assert mine == [("resume", "running"), ("pause", "paused")]
    only_pauses = client.get("/api/admin/audit", headers=admin_headers, query_string={"action": "pause"})
    assert {a["action"] for a in only_pauses.get_json()["actions"]} == {"pause"}


def test_alerts_are_stored_and_queued_while_paused(client, db, admin_headers, auth_headers, resumed):
    config = client.post("/api/webhook-configs", json={"name": "paused"}, headers=auth_headers).json
    client.post("/api/admin/queue/pause", json={}, headers=admin_headers)

    answer = client.post(
        f"/webhooks/{config['id']}/{config['token']}",
        data=b'{"ticker": "AAPL", "action": "buy", "quantity": 1}',
        content_type="application/json",
    )

    assert answer.status_code == 200 and answer.json["status"] == "accepted"
    with db.transaction() as conn:
        job = conn.execute(
            "select j.status::text as status from public.signals s "
            "join procrastinate_jobs j on j.id = s.job_id where s.id = %s",
            (answer.json["signal_id"],),
        ).fetchone()
    assert job["status"] == "todo"


def test_readyz_says_the_queue_is_paused_without_failing_on_the_waiting_jobs(
    client, db, admin_headers, resumed
):
    with db.transaction() as conn:  # a due job that has waited far past READY_MAX_QUEUE_AGE_SECONDS
        job_id = conn.execute(
            "insert into procrastinate_jobs (queue_name, task_name, args, scheduled_at) "
            "values ('test-readyz', 'test.readyz', '{}', now() - interval '1 hour') returning id"
        ).fetchone()["id"]
    try:
        client.post("/api/admin/queue/pause", json={"reason": "maintenance"}, headers=admin_headers)
        body = client.get("/readyz").get_json()
        checks = body.get("checks") or body["errors"]["checks"]
        assert body["paused"] is True
        assert checks["queue"] == "paused: maintenance"
        assert "queue" not in body.get("message", "")

        client.post("/api/admin/queue/resume", headers=admin_headers)
        body = client.get("/readyz").get_json()
        assert body["paused"] is False
        assert body["errors"]["checks"]["queue"].startswith("the oldest due job has waited")
    finally:
        with db.transaction() as conn:
            conn.execute("delete from procrastinate_jobs where id = %s", (job_id,))


def test_the_queue_tools_are_for_admins_only(client, auth_headers):
    for method, path in (
        ("get", "/api/admin/queue"),
        ("post", "/api/admin/queue/pause"),
        ("post", "/api/admin/queue/resume"),
        ("get", "/api/admin/jobs/archive"),
    ):
        answer = getattr(client, method)(path, headers=auth_headers, json={} if method == "post" else None)
        assert answer.status_code == 403, path
        assert answer.get_json()["code"] == "admin_required"


def test_the_archive_is_searchable_by_error_text_with_every_attempt(client, db, admin_headers):
    from viewzenix.services.housekeeping import delete_finished_jobs

    marker = uuid.uuid4().hex[:10]
    with db.transaction() as conn:
        job_id = conn.execute(
            "insert into procrastinate_jobs (queue_name, task_name, args, status) "
            "values ('maintenance', 'test.archive', %s, 'todo') returning id",
            (f'{{"n": "{marker}"}}',),
        ).fetchone()["id"]
        conn.execute("update procrastinate_jobs set status = 'failed' where id = %s", (job_id,))
        conn.execute(
            "update procrastinate_events set at = now() - interval '40 days' where job_id = %s", (job_id,)
        )
        conn.execute(
            "insert into private.job_attempts (job_id, attempt, task_name, started_at, finished_at, "
            "duration_ms, outcome, error_type, error) values (%s, 1, 'test.archive', "
            "now() - interval '40 days', now() - interval '40 days', 3, 'failed', 'ValueError', %s)",
            (job_id, f"bad quantity {marker}"),
        )
    delete_finished_jobs(db, 14)

    found = client.get("/api/admin/jobs/archive", headers=admin_headers, query_string={"q": marker})
    assert found.status_code == 200, found.get_json()
    [job] = found.get_json()["jobs"]
    assert (job["job_id"], job["task"], job["status"]) == (job_id, "test.archive", "failed")
    assert job["last_error"] == f"ValueError: bad quantity {marker}"
    assert [(a["attempt"], a["outcome"]) for a in job["attempt_history"]] == [(1, "failed")]
    assert job["args"] == {"n": marker}
    none = client.get(
        "/api/admin/jobs/archive", headers=admin_headers, query_string={"q": "no-such-" + marker}
    )
    assert none.get_json()["jobs"] == []
    by_task = client.get(
        "/api/admin/jobs/archive", headers=admin_headers, query_string={"task": "test.archive", "limit": 1}
    ).get_json()
    assert by_task["jobs"][0]["job_id"] == job_id
