-- In-class quizzes: the question bank, live sessions, answers and their grading.
-- Keys and explanations live in their own columns so that the student-facing
-- views (edge/quiz/views.py) select only public columns.

CREATE TABLE quiz_items (
    id               INTEGER PRIMARY KEY,
    uid              TEXT NOT NULL UNIQUE,          -- stable id (xAPI activity id, import dedupe)
    type             TEXT NOT NULL CHECK (type IN ('single', 'multiple', 'truefalse', 'fill', 'numeric', 'short')),
    stem             TEXT NOT NULL,
    options          TEXT NOT NULL DEFAULT '[]',    -- JSON list of option texts (choice types)
    answer_key       TEXT NOT NULL,                 -- JSON, see edge/quiz/items.py; never sent to a student before close
    explanation      TEXT NOT NULL DEFAULT '',
    difficulty       INTEGER CHECK (difficulty BETWEEN 1 AND 5),
    knowledge_points TEXT NOT NULL DEFAULT '[]',    -- JSON list of tags
    points           REAL NOT NULL DEFAULT 1 CHECK (points > 0),
    allow_photo      INTEGER NOT NULL DEFAULT 0,
    source           TEXT NOT NULL DEFAULT '',      -- "gift:file.txt#3", "manual", ...
    content_sha      TEXT NOT NULL,                 -- re-importing the same question is a no-op
    created_by       INTEGER REFERENCES users(id) ON DELETE SET NULL,
    created_at       REAL NOT NULL
);
CREATE INDEX quiz_items_sha ON quiz_items (content_sha);

CREATE TABLE quizzes (
    id         INTEGER PRIMARY KEY,
    title      TEXT NOT NULL,
    source     TEXT NOT NULL DEFAULT '',
    created_by INTEGER REFERENCES users(id) ON DELETE SET NULL,
    created_at REAL NOT NULL
);

CREATE TABLE quiz_quiz_items (
    quiz_id  INTEGER NOT NULL REFERENCES quizzes(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    item_id  INTEGER NOT NULL REFERENCES quiz_items(id),
    PRIMARY KEY (quiz_id, position)
);

-- A live session: a quiz or a single question pushed to one class.
CREATE TABLE quiz_sessions (
    id           INTEGER PRIMARY KEY,
    uuid         TEXT NOT NULL UNIQUE,               -- xAPI context.registration
    class_id     INTEGER NOT NULL REFERENCES classes(id) ON DELETE CASCADE,
    quiz_id      INTEGER REFERENCES quizzes(id) ON DELETE SET NULL,
    title        TEXT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('quiz', 'question', 'exit_ticket')),
    allow_change INTEGER NOT NULL DEFAULT 1,         -- answers may change until submit/close
    grace_s      REAL NOT NULL,                      -- offline answers accepted this long after close
    time_limit_s REAL,
    started_by   INTEGER REFERENCES users(id) ON DELETE SET NULL,
    started_at   REAL NOT NULL,
    closed_at    REAL
);
CREATE INDEX quiz_sessions_class ON quiz_sessions (class_id, closed_at);

CREATE TABLE quiz_session_items (
    session_id INTEGER NOT NULL REFERENCES quiz_sessions(id) ON DELETE CASCADE,
    item_id    INTEGER NOT NULL REFERENCES quiz_items(id),
    position   INTEGER NOT NULL,
    opened_at  REAL NOT NULL,
    closes_at  REAL,                                 -- timed: the deadline
    closed_at  REAL,                                 -- closed by the teacher or the session
    PRIMARY KEY (session_id, item_id)
);

-- The current answer of a student to a question of a session (one row; changes update it).
CREATE TABLE quiz_answers (
    id          INTEGER PRIMARY KEY,
    session_id  INTEGER NOT NULL REFERENCES quiz_sessions(id) ON DELETE CASCADE,
    item_id     INTEGER NOT NULL REFERENCES quiz_items(id),
    student_id  INTEGER NOT NULL REFERENCES students(id) ON DELETE CASCADE,
    client_id   TEXT NOT NULL,                       -- the submission that set the current value
    response    TEXT NOT NULL,                       -- JSON
    final       INTEGER NOT NULL DEFAULT 0,          -- submitted (no more changes)
    client_time REAL NOT NULL,
    received_at REAL NOT NULL,
    correct     INTEGER,                             -- NULL: waits for the teacher (short answer)
    score       REAL,
    marked_by   INTEGER REFERENCES users(id) ON DELETE SET NULL,
    changes     INTEGER NOT NULL DEFAULT 0,
    UNIQUE (session_id, item_id, student_id)
);
CREATE INDEX quiz_answers_student ON quiz_answers (student_id);

-- Every submission a tablet made, by its client-generated id: a retry is answered
-- from here, a replayed id with other content is a conflict.
CREATE TABLE quiz_submissions (
    client_id   TEXT PRIMARY KEY,
    session_id  INTEGER NOT NULL REFERENCES quiz_sessions(id) ON DELETE CASCADE,
    item_id     INTEGER NOT NULL,
    student_id  INTEGER NOT NULL REFERENCES students(id) ON DELETE CASCADE,
    request_sha TEXT NOT NULL,
    outcome     TEXT NOT NULL,                       -- 'current' | 'superseded' (an older change arriving late)
    received_at REAL NOT NULL
);

-- A student has seen the key of a closed question: no late answer from them after that.
CREATE TABLE quiz_reveals (
    session_id INTEGER NOT NULL REFERENCES quiz_sessions(id) ON DELETE CASCADE,
    item_id    INTEGER NOT NULL,
    student_id INTEGER NOT NULL REFERENCES students(id) ON DELETE CASCADE,
    at         REAL NOT NULL,
    PRIMARY KEY (session_id, item_id, student_id)
);

-- Photo answers, stored by content hash under <data_dir>/quiz-photos/.
CREATE TABLE quiz_photos (
    id          TEXT PRIMARY KEY,                    -- sha256 of the bytes
    student_id  INTEGER NOT NULL REFERENCES students(id) ON DELETE CASCADE,
    mime        TEXT NOT NULL,
    bytes       INTEGER NOT NULL,
    width       INTEGER NOT NULL,
    height      INTEGER NOT NULL,
    created_at  REAL NOT NULL
);

-- 抢答 (buzz-in): ordered by the hub's arrival time; ties broken by a random draw.
CREATE TABLE quiz_buzz_rounds (
    id         INTEGER PRIMARY KEY,
    class_id   INTEGER NOT NULL REFERENCES classes(id) ON DELETE CASCADE,
    opened_at  REAL NOT NULL,
    closed_at  REAL
);
CREATE TABLE quiz_buzzes (
    round_id   INTEGER NOT NULL REFERENCES quiz_buzz_rounds(id) ON DELETE CASCADE,
    student_id INTEGER NOT NULL REFERENCES students(id) ON DELETE CASCADE,
    arrived_ns INTEGER NOT NULL,                     -- hub clock, nanoseconds
    tiebreak   INTEGER NOT NULL,                     -- random, fixed at arrival
    PRIMARY KEY (round_id, student_id)
);

-- 随机点名: who was picked when, for the no-repeat window.
CREATE TABLE quiz_picks (
    id         INTEGER PRIMARY KEY,
    class_id   INTEGER NOT NULL REFERENCES classes(id) ON DELETE CASCADE,
    student_id INTEGER NOT NULL REFERENCES students(id) ON DELETE CASCADE,
    picked_at  REAL NOT NULL
);
CREATE INDEX quiz_picks_class ON quiz_picks (class_id, picked_at);
