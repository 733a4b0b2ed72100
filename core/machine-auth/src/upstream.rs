//! A per-method bound on concurrent upstream calls (JWKS/discovery fetches, TokenReviews).
//!
//! A login that finds no free slot within the wait bound is refused with [`Class::Busy`]
//! (503) rather than queueing without end behind a slow issuer or API server.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{Check, Class, Refusal};

/// Default number of concurrent upstream calls per method.
pub const DEFAULT_CONCURRENCY: usize = 16;
/// Default time a login waits for a slot.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(1);

/// The upstream slots of one method. Cloning shares the slots.
#[derive(Debug, Clone)]
pub struct UpstreamGate {
    slots: Arc<Semaphore>,
    wait: Duration,
}

/// A held slot; released on drop.
#[derive(Debug)]
pub struct UpstreamPermit {
    _permit: OwnedSemaphorePermit,
}

impl Default for UpstreamGate {
    fn default() -> Self {
        Self::new(DEFAULT_CONCURRENCY, DEFAULT_WAIT)
    }
}

impl UpstreamGate {
    /// `concurrency` slots (at least one), each waited for at most `wait`.
    pub fn new(concurrency: usize, wait: Duration) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(concurrency.max(1))),
            wait,
        }
    }

    /// Takes a slot, or refuses with [`Class::Busy`] when none frees up within the wait bound.
    pub async fn acquire(&self) -> Result<UpstreamPermit, Refusal> {
        match tokio::time::timeout(self.wait, self.slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(UpstreamPermit { _permit: permit }),
            // The semaphore is never closed; treat it like a full one all the same.
            Ok(Err(_)) | Err(_) => Err(Refusal::new(
                Check::Upstream,
                Class::Busy,
                format!(
                    "upstream: busy, no upstream slot free within {}",
                    humanize(self.wait)
                ),
            )),
        }
    }

    /// How long a login waits for a slot.
    pub fn wait(&self) -> Duration {
        self.wait
    }

    /// Slots free right now.
    pub fn available(&self) -> usize {
        self.slots.available_permits()
    }
}

/// A short duration for messages (`1s`, `300ms`).
pub(crate) fn humanize(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_gate_refuses_busy_after_the_wait() {
        let gate = UpstreamGate::new(1, Duration::from_millis(50));
        let held = gate.acquire().await.expect("first slot");
        assert_eq!(gate.available(), 0);
        let started = std::time::Instant::now();
        let refused = gate.acquire().await.expect_err("no slot");
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert_eq!(refused.class, Class::Busy);
        assert_eq!(refused.check, Check::Upstream);
        assert!(refused.message.contains("50ms"), "{}", refused.message);
        drop(held);
        let again = gate.acquire().await.expect("freed slot");
        drop(again);
        assert_eq!(gate.available(), 1);
    }
}
