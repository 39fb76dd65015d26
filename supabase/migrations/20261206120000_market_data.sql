-- Market data for paper trading (issue 16): a data source per config, bars pushed by TradingView,
-- the paper broker's buying power and bracket rule, marks with their time, and an equity series.

-- Per config: where prices come from, how a symbol is spelled there, how old a price may be,
-- the paper account's margin multiplier (1 = cash account; Alpaca paper: 2 overnight, 4
-- intraday for stocks, 1 for crypto) and which bracket leg fills when one bar crosses both.
alter table public.webhook_configs
    add column market_data_source text not null default 'tradingview'
        check (market_data_source ~ '^(tradingview|replay|alpaca|ccxt:[a-z0-9_]+)$'),
    add column market_data_symbols jsonb not null default '{}'::jsonb
        check (jsonb_typeof(market_data_symbols) = 'object'),
    add column max_quote_age_seconds integer
        check (max_quote_age_seconds is null or max_quote_age_seconds > 0),
    add column margin_multiplier numeric not null default 1
        check (margin_multiplier >= 1 and margin_multiplier <= 4),
    add column bracket_conflict text not null default 'stop_first'
        check (bracket_conflict in ('stop_first', 'target_first'));

-- When our mark (last_price) was taken: a bar's close time, an alert's time.
alter table public.positions add column last_price_at timestamptz;
alter table paper.positions
    add column last_price_at timestamptz,
    -- The open time of the last bar the paper exchange worked for this symbol: a bar at or before
    -- it is not worked again (a replayed bar or a retried job fills nothing twice).
    add column last_bar_at timestamptz;

-- Every bar message that reached a known config, applied or refused, with its raw body.
create table public.bars (
    id uuid primary key default gen_random_uuid(),
    user_id uuid not null,
    config_id uuid not null,
    status text not null check (status in ('accepted', 'applied', 'rejected', 'duplicate')),
    reject_code text,
    reject_message text,
    symbol text,
    interval text,
    bar_at timestamptz,
    interval_seconds integer,
    open numeric,
    high numeric,
    low numeric,
    close numeric,
    volume numeric,
    duplicate_of uuid,
    outcome_message text,
    raw_body text not null,
    source_ip inet,
    job_id bigint,
    received_at timestamptz not null default now(),
    applied_at timestamptz,
    foreign key (config_id, user_id) references public.webhook_configs (id, user_id) on delete cascade
);
-- One accepted bar per (config, symbol, interval, open time): a resend is a duplicate.
create unique index bars_one_per_time_idx on public.bars (config_id, symbol, interval, bar_at)
    where status in ('accepted', 'applied');
create index bars_config_received_idx on public.bars (config_id, received_at desc);
create index bars_latest_idx on public.bars (config_id, symbol, bar_at desc)
    where status in ('accepted', 'applied');

-- The paper account's equity after each applied bar: at most one point per bar per config.
create table public.equity_points (
    config_id uuid not null,
    user_id uuid not null,
    at timestamptz not null,
    equity numeric not null,
    cash numeric not null,
    primary key (config_id, at),
    foreign key (config_id, user_id) references public.webhook_configs (id, user_id) on delete cascade
);

do $rls$
declare
    t text;
begin
    foreach t in array array['bars', 'equity_points']
    loop
        execute format('alter table public.%I enable row level security', t);
        execute format('create policy %I on public.%I for select to authenticated '
                       'using ((select auth.uid()) = user_id)', t || '_select_own', t);
    end loop;
end
$rls$;
revoke all on public.bars, public.equity_points from anon, authenticated;
grant select on public.bars, public.equity_points to authenticated;
grant select, insert, update, delete on public.bars, public.equity_points to service_role;
