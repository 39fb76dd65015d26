"""Send the alert builder's message the way TradingView would: placeholders filled, real intake."""

from __future__ import annotations

from playwright.sync_api import Page, expect

# What TradingView puts in place of the placeholders the builder uses (FACTS.md).
PLACEHOLDERS = {
    "{{ticker}}": "AAPL",
    "{{close}}": "190.5",
    "{{timenow}}": "2026-11-27T15:00:00Z",
    "{{interval}}": "5",
    "{{time}}": "2026-11-27T14:55:00Z",
}


def send_built_message(page: Page) -> None:
    """Fill the builder's placeholders, send it as a test alert, expect intake to accept it."""
    filled = page.input_value("#gen-message")
    for placeholder, value in PLACEHOLDERS.items():
        filled = filled.replace(placeholder, value)
    page.fill("#test-body", filled)
    page.click("#send-test")
    expect(page.locator("#test-outcome")).to_contain_text("Intake answered 200: accepted")
