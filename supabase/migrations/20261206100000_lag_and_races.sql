-- Right under lag and races (issue 15).
--
-- 1. A real row version on orders and positions: `version` goes up by one on every update (a
--    trigger, so no writer can forget it). Reconciliation reads it before asking the broker and
--    repairs only rows whose version is unchanged when it locks them: a write in flight when the
--    broker was read (whose transaction began earlier, so `updated_at`, set to the transaction's
--    start, would look older) still bumps it.
create function public.bump_version() returns trigger
language plpgsql as $$
begin
    new.version := old.version + 1;
    return new;
end;
$$;

alter table public.orders add column version bigint not null default 0;
create trigger orders_bump_version before update on public.orders
    for each row execute function public.bump_version();
alter table public.positions add column version bigint not null default 0;
create trigger positions_bump_version before update on public.positions
    for each row execute function public.bump_version();

-- 2. Resolving a pending_new order no job will send any more: how often the broker answered
--    "not found" for it (the order sync asks), and when first. Closed `never_submitted` only
--    after repeated not-found answers past a grace period.
alter table public.orders add column not_found_count integer not null default 0
    check (not_found_count >= 0);
alter table public.orders add column first_not_found_at timestamptz;

-- 3. Reports the ledger refused as impossible (both legs of an OCO filled, a terminal order
--    reported in another terminal status, a fill beyond the order's quantity): recorded here
--    instead of silently accepted or dropped; reconciliation counts them, and they are notified.
create table public.order_anomalies (
    id bigint generated always as identity primary key,
    config_id uuid not null,
    user_id uuid not null,
    order_id uuid references public.orders (id) on delete cascade,
    client_order_id text not null,
    -- oco_both_filled, terminal_to_terminal, overfill
    kind text not null check (kind in ('oco_both_filled', 'terminal_to_terminal', 'overfill')),
    -- What the broker reported and what our books hold (JSON, decimals as strings).
    detail jsonb not null default '{}'::jsonb,
    -- The same report seen twice is one anomaly.
    fingerprint text not null,
    created_at timestamptz not null default now(),
    foreign key (config_id, user_id) references public.webhook_configs (id, user_id) on delete cascade,
    unique (config_id, fingerprint)
);
create index order_anomalies_config_idx on public.order_anomalies (config_id, created_at desc);
alter table public.order_anomalies enable row level security;
create policy order_anomalies_select_own on public.order_anomalies for select to authenticated
    using ((select auth.uid()) = user_id);
revoke all on public.order_anomalies from anon;
grant select on public.order_anomalies to authenticated;
grant select, insert, update, delete on public.order_anomalies to service_role;

-- 4. One Alpaca account belongs to one config at a time: a digest of the account's key id (the
--    key id names the account; the secret stays encrypted) is unique across configs. Rows
--    stored before this migration have none until their keys are saved again.
alter table private.broker_credentials add column account_digest text;
create unique index broker_credentials_account_digest_key
    on private.broker_credentials (account_digest) where account_digest is not null;
grant insert (account_digest), update (account_digest) on private.broker_credentials to authenticated;
