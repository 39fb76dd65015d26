-- The paper exchange's open orders hold buying power, as Alpaca's do.
--
-- Alpaca ("Placing Orders", Buying Power: docs.alpaca.markets/docs/orders-at-alpaca): "your
-- available buying power is reduced by existing open buy long and sell short orders. Your sell
-- long and buy to cover orders do not replenish your available buying power until they are
-- executed." Until now the paper exchange counted only the positions held, so resting limit
-- buys of one account could together promise more than it could carry, and each was accepted.
--
-- opening_qty: the part of the order's quantity that opened or added to a position when the
-- exchange accepted it (a buy beyond a short's cover, a sell beyond a long's close); 0 for a leg
-- (it closes), a refused order and every order placed before this migration. While the order is
-- open, least(opening_qty, qty - filled_qty) of it holds buying power at its limit price (stop
-- price for a stop): fills take the closing part first, so what is still unfilled of the opening
-- part is what a later fill would add (viewzenix/brokers/paper_books.py, ACCOUNT_STATE_AND_EXPOSURE).
alter table paper.orders
    add column opening_qty numeric not null default 0,
    add constraint paper_orders_opening_qty_check check (opening_qty >= 0 and opening_qty <= qty);
