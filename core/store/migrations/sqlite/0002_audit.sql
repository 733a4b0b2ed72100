-- Audit log: one hash chain per realm (`chain` = realm id, or `_system`).
CREATE TABLE audit_events (
    gseq      INTEGER PRIMARY KEY AUTOINCREMENT,
    id        TEXT NOT NULL,
    chain     TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    time      INTEGER NOT NULL,
    realm_id  TEXT,
    action    TEXT NOT NULL,
    outcome   TEXT NOT NULL,
    actor     TEXT,
    body      TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL,
    UNIQUE (chain, seq)
);
-- Realm queries use the chain (a realm's chain id is its realm id) and its (chain, seq) index.

-- Where verification starts after retention removed the oldest events of a chain.
CREATE TABLE audit_checkpoints (
    chain TEXT PRIMARY KEY,
    seq   INTEGER NOT NULL,
    hash  TEXT NOT NULL
);

-- Delivery sinks and their cursors (config sealed by the system key).
CREATE TABLE audit_sinks (
    name       TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    config     BLOB NOT NULL,
    cursor     INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);
