-- Graded answers waiting for their mastery update (edge/learning/pending.py). The quiz's
-- answer commit appends them, in the same transaction as the grade; the update runs just
-- after, outside the answers' acknowledgement, and deletes the rows it applied in its own
-- transaction: a crash in between leaves them here to be applied at the next chance.
CREATE TABLE learning_pending (
    id         INTEGER PRIMARY KEY,
    student_id INTEGER NOT NULL,
    item_id    TEXT NOT NULL,
    kps        TEXT,                -- JSON list of knowledge point ids; NULL: the item's own tags
    correct    INTEGER NOT NULL CHECK (correct IN (0, 1)),
    at         REAL NOT NULL,
    answer_id  TEXT,
    queued_at  REAL NOT NULL        -- wall clock, for the lag metric
);
