-- Micro-lesson recordings, their transcription queue, transcripts, chapters and search.

-- One recorded lesson. The audio lives in <data_dir>/speech/<uuid>/ (media_file: what
-- the player plays; original uploads are kept as they came, live audio as a WAV).
CREATE TABLE speech_recordings (
    id            INTEGER PRIMARY KEY,
    uuid          TEXT NOT NULL UNIQUE,
    class_id      INTEGER NOT NULL REFERENCES classes(id) ON DELETE CASCADE,
    user_id       INTEGER REFERENCES users(id) ON DELETE SET NULL,
    title         TEXT NOT NULL,
    source        TEXT NOT NULL CHECK (source IN ('upload', 'live')),
    -- receiving: live audio still arriving; queued/transcribing/done/failed: see speech_jobs.
    state         TEXT NOT NULL CHECK (state IN ('receiving', 'queued', 'transcribing', 'done', 'failed')),
    media_file    TEXT,
    media_type    TEXT NOT NULL,
    media_bytes   INTEGER NOT NULL DEFAULT 0,
    started_at    REAL NOT NULL,           -- wall clock of second 0 (chapters map page changes onto it)
    duration_s    REAL,
    live_seq      INTEGER NOT NULL DEFAULT 0,  -- last live chunk appended (a retried chunk is not appended twice)
    live_updated  REAL,
    knowledge_points TEXT NOT NULL DEFAULT '[]',   -- [{"id":..,"name":..,"keywords":[..]}]
    request_id    TEXT UNIQUE,
    error         TEXT,
    audio_purged  INTEGER NOT NULL DEFAULT 0,
    created_at    REAL NOT NULL
);
CREATE INDEX speech_recordings_class ON speech_recordings (class_id, created_at);

-- The transcription queue. A job claimed by a worker that died (no heartbeat) is
-- claimed again and redone from the start: never lost.
CREATE TABLE speech_jobs (
    recording_id  INTEGER PRIMARY KEY REFERENCES speech_recordings(id) ON DELETE CASCADE,
    state         TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    worker        TEXT,
    heartbeat_at  REAL,
    queued_at     REAL NOT NULL,
    finished_at   REAL,
    rtf           REAL,
    error         TEXT
);
CREATE INDEX speech_jobs_state ON speech_jobs (state, queued_at);

-- Page changes of the lesson page push; chapters are built from them.
CREATE TABLE speech_page_changes (
    id        INTEGER PRIMARY KEY,
    class_id  INTEGER NOT NULL REFERENCES classes(id) ON DELETE CASCADE,
    at        REAL NOT NULL,
    page      TEXT NOT NULL,
    title     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX speech_page_changes_class_at ON speech_page_changes (class_id, at);

CREATE TABLE speech_chapters (
    id            INTEGER PRIMARY KEY,
    recording_id  INTEGER NOT NULL REFERENCES speech_recordings(id) ON DELETE CASCADE,
    idx           INTEGER NOT NULL,
    start_s       REAL NOT NULL,
    page          TEXT NOT NULL,
    title         TEXT NOT NULL,
    UNIQUE (recording_id, idx)
);

-- One utterance: its text, times and words [[word, start, end, conf], ...].
CREATE TABLE speech_segments (
    id            INTEGER PRIMARY KEY,
    recording_id  INTEGER NOT NULL REFERENCES speech_recordings(id) ON DELETE CASCADE,
    idx           INTEGER NOT NULL,
    start_s       REAL NOT NULL,
    end_s         REAL NOT NULL,
    text          TEXT NOT NULL,           -- as shown (spaces between Han characters removed)
    search_text   TEXT NOT NULL,           -- normalised for search (no spaces between CJK/Hangul characters)
    words         TEXT NOT NULL,
    chapter_idx   INTEGER,
    knowledge_points TEXT NOT NULL DEFAULT '[]',
    UNIQUE (recording_id, idx)
);

-- Full-text search. The trigram tokenizer indexes every 3-character window, so
-- Chinese and Korean (no spaces between words, or agglutinated words) match any
-- substring of 3+ characters; shorter queries use LIKE on the same table.
CREATE VIRTUAL TABLE speech_fts USING fts5(
    search_text, content='speech_segments', content_rowid='id', tokenize='trigram'
);
CREATE TRIGGER speech_segments_ai AFTER INSERT ON speech_segments BEGIN
    INSERT INTO speech_fts (rowid, search_text) VALUES (new.id, new.search_text);
END;
CREATE TRIGGER speech_segments_ad AFTER DELETE ON speech_segments BEGIN
    INSERT INTO speech_fts (speech_fts, rowid, search_text) VALUES ('delete', old.id, old.search_text);
END;
CREATE TRIGGER speech_segments_au AFTER UPDATE OF search_text ON speech_segments BEGIN
    INSERT INTO speech_fts (speech_fts, rowid, search_text) VALUES ('delete', old.id, old.search_text);
    INSERT INTO speech_fts (rowid, search_text) VALUES (new.id, new.search_text);
END;

-- What the worker last said about itself and its model (the hub shows it).
CREATE TABLE speech_worker_status (
    worker      TEXT PRIMARY KEY,
    model_state TEXT NOT NULL,   -- loading | ready | missing | corrupt
    detail      TEXT NOT NULL,
    model       TEXT,
    rss_bytes   INTEGER,
    updated_at  REAL NOT NULL
);
