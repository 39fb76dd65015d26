"""A list's filter is not undone by a refresh answered late (signals, orders, trades pages).

Each of these lists loads itself (``vz:ready``, then every ``vz:tick``) with the filter form's
values, and the form sends its own request on a change. When a load sent before the change
answers after it, its unfiltered rows must not replace the filtered ones: the form's request
replaces the list's one in flight (``hx-sync``).
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.held_load import HeldLoad

pytestmark = [pytest.mark.browser, pytest.mark.db]

# Every swap into a list: its target's id and the URL of the answer swapped in.
RECORD_SWAPS = """
window.vzSwaps = [];
document.addEventListener("htmx:afterSwap", (e) => {
  window.vzSwaps.push([e.detail.target.id, e.detail.xhr ? e.detail.xhr.responseURL : ""]);
});
"""
FILTERED = "ZZFILTER"


@pytest.mark.parametrize(
    ("path", "list_id", "fragment", "field"),
    [
        ("/signals", "signals", "signals", "ticker"),
        ("/orders", "orders", "orders", "symbol"),
        ("/trades", "trade-list", "trades", "symbol"),
    ],
)
def test_a_filter_sent_while_the_list_loads_is_not_undone_by_that_load(
    page: Page, sign_in, path: str, list_id: str, fragment: str, field: str
) -> None:
    page.add_init_script(RECORD_SWAPS)
    first_load = HeldLoad(page, f"**/ui/fragments/{fragment}?*")
    sign_in(next_path=path)
    assert FILTERED not in first_load.wait()

    page.fill(f"input[name={field}]", FILTERED)
    page.press(f"input[name={field}]", "Enter")
    page.wait_for_function(
        "([id, f]) => window.vzSwaps.some(([t, url]) => t === id && url.includes(f))", arg=[list_id, FILTERED]
    )
    first_load.answer_late()

    swaps = [url for target, url in page.evaluate("window.vzSwaps") if target == list_id]
    first_filtered = next(i for i, url in enumerate(swaps) if FILTERED in url)
    assert all(FILTERED in url for url in swaps[first_filtered:]), swaps
    expect(page.locator(f"#{list_id}")).not_to_contain_text("Loading")
