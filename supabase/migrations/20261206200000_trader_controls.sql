-- Trader controls (issue 17, items 1-2): close and flatten, trading windows.
--
-- signals.source: who sent a signal. 'tradingview' (every alert on a webhook URL, the default),
-- 'manual' (a close / flatten clicked in the dashboard or sent by API), 'schedule' (a config's
-- auto-flatten or auto-cancel at its trading window's end). Lower-case words, so later controls
-- (a loss limit's flatten) can add theirs without a migration.
alter table public.signals
    add column source text not null default 'tradingview' check (source ~ '^[a-z_]{1,32}$');

-- A config's trading windows (null: none, every entry passes): see viewzenix/domain/windows.py
-- for the shape, checked by the API before it is stored.
alter table public.webhook_configs
    add column trading_windows jsonb check (trading_windows is null or jsonb_typeof(trading_windows) = 'object');

-- What the periodic auto-flatten / auto-cancel did, one row per config, session date and kind
-- ('flatten', or 'cancel@HH:MM' for the window ending then): the row is the "once per session"
-- claim, inserted before the signals it sends, in their transaction.
create table public.scheduled_controls (
    config_id uuid not null references public.webhook_configs (id) on delete cascade,
    user_id uuid not null,
    session_date date not null,
    kind text not null check (kind ~ '^(flatten|cancel@[0-2][0-9]:[0-5][0-9])$'),
    ran_at timestamptz not null default now(),
    result jsonb,
    primary key (config_id, session_date, kind)
);
create index scheduled_controls_user_idx on public.scheduled_controls (user_id);

alter table public.scheduled_controls enable row level security;
create policy scheduled_controls_select_own on public.scheduled_controls for select to authenticated
    using ((select auth.uid()) = user_id);
revoke all on public.scheduled_controls from anon, authenticated;
grant select on public.scheduled_controls to authenticated;
grant select, insert, update, delete on public.scheduled_controls to service_role;
