"""Idempotency keys on the mutating /api endpoints: replay, reuse, malformed keys, what is not
stored, expiry, per-user scope, concurrency, and the table's access rules."""

from __future__ import annotations

import hashlib
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal

import psycopg
import pytest
import requests
from werkzeug.serving import make_server

import config as app_config
from viewzenix.repositories import idempotency_keys as repo

REPLAYED = "Idempotent-Replayed"


def keyed(headers: dict, key: str, header: str = "Idempotency-Key") -> dict:
    return {**headers, header: key}


def create(client, headers, **fields):
    return client.post("/api/webhook-configs", json={"name": "Keyed", **fields}, headers=headers)


def config_count(db, user_id) -> int:
    with db.transaction() as conn:
        return conn.execute(
            "select count(*) as n from public.webhook_configs where user_id = %s", (user_id,)
        ).fetchone()["n"]


def key_rows(db, user_id, key) -> list[dict]:
    with db.transaction() as conn:
        return conn.execute(
            "select * from private.idempotency_keys where user_id = %s and key = %s", (user_id, key)
        ).fetchall()


@pytest.fixture()
def user(make_user):
    """A fresh user: ``(user_id, headers)``."""
    user_id, token = make_user()
    return user_id, {"Authorization": f"Bearer {token}"}


class TestReplay:
    def test_replays_the_first_status_and_body_and_creates_one_config(self, client, db, user):
        user_id, headers = user
        first = create(client, keyed(headers, "create-1"))
        second = create(client, keyed(headers, "create-1"))

        assert first.status_code == second.status_code == 201
        assert REPLAYED not in first.headers
        assert second.headers[REPLAYED] == "true"
        # The replay holds the webhook token that is otherwise shown once: the client asked for
        # that very response again, and Stripe replays such bodies too. It is kept only for the
        # key's TTL.
        assert second.get_data() == first.get_data()
        assert second.json["id"] == first.json["id"]
        assert second.content_type == first.content_type
        assert config_count(db, user_id) == 1

    def test_stores_the_response_for_the_configured_ttl(self, app, client, db, user):
        user_id, headers = user
        create(client, keyed(headers, "ttl"))
        [row] = key_rows(db, user_id, "ttl")
        assert row["expires_at"] - row["created_at"] == timedelta(
            hours=app.config["IDEMPOTENCY_KEY_TTL_HOURS"]
        )
        assert (row["method"], row["path"], row["response_status"]) == ("POST", "/api/webhook-configs", 201)

    def test_delete_replays_its_204_instead_of_answering_404(self, client, user):
        _, headers = user
        config = create(client, headers).json
        first = client.delete(f"/api/webhook-configs/{config['id']}", headers=keyed(headers, "del"))
        second = client.delete(f"/api/webhook-configs/{config['id']}", headers=keyed(headers, "del"))
        assert (first.status_code, second.status_code) == (204, 204)
        assert second.headers[REPLAYED] == "true"
        unkeyed = client.delete(f"/api/webhook-configs/{config['id']}", headers=headers)
        assert unkeyed.status_code == 404

    def test_rotate_token_rotates_once(self, client, db, user):
        _, headers = user
        config = create(client, headers).json
        url = f"/api/webhook-configs/{config['id']}/rotate-token"
        first = client.post(url, headers=keyed(headers, "rotate"))
        second = client.post(url, headers=keyed(headers, "rotate"))
        assert first.status_code == second.status_code == 200
        assert second.json["token"] == first.json["token"] != config["token"]
        with db.transaction() as conn:
            stored = conn.execute(
                "select security_token_hash from public.webhook_configs where id = %s", (config["id"],)
            ).fetchone()["security_token_hash"]
        assert bytes(stored) == hashlib.sha256(first.json["token"].encode()).digest()

    def test_patch_replays_without_applying_twice(self, client, user):
        _, headers = user
        config = create(client, headers).json
        url = f"/api/webhook-configs/{config['id']}"
        first = client.patch(url, json={"name": "Renamed"}, headers=keyed(headers, "patch"))
        client.patch(url, json={"name": "Changed since"}, headers=headers)
        second = client.patch(url, json={"name": "Renamed"}, headers=keyed(headers, "patch"))
        assert second.headers[REPLAYED] == "true"
        assert second.json == first.json
        assert client.get(url, headers=headers).json["name"] == "Changed since"

    def test_a_refusal_by_the_service_is_stored_and_replayed(self, client, user):
        _, headers = user
        url = f"/api/webhook-configs/{uuid.uuid4()}"
        first = client.patch(url, json={"name": "x"}, headers=keyed(headers, "missing"))
        second = client.patch(url, json={"name": "x"}, headers=keyed(headers, "missing"))
        assert first.status_code == second.status_code == 404
        assert second.json == first.json
        assert second.json["code"] == "not_found"
        assert second.headers[REPLAYED] == "true"

    def test_x_idempotency_key_alias_and_a_quoted_value_name_the_same_key(self, client, db, user):
        user_id, headers = user
        first = create(client, keyed(headers, '"alias-1"'))
        second = create(client, keyed(headers, "alias-1", header="X-Idempotency-Key"))
        both = create(client, {**headers, "Idempotency-Key": "alias-1", "X-Idempotency-Key": '"alias-1"'})
        assert first.status_code == 201
        assert second.headers[REPLAYED] == both.headers[REPLAYED] == "true"
        assert second.json["id"] == both.json["id"] == first.json["id"]
        assert [r["key"] for r in key_rows(db, user_id, "alias-1")] == ["alias-1"]

    def test_quoted_key_may_escape_quotes_and_backslashes(self, client, db, user):
        user_id, headers = user
        response = create(client, keyed(headers, r'"a\"b\\c"'))
        assert response.status_code == 201
        assert len(key_rows(db, user_id, 'a"b\\c')) == 1

    def test_a_key_of_255_characters_is_accepted(self, client, user):
        _, headers = user
        assert create(client, keyed(headers, "k" * 255)).status_code == 201

    def test_without_a_key_every_request_runs(self, client, db, user):
        user_id, headers = user
        create(client, headers)
        create(client, headers)
        assert config_count(db, user_id) == 2

    def test_reads_ignore_the_header(self, client, user):
        _, headers = user
        assert client.get("/api/webhook-configs", headers=keyed(headers, "")).status_code == 200


class TestMalformedKey:
    @pytest.mark.parametrize(
        "extra",
        [
            {"Idempotency-Key": ""},
            {"Idempotency-Key": "   "},
            {"Idempotency-Key": '""'},
            {"Idempotency-Key": "k" * 256},
            {"Idempotency-Key": '"' + "k" * 256 + '"'},
            {"Idempotency-Key": "tab\there"},
            {"Idempotency-Key": "bell\x07"},
            {"Idempotency-Key": "caf\xe9"},
            {"Idempotency-Key": '"unterminated'},
            {"Idempotency-Key": '"a"b'},
            {"Idempotency-Key": r'"a\nb"'},
            {"X-Idempotency-Key": ""},
            {"Idempotency-Key": "one", "X-Idempotency-Key": "two"},
        ],
        ids=lambda extra: repr(extra)[:40],
    )
    def test_answers_400_invalid_idempotency_key_and_does_nothing(self, client, db, user, extra):
        user_id, headers = user
        response = create(client, {**headers, **extra})
        assert response.status_code == 400
        body = response.json
        assert (body["code"], body["status"]) == ("invalid_idempotency_key", 400)
        assert "Idempotency-Key" in body["message"]
        assert config_count(db, user_id) == 0

    def test_authentication_comes_first(self, client):
        response = create(client, {"Idempotency-Key": ""})
        assert response.status_code == 401


class TestReuse:
    def test_same_key_with_another_body_answers_422_and_does_nothing(self, client, db, user):
        user_id, headers = user
        first = create(client, keyed(headers, "reuse"), name="First")
        second = create(client, keyed(headers, "reuse"), name="Second")
        assert first.status_code == 201
        assert second.status_code == 422
        assert (second.json["code"], second.json["status"]) == ("idempotency_key_reused", 422)
        assert REPLAYED not in second.headers
        assert config_count(db, user_id) == 1

    def test_same_key_on_another_endpoint_answers_422(self, client, user):
        _, headers = user
        config = create(client, keyed(headers, "elsewhere")).json
        response = client.post(
            f"/api/webhook-configs/{config['id']}/rotate-token", headers=keyed(headers, "elsewhere")
        )
        assert response.status_code == 422
        assert response.json["code"] == "idempotency_key_reused"

    def test_keys_are_per_user(self, client, db, make_user):
        a_id, a_token = make_user()
        b_id, b_token = make_user()
        a = create(client, {"Authorization": f"Bearer {a_token}", "Idempotency-Key": "shared"})
        b = create(client, {"Authorization": f"Bearer {b_token}", "Idempotency-Key": "shared"})
        assert a.status_code == b.status_code == 201
        assert REPLAYED not in b.headers
        assert b.json["id"] != a.json["id"]
        assert (config_count(db, a_id), config_count(db, b_id)) == (1, 1)


class TestNotStored:
    def test_a_validation_failure_is_not_stored_so_a_corrected_retry_runs(self, client, db, user):
        user_id, headers = user
        refused = create(client, keyed(headers, "fix-me"), name="", quantity="-1")
        assert refused.status_code == 422
        assert refused.json["code"] == "validation_error"
        assert key_rows(db, user_id, "fix-me") == []

        fixed = create(client, keyed(headers, "fix-me"), name="Fixed")
        assert fixed.status_code == 201
        assert REPLAYED not in fixed.headers
        assert config_count(db, user_id) == 1

    def test_malformed_json_is_not_stored(self, client, db, user):
        user_id, headers = user
        refused = client.post(
            "/api/webhook-configs",
            data='{"name": ',
            content_type="application/json",
            headers=keyed(headers, "bad-json"),
        )
        assert refused.status_code == 400
        assert create(client, keyed(headers, "bad-json")).status_code == 201
        assert config_count(db, user_id) == 1

    def test_a_server_error_rolls_back_the_work_and_frees_the_key(self, client, db, user, monkeypatch):
        """The config is inserted, then the view fails: neither the config nor the key is kept."""
        from viewzenix.api import webhook_configs as view_module

        user_id, headers = user

        def broken(row, token):
            raise RuntimeError("boom after the work")

        monkeypatch.setattr(view_module, "_with_token", broken)
        with pytest.raises(RuntimeError, match="boom"):  # TESTING: Flask re-raises instead of 500
            create(client, keyed(headers, "crash"))
        assert config_count(db, user_id) == 0
        assert key_rows(db, user_id, "crash") == []

        monkeypatch.undo()
        retried = create(client, keyed(headers, "crash"))
        assert retried.status_code == 201
        assert REPLAYED not in retried.headers
        assert config_count(db, user_id) == 1

    def test_the_work_is_rolled_back_when_the_key_cannot_be_stored(self, client, db, user, monkeypatch):
        """Work and key record commit together: the services' transactions join the request's."""
        user_id, headers = user

        def failing_save(*args, **kwargs):
            raise psycopg.errors.DiskFull("could not extend file")

        monkeypatch.setattr(repo, "save", failing_save)
        # A database error (DiskFull is an OperationalError) answers 503 database_unavailable.
        response = create(client, keyed(headers, "no-room"))
        assert response.status_code == 503 and response.json["code"] == "database_unavailable"
        assert config_count(db, user_id) == 0

    def test_a_5xx_answer_is_not_stored(self, client, db, user, monkeypatch):
        from viewzenix.api import webhook_configs as view_module
        from viewzenix.errors import ApiError

        user_id, headers = user

        def unavailable(row, token):
            raise ApiError("Broker unavailable.", code="broker_unavailable", status=503)

        monkeypatch.setattr(view_module, "_with_token", unavailable)
        assert create(client, keyed(headers, "later")).status_code == 503
        assert (config_count(db, user_id), key_rows(db, user_id, "later")) == (0, [])
        monkeypatch.undo()
        assert create(client, keyed(headers, "later")).status_code == 201


class TestExpiry:
    def test_an_expired_key_runs_again_and_is_stored_anew(self, client, db, user):
        user_id, headers = user
        first = create(client, keyed(headers, "old"))
        with db.transaction() as conn:
            conn.execute(
                "update private.idempotency_keys set expires_at = now() - interval '1 second' "
                "where user_id = %s and key = 'old'",
                (user_id,),
            )
        again = create(client, keyed(headers, "old"), name="Another body is fine once expired")
        assert again.status_code == 201
        assert REPLAYED not in again.headers
        assert again.json["id"] != first.json["id"]
        assert config_count(db, user_id) == 2
        [row] = key_rows(db, user_id, "old")
        assert row["expires_at"] > row["created_at"]
        assert (
            create(client, keyed(headers, "old"), name="Another body is fine once expired").headers[REPLAYED]
            == "true"
        )

    def test_purge_expired_deletes_expired_keys_only(self, client, db, user):
        user_id, headers = user
        create(client, keyed(headers, "stale"))
        create(client, keyed(headers, "fresh"))
        with db.transaction() as conn:
            conn.execute(
                "update private.idempotency_keys set expires_at = now() - interval '1 hour' "
                "where user_id = %s and key = 'stale'",
                (user_id,),
            )
        with db.transaction() as conn:
            assert repo.purge_expired(conn) >= 1
        assert key_rows(db, user_id, "stale") == []
        assert len(key_rows(db, user_id, "fresh")) == 1

    def test_cli_purges_expired_keys(self, app, client, db, user):
        user_id, headers = user
        create(client, keyed(headers, "cli-stale"))
        with db.transaction() as conn:
            conn.execute(
                "update private.idempotency_keys set expires_at = now() - interval '1 hour' "
                "where user_id = %s",
                (user_id,),
            )
        result = app.test_cli_runner().invoke(args=["purge-idempotency-keys"])
        assert result.exit_code == 0, result.output
        assert "expired idempotency key(s)" in result.output
        assert key_rows(db, user_id, "cli-stale") == []


class TestInProgress:
    def test_a_key_locked_by_a_running_request_answers_409(self, client, database_url, user):
        user_id, headers = user
        with psycopg.connect(database_url) as other:  # stands in for the first request, still running
            other.execute("select pg_advisory_xact_lock(%s)", (repo.lock_id(user_id, "busy"),))
            response = create(client, keyed(headers, "busy"))
            assert response.status_code == 409
            assert (response.json["code"], response.json["status"]) == ("idempotency_key_in_progress", 409)
            assert response.headers["Retry-After"] == "1"
        # The lock ends with that transaction (commit, rollback or a dropped connection).
        assert create(client, keyed(headers, "busy")).status_code == 201

    def test_fifty_concurrent_identical_requests_run_once(self, threaded_server, db, make_user):
        user_id, token = make_user()
        headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "race"}
        body = {"name": "Raced"}
        clients = 50
        start = threading.Barrier(clients)

        def send(_):
            start.wait(timeout=30)
            response = requests.post(
                f"{threaded_server}/api/webhook-configs", json=body, headers=headers, timeout=30
            )
            return response.status_code, response.headers.get(REPLAYED), response.content

        with ThreadPoolExecutor(max_workers=clients) as pool:
            answers = list(pool.map(send, range(clients)))

        statuses = [status for status, _, _ in answers]
        assert set(statuses) <= {201, 409}, statuses
        created = [(replayed, content) for status, replayed, content in answers if status == 201]
        assert [replayed for replayed, _ in created].count(None) == 1  # one execution ...
        assert all(replayed in (None, "true") for replayed, _ in created)
        assert len({content for _, content in created}) == 1  # ... every other 201 is its replay
        assert config_count(db, user_id) == 1


class TestStorage:
    def test_a_user_reads_only_own_keys_in_sql(self, app, client, db, make_user):
        verifier = app.extensions["viewzenix"].verifier
        a_id, a_token = make_user()
        _, b_token = make_user()
        create(client, {"Authorization": f"Bearer {a_token}", "Idempotency-Key": "mine"})
        create(client, {"Authorization": f"Bearer {b_token}", "Idempotency-Key": "theirs"})
        with db.transaction(verifier.verify(a_token).raw) as conn:
            rows = conn.execute("select user_id, key from private.idempotency_keys").fetchall()
        assert rows == [{"user_id": a_id, "key": "mine"}]

    def test_a_user_cannot_write_keys_for_another(self, app, db, make_user):
        verifier = app.extensions["viewzenix"].verifier
        _, a_token = make_user()
        b_id, _ = make_user()
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            with db.transaction(verifier.verify(a_token).raw) as conn:
                conn.execute(
                    "insert into private.idempotency_keys (user_id, key, fingerprint, method, path, "
                    "response_status, response_body, expires_at) "
                    "values (%s, 'forged', '\\x00', 'POST', '/api/x', 200, '\\x00', "
                    "now() + interval '1 day')",
                    (b_id,),
                )

    def test_users_cannot_delete_keys(self, app, db, make_user):
        verifier = app.extensions["viewzenix"].verifier
        _, token = make_user()
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
            with db.transaction(verifier.verify(token).raw) as conn:
                conn.execute("delete from private.idempotency_keys")

    def test_anon_gets_nothing(self, db):
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
            with db.transaction() as conn:
                conn.execute("select set_config('role', 'anon', true)")
                conn.execute("select 1 from private.idempotency_keys")


class TestWiring:
    def test_every_mutating_api_endpoint_honours_the_header(self, app):
        mutating = {"POST", "PUT", "PATCH", "DELETE"}
        rules = [
            rule
            for rule in app.url_map.iter_rules()
            if rule.rule.startswith("/api/") and rule.methods & mutating
        ]
        assert rules
        # The job runner has no user to scope keys to (a shared secret authenticates it).
        exempt = {"job_runner.JobRun"}
        assert {r.endpoint for r in rules} >= exempt
        assert all(
            getattr(app.view_functions[r.endpoint], "idempotent", False)
            for r in rules
            if r.endpoint not in exempt
        )
        assert not any(getattr(app.view_functions[e], "idempotent", False) for e in exempt)

    def test_openapi_documents_the_header_on_mutating_operations(self, client):
        spec = client.get("/api/openapi.json").json
        assert spec["components"]["parameters"]["IdempotencyKey"]["name"] == "Idempotency-Key"
        ref = {"$ref": "#/components/parameters/IdempotencyKey"}
        for path, operations in spec["paths"].items():
            if not path.startswith("/api/"):  # intake and health: no Idempotency-Key
                continue
            for method, operation in operations.items():
                if method in {"post", "put", "patch", "delete"}:
                    assert ref in operation["parameters"], (method, path)
                elif method == "get":
                    assert ref not in operation.get("parameters", []), (method, path)


@pytest.fixture(scope="module")
def threaded_server(app, database_url):
    """The app behind a real threaded HTTP server on 127.0.0.1, with a pool for 50 clients."""
    from viewzenix import create_app

    server_app = create_app(
        app_config.TestingConfig(
            {
                "DATABASE_URL": database_url,
                "DATA_DIR": str(app.config["DATA_DIR"]),  # same local signing key as ``make_user``
                "PUBLIC_BASE_URL": "http://testserver",
                "DB_POOL_MAX_SIZE": "50",
            }
        )
    )
    server = make_server("127.0.0.1", 0, server_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
        server_app.extensions["viewzenix"].close()


class TestTransientAnswers:
    """A "retry in a few seconds" answer is not the request's outcome: a retry with the key runs."""

    def test_a_409_order_being_submitted_is_not_replayed_once_the_order_is_open(self, client, db, user):
        from builders import orders_of, store_signal

        from viewzenix.domain.model import Action, OrderType, Signal
        from viewzenix.services.execution import execute_signal

        user_id, headers = user
        created = create(client, headers, broker="simulated").json
        with db.transaction() as conn:
            row = conn.execute(
                "select * from public.webhook_configs where id = %s", (created["id"],)
            ).fetchone()
        signal = Signal(
            ticker="AAPL",
            action=Action.BUY,
            quantity=Decimal("5"),
            order_type=OrderType.LIMIT,
            limit_price=Decimal("1"),
        )
        signal_id = store_signal(db, row, signal)
        assert execute_signal(db, signal_id) == "executed"
        [order] = orders_of(db, signal_id)
        status = order["status"]
        assert status in ("accepted", "new")
        url = f"/api/orders/{order['id']}/cancel"
        # The order's job is still sending it (pending_new): "retry in a few seconds".
        with db.transaction() as conn:
            conn.execute("update public.orders set status = 'pending_new' where id = %s", (order["id"],))
        first = client.post(url, headers=keyed(headers, "cancel-it"))
        assert (first.status_code, first.json["code"]) == (409, "order_being_submitted")
        assert key_rows(db, user_id, "cancel-it") == []
        with db.transaction() as conn:
            conn.execute("update public.orders set status = %s where id = %s", (status, order["id"]))
        second = client.post(url, headers=keyed(headers, "cancel-it"))
        assert second.status_code == 200, second.json
        assert REPLAYED not in second.headers
        assert second.json["status"] == "canceled"
        third = client.post(url, headers=keyed(headers, "cancel-it"))  # the outcome is now stored
        assert (third.status_code, third.headers[REPLAYED], third.json) == (200, "true", second.json)

    def test_an_answer_with_retry_after_is_not_stored(self, client, db, user, monkeypatch):
        from viewzenix.api import webhook_configs as view_module
        from viewzenix.errors import ApiError

        user_id, headers = user

        def busy(row, token):
            raise ApiError("Busy, retry shortly.", code="busy", status=423, headers={"Retry-After": "2"})

        monkeypatch.setattr(view_module, "_with_token", busy)
        assert create(client, keyed(headers, "busy")).status_code == 423
        assert (config_count(db, user_id), key_rows(db, user_id, "busy")) == (0, [])
        monkeypatch.undo()
        assert create(client, keyed(headers, "busy")).status_code == 201
