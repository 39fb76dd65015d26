-- The app's table whose changes Viewzenix mirrors into public.watchers (the seed's design).
-- For a Supabase project that does not have it yet (project A, or the one project). NOT a
-- migration of Viewzenix's own database: run it in the SQL editor of the project that owns it.
create table if not exists public.user_symbols (
    id uuid primary key default gen_random_uuid(),
    user_id uuid not null references auth.users (id) on delete cascade,
    symbol text not null,
    timeframe text not null default '1h',
    strategy jsonb not null default '{}'::jsonb,
    active boolean not null default true,
    created_at timestamptz not null default now(),
    -- Orders deliveries: the receiver ignores an event no newer than what it applied.
    updated_at timestamptz not null default now(),
    unique (user_id, symbol, timeframe)
);

create or replace function public.user_symbols_set_updated_at() returns trigger
language plpgsql set search_path = '' as $$
begin
    new.updated_at := now();
    return new;
end
$$;
drop trigger if exists user_symbols_set_updated_at on public.user_symbols;
create trigger user_symbols_set_updated_at before update on public.user_symbols
    for each row execute function public.user_symbols_set_updated_at();

alter table public.user_symbols enable row level security;
drop policy if exists user_symbols_own on public.user_symbols;
create policy user_symbols_own on public.user_symbols for all to authenticated
    using ((select auth.uid()) = user_id) with check ((select auth.uid()) = user_id);
grant select, insert, update, delete on public.user_symbols to authenticated, service_role;
