-- Every run of every job, with its outcome and error text: procrastinate keeps a job's status and
-- its events (deferred, started, failed...) but no error text, so "why did this fail" needs this.
-- Written by the worker's middleware (viewzenix/jobs/attempts.py) once per run, when the run
-- ends; a run cut short by a dead worker is written by the stalled-job sweep (outcome
-- 'worker_died'). Deleting a job (the retention cleanup) deletes its attempts.
--
-- Schema `private`: not exposed by Supabase's Data API; read by the admin API only.
create schema if not exists private;

create table private.job_attempts (
    id bigint generated always as identity primary key,
    job_id bigint not null references public.procrastinate_jobs (id) on delete cascade,
    -- 1 for the first run; procrastinate's `attempts` counts finished runs, so this is attempts + 1.
    attempt integer not null check (attempt >= 1),
    task_name text not null,
    -- procrastinate's worker name, or 'runner' for the HTTP runner (POST /api/jobs/run).
    worker text,
    started_at timestamptz not null,
    finished_at timestamptz not null,
    duration_ms numeric(12, 3) not null check (duration_ms >= 0),
    -- succeeded; retrying (failed, will run again: the job's scheduled_at); failed (for good);
    -- aborted (canceled while running, or shut down); worker_died (its worker stopped beating).
    outcome text not null check (outcome in ('succeeded', 'retrying', 'failed', 'aborted', 'worker_died')),
    error_type text,
    error text,
    traceback text,
    -- The ids a run belongs to, for one-query answers (signal_id of an execute_signal job, and
    -- the order ids it recorded).
    context jsonb not null default '{}'::jsonb,
    unique (job_id, attempt)
);
create index job_attempts_started_at_idx on private.job_attempts (started_at);
create index job_attempts_outcome_started_at_idx on private.job_attempts (outcome, started_at)
    where outcome <> 'succeeded';

revoke all on private.job_attempts from public, anon, authenticated;
grant select, insert, update, delete on private.job_attempts to service_role;
