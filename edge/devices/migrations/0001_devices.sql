-- Charging carts, their slots, the tablet fleet, check-out/in, alerts and firmware.

-- A cart and its link key. The key must be readable (HMAC needs it, a hash would
-- not do); the database is 0600 in a 0700 directory, like the hub secret.
CREATE TABLE carts (
    id          TEXT PRIMARY KEY,               -- what the cart sends as X-Cart-Id
    name        TEXT NOT NULL,
    slots       INTEGER NOT NULL CHECK (slots BETWEEN 1 AND 64),
    key_hex     TEXT NOT NULL,
    budget_w    REAL NOT NULL,
    class_id    INTEGER REFERENCES classes(id) ON DELETE SET NULL,
    last_ctr    INTEGER NOT NULL DEFAULT 0,     -- highest counter accepted (replay guard)
    fw          TEXT,
    target_fw   TEXT,                           -- set by a rollout
    last_seen   REAL,
    telemetry   TEXT,                           -- last accepted telemetry (JSON)
    outbox_at   REAL,                           -- last telemetry summary sent to the district
    created_at  REAL NOT NULL,
    disabled    INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE tablets (
    id          INTEGER PRIMARY KEY,
    serial      TEXT NOT NULL UNIQUE,
    model       TEXT NOT NULL DEFAULT '',
    device_id   INTEGER UNIQUE REFERENCES devices(id) ON DELETE SET NULL,
    student_id  INTEGER REFERENCES students(id) ON DELETE SET NULL,
    cart_id     TEXT REFERENCES carts(id) ON DELETE SET NULL,
    slot        INTEGER,                        -- home slot in the cart
    battery     REAL,                           -- 0..1, last known
    battery_at  REAL,
    battery_src TEXT,                           -- 'tablet' (browser) or 'cart' (inferred from current)
    created_at  REAL NOT NULL,
    UNIQUE (cart_id, slot)
);

-- Who has which tablet: one open row per tablet out of the cart.
CREATE TABLE checkouts (
    id          INTEGER PRIMARY KEY,
    tablet_id   INTEGER NOT NULL REFERENCES tablets(id) ON DELETE CASCADE,
    student_id  INTEGER REFERENCES students(id) ON DELETE SET NULL,
    out_at      REAL NOT NULL,
    in_at       REAL,
    in_source   TEXT                            -- 'staff' or 'cart' (seen docked)
);
CREATE UNIQUE INDEX checkouts_open ON checkouts (tablet_id) WHERE in_at IS NULL;

CREATE TABLE cart_alerts (
    id          INTEGER PRIMARY KEY,
    cart_id     TEXT REFERENCES carts(id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,                  -- not-returned, fault, thermal, rollout-stopped, ...
    detail      TEXT NOT NULL,
    created_at  REAL NOT NULL,
    cleared_at  REAL
);
CREATE INDEX cart_alerts_open ON cart_alerts (cart_id) WHERE cleared_at IS NULL;

-- Which class needs how many tablets from which cart, when (local time of day).
CREATE TABLE cart_timetable (
    id          INTEGER PRIMARY KEY,
    cart_id     TEXT NOT NULL REFERENCES carts(id) ON DELETE CASCADE,
    weekday     INTEGER NOT NULL CHECK (weekday BETWEEN 0 AND 6),
    starts      TEXT NOT NULL,                  -- HH:MM
    class_id    INTEGER REFERENCES classes(id) ON DELETE CASCADE,
    tablets     INTEGER NOT NULL CHECK (tablets BETWEEN 1 AND 64)
);

CREATE TABLE firmware_releases (
    version     TEXT PRIMARY KEY,
    manifest    TEXT NOT NULL,                  -- {"version", "files": [{name, sha256, size}]}
    path        TEXT NOT NULL,                  -- folder holding the files
    created_at  REAL NOT NULL
);

-- A rollout updates carts one at a time and stops by itself on a failure.
CREATE TABLE firmware_rollouts (
    id          INTEGER PRIMARY KEY,
    version     TEXT NOT NULL REFERENCES firmware_releases(version),
    carts       TEXT NOT NULL,                  -- JSON list of cart ids, in order
    position    INTEGER NOT NULL DEFAULT 0,     -- index of the cart being updated
    status      TEXT NOT NULL CHECK (status IN ('running', 'done', 'stopped')),
    detail      TEXT,
    started_at  REAL NOT NULL,
    step_at     REAL NOT NULL
);
