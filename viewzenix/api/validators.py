"""Validators shared by the API schemas: what Postgres can store, within sane bounds."""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError


def storable_text(value: Any) -> None:
    """Refuse text Postgres cannot store (NUL characters), anywhere inside ``value``.

    Raises marshmallow.ValidationError (→ 422 with the field's message).
    """
    if isinstance(value, str):
        if "\x00" in value:
            raise ValidationError("Must not contain NUL characters.")
    elif isinstance(value, dict):
        for key, item in value.items():
            storable_text(key)
            storable_text(item)
    elif isinstance(value, list | tuple):
        for item in value:
            storable_text(item)


def max_places(places: int):
    """Return a validator refusing a Decimal with more than ``places`` digits after the point."""

    def validator(value: Any) -> None:
        exponent = value.as_tuple().exponent
        if isinstance(exponent, int) and -exponent > places:
            raise ValidationError(f"Must have at most {places} decimal places.")

    return validator
