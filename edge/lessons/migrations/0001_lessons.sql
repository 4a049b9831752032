-- Installed lesson packages. One row per (lesson id, version); older versions stay
-- while a schedule refers to them.
CREATE TABLE lessons (
    id               INTEGER PRIMARY KEY,
    lesson_id        TEXT NOT NULL,
    version          INTEGER NOT NULL,
    title            TEXT NOT NULL,
    subject          TEXT NOT NULL,
    grade            INTEGER NOT NULL,
    chapter          TEXT NOT NULL,
    manifest         BLOB NOT NULL,     -- the exact signed bytes
    signature        TEXT NOT NULL,     -- base64 Ed25519 signature of manifest
    manifest_sha256  TEXT NOT NULL,
    total_bytes      INTEGER NOT NULL,
    installed_at     REAL NOT NULL,
    UNIQUE (lesson_id, version)
);

-- Every file of every lesson, by path inside the package; bytes live in the
-- content store under their sha256.
CREATE TABLE lesson_files (
    lesson      INTEGER NOT NULL REFERENCES lessons(id) ON DELETE CASCADE,
    path        TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    size        INTEGER NOT NULL,
    media_type  TEXT NOT NULL,
    PRIMARY KEY (lesson, path)
);
CREATE INDEX lesson_files_sha256 ON lesson_files (sha256);

-- The day's schedule: which lesson each class has in which period.
CREATE TABLE lesson_schedule (
    class_id    INTEGER NOT NULL REFERENCES classes(id) ON DELETE CASCADE,
    day         TEXT NOT NULL,          -- YYYY-MM-DD in hub.timezone
    period      INTEGER NOT NULL,
    lesson      INTEGER NOT NULL REFERENCES lessons(id),
    set_by      INTEGER REFERENCES users(id) ON DELETE SET NULL,
    set_at      REAL NOT NULL,
    PRIMARY KEY (class_id, day, period)
);
CREATE INDEX lesson_schedule_lesson ON lesson_schedule (lesson);

-- The page the teacher is showing, per class, so a reconnecting tablet lands on it.
CREATE TABLE lesson_current_page (
    class_id    INTEGER PRIMARY KEY REFERENCES classes(id) ON DELETE CASCADE,
    lesson      INTEGER NOT NULL REFERENCES lessons(id) ON DELETE CASCADE,
    page        INTEGER NOT NULL,
    at          REAL NOT NULL,
    set_by      INTEGER REFERENCES users(id) ON DELETE SET NULL
);

-- When each signed-in student's lesson view last checked in (who is online).
CREATE TABLE lesson_presence (
    student_id  INTEGER PRIMARY KEY REFERENCES students(id) ON DELETE CASCADE,
    class_id    INTEGER NOT NULL,
    seen_at     REAL NOT NULL
);
