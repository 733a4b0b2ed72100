//! Chain verification: recompute every link (an HMAC under the chain key) from the stored
//! bodies, check the sequence and that the filter columns agree with the linked body, and
//! check that the chain ends exactly at its signed head, so a deleted tail is found too.

use serde::Serialize;

use super::Event;
use crate::crypto::{CHAIN_GENESIS, ChainKey};
use crate::store::{Store, StoreError};

/// The result of verifying one chain.
#[derive(Debug, Clone, Serialize, salvo::oapi::ToSchema)]
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

/// Verifies a chain from its checkpoint (or genesis) to its head.
pub async fn verify_chain(
    store: &dyn Store,
    key: &ChainKey,
    chain: &str,
) -> Result<Verification, StoreError> {
    let (from_seq, mut prev) = store
        .audit_checkpoint(chain)
        .await?
        .unwrap_or((0, CHAIN_GENESIS.to_owned()));
    let signed = store.audit_signed_head(chain).await?;
    let head_seq = signed.as_ref().map(|(h, _)| h.seq);
    let mut expected_seq = from_seq + 1;
    let mut checked = 0;
    let fail = |checked, problem: String| Verification {
        ok: false,
        checked,
        from_seq,
        head_seq,
        problem: Some(problem),
    };
    loop {
        let rows = store.audit_chain(chain, expected_seq - 1, 1000).await?;
        if rows.is_empty() {
            let last = expected_seq - 1;
            let problem = match &signed {
                // Events after the checkpoint (or genesis) but no head: removed.
                None if last > from_seq => Some(format!(
                    "the chain's signed head is missing (the chain ends at #{last})"
                )),
                None => None,
                Some((head, mac)) if !key.head_signed(head, mac) => {
                    Some("the chain's head is not signed by this deployment's key".to_owned())
                }
                Some((head, _)) if head.seq > last => Some(format!(
                    "the chain was truncated: its signed head is #{} but the last event is #{last}",
                    head.seq
                )),
                Some((head, _)) if head.seq < last => Some(format!(
                    "events #{}..#{last} follow the signed head #{}",
                    head.seq + 1,
                    head.seq
                )),
                Some((head, _)) if head.hash != prev => {
                    Some(format!("event #{last} does not match the signed head"))
                }
                Some(_) => None,
            };
            return Ok(match problem {
                Some(p) => fail(checked, p),
                None => Verification {
                    ok: true,
                    checked,
                    from_seq,
                    head_seq,
                    problem: None,
                },
            });
        }
        for r in rows {
            if r.seq != expected_seq {
                return Ok(fail(
                    checked,
                    format!("event #{expected_seq} is missing (found #{} next)", r.seq),
                ));
            }
            if r.prev_hash != prev {
                return Ok(fail(
                    checked,
                    format!("event #{} does not link to its predecessor", r.seq),
                ));
            }
            if !key.links(&prev, &r.body, &r.hash) {
                return Ok(fail(
                    checked,
                    format!("event #{} was modified (its link does not verify)", r.seq),
                ));
            }
            let body: Event = match serde_json::from_str(&r.body) {
                Ok(b) => b,
                Err(_) => {
                    return Ok(fail(
                        checked,
                        format!("event #{} has an unreadable body", r.seq),
                    ));
                }
            };
            if body.id != r.id
                || body.realm_id != r.realm_id
                || body.action != r.action
                || body.outcome != r.outcome
                || body.time_ms != r.time
            {
                return Ok(fail(
                    checked,
                    format!(
                        "event #{}: indexed columns disagree with the hashed body",
                        r.seq
                    ),
                ));
            }
            prev = r.hash;
            expected_seq += 1;
            checked += 1;
        }
    }
}
