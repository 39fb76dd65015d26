"""Bring up a throwaway Viewzenix stack for a script: Postgres, migrations, gunicorn web, worker.

Used by ``scripts/demo.py`` and ``scripts/bench.py``::

    with running_stack("demo", settings={...}) as stack:
        requests.post(stack.webhook_url, json={...})

What it does, in order:

1. Postgres: the embedded server under ``.data/<name>/pg`` (``viewzenix.db.embedded``), or the
   server named by ``DATABASE_URL`` when that is set. Either way the script gets its own database,
   ``viewzenix_<name>``, dropped and created afresh, so runs never see each other's rows.
2. ``viewzenix.db.migrate.apply_migrations`` on that database.
3. A free loopback port; ``flask --app wsgi demo-config EMAIL --settings JSON`` creates the local
   user and a webhook config (its URL, token and an access token are on the returned ``Stack``).
4. ``gunicorn wsgi:app --config gunicorn.conf.py`` bound to ``127.0.0.1:<port>`` and
   ``python -m viewzenix.worker``, with ``PORT``, ``DATABASE_URL``, ``PUBLIC_BASE_URL``,
   ``DATA_DIR`` and (optionally) ``WEB_CONCURRENCY`` set; then waits for ``GET /healthz`` = 200.

All children write to one log file, ``.data/<name>/stack.log``; its path is printed when
something fails. On exit the children get SIGTERM, then SIGKILL after a timeout, and the embedded
Postgres is stopped.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from config import gunicorn_workers  # noqa: E402  (gunicorn.conf.py's count, for an env)

DEFAULT_EMAIL = "demo@viewzenix.local"


class StackError(RuntimeError):
    """The stack could not start (the message names the step and the log file)."""


def free_port() -> int:
    """Return a TCP port free on 127.0.0.1 right now (another process may still take it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _database_url(base_url: str, dbname: str) -> str:
    import psycopg.conninfo

    return psycopg.conninfo.make_conninfo(base_url, dbname=dbname)


def _recreate_database(server_url: str, dbname: str) -> str:
    """Drop and create ``dbname`` on the server of ``server_url``; return its URL."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(dbname)))
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(dbname)))
    return _database_url(server_url, dbname)


def wait_healthy(url: str, *, timeout: float, children: Mapping[str, subprocess.Popen]) -> None:
    """Poll ``url`` until it answers 200. Raises StackError on timeout or when a child exits."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        for name, proc in children.items():
            if proc.poll() is not None:
                raise StackError(f"{name} exited with code {proc.returncode} while starting")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
                last = f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.2)
    raise StackError(f"{url} not healthy after {timeout:.0f} s ({last})")


@dataclass
class Stack:
    """A running stack: addresses, the environment its processes share, and its children."""

    name: str
    data_dir: Path
    log_path: Path
    database_url: str
    port: int
    env: dict[str, str]
    config_id: str = ""
    webhook_url: str = ""
    access_token: str = ""
    children: dict[str, subprocess.Popen] = field(default_factory=dict)
    _log: IO[bytes] | None = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>`` of the web process."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def web_workers(self) -> int:
        """The gunicorn worker count the web process runs with."""
        return gunicorn_workers(self.env)

    def create_config(
        self,
        settings: Mapping[str, Any] | None = None,
        *,
        email: str = DEFAULT_EMAIL,
        name: str | None = None,
    ) -> dict[str, str]:
        """Create a webhook config through ``flask demo-config``.

        Returns ``{"config_id", "webhook_url", "access_token"}``. Raises StackError.
        """
        argv = [sys.executable, "-m", "flask", "--app", "wsgi", "demo-config", email]
        argv += ["--settings", json.dumps(dict(settings or {}))]
        if name:
            argv += ["--name", name]
        out = subprocess.run(
            argv, env=self.env, cwd=PROJECT_ROOT, capture_output=True, text=True, check=False
        )
        if out.returncode != 0:
            raise StackError(f"flask demo-config failed ({out.returncode}):\n{out.stderr.strip()}")
        return json.loads(out.stdout.strip().splitlines()[-1])

    def spawn(self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None) -> subprocess.Popen:
        """Start a child process (output to the stack log), stopped with the stack."""
        assert self._log is not None
        self._log.write(f"\n===== {name}: {' '.join(argv)}\n".encode())
        self._log.flush()
        proc = subprocess.Popen(
            list(argv),
            env={**self.env, **(env or {})},
            cwd=PROJECT_ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        self.children[name] = proc
        return proc

    def spawn_gunicorn(
        self,
        name: str,
        app: str,
        port: int,
        env: Mapping[str, str] | None = None,
        extra_args: Sequence[str] = (),
    ) -> subprocess.Popen:
        """Start gunicorn serving ``app`` with ``gunicorn.conf.py``, bound to 127.0.0.1:``port``.

        ``--bind`` on the command line overrides the config file's ``0.0.0.0:$PORT``.
        """
        argv = [sys.executable, "-m", "gunicorn", app, "--config", "gunicorn.conf.py"]
        argv += ["--bind", f"127.0.0.1:{port}", *extra_args]
        return self.spawn(name, argv, {"PORT": str(port), **(env or {})})

    def start_worker(self, name: str = "worker") -> subprocess.Popen:
        """Start ``python -m viewzenix.worker`` (a job worker process) as child ``name``."""
        return self.spawn(name, [sys.executable, "-m", "viewzenix.worker"])

    def stop(self, name: str, timeout: float = 15.0) -> None:
        """Stop one child: SIGTERM, then SIGKILL after ``timeout`` seconds."""
        proc = self.children.pop(name, None)
        if proc is not None:
            _terminate([proc], timeout)

    def check_alive(self) -> None:
        """Raise StackError if a child has exited."""
        for name, proc in self.children.items():
            if proc.poll() is not None:
                raise StackError(f"{name} exited with code {proc.returncode}; see {self.log_path}")

    def log_tail(self, lines: int = 40) -> str:
        """Return the last ``lines`` lines of the stack log."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def _terminate(procs: Sequence[subprocess.Popen], timeout: float) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def running_stack(
    name: str,
    *,
    settings: Mapping[str, Any] | None = None,
    email: str = DEFAULT_EMAIL,
    web_concurrency: int | None = None,
    worker: bool = True,
    extra_env: Mapping[str, str] | None = None,
    health_timeout: float = 60.0,
    stop_timeout: float = 15.0,
    port: int | None = None,
) -> Iterator[Stack]:
    """Start Postgres, migrations, a demo config, gunicorn and the worker; yield the ``Stack``.

    ``name``: the data folder (``.data/<name>``) and database (``viewzenix_<name>``) suffix.
    ``settings``: the webhook config's trading settings (``demo-config --settings``).
    ``web_concurrency``: gunicorn workers (default: ``gunicorn.conf.py``'s ``2 x CPUs + 1``).
    ``worker``: start the job worker too (``Stack.start_worker`` starts it later).
    ``port``: the web process's port (default: a free one).
    Raises StackError (printing the log path and its tail) when a step fails.
    """
    from viewzenix.db.migrate import apply_migrations

    data_dir = PROJECT_ROOT / ".data" / name
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "stack.log"
    server = None
    stack: Stack | None = None
    try:
        try:
            server_url = os.environ.get("DATABASE_URL")
            if not server_url:
                from viewzenix.db.embedded import start_embedded

                server_url, server = start_embedded(data_dir)
            database_url = _recreate_database(server_url, f"viewzenix_{name}")
            apply_migrations(database_url)
            port = port or free_port()
            env = {
                **os.environ,
                "PORT": str(port),
                "DATABASE_URL": database_url,
                "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
                "DATA_DIR": str(data_dir),
                "PYTHONUNBUFFERED": "1",
                **(extra_env or {}),
            }
            if web_concurrency:
                env["WEB_CONCURRENCY"] = str(web_concurrency)
            stack = Stack(
                name=name,
                data_dir=data_dir,
                log_path=log_path,
                database_url=database_url,
                port=port,
                env=env,
            )
            stack._log = log_path.open("wb")
            demo = stack.create_config(settings, email=email)
            stack.config_id = demo["config_id"]
            stack.webhook_url = demo["webhook_url"]
            stack.access_token = demo["access_token"]
            stack.spawn_gunicorn("web", "wsgi:app", port)
            if worker:
                stack.start_worker()
            wait_healthy(f"{stack.base_url}/healthz", timeout=health_timeout, children=stack.children)
        except Exception as exc:
            print(f"\nstack {name!r} failed to start: {exc}", file=sys.stderr)
            if stack is not None:
                print(f"--- last lines of {log_path} ---\n{stack.log_tail()}", file=sys.stderr)
            print(f"full log: {log_path}", file=sys.stderr)
            raise StackError(f"stack {name!r} failed to start: {exc} (log: {log_path})") from exc
        try:
            yield stack
        except Exception:
            print(f"(server and worker log: {log_path})", file=sys.stderr)
            raise
    finally:
        if stack is not None:
            _terminate(list(stack.children.values()), stop_timeout)
            stack.children.clear()
            if stack._log is not None:
                stack._log.close()
        if server is not None:
            server.cleanup()
