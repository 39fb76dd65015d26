"""A close or flatten refuses the alerts still waiting to run (for their job or an approval), so
none opens a position right after the close; alerts already running are left to the symbol's lock."""

from __future__ import annotations

import pytest
from test_flatten import buy, close, create, flatten, orders_of, position, signals_of

pytestmark = pytest.mark.db


def test_a_flatten_refuses_the_alerts_not_run_yet_and_leaves_the_config_flat(client, auth_headers, db, jobs):
    config = create(client, auth_headers)
    buy(client, config, "AAPL", 5, 100)
    jobs()
    queued = buy(client, config, "AAPL", 7, 101)  # accepted, its job not run yet
    other = buy(client, config, "MSFT", 2, 300)

    response = flatten(client, auth_headers, config)

    assert response.status_code == 200, response.json
    assert sorted(response.json["dropped"]) == sorted([queued, other])
    jobs()
    assert position(db, config["id"], "AAPL") == 0
    assert position(db, config["id"], "MSFT") in (None, 0)
    rows = {str(s["id"]): s for s in signals_of(db, config["id"])}
    for signal_id in (queued, other):
        assert rows[signal_id]["status"] == "rejected"
        assert orders_of(db, signal_id) == []
    with db.transaction() as conn:
        refused = conn.execute(
            "select reject_code, reject_message from public.signals where id = %s", (queued,)
        ).fetchone()
    assert refused["reject_code"] == "flattened" and "manual flatten" in refused["reject_message"]


def test_a_close_refuses_only_that_symbols_waiting_alerts(client, auth_headers, db, jobs):
    config = create(client, auth_headers)
    buy(client, config, "AAPL", 5, 100)
    jobs()
    queued_aapl = buy(client, config, "AAPL", 1, 101)
    queued_msft = buy(client, config, "MSFT", 2, 300)

    response = close(client, auth_headers, config, "AAPL")

    assert response.json["dropped"] == [queued_aapl]
    jobs()
    assert position(db, config["id"], "AAPL") == 0
    assert position(db, config["id"], "MSFT") == 2  # its alert ran
    assert {str(s["id"]): s["status"] for s in signals_of(db, config["id"])}[queued_msft] == "executed"


def test_a_waiting_approval_is_refused_by_a_flatten(client, auth_headers, db, jobs):
    config = create(client, auth_headers, approval_mode=True)
    response = client.post(
        f"/webhooks/{config['id']}/{config['token']}",
        json={"ticker": "AAPL", "action": "buy", "quantity": 3, "price": 100},
    )
    assert response.json["status"] == "awaiting_approval"
    waiting = response.json["signal_id"]

    assert flatten(client, auth_headers, config).json["dropped"] == [waiting]
    approve = client.post(f"/api/signals/{waiting}/approve", headers=auth_headers)
    assert approve.status_code == 409
    jobs()
    assert position(db, config["id"], "AAPL") is None


def test_the_scheduled_auto_flatten_refuses_waiting_alerts_too(app, client, auth_headers, db, jobs):
    from test_scheduled_controls import WINDOWS, ny, run, set_windows

    config = create(client, auth_headers)
    buy(client, config, "AAPL", 3, 100)
    jobs()
    set_windows(client, auth_headers, db, config, {**WINDOWS, "cancel_at_window_end": False})
    queued = buy(client, config, "AAPL", 4, 100)  # accepted, not run when the flatten time comes

    [ran] = run(app, db, ny(2027, 3, 1, 15, 56), config)

    assert [(s["symbol"], s["action"]) for s in ran["sent"]] == [("AAPL", "exit")]
    jobs()
    assert position(db, config["id"], "AAPL") == 0
    assert orders_of(db, queued) == []
    with db.transaction() as conn:
        row = conn.execute(
            "select status, reject_code from public.signals where id = %s", (queued,)
        ).fetchone()
    assert (row["status"], row["reject_code"]) == ("rejected", "flattened")
