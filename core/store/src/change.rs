//! A change and its audit event, committed in one transaction: both or neither.
//!
//! While a request is served, the audit layer runs its handler inside a [`ChangeScope`]
//! (a task-local) that knows how to build the request's event and which kind of change the
//! route makes. The store methods that make such a change [`claim`] the event and append it
//! to its chain in the transaction of the change; once the transaction has committed, the
//! claim is marked committed and the audit layer does not write the event again. When the
//! transaction fails, the claim is released and the request's event is written as a failure
//! afterwards, as for any other request.
//!
//! Only the first successful change of the route's kind carries the event: a request that
//! makes several changes of that kind (none does today) would carry its event on the first.
//! A store method called outside a scope (boot, the reaper, background tasks) writes no event
//! of its own; those callers audit through the dispatcher.

use std::future::Future;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::sync::oneshot;

use super::{LeaseRecord, NewAuditEvent, RealmId};

/// The kinds of change whose store methods carry a request's event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// A KV write or delete.
    Secret,
    /// A token minted or revoked (login included).
    Token,
    /// A custom role or a binding created or removed.
    Policy,
    /// A realm created or deleted.
    Realm,
    /// A user registered.
    User,
    /// An engine mounted, reconfigured or unmounted.
    Mount,
    /// An engine role written or deleted.
    EngineRole,
    /// A lease issued, renewed or revoked.
    Lease,
    /// An audit sink defined or removed.
    Sink,
    /// The data keys rewrapped under a new master key.
    MasterKey,
    /// A machine-identity auth method enabled, updated or disabled.
    AuthMethod,
    /// A login role written or deleted.
    AuthRole,
}

/// Builds the request's event from the handler's detail and facts only the store knows.
pub type BuildEvent =
    dyn Fn(Option<&Value>, &[(&'static str, Value)]) -> NewAuditEvent + Send + Sync;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    Claimed,
    Committed,
}

/// One request's change scope.
pub struct ChangeScope {
    kind: Option<ChangeKind>,
    build: Mutex<Arc<BuildEvent>>,
    state: Mutex<State>,
    detail: Mutex<Option<Value>>,
    receipts: Mutex<Vec<oneshot::Receiver<bool>>>,
}

impl std::fmt::Debug for ChangeScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeScope")
            .field("kind", &self.kind)
            .field("state", &*lock(&self.state))
            .finish_non_exhaustive()
    }
}

tokio::task_local! {
    static SCOPE: Arc<ChangeScope>;
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ChangeScope {
    /// A scope for a request whose route makes a change of `kind` (`None`: no change carries
    /// its event; the scope then only collects side events' receipts).
    pub fn new(kind: Option<ChangeKind>, build: Box<BuildEvent>) -> Arc<Self> {
        Arc::new(Self {
            kind,
            build: Mutex::new(Arc::from(build)),
            state: Mutex::new(State::Open),
            detail: Mutex::new(None),
            receipts: Mutex::new(Vec::new()),
        })
    }

    /// Runs `f` inside this scope (also used to carry the scope into a spawned task).
    pub async fn run<F: Future>(self: &Arc<Self>, f: F) -> F::Output {
        SCOPE.scope(self.clone(), f).await
    }

    /// The scope of the current task, if any.
    pub fn current() -> Option<Arc<Self>> {
        SCOPE.try_with(Arc::clone).ok()
    }

    /// True once a change committed the request's event.
    pub fn committed(&self) -> bool {
        *lock(&self.state) == State::Committed
    }

    /// Replaces how the event is built (a handler that learnt who the caller is).
    pub fn set_build(&self, build: Box<BuildEvent>) {
        *lock(&self.build) = Arc::from(build);
    }

    /// Sets the handler's non-secret facts for the event (before the change, to be in it).
    pub fn set_detail(&self, detail: Value) {
        *lock(&self.detail) = Some(detail);
    }

    /// Records the durability receipt of a side event of this request (a plugin's), which
    /// the audit layer awaits before the request is answered.
    pub fn add_receipt(&self, receipt: oneshot::Receiver<bool>) {
        lock(&self.receipts).push(receipt);
    }

    /// The side events' receipts recorded so far.
    pub fn take_receipts(&self) -> Vec<oneshot::Receiver<bool>> {
        std::mem::take(&mut *lock(&self.receipts))
    }
}

/// The request's event, claimed by a store method for the change it is about to commit.
/// Dropped without [`Claim::commit`], it is released for the audit layer to write.
pub struct Claim {
    scope: Arc<ChangeScope>,
    committed: bool,
}

impl std::fmt::Debug for Claim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claim").field("scope", &self.scope).finish()
    }
}

/// Claims the current request's event for a change of `kind`, unless there is no scope, the
/// route makes another kind of change, or the event is already claimed or committed.
pub fn claim(kind: ChangeKind) -> Option<Claim> {
    let scope = ChangeScope::current()?;
    if scope.kind != Some(kind) {
        return None;
    }
    let mut state = lock(&scope.state);
    if *state != State::Open {
        return None;
    }
    *state = State::Claimed;
    drop(state);
    Some(Claim {
        scope,
        committed: false,
    })
}

impl Claim {
    /// The event, with `facts` the store learnt in the transaction merged into its detail.
    pub fn event(&self, facts: &[(&'static str, Value)]) -> NewAuditEvent {
        let detail = lock(&self.scope.detail).clone();
        let build = lock(&self.scope.build).clone();
        build(detail.as_ref(), facts)
    }

    /// The request's event as recorded in a realm whose policy the change alters (a login
    /// role's grants, which are that realm's bindings): the same request, actor and detail,
    /// with an id of its own, in that realm's chain, so the realm's log shows it.
    pub fn event_in_realm(
        &self,
        realm_id: &RealmId,
        facts: &[(&'static str, Value)],
    ) -> NewAuditEvent {
        let mut e = self.event(facts);
        e.id = arcan_util::new_id();
        if let Ok(Value::Object(mut body)) = serde_json::from_str::<Value>(&e.body) {
            body.insert("id".into(), e.id.clone().into());
            body.insert("realm_id".into(), realm_id.to_string().into());
            e.body = Value::Object(body).to_string();
        }
        e.chain = realm_id.to_string();
        e.realm_id = Some(realm_id.clone());
        e
    }

    /// Marks the event committed: call after the transaction committed.
    pub fn commit(mut self) {
        *lock(&self.scope.state) = State::Committed;
        self.committed = true;
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if !self.committed {
            let mut state = lock(&self.scope.state);
            if *state == State::Claimed {
                *state = State::Open;
            }
        }
    }
}

/// The facts of an issued lease for its request's event.
pub(super) fn lease_facts(l: &LeaseRecord) -> [(&'static str, Value); 4] {
    [
        ("lease_id", l.id.as_str().into()),
        ("plugin", l.plugin.clone().into()),
        ("expires_at", l.expires_at.into()),
        ("ttl", ((l.expires_at - l.issued_at) / 1000).into()),
    ]
}

/// Runs `f` in the current task's scope, wherever it is polled (for work moved into its
/// own task, so that its changes still carry the request's event).
pub fn carry<F: Future>(f: F) -> impl Future<Output = F::Output> {
    let scope = ChangeScope::current();
    async move {
        match scope {
            Some(s) => s.run(f).await,
            None => f.await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(kind: ChangeKind) -> Arc<ChangeScope> {
        ChangeScope::new(
            Some(kind),
            Box::new(|detail, facts| NewAuditEvent {
                id: "e1".into(),
                chain: "r".into(),
                time: 1,
                realm_id: Some("r".into()),
                action: "secrets.write".into(),
                outcome: crate::Outcome::Success,
                actor: None,
                body: format!(
                    "{}|{}",
                    detail.map(Value::to_string).unwrap_or_default(),
                    facts.len()
                ),
            }),
        )
    }

    #[tokio::test]
    async fn a_claim_is_taken_once_released_on_drop_and_final_on_commit() {
        assert!(claim(ChangeKind::Secret).is_none(), "no scope, no claim");
        let s = scope(ChangeKind::Secret);
        s.run(async {
            assert!(claim(ChangeKind::Lease).is_none(), "other kind");
            let c = claim(ChangeKind::Secret).expect("claim");
            assert!(claim(ChangeKind::Secret).is_none(), "already claimed");
            drop(c);
            assert!(!ChangeScope::current().expect("scope").committed());
            ChangeScope::current()
                .expect("scope")
                .set_detail(serde_json::json!({"a": 1}));
            let c = claim(ChangeKind::Secret).expect("released claim");
            assert_eq!(c.event(&[("v", Value::from(2))]).body, "{\"a\":1}|1");
            c.commit();
            assert!(claim(ChangeKind::Secret).is_none(), "committed");
        })
        .await;
        assert!(s.committed());
    }
}
