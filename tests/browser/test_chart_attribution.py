"""Lightweight Charts' licence: the dashboard turns the chart's TradingView logo off, so the
Account page shows the NOTICE's attribution and a link to https://www.tradingview.com/."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect


def test_the_account_page_shows_the_chart_notice_and_link(page: Page, base_url, sign_in) -> None:
    sign_in()
    notice = page.locator("#chart-attribution")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text("TradingView Lightweight Charts™")
    expect(notice).to_contain_text(re.compile(r"Copyright \(c\) \d{4} TradingView, Inc\."))
    link = notice.locator("a")
    expect(link).to_have_attribute("href", "https://www.tradingview.com/")
    expect(link).to_have_attribute("rel", "noopener noreferrer")
