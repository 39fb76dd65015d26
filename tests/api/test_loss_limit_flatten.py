"""The daily loss limit's flatten (issue 17, item 3, ``flatten_on_loss_limit``): the job that finds
the session's first breach flattens the config through exit signals with source ``loss_limit``,
once; a breach whose job stopped before flattening is flattened by the scheduled task."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from test_flatten import buy, create, position, signals_of

from viewzenix.services.execution import execute_signal
from viewzenix.services.flatten import flatten_loss_limit_breaches

pytestmark = pytest.mark.db


def loss_limited(client, headers, flatten):
    return create(client, headers, daily_loss_limit="100", flatten_on_loss_limit=flatten)


def breach_rows(db, config_id):
    with db.transaction() as conn:
        return conn.execute(
            "select flatten_on_loss_limit, flattened_at from public.loss_limit_breaches where config_id = %s",
            (config_id,),
        ).fetchall()


def test_the_breaching_job_flattens_the_config_once(client, auth_headers, db, jobs):
    config = loss_limited(client, auth_headers, flatten=True)
    buy(client, config, "AAPL", 10, 100)
    buy(client, config, "MSFT", 2, 300)
    jobs()
    # AAPL at 80: 10 x -20 = -200 unrealised, past the limit of 100: the entry is denied and the
    # breach flattens both positions.
    buy(client, config, "AAPL", 1, 80)
    jobs()

    flattened = [s for s in signals_of(db, config["id"]) if s["source"] == "loss_limit"]
    assert sorted((s["ticker"], s["action"], s["status"]) for s in flattened) == [
        ("AAPL", "exit", "executed"),
        ("MSFT", "exit", "executed"),
    ]
    assert position(db, config["id"], "AAPL") == 0 and position(db, config["id"], "MSFT") == 0
    [breach] = breach_rows(db, config["id"])
    assert breach["flatten_on_loss_limit"] and breach["flattened_at"] is not None
    # Claimed: the scheduled task's sweep and a later denied entry flatten nothing again.
    assert flatten_loss_limit_breaches(db, client.application.extensions["viewzenix"].jobs) == []
    buy(client, config, "AAPL", 1, 70)
    jobs()
    assert len([s for s in signals_of(db, config["id"]) if s["source"] == "loss_limit"]) == 2


def test_without_the_setting_the_breach_denies_entries_and_keeps_positions(client, auth_headers, db, jobs):
    config = loss_limited(client, auth_headers, flatten=False)
    buy(client, config, "AAPL", 10, 100)
    jobs()
    buy(client, config, "AAPL", 1, 80)
    jobs()

    assert [s for s in signals_of(db, config["id"]) if s["source"] == "loss_limit"] == []
    assert position(db, config["id"], "AAPL") == Decimal(10)
    [breach] = breach_rows(db, config["id"])
    assert not breach["flatten_on_loss_limit"] and breach["flattened_at"] is None


def test_a_breach_left_unflattened_is_flattened_by_the_sweep(client, auth_headers, db, jobs):
    config = loss_limited(client, auth_headers, flatten=True)
    buy(client, config, "AAPL", 10, 100)
    jobs()
    # The breaching signal's job ends without its flatten (a worker stopped between the two).
    breaching = buy(client, config, "AAPL", 1, 80)
    assert execute_signal(db, uuid.UUID(breaching)) == "denied"
    [breach] = breach_rows(db, config["id"])
    assert breach["flattened_at"] is None and position(db, config["id"], "AAPL") == Decimal(10)

    job_app = client.application.extensions["viewzenix"].jobs
    [result] = flatten_loss_limit_breaches(db, job_app)
    assert (result.source, [(s.symbol, s.action, s.qty) for s in result.sent]) == (
        "loss_limit",
        [("AAPL", "exit", Decimal(10))],
    )
    assert flatten_loss_limit_breaches(db, job_app) == []
    jobs()
    assert position(db, config["id"], "AAPL") == 0
