"""flask sync check watchers|users: drift between a source database (a second real Postgres
database: the app's project A) and a fresh target database, repair, and the Auth admin API
source (against FakeSupabaseAuth, an HTTP fake with Supabase's documented response shapes)."""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest
from builders import fresh_database

import config as app_config
from viewzenix.db import Database
from viewzenix.services import sync_check
from viewzenix.services.housekeeping import purge_expired

TARGET_DB = "viewzenix_test_sync_target"


@pytest.fixture(scope="module")
def target_url(database_url):
    url = fresh_database(database_url, TARGET_DB)
    return url


@pytest.fixture()
def target(target_url):
    database = Database(target_url, min_size=1, max_size=2).open()
    with database.transaction() as conn:
        conn.execute("truncate public.watchers, private.hook_tombstones, private.sync_checks")
        conn.execute("delete from public.users")
    yield database
    database.close()


@pytest.fixture()
def source(source_database_url):
    with psycopg.connect(source_database_url, autocommit=True) as conn:
        conn.execute("truncate public.user_symbols")
        conn.execute("delete from auth.users")
    return source_database_url


def add_symbol(url, user_id, symbol, timeframe="1h", strategy=None, active=True):
    with psycopg.connect(url, autocommit=True) as conn:
        if conn.execute("select 1 from auth.users where id = %s", (user_id,)).fetchone() is None:
            conn.execute(
                "insert into auth.users (id, email) values (%s, %s)", (user_id, f"{user_id.hex[:10]}@x.test")
            )
        conn.execute(
            "insert into public.user_symbols (user_id, symbol, timeframe, strategy, active) "
            "values (%s, %s, %s, %s, %s)",
            (user_id, symbol, timeframe, json.dumps(strategy or {}), active),
        )


def target_watchers(db):
    with db.transaction() as conn:
        return {
            (str(r["user_id"]), r["symbol"], r["timeframe"]): (r["strategy"], r["active"])
            for r in conn.execute("select * from public.watchers")
        }


class TestWatchersDrift:
    def test_reports_missing_extra_and_differing_with_a_drift_rate(self, target, source):
        a, b = uuid.uuid4(), uuid.uuid4()
        add_symbol(source, a, "AAPL")
        add_symbol(source, a, "BTC/USDT", "4h", {"k": 1})
        add_symbol(source, b, "MSFT")
        report = sync_check.check(target, "watchers", sync_check.DatabaseSource(url=source), repair=True)
        assert (len(report.missing), report.repaired) == (3, 3)
        # Now lose deliveries: one row changed, one deleted, one added at the source.
        with psycopg.connect(source, autocommit=True) as conn:
            conn.execute("update public.user_symbols set strategy = '{\"k\": 2}' where symbol = 'BTC/USDT'")
            conn.execute("delete from public.user_symbols where symbol = 'MSFT'")
        add_symbol(source, b, "ETH/USD", "1d")
        report = sync_check.check(target, "watchers", sync_check.DatabaseSource(url=source))
        assert (report.missing, report.extra, report.differing) == (
            [f"{b}/ETH/USD/1d"],
            [f"{b}/MSFT/1h"],
            [f"{a}/BTC/USDT/4h"],
        )
        assert report.drift_rate == pytest.approx(75)  # 3 of the 4 keys compared
        assert report.repaired == 0
        with target.transaction() as conn:
            recorded = conn.execute("select * from private.sync_checks order by id desc limit 1").fetchone()
        assert (
            recorded["missing"],
            recorded["extra"],
            recorded["differing"],
            float(recorded["drift_rate"]),
        ) == (
            1,
            1,
            1,
            75.0,
        )

    def test_repair_brings_the_target_in_line_and_a_second_repair_changes_nothing(self, target, source):
        a = uuid.uuid4()
        add_symbol(source, a, "AAPL", strategy={"v": 1})
        add_symbol(source, a, "SPY", "15m", active=False)
        report = sync_check.check(target, "watchers", sync_check.DatabaseSource(url=source), repair=True)
        assert report.repaired == 2
        assert target_watchers(target) == {
            (str(a), "AAPL", "1h"): ({"v": 1}, True),
            (str(a), "SPY", "15m"): ({}, False),
        }
        again = sync_check.check(target, "watchers", sync_check.DatabaseSource(url=source), repair=True)
        assert (again.in_drift, again.repaired, float(again.drift_rate)) == (0, 0, 0.0)

    def test_repair_refuses_a_drift_above_half_unless_forced(self, target, source):
        user = uuid.uuid4()
        with target.transaction() as conn:
            for symbol in ("AAPL", "MSFT", "TSLA"):
                repo_row = {
                    "user_id": user,
                    "symbol": symbol,
                    "timeframe": "1h",
                    "strategy": {},
                    "active": True,
                }
                from viewzenix.repositories.hook_sync import upsert_watcher

                upsert_watcher(conn, {**repo_row, "updated_at": None})
        with pytest.raises(sync_check.RepairRefused):
            sync_check.check(target, "watchers", sync_check.DatabaseSource(url=source), repair=True)
        assert len(target_watchers(target)) == 3  # an empty source deleted nothing
        forced = sync_check.check(
            target, "watchers", sync_check.DatabaseSource(url=source), repair=True, force=True
        )
        assert forced.repaired == 3 and target_watchers(target) == {}

    def test_invalid_source_rows_are_reported_not_applied(self, target, source):
        add_symbol(source, uuid.uuid4(), "NOT A SYMBOL")
        report = sync_check.check(target, "watchers", sync_check.DatabaseSource(url=source), repair=True)
        assert len(report.invalid) == 1 and report.repaired == 0

    def test_the_cli_prints_the_drift(self, target_url, target, source, tmp_path):
        from viewzenix import create_app

        add_symbol(source, uuid.uuid4(), "AAPL")
        app = create_app(
            app_config.TestingConfig(
                {"DATABASE_URL": target_url, "DATA_DIR": str(tmp_path), "SYNC_SOURCE_DATABASE_URL": source}
            )
        )
        try:
            runner = app.test_cli_runner()
            result = runner.invoke(args=["sync", "check", "watchers"])
            assert result.exit_code == 0, result.output
            assert result.output.strip() == (
                "watchers (database): 1/1 in drift (100.00 %): missing 1, extra 0, differing 0"
            )
            repaired = runner.invoke(args=["sync", "check", "watchers", "--repair", "--json"])
            assert json.loads(repaired.output)["repaired"] == 1
            with psycopg.connect(source, autocommit=True) as conn:
                conn.execute("truncate public.user_symbols")
            refused = runner.invoke(args=["sync", "check", "watchers", "--repair"])
            assert refused.exit_code != 0 and "removals refused" in refused.output
        finally:
            app.extensions["viewzenix"].close()


def add_user(url, email, meta=None):
    user_id = uuid.uuid4()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "insert into auth.users (id, email, raw_user_meta_data) values (%s, %s, %s)",
            (user_id, email, json.dumps(meta or {})),
        )
    return user_id


def profiles(db):
    with db.transaction() as conn:
        return {str(r["id"]): r for r in conn.execute("select * from public.users")}


class TestUsersDrift:
    def test_missing_profiles_are_created_and_deleted_users_anonymised(self, target, source):
        kept = add_user(source, "kept@x.test", {"full_name": "Kept One", "picture": "https://p/k"})
        gone = add_user(source, "gone@x.test")
        sync_check.check(target, "users", sync_check.DatabaseSource(url=source), repair=True, force=True)
        rows = profiles(target)
        assert (rows[str(kept)]["username"], rows[str(kept)]["display_name"]) == ("kept", "Kept One")
        with psycopg.connect(source, autocommit=True) as conn:
            conn.execute("delete from auth.users where id = %s", (gone,))
            conn.execute("update auth.users set email = 'kept2@x.test' where id = %s", (kept,))
        report = sync_check.check(
            target, "users", sync_check.DatabaseSource(url=source), repair=True, force=True
        )
        assert (report.extra, report.differing, report.repaired) == ([str(gone)], [str(kept)], 2)
        rows = profiles(target)
        assert rows[str(kept)]["email"] == "kept2@x.test"
        assert rows[str(gone)]["email"] is None and rows[str(gone)]["deleted_at"] is not None


class FakeSupabaseAuth:
    """FAKE of Supabase Auth's admin endpoints (GoTrue), with the response shapes of its docs:

    ``GET /auth/v1/admin/users?page=&per_page=`` → ``{"users": [User...], "aud": "authenticated"}``
    and ``GET /auth/v1/admin/users/<id>`` → a User, or 404 ``{"code": 404, "error_code":
    "user_not_found", "msg": "User not found"}``. ``on_page`` lets a test change the users while a
    listing is under way (a sign-up or deletion shifting the pages).
    """

    def __init__(self, httpserver):
        self.users: list[dict] = []
        self.requests: list[str] = []
        self.on_page = None
        from werkzeug.wrappers import Response

        def handler(request):
            self.requests.append(request.full_path)
            if request.headers.get("apikey") != "service-role-key":
                return Response(json.dumps({"msg": "Invalid API key"}), 401, content_type="application/json")
            path = request.path.removeprefix("/auth/v1/admin/users")
            if path in ("", "/"):
                page, per_page = int(request.args.get("page", 1)), int(request.args.get("per_page", 50))
                if self.on_page:
                    self.on_page(page)
                chunk = self.users[(page - 1) * per_page : page * per_page]
                body = {"users": chunk, "aud": "authenticated"}
                return Response(
                    json.dumps(body),
                    200,
                    content_type="application/json",
                    headers={"x-total-count": str(len(self.users))},
                )
            found = [u for u in self.users if u["id"] == path.strip("/")]
            if not found:
                body = {"code": 404, "error_code": "user_not_found", "msg": "User not found"}
                return Response(json.dumps(body), 404, content_type="application/json")
            return Response(json.dumps(found[0]), 200, content_type="application/json")

        httpserver.expect_request(r"/auth/v1/admin/users", method="GET").respond_with_handler(handler)
        import re

        httpserver.expect_request(
            re.compile(r"^/auth/v1/admin/users/.+$"), method="GET"
        ).respond_with_handler(handler)
        self.url = httpserver.url_for("/").rstrip("/")

    def add(self, email, full_name=None):
        user_id = str(uuid.uuid4())
        self.users.insert(  # newest first, as GoTrue lists them
            0,
            {
                "id": user_id,
                "aud": "authenticated",
                "role": "authenticated",
                "email": email,
                "phone": "",
                "app_metadata": {"provider": "google", "providers": ["google"]},
                "user_metadata": {"full_name": full_name} if full_name else {},
                "identities": [],
                "created_at": "2026-11-27T09:00:00.000000Z",
                "updated_at": "2026-11-27T10:00:00.000000Z",
                "is_anonymous": False,
            },
        )
        return user_id


class TestAuthAdminApiSource:
    def test_pages_through_users_and_rechecks_what_the_pages_missed(self, target, httpserver):
        fake = FakeSupabaseAuth(httpserver)
        for n in range(5):
            fake.add(f"u{n}@x.test", f"User {n}")
        client = sync_check.auth_admin_client(fake.url, "service-role-key")
        assert sync_check.auth_admin_client(fake.url, "service-role-key") is client  # one per project
        source = sync_check.AuthApiSource(client, page_size=2)
        report = sync_check.check(target, "users", source, repair=True, force=True)
        assert (len(report.missing), report.repaired) == (5, 5)
        assert {p["display_name"] for p in profiles(target).values()} == {f"User {n}" for n in range(5)}

        # While the next listing reads page 2, a user signs up: the later users move one page
        # down. The sign-up is found by the final re-read of page 1.
        def sign_up_during_listing(page):
            if page == 2 and not getattr(fake, "signed_up", False):
                fake.signed_up = fake.add("late@x.test")

        fake.on_page = sign_up_during_listing
        report = sync_check.check(target, "users", source, repair=True)
        assert (report.extra, report.missing, report.repaired) == ([], [fake.signed_up], 1)

        # While page 3 is read, the newest user is deleted: the others move one page up and one
        # of them is never listed. Looked up by id, it is found: it is not taken for deleted.
        newest, skipped = fake.users[0]["id"], fake.users[4]["id"]

        def delete_during_listing(page):
            if page == 3 and fake.users[0]["id"] == newest:
                fake.users.pop(0)

        fake.requests.clear()
        fake.on_page = delete_during_listing
        report = sync_check.check(target, "users", source)
        assert report.extra == []
        assert any(r.startswith(f"/auth/v1/admin/users/{skipped}") for r in fake.requests)

        fake.on_page = None
        report = sync_check.check(target, "users", source, repair=True)
        assert report.extra == [newest]
        assert profiles(target)[newest]["deleted_at"] is not None


def test_hook_history_past_its_retention_is_purged_and_newer_history_kept(target):
    with target.transaction() as conn:
        conn.execute("truncate private.hook_events")
        for age_days, key in ((20, "old"), (1, "new")):
            conn.execute(
                "insert into private.hook_events (received_at, outcome, record_key) "
                "values (now() - make_interval(days => %s), 'applied', %s)",
                (age_days, key),
            )
            conn.execute(
                "insert into private.hook_tombstones (target, key, deleted_at) "
                "values ('watchers', %s, now() - make_interval(days => %s))",
                (key, age_days),
            )

    counts = purge_expired(target, hook_retention_days=14)

    assert (counts["hook_events"], counts["hook_tombstones"]) == (1, 1)
    with target.transaction() as conn:
        events = [r["record_key"] for r in conn.execute("select record_key from private.hook_events")]
        tombstones = [r["key"] for r in conn.execute("select key from private.hook_tombstones")]
    assert (events, tombstones) == (["new"], ["new"])


# --- the periodic check repairs by default ----------------------------------------------------


def test_the_periodic_check_repairs_by_default_and_records_and_logs_each_repair(target, source, caplog):
    import logging

    from viewzenix.jobs import build_job_app

    user = uuid.uuid4()
    add_symbol(source, user, "AAPL", strategy={"v": 1})
    add_symbol(source, user, "MSFT")
    config = app_config.load_config({"SYNC_SOURCE_DATABASE_URL": source})  # no SYNC_CHECK_REPAIR set
    job_app = build_job_app(target.url)
    sync_check.register_periodic_check(job_app, target, config)

    with caplog.at_level(logging.INFO, logger="viewzenix.services.sync_check"):
        job_app.tasks[sync_check.SYNC_CHECK].func(timestamp=0)

    assert target_watchers(target) == {
        (str(user), "AAPL", "1h"): ({"v": 1}, True),
        (str(user), "MSFT", "1h"): ({}, True),
    }
    with target.transaction() as conn:
        run = conn.execute(
            "select * from private.sync_checks where target = 'watchers' order by id desc limit 1"
        ).fetchone()
    assert (run["missing"], run["repaired"]) == (2, 2)
    assert sorted(run["detail"]["repaired_keys"]) == [f"{user}/AAPL/1h", f"{user}/MSFT/1h"]
    repairs = {r.target: r for r in caplog.records if getattr(r, "action", None) == "sync_repaired"}
    assert repairs["watchers"].levelname == "WARNING" and repairs["watchers"].repaired == 2
    assert repairs["users"].repaired == 1  # the source's auth.users row of that user: its profile


def test_removals_above_half_are_refused_but_missing_rows_are_still_repaired(target, source):
    from viewzenix.repositories.hook_sync import upsert_watcher

    stale, fresh = uuid.uuid4(), uuid.uuid4()
    with target.transaction() as conn:
        for symbol in ("AAPL", "MSFT", "TSLA"):
            upsert_watcher(
                conn,
                {"user_id": stale, "symbol": symbol, "timeframe": "1h", "strategy": {}, "active": True}
                | {"updated_at": None},
            )
    add_symbol(source, fresh, "SPY")

    with pytest.raises(sync_check.RepairRefused, match="removals refused"):
        sync_check.check(target, "watchers", sync_check.DatabaseSource(url=source), repair=True)

    watchers = target_watchers(target)
    assert (str(fresh), "SPY", "1h") in watchers  # the safe part was repaired
    assert len(watchers) == 4  # nothing removed
    with target.transaction() as conn:
        run = conn.execute("select * from private.sync_checks order by id desc limit 1").fetchone()
    assert run["repaired"] == 1 and run["error"].startswith("removals refused")
    assert run["detail"]["repaired_keys"] == [f"{fresh}/SPY/1h"]
