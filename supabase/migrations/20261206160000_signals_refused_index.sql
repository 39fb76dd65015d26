-- The refused-signal purge deletes alerts refused at intake only (status 'rejected' with a
-- reject_code); a signal the broker rejected after it ran is 'rejected' without one and is kept
-- as trade history. The partial index follows the purge's predicate, so kept rows never
-- accumulate in it.
drop index if exists public.signals_rejected_received_idx;
create index if not exists signals_refused_received_idx
    on public.signals (received_at)
    where status = 'rejected' and reject_code is not null;
