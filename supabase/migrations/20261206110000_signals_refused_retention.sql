-- Refused alerts are purged after REFUSED_SIGNAL_RETENTION_DAYS by the hourly purge job
-- (viewzenix.services.intake.purge_refused_signals): this partial index finds them by age.
create index if not exists signals_rejected_received_idx
    on public.signals (received_at)
    where status = 'rejected';
