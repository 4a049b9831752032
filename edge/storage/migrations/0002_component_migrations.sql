-- Each capability (edge/<capability>/migrations/NNNN_*.sql) has its own
-- numbered sequence, recorded here; the core's sequence is PRAGMA user_version.
CREATE TABLE schema_migrations (
    component  TEXT NOT NULL,
    version    INTEGER NOT NULL,
    name       TEXT NOT NULL,
    applied_at REAL NOT NULL,
    PRIMARY KEY (component, version)
);
