-- Viewzenix core schema: users, webhook configs, signals, orders, order events, fills,
-- positions and paper accounts. Applies unchanged to a Supabase project (`supabase db push`)
-- and to a plain Postgres after the app's bootstrap (roles + auth schema stand-in).
-- Money and quantities are numeric (Decimal in Python); timestamps are timestamptz (UTC).

create function public.set_updated_at() returns trigger
language plpgsql as $$
begin
    new.updated_at := now();
    return new;
end
$$;

-- Profile of an auth user (id = auth.users.id). Kept in step with auth.users by the sync
-- receiver; no foreign key to auth.users so the single-tenant owner can exist without a login.
create table public.users (
    id uuid primary key,
    email text,
    display_name text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create trigger users_set_updated_at before update on public.users
    for each row execute function public.set_updated_at();

create table public.webhook_configs (
    id uuid primary key default gen_random_uuid(),
    user_id uuid not null references public.users (id) on delete cascade,
    name text not null check (char_length(name) between 1 and 200),
    description text not null default '',
    -- sha256 of the URL token; the token itself is shown once (create, rotate) and never stored.
    security_token_hash bytea not null,
    token_hint text not null,
    token_rotated_at timestamptz not null default now(),
    notification_preferences jsonb not null default '{}'::jsonb,
    is_active boolean not null default true,
    -- trading settings
    broker text not null default 'simulated' check (broker in ('simulated', 'alpaca')),
    quantity_type text not null default 'fixed_quantity' check (quantity_type in (
        'fixed_quantity', 'dollar_amount', 'risk_dollar_amount', 'risk_percent',
        'percent_of_equity', 'percent_of_position')),
    quantity numeric not null default 1 check (quantity > 0),
    use_signal_quantity boolean not null default true,
    order_type text not null default 'market' check (order_type in (
        'market', 'limit', 'stop', 'stop_limit', 'trailing_stop')),
    time_in_force text not null default 'day' check (time_in_force in (
        'day', 'gtc', 'opg', 'cls', 'ioc', 'fok')),
    allow_reverse boolean not null default true,
    subtract_exit_quantity boolean not null default true,
    allowed_symbols text[] not null default '{}',
    max_position_qty numeric check (max_position_qty > 0),
    max_position_notional numeric check (max_position_notional > 0),
    allow_short boolean not null default true,
    allow_add boolean not null default true,
    max_signal_age_seconds integer check (max_signal_age_seconds > 0),
    starting_cash numeric not null default 100000 check (starting_cash >= 0),
    slippage_bps numeric not null default 0 check (slippage_bps >= 0),
    commission_rate numeric not null default 0 check (commission_rate >= 0),
    commission_fixed numeric not null default 0 check (commission_fixed >= 0),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    -- Target of the (config_id, user_id) foreign keys below: a row can only belong to the
    -- owner of its config, whoever writes it.
    constraint webhook_configs_id_user_id_key unique (id, user_id)
);
create index webhook_configs_user_id_idx on public.webhook_configs (user_id, created_at desc);
create trigger webhook_configs_set_updated_at before update on public.webhook_configs
    for each row execute function public.set_updated_at();

-- Every alert that reached a known config, accepted or rejected, with its raw body.
create table public.signals (
    id uuid primary key default gen_random_uuid(),
    user_id uuid not null,
    config_id uuid not null,
    status text not null check (status in ('accepted', 'rejected', 'executed', 'ignored', 'failed')),
    reject_code text,
    reject_message text,
    reject_details jsonb,
    outcome_message text,
    ticker text,
    action text,
    signal jsonb,
    payload jsonb,
    raw_body text not null,
    content_type text,
    source_ip inet,
    job_id bigint,
    received_at timestamptz not null default now(),
    processed_at timestamptz,
    foreign key (config_id, user_id) references public.webhook_configs (id, user_id) on delete cascade
);
create index signals_config_received_idx on public.signals (config_id, received_at desc);
create index signals_user_received_idx on public.signals (user_id, received_at desc);

create table public.orders (
    id uuid primary key default gen_random_uuid(),
    user_id uuid not null,
    config_id uuid not null,
    signal_id uuid references public.signals (id) on delete set null,
    parent_order_id uuid references public.orders (id) on delete set null,
    client_order_id text not null check (char_length(client_order_id) <= 48),
    broker_order_id text,
    broker text not null,
    symbol text not null,
    side text not null check (side in ('buy', 'sell')),
    order_type text not null check (order_type in (
        'market', 'limit', 'stop', 'stop_limit', 'trailing_stop')),
    time_in_force text not null check (time_in_force in ('day', 'gtc', 'opg', 'cls', 'ioc', 'fok')),
    intent text,
    purpose text not null check (purpose in ('entry', 'exit', 'take_profit', 'stop_loss')),
    qty numeric not null check (qty >= 0),
    limit_price numeric,
    stop_price numeric,
    trail_price numeric,
    trail_percent numeric,
    extended_hours boolean not null default false,
    reference_price numeric,
    status text not null check (status in (
        'pending', 'submitted', 'accepted', 'partially_filled', 'filled',
        'denied', 'rejected', 'canceled', 'expired')),
    status_code text,
    status_message text,
    filled_qty numeric not null default 0,
    filled_avg_price numeric,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    submitted_at timestamptz,
    filled_at timestamptz,
    canceled_at timestamptz,
    -- Alpaca: client_order_id is unique per account forever; a config is one account.
    constraint orders_config_client_order_id_key unique (config_id, client_order_id),
    constraint orders_id_user_id_key unique (id, user_id),
    foreign key (config_id, user_id) references public.webhook_configs (id, user_id) on delete cascade
);
create index orders_user_created_idx on public.orders (user_id, created_at desc);
create index orders_signal_idx on public.orders (signal_id);
create index orders_open_idx on public.orders (config_id, symbol)
    where status in ('pending', 'submitted', 'accepted', 'partially_filled');
create trigger orders_set_updated_at before update on public.orders
    for each row execute function public.set_updated_at();

-- Every status transition of an order, in past tense (OrderSubmitted, OrderFilled, ...).
create table public.order_events (
    id bigint generated always as identity primary key,
    order_id uuid not null,
    user_id uuid not null,
    event_type text not null,
    from_status text,
    to_status text not null,
    detail jsonb not null default '{}'::jsonb,
    created_at timestamptz not null default now(),
    foreign key (order_id, user_id) references public.orders (id, user_id) on delete cascade
);
create index order_events_order_idx on public.order_events (order_id, id);

create table public.fills (
    id uuid primary key default gen_random_uuid(),
    order_id uuid not null,
    user_id uuid not null,
    config_id uuid not null,
    trade_id text not null,
    symbol text not null,
    side text not null check (side in ('buy', 'sell')),
    last_qty numeric not null check (last_qty > 0),
    last_px numeric not null check (last_px > 0),
    commission numeric not null default 0,
    filled_at timestamptz not null default now(),
    constraint fills_config_trade_id_key unique (config_id, trade_id),
    foreign key (order_id, user_id) references public.orders (id, user_id) on delete cascade,
    foreign key (config_id, user_id) references public.webhook_configs (id, user_id) on delete cascade
);
create index fills_order_idx on public.fills (order_id);
create index fills_user_idx on public.fills (user_id, filled_at desc);

-- Net position per (config, symbol): signed qty (short < 0), average entry price, realised P&L.
create table public.positions (
    config_id uuid not null,
    symbol text not null,
    user_id uuid not null,
    qty numeric not null default 0,
    avg_entry_price numeric not null default 0,
    realized_pnl numeric not null default 0,
    last_price numeric,
    opened_at timestamptz,
    updated_at timestamptz not null default now(),
    primary key (config_id, symbol),
    foreign key (config_id, user_id) references public.webhook_configs (id, user_id) on delete cascade
);
create index positions_user_idx on public.positions (user_id);
create trigger positions_set_updated_at before update on public.positions
    for each row execute function public.set_updated_at();

-- The simulated broker's paper account, one per config.
create table public.paper_accounts (
    config_id uuid primary key,
    user_id uuid not null,
    starting_cash numeric not null,
    cash numeric not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    foreign key (config_id, user_id) references public.webhook_configs (id, user_id) on delete cascade
);
create index paper_accounts_user_idx on public.paper_accounts (user_id);
create trigger paper_accounts_set_updated_at before update on public.paper_accounts
    for each row execute function public.set_updated_at();

-- Row-Level Security: a user sees and changes only their own rows. New Supabase projects grant
-- no table privileges by default, so the grants are explicit.
alter table public.users enable row level security;
create policy users_select_own on public.users for select to authenticated
    using ((select auth.uid()) = id);
create policy users_insert_own on public.users for insert to authenticated
    with check ((select auth.uid()) = id);
create policy users_update_own on public.users for update to authenticated
    using ((select auth.uid()) = id) with check ((select auth.uid()) = id);
create policy users_delete_own on public.users for delete to authenticated
    using ((select auth.uid()) = id);

do $rls$
declare
    t text;
begin
    foreach t in array array['webhook_configs', 'signals', 'orders', 'order_events', 'fills',
                             'positions', 'paper_accounts']
    loop
        execute format('alter table public.%I enable row level security', t);
        execute format('create policy %I on public.%I for select to authenticated '
                       'using ((select auth.uid()) = user_id)', t || '_select_own', t);
        execute format('create policy %I on public.%I for insert to authenticated '
                       'with check ((select auth.uid()) = user_id)', t || '_insert_own', t);
        execute format('create policy %I on public.%I for update to authenticated '
                       'using ((select auth.uid()) = user_id) '
                       'with check ((select auth.uid()) = user_id)', t || '_update_own', t);
        execute format('create policy %I on public.%I for delete to authenticated '
                       'using ((select auth.uid()) = user_id)', t || '_delete_own', t);
    end loop;
end
$rls$;

revoke all on public.users, public.webhook_configs, public.signals, public.orders,
    public.order_events, public.fills, public.positions, public.paper_accounts from anon;
-- Users manage their profile and webhook configs. Signals, orders, events, fills, positions and
-- paper accounts are written only by the backend (intake, worker): the API roles may read them.
grant select, insert, update, delete on public.users, public.webhook_configs
    to authenticated, service_role;
grant select on public.signals, public.orders, public.order_events, public.fills,
    public.positions, public.paper_accounts to authenticated;
grant select, insert, update, delete on public.signals, public.orders, public.order_events,
    public.fills, public.positions, public.paper_accounts to service_role;
