-- SUPABASE-ONLY. Signed Database Webhooks for Viewzenix's receiver (POST /hooks/supabase/db).
--
-- Supabase's own Database Webhooks send fixed headers only and never retry. These triggers send
-- the same payload, {type, table, schema, record, old_record}, through pg_net with the seed's
-- signature header: x-hmac-sha256 = lowercase hex HMAC-SHA256 (pgcrypto) of the exact bytes
-- pg_net posts — pg_net sends convert_to(body::text, 'UTF8') of the jsonb body it is given, so
-- the signature is computed over that same text.
--
-- Not a migration: `flask migrate` never applies it. Run it in the SQL editor of the project
-- that owns public.user_symbols and auth.users (project A; the one project when there is one),
-- after storing two Vault secrets:
--
--   select vault.create_secret('<same value as WEBHOOK_SECRET>', 'viewzenix_webhook_secret');
--   select vault.create_secret('https://<your app>/hooks/supabase/db', 'viewzenix_webhook_url');
--
-- The test suite runs this file on plain Postgres with fakes of pg_net and Vault in place of the
-- sections marked "supabase-only" (tests/integration/test_signed_webhooks_sql.py).

-- supabase-only begin
create extension if not exists pgcrypto with schema extensions;
create extension if not exists pg_net;
-- supabase-only end

create schema if not exists private;
revoke all on schema private from public;

-- The fields of an auth.users row that are sent: never password hashes, tokens or factors.
create or replace function private.viewzenix_hook_record(source_schema text, source_table text, r jsonb)
returns jsonb language sql immutable set search_path = '' as $$
    select case
        when r is null then null
        when source_schema = 'auth' and source_table = 'users' then (
            select coalesce(jsonb_object_agg(key, value), '{}'::jsonb) from jsonb_each(r)
            where key = any (array['id', 'email', 'phone', 'raw_user_meta_data', 'raw_app_meta_data',
                                   'is_anonymous', 'created_at', 'updated_at', 'deleted_at'])
        )
        else r
    end
$$;

-- The Database Webhook payload of one row change.
create or replace function private.viewzenix_hook_payload(
    operation text, source_schema text, source_table text, new_row jsonb, old_row jsonb
) returns jsonb language sql immutable set search_path = '' as $$
    select jsonb_build_object(
        'type', operation,
        'table', source_table,
        'schema', source_schema,
        'record', case when operation = 'DELETE' then null
                       else private.viewzenix_hook_record(source_schema, source_table, new_row) end,
        'old_record', case when operation = 'INSERT' then null
                           else private.viewzenix_hook_record(source_schema, source_table, old_row) end
    )
$$;

-- x-hmac-sha256 of the bytes pg_net will post for `payload`.
create or replace function private.viewzenix_hook_signature(payload jsonb, secret text)
returns text language sql immutable set search_path = '' as $$
    select encode(extensions.hmac(convert_to(payload::text, 'UTF8'), convert_to(secret, 'UTF8'), 'sha256'), 'hex')
$$;

-- After-row trigger: build, sign, post (after commit, by pg_net's worker). pg_net: always pass
-- an explicit timeout; bodies over 64 KB hang, so they are skipped with a warning (the drift
-- check, `flask sync check`, repairs what was not delivered).
create or replace function private.viewzenix_signed_hook() returns trigger
language plpgsql security definer set search_path = '' as $$
declare
    payload jsonb;
    secret text;
    target_url text;
begin
    payload := private.viewzenix_hook_payload(
        tg_op, tg_table_schema, tg_table_name,
        case when tg_op = 'DELETE' then null else to_jsonb(new) end,
        case when tg_op = 'INSERT' then null else to_jsonb(old) end
    );
    select decrypted_secret into secret from vault.decrypted_secrets where name = 'viewzenix_webhook_secret';
    select decrypted_secret into target_url from vault.decrypted_secrets where name = 'viewzenix_webhook_url';
    if secret is null or target_url is null then
        raise warning 'viewzenix_signed_hook: Vault secrets viewzenix_webhook_secret/_url are missing; not sent';
        return null;
    end if;
    if octet_length(payload::text) > 65000 then
        raise warning 'viewzenix_signed_hook: % %.% payload over 64 KB; not sent', tg_op, tg_table_schema, tg_table_name;
        return null;
    end if;
    perform net.http_post(
        url := target_url,
        body := payload,
        headers := jsonb_build_object(
            'Content-Type', 'application/json',
            'x-hmac-sha256', private.viewzenix_hook_signature(payload, secret)
        ),
        timeout_milliseconds := 3000
    );
    return null;
end
$$;
revoke all on function private.viewzenix_signed_hook() from public, anon, authenticated;

-- The app's watch list → public.watchers.
drop trigger if exists viewzenix_signed_hook on public.user_symbols;
create trigger viewzenix_signed_hook after insert or update or delete on public.user_symbols
    for each row execute function private.viewzenix_signed_hook();

-- Sign-ups (Google OAuth and others), profile changes, deletions → public.users profiles.
-- Supabase allows triggers on auth.users (not new objects in schema auth).
drop trigger if exists viewzenix_signed_hook on auth.users;
create trigger viewzenix_signed_hook after insert or update or delete on auth.users
    for each row execute function private.viewzenix_signed_hook();
