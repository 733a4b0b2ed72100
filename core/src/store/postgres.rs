//! The PostgreSQL backend, for deployments where several nodes share one store.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

/// Advisory-lock key serialising audit appends ("arcanaud").
const AUDIT_APPEND_LOCK: i64 = 0x6172_6361_6e61_7564;

/// The PostgreSQL implementation of [`Store`].
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects to `url` and applies migrations (serialised by sqlx's advisory lock, so
    /// several nodes may start at once).
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        sqlx::migrate!("migrations/postgres").run(&pool).await?;
        Ok(Self { pool })
    }

    /// PostgreSQL arbitrates concurrent writers itself.
    async fn write_guard(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        None
    }

    /// Reads go straight to PostgreSQL: other nodes may write, so no local cache.
    async fn get_secret(
        &self,
        realm_id: &str,
        env: &str,
        key: &str,
        version: Option<i64>,
    ) -> StoreResult<Option<SecretVersion>> {
        fetch_secret(&self.pool, realm_id, env, key, version).await
    }

    fn invalidate(&self, _realm_id: &str, _env: &str, _key: &str) {}

    fn invalidate_realm(&self, _realm_id: &str) {}

    /// Appends audit events in their own transaction; several nodes may append.
    async fn append_audit(&self, events: &[NewAuditEvent]) -> StoreResult<Vec<AuditRow>> {
        let mut tx = self.pool.begin_with("BEGIN").await?;
        // One append at a time across all nodes: `gseq` values are then committed in order,
        // so a sink reading after its cursor never skips a row committed late.
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(AUDIT_APPEND_LOCK)
            .execute(&mut *tx)
            .await?;
        let rows = audit_in_tx(&mut tx, events).await?;
        tx.commit().await?;
        Ok(rows)
    }

    /// A lease in its own transaction.
    async fn put_lease(&self, lease: &LeaseRecord) -> StoreResult<()> {
        let mut tx = self.pool.begin_with("BEGIN").await?;
        engine_store::lease_insert(&mut tx, lease).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A KV write in its own transaction; PostgreSQL groups concurrent commits itself.
    async fn put_secret(
        &self,
        realm_id: &str,
        w: &SecretWrite,
        cas: Option<i64>,
    ) -> StoreResult<WriteOutcome> {
        let mut tx = self.pool.begin_with("BEGIN").await?;
        let out = put_in_tx(&mut tx, realm_id, w, cas).await?;
        tx.commit().await?;
        Ok(out)
    }
}

super::sql::impl_sql_store!(
    PgStore,
    sqlx::Postgres,
    sqlx::postgres::PgRow,
    "postgres",
    "SELECT pg_advisory_xact_lock(hashtext($1))",
    "BEGIN"
);

super::engine_sql::impl_engine_store!(
    PgStore,
    sqlx::Postgres,
    sqlx::postgres::PgRow,
    " FOR UPDATE SKIP LOCKED"
);
