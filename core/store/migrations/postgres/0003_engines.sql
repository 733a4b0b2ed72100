-- Engine mounts, their roles and plugin data, and leases (PostgreSQL). Timestamps are unix ms.
CREATE TABLE engine_mounts (
    id                 TEXT PRIMARY KEY,
    realm_id           TEXT NOT NULL REFERENCES realms(id) ON DELETE CASCADE,
    name               TEXT NOT NULL,
    plugin             TEXT NOT NULL,
    plugin_version     TEXT NOT NULL,
    digest             TEXT NOT NULL,
    config             TEXT NOT NULL,
    grants             TEXT NOT NULL,
    connections        TEXT NOT NULL,
    connections_sealed BYTEA NOT NULL,
    created_at         BIGINT NOT NULL,
    created_by         TEXT NOT NULL,
    updated_at         BIGINT NOT NULL,
    UNIQUE (realm_id, name)
);

CREATE TABLE engine_roles (
    mount_id   TEXT NOT NULL REFERENCES engine_mounts(id) ON DELETE CASCADE,
    realm_id   TEXT NOT NULL REFERENCES realms(id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    definition TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (mount_id, name)
);

CREATE TABLE plugin_data (
    mount_id   TEXT NOT NULL REFERENCES engine_mounts(id) ON DELETE CASCADE,
    realm_id   TEXT NOT NULL REFERENCES realms(id) ON DELETE CASCADE,
    key        TEXT NOT NULL,
    value      BYTEA NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (mount_id, key)
);

-- No foreign key to engine_mounts: a lease outlives the mount it came from until it is
-- revoked or reported irrevocable.
CREATE TABLE leases (
    id              TEXT PRIMARY KEY,
    realm_id        TEXT NOT NULL REFERENCES realms(id) ON DELETE CASCADE,
    mount_id        TEXT NOT NULL,
    mount           TEXT NOT NULL,
    role            TEXT NOT NULL,
    plugin          TEXT NOT NULL,
    role_definition TEXT NOT NULL,
    internal        BYTEA NOT NULL,
    issued_at       BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    max_expires_at  BIGINT NOT NULL,
    renewable       BOOLEAN NOT NULL,
    revocable       BOOLEAN NOT NULL,
    state           TEXT NOT NULL,
    issued_by       TEXT,
    token_id        TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT,
    claimed_until   BIGINT,
    last_error      TEXT,
    revoked_at      BIGINT
);
CREATE INDEX leases_due ON leases(state, expires_at);
CREATE INDEX leases_mount ON leases(mount_id, state);
CREATE INDEX leases_realm ON leases(realm_id, id);
