-- A cancel that a signal decided on but the broker has not confirmed yet. Recorded before the
-- broker is called, so a job that dies between the two finds it again and asks the broker once
-- more (a cancel is idempotent at the broker).
alter table public.orders add column cancel_requested_at timestamptz;
alter table public.orders add column cancel_requested_by uuid references public.signals (id) on delete set null;
create index orders_cancel_requested_by_idx on public.orders (cancel_requested_by)
    where cancel_requested_by is not null;
