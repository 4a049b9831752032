-- The appliance core: identity, accounts, roster, devices, sessions, attendance,
-- the outbox for the district and the live-event log shared by all workers.

CREATE TABLE hub_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Staff accounts: the school's IT admin and teachers.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE COLLATE NOCASE,
    display_name  TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'teacher')),
    password_hash TEXT NOT NULL,
    failed_logins INTEGER NOT NULL DEFAULT 0,
    locked_until  REAL,
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_at    REAL NOT NULL
);

CREATE TABLE classes (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL
);

CREATE TABLE class_teachers (
    class_id INTEGER NOT NULL REFERENCES classes(id) ON DELETE CASCADE,
    user_id  INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (class_id, user_id)
);

-- Students are children: name, school number and a PIN hash, nothing more.
-- pseudo_id is what the district sees.
CREATE TABLE students (
    id           INTEGER PRIMARY KEY,
    class_id     INTEGER NOT NULL REFERENCES classes(id) ON DELETE CASCADE,
    number       TEXT NOT NULL,
    name         TEXT NOT NULL,
    pin_hash     TEXT NOT NULL,
    pseudo_id    TEXT NOT NULL UNIQUE,
    failed_pins  INTEGER NOT NULL DEFAULT 0,
    locked_until REAL,
    active       INTEGER NOT NULL DEFAULT 1,
    created_at   REAL NOT NULL,
    UNIQUE (class_id, number)
);

CREATE TABLE pairing_codes (
    id          INTEGER PRIMARY KEY,
    code_hash   TEXT NOT NULL,
    class_id    INTEGER REFERENCES classes(id) ON DELETE CASCADE,
    kind        TEXT NOT NULL CHECK (kind IN ('student', 'teacher')),
    created_by  INTEGER NOT NULL REFERENCES users(id),
    created_at  REAL NOT NULL,
    expires_at  REAL NOT NULL,
    max_uses    INTEGER NOT NULL,
    uses        INTEGER NOT NULL DEFAULT 0,
    withdrawn   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX pairing_codes_open ON pairing_codes (expires_at) WHERE withdrawn = 0;

-- Failed guesses, hub-wide and per source address, for brute-force limits.
CREATE TABLE auth_failures (
    id        INTEGER PRIMARY KEY,
    kind      TEXT NOT NULL,
    source    TEXT NOT NULL,
    at        REAL NOT NULL
);
CREATE INDEX auth_failures_kind_at ON auth_failures (kind, at);

CREATE TABLE devices (
    id          INTEGER PRIMARY KEY,
    uuid        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('student', 'teacher')),
    class_id    INTEGER REFERENCES classes(id) ON DELETE SET NULL,
    token_hash  TEXT NOT NULL UNIQUE,
    enrolled_at REAL NOT NULL,
    expires_at  REAL NOT NULL,
    last_seen   REAL,
    revoked_at  REAL
);

-- Sign-in sessions. Tokens are stored only as sha256 hashes.
CREATE TABLE sessions (
    id          INTEGER PRIMARY KEY,
    token_hash  TEXT NOT NULL UNIQUE,
    user_id     INTEGER REFERENCES users(id) ON DELETE CASCADE,
    student_id  INTEGER REFERENCES students(id) ON DELETE CASCADE,
    device_id   INTEGER REFERENCES devices(id) ON DELETE CASCADE,
    created_at  REAL NOT NULL,
    expires_at  REAL NOT NULL,
    ended_at    REAL,
    CHECK ((user_id IS NULL) <> (student_id IS NULL))
);

CREATE TABLE attendance (
    id           INTEGER PRIMARY KEY,
    student_id   INTEGER NOT NULL REFERENCES students(id) ON DELETE CASCADE,
    day          TEXT NOT NULL,
    first_seen   REAL NOT NULL,
    last_seen    REAL NOT NULL,
    device_id    INTEGER REFERENCES devices(id) ON DELETE SET NULL,
    sign_ins     INTEGER NOT NULL DEFAULT 1,
    UNIQUE (student_id, day)
);

-- Events for the district, written in the same transaction as the change.
CREATE TABLE outbox (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id   TEXT NOT NULL UNIQUE,
    type       TEXT NOT NULL,
    schema     INTEGER NOT NULL DEFAULT 1,
    payload    TEXT NOT NULL,
    created_at REAL NOT NULL
);

-- Files the district sent, verified, waiting for the installer of their kind.
CREATE TABLE inbox (
    id          INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL,
    path        TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    received_at REAL NOT NULL,
    installed_at REAL,
    error       TEXT
);

-- Live events fanned out to SSE listeners in every worker process.
CREATE TABLE live_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    channel    TEXT NOT NULL,
    type       TEXT NOT NULL,
    data       TEXT NOT NULL,
    created_at REAL NOT NULL
);

-- Client-generated ids of writes already applied, so a retried write is harmless.
CREATE TABLE idempotency_keys (
    key         TEXT PRIMARY KEY,
    scope       TEXT NOT NULL,
    request_sha TEXT NOT NULL,
    status      INTEGER NOT NULL,
    response    TEXT NOT NULL,
    created_at  REAL NOT NULL
);
