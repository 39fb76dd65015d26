-- Idempotency keys of the REST API (IETF draft "The Idempotency-Key HTTP Header Field", Stripe
-- practice): the first response to a mutating /api request carrying a key is stored here, per
-- user, and replayed for the same key until expires_at (IDEMPOTENCY_KEY_TTL_HOURS, default 24).
-- The row is written in the same transaction as the request's work (viewzenix/api/idempotency.py),
-- so both commit or neither does. Expired rows: viewzenix.repositories.idempotency_keys.purge_expired
-- (`flask --app wsgi purge-idempotency-keys`).
--
-- Schema `private`: Supabase's Data API (PostgREST, and pg_graphql through it) exposes `public`
-- and the schemas listed under "Exposed schemas", not this one, so a user cannot read, forge or
-- extend their stored responses over REST. Our backend runs API requests as role `authenticated`
-- with the caller's claims, so that role gets usage, its grants, and RLS policies limiting it to
-- its own rows: a user never sees another user's keys, even if the schema were exposed one day.
-- anon gets nothing. Supabase's docs recommend a `private` schema for security-definer helpers,
-- so a project may have one already: keep it.
create schema if not exists private;
revoke all on schema private from public;
grant usage on schema private to authenticated, service_role;

create table private.idempotency_keys (
    -- auth.uid() of the caller. No foreign key: keys of a deleted user expire with the rest,
    -- and a caller without a profile row (public.users) may still send keyed requests.
    user_id uuid not null,
    key text not null check (char_length(key) between 1 and 255),
    -- sha256 of method, path (with query string) and body: the same key on another request → 422.
    fingerprint bytea not null,
    method text not null,
    path text not null,
    -- The first response, replayed byte for byte (bodies may hold a secret shown once, such as a
    -- new webhook token: what Stripe does too; the TTL bounds how long it is kept).
    response_status integer not null check (response_status between 100 and 599),
    response_headers jsonb not null default '{}'::jsonb,
    response_body bytea not null,
    created_at timestamptz not null default now(),
    expires_at timestamptz not null,
    primary key (user_id, key)
);
create index idempotency_keys_expires_at_idx on private.idempotency_keys (expires_at);

alter table private.idempotency_keys enable row level security;
create policy idempotency_keys_select_own on private.idempotency_keys for select to authenticated
    using ((select auth.uid()) = user_id);
create policy idempotency_keys_insert_own on private.idempotency_keys for insert to authenticated
    with check ((select auth.uid()) = user_id);
create policy idempotency_keys_update_own on private.idempotency_keys for update to authenticated
    using ((select auth.uid()) = user_id) with check ((select auth.uid()) = user_id);

revoke all on private.idempotency_keys from public, anon;
-- select + insert + update: INSERT … ON CONFLICT DO UPDATE reclaims an expired key. No delete:
-- purging runs as the backend's login role (or service_role).
grant select, insert, update on private.idempotency_keys to authenticated;
grant select, insert, update, delete on private.idempotency_keys to service_role;
