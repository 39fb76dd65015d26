"""The outage breaker on a real pool pointed at a port where no Postgres listens."""

from __future__ import annotations

import socket

import pytest
from psycopg_pool import PoolTimeout

from viewzenix.db import Database, DatabaseDown


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again when this returns: nothing listens there


def test_once_down_transactions_fail_at_once_without_waiting_on_the_pool():
    db = Database(f"postgresql://x@127.0.0.1:{closed_port()}/x", timeout=0.3, reprobe_seconds=60).open(
        wait=False
    )
    try:
        with pytest.raises(PoolTimeout):
            with db.transaction():
                pass
        assert db.breaker.is_open
        db.pool.pop_stats()
        for _ in range(50):
            with pytest.raises(DatabaseDown):
                with db.transaction():
                    pass
        with pytest.raises(DatabaseDown):
            with db.statement():
                pass
        assert db.ping() is False
        assert db.pool.pop_stats().get("requests_num", 0) == 0  # none of the 52 waited on the pool
    finally:
        db.close()


def test_without_a_reprobe_interval_every_transaction_waits_the_pool_timeout():
    db = Database(f"postgresql://x@127.0.0.1:{closed_port()}/x", timeout=0.2).open(wait=False)
    try:
        assert db.breaker is None
        for _ in range(2):
            with pytest.raises(PoolTimeout):
                with db.transaction():
                    pass
        assert db.pool.pop_stats()["requests_num"] == 2
    finally:
        db.close()
