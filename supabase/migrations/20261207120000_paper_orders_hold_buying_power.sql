-- The paper exchange's open orders hold buying power, as Alpaca's do.
--
-- Alpaca ("Placing Orders", Buying Power: docs.alpaca.markets/docs/orders-at-alpaca): "your
-- available buying power is reduced by existing open buy long and sell short orders. Your sell
-- long and buy to cover orders do not replenish your available buying power until they are
-- executed." Until now the paper exchange counted only the positions held, so resting limit
-- buys of one account could together promise more than it could carry, and each was accepted.
--
-- opening_qty: the part of the order's quantity that opens a position or adds to one, fixed when
-- the exchange accepts it against the position then (a buy beyond what covers a short, a sell
-- beyond what closes a long); 0 for a leg (it closes), a refused order and every order placed
-- before this migration. While the order is open, least(opening_qty, qty - filled_qty) of it
-- holds buying power at its limit price (else stop, else the mark): fills take the closing part
-- first, so the unfilled rest of the opening part is what later fills would open
-- (viewzenix/brokers/paper_books.py, ACCOUNT_STATE_AND_EXPOSURE). A refused order may have any
-- qty (qty <= 0 is rejected invalid_order, and still recorded), hence greatest(qty, 0).
alter table paper.orders add column opening_qty numeric not null default 0;
alter table paper.orders add constraint paper_orders_opening_qty_check
    check (opening_qty >= 0 and opening_qty <= greatest(qty, 0)) not valid;
alter table paper.orders validate constraint paper_orders_opening_qty_check;
