"""Approval mode (issue 17, item 4): signals wait for a click, run once approved, expire, and only
their owner decides. Through the real webhook, API and worker (``jobs``)."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from builders import worker_config

from viewzenix.domain.model import SignalStatus
from viewzenix.jobs import build_job_app
from viewzenix.services import approvals
from viewzenix.services.common import Caller
from viewzenix.services.execution import execute_signal

pytestmark = pytest.mark.db

ALERT = {"ticker": "GOOG", "action": "buy", "sentiment": "long", "quantity": "3", "price": "100.00"}


def make_config(client, headers, **settings):
    body = {"name": "approve me", "approval_mode": True, **settings}
    response = client.post("/api/webhook-configs", json=body, headers=headers)
    assert response.status_code == 201, response.json
    data = response.json
    return {**data, "url": f"/webhooks/{data['id']}/{data['token']}"}


def send(client, config, alert=ALERT):
    response = client.post(config["url"], json=alert)
    assert response.status_code == 200, response.json
    return response.json


def detail(client, headers, signal_id):
    response = client.get(f"/api/signals/{signal_id}", headers=headers)
    assert response.status_code == 200
    return response.json


def row(db, signal_id):
    with db.transaction() as conn:
        return conn.execute("select * from public.signals where id = %s", (signal_id,)).fetchone()


def jobs_of(db, signal_id):
    with db.transaction() as conn:
        return conn.execute(
            "select id, status from procrastinate_jobs where task_name = 'viewzenix.execute_signal'"
            " and args ->> 'signal_id' = %s",
            (str(signal_id),),
        ).fetchall()


def expire_now(db, signal_id):
    """Move a waiting signal's expiry into the past (as if its timeout had passed)."""
    with db.transaction() as conn:
        conn.execute(
            "update public.signals set approval_expires_at = now() - interval '1 second' where id = %s",
            (signal_id,),
        )


class TestWaiting:
    def test_an_accepted_alert_waits_without_a_job_and_the_worker_does_not_run_it(
        self, client, auth_headers, jobs, db
    ):
        config = make_config(client, auth_headers, approval_timeout_seconds=120)
        answer = send(client, config)
        assert answer["status"] == "awaiting_approval" and answer["duplicate"] is False
        signal_id = answer["signal_id"]
        stored = row(db, signal_id)
        assert stored["status"] == "awaiting_approval" and stored["job_id"] is None
        waited = (stored["approval_expires_at"] - stored["received_at"]).total_seconds()
        assert waited == pytest.approx(120, abs=1)
        assert jobs_of(db, signal_id) == []
        jobs()
        shown = detail(client, auth_headers, signal_id)
        assert (shown["status"], shown["orders"]) == ("awaiting_approval", [])

    def test_the_signal_log_lists_the_approval_queue(self, client, auth_headers):
        config = make_config(client, auth_headers)
        signal_id = send(client, config)["signal_id"]
        response = client.get("/api/signals?status=awaiting_approval", headers=auth_headers)
        assert response.status_code == 200
        assert [s["id"] for s in response.json] == [signal_id]
        assert response.json[0]["approval_expires_at"] is not None

    def test_the_execution_job_never_runs_a_waiting_signal(self, client, auth_headers, db):
        config = make_config(client, auth_headers)
        signal_id = uuid.UUID(send(client, config)["signal_id"])
        assert execute_signal(db, signal_id, job_id=None) == "awaiting_approval"
        assert execute_signal(db, signal_id, job_id=12345) == "awaiting_approval"
        assert detail(client, auth_headers, signal_id)["orders"] == []

    def test_a_resend_of_a_waiting_alert_is_a_duplicate(self, client, auth_headers, db):
        config = make_config(client, auth_headers)
        alert = {**ALERT, "id": "alert-1"}
        first = send(client, config, alert)
        again = send(client, config, alert)
        assert again["duplicate"] is True and again["signal_id"] == first["signal_id"]
        assert row(db, again["duplicate_signal_id"])["status"] == "duplicate"

    def test_approval_mode_off_by_default_runs_at_once(self, client, auth_headers):
        response = client.post("/api/webhook-configs", json={"name": "plain"}, headers=auth_headers)
        assert response.json["approval_mode"] is False
        assert response.json["approval_timeout_seconds"] == 300
        assert response.json["daily_loss_limit"] is None
        config = {"url": f"/webhooks/{response.json['id']}/{response.json['token']}"}
        assert send(client, config)["status"] == "accepted"


def test_a_test_alert_from_the_dashboard_waits_too_and_runs_once_approved(client, auth_headers, jobs, db):
    """The general intake path (test alerts, single tenant): same waiting, expiry and approval."""
    config = make_config(client, auth_headers, approval_timeout_seconds=60)
    response = client.post(
        f"/api/webhook-configs/{config['id']}/test-alert",
        json={"body": '{"ticker": "NVDA", "action": "buy", "quantity": 2, "price": 120}'},
        headers=auth_headers,
    )
    assert response.status_code == 200
    assert response.json["intake_response"]["status"] == "awaiting_approval"
    signal_id = response.json["signal_id"]
    stored = row(db, signal_id)
    assert (stored["status"], stored["job_id"], stored["is_test"]) == ("awaiting_approval", None, True)
    assert (stored["approval_expires_at"] - stored["received_at"]).total_seconds() == pytest.approx(60, abs=1)
    jobs()
    assert row(db, signal_id)["status"] == "awaiting_approval"
    assert client.post(f"/api/signals/{signal_id}/approve", headers=auth_headers).status_code == 200
    jobs()
    assert detail(client, auth_headers, signal_id)["orders"][0]["filled_qty"] == "2"


class TestApprove:
    def test_approve_runs_the_normal_job_once_even_when_clicked_twice(self, client, auth_headers, jobs, db):
        config = make_config(client, auth_headers)
        signal_id = send(client, config)["signal_id"]
        first = client.post(f"/api/signals/{signal_id}/approve", headers=auth_headers)
        assert first.status_code == 200, first.json
        assert (first.json["status"], first.json["approval_decision"]) == ("accepted", "approved")
        assert first.json["job_id"] is not None
        second = client.post(f"/api/signals/{signal_id}/approve", headers=auth_headers)
        assert second.status_code == 200
        assert second.json["job_id"] == first.json["job_id"]
        assert len(jobs_of(db, signal_id)) == 1
        jobs()
        shown = detail(client, auth_headers, signal_id)
        assert shown["status"] == "executed"
        [order] = shown["orders"]
        assert (order["side"], order["qty"], order["status"]) == ("buy", "3", "filled")
        third = client.post(f"/api/signals/{signal_id}/approve", headers=auth_headers)
        assert third.status_code == 200 and third.json["status"] == "executed"
        jobs()
        assert len(detail(client, auth_headers, signal_id)["orders"]) == 1

    def test_reject_runs_nothing_and_approve_after_it_is_409(self, client, auth_headers, jobs):
        config = make_config(client, auth_headers)
        signal_id = send(client, config)["signal_id"]
        response = client.post(f"/api/signals/{signal_id}/reject", headers=auth_headers)
        assert response.status_code == 200
        assert (response.json["status"], response.json["reject_code"]) == ("rejected", "approval_rejected")
        again = client.post(f"/api/signals/{signal_id}/approve", headers=auth_headers)
        assert again.status_code == 409
        assert again.json["code"] == "not_awaiting_approval" and again.json["status"] == 409
        assert "rejected" in again.json["message"]
        jobs()
        shown = detail(client, auth_headers, signal_id)
        assert (shown["status"], shown["reject_code"], shown["orders"]) == (
            "rejected",
            "approval_rejected",
            [],
        )

    def test_approving_a_signal_that_never_waited_is_409(self, client, auth_headers):
        config = make_config(client, auth_headers, approval_mode=False)
        signal_id = send(client, config)["signal_id"]
        response = client.post(f"/api/signals/{signal_id}/approve", headers=auth_headers)
        assert response.status_code == 409 and response.json["code"] == "not_awaiting_approval"

    def test_approving_an_expired_signal_is_409_approval_expired_and_nothing_runs(
        self, client, auth_headers, jobs, db
    ):
        config = make_config(client, auth_headers)
        signal_id = send(client, config)["signal_id"]
        expire_now(db, signal_id)
        response = client.post(f"/api/signals/{signal_id}/approve", headers=auth_headers)
        assert response.status_code == 409
        assert response.json["code"] == "approval_expired"
        assert "without approval" in response.json["message"]
        stored = row(db, signal_id)  # expired at once, before any sweep
        assert (stored["status"], stored["reject_code"], stored["approval_decision"]) == (
            "rejected",
            "approval_expired",
            "expired",
        )
        assert client.post(f"/api/signals/{signal_id}/reject", headers=auth_headers).json["code"] == (
            "approval_expired"
        )
        jobs()
        assert jobs_of(db, signal_id) == [] and detail(client, auth_headers, signal_id)["orders"] == []

    @pytest.mark.parametrize("verb", ["approve", "reject"])
    def test_a_decision_refused_as_expired_under_an_idempotency_key_still_expires_the_signal(
        self, client, auth_headers, db, verb
    ):
        # The dashboard sends every POST with an Idempotency-Key, whose transaction a 409 rolls
        # back: the expiry the answer announces must not roll back with it.
        config = make_config(client, auth_headers)
        signal_id = send(client, config)["signal_id"]
        expire_now(db, signal_id)
        response = client.post(
            f"/api/signals/{signal_id}/{verb}",
            headers={**auth_headers, "Idempotency-Key": f"{verb}-{signal_id}"},
        )
        assert (response.status_code, response.json["code"]) == (409, "approval_expired")
        stored = row(db, signal_id)
        assert (stored["status"], stored["reject_code"], stored["approval_decision"]) == (
            "rejected",
            "approval_expired",
            "expired",
        )

    def test_another_user_cannot_approve_or_reject_and_nothing_runs(self, client, make_user, jobs, db):
        _, token_a = make_user()
        _, token_b = make_user()
        a = {"Authorization": f"Bearer {token_a}"}
        b = {"Authorization": f"Bearer {token_b}"}
        config = make_config(client, a)
        signal_id = send(client, config)["signal_id"]
        for verb in ("approve", "reject"):
            response = client.post(f"/api/signals/{signal_id}/{verb}", headers=b)
            assert response.status_code == 404
            assert response.json["code"] == "not_found"
        assert client.get(f"/api/signals/{signal_id}", headers=b).status_code == 404
        jobs()
        assert row(db, signal_id)["status"] == "awaiting_approval"
        assert jobs_of(db, signal_id) == []

    def test_the_service_refuses_another_users_signal_even_past_the_rls_read(self, client, make_user, db):
        """The conditional UPDATE filters on the caller too: a forged read cannot approve."""
        user_a, token_a = make_user()
        config = make_config(client, {"Authorization": f"Bearer {token_a}"})
        signal_id = uuid.UUID(send(client, config)["signal_id"])
        from viewzenix.repositories import approvals as approvals_repo

        with db.transaction() as conn:
            assert approvals_repo.approve(conn, signal_id, uuid.uuid4(), datetime.now(UTC)) is None
            assert approvals_repo.reject(conn, signal_id, uuid.uuid4(), datetime.now(UTC)) is None
        assert row(db, signal_id)["status"] == "awaiting_approval"
        assert user_a == row(db, signal_id)["user_id"]

    def test_unknown_signal_is_404(self, client, auth_headers):
        response = client.post(f"/api/signals/{uuid.uuid4()}/approve", headers=auth_headers)
        assert response.status_code == 404 and response.json["code"] == "not_found"


class TestExpiry:
    def test_the_periodic_task_expires_waiting_signals_past_their_time_only(
        self, client, auth_headers, jobs, db
    ):
        config = make_config(client, auth_headers)
        due = send(client, config, {**ALERT, "id": "a"})["signal_id"]
        fresh = send(client, config, {**ALERT, "id": "b"})["signal_id"]
        expire_now(db, due)
        with db.transaction() as conn:  # the task, deferred by name as its periodic schedule does
            conn.execute(
                "select procrastinate_defer_jobs_v1(array[row('maintenance', %s, 0, null, null,"
                " '{}'::jsonb, null)::procrastinate_job_to_defer_v1])",
                (approvals.EXPIRE_APPROVALS,),
            )
        jobs()
        expired = row(db, due)
        assert (expired["status"], expired["reject_code"], expired["approval_decision"]) == (
            "rejected",
            "approval_expired",
            "expired",
        )
        assert expired["processed_at"] is not None
        assert row(db, fresh)["status"] == "awaiting_approval"
        assert jobs_of(db, due) == []

    def test_the_sweep_is_registered_as_a_periodic_task(self, database_url, db):
        from viewzenix.jobs.tasks import register_tasks

        job_app = build_job_app(database_url)
        register_tasks(job_app, db, worker_config())
        assert approvals.EXPIRE_APPROVALS in job_app.tasks
        periodic = {p.periodic_id for p in job_app.periodic_registry.periodic_tasks.values()}
        assert "expire_approvals" in periodic


class TestRaces:
    """Approve vs expire at the same moment: the row lock decides, exactly one wins."""

    def _waiting(self, client, make_user, db):
        user_id, token = make_user()
        config = make_config(client, {"Authorization": f"Bearer {token}"})
        signal_id = uuid.UUID(send(client, config)["signal_id"])
        return Caller(user_id=user_id, claims={"sub": str(user_id), "role": "authenticated"}), signal_id

    def test_expiry_holding_the_row_wins_and_the_blocked_approval_answers_approval_expired(
        self, client, make_user, db, database_url
    ):
        caller, signal_id = self._waiting(client, make_user, db)
        row_before = row(db, signal_id)
        later = row_before["approval_expires_at"] + timedelta(seconds=1)
        outcome: dict = {}
        with psycopg.connect(database_url) as sweeper:
            with sweeper.transaction():
                sweeper.execute(
                    "update public.signals set status = 'rejected', reject_code = 'approval_expired',"
                    " approval_decision = 'expired', approval_decided_at = %s"
                    " where id = %s and status = 'awaiting_approval' and approval_expires_at <= %s",
                    (later, signal_id, later),
                )

                def click():
                    try:
                        approvals.approve(
                            db,
                            build_job_app(database_url),
                            caller,
                            signal_id,
                            clock=lambda: row_before["received_at"],
                        )
                    except Exception as error:
                        outcome["error"] = error

                thread = threading.Thread(target=click)
                thread.start()
                thread.join(timeout=1.0)
                assert thread.is_alive(), "the approval should wait on the sweep's row lock"
            thread.join(timeout=10)
        assert isinstance(outcome.get("error"), approvals.ApprovalExpired)
        assert row(db, signal_id)["status"] == "rejected"
        assert jobs_of(db, signal_id) == []

    def test_approval_holding_the_row_wins_and_the_sweep_skips_it(self, client, make_user, db, database_url):
        _caller, signal_id = self._waiting(client, make_user, db)
        with psycopg.connect(database_url) as clicker:
            with clicker.transaction():
                clicker.execute(
                    "update public.signals set status = 'accepted', approval_decision = 'approved'"
                    " where id = %s and status = 'awaiting_approval'",
                    (signal_id,),
                )
                # the sweep at a time past every expiry: skips the locked row, expires nothing of it
                later = datetime.now(UTC) + timedelta(days=2)
                expired = approvals.expire_due(db, now=later)
                assert row(db, signal_id)["status"] == "awaiting_approval"  # not committed yet
        assert row(db, signal_id)["status"] == "accepted"
        assert row(db, signal_id)["approval_decision"] == "approved"
        assert expired >= 0

    def test_many_concurrent_clicks_defer_one_job(self, client, make_user, db, database_url):
        caller, signal_id = self._waiting(client, make_user, db)
        job_app = build_job_app(database_url)
        results: list = []
        barrier = threading.Barrier(4)

        def click():
            barrier.wait()
            try:
                results.append(approvals.approve(db, job_app, caller, signal_id)["job_id"])
            except Exception as error:
                results.append(error)

        threads = [threading.Thread(target=click) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=20)
        assert len(results) == 4 and len(set(results)) == 1, results
        assert len(jobs_of(db, signal_id)) == 1


class TestSettings:
    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("approval_timeout_seconds", 0),
            ("approval_timeout_seconds", -5),
            ("approval_timeout_seconds", 86401),
            ("approval_timeout_seconds", 1.5),
            ("daily_loss_limit", "0"),
            ("daily_loss_limit", "-100"),
            ("daily_loss_limit", "1e20"),
        ],
    )
    def test_bad_values_are_422_with_the_field(self, client, auth_headers, field, value):
        response = client.post("/api/webhook-configs", json={"name": "x", field: value}, headers=auth_headers)
        assert response.status_code == 422, response.json
        assert response.json["code"] == "validation_error"
        assert field in response.json["errors"]["json"]
        created = client.post("/api/webhook-configs", json={"name": "ok"}, headers=auth_headers).json
        patched = client.patch(
            f"/api/webhook-configs/{created['id']}", json={field: value}, headers=auth_headers
        )
        assert patched.status_code == 422 and field in patched.json["errors"]["json"]

    def test_settings_round_trip(self, client, auth_headers):
        created = client.post(
            "/api/webhook-configs",
            json={
                "name": "x",
                "daily_loss_limit": "250.50",
                "flatten_on_loss_limit": True,
                "approval_mode": True,
                "approval_timeout_seconds": 600,
            },
            headers=auth_headers,
        ).json
        assert (created["daily_loss_limit"], created["flatten_on_loss_limit"]) == ("250.50", True)
        assert (created["approval_mode"], created["approval_timeout_seconds"]) == (True, 600)
        patched = client.patch(
            f"/api/webhook-configs/{created['id']}", json={"daily_loss_limit": None}, headers=auth_headers
        ).json
        assert patched["daily_loss_limit"] is None


def test_signal_status_vocabulary_has_awaiting_approval():
    assert SignalStatus("awaiting_approval") is SignalStatus.AWAITING_APPROVAL
