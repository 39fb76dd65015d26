"""PgBouncer in transaction mode in front of the test database, started the way Postgres is.

``start_pgbouncer(database_url)`` writes a config in a temporary folder (Debian's ``pgbouncer``,
``pool_mode = transaction``, trust auth against the same server and user as ``database_url``),
starts it on a free loopback port and returns ``(url, stop)``: ``url`` reaches the same database
through PgBouncer. Transaction mode hands every transaction to whichever server connection is
free, which is what Supabase's transaction pooler (port 6543) does: a prepared statement, a
LISTEN, a session advisory lock or a plain SET does not follow the client to its next transaction.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


def available() -> bool:
    """Return True when Debian's pgbouncer binary is installed."""
    return os.path.exists(PGBOUNCER)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_pgbouncer(database_url: str, *, pool_size: int = 8) -> tuple[str, Callable[[], None]]:
    """Start PgBouncer (transaction mode) in front of ``database_url``; return ``(url, stop)``.

    Its config, log and pid file live in a fresh temporary folder (under /tmp: readable by the
    user PgBouncer runs as), removed by ``stop``. Raises RuntimeError with PgBouncer's log when
    it does not answer within 10 s.
    """
    params = conninfo_to_dict(database_url)
    host = params.get("host") or "127.0.0.1"
    user = params.get("user") or "postgres"
    dbname = params.get("dbname") or user
    server = {"host": host, "port": params.get("port") or "5432", "dbname": dbname, "user": user}
    if params.get("password"):
        server["password"] = params["password"]
    port = _free_port()
    folder = Path(tempfile.mkdtemp(prefix="viewzenix-pgbouncer-"))
    (folder / "userlist.txt").write_text(f'"{user}" ""\n')
    server_line = " ".join(f"{k}={v}" for k, v in server.items())
    (folder / "pgbouncer.ini").write_text(
        f"""[databases]
{dbname} = {server_line}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {folder / "userlist.txt"}
pool_mode = transaction
default_pool_size = {pool_size}
max_client_conn = 500
ignore_startup_parameters = extra_float_digits
logfile = {folder / "pgbouncer.log"}
pidfile = {folder / "pgbouncer.pid"}
"""
    )
    command = [PGBOUNCER, "-q", str(folder / "pgbouncer.ini")]
    if os.geteuid() == 0:
        # PgBouncer refuses to run as root: run it as the owner of the server's socket folder
        # (the embedded server's user), else as nobody (a TCP server).
        owner = pwd.getpwuid(Path(host).stat().st_uid).pw_name if host.startswith("/") else "nobody"
        shutil.chown(folder, owner)
        for path in folder.iterdir():
            shutil.chown(path, owner)
        command[1:1] = ["-u", owner]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = make_conninfo(host="127.0.0.1", port=port, dbname=dbname, user=user, connect_timeout=2)

    def stop() -> None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr:
            process.stderr.close()
        shutil.rmtree(folder, ignore_errors=True)

    deadline = time.monotonic() + 10
    while True:
        try:
            with psycopg.connect(url, prepare_threshold=None) as conn:
                conn.execute("select 1")
            return url, stop
        except psycopg.OperationalError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                stderr = process.stderr.read().decode() if process.stderr else ""
                log = folder / "pgbouncer.log"
                logged = log.read_text() if log.exists() else ""
                stop()
                raise RuntimeError(f"pgbouncer did not start: {stderr}\n{logged}") from None
            time.sleep(0.1)
