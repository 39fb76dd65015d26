-- The worker's fetch of its next job: procrastinate 3.10's procrastinate_fetch_job_v2, with a plan
-- that does not depend on the queue table's statistics.
--
-- Why. procrastinate_jobs is a queue: statistics taken while it is quiet (every job succeeded)
-- make the planner expect no todo job, and the partial indexes that hold queued jobs to be
-- empty, so that every scan of them costs one page. procrastinate's function then plans its
-- lock check ("no running job of this job's lock, and none waiting before it") as an anti-join
-- whose inner side is a full scan of a partial index, the lock a join filter: every fetch reads
-- every queued job's index entry. A parameterized look-up of the lock costs the same under
-- those statistics, and Postgres keeps the unparameterized path on a tie. Measured
-- (docs/scaling.md, "Seventh pass"): with 2,000 jobs queued, 1,700 index entries read a fetch;
-- with 10,000, a fetch and finish took 2.4 ms instead of 1.1, until autovacuum analyzes the
-- table. A live drain saw 3.5 ms a fetch (a bitmap scan of all queued jobs, the lock check run
-- for each, then a sort to keep one).
--
-- What changes, and only this:
-- * The lock check is written `jobs.lock IS NULL OR NOT EXISTS (...)`: the same rows pass as
--   through procrastinate's `NOT EXISTS (... jobs.lock IS NOT NULL AND ...)`. Under an OR,
--   Postgres does not turn the NOT EXISTS into a join (nor into a hashed subplan: it compares
--   priorities and ids, not only the lock). It stays a subplan run for each candidate, with
--   the candidate's lock as a parameter, and of the indexes it may use, the look-up of that
--   lock in viewzenix_procrastinate_jobs_lock_id_idx (lock, id) is the cheapest (a full scan of
--   procrastinate's (id, lock) index costs the same pages plus a filter on every entry). It
--   reads that lock's queued and running jobs only.
-- * enable_sort and enable_bitmapscan are off inside the function, so the candidates are walked
--   in order on procrastinate_jobs_priority_idx_v1 and the walk stops at the first free job,
--   instead of every queued job being collected, checked and sorted to keep one.
-- The rest (which job, its row lock and SKIP LOCKED, the update to doing, what is returned) is
-- procrastinate's; tests/integration/test_fetch_job.py checks that both functions pick the same
-- job, and that this one reads few index entries under stale statistics. procrastinate's
-- function is left as it is; only viewzenix.jobs.PausableJobManager calls this one. A
-- procrastinate upgrade that changes its fetch must be carried over here (the vendored-schema
-- test in tests/unit/test_supabase_layout.py flags every upgrade).
-- search_path is public, not empty: procrastinate's triggers on the updated row name its types
-- and tables unqualified.
create function private.fetch_job(target_queue_names character varying[], p_worker_id bigint)
    returns public.procrastinate_jobs
    language plpgsql
    set search_path = public
    set enable_sort = off
    set enable_bitmapscan = off
as $$
declare
    found_jobs public.procrastinate_jobs;
begin
    with candidate as (
        select jobs.*
            from public.procrastinate_jobs as jobs
            where
                -- reject the job if its lock has a running job, or one waiting with a higher
                -- priority (or the same priority, queued first)
                (jobs.lock is null or not exists (
                    select 1
                        from public.procrastinate_jobs as other_jobs
                        where
                            other_jobs.lock = jobs.lock
                            and (
                                other_jobs.status = 'doing'
                                or (
                                    other_jobs.status = 'todo'
                                    and (
                                        other_jobs.priority > jobs.priority
                                        or (other_jobs.priority = jobs.priority and other_jobs.id < jobs.id)
                                    )
                                )
                            )
                ))
                and jobs.status = 'todo'
                and (target_queue_names is null or jobs.queue_name = any(target_queue_names))
                and (jobs.scheduled_at is null or jobs.scheduled_at <= now())
            order by jobs.priority desc, jobs.id asc
            limit 1
            for update of jobs skip locked
    )
    update public.procrastinate_jobs
        set status = 'doing', worker_id = p_worker_id
        from candidate
        where procrastinate_jobs.id = candidate.id
        returning procrastinate_jobs.* into found_jobs;

    return found_jobs;
end;
$$;

revoke all on function private.fetch_job(character varying[], bigint) from public, anon, authenticated;
grant execute on function private.fetch_job(character varying[], bigint) to service_role;
