"""Issue 18 in a real browser: one strategy at a time, its figures, every device, honest data."""

from __future__ import annotations

import csv
import io
import json
import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.alerts import send_built_message

pytestmark = [pytest.mark.browser, pytest.mark.db]

WIDE = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}
DOCS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
PAGES = ["/", "/trades", "/configs", "/signals", "/orders", "/admin"]


def token_of(page: Page) -> dict[str, str]:
    token = page.evaluate("JSON.parse(localStorage.getItem('vz.session')).access_token")
    return {"Authorization": f"Bearer {token}"}


def new_webhook(client, headers, name, **settings) -> dict:
    response = client.post("/api/webhook-configs", json={"name": name, **settings}, headers=headers)
    assert response.status_code == 201, response.json
    return response.json


def alert(client, config, body) -> None:
    path = config["webhook_url"].removeprefix("http://testserver")
    response = client.post(path, data=json.dumps(body), content_type="application/json")
    assert response.status_code == 200, response.json


def round_trip(client, config, jobs, entry, exit_, qty=10, symbol="AAPL") -> None:
    alert(client, config, {"ticker": symbol, "action": "buy", "quantity": qty, "price": entry})
    jobs()
    alert(client, config, {"ticker": symbol, "action": "exit", "price": exit_})
    jobs()


def seed_two_strategies(client, headers, jobs) -> tuple[dict, dict]:
    """Two webhooks: "Momentum" (+100, −50, open MSFT) and "Mean reversion" (−20)."""
    first = new_webhook(client, headers, "Momentum", starting_cash="10000", commission_fixed="1")
    second = new_webhook(client, headers, "Mean reversion", starting_cash="5000")
    round_trip(client, first, jobs, 100, 110)
    round_trip(client, first, jobs, 101, 96)
    round_trip(client, second, jobs, 50, 40, qty=2)
    alert(client, first, {"ticker": "MSFT", "action": "buy", "quantity": 3, "price": 410.25})
    jobs()
    return first, second


def settle(page: Page) -> None:
    """Wait until no fragment shows "Loading…"."""
    expect(page.locator("main")).not_to_contain_text("Loading…", timeout=10_000)


def test_the_account_page_shows_one_strategy_at_a_time(page: Page, sign_in, client, jobs) -> None:
    page.set_viewport_size(WIDE)
    sign_in()
    first, second = seed_two_strategies(client, token_of(page), jobs)
    page.goto(page.url.split("?")[0])
    settle(page)
    select = page.locator("#account-config")
    # Default: one webhook (the oldest), not the sum.
    expect(select).to_have_value(first["id"])
    expect(page.locator("#account-scope")).to_contain_text("Webhook “Momentum”")
    expect(page.locator("#perf-trades")).to_have_text("2")
    expect(page.locator("#perf-net")).to_have_text("46.00")  # 100 − 50 − 4 commissions of 1
    expect(page.locator("#perf-win-rate")).to_have_text("50.0 %")
    expect(page.locator("#perf-largest-loss")).to_have_text("-52.00")
    expect(page.locator("#positions")).to_contain_text("MSFT")
    chart = page.locator("#equity-chart")
    expect(chart).to_have_attribute("data-config", first["id"])
    # The other strategy alone: its own figures, its own curve.
    select.select_option(second["id"])
    expect(page.locator("#account-scope")).to_contain_text("Webhook “Mean reversion”")
    expect(page.locator("#perf-net")).to_have_text("-20.00")
    expect(page.locator("#positions")).not_to_contain_text("MSFT")
    expect(chart).to_have_attribute("data-config", second["id"])
    assert "config=" + second["id"] in page.url
    # "All" is an explicit choice: the sum, with the second webhook's capital as a marked step.
    select.select_option("")
    expect(page.locator("#account-scope")).to_contain_text("Sum of 2 webhooks")
    expect(page.locator("#perf-trades")).to_have_text("3")
    expect(chart).to_have_attribute("data-capital-marks", "1")
    # A starting-cash change is a step on the curve, not a rewrite.
    headers = token_of(page)
    client.patch(f"/api/webhook-configs/{second['id']}", json={"starting_cash": "6000"}, headers=headers)
    page.reload()
    settle(page)
    expect(chart).to_have_attribute("data-capital-marks", "2")
    expect(page.locator("#capital-changes")).to_contain_text("+1,000.00")


def test_trades_page_filters_pages_and_exports_csv(page: Page, sign_in, client, jobs) -> None:
    page.set_viewport_size(WIDE)
    sign_in(next_path="/trades")
    first, _ = seed_two_strategies(client, token_of(page), jobs)
    page.reload()
    settle(page)
    rows = page.locator("#trade-list tbody tr")
    expect(page.locator("#trade-config")).to_have_value(first["id"])
    expect(rows).to_have_count(2)
    page.select_option("#trade-config", "")
    expect(rows).to_have_count(3)
    page.select_option("#trade-filters select[name=outcome]", "loss")
    expect(rows).to_have_count(2)
    expect(page.locator("#trade-list")).not_to_contain_text("110.00")
    with page.expect_download() as download_info:
        page.click("#export-csv")
    text = Path(download_info.value.path()).read_text()
    exported = list(csv.DictReader(io.StringIO(text)))
    assert sorted(r["net_pnl"] for r in exported) == ["-20", "-52"]
    # A refused filter shows its reason instead of old rows.
    page.route(
        "**/ui/fragments/trades?*",
        lambda route: route.fulfill(
            status=422,
            content_type="application/json",
            body=json.dumps({"code": "validation_error", "status": 422, "message": "since must be a date."}),
        ),
    )
    page.fill("#trade-filters input[name=symbol]", "AAPL")
    page.locator("#trade-filters input[name=symbol]").dispatch_event("change")
    expect(page.locator("#trade-list .frag-error")).to_contain_text("since must be a date.")
    expect(rows).to_have_count(0)


def no_sideways_scroll(page: Page) -> None:
    wide, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert wide <= inner, f"{page.url} scrolls sideways: {wide} > {inner}"


@pytest.mark.parametrize("viewport", [WIDE, PHONE], ids=["1440x900", "390x844"])
def test_every_page_fits_the_screen_and_the_navigation_works(
    page: Page, sign_in, client, jobs, base_url, viewport
) -> None:
    page.set_viewport_size(viewport)
    sign_in(admin=True)
    headers = token_of(page)
    long_name = "A strategy with a very long name " + "x" * 167
    assert len(long_name) == 200
    first, _ = seed_two_strategies(client, headers, jobs)
    new_webhook(client, headers, long_name)
    phone = viewport is PHONE
    signal_id = client.get("/api/signals", headers=headers).json[0]["id"]
    for path in [*PAGES, f"/configs/{first['id']}", f"/signals/{signal_id}"]:
        page.goto(base_url + path)
        settle(page)
        no_sideways_scroll(page)
        nav = page.locator("#nav")
        toggle = page.locator("#nav-toggle")
        if phone:
            expect(nav).to_be_hidden()
            toggle.click()
            expect(toggle).to_have_attribute("aria-expanded", "true")
            expect(nav.get_by_role("link", name="Orders")).to_be_visible()
            no_sideways_scroll(page)
            toggle.click()
            expect(nav).to_be_hidden()
        else:
            expect(toggle).to_be_hidden()
            expect(nav.get_by_role("link", name="Orders")).to_be_visible()
        if os.environ.get("VIEWZENIX_DOC_SCREENSHOTS"):
            DOCS.mkdir(parents=True, exist_ok=True)
            name = path.strip("/").split("/")[0] or "account"
            name = {"configs/": "webhook", "signals/": "signal"}.get(path[1:9], name)
            page.screenshot(path=str(DOCS / f"{name}-{viewport['width']}.png"))
    if os.environ.get("VIEWZENIX_DOC_SCREENSHOTS"):
        page.goto(base_url + "/api/docs")
        expect(page.locator(".swagger-ui .title").first).to_be_visible()
        page.screenshot(path=str(DOCS / f"api-docs-{viewport['width']}.png"))
        page.goto(base_url + "/")
        settle(page)
        if not phone:
            page.select_option("#account-config", first["id"])
            settle(page)
            page.screenshot(path=str(DOCS.parent / "dashboard.png"))
        page.evaluate("localStorage.clear()")
        page.goto(base_url + "/signin")
        page.screenshot(path=str(DOCS / f"signin-{viewport['width']}.png"))
        sign_in(admin=True)
    # On a phone the menu leads somewhere: open it and follow a link.
    if phone:
        page.goto(base_url + "/")
        page.click("#nav-toggle")
        page.locator("#nav").get_by_role("link", name="Signal log").click()
        page.wait_for_url(re.compile(r"/signals$"))


def test_keyboard_focus_is_visible(page: Page, sign_in) -> None:
    page.set_viewport_size(WIDE)
    sign_in()
    settle(page)
    page.keyboard.press("Tab")
    outline = page.evaluate(
        "(() => { const s = getComputedStyle(document.activeElement);"
        " return [document.activeElement.tagName, s.outlineStyle, s.outlineWidth]; })()"
    )
    assert outline[0] == "A" and outline[1] == "solid" and outline[2] == "3px"


def test_dark_mode_follows_the_system(page: Page, sign_in) -> None:
    sign_in()
    page.emulate_media(color_scheme="dark")
    dark = page.evaluate("getComputedStyle(document.body).backgroundColor")
    page.emulate_media(color_scheme="light")
    light = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert (dark, light) == ("rgb(15, 19, 26)", "rgb(245, 246, 248)")


def test_a_failed_fragment_shows_an_error_line_with_retry(page: Page, sign_in, base_url) -> None:
    page.set_viewport_size(WIDE)
    page.route("**/ui/fragments/positions*", lambda route: route.abort())
    sign_in()
    error = page.locator("#positions .frag-error")
    expect(error).to_contain_text("No answer from the server")
    expect(page.locator("#live-badge")).to_contain_text("reconnecting")
    page.unroute("**/ui/fragments/positions*")
    error.locator("button", has_text="Retry").click()
    expect(page.locator("#positions")).to_contain_text("No open positions")
    page.evaluate("document.body.dispatchEvent(new Event('vz:tick'))")
    expect(page.locator("#live-badge")).to_contain_text(re.compile(r"live · updated \d\d:\d\d:\d\d"))


def test_a_double_submit_of_create_makes_one_webhook(page: Page, sign_in, client) -> None:
    sign_in(next_path="/configs")
    page.fill("#create-config input[name=name]", "Once")
    # Two submits before the first answer: the same Idempotency-Key, so one webhook.
    page.evaluate(
        "() => { const f = document.getElementById('create-config'); f.requestSubmit(); f.requestSubmit(); }"
    )
    expect(page.locator("#new-url")).to_be_visible()
    configs = client.get("/api/webhook-configs", headers=token_of(page)).json
    assert [c["name"] for c in configs] == ["Once"]
    # A double click also creates one.
    page.fill("#create-config input[name=name]", "Twice clicked")
    page.dblclick("#create-config button[type=submit]")
    expect(page.locator("tr", has_text="Twice clicked")).to_have_count(1)
    configs = client.get("/api/webhook-configs", headers=token_of(page)).json
    assert sorted(c["name"] for c in configs) == ["Once", "Twice clicked"]


def hold_the_second_request(page: Page, pattern: str, method: str) -> list:
    """Route ``pattern``: the first ``method`` request goes on, the second is held (returned, to
    continue later); the list gets both routes."""
    seen: list = []

    def handle(route) -> None:
        if route.request.method == method and len(seen) < 2:
            seen.append(route)
            if len(seen) == 2:
                return
        route.continue_()

    page.route(pattern, handle)
    return seen


def double_submit(page: Page, form_id: str) -> None:
    page.evaluate(
        f"() => {{ const f = document.getElementById('{form_id}'); f.requestSubmit(); f.requestSubmit(); }}"
    )


# Counts the JSON bodies the page has read: the form's handler resumes right after its answer's
# body is read, before the page's next task, so a count past N means the handler of answer N ran.
COUNT_JSON_READS = """() => {
  if (window.vzJsonReads === undefined) {
    window.vzJsonReads = 0;
    const json = Response.prototype.json;
    Response.prototype.json = function () {
      return json.call(this).finally(() => { window.vzJsonReads += 1; });
    };
  }
  return window.vzJsonReads;
}"""


def release_the_replay(page: Page, held: list, pattern: str) -> None:
    """Let the held second request go; it must be a replay of the first (one key), answered 2xx;
    return once the page's handler has run on its answer."""
    assert len(held) == 2
    assert len({route.request.headers["idempotency-key"] for route in held}) == 1
    read = page.evaluate(COUNT_JSON_READS)
    with page.expect_response(pattern) as replay:
        held[1].continue_()
    assert replay.value.ok
    page.wait_for_function(f"() => window.vzJsonReads > {read}")
    page.evaluate("() => new Promise((done) => setTimeout(done, 0))")  # the handler's own task ends


def test_a_late_replay_of_a_double_submit_keeps_what_the_user_typed_since(
    page: Page, sign_in, client
) -> None:
    """The second answer of a double submit (the replay) arrives after the user began the next webhook."""
    sign_in(next_path="/configs")
    held = hold_the_second_request(page, "**/api/webhook-configs", "POST")
    page.fill("#create-config input[name=name]", "Once")
    double_submit(page, "create-config")
    expect(page.locator("#new-url")).to_be_visible()
    page.fill("#create-config input[name=name]", "Next one")
    release_the_replay(page, held, "**/api/webhook-configs")
    # The replay's answer changes nothing on the page: the name typed since stays.
    expect(page.locator("#create-config input[name=name]")).to_have_value("Next one")
    page.click("#create-config button[type=submit]")
    expect(page.locator("tr", has_text="Next one")).to_have_count(1)
    configs = client.get("/api/webhook-configs", headers=token_of(page)).json
    assert sorted(c["name"] for c in configs) == ["Next one", "Once"]


def test_a_late_replay_of_saved_settings_keeps_the_edit_made_since(
    page: Page, sign_in, client, base_url
) -> None:
    sign_in()
    config = new_webhook(client, token_of(page), "Settings")
    path = f"**/api/webhook-configs/{config['id']}"
    held = hold_the_second_request(page, path, "PATCH")
    page.goto(f"{base_url}/configs/{config['id']}")
    expect(page.locator("#settings-form input[name=name]")).to_have_value("Settings")  # the form is filled in
    page.fill("#settings-form input[name=description]", "first")
    double_submit(page, "settings-form")
    expect(page.locator("#settings-saved")).to_have_text("Saved")
    page.fill("#settings-form input[name=description]", "typed since")
    release_the_replay(page, held, path)
    expect(page.locator("#settings-form input[name=description]")).to_have_value("typed since")
    saved = client.get(f"/api/webhook-configs/{config['id']}", headers=token_of(page)).json
    assert saved["description"] == "first"


def test_only_admins_see_the_admin_link(page: Page, sign_in) -> None:
    sign_in()
    expect(page.locator("#nav-admin")).to_be_hidden()
    sign_in(admin=True)
    expect(page.locator("#nav-admin")).to_be_visible()


def test_outcomes_read_working_filled_denied_and_a_working_order_can_be_canceled(
    page: Page, sign_in, client, jobs, base_url
) -> None:
    page.set_viewport_size(WIDE)
    sign_in()
    headers = token_of(page)
    config = new_webhook(client, headers, "Levels")
    # A market entry with a stop loss and a take profit: filled, its legs rest as levels.
    alert(
        client,
        config,
        {
            "ticker": "NVDA",
            "action": "buy",
            "quantity": 5,
            "price": 140,
            "stopLoss": {"stopPrice": 137.2},
            "takeProfit": {"limitPrice": 150},
        },
    )
    jobs()
    # A limit entry below the market only rests: "working (not filled)", not "executed".
    alert(
        client,
        config,
        {
            "ticker": "AAPL",
            "action": "buy",
            "quantity": 2,
            "price": 110,
            "orderType": "limit",
            "limitPrice": 100,
            "timeInForce": "gtc",
        },
    )
    jobs()
    page.goto(f"{base_url}/signals")
    rows = page.locator("table.signals tbody tr")
    expect(rows.nth(0).locator(".outcome")).to_have_text("working (not filled)")
    expect(rows.nth(0)).to_contain_text("buy 2 AAPL limit @ 100.00")
    expect(rows.nth(1).locator(".outcome")).to_have_text("filled")
    page.goto(f"{base_url}/?config={config['id']}")
    nvda = page.locator("#positions tr[data-symbol=NVDA]")
    expect(nvda).to_contain_text("SL 137.20")
    expect(nvda).to_contain_text("TP 150.00")
    page.goto(f"{base_url}/orders")
    working = page.locator("#orders tr", has_text="buy 2 AAPL limit @ 100.00")
    expect(working).to_contain_text("working (not filled)")
    page.on("dialog", lambda dialog: dialog.accept())
    working.locator("[data-cancel-order]").click()
    # The paper broker may cancel at once: the row then already reads "canceled".
    expect(working).to_contain_text(re.compile(r"cancel requested|canceled"))
    jobs()
    page.reload()
    expect(page.locator("#orders tr", has_text="buy 2 AAPL limit @ 100.00")).to_contain_text("canceled")
    # The price falls through the stop: the stop loss fills and reads as an event with its P&L.
    alert(client, config, {"ticker": "NVDA", "action": "buy", "quantity": 1, "price": 136})
    jobs()
    page.reload()
    hit = page.locator("#orders tr.protective")
    expect(hit).to_contain_text("Stop loss hit: sell 5 NVDA @ 136.00 (stop 137.20), \u221220.00")
    # The details of an order come into view.
    page.locator("#orders tr", has_text="NVDA").first.locator("text=details").click()
    expect(page.locator("#order-card")).to_be_in_viewport()


def test_a_test_alert_shows_its_final_outcome(page: Page, sign_in, client, jobs, base_url) -> None:
    page.set_viewport_size(WIDE)
    sign_in()
    config = new_webhook(client, token_of(page), "Paused test")
    page.goto(f"{base_url}/configs/{config['id']}")
    page.click("#toggle-paused")
    expect(page.locator("#config-state")).to_have_text("entries paused: exits still run")
    page.click("#send-test")
    expect(page.locator("#test-outcome")).to_contain_text("Intake answered 200: accepted")
    expect(page.locator("#test-final")).to_have_attribute("data-final", "false")
    jobs()
    page.evaluate("document.body.dispatchEvent(new Event('vz:tick'))")
    final = page.locator("#test-final")
    expect(final).to_have_attribute("data-final", "true")
    expect(final.locator(".outcome")).to_have_text(re.compile(r"^denied: entries are paused"))
    expect(final.locator(".outcome")).to_have_attribute("title", "code: entries_paused")


def test_the_alert_builder_covers_brackets_order_type_id_and_bars_and_checks_its_input(
    page: Page, sign_in, client, base_url
) -> None:
    page.set_viewport_size(WIDE)
    sign_in()
    config = new_webhook(client, token_of(page), "Builder")
    page.goto(f"{base_url}/configs/{config['id']}")
    page.select_option("#gen-case", "buy")
    page.select_option("#gen-size", "fixed_quantity")
    page.fill("#gen-amount", "-5")
    expect(page.locator("#gen-error")).to_contain_text("Amount must be a number above 0")
    expect(page.locator("#gen-message")).to_have_value("")
    page.fill("#gen-amount", "abc")
    expect(page.locator("#gen-error")).to_contain_text("Amount must be a number above 0")
    page.fill("#gen-amount", "5")
    page.select_option("#gen-order-type", "limit")
    page.fill("#gen-sl", "2")
    page.fill("#gen-tp", "101")
    expect(page.locator("#gen-error")).to_contain_text("Take profit must be a percent")
    page.fill("#gen-tp", "4")
    page.check("#gen-id")
    message = json.loads(page.input_value("#gen-message"))
    assert message["quantity"] == 5 and message["orderType"] == "limit"
    assert message["limitPrice"] == "{{close}}"
    assert (message["stopLoss"], message["takeProfit"]) == ({"percent": 2}, {"percent": 4})
    assert message["id"] == "{{ticker}}-{{interval}}-{{time}}"
    # What TradingView would send for it goes through the real intake path.
    send_built_message(page)
    page.select_option("#gen-case", "bar")
    bar = json.loads(page.input_value("#gen-message"))
    assert bar == {
        "type": "bar",
        "ticker": "{{ticker}}",
        "interval": "{{interval}}",
        "time": "{{time}}",
        "open": "{{open}}",
        "high": "{{high}}",
        "low": "{{low}}",
        "close": "{{close}}",
        "volume": "{{volume}}",
    }


def test_settings_are_grouped_with_readable_labels(page: Page, sign_in, client, base_url) -> None:
    page.set_viewport_size(WIDE)
    sign_in()
    config = new_webhook(client, token_of(page), "Grouped")
    page.goto(f"{base_url}/configs/{config['id']}")
    legends = page.locator("#settings-form legend").all_inner_texts()
    assert legends == [
        "Webhook",
        "Sizing",
        "Orders",
        "Risk",
        "Daily loss limit and approval",
        "Paper simulation",
    ]
    options = page.locator("#settings-form select[name=time_in_force] option").all_inner_texts()
    assert "Good till canceled" in options and "gtc" not in options and "opg" not in options
    expect(page.locator("#settings-form")).to_contain_text("Slippage, basis points")
    page.select_option("#settings-form select[name=time_in_force]", label="Good till canceled")
    page.click("#settings-form button[type=submit]")
    expect(page.locator("#settings-saved")).to_have_text("Saved")
    saved = client.get(f"/api/webhook-configs/{config['id']}", headers=token_of(page)).json
    assert saved["time_in_force"] == "gtc"


def test_the_webhook_page_counts_refused_alerts_with_the_last_reason(
    page: Page, sign_in, client, base_url
) -> None:
    page.set_viewport_size(WIDE)
    sign_in()
    headers = token_of(page)
    config = new_webhook(client, headers, "Refusals")
    page.goto(f"{base_url}/configs/{config['id']}")
    expect(page.locator("#refusals-none")).to_be_visible()
    old_path = config["webhook_url"].removeprefix("http://testserver")
    client.post(f"/api/webhook-configs/{config['id']}/rotate-token", headers=headers)
    for _ in range(3):
        assert client.post(old_path, json={"ticker": "AAPL", "action": "exit"}).status_code == 404
    client.patch(f"/api/webhook-configs/{config['id']}", json={"is_active": False}, headers=headers)
    rotated = client.get(f"/api/webhook-configs/{config['id']}", headers=headers).json
    assert rotated["is_active"] is False
    page.evaluate("document.body.dispatchEvent(new Event('vz:tick'))")
    old_token = page.locator("#refusals-list li[data-code=token_invalid]")
    expect(old_token).to_contain_text(re.compile(r"\d+ refused"))
    expect(old_token).to_contain_text("wrong or old (rotated?)")


def test_swagger_try_it_out_works_for_a_signed_in_user(page: Page, sign_in, base_url) -> None:
    sign_in()
    page.goto(f"{base_url}/api/docs")
    expect(page.locator(".swagger-ui .title").first).to_contain_text("Viewzenix")
    answer = page.evaluate(
        "async () => { const r = await window.ui.fn.fetch(window.ui.getConfigs().requestInterceptor("
        "{url: '/api/account/summary', headers: {}})); return r.status; }"
    )
    assert answer == 200
