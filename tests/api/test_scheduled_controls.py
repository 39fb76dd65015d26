"""The periodic auto-flatten / auto-cancel of trading windows: due on the session's clock, once
per session, through the same signals (source ``schedule``) and execution job as a flatten."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from test_flatten import buy, create, orders_of, position, send, signals_of

from viewzenix.services.flatten import run_scheduled_controls

pytestmark = pytest.mark.db

NY = ZoneInfo("America/New_York")
WINDOWS = {
    "calendar": "XNYS",
    "entry_windows": [{"start": "09:30", "end": "15:45"}],
    "flatten_at": "15:55",
    "cancel_at_window_end": True,
}


def ny(*args):
    return datetime(*args, tzinfo=NY)


def run(app, db, now, config):
    done = run_scheduled_controls(db, app.extensions["viewzenix"].jobs, now=now)
    return [d for d in done if str(d["config_id"]) == config["id"]]


def set_windows(client, headers, db, config, windows=WINDOWS):
    """Set the windows (after the test's entries: the real clock may be outside them), and claim
    today's controls by the real clock, so the worker's own periodic run in ``jobs()`` leaves
    this config to the test's explicit ``now``."""
    response = client.patch(
        f"/api/webhook-configs/{config['id']}", json={"trading_windows": windows}, headers=headers
    )
    assert response.status_code == 200, response.json
    today = datetime.now(ZoneInfo(response.json["trading_windows"]["timezone"])).date()
    with db.transaction() as conn:
        for kind in ("flatten", "cancel@15:45"):
            conn.execute(
                "insert into public.scheduled_controls (config_id, user_id, session_date, kind) "
                "select id, user_id, %s, %s from public.webhook_configs where id = %s",
                (today, kind, config["id"]),
            )


def test_flattens_once_per_session_after_the_flatten_time(app, client, auth_headers, db, jobs):
    config = create(client, auth_headers)
    buy(client, config, "AAPL", 3, 100)
    jobs()
    set_windows(client, auth_headers, db, config, {**WINDOWS, "cancel_at_window_end": False})

    assert run(app, db, ny(2027, 3, 1, 15, 54), config) == []
    [ran] = run(app, db, ny(2027, 3, 1, 15, 56), config)
    again = run(app, db, ny(2027, 3, 1, 15, 57), config)

    assert (ran["kind"], ran["session_date"].isoformat()) == ("flatten", "2027-03-01")
    assert [(s["symbol"], s["action"], s["qty"]) for s in ran["sent"]] == [("AAPL", "exit", "3")]
    assert again == []
    scheduled = [r for r in signals_of(db, config["id"]) if r["source"] == "schedule"]
    assert [(r["ticker"], r["action"]) for r in scheduled] == [("AAPL", "exit")]
    jobs()
    assert position(db, config["id"], "AAPL") == 0
    with db.transaction() as conn:
        claim = conn.execute(
            "select kind, session_date, result from public.scheduled_controls "
            "where config_id = %s and session_date = '2027-03-01'",
            (config["id"],),
        ).fetchall()
    assert [(c["kind"], c["session_date"].isoformat()) for c in claim] == [("flatten", "2027-03-01")]
    assert claim[0]["result"]["sent"][0]["signal_id"] == str(scheduled[0]["id"])
    # The next session flattens again (nothing held now: it runs and sends nothing).
    [next_day] = run(app, db, ny(2027, 3, 2, 16, 0), config)
    assert (next_day["session_date"].isoformat(), next_day["sent"]) == ("2027-03-02", [])


def test_nothing_runs_on_a_holiday(app, client, auth_headers, db, jobs):
    config = create(client, auth_headers)
    buy(client, config, "AAPL", 1, 100)
    jobs()
    set_windows(client, auth_headers, db, config)

    assert run(app, db, ny(2026, 12, 25, 16, 0), config) == []
    assert position(db, config["id"], "AAPL") == 1


def test_cancels_working_orders_at_the_window_end_and_keeps_positions(app, client, auth_headers, db, jobs):
    config = create(client, auth_headers)
    protected = send(
        client,
        config,
        {"ticker": "AAPL", "action": "buy", "quantity": 2, "price": 100, "stopLoss": {"stopPrice": 90}},
    )
    resting = send(
        client,
        config,
        {
            "ticker": "TSLA",
            "action": "buy",
            "quantity": 1,
            "orderType": "limit",
            "limitPrice": 1,
            "price": 200,
        },
    )
    jobs()
    set_windows(client, auth_headers, db, config, {**WINDOWS, "flatten_at": None})

    [ran] = run(app, db, ny(2027, 3, 1, 15, 46), config)

    assert ran["kind"] == "cancel@15:45"
    assert [(s["symbol"], s["action"], s["open_orders"]) for s in ran["sent"]] == [("TSLA", "cancel", 1)]
    assert run(app, db, ny(2027, 3, 1, 15, 50), config) == []
    jobs()
    assert [o["status"] for o in orders_of(db, resting)] == ["canceled"]
    assert position(db, config["id"], "AAPL") == 2  # a cancel keeps positions
    # ... and the stop loss protecting one (a flatten would close both).
    assert sorted((o["purpose"], o["status"]) for o in orders_of(db, protected)) == [
        ("entry", "filled"),
        ("stop_loss", "accepted"),
    ]


def test_an_entry_outside_the_window_is_denied_and_recorded(client, auth_headers, db, jobs):
    # The worker's clock is now; a window that never includes now is one on a calendar day
    # that has no session (24/7 has every day: use a one-minute window far from now instead).
    now = datetime.now(ZoneInfo("UTC"))
    start = (now.hour + 12) % 24
    windows = {"calendar": "24/7", "entry_windows": [{"start": f"{start:02d}:00", "end": f"{start:02d}:01"}]}
    config = create(client, auth_headers)
    set_windows(client, auth_headers, db, config, windows)

    entry = buy(client, config, "AAPL", 1, 100)
    jobs()

    [order] = orders_of(db, entry)
    assert (order["status"], order["status_code"]) == ("denied", "outside_trading_window")
    [row] = [r for r in signals_of(db, config["id"]) if str(r["id"]) == entry]
    assert row["status"] == "denied"
    assert "outside the entry windows" in row["outcome_message"]


def test_a_user_sees_only_their_own_scheduled_control_rows_and_cannot_write_them(app, client, make_user, db):
    import psycopg

    from viewzenix.db import set_request_claims

    verifier = app.extensions["viewzenix"].verifier
    (_, token_a), (_, token_b) = make_user(), make_user()
    headers_a = {"Authorization": f"Bearer {token_a}"}
    config = create(client, headers_a)
    set_windows(client, headers_a, db, config)  # claims today's rows for A's config
    for token, visible in ((token_a, 2), (token_b, 0)):
        with db.transaction() as conn:
            set_request_claims(conn, verifier.verify(token).raw)
            rows = conn.execute(
                "select count(*) as n from public.scheduled_controls where config_id = %s", (config["id"],)
            ).fetchone()
            assert rows["n"] == visible
    with pytest.raises(psycopg.errors.InsufficientPrivilege), db.transaction() as conn:
        set_request_claims(conn, verifier.verify(token_a).raw)
        conn.execute("delete from public.scheduled_controls where config_id = %s", (config["id"],))
