"""Time signal execution in process: N alternating buy/exit signals, one after another.

    .venv/bin/python scripts/bench_execution.py [--signals 200]

One job at a time on one config and symbol, with the paper broker: what one job costs (ours
and the paper broker's transactions), without HTTP or the queue. Uses DATABASE_URL's server when
set, else an embedded Postgres under .data/bench-execution; a fresh database each run. Prints
milliseconds per job and SQL statements per job.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from benchkit import fresh_database as fresh_scratch_database  # noqa: E402

from viewzenix.db import Database  # noqa: E402
from viewzenix.domain.model import Action, Sentiment, Signal  # noqa: E402
from viewzenix.domain.parsing import signal_to_dict  # noqa: E402
from viewzenix.repositories import signals as signals_repo  # noqa: E402
from viewzenix.repositories import webhook_configs as configs_repo  # noqa: E402
from viewzenix.services.execution import execute_signal  # noqa: E402

DB_NAME = "viewzenix_bench_execution"


def fresh_database() -> tuple[str, object]:
    url, handle = fresh_scratch_database(DB_NAME, ROOT / ".data" / "bench-execution")
    return url, handle


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signals", type=int, default=200)
    args = parser.parse_args()
    url, _handle = fresh_database()
    db = Database(url, min_size=2, max_size=4).open()
    user_id = uuid.uuid4()
    with db.transaction() as conn:
        configs_repo.ensure_user(conn, user_id, "bench@example.test")
        config = configs_repo.insert(
            conn, user_id=user_id, token_hash=os.urandom(32), token_hint="b", values={"name": "bench"}
        )
    signal_ids = []
    for i in range(args.signals):
        buy = i % 2 == 0
        signal = Signal(
            ticker="AAPL",
            action=Action.BUY if buy else Action.SELL,
            sentiment=Sentiment.LONG if buy else Sentiment.FLAT,
            quantity=Decimal(10),
            signal_price=Decimal(100 + i % 7),
        )
        signal_id, data = uuid.uuid4(), signal_to_dict(signal)
        with db.transaction() as conn:
            signals_repo.insert(
                conn,
                signal_id=signal_id,
                user_id=user_id,
                config_id=config["id"],
                status="accepted",
                raw_body="{}",
                content_type="application/json",
                source_ip=None,
                signal=data,
                ticker="AAPL",
                action=data["action"],
            )
        signal_ids.append(signal_id)

    statements = 0
    execute = psycopg.Connection.execute

    def counting(self, *a, **k):  # type: ignore[no-untyped-def]
        nonlocal statements
        statements += 1
        return execute(self, *a, **k)

    psycopg.Connection.execute = counting  # type: ignore[method-assign]
    started = time.perf_counter()
    statuses: dict[str, int] = {}
    for signal_id in signal_ids:
        status = execute_signal(db, signal_id)
        statuses[status] = statuses.get(status, 0) + 1
    elapsed = time.perf_counter() - started
    psycopg.Connection.execute = execute  # type: ignore[method-assign]
    db.close()
    print(
        f"{args.signals} jobs in {elapsed:.2f} s: {elapsed / args.signals * 1000:.1f} ms per job, "
        f"{statements / args.signals:.1f} statements per job (plus BEGIN/COMMIT), {statuses}"
    )


if __name__ == "__main__":
    main()
