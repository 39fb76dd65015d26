"""Issue 17 items 5-8 in a real browser: webhook groups, the source allowlist (with the
TradingView preset) and the symbol mapping on a webhook's page; the mapping in the signal detail."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import Page, expect

from viewzenix.domain.sources import TRADINGVIEW_ADDRESSES

pytestmark = [pytest.mark.browser, pytest.mark.db]


def token_of(page: Page) -> dict[str, str]:
    token = page.evaluate("JSON.parse(localStorage.getItem('vz.session')).access_token")
    return {"Authorization": f"Bearer {token}"}


def new_webhook(client, headers, name) -> dict:
    response = client.post("/api/webhook-configs", json={"name": name}, headers=headers)
    assert response.status_code == 201, response.json
    return response.json


def open_webhook(page: Page, base_url: str, config: dict) -> None:
    page.goto(f"{base_url}/configs/{config['id']}")
    expect(page.locator("#config-name")).to_have_text(config["name"])
    expect(page.locator("#groups-list")).not_to_contain_text("Loading…")


def test_the_tradingview_preset_sets_the_allowlist(page: Page, sign_in, client, base_url) -> None:
    sign_in()
    config = new_webhook(client, token_of(page), "Allowlisted")
    open_webhook(page, base_url, config)
    page.click("#allowlist-tradingview")
    expect(page.locator("#allowlist-status")).to_have_text("Saved.")
    lines = page.locator("#allowlist-input").input_value().split("\n")
    assert sorted(lines) == sorted(f"{a}/32" for a in TRADINGVIEW_ADDRESSES)
    got = client.get(f"/api/webhook-configs/{config['id']}/source-allowlist", headers=token_of(page)).json
    assert sorted(got["allowed_source_ips"]) == sorted(lines)
    # A bad network is refused with its field; nothing changes.
    page.fill("#allowlist-input", "10.0.0.0/33")
    page.click("#allowlist-save")
    expect(page.locator("#allowlist-error")).to_contain_text("not an IP address or CIDR network")
    expect(page.locator("#allowlist-error")).to_contain_text("allowed_source_ips")
    # Emptied: any address again.
    page.fill("#allowlist-input", "")
    page.click("#allowlist-save")
    expect(page.locator("#allowlist-status")).to_have_text("Saved: any address.")
    got = client.get(f"/api/webhook-configs/{config['id']}/source-allowlist", headers=token_of(page)).json
    assert got["allowed_source_ips"] is None


def test_the_allowlist_and_mappings_stay_disabled_until_read(page: Page, sign_in, client, base_url) -> None:
    """A save before the page has read them would replace the stored list with the empty box."""
    sign_in()
    headers = token_of(page)
    config = new_webhook(client, headers, "Slow lists")
    base = f"/api/webhook-configs/{config['id']}"
    stored = client.put(
        f"{base}/source-allowlist", json={"allowed_source_ips": ["10.1.0.0/16"]}, headers=headers
    )
    assert stored.status_code == 200, stored.json
    mapped = client.put(
        f"{base}/symbol-mappings",
        json={"mappings": [{"alert_ticker": "ES1!", "broker_symbol": "ESZ6"}]},
        headers=headers,
    )
    assert mapped.status_code == 200, mapped.json
    held = []
    page.route(f"**{base}/source-allowlist", lambda route: held.append(route))
    page.route(f"**{base}/symbol-mappings", lambda route: held.append(route))
    page.goto(f"{base_url}/configs/{config['id']}")
    for _ in range(100):
        if len(held) == 2:
            break
        page.wait_for_timeout(50)
    assert len(held) == 2
    controls = ("#allowlist-input", "#allowlist-save", "#allowlist-tradingview")
    controls += ("#mapping-add", "#mapping-save")
    for control in controls:
        expect(page.locator(control)).to_be_disabled()
    for route in held:
        route.continue_()
    expect(page.locator("#allowlist-input")).to_have_value("10.1.0.0/16")
    expect(page.locator(".map-broker")).to_have_value("ESZ6")
    for control in controls:
        expect(page.locator(control)).to_be_enabled()


def test_lists_that_cannot_be_read_say_so_and_stay_disabled(page: Page, sign_in, client, base_url) -> None:
    sign_in()
    config = new_webhook(client, token_of(page), "Unreadable lists")
    base = f"/api/webhook-configs/{config['id']}"
    page.route(f"**{base}/source-allowlist", lambda route: route.abort())
    page.route(f"**{base}/symbol-mappings", lambda route: route.abort())
    page.goto(f"{base_url}/configs/{config['id']}")
    expect(page.locator("#allowlist-error")).to_contain_text("Could not load the allowlist")
    expect(page.locator("#mapping-error")).to_contain_text("Could not load the symbol mapping")
    for control in (
        "#allowlist-input",
        "#allowlist-save",
        "#allowlist-tradingview",
        "#mapping-add",
        "#mapping-save",
    ):
        expect(page.locator(control)).to_be_disabled()


def test_the_mapping_table_maps_and_the_signal_detail_shows_it(page: Page, sign_in, client, base_url) -> None:
    sign_in()
    config = new_webhook(client, token_of(page), "Crypto")
    open_webhook(page, base_url, config)
    page.click("#mapping-add")
    page.locator(".map-alert").last.fill("BTCUSDT")
    page.locator(".map-broker").last.fill("BTC/USD")
    page.click("#mapping-save")
    expect(page.locator("#mapping-status")).to_have_text("Saved.")
    expect(page.locator(".map-alert")).to_have_value("BTC/USDT")  # stored in canonical spelling
    expect(page.locator(".map-broker")).to_have_value("BTC/USD")
    # An empty broker symbol is refused with its code's message and field.
    page.click("#mapping-add")
    page.locator(".map-alert").last.fill("ETHUSDT")
    page.click("#mapping-save")
    expect(page.locator("#mapping-error")).to_contain_text("mappings.1.broker_symbol")
    # An alert for BTCUSDT is stored as BTC/USD; its detail page says so.
    path = config["webhook_url"].removeprefix("http://testserver")
    body = json.dumps({"ticker": "BTCUSDT", "action": "buy", "quantity": 1, "price": 100})
    answer = client.post(path, data=body, content_type="application/json").json
    page.goto(f"{base_url}/signals/{answer['signal_id']}")
    mapping = page.locator("#signal-mapping")
    expect(mapping).to_contain_text("BTCUSDT")
    expect(mapping).to_contain_text("BTC/USD")


def test_a_group_is_created_edited_and_shown_on_the_webhook(page: Page, sign_in, client, base_url) -> None:
    sign_in()
    headers = token_of(page)
    paper = new_webhook(client, headers, "Paper")
    live = new_webhook(client, headers, "Second account")
    open_webhook(page, base_url, paper)
    expect(page.locator("#groups-list")).to_contain_text("No group yet")
    page.fill("#group-name", "Both accounts")
    page.check(f"#new-member-{live['id']}")
    page.click("#group-create")
    expect(page.locator("#group-new-url")).to_be_visible()
    url = page.locator("#group-new-url-value").input_value()
    assert "/webhooks/groups/" in url
    group = page.locator(".group")
    expect(group).to_contain_text("Both accounts · includes this webhook")
    [shown] = client.get("/api/webhook-groups", headers=headers).json
    assert sorted(shown["config_ids"]) == sorted([paper["id"], live["id"]])
    # The URL the page showed fans an alert out to both webhooks.
    answer = client.post(
        "/webhooks/groups/" + url.split("/webhooks/groups/")[1],
        data=json.dumps({"ticker": "AAPL", "action": "buy", "quantity": 1, "price": 100}),
        content_type="application/json",
    ).json
    assert sorted(s["config_id"] for s in answer["signals"]) == sorted([paper["id"], live["id"]])
    # Edit the members: drop the second account.
    page.uncheck(f"#g{shown['id']}-{live['id']}")
    page.click(".group-save")
    expect(group).to_contain_text("Saved.")
    members = client.get(f"/api/webhook-groups/{shown['id']}", headers=headers).json["config_ids"]
    assert members == [paper["id"]]
    # The other webhook's page shows the group too, without it as a member now.
    open_webhook(page, base_url, live)
    expect(page.locator(".group")).to_contain_text("Both accounts")
    expect(page.locator(".group")).not_to_contain_text("includes this webhook")
