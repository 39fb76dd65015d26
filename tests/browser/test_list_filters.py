"""A list's filter is not undone by a refresh answered late (signals, orders, trades pages).

Each of these lists loads itself (``vz:ready``, then every ``vz:tick``) with the filter form's
values, and the form sends its own request on a change. When a load sent before the change
answers after it, its unfiltered rows must not replace the filtered ones: the form's request
replaces the list's one in flight (``hx-sync``).
"""

from __future__ import annotations

import contextlib

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, expect

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
    held: list = []

    def hold_the_first_load(route) -> None:
        if not held:
            held.append(route)
            return
        route.continue_()

    page.add_init_script(RECORD_SWAPS)
    page.route(f"**/ui/fragments/{fragment}?*", hold_the_first_load)
    sign_in(next_path=path)
    for _ in range(100):  # until the page's first load of the list reaches the route (5 s at most)
        if held:
            break
        page.wait_for_timeout(50)
    assert len(held) == 1 and FILTERED not in held[0].request.url

    page.fill(f"input[name={field}]", FILTERED)
    page.press(f"input[name={field}]", "Enter")
    page.wait_for_function(
        "([id, f]) => window.vzSwaps.some(([t, url]) => t === id && url.includes(f))", arg=[list_id, FILTERED]
    )
    with contextlib.suppress(PlaywrightError):  # the page may have aborted it already
        held[0].continue_()
    page.wait_for_load_state("networkidle")

    swaps = [url for target, url in page.evaluate("window.vzSwaps") if target == list_id]
    first_filtered = next(i for i, url in enumerate(swaps) if FILTERED in url)
    assert all(FILTERED in url for url in swaps[first_filtered:]), swaps
    expect(page.locator(f"#{list_id}")).not_to_contain_text("Loading")
