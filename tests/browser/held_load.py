"""Hold a page's first load of a list, to answer it late (after a filter sent since)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, Route


class HeldLoad:
    """Routes ``pattern``: the first request whose URL ``holds`` is kept unanswered; every other
    one goes on. Register before the page loads."""

    def __init__(self, page: Page, pattern: str, holds: Callable[[str], bool] = lambda url: True) -> None:
        self.page = page
        self.routes: list[Route] = []

        def handle(route: Route) -> None:
            if not self.routes and holds(route.request.url):
                self.routes.append(route)
                return
            route.continue_()

        page.route(pattern, handle)

    def wait(self) -> str:
        """Wait (5 s at most) until the load is held; return its URL."""
        for _ in range(100):
            if self.routes:
                break
            self.page.wait_for_timeout(50)
        assert len(self.routes) == 1, "the page's first load never came"
        return self.routes[0].request.url

    def answer_late(self) -> None:
        """Let the held load go on, and wait until the page's network is quiet."""
        with contextlib.suppress(PlaywrightError):  # the page may have aborted it already
            self.routes[0].continue_()
        self.page.wait_for_load_state("networkidle")
