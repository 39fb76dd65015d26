"""Count what a connection sends, as round trips, by patching psycopg (``Wire``)."""

from __future__ import annotations

import psycopg


class Wire:
    """What a connection sends, as round trips: a pipeline block is one, any other statement one."""

    def __init__(self, monkeypatch) -> None:  # type: ignore[no-untyped-def]
        self.trips: list[list[str]] = []
        self._block: list[str] | None = None
        wire = self
        execute, exec_command = psycopg.Cursor.execute, psycopg.Connection._exec_command
        pipeline = psycopg.Connection.pipeline

        def counting(cursor, query, *a, **k):  # type: ignore[no-untyped-def]
            wire._sent(str(query))
            return execute(cursor, query, *a, **k)

        def counting_command(conn, command, *a, **k):  # type: ignore[no-untyped-def]
            wire._sent(command.decode() if isinstance(command, bytes) else str(command))
            return exec_command(conn, command, *a, **k)

        from contextlib import contextmanager

        @contextmanager
        def block(conn):  # type: ignore[no-untyped-def]
            outer = wire._block is None
            if outer:
                wire._block = []
            try:
                with pipeline(conn) as p:
                    yield p
            finally:
                if outer:
                    if wire._block:
                        wire.trips.append(wire._block)
                    wire._block = None

        monkeypatch.setattr(psycopg.Cursor, "execute", counting)
        monkeypatch.setattr(psycopg.Connection, "_exec_command", counting_command)
        monkeypatch.setattr(psycopg.Connection, "pipeline", block)

    def _sent(self, sql: str) -> None:
        first = sql.split(";")[0].strip().lower()
        if self._block is not None:
            self._block.append(first)
        else:
            self.trips.append([first])
