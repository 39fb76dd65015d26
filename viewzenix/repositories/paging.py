"""One paginated SELECT for the list endpoints: filters, newest first, page and total."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, LiteralString

from psycopg import sql

from viewzenix.db import Connection


def select_page(
    conn: Connection,
    *,
    table: LiteralString,
    columns: LiteralString = "*",
    equals: Mapping[str, Any],
    conditions: Sequence[tuple[LiteralString, Mapping[str, Any]]] = (),
    order_by: LiteralString = "created_at desc, id",
    limit: int,
    offset: int,
) -> tuple[list[dict[str, Any]], int]:
    """Return ``(rows, total)`` of ``public.<table>`` rows visible on ``conn``.

    ``equals``: column → value, each a ``column = value`` filter; None values are skipped.
    ``conditions``: extra SQL fragments with their named parameters (``"received_at >=
    %(since)s", {"since": ...}``). ``total`` counts every matching row, not only this page.
    """
    where: list[sql.Composable] = []
    params: dict[str, Any] = {"limit": limit, "offset": offset}
    for column, value in equals.items():
        if value is not None:
            where.append(sql.SQL("{} = {}").format(sql.Identifier(column), sql.Placeholder(column)))
            params[column] = value
    for fragment, values in conditions:
        where.append(sql.SQL(fragment))
        params.update(values)
    clause = sql.SQL(" and ").join(where) if where else sql.SQL("true")
    source = sql.SQL("from public.{} where {}").format(sql.Identifier(table), clause)
    rows = conn.execute(
        sql.SQL(
            "select {}, count(*) over () as total_count {} order by {} limit %(limit)s offset %(offset)s"
        ).format(sql.SQL(columns), source, sql.SQL(order_by)),
        params,
    ).fetchall()
    if rows:
        total = rows[0]["total_count"]
    else:  # an empty page (past the end) still reports the total
        total = conn.execute(sql.SQL("select count(*) as n {}").format(source), params).fetchone()["n"]
    for row in rows:
        del row["total_count"]
    return rows, total
