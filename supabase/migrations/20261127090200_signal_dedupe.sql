-- Duplicate alerts: a resend, or the same alert fired twice, becomes one signal.
--
-- Intake claims a dedupe key per accepted alert in public.signal_dedupe, in the statement that
-- reads the webhook config (viewzenix/repositories/webhook_configs.py, get_for_intake): the key
-- is the alert's explicit `id` (scoped by ticker and action) or else a hash of its body
-- (viewzenix/domain/dedupe.py). The first claimant of a live key owns it; a concurrent claimant
-- waits on the primary key until the first commits, then sees its row. A later alert with a live
-- key is stored as a `duplicate` signal pointing at the original (duplicate_of) and runs nothing.

-- Per config: how long a key stays claimed; 0 turns deduplication off. At most one day.
alter table public.webhook_configs
    add column dedupe_window_seconds integer not null default 60
        check (dedupe_window_seconds between 0 and 86400);

-- A duplicate row names the signal it repeats. No foreign key: its check would take a KEY SHARE
-- lock on the original, which waits while the worker's planning transaction holds that row FOR
-- UPDATE, and intake must answer within TradingView's 3 s. Both rows belong to one config and go
-- together when it is deleted.
alter table public.signals add column duplicate_of uuid;
alter table public.signals add constraint signals_duplicate_of_check
    check ((status = 'duplicate') = (duplicate_of is not null));
create index signals_duplicate_of_idx on public.signals (duplicate_of) where duplicate_of is not null;

-- One row per live key: which signal owns it until when. Expired rows are taken over by the
-- next claim of the same key, and purged (repositories/signal_dedupe.py, purge_expired). No index
-- on expires_at: it would cost every alert an index insert, and the purge scans a table that
-- holds about (alerts per second x window) rows.
create table public.signal_dedupe (
    config_id uuid not null references public.webhook_configs (id) on delete cascade,
    dedupe_key text not null,
    signal_id uuid not null,
    expires_at timestamptz not null,
    primary key (config_id, dedupe_key)
);

-- Backend only: RLS on with no policy, no grants to the API roles.
alter table public.signal_dedupe enable row level security;
revoke all on public.signal_dedupe from anon, authenticated;
grant select, insert, update, delete on public.signal_dedupe to service_role;
