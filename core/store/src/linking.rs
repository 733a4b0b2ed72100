//! The backend-neutral half of an audit append and of a KV write: the SQL every backend
//! runs (both accept `$n` placeholders), and how events are linked into their chains (each
//! link an HMAC of the previous hash and the body, each chain's head signed).
//!
//! The async SQL store (`sql/`) and the SQLite writer thread (`sqlite/writer.rs`) run
//! these same statements; only the driver differs.

use std::collections::{HashMap, HashSet};

use super::{AuditRow, NewAuditEvent, SYSTEM_CHAIN, StoreError, StoreResult};
use arcan_crypto::{CHAIN_GENESIS, ChainHead, ChainKey};

/// A chain's signed head.
pub(super) const HEAD_SELECT: &str =
    "SELECT seq, hash, from_seq, from_hash, mac FROM audit_heads WHERE chain = $1";
/// A chain's retention checkpoint (where verification starts without a head).
pub(super) const CHECKPOINT_SELECT: &str =
    "SELECT seq, hash FROM audit_checkpoints WHERE chain = $1";
/// Whether a chain has an event after a position.
pub(super) const LATER_EVENT: &str =
    "SELECT seq FROM audit_events WHERE chain = $1 AND seq > $2 LIMIT 1";
/// Writes a chain's head (`$6` is its signature).
pub(super) const HEAD_UPSERT: &str = "INSERT INTO audit_heads (chain, seq, hash, from_seq, from_hash, mac) \
     VALUES ($1, $2, $3, $4, $5, $6) \
     ON CONFLICT (chain) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, \
     from_seq = excluded.from_seq, from_hash = excluded.from_hash, mac = excluded.mac";
/// The head of a multi-row event insert; one event is
/// `(id, chain, seq, time, realm_id, action, outcome, actor, body, prev_hash, hash)`.
pub(super) const EVENT_INSERT: &str = "INSERT INTO audit_events \
     (id, chain, seq, time, realm_id, action, outcome, actor, body, prev_hash, hash) ";
/// One event.
pub(super) const EVENT_INSERT_ONE: &str = "INSERT INTO audit_events \
     (id, chain, seq, time, realm_id, action, outcome, actor, body, prev_hash, hash) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";

/// The columns of a secret's metadata row.
pub(super) const META_COLS: &str = "env, key, current_version, created_at, created_by, \
                                    updated_at, updated_by";
/// Stores a secret version (after [`secret_upsert`] gave its number).
pub(super) const VERSION_INSERT: &str = "INSERT INTO secret_versions \
     (realm_id, env, key, version, ciphertext, created_at, created_by) \
     VALUES ($1, $2, $3, $4, $5, $6, $7)";
/// The current version of a live secret (a check-and-set that matched nothing reports it).
pub(super) const CURRENT_VERSION: &str = "SELECT current_version FROM secrets \
     WHERE realm_id = $1 AND env = $2 AND key = $3 AND NOT deleted";
/// Stores a lease.
pub(super) const LEASE_INSERT: &str = "INSERT INTO leases (id, realm_id, mount_id, mount, \
     role, plugin, role_definition, internal, issued_at, expires_at, max_expires_at, \
     renewable, revocable, state, issued_by, token_id) VALUES \
     ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)";

/// Bumps (or creates) a secret's current version; binds `realm_id, env, key, at, by` and
/// returns [`META_COLS`], or no row when the check-and-set does not hold: `Some(n > 0)`
/// requires version `n`, `Some(0)` requires that no live version exists.
pub(super) fn secret_upsert(cas: Option<i64>) -> String {
    const INSERT: &str = "INSERT INTO secrets (realm_id, env, key, current_version, deleted, \
         created_at, created_by, updated_at, updated_by) \
         VALUES ($1, $2, $3, 1, FALSE, $4, $5, $4, $5) \
         ON CONFLICT (realm_id, env, key) DO UPDATE SET current_version = secrets.current_version + 1, \
         deleted = FALSE, updated_at = excluded.updated_at, updated_by = excluded.updated_by";
    match cas {
        Some(n) if n > 0 => format!(
            "UPDATE secrets SET current_version = current_version + 1, deleted = FALSE, \
             updated_at = $4, updated_by = $5 \
             WHERE realm_id = $1 AND env = $2 AND key = $3 AND NOT deleted AND current_version = {n} \
             RETURNING {META_COLS}"
        ),
        Some(_) => format!("{INSERT} WHERE secrets.deleted RETURNING {META_COLS}"),
        None => format!("{INSERT} RETURNING {META_COLS}"),
    }
}

/// A chain's head from its stored, signed row; a signature that does not verify means
/// someone without the key rewrote it.
pub(super) fn verified_head(key: &ChainKey, head: ChainHead, mac: &str) -> StoreResult<ChainHead> {
    if key.head_signed(&head, mac) {
        Ok(head)
    } else {
        Err(StoreError::Tampered(format!(
            "the signed head of audit chain {} does not verify",
            head.chain
        )))
    }
}

/// The head of a chain without a signed head (new, or written before heads existed): its
/// retention checkpoint or genesis, provided no event follows (`later` says whether one
/// does).
pub(super) fn unsigned_head(
    chain: &str,
    checkpoint: Option<(i64, String)>,
    later: bool,
) -> StoreResult<ChainHead> {
    if later {
        return Err(StoreError::Tampered(format!(
            "audit chain {chain} has events but its signed head is missing"
        )));
    }
    let (seq, hash) = checkpoint.unwrap_or((0, CHAIN_GENESIS.to_owned()));
    Ok(ChainHead {
        chain: chain.to_owned(),
        seq,
        hash: hash.clone(),
        from_seq: seq,
        from_hash: hash,
    })
}

/// An event placed in its chain, ready to insert.
pub(super) struct Linked<'a> {
    pub event: &'a NewAuditEvent,
    pub chain: &'a str,
    pub seq: i64,
    pub prev_hash: String,
    pub hash: String,
}

/// The heads of the chains one append extends, loaded by the backend.
///
/// A chain found tampered with takes no further event: its events go to the system chain
/// instead (their realm column is kept), so the realm stays audited and `verify` can still
/// run and report the damage.
#[derive(Default)]
pub(super) struct Heads<'a> {
    heads: HashMap<&'a str, ChainHead>,
    tampered: HashSet<&'a str>,
}

impl<'a> Heads<'a> {
    /// The chains `events` name, each once, in first-seen order: the backend loads these.
    pub fn wanted(events: &[&'a NewAuditEvent]) -> Vec<&'a str> {
        let mut seen = HashSet::new();
        events
            .iter()
            .map(|e| e.chain.as_str())
            .filter(|c| seen.insert(*c))
            .collect()
    }

    /// Takes what the backend loaded for `chain`. A tampered realm chain is remembered (its
    /// events are rerouted); a tampered system chain, or any other failure, fails the append.
    pub fn loaded(&mut self, chain: &'a str, head: StoreResult<ChainHead>) -> StoreResult<()> {
        match head {
            Ok(head) => {
                self.heads.insert(chain, head);
                Ok(())
            }
            Err(StoreError::Tampered(what)) if chain != SYSTEM_CHAIN => {
                tracing::error!(problem = %what, "audit chain tampered with; its events go to the system chain");
                self.tampered.insert(chain);
                Ok(())
            }
            Err(other) => Err(other),
        }
    }

    /// True when a rerouted chain needs the system chain's head and it was not loaded.
    pub fn need_system(&self) -> bool {
        !self.tampered.is_empty() && !self.heads.contains_key(SYSTEM_CHAIN)
    }

    /// Links every event to its chain (or the system chain, for a tampered one), advancing
    /// the heads.
    pub fn link(
        &mut self,
        key: &ChainKey,
        events: &[&'a NewAuditEvent],
    ) -> StoreResult<Vec<Linked<'a>>> {
        let mut out = Vec::with_capacity(events.len());
        for &event in events {
            let mut chain = event.chain.as_str();
            if self.tampered.contains(chain) {
                chain = SYSTEM_CHAIN;
            }
            let head = self.heads.get_mut(chain).ok_or_else(|| {
                StoreError::Corrupt(format!("no head loaded for audit chain {chain}"))
            })?;
            let seq = head.seq + 1;
            let hash = key.link(&head.hash, &event.body);
            let prev_hash = std::mem::replace(&mut head.hash, hash.clone());
            head.seq = seq;
            out.push(Linked {
                event,
                chain,
                seq,
                prev_hash,
                hash,
            });
        }
        Ok(out)
    }

    /// The advanced heads, to write back signed.
    pub fn heads(&self) -> impl Iterator<Item = &ChainHead> {
        self.heads.values()
    }
}

/// The stored rows of linked events, given each one's `gseq` (in the same order), sorted by
/// `gseq`.
pub(super) fn stored_rows(linked: Vec<Linked<'_>>, gseqs: Vec<i64>) -> StoreResult<Vec<AuditRow>> {
    if gseqs.len() != linked.len() {
        return Err(StoreError::Corrupt(
            "audit insert returned too few rows".into(),
        ));
    }
    let mut rows: Vec<AuditRow> = linked
        .into_iter()
        .zip(gseqs)
        .map(|(l, gseq)| AuditRow {
            gseq,
            id: l.event.id.clone(),
            chain: l.chain.to_owned(),
            seq: l.seq,
            time: l.event.time,
            realm_id: l.event.realm_id.clone(),
            action: l.event.action.clone(),
            outcome: l.event.outcome,
            actor: l.event.actor.clone(),
            body: l.event.body.clone(),
            prev_hash: l.prev_hash,
            hash: l.hash,
        })
        .collect();
    rows.sort_by_key(|r| r.gseq);
    Ok(rows)
}
