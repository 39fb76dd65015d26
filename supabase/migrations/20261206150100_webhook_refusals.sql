-- Refusals visible (issue 18): hits on a webhook that were refused before any signal could be
-- stored — an old or wrong token (404), over a rate limit (429) — counted per webhook and kind,
-- with the first and last time and the last reason, so the webhook page can say "3 alerts
-- refused since 14:02 with an old token". One row per (config, code): a flood adds to a count,
-- never rows. Refusals of a turned-off webhook are stored as rejected signals already.
create table public.webhook_refusals (
    config_id uuid not null references public.webhook_configs (id) on delete cascade,
    user_id uuid not null,
    code text not null,
    refused integer not null default 1,
    first_at timestamptz not null default now(),
    last_at timestamptz not null default now(),
    last_message text not null,
    primary key (config_id, code)
);
create index webhook_refusals_user_idx on public.webhook_refusals (user_id);

alter table public.webhook_refusals enable row level security;
create policy webhook_refusals_select_own on public.webhook_refusals for select to authenticated
    using ((select auth.uid()) = user_id);
revoke all on public.webhook_refusals from anon, authenticated;
grant select on public.webhook_refusals to authenticated;
grant select, insert, update, delete on public.webhook_refusals to service_role;
