-- Mains voltage of the cart's circuit: turns a slot's measured current into the
-- energy a tablet received, to infer its battery where the browser cannot report it.
ALTER TABLE carts ADD COLUMN volts REAL NOT NULL DEFAULT 220;
