-- Issue 17, items 3 and 4: a daily loss limit and approval mode per webhook config.

-- Daily loss limit (account currency; null = off) and whether a breach also flattens the config.
-- Approval mode: accepted alerts wait for a click (awaiting_approval) for at most
-- approval_timeout_seconds (1 s to 24 h), then expire.
alter table public.webhook_configs
    add column daily_loss_limit numeric check (daily_loss_limit is null or daily_loss_limit > 0),
    add column flatten_on_loss_limit boolean not null default false,
    add column approval_mode boolean not null default false,
    add column approval_timeout_seconds integer not null default 300
        check (approval_timeout_seconds between 1 and 86400);

-- A signal waiting for its owner's approval: awaiting_approval until approved (→ accepted, its
-- job deferred then), rejected by its owner, or expired (both → rejected with reject_code
-- approval_rejected / approval_expired). approval_decision says which, once.
alter table public.signals drop constraint signals_status_check;
alter table public.signals add constraint signals_status_check check (status in (
    'accepted', 'submitting', 'executed', 'ignored', 'denied', 'rejected', 'failed', 'duplicate',
    'awaiting_approval'));
alter table public.signals
    add column approval_expires_at timestamptz,
    add column approval_decision text check (approval_decision in ('approved', 'rejected', 'expired')),
    add column approval_decided_at timestamptz,
    add constraint signals_awaiting_has_expiry
        check (status <> 'awaiting_approval' or approval_expires_at is not null);
-- The expiry sweep and the approval queue read only waiting signals.
create index signals_awaiting_approval_idx on public.signals (approval_expires_at)
    where status = 'awaiting_approval';

-- One row per config and trading session whose loss limit was reached: the dashboard shows it
-- while now() < session_end; the unique key makes "first breach of the session" race-free.
create table public.loss_limit_breaches (
    id uuid primary key default gen_random_uuid(),
    user_id uuid not null,
    config_id uuid not null,
    session_start timestamptz not null,
    session_end timestamptz not null,
    loss_limit numeric not null,
    pnl numeric not null,
    symbol text,
    signal_id uuid,
    flatten_on_loss_limit boolean not null default false,
    breached_at timestamptz not null default now(),
    constraint loss_limit_breaches_session_key unique (config_id, session_start),
    foreign key (config_id, user_id) references public.webhook_configs (id, user_id) on delete cascade
);
create index loss_limit_breaches_user_idx on public.loss_limit_breaches (user_id, session_end desc);

alter table public.loss_limit_breaches enable row level security;
create policy loss_limit_breaches_select_own on public.loss_limit_breaches for select to authenticated
    using ((select auth.uid()) = user_id);
revoke all on public.loss_limit_breaches from anon;
grant select on public.loss_limit_breaches to authenticated;
grant select, insert, update, delete on public.loss_limit_breaches to service_role;
