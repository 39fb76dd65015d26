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

-- Upgrading a database that traded before this migration: until now our books and the paper
-- broker's were one and the same, so the paper broker's books start as a copy of ours for
-- simulated configs — resting orders still fill, positions and cash carry on — and the
-- commissions paid are summed from the fills. A new database copies nothing.
insert into paper.accounts (config_id, starting_cash, cash, created_at, updated_at)
select a.config_id, a.starting_cash, a.cash, a.created_at, a.updated_at
from public.accounts a join public.webhook_configs c on c.id = a.config_id
where c.broker = 'simulated';

insert into paper.orders (
    id, config_id, client_order_id, broker_order_id, parent_order_id, symbol, side, order_type,
    time_in_force, qty, limit_price, stop_price, trail_price, trail_percent, extended_hours,
    reference_price, status, status_code, status_message, filled_qty, filled_avg_price,
    triggered_at, submitted_at, filled_at, canceled_at, created_at, updated_at
)
select
    o.id, o.config_id, o.client_order_id, coalesce(o.broker_order_id, 'sim-' || o.id), o.parent_order_id,
    o.symbol, o.side, o.order_type, o.time_in_force, o.qty, o.limit_price, o.stop_price,
    o.trail_price, o.trail_percent, o.extended_hours, o.reference_price,
    case o.status when 'submitted' then 'accepted' else o.status end,
    o.status_code, o.status_message, o.filled_qty, o.filled_avg_price,
    (select min(e.created_at) from public.order_events e
     where e.order_id = o.id and e.event_type = 'OrderTriggered'),
    coalesce(o.submitted_at, o.created_at), o.filled_at, o.canceled_at, o.created_at, o.updated_at
from public.orders o join public.webhook_configs c on c.id = o.config_id
where c.broker = 'simulated' and o.status not in ('denied', 'pending_new');

insert into paper.fills (trade_id, order_id, config_id, symbol, side, qty, price, commission, filled_at)
select f.trade_id, f.order_id, f.config_id, f.symbol, f.side, f.last_qty, f.last_px, f.commission, f.filled_at
from public.fills f join public.webhook_configs c on c.id = f.config_id
where c.broker = 'simulated';

insert into paper.positions (
    config_id, symbol, qty, avg_entry_price, realized_pnl, last_price, opened_at, updated_at
)
select p.config_id, p.symbol, p.qty, p.avg_entry_price, p.realized_pnl, p.last_price, p.opened_at, p.updated_at
from public.positions p join public.webhook_configs c on c.id = p.config_id
where c.broker = 'simulated';

update public.accounts a
set commission_paid = coalesce((select sum(f.commission) from public.fills f where f.config_id = a.config_id), 0);
