-- Supabase Database Webhooks that keep this database in step with the app's (issue 8):
-- `public.user_symbols` (INSERT/UPDATE/DELETE) → `public.watchers`, and `auth.users` →
-- `public.users` profiles. The receiver is POST /hooks/supabase/db
-- (viewzenix/webhooks/supabase.py); the drift check is `flask --app wsgi sync check`.
-- The sending side (signing trigger, pg_net, Vault) is Supabase-only and lives in supabase/,
-- not here: these migrations also apply to a plain Postgres.

-- Profiles: a unique username generated from the email (users may change it later), the avatar,
-- and the source row's updated_at (auth.users.updated_at) to order out-of-order deliveries.
-- deleted_at: set when the auth user was deleted and SUPABASE_USERS_ON_DELETE=anonymise.
alter table public.users
    add column username text check (char_length(username) between 1 and 64),
    add column avatar_url text,
    add column source_updated_at timestamptz,
    add column deleted_at timestamptz;
-- Case-insensitive: "Ann" and "ann" are one name.
create unique index users_username_key on public.users (lower(username));

-- What each user watches, in step with the app's public.user_symbols. No foreign key to
-- public.users: with two Supabase projects a watcher may arrive before its user's profile.
-- source_updated_at: user_symbols.updated_at of the version applied (events older than it are
-- ignored); updated_at: when this row last changed here.
create table public.watchers (
    user_id uuid not null,
    symbol text not null check (char_length(symbol) between 1 and 32),
    timeframe text not null check (char_length(timeframe) between 1 and 8),
    strategy jsonb not null default '{}'::jsonb check (jsonb_typeof(strategy) = 'object'),
    active boolean not null default true,
    source_updated_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    primary key (user_id, symbol, timeframe)
);
create trigger watchers_set_updated_at before update on public.watchers
    for each row execute function public.set_updated_at();

-- Users read their own watchers; only the backend (receiver, drift repair) writes them.
alter table public.watchers enable row level security;
create policy watchers_select_own on public.watchers for select to authenticated
    using ((select auth.uid()) = user_id);
revoke all on public.watchers from anon;
grant select on public.watchers to authenticated;
grant select, insert, update, delete on public.watchers to service_role;

create schema if not exists private;
revoke all on schema private from public;
grant usage on schema private to authenticated, service_role;

-- Every delivery the receiver got, whatever became of it: applied, ignored (a replay, an event
-- older than what was applied), refused (bad signature, malformed payload, unknown table,
-- invalid fields), or received (stored, then applying it failed). Nothing is lost silently.
-- Unauthenticated bodies are not stored: only their size and SHA-256.
create table private.hook_events (
    id bigint generated always as identity primary key,
    received_at timestamptz not null default now(),
    -- Standard Webhooks `webhook-id` when sent; `scheme`: hmac | standard (the one verified).
    webhook_id text,
    scheme text,
    schema_name text,
    table_name text,
    operation text,
    -- user_id/symbol/timeframe of a watcher, the user id of a profile.
    record_key text,
    source_updated_at timestamptz,
    outcome text not null check (outcome in ('received', 'applied', 'ignored', 'refused')),
    reason text,
    http_status integer,
    -- From the first byte read to the answer being ready, in milliseconds.
    latency_ms double precision,
    body_bytes integer,
    body_sha256 bytea,
    detail jsonb
);
-- Health and metrics read the recent events of each table.
create index hook_events_table_received_idx on private.hook_events (table_name, received_at desc);
create index hook_events_received_idx on private.hook_events (received_at);
-- A Standard Webhooks id is applied once (a redelivery of it is ignored).
create unique index hook_events_applied_webhook_id_key on private.hook_events (webhook_id)
    where webhook_id is not null and outcome = 'applied';

-- A deleted source row's last updated_at, so a late UPDATE or INSERT of that version cannot bring
-- it back. key: user_id/symbol/timeframe (watchers) or the user id (users).
create table private.hook_tombstones (
    target text not null check (target in ('watchers', 'users')),
    key text not null,
    source_updated_at timestamptz,
    deleted_at timestamptz not null default now(),
    primary key (target, key)
);

-- Each drift check (flask sync check, and the periodic job): counts and the drift rate.
create table private.sync_checks (
    id bigint generated always as identity primary key,
    target text not null check (target in ('watchers', 'users')),
    source text not null,
    started_at timestamptz not null default now(),
    finished_at timestamptz,
    source_rows integer not null default 0,
    target_rows integer not null default 0,
    missing integer not null default 0,
    extra integer not null default 0,
    differing integer not null default 0,
    -- percent of compared keys in disagreement
    drift_rate numeric not null default 0,
    repaired integer not null default 0,
    error text,
    detail jsonb not null default '{}'::jsonb
);
create index sync_checks_target_started_idx on private.sync_checks (target, started_at desc);

-- Backend only: RLS on with no policy, no grants to the API roles.
alter table private.hook_events enable row level security;
alter table private.hook_tombstones enable row level security;
alter table private.sync_checks enable row level security;
revoke all on private.hook_events, private.hook_tombstones, private.sync_checks
    from public, anon, authenticated;
grant select, insert, update, delete on private.hook_events, private.hook_tombstones,
    private.sync_checks to service_role;
