-- Door lock commands from staff to a cart: queued here, sent in the reply to the
-- cart's next telemetry, acknowledged by the cart in a later one. The newest
-- command of a cart wins: queuing one supersedes those still open.
CREATE TABLE cart_commands (
    id            INTEGER PRIMARY KEY,          -- what the cart sees as the command's id
    cart_id       TEXT NOT NULL REFERENCES carts(id) ON DELETE CASCADE,
    op            TEXT NOT NULL CHECK (op IN ('lock', 'unlock')),
    status        TEXT NOT NULL CHECK (status IN ('queued', 'sent', 'waiting', 'done', 'refused', 'superseded', 'expired')),
    detail        TEXT,
    requested_by  INTEGER REFERENCES users(id) ON DELETE SET NULL,
    requested_as  TEXT NOT NULL,                -- 'teacher', 'admin', or 'cli' (the hub admin's local command)
    requested_at  REAL NOT NULL,
    sent_at       REAL,
    sent_ctr      INTEGER,                      -- the counter of the request whose reply carried it
    acked_at      REAL
);
CREATE INDEX cart_commands_open ON cart_commands (cart_id) WHERE status IN ('queued', 'sent', 'waiting');
