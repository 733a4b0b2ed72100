-- Arcan schema v1 (PostgreSQL). Timestamps are unix milliseconds.
CREATE TABLE meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE users (
    id                  TEXT PRIMARY KEY,
    email               TEXT NOT NULL UNIQUE,
    password_hash       TEXT NOT NULL,
    superuser           BOOLEAN NOT NULL DEFAULT FALSE,
    global_capabilities TEXT NOT NULL DEFAULT '[]',
    created_at          BIGINT NOT NULL
);

CREATE TABLE realms (
    id         TEXT PRIMARY KEY,
    slug       TEXT NOT NULL UNIQUE,
    name       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL
);

CREATE TABLE data_keys (
    realm_id      TEXT PRIMARY KEY REFERENCES realms(id) ON DELETE CASCADE,
    master_key_id TEXT NOT NULL,
    wrapped       BYTEA NOT NULL,
    created_at    BIGINT NOT NULL
);

CREATE TABLE tokens (
    id           TEXT PRIMARY KEY,
    hash         TEXT NOT NULL UNIQUE,
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    parent_id    TEXT,
    name         TEXT NOT NULL,
    capabilities TEXT,
    realm_id     TEXT REFERENCES realms(id) ON DELETE CASCADE,
    env          TEXT,
    key_glob     TEXT,
    expires_at   BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    revoked_at   BIGINT
);
CREATE INDEX tokens_user ON tokens(user_id);

CREATE TABLE roles (
    realm_id     TEXT NOT NULL REFERENCES realms(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    capabilities TEXT NOT NULL,
    env          TEXT,
    key_glob     TEXT,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (realm_id, name)
);

CREATE TABLE bindings (
    id           TEXT PRIMARY KEY,
    realm_id     TEXT NOT NULL REFERENCES realms(id) ON DELETE CASCADE,
    subject_kind TEXT NOT NULL,
    subject_id   TEXT NOT NULL,
    role         TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    created_by   TEXT NOT NULL,
    UNIQUE (realm_id, subject_kind, subject_id, role)
);
CREATE INDEX bindings_subject ON bindings(subject_kind, subject_id);

CREATE TABLE secrets (
    realm_id        TEXT NOT NULL REFERENCES realms(id) ON DELETE CASCADE,
    env             TEXT NOT NULL,
    key             TEXT NOT NULL,
    current_version BIGINT NOT NULL,
    deleted         BOOLEAN NOT NULL DEFAULT FALSE,
    created_at      BIGINT NOT NULL,
    created_by      TEXT NOT NULL,
    updated_at      BIGINT NOT NULL,
    updated_by      TEXT NOT NULL,
    PRIMARY KEY (realm_id, env, key)
);

CREATE TABLE secret_versions (
    realm_id   TEXT NOT NULL,
    env        TEXT NOT NULL,
    key        TEXT NOT NULL,
    version    BIGINT NOT NULL,
    ciphertext BYTEA,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    PRIMARY KEY (realm_id, env, key, version),
    FOREIGN KEY (realm_id, env, key) REFERENCES secrets(realm_id, env, key) ON DELETE CASCADE
);
