"""What every service call carries: the caller, and the database it runs its transaction on."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Caller:
    """An authenticated user: ``user_id`` (Supabase ``sub``), ``email``, the verified ``claims``."""

    user_id: uuid.UUID
    email: str | None = None
    claims: dict[str, Any] = field(default_factory=dict)

    @property
    def is_admin(self) -> bool:
        """True when ``app_metadata.role`` is ``admin``.

        Supabase: only the server can write ``app_metadata``; ``user_metadata`` is user-editable
        and never grants anything.
        """
        app_metadata = self.claims.get("app_metadata")
        return isinstance(app_metadata, dict) and app_metadata.get("role") == "admin"
