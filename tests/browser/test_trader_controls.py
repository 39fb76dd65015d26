"""Issue 17 items 1-2 in a real browser: Close on a position row, Flatten on a webhook, the
Flatten-all panic button with its confirmation, and the trading-windows settings."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from playwright.sync_api import Dialog, Page, expect

pytestmark = [pytest.mark.browser, pytest.mark.db]


def token_of(page: Page) -> dict[str, str]:
    token = page.evaluate("JSON.parse(localStorage.getItem('vz.session')).access_token")
    return {"Authorization": f"Bearer {token}"}


def new_webhook(client, headers, name) -> dict:
    response = client.post("/api/webhook-configs", json={"name": name}, headers=headers)
    assert response.status_code == 201, response.json
    return response.json


def alert(client, config, body) -> None:
    path = config["webhook_url"].removeprefix("http://testserver")
    response = client.post(path, data=json.dumps(body), content_type="application/json")
    assert response.status_code == 200, response.json


def dialogs(page: Page, accept: bool = True) -> list[str]:
    messages: list[str] = []

    def handle(dialog: Dialog) -> None:
        messages.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    page.on("dialog", handle)
    return messages


def manual_signals(db, config_id) -> list[dict]:
    with db.transaction() as conn:
        return conn.execute(
            "select id, ticker, action, status, source from public.signals "
            "where config_id = %s and source = 'manual' order by ticker",
            (config_id,),
        ).fetchall()


def orders_of(db, signal_id) -> list[tuple]:
    with db.transaction() as conn:
        rows = conn.execute(
            "select purpose, side, qty, order_type, status from public.orders where signal_id = %s",
            (signal_id,),
        ).fetchall()
    return [(r["purpose"], r["side"], r["qty"], r["order_type"], r["status"]) for r in rows]


def held(db, config_id, symbol) -> Decimal:
    with db.transaction() as conn:
        return conn.execute(
            "select qty from public.positions where config_id = %s and symbol = %s", (config_id, symbol)
        ).fetchone()["qty"]


def test_close_on_a_position_row_sends_an_exit_for_that_symbol(page: Page, sign_in, client, db, jobs):
    sign_in()
    config = new_webhook(client, token_of(page), "Intraday")
    alert(client, config, {"ticker": "AAPL", "action": "buy", "quantity": 5, "price": 100})
    alert(client, config, {"ticker": "MSFT", "action": "buy", "quantity": 2, "price": 300})
    jobs()
    page.reload()
    asked = dialogs(page)
    row = page.locator("#positions tr[data-symbol='AAPL']")
    expect(row).to_contain_text("AAPL")

    row.locator("[data-close-position]").click()

    expect(page.locator("#control-result")).to_have_text("Close sent: AAPL: exit sell 5")
    assert asked == ["Close the AAPL position now at market?"]
    [signal] = manual_signals(db, config["id"])
    assert (signal["ticker"], signal["action"], signal["status"]) == ("AAPL", "exit", "accepted")
    jobs()
    assert orders_of(db, signal["id"]) == [("exit", "sell", Decimal(5), "market", "filled")]
    assert (held(db, config["id"], "AAPL"), held(db, config["id"], "MSFT")) == (0, 2)


def test_flatten_on_the_webhook_page_closes_everything_and_cancels_working_orders(
    page: Page, sign_in, base_url, client, db, jobs
):
    sign_in()
    config = new_webhook(client, token_of(page), "Swing")
    alert(client, config, {"ticker": "AAPL", "action": "buy", "quantity": 2, "price": 100})
    alert(
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
    page.goto(f"{base_url}/configs/{config['id']}")
    asked = dialogs(page)

    page.click("#flatten-config")

    expect(page.locator("#flatten-result")).to_have_text(
        "Flatten sent: AAPL: exit sell 2; TSLA: cancel 1 working order(s)"
    )
    assert asked[0].startswith("Flatten this webhook?")
    signals = manual_signals(db, config["id"])
    assert [(s["ticker"], s["action"]) for s in signals] == [("AAPL", "exit"), ("TSLA", "cancel")]
    jobs()
    assert orders_of(db, signals[0]["id"]) == [("exit", "sell", Decimal(2), "market", "filled")]
    with db.transaction() as conn:
        statuses = conn.execute(
            "select status from public.orders where config_id = %s and symbol = 'TSLA'", (config["id"],)
        ).fetchall()
    assert [s["status"] for s in statuses] == ["canceled"]


def test_the_flatten_all_button_asks_first_then_flattens_every_webhook(page: Page, sign_in, client, db, jobs):
    sign_in(next_path="/configs")
    headers = token_of(page)
    one, two = new_webhook(client, headers, "One"), new_webhook(client, headers, "Two")
    alert(client, one, {"ticker": "AAPL", "action": "buy", "quantity": 1, "price": 100})
    alert(client, two, {"ticker": "MSFT", "action": "buy", "quantity": 3, "price": 300})
    jobs()
    page.reload()

    asked: list[str] = []
    answer = {"accept": False}

    def handle(dialog: Dialog) -> None:
        asked.append(dialog.message)
        dialog.accept() if answer["accept"] else dialog.dismiss()

    page.on("dialog", handle)
    page.click("#flatten-all")
    expect(page.locator("#flatten-all")).to_be_enabled()
    assert asked and asked[0].startswith("FLATTEN ALL?")
    assert manual_signals(db, one["id"]) == [] and manual_signals(db, two["id"]) == []  # dismissed: nothing

    answer["accept"] = True
    page.click("#flatten-all")

    expect(page.locator("#control-result")).to_have_text(
        "Flatten all sent: AAPL: exit sell 1; MSFT: exit sell 3"
    )
    assert asked[0].startswith("FLATTEN ALL?")
    assert [(s["ticker"], s["action"]) for s in manual_signals(db, one["id"])] == [("AAPL", "exit")]
    assert [(s["ticker"], s["action"]) for s in manual_signals(db, two["id"])] == [("MSFT", "exit")]
    jobs()
    assert (held(db, one["id"], "AAPL"), held(db, two["id"], "MSFT")) == (0, 0)


def test_trading_windows_are_set_in_the_webhook_settings_and_bad_ones_are_explained(
    page: Page, sign_in, base_url, client
):
    sign_in()
    headers = token_of(page)
    config = new_webhook(client, headers, "Windows")
    page.goto(f"{base_url}/configs/{config['id']}")
    form = page.locator("#windows-form")
    expect(form.locator("[name=entry_windows]")).to_have_value("09:30-15:45")

    form.locator("[name=windows_enabled]").check()
    form.locator("[name=entry_windows]").fill("09:30-11:30, 13:00-15:45")
    form.locator("[name=flatten_at]").fill("15:55")
    form.locator("[name=cancel_at_window_end]").check()
    form.locator("button[type=submit]").click()

    expect(page.locator("#windows-saved")).to_have_text("Saved")
    expect(form.locator("[name=timezone]")).to_have_value("America/New_York")
    stored = client.get(f"/api/webhook-configs/{config['id']}", headers=headers).json["trading_windows"]
    assert stored == {
        "calendar": "XNYS",
        "timezone": "America/New_York",
        "entry_windows": [{"start": "09:30", "end": "11:30"}, {"start": "13:00", "end": "15:45"}],
        "flatten_at": "15:55",
        "cancel_at_window_end": True,
    }

    form.locator("[name=entry_windows]").fill("09:30-12:00, 11:00-15:45")
    form.locator("button[type=submit]").click()

    expect(page.locator("#windows-error")).to_contain_text("overlaps 09:30–12:00")
    expect(page.locator("#windows-error")).to_have_attribute("data-code", "windows_overlap")
    again = client.get(f"/api/webhook-configs/{config['id']}", headers=headers).json["trading_windows"]
    assert again == stored  # the bad windows were not stored
