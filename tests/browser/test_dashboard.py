"""The dashboard in a real browser: what a new user does after `make run`."""

from __future__ import annotations

import json
import re
import time
import uuid

import pytest
from playwright.sync_api import Page, expect

from tests.browser.alerts import send_built_message

pytestmark = [pytest.mark.browser, pytest.mark.db]


def create_config(page: Page, base_url: str, name: str) -> tuple[str, str]:
    """Create a webhook config on the Webhooks page; return (config id, full webhook URL)."""
    page.goto(f"{base_url}/configs")
    page.fill("#create-config input[name=name]", name)
    page.click("#create-config button[type=submit]")
    expect(page.locator("#new-url")).to_be_visible()
    url = page.input_value("#new-url-value")
    config_id = re.search(r"/webhooks/([0-9a-f-]{36})/", url).group(1)
    return config_id, url


def test_sign_in_with_the_printed_code_then_sign_out(page: Page, base_url, sign_in, shot) -> None:
    email = sign_in()
    expect(page.locator("#vz-email")).to_have_text(email)
    expect(page.locator("#account-tiles")).to_contain_text("Equity")
    shot("overview-empty")
    page.click("#signout")
    page.wait_for_url(f"{base_url}/signin")
    assert page.evaluate("localStorage.getItem('vz.session')") is None
    page.goto(f"{base_url}/signals")
    page.wait_for_url(re.compile(r"/signin\?next=%2Fsignals$"))


def test_a_used_sign_in_code_is_refused(page: Page, base_url, app) -> None:
    from viewzenix.services import local_signin

    code = local_signin.issue_code(app.extensions["viewzenix"].db, "reuse@example.test")
    page.goto(f"{base_url}/signin#code={code}")
    page.wait_for_url(f"{base_url}/")
    page.evaluate("localStorage.clear()")
    page.goto(f"{base_url}/signin#code={code}")
    expect(page.locator("#signin-error")).to_contain_text("unknown, used already or expired")


def expired_token(app) -> str:
    """A token of this app's local signer whose exp passed an hour ago (beyond the leeway)."""
    import jwt

    runtime = app.extensions["viewzenix"]
    token = runtime.local_signer.issue(uuid.uuid4(), "expired@example.test")
    claims = {**runtime.verifier.verify(token).raw, "exp": int(time.time()) - 3600}
    key = (runtime.config.DATA_DIR / "local_jwt_key.pem").read_bytes()
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": runtime.local_signer.kid})


def test_an_expired_session_returns_to_sign_in_and_back_to_the_page(
    page: Page, base_url, sign_in, app
) -> None:
    sign_in()
    session = json.dumps({"access_token": expired_token(app), "email": "x"})
    page.evaluate("s => localStorage.setItem('vz.session', s)", session)
    # The page's script sends an expired session to sign-in at once, which can abort a goto that
    # waits for "load" (net::ERR_ABORTED): wait for the response only, then for the redirect.
    page.goto(f"{base_url}/signals?status=denied", wait_until="commit")
    page.wait_for_url(re.compile(r"/signin\?next=%2Fsignals%3Fstatus%3Ddenied$"))
    sign_in(next_path="/signals?status=denied")
    expect(page.locator("#signals")).not_to_contain_text("Loading")


def test_create_a_config_and_copy_its_url(page: Page, base_url, sign_in, shot) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    sign_in(next_path="/configs")
    config_id, url = create_config(page, base_url, "My strategy")
    assert url.startswith("http://testserver/webhooks/") and len(url.rsplit("/", 1)[1]) >= 32
    expect(page.locator("#new-url .warn")).to_contain_text("shown only once")
    page.click("#new-url button[data-copy]")
    assert page.evaluate("navigator.clipboard.readText()") == url
    row = page.locator(f"tr[data-config-id='{config_id}']")
    expect(row).to_contain_text("My strategy")
    expect(row).to_contain_text("active")
    expect(row.locator("code")).not_to_contain_text(url.rsplit("/", 1)[1])  # masked in the list
    shot("configs-created")


def test_a_test_alert_shows_in_the_signal_log_with_its_outcome(
    page: Page, base_url, sign_in, jobs, shot
) -> None:
    sign_in(next_path="/configs")
    config_id, _ = create_config(page, base_url, "Test alerts")
    page.goto(f"{base_url}/configs/{config_id}")
    expect(page.locator("#config-name")).to_have_text("Test alerts")
    page.fill("#test-body", '{"ticker": "MSFT", "action": "buy", "quantity": 3, "price": 410.25}')
    page.click("#send-test")
    expect(page.locator("#test-outcome")).to_contain_text("Intake answered 200: accepted")
    jobs()
    page.goto(f"{base_url}/signals")
    row = page.locator("table.signals tbody tr").first
    expect(row).to_have_class(re.compile("st-executed"))
    expect(row).to_contain_text("MSFT")
    expect(row.locator(".badge.test")).to_have_text("test")
    shot("signal-log")
    row.locator("a").click()
    expect(page.locator("#raw-body")).to_contain_text('"quantity": 3')
    expect(page.locator("#signal")).to_contain_text("filled")
    page.goto(f"{base_url}/")
    expect(page.locator("#positions")).to_contain_text("MSFT")
    expect(page.locator("#positions")).to_contain_text("long")
    # The last price and how old it is (issue 16: positions marked to market).
    expect(page.locator("#positions")).to_contain_text(re.compile(r"410\.25 \d+ (s|min) ago"))


def test_the_pause_and_off_buttons_wait_for_the_webhooks_state(page: Page, base_url, sign_in, shot) -> None:
    """Both buttons toggle the webhook's state, so they stay disabled until the page has read it
    (a click before that did nothing: the handler had no state to toggle). The settings and
    trading-window forms stay disabled too: a Save before the read sent the blank form, and the
    read, landing after a choice, overwrote it (CI saw `day` saved for a chosen `gtc`)."""
    sign_in(next_path="/configs")
    config_id, _ = create_config(page, base_url, "Slow to load")
    held = []
    # Hold the page's first read of the webhook; later reads (the windows form's) go through.
    page.route(
        f"**/api/webhook-configs/{config_id}",
        lambda route: route.continue_() if held else held.append(route),
    )
    page.goto(f"{base_url}/configs/{config_id}")
    expect(page.locator("#toggle-paused")).to_be_disabled()
    expect(page.locator("#toggle-active")).to_be_disabled()
    for _ in range(100):  # the route's handler runs as playwright dispatches the request
        if held:
            break
        page.wait_for_timeout(50)
    assert len(held) == 1
    expect(page.locator("#toggle-paused")).to_be_disabled()
    expect(page.locator("#settings-form button[type=submit]")).to_be_disabled()
    expect(page.locator("#settings-form select[name=time_in_force]")).to_be_disabled()
    expect(page.locator("#settings-form input[name=name]")).to_have_value("")
    expect(page.locator("#windows-form button[type=submit]")).to_be_disabled()
    expect(page.locator("#windows-form input[name=calendar]")).to_be_disabled()
    shot("webhook-loading")
    held[0].continue_()
    expect(page.locator("#toggle-paused")).to_be_enabled()
    expect(page.locator("#toggle-active")).to_be_enabled()
    expect(page.locator("#settings-form input[name=name]")).to_have_value("Slow to load")
    expect(page.locator("#settings-form button[type=submit]")).to_be_enabled()
    expect(page.locator("#settings-form select[name=time_in_force]")).to_be_enabled()
    expect(page.locator("#windows-form input[name=calendar]")).to_have_value("XNYS")
    expect(page.locator("#windows-form button[type=submit]")).to_be_enabled()
    expect(page.locator("#toggle-paused")).to_have_text("Pause entries")
    expect(page.locator("#toggle-active")).to_have_text("Turn off")
    page.unroute(f"**/api/webhook-configs/{config_id}")
    page.click("#toggle-paused")
    expect(page.locator("#config-state")).to_have_text("entries paused: exits still run")


def test_a_webhook_page_that_cannot_load_says_so_and_keeps_its_toggles_off(
    page: Page, base_url, sign_in, shot
) -> None:
    sign_in(next_path="/configs")
    config_id, _ = create_config(page, base_url, "Unreachable")
    page.route(f"**/api/webhook-configs/{config_id}", lambda route: route.abort())
    page.goto(f"{base_url}/configs/{config_id}")
    expect(page.locator("#action-error")).to_contain_text("Could not load this webhook")
    expect(page.locator("#toggle-paused")).to_be_disabled()
    expect(page.locator("#toggle-active")).to_be_disabled()
    expect(page.locator("#settings-form button[type=submit]")).to_be_disabled()
    # The trading-windows form reads the webhook itself (after waiting up to 5 s for the page's
    # read), fails too, and says so under the form, which stays disabled.
    expect(page.locator("#windows-error")).to_contain_text(
        "Could not load the trading windows", timeout=15_000
    )
    expect(page.locator("#windows-form button[type=submit]")).to_be_disabled()
    shot("webhook-load-failed")


def test_pausing_keeps_settings_typed_but_not_saved(page: Page, base_url, sign_in) -> None:
    """A toggle's answer updates the webhook's state, not the settings form being edited."""
    sign_in(next_path="/configs")
    config_id, _ = create_config(page, base_url, "Being edited")
    page.goto(f"{base_url}/configs/{config_id}")
    page.fill("#settings-form input[name=name]", "Renamed, not saved yet")
    page.fill("#settings-form input[name=quantity]", "7")
    page.click("#toggle-paused")
    expect(page.locator("#config-state")).to_have_text("entries paused: exits still run")
    expect(page.locator("#settings-form input[name=name]")).to_have_value("Renamed, not saved yet")
    expect(page.locator("#settings-form input[name=quantity]")).to_have_value("7")
    expect(page.locator("#config-name")).to_have_text("Being edited")
    page.click("#settings-form button[type=submit]")
    expect(page.locator("#settings-saved")).to_have_text("Saved")
    expect(page.locator("#config-name")).to_have_text("Renamed, not saved yet")
    expect(page.locator("#config-state")).to_have_text("entries paused: exits still run")


def test_a_denied_signal_shows_its_reason_in_plain_words(page: Page, base_url, sign_in, jobs, shot) -> None:
    sign_in(next_path="/configs")
    config_id, _ = create_config(page, base_url, "Paused")
    page.goto(f"{base_url}/configs/{config_id}")
    page.click("#toggle-paused")
    expect(page.locator("#config-state")).to_have_text("entries paused: exits still run")
    page.click("#send-test")
    expect(page.locator("#test-outcome")).to_contain_text("accepted")
    jobs()
    page.click("#test-outcome a")
    expect(page.locator("#signal h1 .outcome")).to_have_text("denied")
    reason = page.locator("#signal-reason")
    expect(reason).to_contain_text("Denied by your risk rules")
    expect(reason).to_contain_text("entries are paused for this webhook config")
    shot("signal-denied")


def test_settings_show_the_api_field_errors(page: Page, base_url, sign_in, shot) -> None:
    sign_in(next_path="/configs")
    config_id, _ = create_config(page, base_url, "Errors")
    page.goto(f"{base_url}/configs/{config_id}")
    expect(page.locator("#settings-form input[name=name]")).to_have_value("Errors")
    page.fill("#settings-form input[name=commission_rate]", "2")
    page.click("#settings-form button[type=submit]")
    error = page.locator(".field-error[data-field=commission_rate]")
    expect(error).to_have_text("Must be greater than or equal to 0 and less than or equal to 1.")
    shot("config-detail")


def test_the_alert_message_generator_gives_a_pasteable_message(page: Page, base_url, sign_in) -> None:
    sign_in(next_path="/configs")
    config_id, _ = create_config(page, base_url, "Generator")
    page.goto(f"{base_url}/configs/{config_id}")
    strategy = json.loads(page.input_value("#gen-message"))
    assert strategy["action"] == "{{strategy.order.action}}"
    assert strategy["sentiment"] == "{{strategy.market_position}}"
    assert strategy["quantity"] == "{{strategy.order.contracts}}"
    page.select_option("#gen-case", "buy")
    page.select_option("#gen-size", "dollar_amount")
    page.fill("#gen-amount", "500")
    message = json.loads(page.input_value("#gen-message"))
    assert (message["action"], message["quantity"], message["quantityType"]) == ("buy", 500, "dollar_amount")
    page.select_option("#gen-case", "exit")
    assert "quantity" not in json.loads(page.input_value("#gen-message"))
    # What TradingView would send for the buy message is accepted by the real intake path.
    page.select_option("#gen-case", "buy")
    send_built_message(page)


def test_the_equity_curve_renders_after_the_demo_replay(
    page: Page, base_url, sign_in, client, jobs, shot
) -> None:
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
    from backtesting.test import GOOG
    from demo import SETTINGS, build_alerts

    sign_in(next_path="/configs")
    config_id, url = create_config(page, base_url, "Demo replay")
    token = page.evaluate("JSON.parse(localStorage.getItem('vz.session')).access_token")
    headers = {"Authorization": f"Bearer {token}"}
    assert (
        client.patch(f"/api/webhook-configs/{config_id}", json=SETTINGS, headers=headers).status_code == 200
    )
    path = url.removeprefix("http://testserver")
    alerts = build_alerts(GOOG, "finalize")
    for alert in alerts:
        assert client.post(path, data=alert.body, content_type="application/json").status_code == 200
    jobs()
    history = client.get(f"/api/account/equity-history?config_id={config_id}", headers=headers).json
    assert len(history["points"]) > 50
    page.goto(f"{base_url}/")
    chart = page.locator("#equity-chart")
    expect(chart).to_have_attribute("data-points", re.compile(r"^\d{2,}$"))
    expect(chart.locator("canvas").first).to_be_visible()
    expect(page.locator("#trades tbody tr").first).to_contain_text("GOOG")
    shot("overview-equity")
    page.screenshot(path="build/screenshots/dashboard-viewport.png")  # the README's picture


def test_a_non_admin_is_refused_on_the_admin_page(page: Page, base_url, sign_in, shot) -> None:
    sign_in(next_path="/admin")
    refused = page.locator("#admin-refused")
    expect(refused).to_contain_text("Admins only")
    expect(page.locator("#admin-tools")).to_have_count(0)
    shot("admin-refused")


def test_the_api_docs_render_without_internet(page: Page, base_url, shot) -> None:
    page.route(re.compile(r"^https?://(?!127\.0\.0\.1)"), lambda route: route.abort())
    page.goto(f"{base_url}/api/docs")
    expect(page.locator(".swagger-ui .title").first).to_contain_text("Viewzenix")
    expect(page.locator(".swagger-ui")).to_contain_text("/webhooks/{config_id}/{token}")
    shot("api-docs")


def test_rotate_the_token_and_turn_the_webhook_off(page: Page, base_url, sign_in, client) -> None:
    sign_in(next_path="/configs")
    config_id, old_url = create_config(page, base_url, "Rotate me")
    page.goto(f"{base_url}/configs/{config_id}")
    page.on("dialog", lambda dialog: dialog.accept())
    page.click("#rotate-token")
    expect(page.locator("#new-url")).to_be_visible()
    new_url = page.input_value("#new-url-value")
    assert new_url != old_url and new_url.startswith(f"http://testserver/webhooks/{config_id}/")
    alert = {"ticker": "AAPL", "action": "exit"}
    assert client.post(old_url.removeprefix("http://testserver"), json=alert).status_code == 404
    page.click("#toggle-active")
    expect(page.locator("#config-state")).to_have_text("off: every alert is refused")
    refused = client.post(new_url.removeprefix("http://testserver"), json=alert)
    assert (refused.status_code, refused.json["code"]) == (403, "config_inactive")


def test_the_signal_log_pages_and_filters_by_webhook(page: Page, base_url, sign_in, client) -> None:
    sign_in(next_path="/configs")
    busy_id, busy_url = create_config(page, base_url, "Busy")
    quiet_id, quiet_url = create_config(page, base_url, "Quiet")
    for i in range(55):  # rejected at intake (no action): stored, no job needed
        client.post(busy_url.removeprefix("http://testserver"), json={"ticker": f"T{i}"})
    client.post(quiet_url.removeprefix("http://testserver"), json={"ticker": "QUIET"})
    page.goto(f"{base_url}/signals")
    rows = page.locator("table.signals tbody tr")
    expect(rows).to_have_count(50)
    expect(page.locator(".pager")).to_contain_text("page 1 of 2")
    page.click("[data-goto-page='2']")
    expect(page.locator(".pager")).to_contain_text("page 2 of 2")
    expect(rows).to_have_count(6)
    page.select_option("#signal-filters select[name=config_id]", label="Quiet")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Quiet")
    expect(rows.first).to_have_class(re.compile("st-rejected"))
    expect(page.locator(".pager")).to_have_count(0)
    assert busy_id != quiet_id
