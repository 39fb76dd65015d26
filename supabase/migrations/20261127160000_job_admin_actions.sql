-- What admins did to jobs through the admin API (POST /api/admin/jobs/<id>/retry | cancel |
-- run-now): who, what, when, on which job, and the result, including refusals (a 409 when the
-- job's state did not allow it, a 404 for an unknown id). Written in the same transaction as the
-- change it records, so a change is never without its record.
--
-- No foreign key to procrastinate_jobs: the record outlives the job (the retention cleanup
-- deletes old jobs; who retried or canceled what stays answerable).
--
-- Schema `private`: not exposed by Supabase's Data API; read by the admin API only
-- (GET /api/admin/audit, and each job's detail).
create schema if not exists private;

create table private.job_admin_actions (
    id bigint generated always as identity primary key,
    job_id bigint not null,
    action text not null check (action in ('retry', 'cancel', 'run_now')),
    -- done: the job changed (cancel of a running job: abort requested); refused: nothing changed.
    result text not null check (result in ('done', 'refused')),
    -- refused: the machine code answered (job_not_retryable, job_not_cancelable,
    -- job_not_scheduled, job_superseded, not_found).
    code text,
    -- procrastinate's status before and after (after = before when refused).
    from_status text,
    to_status text,
    message text not null,
    -- The admin: Supabase's `sub` and the token's email at the time.
    actor_id uuid not null,
    actor_email text,
    -- The signal of an execute_signal job, and what the action did to it (e.g. failed on cancel).
    signal_id uuid,
    at timestamptz not null default now()
);
create index job_admin_actions_job_idx on private.job_admin_actions (job_id, id);

-- The API roles get nothing (RLS on, no policy, no grant): the backend reads it as its own role.
alter table private.job_admin_actions enable row level security;
revoke all on private.job_admin_actions from public, anon, authenticated;
grant select, insert, delete on private.job_admin_actions to service_role;
