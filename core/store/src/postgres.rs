//! The PostgreSQL backend, for deployments where several nodes share one store.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use super::change::ChangeKind;
use arcan_crypto::ChainKey;

/// The PostgreSQL implementation of [`Store`].
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    chain_key: std::sync::Arc<std::sync::OnceLock<ChainKey>>,
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
        Ok(Self {
            pool,
            chain_key: Default::default(),
        })
    }

    /// Other nodes append too, so there is no complete live feed of this process's rows.
    fn publish(&self, _rows: Vec<AuditRow>) {}

    fn feed(&self) -> Option<tokio::sync::broadcast::Receiver<std::sync::Arc<Vec<AuditRow>>>> {
        None
    }

    /// Nothing is queued in this process: every write is its own transaction.
    async fn stop_writer(&self) {}

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
        let rows = audit_in_tx(&mut tx, self.chain_key()?, events).await?;
        tx.commit().await?;
        Ok(rows)
    }

    /// A lease in its own transaction.
    async fn put_lease(&self, lease: &LeaseRecord) -> StoreResult<()> {
        let mut tx = self.pool.begin_with("BEGIN").await?;
        lease_insert(&mut tx, lease).await?;
        let facts = super::change::lease_facts(lease);
        self.commit_change(tx, ChangeKind::Lease, &facts).await
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
        match &out {
            WriteOutcome::Written(meta) => {
                self.commit_change(tx, ChangeKind::Secret, &[("version", meta.version.into())])
                    .await?
            }
            WriteOutcome::CasMismatch { .. } => tx.rollback().await?,
        }
        Ok(out)
    }
}

super::sql::impl_sql_store!(
    PgStore,
    sqlx::Postgres,
    sqlx::postgres::PgRow,
    "postgres",
    // Advisory-lock key serialising audit appends across nodes ("arcanaud").
    Some("SELECT pg_advisory_xact_lock(7021784039138882916)"),
    "BEGIN"
);

super::engine_sql::impl_engine_store!(
    PgStore,
    sqlx::Postgres,
    sqlx::postgres::PgRow,
    " FOR UPDATE SKIP LOCKED"
);

/// One KV write inside a transaction. The first statement writes, so the transaction
/// takes the write lock at once (no read-then-upgrade deadlock on SQLite, a row lock
/// on PostgreSQL). A CAS mismatch changes nothing.
async fn put_in_tx(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    realm_id: &str,
    w: &SecretWrite,
    cas: Option<i64>,
) -> StoreResult<WriteOutcome> {
    let row = sqlx::query(&super::linking::secret_upsert(cas))
        .bind(realm_id)
        .bind(&w.env)
        .bind(&w.key)
        .bind(w.at)
        .bind(&w.by)
        .fetch_optional(&mut **tx)
        .await?;
    let Some(row) = row else {
        let current = sqlx::query(super::linking::CURRENT_VERSION)
            .bind(realm_id)
            .bind(&w.env)
            .bind(&w.key)
            .fetch_optional(&mut **tx)
            .await?
            .map(|r| r.try_get("current_version"))
            .transpose()?
            .unwrap_or(0);
        return Ok(WriteOutcome::CasMismatch { current });
    };
    let meta = meta_row(&row)?;
    sqlx::query(super::linking::VERSION_INSERT)
        .bind(realm_id)
        .bind(&w.env)
        .bind(&w.key)
        .bind(meta.version)
        .bind(&w.sealed)
        .bind(w.at)
        .bind(&w.by)
        .execute(&mut **tx)
        .await?;
    Ok(WriteOutcome::Written(meta))
}

/// Inserts a lease inside a transaction .
async fn lease_insert(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    l: &LeaseRecord,
) -> StoreResult<()> {
    sqlx::query(super::linking::LEASE_INSERT)
        .bind(&l.id)
        .bind(&l.realm_id)
        .bind(&l.mount_id)
        .bind(&l.mount)
        .bind(&l.role)
        .bind(&l.plugin)
        .bind(&l.role_definition)
        .bind(&l.internal)
        .bind(l.issued_at)
        .bind(l.expires_at)
        .bind(l.max_expires_at)
        .bind(l.renewable)
        .bind(l.revocable)
        .bind(&l.state)
        .bind(&l.issued_by)
        .bind(&l.token_id)
        .execute(&mut **tx)
        .await
        .map_err(super::sql::map_unique)?;
    Ok(())
}
