//! Chain verification: recompute every link (an HMAC under the chain key) from the stored
//! bodies, check the sequence and that the filter columns agree with the linked body, and
//! check that the chain ends exactly at its signed head, so a deleted tail is found too.

use serde::Serialize;

use super::Event;
use arcan_crypto::{CHAIN_GENESIS, ChainKey};
use arcan_store::StoreError;
use arcan_store::prelude::*;

/// The result of verifying one chain.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    /// True when no problem was found.
    pub ok: bool,
    /// Events checked.
    pub checked: u64,
    /// Sequence number verification started after (a retention checkpoint, or 0).
    pub from_seq: i64,
    /// Sequence number of the chain's signed head (absent for a chain with no event).
    pub head_seq: Option<i64>,
    /// The first problem found.
    pub problem: Option<String>,
}

/// Verifies a chain from where its signed head says verification starts (genesis, or the
/// last event retention removed) to that head. Events appended while it runs are left to
/// the next run; events beyond a head that did not move are reported.
pub async fn verify_chain(
    store: &dyn Store,
    key: &ChainKey,
    chain: &str,
) -> Result<Verification, StoreError> {
    let signed = store.audit_signed_head(chain).await?;
    let checkpoint = store.audit_checkpoint(chain).await?;
    let head = match &signed {
        Some((head, mac)) if !key.head_signed(head, mac) => {
            return Ok(failed(
                0,
                0,
                Some(head.seq),
                "the chain's head is not signed by this deployment's key".into(),
            ));
        }
        Some((head, _)) => Some(head.clone()),
        None => None,
    };
    // With a head, its signed start wins over the (unsigned) checkpoint row.
    let (from_seq, mut prev) = match (&head, checkpoint) {
        (Some(h), _) => (h.from_seq, h.from_hash.clone()),
        (None, Some(c)) => c,
        (None, None) => (0, CHAIN_GENESIS.to_owned()),
    };
    let head_seq = head.as_ref().map(|h| h.seq);
    let until = head_seq.unwrap_or(from_seq);
    let mut expected_seq = from_seq + 1;
    let mut checked = 0;
    while expected_seq <= until {
        let rows = store.audit_chain(chain, expected_seq - 1, 1000).await?;
        if rows.is_empty() {
            break;
        }
        for r in rows.into_iter().take_while(|r| r.seq <= until) {
            if r.seq != expected_seq {
                return Ok(failed(
                    checked,
                    from_seq,
                    head_seq,
                    format!("event #{expected_seq} is missing (found #{} next)", r.seq),
                ));
            }
            if r.prev_hash != prev {
                return Ok(failed(
                    checked,
                    from_seq,
                    head_seq,
                    format!("event #{} does not link to its predecessor", r.seq),
                ));
            }
            if !key.links(&prev, &r.body, &r.hash) {
                return Ok(failed(
                    checked,
                    from_seq,
                    head_seq,
                    format!("event #{} was modified (its link does not verify)", r.seq),
                ));
            }
            let consistent = serde_json::from_str::<Event>(&r.body).is_ok_and(|b| {
                b.id == r.id
                    && b.realm_id.as_deref() == r.realm_id.as_deref()
                    && b.action == r.action
                    && b.outcome == r.outcome
                    && b.time_ms == r.time
                    && b.actor.user_id == r.actor
            });
            if !consistent {
                return Ok(failed(
                    checked,
                    from_seq,
                    head_seq,
                    format!(
                        "event #{}: indexed columns disagree with the linked body",
                        r.seq
                    ),
                ));
            }
            prev = r.hash;
            expected_seq += 1;
            checked += 1;
        }
    }
    let last = expected_seq - 1;
    let problem = match &head {
        // Events after the checkpoint (or genesis) but no head: the head was removed.
        None => (store.audit_chain(chain, from_seq, 1).await?)
            .first()
            .map(|r| {
                format!(
                    "the chain's signed head is missing (events follow #{from_seq}, e.g. #{})",
                    r.seq
                )
            }),
        Some(h) if last < h.seq => Some(format!(
            "the chain was truncated: its signed head is #{} but the last event is #{last}",
            h.seq
        )),
        Some(h) if h.hash != prev => Some(format!("event #{last} does not match the signed head")),
        Some(h) => {
            // Events beyond the head are fine only if the head moved past them meanwhile.
            let beyond = store.audit_chain(chain, h.seq, 1).await?;
            match beyond.first() {
                None => None,
                Some(r) => {
                    let now = store.audit_signed_head(chain).await?;
                    let moved =
                        now.is_some_and(|(n, mac)| key.head_signed(&n, &mac) && n.seq >= r.seq);
                    (!moved).then(|| format!("event #{} follows the signed head #{}", r.seq, h.seq))
                }
            }
        }
    };
    Ok(match problem {
        Some(p) => failed(checked, from_seq, head_seq, p),
        None => Verification {
            ok: true,
            checked,
            from_seq,
            head_seq,
            problem: None,
        },
    })
}

fn failed(checked: u64, from_seq: i64, head_seq: Option<i64>, problem: String) -> Verification {
    Verification {
        ok: false,
        checked,
        from_seq,
        head_seq,
        problem: Some(problem),
    }
}
