"""The periodic auto-flatten / auto-cancel of trading windows: due on the session's clock, once
per session, through the same signals (source ``schedule``) and execution job as a flatten."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from builders import held, make_config, run_signal, signal_row, worker_config
from builders import orders_of as orders_of_signal
from psycopg.types.json import Jsonb
from test_flatten import buy, create, orders_of, position, send, signals_of

from viewzenix.domain.model import Action, OrderType, Signal
from viewzenix.services import flatten
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


# --- windows stored past the API (the authenticated role may UPDATE webhook_configs via REST) ---

MALFORMED = [
    {"calendar": "24/7", "entry_windows": [1], "flatten_at": "10:00"},  # AttributeError once
    {"calendar": "XNYS", "timezone": "America", "flatten_at": "15:55"},  # IsADirectoryError once
    {"calendar": "XNYS", "cancel_at_window_end": "abc"},  # the select's ::boolean cast failed
]


def write_as_user(app, db, token, config, windows):
    """UPDATE the row as its owner through RLS, as Supabase REST lets them: no API validation."""
    from viewzenix.db import set_request_claims

    with db.transaction() as conn:
        set_request_claims(conn, app.extensions["viewzenix"].verifier.verify(token).raw)
        updated = conn.execute(
            "update public.webhook_configs set trading_windows = %s where id = %s",
            (None if windows is None else Jsonb(windows), config["id"]),
        ).rowcount
    assert updated == 1


def ran_for(done, *configs):
    ids = {c["id"] for c in configs}
    return sorted((str(d["config_id"]), d["kind"]) for d in done if str(d["config_id"]) in ids)


def test_one_users_malformed_windows_skip_only_that_config(app, client, auth_headers, make_user, db, jobs):
    good = create(client, auth_headers)
    buy(client, good, "AAPL", 2, 100)
    jobs()
    set_windows(client, auth_headers, db, good, {**WINDOWS, "cancel_at_window_end": False})
    _, token = make_user()
    other = {"Authorization": f"Bearer {token}"}
    bad = [create(client, other) for _ in MALFORMED]
    try:
        for config, windows in zip(bad, MALFORMED, strict=True):
            write_as_user(app, db, token, config, windows)

        done = run_scheduled_controls(db, app.extensions["viewzenix"].jobs, now=ny(2027, 3, 1, 15, 56))

        assert ran_for(done, good, *bad) == [(good["id"], "flatten")]
        jobs()
        assert position(db, good["id"], "AAPL") == 0
        # The bad config's owner still reads their config (what is stored, as stored).
        shown = client.get(f"/api/webhook-configs/{bad[1]['id']}", headers=other)
        assert (shown.status_code, shown.json["trading_windows"]["timezone"]) == (200, "America")
    finally:
        for config in bad:
            write_as_user(app, db, token, config, None)


def test_a_config_whose_control_raises_is_logged_and_the_others_still_run(
    app, client, auth_headers, db, monkeypatch, caplog
):
    failing, good = create(client, auth_headers), create(client, auth_headers)
    for config in (failing, good):
        set_windows(client, auth_headers, db, config, {**WINDOWS, "cancel_at_window_end": False})
    real_plan = flatten._plan

    def plan(conn, config, **kwargs):
        if str(config["id"]) == failing["id"]:
            raise RuntimeError("the broker is down")
        return real_plan(conn, config, **kwargs)

    monkeypatch.setattr(flatten, "_plan", plan)
    job_app = app.extensions["viewzenix"].jobs
    now = ny(2027, 3, 2, 15, 56)

    with caplog.at_level("ERROR", logger="viewzenix.services.flatten"):
        done = run_scheduled_controls(db, job_app, now=now)

    assert ran_for(done, failing, good) == [(good["id"], "flatten")]
    [record] = [r for r in caplog.records if getattr(r, "action", None) == "scheduled_controls_failed"]
    assert str(record.config_id) == failing["id"] and str(record.exc_info[1]) == "the broker is down"
    monkeypatch.undo()  # the failed control's claim was rolled back: the next minute runs it
    assert ran_for(run_scheduled_controls(db, job_app, now=now), failing, good) == [
        (failing["id"], "flatten")
    ]


def test_the_loss_limit_backstop_runs_even_when_the_schedule_raises(db, database_url, monkeypatch):
    from viewzenix.jobs import build_job_app
    from viewzenix.jobs.tasks import register_tasks

    backstop = []

    def schedule(*args, **kwargs):
        raise RuntimeError("the schedule broke")

    monkeypatch.setattr(flatten, "run_scheduled_controls", schedule)
    monkeypatch.setattr(flatten, "flatten_loss_limit_breaches", lambda *a, **k: backstop.append(k))
    job_app = build_job_app(database_url)
    register_tasks(job_app, db, worker_config())

    with pytest.raises(RuntimeError, match="the schedule broke"):  # still fails: the worker records it
        job_app.tasks["viewzenix.scheduled_controls"].func(timestamp=0)

    assert backstop == [{}]


def test_a_signal_job_on_malformed_stored_windows_runs_exits_and_cancels_and_denies_entries(db):
    config = make_config(db)
    run_signal(
        db,
        config,
        Signal(ticker="AAPL", action=Action.BUY, quantity=Decimal(2), signal_price=Decimal(100)),
        expect="executed",
    )
    resting = run_signal(
        db,
        config,
        Signal(
            ticker="TSLA",
            action=Action.BUY,
            quantity=Decimal(1),
            order_type=OrderType.LIMIT,
            limit_price=Decimal(1),
            signal_price=Decimal(200),
        ),
    )
    assert [o["status"] for o in orders_of_signal(db, resting)] == ["accepted"]
    with db.transaction() as conn:
        conn.execute(
            "update public.webhook_configs set trading_windows = %s where id = %s",
            (Jsonb({"calendar": "XNYS", "timezone": "America", "entry_windows": [1]}), config["id"]),
        )

    exit_id = run_signal(db, config, Signal(ticker="AAPL", action=Action.EXIT, signal_price=Decimal(100)))
    cancel_id = run_signal(db, config, Signal(ticker="TSLA", action=Action.CANCEL))
    entry_id = run_signal(
        db, config, Signal(ticker="MSFT", action=Action.BUY, quantity=Decimal(1), signal_price=Decimal(100))
    )

    assert signal_row(db, exit_id)["status"] == "executed"
    assert held(db, config, "AAPL") == 0
    assert signal_row(db, cancel_id)["status"] == "executed"
    assert [o["status"] for o in orders_of_signal(db, resting)] == ["canceled"]
    entry = signal_row(db, entry_id)
    [order] = orders_of_signal(db, entry_id)
    assert (entry["status"], order["status"], order["status_code"]) == (
        "denied",
        "denied",
        "outside_trading_window",
    )
    assert "stored trading windows are invalid (timezone:" in entry["outcome_message"]
    assert held(db, config, "MSFT") == 0
