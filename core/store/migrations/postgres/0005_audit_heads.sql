-- The signed head of each audit chain, rewritten in the transaction of every append (and
-- by retention), so a deleted tail, a chain rolled back or a start moved no longer matches
-- it. (from_seq, from_hash) is where verification starts (genesis, or the last event
-- retention removed); `mac` signs (chain, seq, hash, from_seq, from_hash) under a key
-- derived from the master key.
CREATE TABLE audit_heads (
    chain     TEXT PRIMARY KEY,
    seq       BIGINT NOT NULL,
    hash      TEXT NOT NULL,
    from_seq  BIGINT NOT NULL,
    from_hash TEXT NOT NULL,
    mac       TEXT NOT NULL
);

-- Links are keyed from now on. Events written before carry unkeyed links: each chain's
-- verification starts after its last such event, as it does after retention.
INSERT INTO audit_checkpoints (chain, seq, hash)
SELECT e.chain, e.seq, e.hash FROM audit_events e
WHERE e.seq = (SELECT MAX(x.seq) FROM audit_events x WHERE x.chain = e.chain)
ON CONFLICT (chain) DO UPDATE SET seq = excluded.seq, hash = excluded.hash;
