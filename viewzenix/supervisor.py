"""``make run``: one command that brings the whole app up on this machine.

Starts Postgres (embedded under ``DATA_DIR/pg`` unless ``DATABASE_URL`` is set), applies the
migrations, creates a local user and a demo webhook config (kept across runs), then starts the
Procfile's ``web`` (gunicorn) and ``worker`` processes and prints the dashboard address (with a
one-time sign-in code in local mode) first, then the webhook URL, a local access token and the API
docs address, in one write. Ctrl-C (or SIGTERM) stops the children, then Postgres.

One run per data folder: a second ``make run`` in the same checkout finds ``DATA_DIR/run.lock``
held and stops at once. gunicorn's control socket lives in ``DATA_DIR`` too, not in
``$XDG_RUNTIME_DIR`` or ``~/.gunicorn``. The demo config's token is saved (``demo_config.json``,
mode 0600), not its URL, so the URL printed always carries the current PORT / PUBLIC_BASE_URL.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request

from config import PROJECT_ROOT, Config, load_config
from viewzenix.db.migrate import apply_migrations
from viewzenix.logs import configure_logging

logger = logging.getLogger("viewzenix.supervisor")

DEMO_EMAIL = "demo@viewzenix.local"


def _flask(env: dict[str, str], *args: str) -> str:
    """Run ``flask --app wsgi ARGS`` and return its stdout's last line."""
    out = subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, "-m", "flask", "--app", "wsgi", *args],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip().splitlines()[-1]


def _demo_config(config: Config, env: dict[str, str]) -> dict[str, str]:
    """Return the demo config's ids, URL and a fresh token; reuse the one saved by an earlier run.

    The file keeps ``config_id`` and the URL ``token``; the URL is rebuilt from the current
    PUBLIC_BASE_URL each run (a file from an older version, holding ``webhook_url``, still works).
    """
    saved = config.DATA_DIR / "demo_config.json"
    if saved.exists():
        data = json.loads(saved.read_text())
        if "token" not in data and "webhook_url" in data:
            data["token"] = data["webhook_url"].rsplit("/", 1)[-1]
        data["webhook_url"] = f"{config.PUBLIC_BASE_URL}/webhooks/{data['config_id']}/{data['token']}"
        check = subprocess.run(  # noqa: S603 - fixed argv
            [sys.executable, "-m", "flask", "--app", "wsgi", "local-token", DEMO_EMAIL],
            env=env,
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        data["access_token"] = check.stdout.strip()
        if _config_exists(env, data["config_id"]):
            return data
    out = subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, "-m", "flask", "--app", "wsgi", "demo-config", DEMO_EMAIL],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    data = json.loads(out.stdout.strip().splitlines()[-1])
    data["token"] = data["webhook_url"].rsplit("/", 1)[-1]
    saved.write_text(json.dumps({k: data[k] for k in ("config_id", "token")}))
    saved.chmod(0o600)
    return data


def _hold_run_lock(config: Config) -> object | None:
    """Take ``DATA_DIR/run.lock`` (flock, released when this process ends); None if another run holds it."""
    handle = open(config.DATA_DIR / "run.lock", "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def _say(text: str) -> None:
    """Write ``text`` to stdout in one write, so the children's log lines cannot land inside it."""
    sys.stdout.flush()
    os.write(sys.stdout.fileno(), text.encode())


def _config_exists(env: dict[str, str], config_id: str) -> bool:
    import psycopg

    with psycopg.connect(env["DATABASE_URL"]) as conn:
        return (
            conn.execute("select 1 from public.webhook_configs where id = %s", (config_id,)).fetchone()
            is not None
        )


def _wait_healthy(url: str, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - local URL
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.3)
    return False


def main() -> int:
    """Run until interrupted; return the exit code."""
    config = load_config()
    configure_logging(config.LOG_LEVEL, config.LOG_FORMAT)
    config.DATA_DIR.mkdir(parents=True, exist_ok=True)
    lock = _hold_run_lock(config)
    if lock is None:
        pid = (config.DATA_DIR / "run.lock").read_text().strip() or "?"
        print(
            f"Viewzenix is already running from this checkout (pid {pid}, data in {config.DATA_DIR}).\n"
            "Stop it first (Ctrl-C in its terminal), or use another DATA_DIR.",
            file=sys.stderr,
        )
        return 1
    port = os.environ.get("PORT") or "8000"
    env = dict(os.environ)
    env.setdefault("PUBLIC_BASE_URL", f"http://localhost:{port}")
    env["PORT"] = port
    server = None
    if not config.DATABASE_URL:
        from viewzenix.db.embedded import start_embedded

        env["DATABASE_URL"], server = start_embedded(config.DATA_DIR)
        print(f"Postgres: embedded, data in {config.DATA_DIR / 'pg'}")
    else:
        print("Postgres: DATABASE_URL")
    applied = apply_migrations(env["DATABASE_URL"])
    print(f"Migrations: {len(applied)} applied now")
    demo = _demo_config(load_config(env), env)

    children = {
        "web": subprocess.Popen(  # noqa: S603 - fixed argv
            [
                sys.executable,
                "-m",
                "gunicorn",
                "wsgi:app",
                "--config",
                "gunicorn.conf.py",
                "--control-socket",
                str(config.DATA_DIR / "gunicorn.ctl"),
            ],
            env=env,
            cwd=PROJECT_ROOT,
        ),
        "worker": subprocess.Popen([sys.executable, "-m", "viewzenix.worker"], env=env, cwd=PROJECT_ROOT),
    }
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    base = f"http://localhost:{port}"
    if _wait_healthy(f"{base}/healthz"):
        signin_code = _flask(env, "signin-code", DEMO_EMAIL) if not config.SUPABASE_URL else None
        dashboard = f"{base}/signin#code={signin_code}" if signin_code else f"{base}/"
        _say(
            "\n".join(
                [
                    "",
                    "Viewzenix is running (Ctrl-C stops everything).",
                    f"  Dashboard:    {dashboard}",
                    *(
                        ["                (a one-time sign-in link for " + DEMO_EMAIL + ")"]
                        if signin_code
                        else []
                    ),
                    f"  Webhook URL (paste into TradingView): {demo['webhook_url']}",
                    f"  API docs:     {base}/api/docs   (OpenAPI: {base}/api/openapi.json)",
                    f"  Local access token for {DEMO_EMAIL}: {demo['access_token']}",
                    "  Try:",
                    f"    curl -s -X POST {demo['webhook_url']} -H 'Content-Type: application/json' "
                    '-d \'{"ticker": "AAPL", "action": "buy", "quantity": 10, "price": 190.5}\'',
                    f"    curl -s {base}/api/orders -H 'Authorization: Bearer <token above>'",
                    "",
                    "",
                ]
            )
        )
    code = 0
    while not stopping:
        for name, proc in children.items():
            if proc.poll() is not None:
                print(f"{name} exited with code {proc.returncode}; stopping.", file=sys.stderr)
                stopping, code = True, 1
        time.sleep(0.2)
    for proc in children.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in children.values():
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
    if server is not None:
        server.cleanup()
    print("Stopped.")
    return code


if __name__ == "__main__":
    sys.exit(main())
