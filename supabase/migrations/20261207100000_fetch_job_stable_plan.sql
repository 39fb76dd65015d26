-- The worker's fetch of its next job: procrastinate 3.10's procrastinate_fetch_job_v2, with a plan
-- that reads a lock's jobs, not the whole backlog, whatever the queue table's statistics say.
--
-- Why. procrastinate_jobs is a queue: statistics taken while it is quiet (every job succeeded)
-- make the planner expect no todo job, and the partial indexes that hold queued jobs to be
-- empty, so that every scan of them costs one page. procrastinate's function then plans its
-- lock check ("no running job of this job's lock, and none waiting before it") as an anti-join
-- whose inner side is a full scan of a partial index, the lock a join filter: every fetch reads
-- every queued job's index entry. A parameterized look-up of the lock costs the same under
-- those statistics, and Postgres keeps the unparameterized path on a tie. `make bench-fetch`
-- (docs/scaling.md, "Seventh pass"): with 2,000 jobs queued, 1,861 index entries read a fetch;
-- with 10,000, 9,861, and a fetch and finish took 2.2-2.4 ms instead of the 0.8-0.9 it takes
-- under fresh statistics, until autovacuum analyzes the table. A live drain saw 3.5 ms a fetch.
--
-- What changes, and only this:
-- * The lock check is written `jobs.lock IS NULL OR NOT EXISTS (...)`: the same rows pass as
--   through procrastinate's `NOT EXISTS (... jobs.lock IS NOT NULL AND ...)`. Under an OR,
--   Postgres does not turn the NOT EXISTS into a join (nor into a hashed subplan: it compares
--   priorities and ids, not only the lock). It stays a subplan run for each candidate, with the
--   candidate's lock as a parameter, looked up in viewzenix_procrastinate_jobs_lock_id_idx
--   (lock, id): that lock's queued and running jobs only.
-- * procrastinate's (id, lock) index is dropped. The lock is its second column, so a look-up of
--   one lock in it walks every queued job's entry, and under quiet statistics it costs the
--   planner as little as ours and was the one chosen. Dropping it also spares every job's
--   insert and status change one index entry. Besides procrastinate's fetch, /healthz's
--   signals_waiting and /metrics' queue depth read it (status in todo, doing); they now count
--   each status through its own partial index (viewzenix/health.py, viewzenix/metrics.py). No
--   migration of procrastinate 3.10 after 03.00.00_50 (which creates it) names it; a later one
--   that drops it without IF EXISTS would fail when added here, and say why.
-- * enable_seqscan is off inside the function. With fresh statistics the planner expects a
--   busy lock's check to find a blocking job within a few rows and plans it as a sequential
--   scan; a free lock has none, so the scan reads the whole table (1.6 ms a fetch and finish
--   with 10,000 queued, against 0.8-1.0 with the index).
-- * enable_sort is off inside the function, so that the candidates can only be walked in order
--   on procrastinate_jobs_priority_idx_v1, stopping at the first free job. A live drain under
--   stale statistics ran procrastinate's fetch as a bitmap scan of all 1,163 queued jobs, the
--   lock check for each, then a sort to keep one (6.7 ms). Sorting plans were reproduced for
--   procrastinate's function (statistics taken on a near-empty table), never for this one, so
--   this setting is a guard that no test shows.
-- The rest (which job, its row lock and SKIP LOCKED, the update to doing, what is returned) is
-- procrastinate's; tests/integration/test_fetch_job.py checks that both functions pick the same
-- job, and what this one reads and scans under four kinds of statistics. procrastinate's
-- function is left as it is; only viewzenix.jobs.PausableJobManager calls this one (a worker
-- of the previous release, still running during a deploy, keeps calling procrastinate's,
-- slower without the dropped index until it stops). A procrastinate upgrade that changes its
-- fetch must be carried over here (the vendored-schema test in tests/unit/test_supabase_layout.py
-- flags every upgrade). search_path is public, not empty: procrastinate's triggers on the
-- updated row name its types and tables unqualified.
--
-- DROP INDEX takes an ACCESS EXCLUSIVE lock on procrastinate_jobs, which every intake (its job
-- insert) and every worker's fetch touch. Queued behind a long transaction on that table, it
-- would hold all of them back while it waits: an alert's intake gives up after the web's lock
-- timeout (WEB_DB_LOCK_TIMEOUT_MS, 1 s by default) and answers 503 database_busy. So this waits
-- 500 ms at most (lock_timeout, this migration's transaction only), half of that default: past
-- it the migration fails with lock_not_available, is rolled back whole, and runs again at the
-- next `flask --app wsgi migrate` or deploy (docs/operations.md).
set local lock_timeout = '500ms';
drop index public.procrastinate_jobs_id_lock_idx_v1;

create function private.fetch_job(target_queue_names character varying[], p_worker_id bigint)
    returns public.procrastinate_jobs
    language plpgsql
    set search_path = public
    set enable_sort = off
    set enable_seqscan = off
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
