-- Capital changes (issue 18): a webhook's starting cash changed after it was created is a
-- deposit or a withdrawal at that moment, recorded here and drawn as a step on the equity curve,
-- instead of rewriting the account's history.
--
-- The trigger records every change of webhook_configs.starting_cash (whoever makes it: the API,
-- SQL, a Supabase dashboard edit), and when the account is open it moves the money in our books
-- (public.accounts) and in the simulated broker's own account (paper.accounts) alike, so the
-- curve, the current equity and the paper broker's buying power keep agreeing. Before the
-- account is opened (no fill yet) only the record is written: the account opens with the new
-- starting cash, and the curve shows the change at its time.
create table public.capital_changes (
    id bigint generated always as identity primary key,
    config_id uuid not null references public.webhook_configs (id) on delete cascade,
    user_id uuid not null,
    at timestamptz not null default now(),
    starting_cash_before numeric not null,
    starting_cash_after numeric not null,
    amount numeric generated always as (starting_cash_after - starting_cash_before) stored
);
create index capital_changes_config_idx on public.capital_changes (config_id, at);
create index capital_changes_user_idx on public.capital_changes (user_id);

alter table public.capital_changes enable row level security;
create policy capital_changes_select_own on public.capital_changes for select to authenticated
    using ((select auth.uid()) = user_id);
revoke all on public.capital_changes from anon, authenticated;
grant select on public.capital_changes to authenticated;
grant select, insert, update, delete on public.capital_changes to service_role;

create function public.record_capital_change() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
    insert into public.capital_changes (config_id, user_id, starting_cash_before, starting_cash_after)
    values (new.id, new.user_id, old.starting_cash, new.starting_cash);
    update public.accounts
        set cash = cash + (new.starting_cash - old.starting_cash),
            starting_cash = starting_cash + (new.starting_cash - old.starting_cash)
        where config_id = new.id;
    update paper.accounts
        set cash = cash + (new.starting_cash - old.starting_cash),
            starting_cash = starting_cash + (new.starting_cash - old.starting_cash)
        where config_id = new.id;
    return new;
end
$$;
revoke all on function public.record_capital_change() from public, anon, authenticated;

create trigger webhook_configs_capital_change after update of starting_cash on public.webhook_configs
    for each row when (old.starting_cash is distinct from new.starting_cash)
    execute function public.record_capital_change();
