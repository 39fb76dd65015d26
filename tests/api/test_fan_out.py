"""One alert, several accounts (issue 17 item 5): webhook groups, their API and their intake."""

from __future__ import annotations

import uuid

import psycopg
import pytest

pytestmark = pytest.mark.db

ALERT = '{"ticker": "AAPL", "action": "buy", "quantity": 1, "price": 100, "id": "alert-1"}'


def make_config(client, headers, name, **settings):
    response = client.post("/api/webhook-configs", json={"name": name, **settings}, headers=headers)
    assert response.status_code == 201
    return response.json


def make_group(client, headers, config_ids, name="both accounts"):
    response = client.post(
        "/api/webhook-groups",
        json={"name": name, "config_ids": [str(c) for c in config_ids]},
        headers=headers,
    )
    assert response.status_code == 201, response.json
    group = response.json
    return {**group, "url": group["webhook_url"].removeprefix("http://testserver")}


def post(client, url, body=ALERT, address="203.0.113.8"):
    return client.post(url, data=body, content_type="application/json", environ_base={"REMOTE_ADDR": address})


def signals_of(db, fan_out_id):
    with db.transaction() as conn:
        return conn.execute(
            "select * from public.signals where fan_out_id = %s order by received_at", (fan_out_id,)
        ).fetchall()


@pytest.fixture()
def pair(client, auth_headers):
    paper = make_config(client, auth_headers, "paper", quantity="1", use_signal_quantity=False)
    second = make_config(client, auth_headers, "second", quantity="5", use_signal_quantity=False)
    return paper, second


class TestGroupApi:
    def test_create_shows_the_url_once_then_masked(self, client, auth_headers, pair):
        group = make_group(client, auth_headers, [c["id"] for c in pair])
        assert group["config_ids"] == [pair[0]["id"], pair[1]["id"]]
        assert group["url"] == f"/webhooks/groups/{group['id']}/{group['token']}"
        shown = client.get(f"/api/webhook-groups/{group['id']}", headers=auth_headers).json
        assert "token" not in shown and group["token"] not in shown["webhook_url"]
        assert shown["config_ids"] == group["config_ids"]
        listed = client.get("/api/webhook-groups", headers=auth_headers).json
        assert [g["id"] for g in listed] == [group["id"]]

    def test_patch_replaces_members_in_order_and_renames(self, client, auth_headers, pair):
        group = make_group(client, auth_headers, [pair[0]["id"]])
        response = client.patch(
            f"/api/webhook-groups/{group['id']}",
            json={"name": "renamed", "config_ids": [pair[1]["id"], pair[0]["id"]]},
            headers=auth_headers,
        )
        assert response.status_code == 200
        assert response.json["name"] == "renamed"
        assert response.json["config_ids"] == [pair[1]["id"], pair[0]["id"]]

    def test_rotate_token_stops_the_old_url(self, client, auth_headers, pair):
        group = make_group(client, auth_headers, [pair[0]["id"]])
        rotated = client.post(f"/api/webhook-groups/{group['id']}/rotate-token", headers=auth_headers).json
        assert rotated["token"] != group["token"]
        assert post(client, group["url"]).status_code == 404
        assert post(client, rotated["webhook_url"].removeprefix("http://testserver")).status_code == 200

    def test_delete_keeps_the_member_webhooks(self, client, auth_headers, pair):
        group = make_group(client, auth_headers, [pair[0]["id"]])
        assert client.delete(f"/api/webhook-groups/{group['id']}", headers=auth_headers).status_code == 204
        assert client.get(f"/api/webhook-groups/{group['id']}", headers=auth_headers).status_code == 404
        assert client.get(f"/api/webhook-configs/{pair[0]['id']}", headers=auth_headers).status_code == 200
        assert post(client, group["url"]).status_code == 404

    def test_a_nonexistent_config_is_422_with_code_and_field(self, client, auth_headers, pair):
        missing = str(uuid.uuid4())
        response = client.post(
            "/api/webhook-groups",
            json={"name": "g", "config_ids": [pair[0]["id"], missing]},
            headers=auth_headers,
        )
        assert response.status_code == 422
        assert response.json["code"] == "unknown_config"
        assert missing in response.json["errors"]["config_ids"][0]

    def test_a_group_including_itself_is_422(self, client, auth_headers, pair):
        group = make_group(client, auth_headers, [pair[0]["id"]])
        response = client.patch(
            f"/api/webhook-groups/{group['id']}",
            json={"config_ids": [pair[0]["id"], group["id"]]},
            headers=auth_headers,
        )
        assert response.status_code == 422
        assert response.json["code"] == "group_includes_itself" and "config_ids" in response.json["errors"]
        shown = client.get(f"/api/webhook-groups/{group['id']}", headers=auth_headers).json
        assert shown["config_ids"] == [pair[0]["id"]]

    def test_a_config_twice_is_422(self, client, auth_headers, pair):
        response = client.post(
            "/api/webhook-groups", json={"name": "g", "config_ids": [pair[0]["id"]] * 2}, headers=auth_headers
        )
        assert response.status_code == 422 and response.json["code"] == "duplicate_member"

    def test_bad_body_is_422(self, client, auth_headers):
        response = client.post(
            "/api/webhook-groups", json={"name": "", "config_ids": ["x"]}, headers=auth_headers
        )
        assert response.status_code == 422
        assert set(response.json["errors"]["json"]) == {"name", "config_ids"}


class TestCrossTenant:
    def test_another_users_config_cannot_join_a_group(self, client, auth_headers, pair, make_user):
        _, token = make_user()
        other = {"Authorization": f"Bearer {token}"}
        theirs = make_config(client, other, "theirs")
        response = client.post(
            "/api/webhook-groups",
            json={"name": "g", "config_ids": [pair[0]["id"], theirs["id"]]},
            headers=auth_headers,
        )
        assert response.status_code == 422 and response.json["code"] == "unknown_config"
        # Nor can B put A's config into B's own group.
        group = make_group(client, other, [theirs["id"]])
        response = client.patch(
            f"/api/webhook-groups/{group['id']}", json={"config_ids": [pair[0]["id"]]}, headers=other
        )
        assert response.status_code == 422 and response.json["code"] == "unknown_config"

    def test_another_user_cannot_read_edit_or_delete_a_group(self, client, auth_headers, pair, make_user):
        group = make_group(client, auth_headers, [pair[0]["id"]])
        _, token = make_user()
        other = {"Authorization": f"Bearer {token}"}
        assert client.get(f"/api/webhook-groups/{group['id']}", headers=other).status_code == 404
        assert client.get("/api/webhook-groups", headers=other).json == []
        assert (
            client.patch(f"/api/webhook-groups/{group['id']}", json={"name": "x"}, headers=other).status_code
            == 404
        )
        assert (
            client.post(f"/api/webhook-groups/{group['id']}/rotate-token", headers=other).status_code == 404
        )
        assert client.delete(f"/api/webhook-groups/{group['id']}", headers=other).status_code == 404
        assert (
            client.get(f"/api/webhook-groups/{group['id']}", headers=auth_headers).json["name"]
            == "both accounts"
        )

    def test_rls_and_keys_refuse_a_foreign_member_in_sql(self, client, auth_headers, pair, make_user, db):
        group = make_group(client, auth_headers, [pair[0]["id"]])
        other_id, token = make_user()
        theirs = make_group(client, {"Authorization": f"Bearer {token}"}, [])
        claims = {"sub": str(other_id), "role": "authenticated", "aud": "authenticated"}
        with db.transaction(claims) as conn:
            assert conn.execute("select count(*) as n from public.webhook_group_members").fetchone()["n"] == 0
            assert conn.execute("select id from public.webhook_groups").fetchall() == [
                {"id": uuid.UUID(theirs["id"])}
            ]
            for params in ((theirs["id"], pair[0]["id"], other_id), (group["id"], pair[1]["id"], other_id)):
                with pytest.raises(psycopg.errors.Error), conn.transaction():
                    conn.execute(
                        "insert into public.webhook_group_members (group_id, config_id, user_id) "
                        "values (%s, %s, %s)",
                        params,
                    )


class TestFanOutIntake:
    def test_each_member_gets_its_own_signal_job_and_lock(self, client, auth_headers, pair, db):
        group = make_group(client, auth_headers, [c["id"] for c in pair])
        response = post(client, group["url"])
        assert response.status_code == 200
        body = response.json
        assert body["status"] == "fanned_out" and body["group_id"] == group["id"]
        assert [(s["config_id"], s["status"], s["ticker"]) for s in body["signals"]] == [
            (pair[0]["id"], "accepted", "AAPL"),
            (pair[1]["id"], "accepted", "AAPL"),
        ]
        rows = signals_of(db, body["fan_out_id"])
        assert sorted(str(r["config_id"]) for r in rows) == sorted(c["id"] for c in pair)
        assert {str(r["group_id"]) for r in rows} == {group["id"]}
        assert {str(r["id"]) for r in rows} == {s["signal_id"] for s in body["signals"]}
        with db.transaction() as conn:
            locks = conn.execute(
                "select lock, args from procrastinate_jobs where id = any(%s)", ([r["job_id"] for r in rows],)
            ).fetchall()
        assert sorted(j["lock"] for j in locks) == sorted(f"signal:{c['id']}:AAPL" for c in pair)
        assert sorted(j["args"]["signal_id"] for j in locks) == sorted(str(r["id"]) for r in rows)
        # Each member's page shows its signal.
        for config in pair:
            listed = client.get(f"/api/signals?config_id={config['id']}", headers=auth_headers).json
            assert len(listed) == 1
            detail = client.get(f"/api/signals/{listed[0]['id']}", headers=auth_headers).json
            assert (detail["group_id"], detail["fan_out_id"]) == (group["id"], body["fan_out_id"])

    def test_a_member_in_approval_mode_waits_while_the_other_is_accepted(
        self, client, auth_headers, pair, db
    ):
        waiting = make_config(client, auth_headers, "waits", approval_mode=True, approval_timeout_seconds=600)
        group = make_group(client, auth_headers, [pair[0]["id"], waiting["id"]])
        body = post(client, group["url"]).json
        assert [(s["config_id"], s["status"]) for s in body["signals"]] == [
            (pair[0]["id"], "accepted"),
            (waiting["id"], "awaiting_approval"),
        ]
        rows = {str(r["config_id"]): r for r in signals_of(db, body["fan_out_id"])}
        assert rows[waiting["id"]]["status"] == "awaiting_approval" and rows[waiting["id"]]["job_id"] is None
        assert rows[waiting["id"]]["approval_expires_at"] is not None
        accepted = rows[pair[0]["id"]]
        assert accepted["job_id"] is not None and accepted["approval_expires_at"] is None
        # Approved, it runs through the normal job like a webhook's own waiting signal.
        approved = client.post(f"/api/signals/{rows[waiting['id']]['id']}/approve", headers=auth_headers)
        assert approved.status_code == 200 and approved.json["status"] == "accepted"

    def test_a_resend_to_the_group_is_a_duplicate_on_every_member(self, client, auth_headers, pair, db):
        group = make_group(client, auth_headers, [c["id"] for c in pair])
        first = post(client, group["url"]).json
        again = post(client, group["url"]).json
        assert [s["status"] for s in again["signals"]] == ["duplicate", "duplicate"]
        assert [s["duplicate_of"] for s in again["signals"]] == [s["signal_id"] for s in first["signals"]]
        assert all(r["job_id"] is None for r in signals_of(db, again["fan_out_id"]))

    def test_a_resend_makes_one_order_per_member(self, client, auth_headers, pair, jobs, db):
        group = make_group(client, auth_headers, [c["id"] for c in pair])
        post(client, group["url"])
        post(client, group["url"])
        jobs()
        with db.transaction() as conn:
            orders = conn.execute(
                "select config_id, qty from public.orders where config_id = any(%s) order by qty",
                ([uuid.UUID(c["id"]) for c in pair],),
            ).fetchall()
        assert [(str(o["config_id"]), str(o["qty"])) for o in orders] == [
            (pair[0]["id"], "1"),
            (pair[1]["id"], "5"),
        ]

    def test_a_member_turned_off_or_refusing_the_source_does_not_stop_the_others(
        self, client, auth_headers, pair, make_config_factory=None
    ):
        third = make_config(client, auth_headers, "third")
        client.patch(f"/api/webhook-configs/{pair[0]['id']}", json={"is_active": False}, headers=auth_headers)
        client.put(
            f"/api/webhook-configs/{third['id']}/source-allowlist",
            json={"preset": "tradingview"},
            headers=auth_headers,
        )
        group = make_group(client, auth_headers, [pair[0]["id"], pair[1]["id"], third["id"]])
        body = post(client, group["url"]).json
        assert [(s["status"], s.get("code")) for s in body["signals"]] == [
            ("rejected", "config_inactive"),
            ("accepted", None),
            ("rejected", "source_not_allowed"),
        ]

    def test_every_member_refusing_answers_the_first_refusal(self, client, auth_headers, pair):
        for config in pair:
            client.put(
                f"/api/webhook-configs/{config['id']}/source-allowlist",
                json={"preset": "tradingview"},
                headers=auth_headers,
            )
        group = make_group(client, auth_headers, [c["id"] for c in pair])
        response = post(client, group["url"])
        assert response.status_code == 403 and response.json["code"] == "source_not_allowed"
        assert [s["status"] for s in response.json["signals"]] == ["rejected", "rejected"]
        assert post(client, group["url"], address="52.89.214.238").status_code == 200

    def test_each_member_applies_its_own_mapping(self, client, auth_headers, pair, db):
        client.put(
            f"/api/webhook-configs/{pair[1]['id']}/symbol-mappings",
            json={"mappings": [{"alert_ticker": "AAPL", "broker_symbol": "AAPL.US"}]},
            headers=auth_headers,
        )
        group = make_group(client, auth_headers, [c["id"] for c in pair])
        body = post(client, group["url"]).json
        assert [s["ticker"] for s in body["signals"]] == ["AAPL", "AAPL.US"]
        rows = {str(r["config_id"]): r for r in signals_of(db, body["fan_out_id"])}
        assert (rows[pair[1]["id"]]["ticker"], rows[pair[1]["id"]]["alert_ticker"]) == ("AAPL.US", "AAPL")
        assert rows[pair[0]["id"]]["alert_ticker"] is None

    def test_an_unparseable_alert_is_stored_refused_on_every_member(self, client, auth_headers, pair, db):
        group = make_group(client, auth_headers, [c["id"] for c in pair])
        response = post(client, group["url"], body='{"ticker": "AAPL",}')
        assert response.status_code == 400 and response.json["code"] == "trailing_comma"
        rows = signals_of(db, response.json["fan_out_id"])
        assert sorted(str(r["config_id"]) for r in rows) == sorted(c["id"] for c in pair)
        assert {(r["status"], r["reject_code"]) for r in rows} == {("rejected", "trailing_comma")}

    def test_wrong_token_or_unknown_group_is_404_and_writes_nothing(self, client, auth_headers, pair, db):
        group = make_group(client, auth_headers, [c["id"] for c in pair])
        count = "select count(*) as n from public.signals"
        with db.transaction() as conn:
            before = conn.execute(count).fetchone()["n"]
        assert post(client, f"/webhooks/groups/{group['id']}/wrong").status_code == 404
        assert post(client, f"/webhooks/groups/{group['id']}/wrong", body="{bad").status_code == 404
        assert post(client, f"/webhooks/groups/{uuid.uuid4()}/{group['token']}").status_code == 404
        with db.transaction() as conn:
            assert conn.execute(count).fetchone()["n"] == before

    def test_an_empty_group_is_422_group_empty(self, client, auth_headers):
        group = make_group(client, auth_headers, [])
        response = post(client, group["url"])
        assert response.status_code == 422 and response.json["code"] == "group_empty"
