-- Give a plain Postgres what every Supabase project already has, so the migrations in
-- supabase/migrations/ apply unchanged to both. Guarded: on Supabase (or a second run) it does nothing.
-- Never part of supabase/migrations/: since April 2025 nothing may be created in Supabase's `auth` schema.
do $bootstrap$
begin
    if not exists (select 1 from pg_roles where rolname = 'anon') then
        create role anon nologin noinherit;
    end if;
    if not exists (select 1 from pg_roles where rolname = 'authenticated') then
        create role authenticated nologin noinherit;
    end if;
    if not exists (select 1 from pg_roles where rolname = 'service_role') then
        create role service_role nologin noinherit bypassrls;
    end if;

    if not exists (select 1 from pg_namespace where nspname = 'auth') then
        create schema auth;
        -- A stand-in for Supabase's auth.users: the columns our code and sync receivers read.
        create table auth.users (
            id uuid primary key,
            email text unique,
            phone text,
            raw_app_meta_data jsonb not null default '{}'::jsonb,
            raw_user_meta_data jsonb not null default '{}'::jsonb,
            is_anonymous boolean not null default false,
            created_at timestamptz not null default now(),
            updated_at timestamptz not null default now()
        );
        -- Same definitions as Supabase's: claims come from request.jwt.claims ('' means null).
        create function auth.jwt() returns jsonb language sql stable as $f$
            select coalesce(
                nullif(current_setting('request.jwt.claim', true), ''),
                nullif(current_setting('request.jwt.claims', true), '')
            )::jsonb
        $f$;
        create function auth.uid() returns uuid language sql stable as $f$
            select coalesce(
                nullif(current_setting('request.jwt.claim.sub', true), ''),
                (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
            )::uuid
        $f$;
        create function auth.role() returns text language sql stable as $f$
            select coalesce(
                nullif(current_setting('request.jwt.claim.role', true), ''),
                (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
            )::text
        $f$;
        grant usage on schema auth to anon, authenticated, service_role;
        grant execute on function auth.jwt(), auth.uid(), auth.role()
            to anon, authenticated, service_role;
    end if;

    grant usage on schema public to anon, authenticated, service_role;
    -- The login role must be able to switch to the API roles per transaction.
    execute format('grant anon, authenticated, service_role to %I', current_user);
end
$bootstrap$;
