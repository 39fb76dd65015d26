"""One streams process per database: a second one waits as a standby and takes over (real Postgres).

Alpaca allows one trade_updates connection per account, so two ``streams`` processes would fight
over every account. Each process runs its listeners only while it holds a session advisory lock.
The managers here are ``StreamManager``s with no configs to stream (nothing to fake): what is
checked is which process runs one.
"""

from __future__ import annotations

import asyncio
import logging

from viewzenix.streams import StreamManager, run_exclusive


def test_a_second_streams_process_waits_and_takes_over_when_the_first_stops(db, database_url, caplog):
    caplog.set_level(logging.INFO, logger="viewzenix.streams")
    started: list[str] = []

    def factory(name: str):
        def build() -> StreamManager:
            started.append(name)
            return StreamManager(db, configs=lambda _db: [], refresh_seconds=0.05)

        return build

    async def scenario() -> None:
        first_stop, second_stop = asyncio.Event(), asyncio.Event()
        first = asyncio.create_task(run_exclusive(database_url, factory("first"), first_stop, 0.1))
        await asyncio.sleep(0.5)
        second = asyncio.create_task(run_exclusive(database_url, factory("second"), second_stop, 0.1))
        await asyncio.sleep(0.8)
        assert started == ["first"]  # the second waits: the lock is held
        first_stop.set()
        await asyncio.wait_for(first, 10)
        for _ in range(100):
            if started == ["first", "second"]:
                break
            await asyncio.sleep(0.05)
        assert started == ["first", "second"]  # the standby took over
        second_stop.set()
        await asyncio.wait_for(second, 10)

    asyncio.run(scenario())
    busy = [r for r in caplog.records if getattr(r, "action", None) == "streams_lock_busy"]
    assert len(busy) == 1  # said once, not every retry
    assert "another streams process is running" in busy[0].getMessage()
    with db.transaction() as conn:  # both sessions ended: the lock is free
        assert not conn.execute(
            "select count(*) as n from pg_locks where locktype = 'advisory' and granted"
        ).fetchone()["n"]
