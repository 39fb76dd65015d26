"""``make run``: one command that brings the whole app up on this machine.

Starts Postgres (embedded under ``DATA_DIR/pg`` unless ``DATABASE_URL`` is set), applies the
migrations, creates a local user and a demo webhook config (kept across runs), then starts the
Procfile's ``web`` (gunicorn), ``worker`` (``WORKER_PROCESSES`` of them, default one per CPU, at
most 4) and ``streams`` processes and prints the dashboard address (with a one-time sign-in code
in local mode) first, then the webhook URL, a local access token and the API docs address, in
one write. Ctrl-C (or SIGTERM) stops the children, then Postgres.

One run per data folder: a second ``make run`` in the same checkout finds ``DATA_DIR/run.lock``
held and stops at once. gunicorn's control socket lives in ``DATA_DIR`` too, not in
``$XDG_RUNTIME_DIR`` or ``~/.gunicorn``. The demo config's token is saved (``demo_config.json``,
mode 0600), not its URL, so the URL printed always carries the current PORT / PUBLIC_BASE_URL.

A worker that dies (a crash, out of memory, a kill) is started again, with a message saying so
(the ``streams`` process, Alpaca's trade_updates listener, likewise);
one that keeps dying soon after it starts waits longer each time (1, 2, 4 … up to 30 s), so a
worker that cannot start does not spin. Its jobs are safe meanwhile: the next worker's
stalled-job recovery retries what the dead one left running. The web process (gunicorn, itself a
supervisor of its workers) is not restarted: if it exits, everything stops.
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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

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


@dataclass
class Child:
    """One supervised process: its name, command line, and whether it is started again when it dies."""

    name: str
    argv: Sequence[str]
    restart: bool = False
    env: Mapping[str, str] = field(default_factory=dict)  # over ``Children.env``, for this child only
    stop_timeout: float = 15.0
    proc: subprocess.Popen | None = None
    started_at: float = 0.0
    quick_deaths: int = 0  # deaths in a row, each soon after its start
    restart_at: float | None = None
    restarts: int = 0


def worker_children(config: Config, *, stop_timeout: float) -> list[Child]:
    """Return the job workers ``make run`` starts: ``WORKER_PROCESSES`` processes (default: one
    per CPU, at most 4), each ``python -m viewzenix.worker`` running ``WORKER_CONCURRENCY`` jobs
    at once, restarted when they die.

    Named ``worker`` when there is one, else ``worker-1`` … ``worker-N`` (the supervisor's
    messages). With ``WORKER_METRICS_PORT`` set, worker *i* serves its metrics on that port + *i*
    − 1, since two processes cannot listen on one port.
    """
    count = config.WORKER_PROCESSES
    children = []
    for number in range(1, count + 1):
        env = {}
        if config.WORKER_METRICS_PORT and count > 1:
            env["WORKER_METRICS_PORT"] = str(config.WORKER_METRICS_PORT + number - 1)
        children.append(
            Child(
                "worker" if count == 1 else f"worker-{number}",
                [sys.executable, "-m", "viewzenix.worker"],
                restart=True,
                env=env,
                stop_timeout=stop_timeout,
            )
        )
    return children


@dataclass
class Children:
    """Start child processes, start a dying restartable one again with back-off, stop them all.

    ``poll()`` is called in a loop; a child marked ``restart`` that exited is started again after
    ``backoff_base`` × 2^(deaths in a row − 1) seconds (at most ``backoff_max``); a death more than
    ``stable_after`` seconds after its start counts as the first in a row again. Every death and
    restart is reported on ``out``. A child not marked ``restart`` that exits ends the run.
    """

    children: list[Child]
    env: dict[str, str]
    cwd: Path
    backoff_base: float = 1.0
    backoff_max: float = 30.0
    stable_after: float = 30.0
    clock: Callable[[], float] = time.monotonic
    out: TextIO = field(default_factory=lambda: sys.stderr)

    def start(self) -> None:
        """Start every child."""
        for child in self.children:
            self._spawn(child)

    def _spawn(self, child: Child) -> None:
        env = {**self.env, **child.env}
        child.proc = subprocess.Popen(list(child.argv), env=env, cwd=self.cwd)  # noqa: S603
        child.started_at = self.clock()
        child.restart_at = None

    def poll(self) -> str | None:
        """Handle exits and due restarts; return why the run must end (a child not restarted), or None."""
        now = self.clock()
        for child in self.children:
            if child.restart_at is not None:
                if now >= child.restart_at:
                    child.restarts += 1
                    self._spawn(child)
                    self._say(f"{child.name} restarted (pid {child.proc.pid}, restart {child.restarts})")
                continue
            if child.proc is None or child.proc.poll() is None:
                continue
            code = child.proc.returncode
            if not child.restart:
                return f"{child.name} exited with code {code}"
            if now - child.started_at > self.stable_after:
                child.quick_deaths = 0
            child.quick_deaths += 1
            delay = min(self.backoff_max, self.backoff_base * 2 ** (child.quick_deaths - 1))
            again = f" ({child.quick_deaths} times in a row)" if child.quick_deaths > 1 else ""
            self._say(f"{child.name} exited with code {code}{again}; restarting it in {delay:g} s")
            child.restart_at = now + delay
        return None

    def stop(self) -> None:
        """SIGTERM every running child, wait for each up to its ``stop_timeout`` (counted from the
        SIGTERM: they stop together, so N workers take one timeout, not N), then SIGKILL it."""
        running = [c for c in self.children if c.proc is not None and c.proc.poll() is None]
        for child in running:
            child.proc.send_signal(signal.SIGTERM)
        signaled = time.monotonic()
        for child in running:
            try:
                child.proc.wait(timeout=max(0.0, signaled + child.stop_timeout - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._say(f"{child.name} did not stop within {child.stop_timeout:g} s; killing it")
                child.proc.kill()
                child.proc.wait()

    def _say(self, message: str) -> None:
        print(message, file=self.out, flush=True)


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
    children_config = load_config(env)  # what the children will read (PORT, DATABASE_URL set above)
    demo = _demo_config(children_config, env)

    worker_stop = children_config.WORKER_SHUTDOWN_TIMEOUT_SECONDS + 5.0
    children = Children(
        [
            Child(
                "web",
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
            ),
            *worker_children(children_config, stop_timeout=worker_stop),
            # Alpaca's trade_updates listener (one process: one stream connection per account).
            Child("streams", [sys.executable, "-m", "viewzenix.streams"], restart=True),
        ],
        env=env,
        cwd=PROJECT_ROOT,
    )
    children.start()
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
        reason = children.poll()
        if reason is not None:
            print(f"{reason}; stopping.", file=sys.stderr)
            stopping, code = True, 1
        time.sleep(0.2)
    children.stop()
    if server is not None:
        server.cleanup()
    print("Stopped.")
    return code


if __name__ == "__main__":
    sys.exit(main())
