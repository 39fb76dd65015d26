-- One row per attempt to deliver a notification to one destination (apprise), with its outcome:
-- the worker's notify job (viewzenix/notifications/sending.py) writes one per run, the
-- "send a test" endpoint one per destination. Destinations themselves live, encrypted, in
-- webhook_configs.notification_preferences.
--
-- Schema `private`: not exposed by Supabase's Data API; read by the metrics endpoint and admins.
create schema if not exists private;

create table private.notification_deliveries (
    id bigint generated always as identity primary key,
    config_id uuid not null references public.webhook_configs (id) on delete cascade,
    -- notification_preferences.destinations[].id
    destination_id text not null,
    service text,
    -- order_filled, order_denied, order_rejected, signal_refused, job_failed, drift_found, test
    event text not null,
    -- procrastinate job and its run (1 = first); null for a test send.
    job_id bigint,
    attempt integer,
    -- sent; failed (the service refused or did not answer: retried while attempts remain);
    -- refused (SSRF check or undecryptable URL: never retried); skipped (destination removed
    -- or no longer wants the event).
    outcome text not null check (outcome in ('sent', 'failed', 'refused', 'skipped')),
    error text,
    duration_ms numeric(12, 3) not null default 0 check (duration_ms >= 0),
    -- The ids the event belongs to (signal_id, order_id...).
    context jsonb not null default '{}'::jsonb,
    created_at timestamptz not null default now()
);
create index notification_deliveries_config_created_idx
    on private.notification_deliveries (config_id, created_at);
create index notification_deliveries_job_idx on private.notification_deliveries (job_id)
    where job_id is not null;

revoke all on private.notification_deliveries from public, anon, authenticated;
grant select, insert, update, delete on private.notification_deliveries to service_role;
