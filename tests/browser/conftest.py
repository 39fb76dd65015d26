"""Browser tests: pytest-playwright driving Debian's Chromium against the app on a local port.

``playwright install`` cannot download browsers here, so the launch uses ``/usr/bin/chromium``
(``CHROMIUM`` overrides it). Without Chromium every test marked ``browser`` is skipped, and the
reason says so in the summary (``-ra``) and in a closing banner; ``.ci/run`` installs Chromium
first and sets VIEWZENIX_REQUIRE_BROWSER, which turns a missing Chromium into an error.
Screenshots go to ``build/screenshots/`` (gitignored; kept as CI artifacts).

The server is a werkzeug server in a thread on the session's app (real Postgres, local auth);
jobs run in-process through the ``jobs`` fixture, so what the page shows does not depend on timing.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest
from builders import worker_config
from werkzeug.serving import make_server

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"


def chromium_present() -> bool:
    return Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)


def pytest_collection_modifyitems(config, items):
    # Browser tests last: Playwright's sync API keeps an event loop in the main thread for the
    # rest of the session, and later tests that call asyncio.run (the job worker) would fail.
    items.sort(key=lambda item: "browser" in item.keywords)
    if chromium_present():
        return
    if os.environ.get("VIEWZENIX_REQUIRE_BROWSER"):  # .ci/run: never skip silently
        raise pytest.UsageError(f"VIEWZENIX_REQUIRE_BROWSER is set but there is no Chromium at {CHROMIUM}")
    skip = pytest.mark.skip(
        reason=f"browser tests SKIPPED: no Chromium at {CHROMIUM} (apt-get install -y chromium)"
    )
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": ["--no-sandbox"]}


@pytest.fixture(scope="session")
def base_url(app):
    """The app served on a free local port for the whole session."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture()
def shot(page):
    """Return ``shot(name)``: save a full-page screenshot under build/screenshots/."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


@pytest.fixture()
def sign_in(app, page, base_url):
    """Return ``sign_in(email=None, next="/", admin=False) -> email``: sign in through a one-time
    code link. ``admin``: then hold an admin's token instead (app_metadata.role = admin, which
    only the server sets; the token ``flask --app wsgi local-token EMAIL --admin`` prints)."""
    import uuid

    from viewzenix.services import local_signin
    from viewzenix.services.local_signin import ensure_local_user

    def go(email: str | None = None, next_path: str = "/", *, admin: bool = False) -> str:
        runtime = app.extensions["viewzenix"]
        email = email or f"browser-{uuid.uuid4().hex[:10]}@example.test"
        user_id = ensure_local_user(runtime.db, email)
        code = local_signin.issue_code(runtime.db, email)
        page.goto(f"{base_url}/signin?next={next_path}#code={code}")
        page.wait_for_url(f"{base_url}{next_path}")
        if admin:
            token = runtime.local_signer.issue(user_id, email, app_metadata={"role": "admin"})
            page.evaluate(
                "t => { const s = JSON.parse(localStorage.getItem('vz.session'));"
                " s.access_token = t; localStorage.setItem('vz.session', JSON.stringify(s)); }",
                token,
            )
            page.reload()
        return email

    return go


@pytest.fixture()
def jobs(database_url, db):
    """Run this test's jobs in-process, in a thread (Playwright's sync API holds this thread's loop).

    Only jobs deferred during this test are waited for: jobs other tests left behind (a retry
    scheduled later, a dead worker's lock) are none of its business.
    """
    from concurrent.futures import ThreadPoolExecutor

    from viewzenix.jobs import build_job_app
    from viewzenix.jobs.attempts import AttemptRecorder
    from viewzenix.jobs.tasks import register_tasks

    with db.transaction() as conn:
        first = conn.execute("select coalesce(max(id), 0) + 1 as id from procrastinate_jobs").fetchone()["id"]

    def work() -> None:
        job_app = build_job_app(database_url)
        register_tasks(job_app, db, worker_config())
        for _ in range(100):
            job_app.run_worker(
                wait=False,
                install_signal_handlers=False,
                listen_notify=False,
                concurrency=1,
                worker_middleware=[AttemptRecorder()],
            )
            with db.transaction() as conn:
                left = conn.execute(
                    "select count(*) as n from procrastinate_jobs "
                    "where id >= %s and status in ('todo', 'doing')",
                    (first,),
                ).fetchone()["n"]
            if not left:
                return
        raise AssertionError(f"{left} jobs of this test still pending after 100 worker runs")

    def run() -> None:
        with ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(work).result()

    return run
