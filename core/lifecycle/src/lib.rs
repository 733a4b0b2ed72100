//! Who owns the process's background work.
//!
//! One [`Lifecycle`] holds every long-running task of the server in three stages, each a
//! `JoinSet` with the cancellation token its tasks watch:
//!
//! - [`Stage::Work`]: the reaper, audit retention, the rate limiter's upkeep, the signal
//!   watcher: work that may still produce audit events (with them, the tasks requests
//!   spawned to issue credentials, see [`Lifecycle::track`]);
//! - [`Stage::Audit`]: the audit dispatcher, which stores those events;
//! - [`Stage::Sinks`]: the audit sinks, which forward what is stored.
//!
//! Shutdown cancels the work stage as soon as the signal arrives (the reaper claims nothing
//! new and finishes the revocations it started), waits for it until the drain deadline,
//! then stops the audit stage (the dispatcher stores what is queued and ends), then the
//! sinks (each delivers what is stored and ends). A task still running at its deadline is
//! aborted and named in the log. Nothing is spawned and forgotten.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use tokio::task::{AbortHandle, Id, JoinHandle, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Which stage a task belongs to; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Work that may produce audit events; stopped first.
    Work,
    /// The audit pipeline; stopped after all work ended.
    Audit,
    /// Audit sinks: told to stop after the audit pipeline stored its last event; each ends
    /// once it delivered everything stored.
    Sinks,
}

/// The least time the audit stage gets to store what the work stage emitted, even when
/// the work stage used up the drain deadline.
const AUDIT_DRAIN: Duration = Duration::from_secs(2);

/// The owner of the background tasks; see the module docs.
#[derive(Debug, Default)]
pub struct Lifecycle {
    work: Group,
    audit: Group,
    sinks: Group,
    /// Tasks a request spawned so that they finish even if the client goes away (issuing a
    /// credential and storing its lease); shutdown waits for them with the work stage.
    requests: TaskTracker,
}

#[derive(Debug, Default)]
struct Group {
    token: CancellationToken,
    tasks: Mutex<Tasks>,
}

#[derive(Debug, Default)]
struct Tasks {
    set: JoinSet<()>,
    names: HashMap<Id, &'static str>,
}

impl Lifecycle {
    /// A lifecycle with no tasks yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The token the tasks of `stage` watch; cancelled when that stage is told to stop.
    pub fn token(&self, stage: Stage) -> CancellationToken {
        self.group(stage).token.clone()
    }

    /// Runs `task` in `stage`. It must watch [`Lifecycle::token`] and return soon after
    /// cancellation, having finished (or safely left) the work in hand.
    pub fn spawn<F>(&self, stage: Stage, name: &'static str, task: F) -> AbortHandle
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let mut tasks = self.group(stage).lock();
        // Forget tasks that already ended (a sink restarted by the API, say).
        while let Some(done) = tasks.set.try_join_next_with_id() {
            let id = match done {
                Ok((id, ())) => id,
                Err(e) => e.id(),
            };
            tasks.names.remove(&id);
        }
        let handle = tasks.set.spawn(task);
        tasks.names.insert(handle.id(), name);
        handle
    }

    /// Runs `task` (a loop that holds nothing that must be finished) in `stage` until that
    /// stage is told to stop, then drops it.
    pub fn spawn_until_stopped<F>(&self, stage: Stage, name: &'static str, task: F) -> AbortHandle
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let token = self.token(stage);
        self.spawn(stage, name, async move {
            tokio::select! {
                () = token.cancelled() => {}
                () = task => {}
            }
        })
    }

    /// Runs a task a request depends on but must not be able to cancel (the caller awaits
    /// the handle); shutdown waits for it, with the work stage, until the deadline.
    pub fn track<F>(&self, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.requests.spawn(task)
    }

    /// Tells the work stage to stop (on the shutdown signal): the tasks finish what they
    /// hold while requests drain.
    pub fn begin_shutdown(&self) {
        self.work.token.cancel();
    }

    /// Stops the stages in order: work (and tracked request tasks) until `deadline`, then
    /// audit and sinks (until the deadline, or at least [`AUDIT_DRAIN`] after the work).
    /// Returns the names of the tasks that had to be aborted.
    pub async fn shutdown(&self, deadline: Instant) -> Vec<&'static str> {
        self.begin_shutdown();
        self.requests.close();
        let mut aborted = self.work.stop(deadline).await;
        if tokio::time::timeout_at(deadline, self.requests.wait())
            .await
            .is_err()
        {
            tracing::error!(
                tasks = self.requests.len(),
                "request tasks (credential issues) still running at the deadline"
            );
            aborted.push("request task");
        }
        self.audit.token.cancel();
        let audit_deadline = deadline.max(Instant::now() + AUDIT_DRAIN);
        aborted.extend(self.audit.stop(audit_deadline).await);
        // Sinks last: they forward what the stages before them stored, and end once caught
        // up (or at the deadline).
        self.sinks.token.cancel();
        aborted.extend(self.sinks.stop(audit_deadline).await);
        for name in &aborted {
            tracing::error!(task = name, "background task did not stop in time; aborted");
        }
        aborted
    }

    fn group(&self, stage: Stage) -> &Group {
        match stage {
            Stage::Work => &self.work,
            Stage::Audit => &self.audit,
            Stage::Sinks => &self.sinks,
        }
    }
}

impl Group {
    /// Waits for every task until `deadline`, then aborts the rest; returns their names.
    async fn stop(&self, deadline: Instant) -> Vec<&'static str> {
        let Tasks { mut set, mut names } = std::mem::take(&mut *self.lock());
        loop {
            match tokio::time::timeout_at(deadline, set.join_next_with_id()).await {
                Ok(None) => return Vec::new(),
                Ok(Some(done)) => {
                    let id = match done {
                        Ok((id, ())) => id,
                        Err(e) => {
                            if e.is_panic() {
                                tracing::error!(
                                    task = names.get(&e.id()).copied().unwrap_or("?"),
                                    "background task panicked"
                                );
                            }
                            e.id()
                        }
                    };
                    names.remove(&id);
                }
                Err(_) => break,
            }
        }
        set.abort_all();
        while set.join_next().await.is_some() {}
        names.into_values().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tasks> {
        self.tasks.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_finishes_before_audit_stops_and_laggards_are_aborted() {
        let life = Lifecycle::new();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let audit_token = life.token(Stage::Audit);
        let seen = std::sync::Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        life.spawn(Stage::Audit, "audit", async move {
            loop {
                tokio::select! {
                    biased;
                    m = rx.recv() => match m {
                        Some(m) => log.lock().expect("log").push(m),
                        None => return,
                    },
                    () = audit_token.cancelled() => return,
                }
            }
        });
        let work = life.token(Stage::Work);
        life.spawn(Stage::Work, "finisher", async move {
            work.cancelled().await;
            // Work in hand after the signal still reaches the audit stage.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let _ = tx.send("finished");
        });
        life.spawn(Stage::Work, "laggard", std::future::pending());
        let aborted = life
            .shutdown(Instant::now() + Duration::from_millis(300))
            .await;
        assert_eq!(aborted, vec!["laggard"]);
        assert_eq!(*seen.lock().expect("log"), vec!["finished"]);
    }

    #[tokio::test]
    async fn ended_tasks_are_forgotten() {
        let life = Lifecycle::new();
        for _ in 0..10 {
            life.spawn(Stage::Work, "short", async {});
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        life.spawn(Stage::Work, "short", async {});
        assert!(life.work.lock().names.len() <= 2);
        assert!(
            life.shutdown(Instant::now() + Duration::from_secs(1))
                .await
                .is_empty()
        );
    }
}
