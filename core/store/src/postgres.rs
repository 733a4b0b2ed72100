//! The PostgreSQL backend, for deployments where several nodes share one store.
//!
//! Every write is its own transaction (PostgreSQL groups concurrent commits itself); audit
//! appends take an advisory lock shared by all nodes, and the reaper's claim skips rows
//! another node holds. Reads go straight to the database: other nodes may write, so
//! nothing is cached here.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use crate::StoreResult;
use crate::sql::{Sealed, SingleWriter, SqlBackend, SqlStore};

/// The PostgreSQL implementation of [`Store`](crate::Store).
pub type PgStore = SqlStore<PgBackend>;

/// PostgreSQL as a [`SqlBackend`].
#[derive(Debug, Clone)]
pub struct PgBackend {
    pool: PgPool,
}

impl Sealed for PgBackend {}

impl SqlBackend for PgBackend {
    type Db = sqlx::Postgres;
    const NAME: &'static str = "postgres";
    const BEGIN_WRITE: &'static str = "BEGIN";
    // Advisory-lock key serialising audit appends across nodes ("arcanaud").
    const APPEND_LOCK: Option<&'static str> =
        Some("SELECT pg_advisory_xact_lock(7021784039138882916)");
    const SKIP_LOCKED: &'static str = " FOR UPDATE SKIP LOCKED";

    fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Other nodes write too: there is no single writer.
    fn single_writer(&self) -> Option<&SingleWriter> {
        None
    }
}

impl SqlStore<PgBackend> {
    /// Connects to `url` and applies migrations (serialised by sqlx's advisory lock, so
    /// several nodes may start at once).
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        sqlx::migrate!("migrations/postgres").run(&pool).await?;
        Ok(Self::with_backend(PgBackend { pool }, Default::default()))
    }
}
