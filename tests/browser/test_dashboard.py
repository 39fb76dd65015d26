"""The dashboard in a real browser: what a new user does after `make run`."""

from __future__ import annotations

import json
import re
import time
import uuid

import pytest
from playwright.sync_api import Page, expect

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
    page.goto(f"{base_url}/signals?status=denied")
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
