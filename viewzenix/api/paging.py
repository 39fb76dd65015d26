"""One list-endpoint body shared by the paginated blueprints."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from viewzenix.api.auth import current_caller
from viewzenix.runtime import get_runtime

ListService = Callable[..., tuple[list[dict[str, Any]], int]]
MAX_OFFSET = 2**62


def page_of(
    list_service: ListService, filters: dict[str, Any], pagination_parameters: Any
) -> list[dict[str, Any]]:
    """Call ``list_service(db, caller, filters=, limit=, offset=)`` for the requested page.

    Sets the total on ``pagination_parameters`` (flask-smorest then writes the X-Pagination
    header) and returns the page's rows.
    """
    rows, total = list_service(
        get_runtime().db,
        current_caller(),
        filters=filters,
        limit=pagination_parameters.page_size,
        # A page far past the end is an empty page; Postgres's OFFSET is a bigint.
        offset=min(pagination_parameters.first_item, MAX_OFFSET),
    )
    pagination_parameters.item_count = total
    return rows
