-- A paper fill's trade_id is unique per account, not globally (BrokerFill: "trade_id is unique
-- per account"; the paper broker derives it from the client_order_id, which Alpaca makes unique
-- per account only, so two configs may both have a fill "x-1"). Same key as public.fills.
alter table paper.fills drop constraint fills_pkey;
alter table paper.fills add primary key (config_id, trade_id);
