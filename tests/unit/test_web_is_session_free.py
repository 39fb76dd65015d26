"""Web code may run behind a transaction-mode pooler (WEB_DATABASE_URL): nothing it sends may
outlive its transaction. A scan of the code web requests reach for what would (LISTEN, session
advisory locks, SET without LOCAL, temporary tables, session-level set_config)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "viewzenix"
# What a web process runs: the app factory, HTTP layers, services, repositories, the pool.
# The job worker, streams and migrations use DATABASE_URL (a session) and are left out.
WEB = [
    "__init__.py",
    "api",
    "webhooks",
    "dashboard",
    "health.py",
    "metrics.py",
    "access_log.py",
    "errors.py",
    "auth.py",
    "services",
    "repositories",
    "notifications",
    "db/__init__.py",
    "db/pools.py",
    "jobs/__init__.py",
    "domain",
]
SESSION_SCOPED = [
    # A LISTEN statement as a whole string literal: LISTEN "channel"; (not prose in a docstring).
    (re.compile(r"""["']\s*listen\s+("[^"]+"|[\w.#]+)\s*;?\s*["']""", re.I), "LISTEN"),
    (re.compile(r"pg_advisory_lock|pg_try_advisory_lock\b", re.I), "session advisory lock"),
    # SET of a (lower-case) setting at the start of a string literal, unless SET LOCAL.
    (
        re.compile(r"""["']\s*(?i:set)\s+(?!(?i:local)\b)((?i:session)\s+)?[a-z_.]+\s*(=|(?i:to))\s"""),
        "SET without LOCAL",
    ),
    (re.compile(r"\bcreate\s+(temp|temporary)\s+table", re.I), "temporary table"),
    (re.compile(r"set_config\([^)]*,\s*false\s*\)", re.I), "session-level set_config"),
    (re.compile(r"prepare\s+\w+\s+as", re.I), "PREPARE"),
]


def _web_files() -> list[Path]:
    files: list[Path] = []
    for entry in WEB:
        path = ROOT / entry
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return files


def test_web_code_sends_nothing_session_scoped():
    found = []
    for path in _web_files():
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#")[0]
            for pattern, what in SESSION_SCOPED:
                if pattern.search(code):
                    found.append(f"{path.relative_to(ROOT.parent)}:{number}: {what}: {line.strip()}")
    assert found == []


def test_the_scan_sees_what_it_looks_for():
    samples = [
        'conn.execute("LISTEN channel")',
        "conn.execute('LISTEN \"procrastinate_any_queue_v1\";')",
        'conn.execute("SET search_path TO x")',
        'conn.execute("select pg_advisory_lock(1)")',
        'conn.execute("set statement_timeout = 5")',
        'conn.execute("create temp table t (x int)")',
        "conn.execute(\"select set_config('role', 'x', false)\")",
    ]
    for sample in samples:
        assert any(p.search(sample) for p, _ in SESSION_SCOPED), sample
    for fine in [
        'conn.execute("set local statement_timeout = 5")',
        "select set_config('role', %s, true)",
        "select pg_advisory_xact_lock(1)",
        'conn.execute("update t set x = 1")',
    ]:
        assert not any(p.search(fine) for p, _ in SESSION_SCOPED), fine
