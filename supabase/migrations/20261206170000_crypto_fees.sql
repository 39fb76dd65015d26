-- Crypto fees in the asset received (Alpaca: a crypto buy's fee is taken from the coins bought;
-- a sell's from the USD received, which is the fill's commission). Issue 15, item 11.
-- fee_qty: the asset quantity a buy's fee took (the position grows by qty - fee_qty).
alter table paper.fills add column fee_qty numeric not null default 0 check (fee_qty >= 0);
alter table public.fills add column fee_qty numeric not null default 0 check (fee_qty >= 0);
-- The paper broker's crypto fee rate per config, fraction of the notional; default Alpaca's
-- base-tier (30-day volume under $100,000) taker fee, 0.25 %.
alter table public.webhook_configs
    add column crypto_fee_rate numeric not null default 0.0025 check (crypto_fee_rate >= 0 and crypto_fee_rate < 1);
