-- The job queue's global pause, the archive of failed jobs, and admin actions that are not on
-- one job (pause, resume, sync of a table or a user).
create schema if not exists private;

-- One row: is automatic processing paused? Workers and the cron runner read it before each
-- fetch (viewzenix.jobs.PausableJobManager): while paused they take no new job; alerts are still
-- stored and their jobs queued. Changed only by POST /api/admin/queue/pause | resume.
create table private.job_queue_state (
    id boolean primary key default true check (id),
    paused boolean not null default false,
    reason text,
    changed_at timestamptz not null default now(),
    changed_by uuid,
    changed_by_email text
);
insert into private.job_queue_state (id) values (true);

alter table private.job_queue_state enable row level security;
revoke all on private.job_queue_state from public, anon, authenticated;
grant select, update on private.job_queue_state to service_role;

-- Failed and aborted jobs past the job retention (JOB_RETENTION_DAYS) move here with every
-- attempt (outcome, error text, traceback) and procrastinate's events, instead of staying in the
-- live queue table forever; kept JOB_ARCHIVE_RETENTION_DAYS. Searched by GET /api/admin/jobs/archive.
create table private.job_archive (
    id bigint generated always as identity primary key,
    job_id bigint not null unique,
    queue_name text not null,
    task_name text not null,
    lock text,
    queueing_lock text,
    args jsonb not null default '{}'::jsonb,
    status text not null,
    attempts integer not null,
    created_at timestamptz,
    ended_at timestamptz,
    last_error text,
    attempt_history jsonb not null default '[]'::jsonb,
    events jsonb not null default '[]'::jsonb,
    archived_at timestamptz not null default now()
);
create index job_archive_task_idx on private.job_archive (task_name, id);
create index job_archive_archived_at_idx on private.job_archive (archived_at);

alter table private.job_archive enable row level security;
revoke all on private.job_archive from public, anon, authenticated;
grant select, insert, delete on private.job_archive to service_role;

-- Admin actions on the queue as a whole and on the Supabase sync have no job: job_id may be
-- null, and `detail` holds what the action found (a drift report).
alter table private.job_admin_actions alter column job_id drop not null;
alter table private.job_admin_actions drop constraint job_admin_actions_action_check;
alter table private.job_admin_actions add constraint job_admin_actions_action_check
    check (action in ('retry', 'cancel', 'run_now', 'pause', 'resume', 'sync_table', 'sync_user'));
alter table private.job_admin_actions add column detail jsonb;
grant update on private.job_admin_actions to service_role;
