-- The browser dashboard (issue 7).
--
-- Pause entries: a config whose entries are paused still takes every alert, and its exits (and
-- cancels) still run; each entry order is denied `entries_paused` by the engine's risk rules
-- (viewzenix/domain/engine.py). is_active = false still refuses everything at intake.
alter table public.webhook_configs
    add column entries_paused boolean not null default false;

-- A test alert sent from the dashboard (POST /api/webhook-configs/{id}/test-alert) goes through
-- the real intake path and is marked here, so the signal log can tell it from TradingView's.
alter table public.signals
    add column is_test boolean not null default false;

-- Local mode only (no SUPABASE_URL): one-time sign-in codes printed by `make run`
-- (`flask --app wsgi signin-code EMAIL`), exchanged once at POST /auth/local/exchange for a
-- locally signed access token. Only the code's sha256 is kept. Backend only: no API role reads it.
create table private.local_signin_codes (
    code_hash bytea primary key,
    email text not null,
    created_at timestamptz not null default now(),
    expires_at timestamptz not null
);
alter table private.local_signin_codes enable row level security;
revoke all on private.local_signin_codes from anon, authenticated;
grant select, insert, update, delete on private.local_signin_codes to service_role;
