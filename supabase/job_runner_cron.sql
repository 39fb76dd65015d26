-- Viewzenix: run the job queue from Supabase's own scheduler (pg_cron + pg_net + Vault).
--
-- SUPABASE ONLY, OPTIONAL. Not a migration: it lives outside supabase/migrations/, so
-- `flask --app wsgi migrate` (and the test suite) never apply it. Use it when the deployment has no
-- worker process (`python -m viewzenix.worker`): every minute pg_cron calls
-- `POST <app>/api/jobs/run` through pg_net, and the web app runs the due jobs (see docs/operations.md,
-- "Cron-driven runner (Supabase)"). With a worker process running you do not need it.
--
-- Apply, once, after `flask --app wsgi migrate` and with JOB_QUEUE_RUNNER_SECRET set on the app:
--
--   1. Store the runner's URL and the secret in Vault (Dashboard > Project Settings > Vault, or SQL):
--        select vault.create_secret('https://<your app host>/api/jobs/run', 'viewzenix_job_runner_url',
--                                   'Viewzenix POST /api/jobs/run');
--        select vault.create_secret('<the JOB_QUEUE_RUNNER_SECRET value>', 'viewzenix_job_runner_secret',
--                                   'Viewzenix JOB_QUEUE_RUNNER_SECRET');
--      (to change one later: select vault.update_secret(id, '<new value>') with its id from
--      vault.secrets). The URL must begin with https:// (pg_net reports anything else as
--      "Out of memory"; run_job_queue refuses it with a clear message instead).
--   2. Run this file: SQL editor, or  psql "$DATABASE_URL" -f supabase/job_runner_cron.sql
--      It is safe to run again (it replaces its functions and views and updates the schedule).
--   3. Check it (monitoring, at the end of this file):
--        select * from private.job_runner_cron_runs order by start_time desc limit 10;
--        select * from private.job_runner_responses order by requested_at desc limit 10;
--
-- Stop it:  select cron.unschedule('viewzenix-job-runner');
--
-- What a call does: at most 50 job runs, none started after 20 s (the endpoint's `limit` and
-- `time_budget_s`), and each call first defers the periodic tasks that are due (stalled-job
-- recovery, purges, reconciliation), so a runner-only deployment keeps them. pg_net waits
-- `time_budget_s + 15` seconds for the answer (its default, 5 s, would cut every busy call short).

do $$
begin
    if to_regclass('vault.decrypted_secrets') is null then
        raise exception 'supabase/job_runner_cron.sql is for Supabase projects: it needs Supabase Vault '
            '(vault.decrypted_secrets), pg_cron and pg_net. Elsewhere run a worker process instead '
            '(python -m viewzenix.worker).';
    end if;
end
$$;

-- The extensions, unless their schemas are there already (enabled from the Dashboard).
do $$
begin
    if to_regnamespace('cron') is null then
        create extension if not exists pg_cron;
    end if;
    if to_regnamespace('net') is null then
        create extension if not exists pg_net;
    end if;
end
$$;

create schema if not exists private;

-- The request ids of our calls, so their answers can be told from other pg_net requests'
-- (net._http_response has no URL). Kept one day; pg_net keeps responses 6 hours (pg_net.ttl).
create table if not exists private.job_runner_requests (
    request_id bigint primary key,
    requested_at timestamptz not null default now(),
    max_jobs integer not null,
    time_budget_s integer not null
);
revoke all on private.job_runner_requests from public, anon, authenticated;

-- The HTTP request a runner call makes: {url, headers, body, timeout_milliseconds}.
-- Reads the URL and the secret from Vault; raises (SQLSTATE 22023) when either is missing, when
-- the URL does not begin with https:// (pg_net would fail with "Out of memory"), or when the
-- arguments are outside what POST /api/jobs/run accepts (it would answer 422).
create or replace function private.job_runner_request(max_jobs integer default 50, time_budget_s integer default 20)
returns jsonb
language plpgsql
stable
set search_path = ''
as $$
declare
    runner_url text;
    runner_secret text;
begin
    select btrim(s.decrypted_secret, E' \t\r\n') into runner_url
    from vault.decrypted_secrets s where s.name = 'viewzenix_job_runner_url';
    select s.decrypted_secret into runner_secret
    from vault.decrypted_secrets s where s.name = 'viewzenix_job_runner_secret';

    if runner_url is null or runner_url = '' then
        raise exception using errcode = '22023',
            message = 'no runner URL in Vault: store it as viewzenix_job_runner_url',
            hint = 'select vault.create_secret(''https://<your app host>/api/jobs/run'', ''viewzenix_job_runner_url'');';
    end if;
    if left(runner_url, 8) <> 'https://' then
        raise exception using errcode = '22023',
            message = format('the runner URL in Vault (viewzenix_job_runner_url) must begin with https://, got %L', runner_url),
            hint = 'pg_net fails with "Out of memory" on a URL without https://; update the secret with vault.update_secret.';
    end if;
    if runner_secret is null or length(runner_secret) < 32 then
        raise exception using errcode = '22023',
            message = 'no runner secret of at least 32 characters in Vault: store JOB_QUEUE_RUNNER_SECRET as viewzenix_job_runner_secret',
            hint = 'select vault.create_secret(''<JOB_QUEUE_RUNNER_SECRET>'', ''viewzenix_job_runner_secret'');';
    end if;
    if max_jobs is null or max_jobs not between 1 and 1000 then
        raise exception using errcode = '22023',
            message = format('max_jobs must be between 1 and 1000 (the endpoint''s limit), got %s', max_jobs);
    end if;
    if time_budget_s is null or time_budget_s not between 1 and 25 then
        raise exception using errcode = '22023',
            message = format('time_budget_s must be between 1 and 25 seconds, got %s', time_budget_s);
    end if;

    return jsonb_build_object(
        'url', runner_url,
        'headers', jsonb_build_object(
            'Content-Type', 'application/json',
            'Authorization', 'Bearer ' || runner_secret
        ),
        'body', jsonb_build_object('limit', max_jobs, 'time_budget_s', time_budget_s),
        -- The call lasts up to the budget plus the job running when it runs out.
        'timeout_milliseconds', (time_budget_s + 15) * 1000
    );
end
$$;

-- One runner call: queue the POST (pg_net sends it after this transaction commits) and return
-- pg_net's request id (its answer: private.job_runner_responses).
create or replace function private.run_job_queue(max_jobs integer default 50, time_budget_s integer default 20)
returns bigint
language plpgsql
volatile
set search_path = ''
as $$
declare
    request jsonb := private.job_runner_request(max_jobs, time_budget_s);
    call_id bigint;
begin
    call_id := net.http_post(
        url := request ->> 'url',
        body := request -> 'body',
        headers := request -> 'headers',
        timeout_milliseconds := (request ->> 'timeout_milliseconds')::integer
    );
    insert into private.job_runner_requests (request_id, max_jobs, time_budget_s)
    values (call_id, max_jobs, time_budget_s)
    on conflict on constraint job_runner_requests_pkey do nothing;
    delete from private.job_runner_requests where requested_at < now() - interval '1 day';
    return call_id;
end
$$;

-- They read the secret: the owner (postgres) and pg_cron only.
revoke all on function private.job_runner_request(integer, integer) from public, anon, authenticated;
revoke all on function private.run_job_queue(integer, integer) from public, anon, authenticated;

-- Every minute (pg_cron's finest cron step; pg_cron >= 1.5 also takes '30 seconds').
-- Calls that overlap are safe: each job runs once (FOR UPDATE SKIP LOCKED).
select cron.schedule('viewzenix-job-runner', '* * * * *', 'select private.run_job_queue()');

-- Monitoring --------------------------------------------------------------------------------------

-- pg_cron's last runs of the schedule. 'succeeded' means the POST was queued; a 'failed' run's
-- return_message says why (e.g. the https:// guard above).
create or replace view private.job_runner_cron_runs as
select d.runid, d.status, d.return_message, d.start_time, d.end_time
from cron.job_run_details d
join cron.job j on j.jobid = d.jobid
where j.jobname = 'viewzenix-job-runner';

-- What the endpoint answered: HTTP status, pg_net's error (timeouts, bad URLs), and from a 200
-- the run counts ({processed, succeeded, failed, stopped_by, results}). No row yet: not sent yet.
create or replace view private.job_runner_responses as
select
    q.request_id,
    q.requested_at,
    r.status_code,
    r.timed_out,
    r.error_msg,
    (a.answer ->> 'processed')::integer as processed,
    (a.answer ->> 'succeeded')::integer as succeeded,
    (a.answer ->> 'failed')::integer as failed,
    a.answer ->> 'stopped_by' as stopped_by,
    case when a.answer is null then left(r.content, 500) end as error_body,
    a.answer -> 'results' as results
from private.job_runner_requests q
left join net._http_response r on r.id = q.request_id
left join lateral (
    select r.content::jsonb as answer
    where r.status_code = 200 and r.content_type like 'application/json%'
) a on true;

revoke all on private.job_runner_cron_runs from public, anon, authenticated;
revoke all on private.job_runner_responses from public, anon, authenticated;
