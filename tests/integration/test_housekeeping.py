"""The hourly purge deletes expired idempotency keys and duplicate-alert claims, and nothing else."""

from __future__ import annotations

import uuid

import pytest
from builders import add_config

from viewzenix.services.housekeeping import purge_expired

pytestmark = pytest.mark.db


def test_the_purge_deletes_only_expired_rows(db):
    with db.transaction() as conn:
        config = add_config(conn, name="h")
        user_id = config["user_id"]
        for key, expiry in (("old", "now() - interval '1 second'"), ("live", "now() + interval '1 hour'")):
            conn.execute(
                f"insert into public.signal_dedupe (config_id, dedupe_key, signal_id, expires_at) "
                f"values (%s, %s, %s, {expiry})",
                (config["id"], key, uuid.uuid4()),
            )
        for age in ("31 days", "1 day"):
            conn.execute(
                "insert into public.reconciliations (config_id, user_id, broker, started_at) "
                "values (%s, %s, 'simulated', now() - %s::interval)",
                (config["id"], user_id, age),
            )
        conn.execute("delete from private.idempotency_keys")  # other tests' rows: count only ours
        conn.execute(
            "insert into private.idempotency_keys (user_id, key, fingerprint, method, path, "
            "response_status, response_body, expires_at) values "
            "(%s, 'old', '\\x00', 'POST', '/api/x', 200, '\\x00', now() - interval '1 second'), "
            "(%s, 'live', '\\x00', 'POST', '/api/x', 200, '\\x00', now() + interval '1 hour')",
            (user_id, user_id),
        )

    counts = purge_expired(db)

    assert counts["idempotency_keys"] == 1
    assert counts["reconciliations"] >= 1
    assert counts["signal_dedupe"] >= 1
    with db.transaction() as conn:
        keys = conn.execute(
            "select dedupe_key from public.signal_dedupe where config_id = %s", (config["id"],)
        )
        assert [r["dedupe_key"] for r in keys] == ["live"]
        left = conn.execute("select key from private.idempotency_keys where user_id = %s", (user_id,))
        assert [r["key"] for r in left] == ["live"]
        runs = conn.execute(
            "select count(*) as n from public.reconciliations where config_id = %s", (config["id"],)
        ).fetchone()
        assert runs["n"] == 1
