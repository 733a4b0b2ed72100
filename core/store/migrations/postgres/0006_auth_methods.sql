-- Machine identities: auth methods (jwt, kubernetes), their login roles, the kind of a user
-- (a person or a login role's principal) and the identity a machine login proved.
ALTER TABLE users ADD COLUMN kind TEXT NOT NULL DEFAULT 'human';
ALTER TABLE tokens ADD COLUMN identity TEXT;

CREATE TABLE auth_methods (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    kind        TEXT NOT NULL CHECK (kind IN ('jwt', 'kubernetes')),
    description TEXT NOT NULL DEFAULT '',
    config      TEXT NOT NULL,
    secrets     BYTEA,
    created_at  BIGINT NOT NULL,
    created_by  TEXT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE auth_roles (
    id            TEXT PRIMARY KEY,
    method_id     TEXT NOT NULL REFERENCES auth_methods(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    user_id       TEXT NOT NULL UNIQUE REFERENCES users(id),
    anchor_id     TEXT NOT NULL UNIQUE,
    definition    TEXT NOT NULL,
    token_ttl     BIGINT NOT NULL,
    token_max_ttl BIGINT NOT NULL,
    created_at    BIGINT NOT NULL,
    created_by    TEXT NOT NULL,
    updated_at    BIGINT NOT NULL,
    UNIQUE (method_id, name)
);
