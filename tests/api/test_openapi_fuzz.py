"""The REST API under schemathesis: generated requests for every operation of /api/openapi.json,
sent with a real user's token, must never get a 5xx nor an answer that violates the document
(schemathesis's checks: server errors, status codes, content types, response schemas, headers).
Left out: ``positive_data_acceptance`` — Decimal inputs are documented as decimal strings, and
their bounds (enforced, 422) cannot be written in a string schema, so a schema-valid 10^20 is
rightly refused.

Bounded (``MAX_EXAMPLES`` per operation, no example database) so the suite stays fast;
``schemathesis run`` with more examples is the deeper check (docs/guarantees.md). Operations that would reach
Alpaca over the network (``alpaca-credentials``) are left out: their fakes have their own tests.
Every operation runs even when one fails, so the assertion lists them all.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import (
    ignored_auth,
    negative_data_rejection,
    positive_data_acceptance,
)

pytestmark = pytest.mark.db
MAX_EXAMPLES = 10


def test_no_server_error_and_no_schema_violation(app, auth_headers):
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app).exclude(path_regex="alpaca-credentials")
    failures = {}
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case):
            case.call_and_validate(headers=auth_headers, excluded_checks=[positive_data_acceptance])

        try:
            run()
        except (Exception, BaseExceptionGroup) as error:  # every operation's failure is reported
            failures[operation.label] = f"{type(error).__name__}: {str(error)[:2000]}"
    assert operations > 10
    assert failures == {}, "\n\n".join(f"{k}: {v}" for k, v in failures.items())


def test_stateful_sequences_keep_to_the_document(app, auth_headers):
    """Sequences of calls linked through their responses (schemathesis's stateful phase)."""
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app).exclude(path_regex="alpaca-credentials")
    base = schema.as_state_machine()

    class APIWorkflow(base):  # type: ignore[misc, valid-type]
        def get_call_kwargs(self, case):
            return {"headers": auth_headers}

        def validate_response(self, response, case, **kwargs):
            # ignored_auth replays calls without the token, but get_call_kwargs adds it back;
            # the stateless test above runs that check. negative_data_rejection too: a negative
            # case here may be invalid only by a dropped Authorization header (added back) or by
            # query parameters the document does not name (ignored by design, webargs' EXCLUDE
            # for the query), so its 200 is right; it failed about one run in five.
            excluded = [positive_data_acceptance, ignored_auth, negative_data_rejection]
            case.validate_response(response, excluded_checks=excluded)

    APIWorkflow.run(
        settings=settings(
            max_examples=MAX_EXAMPLES,
            stateful_step_count=5,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
    )


def test_a_page_past_the_end_is_an_empty_page(client, auth_headers):
    for path in ("/api/signals", "/api/orders"):
        response = client.get(f"{path}?page={10**17}&page_size=100", headers=auth_headers)
        assert response.status_code == 200 and response.json == []


def test_405_names_the_allowed_methods(client, auth_headers):
    response = client.delete("/api/signals", headers=auth_headers)
    assert response.status_code == 405
    assert response.json["code"] == "method_not_allowed"
    assert "GET" in response.headers["Allow"]


def test_decimals_are_documented_as_decimal_strings(client):
    spec = client.get("/api/openapi.json").json
    account = spec["components"]["schemas"]["Account"]["properties"]["positions_value"]
    assert account["type"] == "string" and account["format"] == "decimal"
    text = str(spec)
    assert "'maximum': '" not in text and "'minimum': '" not in text  # no numeric bound as a string
