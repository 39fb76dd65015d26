-- One spelling per instrument in the books written before canonical symbols (issue 15 item 5).
--
-- Execution, the paper exchange and reconciliation now use viewzenix.domain.symbols
-- .canonical_symbol (BTCUSD, BTC-USD -> BTC/USD; BTCUSDT -> BTC/USDT; equities unchanged), but
-- rows written before it keep the alert's spelling: a paper position held as BTCUSD was then
-- invisible to the next BTCUSD alert (now BTC/USD), which saw the account flat and ignored an
-- exit. This renames those rows once. The rule below is that function's, as of this migration
-- (tests/integration/test_canonical_symbols_migration.py compares the two); it lives in
-- pg_temp and is dropped at the end.
create or replace function pg_temp.canonical_symbol(raw text) returns text
language sql immutable as $$
    select case
        when s ~ '^[A-Z0-9]+[/-](USDT|USDC|BUSD|USD|BTC|ETH)$' then regexp_replace(s, '[/-]', '/')
        when position('/' in s) > 0 or length(s) <= 5 then s
        when right(s, 4) in ('USDT', 'USDC', 'BUSD') then left(s, -4) || '/' || right(s, 4)
        when right(s, 3) in ('USD', 'BTC', 'ETH') then left(s, -3) || '/' || right(s, 3)
        else s
    end
    from (select upper(btrim(raw)) as s) as spelled
$$;

-- Positions: one row per (config, symbol). An empty row under the canonical spelling (made by
-- the new code's first look before this ran) gives way to the old row holding the position;
-- two non-empty rows of one instrument are left as they are for a person to merge.
delete from public.positions c
using public.positions o
where o.config_id = c.config_id and o.symbol <> c.symbol
  and pg_temp.canonical_symbol(o.symbol) = c.symbol
  and c.qty = 0 and c.realized_pnl = 0;
update public.positions p set symbol = pg_temp.canonical_symbol(p.symbol)
where p.symbol <> pg_temp.canonical_symbol(p.symbol)
  and (select count(*) from public.positions q
       where q.config_id = p.config_id
         and pg_temp.canonical_symbol(q.symbol) = pg_temp.canonical_symbol(p.symbol)) = 1;

delete from paper.positions c
using paper.positions o
where o.config_id = c.config_id and o.symbol <> c.symbol
  and pg_temp.canonical_symbol(o.symbol) = c.symbol
  and c.qty = 0 and c.realized_pnl = 0;
update paper.positions p set symbol = pg_temp.canonical_symbol(p.symbol)
where p.symbol <> pg_temp.canonical_symbol(p.symbol)
  and (select count(*) from paper.positions q
       where q.config_id = p.config_id
         and pg_temp.canonical_symbol(q.symbol) = pg_temp.canonical_symbol(p.symbol)) = 1;

-- Orders and fills: no key on the symbol.
update public.orders set symbol = pg_temp.canonical_symbol(symbol)
where symbol <> pg_temp.canonical_symbol(symbol);
update public.fills set symbol = pg_temp.canonical_symbol(symbol)
where symbol <> pg_temp.canonical_symbol(symbol);
update paper.orders set symbol = pg_temp.canonical_symbol(symbol)
where symbol <> pg_temp.canonical_symbol(symbol);
update paper.fills set symbol = pg_temp.canonical_symbol(symbol)
where symbol <> pg_temp.canonical_symbol(symbol);

drop function pg_temp.canonical_symbol(text);
