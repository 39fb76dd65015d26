"""``make run``: one command that brings the whole app up on this machine.

Starts Postgres (embedded under ``DATA_DIR/pg`` unless ``DATABASE_URL`` is set), applies the
migrations, creates a local user and a demo webhook config (kept across runs), then starts the
Procfile's ``web`` (gunicorn) and ``worker`` processes and prints the webhook URL, a local access
token and the API docs address. Ctrl-C (or SIGTERM) stops the children, then Postgres.
"""

from __future__ import annotations

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


def _demo_config(config: Config, env: dict[str, str]) -> dict[str, str]:
    """Return the demo config's ids, URL and a fresh token; reuse the one saved by an earlier run."""
    saved = config.DATA_DIR / "demo_config.json"
    if saved.exists():
        data = json.loads(saved.read_text())
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
    saved.write_text(json.dumps({k: data[k] for k in ("config_id", "webhook_url")}))
    saved.chmod(0o600)
    return data


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
        "web": subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "wsgi:app", "--config", "gunicorn.conf.py"],
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
        print(
            "\n".join(
                [
                    "",
                    "Viewzenix is running (Ctrl-C stops everything).",
                    f"  Webhook URL (paste into TradingView): {demo['webhook_url']}",
                    f"  API docs:     {base}/api/docs   (OpenAPI: {base}/api/openapi.json)",
                    f"  Local access token for {DEMO_EMAIL}:",
                    f"    {demo['access_token']}",
                    "  Try:",
                    f"    curl -s -X POST {demo['webhook_url']} -H 'Content-Type: application/json' "
                    '-d \'{"ticker": "AAPL", "action": "buy", "quantity": 10, "price": 190.5}\'',
                    f"    curl -s {base}/api/orders -H 'Authorization: Bearer <token above>'",
                    "",
                ]
            ),
            flush=True,
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
