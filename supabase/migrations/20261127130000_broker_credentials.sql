-- Broker credentials per webhook config (Alpaca: API key id + secret key), encrypted at rest.
--
-- Both values are Fernet tokens made with the server key CREDENTIALS_ENCRYPTION_KEY
-- (viewzenix/crypto.py); the database never holds them in clear, and the API never returns them
-- after they are set (only key_id_hint, the key id's last 4 characters). `live` is false (paper)
-- unless the user turned live trading on explicitly. `api_url` overrides Alpaca's paper/live
-- address: set only by the server itself (the single-tenant seed's ALPACA_API_URL, the operator
-- command `flask alpaca-credentials --url`), never through the API, so a user cannot make the
-- worker send their keys to an address of their choosing.
--
-- Schema `private`: not exposed by Supabase's Data API. The API runs as `authenticated` with the
-- caller's claims: RLS limits it to the caller's own rows, and its column grants leave out
-- `api_url`. The worker reads as the backend's login role.
create schema if not exists private;
revoke all on schema private from public;
grant usage on schema private to authenticated, service_role;

create table private.broker_credentials (
    config_id uuid primary key,
    user_id uuid not null,
    broker text not null default 'alpaca' check (broker in ('alpaca')),
    key_id_encrypted text not null,
    secret_key_encrypted text not null,
    key_id_hint text not null check (char_length(key_id_hint) <= 8),
    live boolean not null default false,
    api_url text check (api_url is null or api_url ~ '^https?://'),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    foreign key (config_id, user_id) references public.webhook_configs (id, user_id) on delete cascade
);
create trigger broker_credentials_set_updated_at before update on private.broker_credentials
    for each row execute function public.set_updated_at();

alter table private.broker_credentials enable row level security;
create policy broker_credentials_select_own on private.broker_credentials for select to authenticated
    using ((select auth.uid()) = user_id);
create policy broker_credentials_insert_own on private.broker_credentials for insert to authenticated
    with check ((select auth.uid()) = user_id);
create policy broker_credentials_update_own on private.broker_credentials for update to authenticated
    using ((select auth.uid()) = user_id) with check ((select auth.uid()) = user_id);
create policy broker_credentials_delete_own on private.broker_credentials for delete to authenticated
    using ((select auth.uid()) = user_id);

revoke all on private.broker_credentials from public, anon;
grant select, delete on private.broker_credentials to authenticated;
grant insert (config_id, user_id, broker, key_id_encrypted, secret_key_encrypted, key_id_hint, live)
    on private.broker_credentials to authenticated;
grant update (key_id_encrypted, secret_key_encrypted, key_id_hint, live)
    on private.broker_credentials to authenticated;
grant select, insert, update, delete on private.broker_credentials to service_role;
