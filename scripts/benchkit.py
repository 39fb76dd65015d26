"""What the benchmark scripts share: a scratch database and one percentile.

``fresh_database(name, data_dir)`` drops and recreates database ``name`` on the server in
``DATABASE_URL``, or else on an embedded Postgres kept under ``data_dir``, applies every
migration and returns ``(url, server_handle)`` (keep the handle alive while the database is used;
it is None with DATABASE_URL). ``percentile(values, q)``: nearest rank, ``q`` in 0–100.
``process_cpu_seconds(pid)`` and ``postgres_cpu_seconds()``: CPU seconds used so far (Linux /proc).

Imported by the scripts as ``benchkit`` (``python scripts/<bench>.py`` puts ``scripts/`` first on
``sys.path``). ``fresh_database`` needs the project root on ``sys.path`` (the scripts that use it
put it there); ``percentile`` needs nothing.
"""

from __future__ import annotations

import math
import os
from pathlib import Path


def fresh_database(name: str, data_dir: Path) -> tuple[str, object | None]:
    """Return ``(url, handle)`` of a new, migrated database ``name`` (see module doc)."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    from viewzenix.db.migrate import apply_migrations

    server_url, handle = os.environ.get("DATABASE_URL"), None
    if not server_url:
        from viewzenix.db.embedded import start_embedded

        server_url, handle = start_embedded(data_dir)
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'drop database if exists "{name}" with (force)')
        admin.execute(f'create database "{name}"')
    url = make_conninfo(**{**conninfo_to_dict(server_url), "dbname": name})
    apply_migrations(url)
    return url, handle


def percentile(values: list[float], q: float) -> float:
    """Return the ``q``-th percentile (0-100, nearest rank) of ``values``; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[rank]


def process_cpu_seconds(pid: int) -> float:
    """Return the CPU seconds (user + system, all threads) process ``pid`` used so far; 0 when gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu_seconds() -> float | None:
    """Return the CPU seconds used so far by every process named ``postgres*`` on this machine.

    None when there is none (Postgres on another host). A process that ended since an earlier
    call no longer counts, so a difference of two calls leans low.
    """
    total, found = 0.0, False
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if not comm.read_text().startswith("postgres"):
                continue
        except OSError:
            continue
        found = True
        total += process_cpu_seconds(int(comm.parent.name))
    return total if found else None
