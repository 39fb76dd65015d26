"""Issue 17 items 3-4 in a real browser: the daily loss limit in the webhook's settings and its
"reached" state, and the approval queue in the signal log with Approve / Reject."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import Page, expect

pytestmark = [pytest.mark.browser, pytest.mark.db]

WIDE = {"width": 1440, "height": 900}


def token_of(page: Page) -> dict[str, str]:
    token = page.evaluate("JSON.parse(localStorage.getItem('vz.session')).access_token")
    return {"Authorization": f"Bearer {token}"}


def new_webhook(client, headers, name, **settings) -> dict:
    response = client.post("/api/webhook-configs", json={"name": name, **settings}, headers=headers)
    assert response.status_code == 201, response.json
    return response.json


def alert(client, config, body) -> dict:
    path = config["webhook_url"].removeprefix("http://testserver")
    response = client.post(path, data=json.dumps(body), content_type="application/json")
    assert response.status_code == 200, response.json
    return response.json


def settle(page: Page) -> None:
    expect(page.locator("main")).not_to_contain_text("Loading…", timeout=10_000)


def signal(client, headers, signal_id) -> dict:
    return client.get(f"/api/signals/{signal_id}", headers=headers).json


def test_the_loss_limit_is_set_in_the_settings_and_its_breach_shows_on_the_webhook(
    page: Page, sign_in, client, jobs, shot
) -> None:
    page.set_viewport_size(WIDE)
    sign_in()
    headers = token_of(page)
    config = new_webhook(client, headers, "Day trader")
    page.goto(page.url.split("?")[0].rstrip("/") + f"/configs/{config['id']}")
    settle(page)
    form = page.locator("#settings-form")
    expect(form.locator("[name=daily_loss_limit]")).to_have_value("")
    # a limit of 0 is refused with the field's message
    form.locator("[name=daily_loss_limit]").fill("0")
    form.locator("button[type=submit]").click()
    expect(form.locator(".field-error[data-field=daily_loss_limit]")).to_be_visible()
    form.locator("[name=daily_loss_limit]").fill("100")
    form.locator("[name=flatten_on_loss_limit]").check()
    form.locator("button[type=submit]").click()
    expect(page.locator("#settings-saved")).to_have_text("Saved")
    saved = client.get(f"/api/webhook-configs/{config['id']}", headers=headers).json
    assert (saved["daily_loss_limit"], saved["flatten_on_loss_limit"]) == ("100", True)
    expect(page.locator("#loss-limit-state")).to_be_hidden()

    # lose 200, then an entry is denied and the webhook shows the limit reached
    alert(client, config, {"ticker": "AAPL", "action": "buy", "quantity": 10, "price": 100})
    alert(
        client, config, {"ticker": "AAPL", "action": "sell", "sentiment": "flat", "quantity": 10, "price": 80}
    )
    jobs()
    denied = alert(client, config, {"ticker": "AAPL", "action": "buy", "quantity": 1, "price": 80})
    jobs()
    shown = signal(client, headers, denied["signal_id"])
    assert shown["status"] == "denied" and shown["orders"][0]["status_code"] == "daily_loss_limit"
    page.reload()
    settle(page)
    state = page.locator("#loss-limit-state")
    expect(state).to_be_visible()
    expect(state).to_contain_text("Daily loss limit reached: P&L -200.00 against a limit of 100.00")
    expect(page.locator("#config-signals")).to_contain_text("daily loss limit")
    shot("controls-loss-limit-reached")
    page.goto(page.url.split("/configs/")[0] + "/configs")
    settle(page)
    row = page.locator(f"tr[data-config-id='{config['id']}']")
    expect(row).to_contain_text("loss limit reached")


def test_the_approval_queue_approves_and_rejects_from_the_signal_log(
    page: Page, sign_in, client, jobs, shot
) -> None:
    page.set_viewport_size(WIDE)
    sign_in(next_path="/signals")
    headers = token_of(page)
    config = new_webhook(client, headers, "Careful", approval_mode=True, approval_timeout_seconds=600)
    to_approve = alert(client, config, {"ticker": "MSFT", "action": "buy", "quantity": 2, "price": 400})
    to_reject = alert(client, config, {"ticker": "AAPL", "action": "buy", "quantity": 3, "price": 190})
    assert to_approve["status"] == to_reject["status"] == "awaiting_approval"
    page.reload()
    settle(page)
    approve_row = page.locator(f"tr[data-signal-id='{to_approve['signal_id']}']")
    reject_row = page.locator(f"tr[data-signal-id='{to_reject['signal_id']}']")
    expect(approve_row).to_contain_text("waiting for your approval")
    expect(approve_row.locator("[data-signal-decision=approve]")).to_be_visible()
    shot("controls-approval-queue")

    approve_row.locator("[data-signal-decision=approve]").click()
    expect(approve_row).not_to_contain_text("waiting for your approval")
    assert signal(client, headers, to_approve["signal_id"])["status"] == "accepted"
    jobs()
    shown = signal(client, headers, to_approve["signal_id"])
    assert shown["status"] == "executed"
    assert [(o["side"], o["qty"], o["status"]) for o in shown["orders"]] == [("buy", "2", "filled")]

    reject_row.locator("[data-signal-decision=reject]").click()
    expect(reject_row).to_contain_text("rejected by its owner")
    jobs()
    shown = signal(client, headers, to_reject["signal_id"])
    assert (shown["status"], shown["reject_code"], shown["orders"]) == ("rejected", "approval_rejected", [])
    page.reload()
    settle(page)
    expect(approve_row).to_contain_text("filled")
    expect(page.locator("[data-signal-decision]")).to_have_count(0)


def test_an_expired_signal_says_so_when_approved_from_its_page(page: Page, sign_in, client, db) -> None:
    page.set_viewport_size(WIDE)
    sign_in()
    headers = token_of(page)
    config = new_webhook(client, headers, "Slow", approval_mode=True)
    waiting = alert(client, config, {"ticker": "MSFT", "action": "buy", "quantity": 2, "price": 400})
    page.goto(page.url.split("?")[0].rstrip("/") + f"/signals/{waiting['signal_id']}")
    settle(page)
    button = page.locator("#signal [data-signal-decision=approve]")
    expect(button).to_be_visible()
    with db.transaction() as conn:  # its time runs out while the page is open
        conn.execute(
            "update public.signals set approval_expires_at = now() - interval '1 second' where id = %s",
            (waiting["signal_id"],),
        )
    button.click()
    expect(page.locator("#signal [role=status]")).to_contain_text("expired at")
    assert signal(client, headers, waiting["signal_id"])["orders"] == []
    # Expired by the refused approve itself, before any sweep (the page's POST carries an
    # Idempotency-Key, whose transaction the 409 rolls back).
    assert signal(client, headers, waiting["signal_id"])["status"] == "rejected"
    page.reload()
    settle(page)
    expect(page.locator("#signal")).to_contain_text("not approved in time")
    expect(page.locator("#signal [data-signal-decision]")).to_have_count(0)
    shown = signal(client, headers, waiting["signal_id"])
    assert (shown["status"], shown["reject_code"], shown["orders"]) == ("rejected", "approval_expired", [])
