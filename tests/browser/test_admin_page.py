"""The admin tools page in a real browser, on real jobs: queue metrics, the job list with its
filters and "Load more", a failed job's attempts and error text, retry / cancel / run-now with a
confirmation, and the API's 409 message when the job's state refuses the action.

A job fails for good the way it does in ``tests/api/test_job_admin.py``: its signal meets a
broker whose ``submit_order`` raises a bug (not a transient error, so no automatic retry), run by
a real procrastinate worker with the attempt recorder; the retry then runs on the real worker
(``jobs`` fixture) and the paper broker.
"""

from __future__ import annotations

import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from builders import enqueue_signal, make_config, orders_of, signal_row
from fake_broker import FakeBroker
from playwright.sync_api import Dialog, Locator, Page, expect

from tests.browser.held_load import HeldLoad
from viewzenix.db import Database
from viewzenix.domain.model import Action, Signal

pytestmark = [pytest.mark.browser, pytest.mark.db]

BUG = "the broker's answer had no 'status' field"


class BrokenBroker(FakeBroker):
    """The fake broker, whose submit_order raises a bug (not a transient error): no retry."""

    def submit_order(self, request):
        raise RuntimeError(BUG)


def buy(ticker: str = "AAPL") -> Signal:
    return Signal(ticker=ticker, action=Action.BUY, quantity=Decimal(3), signal_price=Decimal(100))


def fail_signal_jobs(database_url: str, db: Database, broken: set[uuid.UUID]) -> None:
    """Run the queued signal jobs; those of ``broken`` signals meet BrokenBroker and fail for good.

    In a thread: Playwright's sync API holds this thread's event loop.
    """
    from viewzenix.jobs import EXECUTE_SIGNAL, QUEUE, build_job_app
    from viewzenix.jobs.attempts import AttemptRecorder
    from viewzenix.jobs.retry import SIGNAL_RETRY
    from viewzenix.services.execution import execute_signal

    def work() -> None:
        job_app = build_job_app(database_url)

        @job_app.task(name=EXECUTE_SIGNAL, queue=QUEUE, pass_context=True, retry=SIGNAL_RETRY)
        def execute(context, signal_id: str) -> None:
            broker = BrokenBroker()
            brokers = (lambda config: broker) if uuid.UUID(signal_id) in broken else None
            execute_signal(db, uuid.UUID(signal_id), job_id=context.job.id, brokers=brokers)

        for _ in range(10):  # again while jobs wait for their symbol's lock
            job_app.run_worker(
                wait=False,
                install_signal_handlers=False,
                listen_notify=False,
                queues=[QUEUE],
                worker_middleware=[AttemptRecorder()],
            )

    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(work).result()


def answer_dialogs(page: Page) -> list[str]:
    """Accept every confirmation from now on; return the list their messages are appended to."""
    messages: list[str] = []

    def handle(dialog: Dialog) -> None:
        messages.append(dialog.message)
        dialog.accept()

    page.on("dialog", handle)
    return messages


def test_an_admin_sees_a_failed_job_and_its_error_retries_it_and_a_finished_job_refuses_cancel(
    page: Page, base_url, sign_in, db, database_url, jobs, shot
) -> None:
    config = make_config(db)
    signal_id = enqueue_signal(db, database_url, config, buy())
    job_id = signal_row(db, signal_id)["job_id"]
    fail_signal_jobs(database_url, db, {signal_id})
    lock = f"signal:{config['id']}:AAPL"

    sign_in(next_path="/admin", admin=True)

    metrics = page.locator("#job-tiles")
    expect(metrics.locator("[data-status=failed] strong")).to_have_text(re.compile(r"^[1-9]\d*$"))
    expect(page.locator("#job-figures")).to_contain_text("failed")
    expect(page.locator("table.by-task")).to_contain_text("viewzenix.execute_signal")
    page.fill("#job-filters input[name=lock]", lock)
    page.select_option("#job-filters select[name=status]", "failed")
    page.click("#job-filters button[type=submit]")
    rows = page.locator("#job-rows tr")
    expect(rows).to_have_count(1)
    row = page.locator(f"tr[data-job-id='{job_id}']")
    expect(row).to_contain_text("failed")
    expect(row).to_contain_text(f"RuntimeError: {BUG}")
    shot("admin-jobs")

    row.locator("a").click()
    page.wait_for_url(f"{base_url}/admin?job={job_id}")
    expect(page.locator("#job-status")).to_have_text("failed")
    attempt = page.locator("#job-attempts tbody tr")
    expect(attempt).to_have_count(1)
    expect(attempt).to_contain_text("failed")
    expect(attempt.locator(".error-text")).to_contain_text(f"RuntimeError: {BUG}")
    expect(page.locator("#job-args")).to_have_text(f'{{"signal_id": "{signal_id}"}}')
    expect(page.locator("#job-signal")).to_contain_text(BUG)  # the signal's outcome
    expect(page.locator("#job-orders")).to_contain_text("pending_new")
    shot("admin-job-failed")

    # Dismissing the confirmation does nothing.
    dismissed: list[str] = []
    page.once("dialog", lambda dialog: (dismissed.append(dialog.message), dialog.dismiss()))
    page.click("[data-job-action=retry]")
    expect(page.locator("#job-status")).to_have_text("failed")
    assert dismissed == [
        f"Retry job #{job_id}? It goes back in the queue, due now (a signal's job re-runs its signal)."
    ]
    expect(page.locator("#job-action-result")).to_have_text("")

    confirmed = answer_dialogs(page)
    page.click("[data-job-action=retry]")
    expect(page.locator("#job-action-result")).to_have_text("Retried: failed → todo, due now")
    expect(page.locator("#job-status")).to_have_text("todo")
    expect(page.locator("#job-admin-actions")).to_contain_text("retry")
    assert confirmed[0].startswith(f"Retry job #{job_id}?")
    shot("admin-job-retried")

    jobs()  # the real worker and the paper broker

    page.click("#job h2 button")  # refresh
    expect(page.locator("#job-status")).to_have_text("succeeded")
    expect(page.locator("#job-attempts tbody tr")).to_have_count(2)
    expect(page.locator("#job-attempts tbody tr").nth(1)).to_contain_text("succeeded")
    expect(page.locator("#job-orders")).to_contain_text("filled")
    assert signal_row(db, signal_id)["status"] == "executed"
    assert len(orders_of(db, signal_id)) == 1  # the retry placed no second order

    # A finished job offers no action (the API still refuses one: tests/api/test_job_admin.py).
    expect(page.locator("#job-actions [data-job-action]")).to_have_count(0)
    expect(page.locator("#job-actions")).to_contain_text("No action: a succeeded job is done.")
    shot("admin-cancel-refused")


def test_periodic_housekeeping_is_hidden_by_default(page: Page, base_url, sign_in, db) -> None:
    with db.transaction() as conn:
        job_id = conn.execute(
            "insert into procrastinate_jobs (queue_name, task_name, status, args) values "
            "('housekeeping', 'viewzenix.retry_stalled_jobs', 'succeeded', '{}') returning id"
        ).fetchone()["id"]
        conn.execute(
            "insert into procrastinate_periodic_defers (task_name, defer_timestamp, job_id, periodic_id) "
            "values ('viewzenix.retry_stalled_jobs', %s, %s, 'retry_stalled_jobs')",
            (job_id, job_id),
        )
    sign_in(next_path="/admin", admin=True)
    expect(page.locator("#job-list")).not_to_contain_text("Loading")
    expect(page.locator(f"tr[data-job-id='{job_id}']")).to_have_count(0)
    page.select_option("#job-filters select[name=periodic]", "true")
    expect(page.locator(f"tr[data-job-id='{job_id}']")).to_contain_text("retry_stalled_jobs")


def ten_per_page_of_lock(page: Page, lock: str) -> Locator:
    """Once the list's first load is in, filter it to ``lock``'s jobs, 10 per page; return the
    rows (the first page, checked to hold 10)."""
    expect(page.locator("#job-list")).not_to_contain_text("Loading")
    page.fill("#job-filters input[name=lock]", lock)
    page.select_option("#job-filters select[name=limit]", "10")
    rows = page.locator("#job-rows tr[data-job-id]")
    expect(rows).to_have_count(10)
    return rows


def test_the_job_list_loads_more_and_a_queued_job_is_canceled(
    page: Page, base_url, sign_in, db, database_url, shot
) -> None:
    config = make_config(db)
    signals = [enqueue_signal(db, database_url, config, buy("MSFT")) for _ in range(12)]
    job_ids = [signal_row(db, s)["job_id"] for s in signals]

    sign_in(next_path="/admin", admin=True)
    rows = ten_per_page_of_lock(page, f"signal:{config['id']}:MSFT")
    expect(rows.first).to_have_attribute("data-job-id", str(job_ids[-1]))  # newest first
    page.click("#job-more")
    expect(rows).to_have_count(12)
    expect(rows.last).to_have_attribute("data-job-id", str(job_ids[0]))
    expect(page.locator("#job-more")).to_have_count(0)
    shot("admin-load-more")

    answer_dialogs(page)
    rows.last.locator("a").click()
    expect(page.locator("#job-status")).to_have_text("todo")
    # Already due: no "Run now" (only a job scheduled for later offers it), no "Retry".
    expect(page.locator("[data-job-action=run-now]")).to_have_count(0)
    expect(page.locator("[data-job-action=retry]")).to_have_count(0)
    # The detail comes into view below the long list.
    expect(page.locator("#job")).to_be_in_viewport()
    page.click("[data-job-action=cancel]")
    expect(page.locator("#job-action-result.ok")).to_contain_text("Canceled: todo → cancelled")
    expect(page.locator("#job-status")).to_have_text("cancelled")
    expect(rows).to_have_count(10)  # the list is reloaded from its first page
    page.click("#job-more")
    expect(page.locator(f"tr[data-job-id='{job_ids[0]}']")).to_contain_text("cancelled")
    assert signal_row(db, signals[0])["status"] == "failed"  # canceled by an admin


def test_a_filter_sent_while_the_first_list_loads_is_not_undone_by_that_list(
    page: Page, base_url, sign_in, db, database_url
) -> None:
    config = make_config(db)
    signals = [enqueue_signal(db, database_url, config, buy("NVDA")) for _ in range(2)]
    job_ids = {str(signal_row(db, s)["job_id"]) for s in signals}
    enqueue_signal(db, database_url, config, buy("AMD"))  # in the unfiltered list only
    first_load = HeldLoad(page, "**/ui/fragments/admin/jobs?*", holds=lambda url: "lock=&" in url + "&")
    sign_in(next_path="/admin", admin=True)
    first_load.wait()
    expect(page.locator("#job-list")).to_contain_text("Loading")
    page.fill("#job-filters input[name=lock]", f"signal:{config['id']}:NVDA")
    page.click("#job-filters button[type=submit]")
    rows = page.locator("#job-rows tr[data-job-id]")
    expect(rows).to_have_count(2)

    # The unfiltered list answers last: the filtered one must stay (hx-sync aborted the load).
    first_load.answer_late()
    expect(rows).to_have_count(2)
    assert {rows.nth(i).get_attribute("data-job-id") for i in range(2)} == job_ids


def test_the_refresh_keeps_the_pages_loaded_with_load_more_until_the_next_filter(
    page: Page, base_url, sign_in, db, database_url
) -> None:
    config = make_config(db)
    for _ in range(11):
        enqueue_signal(db, database_url, config, buy("INTC"))
    page.clock.install()  # timers run as usual; run_for jumps the 15-s refresh due
    sign_in(next_path="/admin", admin=True)
    rows = ten_per_page_of_lock(page, f"signal:{config['id']}:INTC")
    page.click("#job-more")
    expect(rows).to_have_count(11)

    refreshes: list[str] = []
    page.on("request", lambda r: refreshes.append(r.url) if "/ui/fragments/admin/jobs?" in r.url else None)
    page.clock.run_for(16_000)
    page.wait_for_load_state("networkidle")
    assert refreshes == []
    expect(rows).to_have_count(11)

    # A new filter shows the first page again, and the refresh resumes.
    page.click("#job-filters button[type=submit]")
    expect(rows).to_have_count(10)
    with page.expect_request("**/ui/fragments/admin/jobs?*"):
        page.clock.run_for(16_000)


def test_the_job_list_refreshes_on_its_own_keeping_its_filter_and_a_paused_queue_is_shown(
    page: Page, base_url, sign_in, db, database_url
) -> None:
    from viewzenix.jobs import build_job_app

    queue = f"poll-{uuid.uuid4().hex[:8]}"
    sign_in(next_path="/admin", admin=True)
    page.fill("#job-filters input[name=queue]", queue)
    page.click("#job-filters button[type=submit]")
    expect(page.locator("#job-list")).not_to_contain_text("test.poll")

    job_app = build_job_app(database_url)
    with job_app.open():  # deferred behind the page's back: no click, no event
        job_app.configure_task("test.poll", queue=queue).defer(n=1)
    with db.transaction() as conn:
        conn.execute("update private.job_queue_state set paused = true, reason = 'playbook drill'")
    try:
        expect(page.locator("#job-list")).to_contain_text("test.poll", timeout=25_000)
        expect(page.locator("#queue-paused")).to_contain_text("playbook drill", timeout=15_000)
    finally:
        with db.transaction() as conn:
            conn.execute("update private.job_queue_state set paused = false, reason = null")
            conn.execute("delete from procrastinate_jobs where queue_name = %s", (queue,))
