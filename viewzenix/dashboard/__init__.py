"""The browser dashboard: server-rendered page shells, htmx data fragments, vendored assets.

Pages (``/``, ``/configs``, ``/signals``, ``/orders``, ``/admin``, ``/signin``) carry no user data:
their scripts call the REST API and load fragments under ``/ui/fragments`` with the user's
``Authorization: Bearer`` token, and fragments read through the same services as ``/api`` as the
caller, so Row-Level Security keeps applying. Assets are served from ``/ui/static`` (vendored
by ``scripts/vendor_assets.py``; no CDN, no Node).

Sign-in: Supabase Auth in the browser (supabase-js, ``SUPABASE_KEY`` = the public anon key)
when SUPABASE_URL is set; otherwise a one-time code printed by ``make run``, exchanged at
``POST /auth/local/exchange`` (404 when SUPABASE_URL is set).
"""

from __future__ import annotations

from viewzenix.dashboard.views import bp

__all__ = ["bp"]
