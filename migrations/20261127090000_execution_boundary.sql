-- The execution boundary: our books and the paper broker's books, apart.
--
-- Our books (written only by the ledger, viewzenix/services/ledger.py): public.orders,
-- order_events, fills, positions and public.accounts (our view of each config's cash and
-- commissions; was public.paper_accounts). The paper broker keeps its own books in schema
-- `paper`, like an exchange: nothing in the app reads them except the paper broker adapter,
-- so reconciliation compares two independent ledgers.

-- Order statuses: pending_new = recorded by us, not (yet) confirmed by the broker; held = a
-- take-profit/stop-loss leg the broker holds until its parent fills (Alpaca's `held`; was
-- `pending`).
alter table public.orders drop constraint orders_status_check;
update public.orders set status = 'held' where status = 'pending';
alter table public.orders add constraint orders_status_check check (status in (
    'pending_new', 'held', 'submitted', 'accepted', 'partially_filled', 'filled',
    'denied', 'rejected', 'canceled', 'expired'));
drop index public.orders_open_idx;
create index orders_open_idx on public.orders (config_id, symbol)
    where status in ('pending_new', 'held', 'submitted', 'accepted', 'partially_filled');

-- Signal outcomes a user can read: executed only when an order reached the broker; denied (our
-- rules), rejected (intake, or the broker refused every order), failed (an error after
-- retries), duplicate (a resend of an earlier alert), submitting (orders recorded, the broker's
-- answer not yet).
alter table public.signals drop constraint signals_status_check;
alter table public.signals add constraint signals_status_check check (status in (
    'accepted', 'submitting', 'executed', 'ignored', 'denied', 'rejected', 'failed', 'duplicate'));

-- Our account per config: cash as our fills say, and commissions paid.
alter table public.paper_accounts rename to accounts;
alter table public.accounts add column commission_paid numeric not null default 0;
alter index public.paper_accounts_user_idx rename to accounts_user_idx;
alter trigger paper_accounts_set_updated_at on public.accounts rename to accounts_set_updated_at;

-- The paper broker's own books.
create schema paper;
revoke all on schema paper from public;
grant usage on schema paper to service_role;

create table paper.accounts (
    config_id uuid primary key references public.webhook_configs (id) on delete cascade,
    starting_cash numeric not null,
    cash numeric not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

create table paper.orders (
    id uuid primary key default gen_random_uuid(),
    config_id uuid not null references public.webhook_configs (id) on delete cascade,
    client_order_id text not null check (char_length(client_order_id) <= 48),
    broker_order_id text not null unique,
    parent_order_id uuid references paper.orders (id) on delete set null,
    symbol text not null,
    side text not null check (side in ('buy', 'sell')),
    order_type text not null,
    time_in_force text not null,
    qty numeric not null,
    limit_price numeric,
    stop_price numeric,
    trail_price numeric,
    trail_percent numeric,
    extended_hours boolean not null default false,
    reference_price numeric,
    status text not null check (status in (
        'held', 'accepted', 'partially_filled', 'filled', 'rejected', 'canceled', 'expired')),
    status_code text,
    status_message text,
    filled_qty numeric not null default 0,
    filled_avg_price numeric,
    triggered_at timestamptz,
    submitted_at timestamptz not null,
    filled_at timestamptz,
    canceled_at timestamptz,
    created_at timestamptz not null default clock_timestamp(),
    updated_at timestamptz not null default now(),
    -- Alpaca: client_order_id is unique per account forever, even after cancel.
    constraint paper_orders_config_client_order_id_key unique (config_id, client_order_id)
);
create index paper_orders_open_idx on paper.orders (config_id, symbol)
    where status in ('held', 'accepted', 'partially_filled');
create index paper_orders_parent_idx on paper.orders (parent_order_id);

create table paper.fills (
    trade_id text primary key,
    order_id uuid not null references paper.orders (id) on delete cascade,
    config_id uuid not null references public.webhook_configs (id) on delete cascade,
    symbol text not null,
    side text not null,
    qty numeric not null check (qty > 0),
    price numeric not null check (price > 0),
    commission numeric not null default 0,
    filled_at timestamptz not null
);
create index paper_fills_order_idx on paper.fills (order_id, filled_at);

create table paper.positions (
    config_id uuid not null references public.webhook_configs (id) on delete cascade,
    symbol text not null,
    qty numeric not null default 0,
    avg_entry_price numeric not null default 0,
    realized_pnl numeric not null default 0,
    last_price numeric,
    opened_at timestamptz,
    updated_at timestamptz not null default now(),
    primary key (config_id, symbol)
);

create trigger paper_accounts_set_updated_at before update on paper.accounts
    for each row execute function public.set_updated_at();
create trigger paper_orders_set_updated_at before update on paper.orders
    for each row execute function public.set_updated_at();
create trigger paper_positions_set_updated_at before update on paper.positions
    for each row execute function public.set_updated_at();

-- Closed to the API roles: RLS on with no policy, no grants but the backend's.
alter table paper.accounts enable row level security;
alter table paper.orders enable row level security;
alter table paper.fills enable row level security;
alter table paper.positions enable row level security;
revoke all on all tables in schema paper from anon, authenticated;
grant select, insert, update, delete on all tables in schema paper to service_role;

-- Reconciliation runs: what each comparison of our books with the broker's found and repaired.
create table public.reconciliations (
    id uuid primary key default gen_random_uuid(),
    config_id uuid not null,
    user_id uuid not null,
    broker text not null,
    started_at timestamptz not null default now(),
    finished_at timestamptz,
    repair boolean not null default false,
    orders_compared integer not null default 0,
    orders_in_drift integer not null default 0,
    positions_compared integer not null default 0,
    positions_in_drift integer not null default 0,
    drift_rate numeric not null default 0,
    counts jsonb not null default '{}'::jsonb,
    drifts jsonb not null default '[]'::jsonb,
    repaired integer not null default 0,
    error text,
    foreign key (config_id, user_id) references public.webhook_configs (id, user_id) on delete cascade
);
create index reconciliations_config_idx on public.reconciliations (config_id, started_at desc);
create index reconciliations_user_idx on public.reconciliations (user_id, started_at desc);
alter table public.reconciliations enable row level security;
create policy reconciliations_select_own on public.reconciliations for select to authenticated
    using ((select auth.uid()) = user_id);
revoke all on public.reconciliations from anon;
grant select on public.reconciliations to authenticated;
grant select, insert, update, delete on public.reconciliations to service_role;
