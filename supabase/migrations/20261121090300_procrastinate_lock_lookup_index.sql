-- Index the per-lock look-up in procrastinate_fetch_job_v2.
--
-- The fetch rejects a candidate job when another todo/doing job has the same lock; procrastinate
-- 3.10 indexes (id, lock), so each probe walks every earlier queued job. With a backlog of
-- alerts that made each fetch slower the longer the queue grew (a worker at 100 jobs/s fell
-- behind and never caught up). With the lock first, a probe reads only that lock's few jobs.
create index viewzenix_procrastinate_jobs_lock_id_idx on public.procrastinate_jobs (lock, id)
    where status in ('todo', 'doing') and lock is not null;
