-- The daily loss limit's flatten (issue 17, item 3): a breach of a config with
-- flatten_on_loss_limit is flattened once. flattened_at is the claim, set in the transaction that
-- stores the flatten's signals (services/flatten.py flatten_loss_limit_breaches): the job that found
-- the breach flattens at once; the minute's scheduled-controls task picks up any it missed (a
-- worker that stopped between the two).
alter table public.loss_limit_breaches add column flattened_at timestamptz;
create index loss_limit_breaches_flatten_due_idx on public.loss_limit_breaches (config_id)
    where flatten_on_loss_limit and flattened_at is null;
