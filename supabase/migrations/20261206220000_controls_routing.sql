-- Routing controls (issue 17 items 5-7): one alert to several accounts (webhook groups), a
-- source-address allowlist per webhook config, and a symbol mapping per webhook config.
--
-- * webhook_configs.allowed_source_ips: null = any address (the default, so nothing changes
--   for existing webhooks); else the alert's source address must lie in one of these networks
--   (an address is a /32 network), or the alert is stored rejected as source_not_allowed.
-- * symbol_mappings: per config, alert ticker -> broker symbol, both in their canonical spelling
--   (viewzenix.domain.symbols.canonical_symbol); intake looks the mapping up in the statement
--   that stores the signal, so the lock, the engine and the books see the broker symbol.
-- * webhook_groups + webhook_group_members: a URL of its own (token hashed like a config's)
--   whose alerts are stored once per member config, each its own signal and job.
-- * signals.alert_ticker (the alert's ticker when a mapping changed it), signals.group_id and
--   signals.fan_out_id (shared by the member signals of one group delivery).
alter table public.webhook_configs add column allowed_source_ips cidr[]
    check (allowed_source_ips is null or cardinality(allowed_source_ips) <= 100);

alter table public.signals
    add column alert_ticker text,
    add column group_id uuid,
    add column fan_out_id uuid;
create index signals_fan_out_idx on public.signals (fan_out_id) where fan_out_id is not null;

create table public.symbol_mappings (
    config_id uuid not null,
    user_id uuid not null,
    alert_ticker text not null check (char_length(alert_ticker) between 1 and 40),
    broker_symbol text not null check (char_length(broker_symbol) between 1 and 40),
    created_at timestamptz not null default now(),
    primary key (config_id, alert_ticker),
    foreign key (config_id, user_id) references public.webhook_configs (id, user_id) on delete cascade
);
create index symbol_mappings_user_idx on public.symbol_mappings (user_id);

create table public.webhook_groups (
    id uuid primary key default gen_random_uuid(),
    user_id uuid not null references public.users (id) on delete cascade,
    name text not null check (char_length(name) between 1 and 200),
    security_token_hash bytea not null,
    token_hint text not null,
    created_at timestamptz not null default now(),
    unique (id, user_id)
);
create index webhook_groups_user_idx on public.webhook_groups (user_id);

create table public.webhook_group_members (
    group_id uuid not null,
    config_id uuid not null,
    user_id uuid not null,
    position integer not null default 0,
    primary key (group_id, config_id),
    -- Both ends belong to the same user: a group can never reach another user's config.
    foreign key (group_id, user_id) references public.webhook_groups (id, user_id) on delete cascade,
    foreign key (config_id, user_id) references public.webhook_configs (id, user_id) on delete cascade
);
create index webhook_group_members_config_idx on public.webhook_group_members (config_id);

do $$
declare t text;
begin
    foreach t in array array['symbol_mappings', 'webhook_groups', 'webhook_group_members'] loop
        execute format('alter table public.%I enable row level security', t);
        execute format('create policy %I on public.%I for select to authenticated '
                       'using ((select auth.uid()) = user_id)', t || '_select_own', t);
        execute format('create policy %I on public.%I for insert to authenticated '
                       'with check ((select auth.uid()) = user_id)', t || '_insert_own', t);
        execute format('create policy %I on public.%I for update to authenticated '
                       'using ((select auth.uid()) = user_id) with check ((select auth.uid()) = user_id)',
                       t || '_update_own', t);
        execute format('create policy %I on public.%I for delete to authenticated '
                       'using ((select auth.uid()) = user_id)', t || '_delete_own', t);
        execute format('revoke all on public.%I from anon, authenticated', t);
        execute format('grant select, insert, update, delete on public.%I to authenticated', t);
        execute format('grant select, insert, update, delete on public.%I to service_role', t);
    end loop;
end $$;
