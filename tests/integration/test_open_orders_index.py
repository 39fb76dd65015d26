"""Open orders are read through the partial index, also once psycopg has prepared the statement.

psycopg prepares a statement from its fifth use on a session connection (the worker's), and
Postgres then may plan it generically, without the parameters' values. A partial index
(``orders_open_idx ... where status in (<open statuses>)``) is only usable when the planner can
prove the query's condition implies the index's; ``status = any($1)`` does not, and the generic
plan then walks every order the config ever had: a signal job, the order sync and a flatten got
slower with each order of the config's history. The statements carry the list as literals
(``orders.status_list``). Each test prepares the statement as psycopg would, forces the generic
plan, and reads the plan.
"""

from __future__ import annotations

import json
import re
import uuid

import pytest

from viewzenix.repositories import books, controls, execution_reads
from viewzenix.repositories import orders as orders_repo

pytestmark = pytest.mark.db

PARTIAL_INDEX = "orders_open_idx"


def _generic_plan(conn, query: str, params: dict) -> str:  # type: ignore[no-untyped-def]
    """EXPLAIN ``query`` (psycopg's ``%(name)s`` placeholders), prepared and planned generically."""
    names: list[str] = []

    def numbered(match: re.Match[str]) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    sql = re.sub(r"%\((\w+)\)s", numbered, query)
    name = f"q_{uuid.uuid4().hex}"
    types = ", ".join(_type(params[n]) for n in names)
    conn.execute(f"prepare {name}({types}) as {sql}")
    conn.execute("set local plan_cache_mode = force_generic_plan")
    args = ", ".join(_literal(params[n]) for n in names)
    plan = conn.execute(f"explain (format json) execute {name}({args})").fetchone()
    conn.execute(f"deallocate {name}")
    return json.dumps(plan)


def _type(value: object) -> str:
    if isinstance(value, uuid.UUID):
        return "uuid"
    return "text" if value is None or isinstance(value, str) else "interval"


def _literal(value: object) -> str:
    return "null" if value is None else f"'{value}'"


@pytest.mark.parametrize(
    ("name", "query", "params"),
    [
        ("orders.open_orders", orders_repo.OPEN_ORDERS, {"config_id": uuid.uuid4(), "symbol": None}),
        (
            "orders.open_orders (a symbol)",
            orders_repo.OPEN_ORDERS,
            {"config_id": uuid.uuid4(), "symbol": "AAPL"},
        ),
        (
            "execution_reads.for_execution",
            execution_reads.OPEN_ORDERS_OF_SIGNAL_CONFIG,
            {"signal_id": uuid.uuid4()},
        ),
        (
            "execution_reads.for_execution (has_open_orders)",
            execution_reads.SIGNAL_FOR_EXECUTION,
            {"signal_id": uuid.uuid4()},
        ),
        ("books.open_acknowledged", books.OPEN_ACKNOWLEDGED, {"config_id": uuid.uuid4()}),
        ("controls.closing", controls.CLOSING, {"config_id": uuid.uuid4()}),
    ],
)
def test_the_generic_plan_of_an_open_orders_read_uses_the_partial_index(db, name, query, params):
    with db.transaction() as conn:
        plan = _generic_plan(conn, query, params)
    assert PARTIAL_INDEX in plan, f"{name} no longer reads open orders through {PARTIAL_INDEX}: {plan}"


def test_the_literal_list_is_the_open_statuses_and_the_partial_index_predicate(db):
    # The list in the statements and the index's predicate name exactly the same statuses: an
    # index whose predicate drifted from OrderStatus.is_open (one status more or less) fails here.
    assert orders_repo.OPEN_STATUS_LIST == (
        "('pending_new', 'held', 'submitted', 'accepted', 'partially_filled')"
    )
    with db.transaction() as conn:
        definition = conn.execute(
            "select pg_get_indexdef(%s::regclass) as d", (f"public.{PARTIAL_INDEX}",)
        ).fetchone()["d"]
    predicate = definition.split(" WHERE ", 1)[1]
    assert set(re.findall(r"'(\w+)'", predicate)) == set(orders_repo.OPEN_STATUSES)


def test_a_status_list_takes_only_status_words():
    with pytest.raises(ValueError, match="not a status"):
        orders_repo.status_list(["filled', 'x"])
