"""The JSON log line: every ``extra`` field code logs is emitted, none dropped by an allowlist."""

from __future__ import annotations

import ast
import json
import logging
import uuid
from decimal import Decimal
from pathlib import Path

from viewzenix.logs import JsonFormatter

PACKAGE = Path(__file__).resolve().parents[2] / "viewzenix"


def extra_keys_in_the_code() -> set[str]:
    """Every literal key of an ``extra={...}`` argument in viewzenix/."""
    keys: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.keyword) and node.arg == "extra" and isinstance(node.value, ast.Dict):
                keys |= {k.value for k in node.value.keys if isinstance(k, ast.Constant)}
    return keys


def line_of(logger_name: str, message: str, extra: dict) -> dict:
    record = logging.getLogger(logger_name).makeRecord(
        logger_name, logging.WARNING, __file__, 1, message, (), None, extra=extra
    )
    return json.loads(JsonFormatter().format(record))


def test_every_extra_field_the_code_logs_is_emitted():
    keys = extra_keys_in_the_code()
    # The fields the old allowlist dropped, among them the rate limiter's and the stream's.
    assert {"source_ip", "execution_id", "reason", "target", "webhook_id"} <= keys
    line = line_of("viewzenix.test", "all fields", {key: f"value-{key}" for key in keys})
    assert {key: line[key] for key in keys} == {key: f"value-{key}" for key in keys}


def test_values_keep_their_json_type_and_others_are_written_as_text():
    order_id = uuid.uuid4()
    line = line_of(
        "viewzenix.test",
        "typed",
        {
            "job_id": 12,
            "counts": {"jobs": 3},
            "drift_rate": 0.5,
            "order_id": order_id,
            "qty": Decimal("1.50"),
        },
    )
    assert line["job_id"] == 12
    assert line["counts"] == {"jobs": 3}
    assert line["drift_rate"] == 0.5
    assert line["order_id"] == str(order_id)
    assert line["qty"] == "1.50"
    assert line["message"] == "typed" and line["level"] == "WARNING" and line["logger"] == "viewzenix.test"


def test_the_rate_limiters_source_ip_reaches_the_json_line(app, client, caplog):
    caplog.set_level(logging.INFO)
    for _ in range(25):  # WEBHOOK_FAILED_AUTH_LIMIT 20/minute by default
        client.post(f"/webhooks/{uuid.uuid4()}/wrong-token", json={"ticker": "SPY", "action": "buy"})
    limited = [r for r in caplog.records if getattr(r, "source_ip", None)]
    assert limited, "the rate limiter logged no source_ip"
    assert json.loads(JsonFormatter().format(limited[0]))["source_ip"] == limited[0].source_ip
