-- Personalised learning: knowledge graph, item catalogue, answer history,
-- per-student model state and mastery, class settings, the active model.

-- A knowledge point (知识点). model_skill maps it onto a skill of the
-- knowledge-tracing network; NULL (or a skill the active model lacks) means the
-- BKT fallback tracks it.
CREATE TABLE learning_knowledge_points (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    subject     TEXT NOT NULL DEFAULT '',
    model_skill INTEGER,
    source      TEXT NOT NULL DEFAULT 'teacher',   -- 'package', 'district', 'teacher' or 'quiz' (a tag first seen on an item)
    updated_at  REAL NOT NULL
);

-- kp_id needs requires_id first. The graph is kept acyclic by the importer.
CREATE TABLE learning_prerequisites (
    kp_id       TEXT NOT NULL REFERENCES learning_knowledge_points(id) ON DELETE CASCADE,
    requires_id TEXT NOT NULL REFERENCES learning_knowledge_points(id) ON DELETE CASCADE,
    PRIMARY KEY (kp_id, requires_id),
    CHECK (kp_id <> requires_id)
);

-- The exercises the recommender may choose from, fed by register_items() (the
-- quiz bank, lesson packages). No answer keys here: only what choosing needs.
CREATE TABLE learning_items (
    id          TEXT PRIMARY KEY,
    difficulty  REAL NOT NULL CHECK (difficulty >= 0 AND difficulty <= 1),
    tier        TEXT NOT NULL CHECK (tier IN ('basic', 'advanced', 'extension')),
    source      TEXT NOT NULL DEFAULT 'quiz',
    active      INTEGER NOT NULL DEFAULT 1,
    updated_at  REAL NOT NULL
);

CREATE TABLE learning_item_kps (
    item_id TEXT NOT NULL REFERENCES learning_items(id) ON DELETE CASCADE,
    kp_id   TEXT NOT NULL REFERENCES learning_knowledge_points(id) ON DELETE CASCADE,
    PRIMARY KEY (item_id, kp_id)
);
CREATE INDEX learning_item_kps_kp ON learning_item_kps (kp_id);

-- Every answer the model has seen, in order: replayed when a new model is
-- installed, and the source of spacing and "hardest items".
CREATE TABLE learning_answers (
    id         INTEGER PRIMARY KEY,
    answer_id  TEXT UNIQUE,                 -- the caller's id, so a retried call counts once
    student_id INTEGER NOT NULL REFERENCES students(id) ON DELETE CASCADE,
    item_id    TEXT NOT NULL,
    kps        TEXT NOT NULL,               -- JSON list of knowledge point ids at answer time
    correct    INTEGER NOT NULL CHECK (correct IN (0, 1)),
    at         REAL NOT NULL
);
CREATE INDEX learning_answers_student ON learning_answers (student_id, id);
CREATE INDEX learning_answers_item ON learning_answers (item_id);

-- Per student and item: when it was last answered and when a wrong one comes
-- back (spaced re-practice: the interval grows with each right answer after it).
CREATE TABLE learning_item_progress (
    student_id  INTEGER NOT NULL REFERENCES students(id) ON DELETE CASCADE,
    item_id     TEXT NOT NULL,
    last_at     REAL NOT NULL,
    last_correct INTEGER NOT NULL,
    attempts    INTEGER NOT NULL,
    wrong       INTEGER NOT NULL,
    streak      INTEGER NOT NULL,            -- right answers since the last wrong one
    due_at      REAL,                        -- next re-practice of a once-wrong item; NULL: none due
    PRIMARY KEY (student_id, item_id)
);

-- The recurrent state of the network for one student (float32 blobs), so one
-- new answer costs one step. Rebuilt from learning_answers when model_version
-- differs from the active model.
CREATE TABLE learning_state (
    student_id    INTEGER PRIMARY KEY REFERENCES students(id) ON DELETE CASCADE,
    model_version TEXT NOT NULL,
    h             BLOB NOT NULL,
    c             BLOB NOT NULL,
    p             BLOB NOT NULL,            -- predicted success per model skill
    steps         INTEGER NOT NULL,
    last_answer   INTEGER NOT NULL,         -- learning_answers.id of the last step taken
    updated_at    REAL NOT NULL
);

-- BKT fallback: P(known) per student and knowledge point the network does not cover.
CREATE TABLE learning_bkt (
    student_id INTEGER NOT NULL REFERENCES students(id) ON DELETE CASCADE,
    kp_id      TEXT NOT NULL,
    p_known    REAL NOT NULL,
    answers    INTEGER NOT NULL,
    PRIMARY KEY (student_id, kp_id)
);

-- Evidence count per student and knowledge point (both model kinds), for
-- "no data yet" in the heatmap.
CREATE TABLE learning_evidence (
    student_id INTEGER NOT NULL REFERENCES students(id) ON DELETE CASCADE,
    kp_id      TEXT NOT NULL,
    answers    INTEGER NOT NULL,
    correct    INTEGER NOT NULL,
    last_at    REAL NOT NULL,
    PRIMARY KEY (student_id, kp_id)
);

-- The teacher's band of predicted success for recommended exercises.
CREATE TABLE learning_class_settings (
    class_id  INTEGER PRIMARY KEY REFERENCES classes(id) ON DELETE CASCADE,
    band_low  REAL NOT NULL,
    band_high REAL NOT NULL,
    updated_at REAL NOT NULL,
    CHECK (band_low > 0 AND band_low < band_high AND band_high < 1)
);

-- The installed knowledge-tracing model (one row: the active one). Workers
-- compare their loaded version with this row and reload on change.
CREATE TABLE learning_model (
    slot       TEXT PRIMARY KEY CHECK (slot = 'active'),
    version    TEXT NOT NULL,
    path       TEXT NOT NULL,
    sha256     TEXT NOT NULL,
    manifest   TEXT NOT NULL,
    installed_at REAL NOT NULL
);
