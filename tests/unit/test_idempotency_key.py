"""Reading the Idempotency-Key header (IETF draft: an RFC 8941 sf-string; bare values accepted)."""

from __future__ import annotations

import pytest

from viewzenix.api.idempotency import key_from_headers, parse_key, request_fingerprint
from viewzenix.errors import InvalidIdempotencyKey


@pytest.mark.parametrize(
    ("value", "key"),
    [
        ("abc-123", "abc-123"),
        ('"abc-123"', "abc-123"),
        ("  padded\t", "padded"),
        ('"with space"', "with space"),
        (r'"q\"uote"', 'q"uote'),
        (r'"back\\slash"', "back\\slash"),
        ("8e03978e-40d5-43e8-bc93-6894a57f9324", "8e03978e-40d5-43e8-bc93-6894a57f9324"),
        ("k" * 255, "k" * 255),
        ('"' + "k" * 255 + '"', "k" * 255),
    ],
)
def test_reads_bare_and_quoted_keys(value, key):
    assert parse_key(value) == key


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "empty"),
        ('""', "empty"),
        ("k" * 256, "longer than 255"),
        ('"' + "k" * 256 + '"', "longer than 255"),
        ("nul\x00", "printable ASCII"),
        ("del\x7f", "printable ASCII"),
        ("caf\xe9", "printable ASCII"),
        ('"unterminated', "no closing quote"),
        ('"trailing\\', "may be escaped"),
        (r'"a\nb"', "may be escaped"),
        ('"a"b', "nothing may follow"),
    ],
)
def test_refuses_malformed_keys(value, message):
    with pytest.raises(InvalidIdempotencyKey, match=message) as refused:
        parse_key(value)
    assert (refused.value.status, refused.value.code) == (400, "invalid_idempotency_key")


def test_both_headers_must_agree():
    assert key_from_headers([]) is None
    assert key_from_headers(["k", '"k"']) == "k"
    with pytest.raises(InvalidIdempotencyKey, match="different keys"):
        key_from_headers(["k", "other"])


def test_fingerprint_tells_method_path_and_body_apart():
    base = request_fingerprint("POST", "/api/x", b"{}")
    assert base == request_fingerprint("POST", "/api/x", b"{}")
    assert base != request_fingerprint("PUT", "/api/x", b"{}")
    assert base != request_fingerprint("POST", "/api/y", b"{}")
    assert base != request_fingerprint("POST", "/api/x?a=1", b"{}")
    assert base != request_fingerprint("POST", "/api/x", b"{ }")
    # Parts are length-prefixed: moving bytes between path and body changes the fingerprint.
    assert request_fingerprint("POST", "/api/xa", b"b") != request_fingerprint("POST", "/api/x", b"ab")
