-- Wake the workers when a job that held a lock finishes.
--
-- procrastinate 3.10 notifies workers only when a job is inserted. A job deferred while an
-- earlier job with the same lock (our per config+symbol lock) was running is skipped by the
-- fetch, and then waits for the next insert or for the worker's poll (5 s by default): a burst
-- of alerts on one symbol was executed one every ~5 s. This trigger sends the same
-- notification an insert sends ('job_inserted', on the job's queue channel and on the
-- any-queue channel, payload format of procrastinate's own
-- procrastinate_notify_queue_job_inserted_v1) when a locked job leaves 'doing'; the
-- notification is delivered at commit, when the lock is free.
create function public.viewzenix_notify_lock_released() returns trigger
language plpgsql as $$
declare
    payload text;
begin
    payload := json_build_object('type', 'job_inserted', 'job_id', new.id)::text;
    perform pg_notify('procrastinate_queue_v1#' || new.queue_name, payload);
    perform pg_notify('procrastinate_any_queue_v1', payload);
    return new;
end
$$;

create trigger viewzenix_notify_lock_released
    after update of status on public.procrastinate_jobs
    for each row
    when (old.status = 'doing' and new.status <> 'doing' and new.lock is not null)
    execute function public.viewzenix_notify_lock_released();
