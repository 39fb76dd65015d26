"""supabase/signed_webhooks.sql signs in SQL what the Flask receiver verifies, byte for byte.

The file runs on plain Postgres (the second test database) with pgcrypto, and with fakes in
place of its supabase-only section: ``net.http_post`` is a fake that queues the request the way
pg_net does (``convert_to(body::text, 'UTF8')``, from pg_net's source) and Vault is a fake view.
The queued bytes and headers are then posted to the receiver unchanged."""

from __future__ import annotations

import re
import uuid

import psycopg
import pytest

from tests.api.test_supabase_hooks import SECRET, make_app
from tests.conftest import ROOT

SQL = (ROOT / "supabase" / "signed_webhooks.sql").read_text()
# Where the server has no pgcrypto (the embedded test server ships none; CI's PostgreSQL 15 and
# Supabase have it): a STAND-IN for pgcrypto's hmac(data, key, 'sha256'), RFC 2104 over core
# sha256(). The receiver verifying what it computes checks the stand-in too.
HMAC_STAND_IN = """
create or replace function extensions.hmac(data bytea, key bytea, type text) returns bytea
language plpgsql immutable as $$
declare
    k bytea := key;
    ipad bytea;
    opad bytea;
begin
    if type <> 'sha256' then
        raise exception 'the hmac stand-in computes sha256 only';
    end if;
    if length(k) > 64 then
        k := sha256(k);
    end if;
    k := k || decode(repeat('00', 64 - length(k)), 'hex');
    ipad := k;
    opad := k;
    for i in 0..63 loop
        ipad := set_byte(ipad, i, get_byte(k, i) # 54);
        opad := set_byte(opad, i, get_byte(k, i) # 92);
    end loop;
    return sha256(opad || sha256(ipad || data));
end
$$;
"""
FAKES = """
create schema if not exists extensions;
-- FAKE pg_net: queue the request as pg_net's http_post does, nothing is sent.
create schema if not exists net;
create table if not exists net.fake_http_request_queue (
    id bigint generated always as identity primary key, url text, headers jsonb, body bytea,
    timeout_milliseconds integer);
create or replace function net.http_post(url text, body jsonb default '{}'::jsonb,
    params jsonb default '{}'::jsonb, headers jsonb default '{}'::jsonb,
    timeout_milliseconds integer default 1000) returns bigint language sql as $$
    insert into net.fake_http_request_queue (url, headers, body, timeout_milliseconds)
    values (url, headers, convert_to(body::text, 'UTF8'), timeout_milliseconds) returning id
$$;
-- FAKE Vault: the two secrets the trigger reads.
create schema if not exists vault;
create or replace view vault.decrypted_secrets as
    select * from (values ('viewzenix_webhook_secret', %(secret)s),
                          ('viewzenix_webhook_url', 'http://testserver/hooks/supabase/db'))
    as s(name, decrypted_secret);
"""


@pytest.fixture(scope="module")
def source(source_database_url):
    portable = re.sub(r"-- supabase-only begin.*?-- supabase-only end", "", SQL, flags=re.S)
    assert "create extension if not exists pg_net" not in portable
    with psycopg.connect(source_database_url, autocommit=True) as conn:
        available = conn.execute("select 1 from pg_available_extensions where name = 'pgcrypto'").fetchone()
        conn.execute("create schema if not exists extensions")
        if available:
            conn.execute("create extension if not exists pgcrypto with schema extensions")
        else:
            conn.execute(HMAC_STAND_IN)
        conn.execute(FAKES.replace("%(secret)s", "'" + SECRET.replace("'", "''") + "'"))
        conn.execute(portable)
    return source_database_url


@pytest.fixture(scope="module")
def receiver(database_url, tmp_path_factory):
    app = make_app(database_url, tmp_path_factory.mktemp("sqlsign"))
    yield app.test_client()
    app.extensions["viewzenix"].close()


def deliver(source_url, receiver, since_id):
    """Post every request the triggers queued after ``since_id``, bytes and headers unchanged."""
    with psycopg.connect(source_url) as conn:
        rows = conn.execute(
            "select id, url, headers, body, timeout_milliseconds from net.fake_http_request_queue "
            "where id > %s order by id",
            (since_id,),
        ).fetchall()
    answers = []
    for _id, url, headers, body, timeout in rows:
        assert url == "http://testserver/hooks/supabase/db"
        assert timeout == 3000
        assert re.fullmatch(r"[0-9a-f]{64}", headers["x-hmac-sha256"])
        answers.append(receiver.post("/hooks/supabase/db", data=bytes(body), headers=headers))
    return answers


def queued(source_url):
    with psycopg.connect(source_url) as conn:
        return conn.execute("select coalesce(max(id), 0) from net.fake_http_request_queue").fetchone()[0]


def test_user_symbols_changes_signed_in_sql_are_verified_and_applied(source, receiver, db):
    user_id = uuid.uuid4()
    marker = queued(source)
    with psycopg.connect(source) as conn:
        conn.execute(
            "insert into auth.users (id, email) values (%s, %s)", (user_id, f"{user_id.hex[:8]}@x.test")
        )
        conn.execute(
            "insert into public.user_symbols (user_id, symbol, timeframe, strategy) "
            "values (%s, 'BTC/USDT', '1h', '{\"name\": \"grid\", \"levels\": [1.5, 2]}')",
            (user_id,),
        )
        conn.commit()
        conn.execute(
            "update public.user_symbols set symbol = 'ETH/USDT', active = false where user_id = %s",
            (user_id,),
        )
        conn.commit()
    answers = deliver(source, receiver, marker)
    assert [(a.status_code, a.json["operation"], a.json["outcome"]) for a in answers] == [
        (200, "INSERT", "applied"),  # auth.users → profile
        (200, "INSERT", "applied"),
        (200, "UPDATE", "applied"),
    ]
    with db.transaction() as conn:
        watchers = conn.execute(
            "select symbol, timeframe, strategy, active from public.watchers where user_id = %s", (user_id,)
        ).fetchall()
        profile = conn.execute(
            "select email, username from public.users where id = %s", (user_id,)
        ).fetchone()
    assert watchers == [
        {
            "symbol": "ETH/USDT",
            "timeframe": "1h",
            "strategy": {"name": "grid", "levels": [1.5, 2]},
            "active": False,
        }
    ]
    assert profile["email"] == f"{user_id.hex[:8]}@x.test" and profile["username"]

    marker = queued(source)
    with psycopg.connect(source) as conn:
        conn.execute("delete from public.user_symbols where user_id = %s", (user_id,))
    [deleted] = deliver(source, receiver, marker)
    assert (deleted.status_code, deleted.json["operation"], deleted.json["symbol"]) == (
        200,
        "DELETE",
        "ETH/USDT",
    )
    with db.transaction() as conn:
        assert (
            conn.execute("select count(*) from public.watchers where user_id = %s", (user_id,)).fetchone()[
                "count"
            ]
            == 0
        )


def test_the_auth_users_payload_carries_no_secrets_and_non_ascii_survives(source, receiver, db):
    user_id = uuid.uuid4()
    marker = queued(source)
    with psycopg.connect(source) as conn:
        conn.execute(
            "insert into auth.users (id, email, raw_user_meta_data) values (%s, %s, %s)",
            (
                user_id,
                f"zoe{user_id.hex[:6]}@x.test",
                '{"full_name": "Zoë Ångström", "picture": "https://p/z"}',
            ),
        )
    with psycopg.connect(source) as conn:
        [(body,)] = conn.execute(
            "select body from net.fake_http_request_queue where id > %s", (marker,)
        ).fetchall()
    assert set(__import__("json").loads(bytes(body))["record"]) <= {
        "id", "email", "phone", "raw_user_meta_data", "raw_app_meta_data", "is_anonymous",
        "created_at", "updated_at", "deleted_at",
    }  # fmt: skip
    [answer] = deliver(source, receiver, marker)
    assert answer.status_code == 200, answer.json
    with db.transaction() as conn:
        row = conn.execute(
            "select display_name, avatar_url from public.users where id = %s", (user_id,)
        ).fetchone()
    assert (row["display_name"], row["avatar_url"]) == ("Zoë Ångström", "https://p/z")


def test_a_byte_changed_after_signing_is_refused(source, receiver):
    marker = queued(source)
    with psycopg.connect(source) as conn:
        user_id = uuid.uuid4()
        conn.execute(
            "insert into auth.users (id, email) values (%s, %s)", (user_id, f"t{user_id.hex[:8]}@x.test")
        )
        [(headers, body)] = conn.execute(
            "select headers, body from net.fake_http_request_queue where id > %s", (marker,)
        ).fetchall()
    tampered = bytes(body).replace(b'"type": "INSERT"', b'"type":  "INSERT"')
    assert tampered != bytes(body)
    response = receiver.post("/hooks/supabase/db", data=tampered, headers=headers)
    assert (response.status_code, response.json["code"]) == (401, "invalid_signature")
