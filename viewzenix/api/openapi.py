"""The OpenAPI document true to the wire format: Decimals are strings.

Every ``marshmallow.fields.Decimal`` of the API is sent as a string (``as_string=True``: no
binary floating point between the database's ``numeric`` and the client) and read from a string
or a number. apispec documents Decimal as ``type: number`` with its Range bounds as ``minimum`` /
``maximum`` — and writes those bounds as strings, an invalid document. Here every Decimal is
documented as ``type: string, format: decimal`` with a pattern; its bounds, which a string
schema cannot carry, move into the description (the API still enforces them: 422).
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma

DECIMAL_PATTERN = r"^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$"


def decimal_as_string(
    self: Any, field: ma.fields.Field, ret: dict[str, Any], **kwargs: Any
) -> dict[str, Any]:
    """apispec attribute function: document a Decimal field as a decimal string."""
    if not isinstance(field, ma.fields.Decimal):
        return {}
    bounds = []
    if "minimum" in ret:
        bounds.append(f"≥ {ret.pop('minimum')}")
    if "maximum" in ret:
        bounds.append(f"≤ {ret.pop('maximum')}")
    ret.pop("exclusiveMinimum", None)
    ret.pop("exclusiveMaximum", None)
    description = ret.get("description", "")
    if bounds:
        description = f"{description} ({', '.join(bounds)})".strip()
    out: dict[str, Any] = {"type": "string", "format": "decimal", "pattern": DECIMAL_PATTERN}
    if description:
        out["description"] = description
    return out


def register(api: Any) -> None:
    """Install the Decimal mapping on a flask-smorest ``Api`` (before its blueprints are registered)."""
    api.ma_plugin.converter.add_attribute_function(decimal_as_string)
