//! The query code of [`EngineStore`](crate::EngineStore), written once and expanded per
//! backend like `impl_sql_store!` (see [the module docs](super)).

/// Expands `EngineStore` for `SqlStore<$backend>`, using only
/// [`SqlBackend`](super::SqlBackend) items of `$backend` (and, in the same module, the
/// transaction helpers `impl_sql_store!` expanded there).
macro_rules! impl_engine_store {
    ($backend:ty) => {
        mod engine_store {
            use async_trait::async_trait;
            use sqlx::Row as _;

            use crate::change::ChangeKind;
            use crate::sql::{SqlBackend, SqlStore, json_list, like_prefix, list_json, map_unique};
            use crate::{EngineRoleRecord, EngineStore, LeaseFilter, LeaseId, LeaseRecord, LeaseState};
            use crate::{MountRecord, RealmId, StoreError, StoreResult};

            type Backend = $backend;
            type DbRow = <<Backend as SqlBackend>::Db as sqlx::Database>::Row;

            /// The reaper's claim: expired active leases, across realms, each claimed once
            /// (with several nodes, rows another node is claiming are skipped).
            static CLAIM_DUE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
                format!(
                    "UPDATE leases SET claimed_until = $1 WHERE id IN (SELECT id FROM leases \
                     WHERE state = 'active' AND expires_at <= $2 \
                     AND (next_attempt_at IS NULL OR next_attempt_at <= $2) \
                     AND (claimed_until IS NULL OR claimed_until < $2) \
                     ORDER BY expires_at LIMIT $3{}) RETURNING *",
                    Backend::SKIP_LOCKED
                )
            });

            fn mount_row(r: &DbRow) -> StoreResult<MountRecord> {
                Ok(MountRecord {
                    id: r.try_get("id")?,
                    realm_id: r.try_get("realm_id")?,
                    name: r.try_get("name")?,
                    plugin: r.try_get("plugin")?,
                    plugin_version: r.try_get("plugin_version")?,
                    digest: r.try_get("digest")?,
                    config: r.try_get("config")?,
                    grants: json_list(&r.try_get::<String, _>("grants")?)?,
                    connections: r.try_get("connections")?,
                    connections_sealed: r.try_get("connections_sealed")?,
                    created_at: r.try_get("created_at")?,
                    created_by: r.try_get("created_by")?,
                    updated_at: r.try_get("updated_at")?,
                })
            }

            fn role_row(r: &DbRow) -> StoreResult<EngineRoleRecord> {
                Ok(EngineRoleRecord {
                    name: r.try_get("name")?,
                    definition: r.try_get("definition")?,
                    created_at: r.try_get("created_at")?,
                    updated_at: r.try_get("updated_at")?,
                })
            }

            fn lease_row(r: &DbRow) -> StoreResult<LeaseRecord> {
                Ok(LeaseRecord {
                    id: r.try_get("id")?,
                    realm_id: r.try_get("realm_id")?,
                    mount_id: r.try_get("mount_id")?,
                    mount: r.try_get("mount")?,
                    role: r.try_get("role")?,
                    plugin: r.try_get("plugin")?,
                    role_definition: r.try_get("role_definition")?,
                    internal: r.try_get("internal")?,
                    issued_at: r.try_get("issued_at")?,
                    expires_at: r.try_get("expires_at")?,
                    max_expires_at: r.try_get("max_expires_at")?,
                    renewable: r.try_get("renewable")?,
                    revocable: r.try_get("revocable")?,
                    state: r.try_get("state")?,
                    issued_by: r.try_get("issued_by")?,
                    token_id: r.try_get("token_id")?,
                    attempts: r.try_get("attempts")?,
                    next_attempt_at: r.try_get("next_attempt_at")?,
                    claimed_until: r.try_get("claimed_until")?,
                    last_error: r.try_get("last_error")?,
                    revoked_at: r.try_get("revoked_at")?,
                })
            }


            #[async_trait]
            impl EngineStore for SqlStore<Backend> {
                async fn mount_create(&self, m: &MountRecord) -> StoreResult<()> {
                    let _write = self.write_lock().await;
                    let mut tx = self.begin_write().await?;
                    sqlx::query(
                        "INSERT INTO engine_mounts (id, realm_id, name, plugin, plugin_version, \
                         digest, config, grants, connections, connections_sealed, created_at, \
                         created_by, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                    )
                    .bind(&m.id)
                    .bind(&m.realm_id)
                    .bind(&m.name)
                    .bind(&m.plugin)
                    .bind(&m.plugin_version)
                    .bind(&m.digest)
                    .bind(&m.config)
                    .bind(list_json(&m.grants)?)
                    .bind(&m.connections)
                    .bind(&m.connections_sealed)
                    .bind(m.created_at)
                    .bind(&m.created_by)
                    .bind(m.updated_at)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_unique)?;
                    self.commit_change(tx, ChangeKind::Mount, &[]).await
                }

                async fn mount_get(
                    &self,
                    realm_id: &RealmId,
                    name: &str,
                ) -> StoreResult<Option<MountRecord>> {
                    sqlx::query("SELECT * FROM engine_mounts WHERE realm_id = $1 AND name = $2")
                        .bind(realm_id)
                        .bind(name)
                        .fetch_optional(self.backend.pool())
                        .await?
                        .map(|r| mount_row(&r))
                        .transpose()
                }

                async fn mount_by_id(
                    &self,
                    realm_id: &RealmId,
                    id: &str,
                ) -> StoreResult<Option<MountRecord>> {
                    sqlx::query("SELECT * FROM engine_mounts WHERE realm_id = $1 AND id = $2")
                        .bind(realm_id)
                        .bind(id)
                        .fetch_optional(self.backend.pool())
                        .await?
                        .map(|r| mount_row(&r))
                        .transpose()
                }

                async fn mounts(&self, realm_id: &RealmId) -> StoreResult<Vec<MountRecord>> {
                    sqlx::query("SELECT * FROM engine_mounts WHERE realm_id = $1 ORDER BY name")
                        .bind(realm_id)
                        .fetch_all(self.backend.pool())
                        .await?
                        .iter()
                        .map(mount_row)
                        .collect()
                }

                async fn mount_update(&self, m: &MountRecord) -> StoreResult<bool> {
                    let _write = self.write_lock().await;
                    let mut tx = self.begin_write().await?;
                    let done = sqlx::query(
                        "UPDATE engine_mounts SET config = $1, grants = $2, connections = $3, \
                         connections_sealed = $4, updated_at = $5, digest = $6, \
                         plugin_version = $7 WHERE realm_id = $8 AND id = $9",
                    )
                    .bind(&m.config)
                    .bind(list_json(&m.grants)?)
                    .bind(&m.connections)
                    .bind(&m.connections_sealed)
                    .bind(m.updated_at)
                    .bind(&m.digest)
                    .bind(&m.plugin_version)
                    .bind(&m.realm_id)
                    .bind(&m.id)
                    .execute(&mut *tx)
                    .await?;
                    if done.rows_affected() == 0 {
                        return Ok(false);
                    }
                    self.commit_change(tx, ChangeKind::Mount, &[]).await?;
                    Ok(true)
                }

                async fn mount_delete(&self, realm_id: &RealmId, id: &str) -> StoreResult<bool> {
                    let _write = self.write_lock().await;
                    let mut tx = self.begin_write().await?;
                    let done =
                        sqlx::query("DELETE FROM engine_mounts WHERE realm_id = $1 AND id = $2")
                            .bind(realm_id)
                            .bind(id)
                            .execute(&mut *tx)
                            .await?;
                    if done.rows_affected() == 0 {
                        return Ok(false);
                    }
                    self.commit_change(tx, ChangeKind::Mount, &[]).await?;
                    Ok(true)
                }

                async fn engine_role_put(
                    &self,
                    realm_id: &RealmId,
                    mount_id: &str,
                    role: &EngineRoleRecord,
                ) -> StoreResult<()> {
                    let _write = self.write_lock().await;
                    let mut tx = self.begin_write().await?;
                    sqlx::query(
                        "INSERT INTO engine_roles (mount_id, realm_id, name, definition, \
                         created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6) \
                         ON CONFLICT (mount_id, name) DO UPDATE SET \
                         definition = excluded.definition, updated_at = excluded.updated_at",
                    )
                    .bind(mount_id)
                    .bind(realm_id)
                    .bind(&role.name)
                    .bind(&role.definition)
                    .bind(role.created_at)
                    .bind(role.updated_at)
                    .execute(&mut *tx)
                    .await?;
                    self.commit_change(tx, ChangeKind::EngineRole, &[]).await
                }

                async fn engine_role_get(
                    &self,
                    realm_id: &RealmId,
                    mount_id: &str,
                    name: &str,
                ) -> StoreResult<Option<EngineRoleRecord>> {
                    sqlx::query(
                        "SELECT * FROM engine_roles WHERE realm_id = $1 AND mount_id = $2 \
                         AND name = $3",
                    )
                    .bind(realm_id)
                    .bind(mount_id)
                    .bind(name)
                    .fetch_optional(self.backend.pool())
                    .await?
                    .map(|r| role_row(&r))
                    .transpose()
                }

                async fn engine_roles(
                    &self,
                    realm_id: &RealmId,
                    mount_id: &str,
                ) -> StoreResult<Vec<EngineRoleRecord>> {
                    sqlx::query(
                        "SELECT * FROM engine_roles WHERE realm_id = $1 AND mount_id = $2 \
                         ORDER BY name",
                    )
                    .bind(realm_id)
                    .bind(mount_id)
                    .fetch_all(self.backend.pool())
                    .await?
                    .iter()
                    .map(role_row)
                    .collect()
                }

                async fn engine_role_delete(
                    &self,
                    realm_id: &RealmId,
                    mount_id: &str,
                    name: &str,
                ) -> StoreResult<bool> {
                    let _write = self.write_lock().await;
                    let mut tx = self.begin_write().await?;
                    let done = sqlx::query(
                        "DELETE FROM engine_roles WHERE realm_id = $1 AND mount_id = $2 \
                         AND name = $3",
                    )
                    .bind(realm_id)
                    .bind(mount_id)
                    .bind(name)
                    .execute(&mut *tx)
                    .await?;
                    if done.rows_affected() == 0 {
                        return Ok(false);
                    }
                    self.commit_change(tx, ChangeKind::EngineRole, &[]).await?;
                    Ok(true)
                }

                async fn plugin_data_get(
                    &self,
                    realm_id: &RealmId,
                    mount_id: &str,
                    key: &str,
                ) -> StoreResult<Option<Vec<u8>>> {
                    let row = sqlx::query(
                        "SELECT value FROM plugin_data WHERE realm_id = $1 AND mount_id = $2 \
                         AND key = $3",
                    )
                    .bind(realm_id)
                    .bind(mount_id)
                    .bind(key)
                    .fetch_optional(self.backend.pool())
                    .await?;
                    Ok(row.map(|r| r.try_get("value")).transpose()?)
                }

                async fn plugin_data_put(
                    &self,
                    realm_id: &RealmId,
                    mount_id: &str,
                    key: &str,
                    value: &[u8],
                    at: i64,
                ) -> StoreResult<()> {
                    let _write = self.write_lock().await;
                    sqlx::query(
                        "INSERT INTO plugin_data (mount_id, realm_id, key, value, updated_at) \
                         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (mount_id, key) DO UPDATE SET \
                         value = excluded.value, updated_at = excluded.updated_at",
                    )
                    .bind(mount_id)
                    .bind(realm_id)
                    .bind(key)
                    .bind(value)
                    .bind(at)
                    .execute(self.backend.pool())
                    .await?;
                    Ok(())
                }

                async fn plugin_data_delete(
                    &self,
                    realm_id: &RealmId,
                    mount_id: &str,
                    key: &str,
                ) -> StoreResult<bool> {
                    let _write = self.write_lock().await;
                    let done = sqlx::query(
                        "DELETE FROM plugin_data WHERE realm_id = $1 AND mount_id = $2 AND key = $3",
                    )
                    .bind(realm_id)
                    .bind(mount_id)
                    .bind(key)
                    .execute(self.backend.pool())
                    .await?;
                    Ok(done.rows_affected() > 0)
                }

                async fn plugin_data_usage(
                    &self,
                    realm_id: &RealmId,
                    mount_id: &str,
                    except_key: &str,
                ) -> StoreResult<(u64, u64)> {
                    let row = sqlx::query(
                        "SELECT COUNT(*) AS n, \
                         CAST(COALESCE(SUM(LENGTH(key) + LENGTH(value)), 0) AS BIGINT) AS bytes \
                         FROM plugin_data WHERE realm_id = $1 AND mount_id = $2 AND key <> $3",
                    )
                    .bind(realm_id)
                    .bind(mount_id)
                    .bind(except_key)
                    .fetch_one(self.backend.pool())
                    .await?;
                    let n: i64 = row.try_get("n")?;
                    let bytes: i64 = row.try_get("bytes")?;
                    Ok((n.max(0) as u64, bytes.max(0) as u64))
                }

                async fn plugin_data_keys(
                    &self,
                    realm_id: &RealmId,
                    mount_id: &str,
                    prefix: &str,
                    limit: i64,
                ) -> StoreResult<Vec<String>> {
                    let rows = sqlx::query(
                        "SELECT key FROM plugin_data WHERE realm_id = $1 AND mount_id = $2 \
                         AND key LIKE $3 ESCAPE '\\' ORDER BY key LIMIT $4",
                    )
                    .bind(realm_id)
                    .bind(mount_id)
                    .bind(like_prefix(prefix))
                    .bind(limit)
                    .fetch_all(self.backend.pool())
                    .await?;
                    rows.iter()
                        .map(|r| r.try_get("key").map_err(StoreError::from))
                        .collect()
                }

                async fn lease_create(&self, l: &LeaseRecord) -> StoreResult<()> {
                    match self.backend.single_writer() {
                        Some(writer) => writer.put_lease(l).await,
                        None => self.lease_in_own_tx(l).await,
                    }
                }

                async fn lease_get(
                    &self,
                    realm_id: &RealmId,
                    id: &LeaseId,
                ) -> StoreResult<Option<LeaseRecord>> {
                    sqlx::query("SELECT * FROM leases WHERE realm_id = $1 AND id = $2")
                        .bind(realm_id)
                        .bind(id)
                        .fetch_optional(self.backend.pool())
                        .await?
                        .map(|r| lease_row(&r))
                        .transpose()
                }

                async fn leases(
                    &self,
                    realm_id: &RealmId,
                    f: &LeaseFilter,
                ) -> StoreResult<Vec<LeaseRecord>> {
                    sqlx::query(
                        "SELECT * FROM leases WHERE realm_id = $1 \
                         AND ($2 IS NULL OR id LIKE $2 ESCAPE '\\') \
                         AND ($3 IS NULL OR state = $3) AND ($4 IS NULL OR id > $4) \
                         ORDER BY id LIMIT $5",
                    )
                    .bind(realm_id)
                    .bind(f.prefix.as_deref().map(like_prefix))
                    .bind(&f.state)
                    .bind(&f.after)
                    .bind(f.limit)
                    .fetch_all(self.backend.pool())
                    .await?
                    .iter()
                    .map(lease_row)
                    .collect()
                }

                async fn lease_extend(
                    &self,
                    realm_id: &RealmId,
                    id: &LeaseId,
                    expires_at: i64,
                ) -> StoreResult<bool> {
                    let _write = self.write_lock().await;
                    let mut tx = self.begin_write().await?;
                    let done = sqlx::query(
                        "UPDATE leases SET expires_at = $1 WHERE realm_id = $2 AND id = $3 \
                         AND state = 'active'",
                    )
                    .bind(expires_at)
                    .bind(realm_id)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                    if done.rows_affected() == 0 {
                        return Ok(false);
                    }
                    self.commit_change(tx, ChangeKind::Lease, &[("expires_at", expires_at.into())]).await?;
                    Ok(true)
                }

                async fn lease_claim(
                    &self,
                    realm_id: &RealmId,
                    id: &LeaseId,
                    now: i64,
                    until: i64,
                ) -> StoreResult<Option<LeaseRecord>> {
                    let _write = self.write_lock().await;
                    sqlx::query(
                        "UPDATE leases SET claimed_until = $1 WHERE realm_id = $2 AND id = $3 \
                         AND state = 'active' AND (claimed_until IS NULL OR claimed_until < $4) \
                         RETURNING *",
                    )
                    .bind(until)
                    .bind(realm_id)
                    .bind(id)
                    .bind(now)
                    .fetch_optional(self.backend.pool())
                    .await?
                    .map(|r| lease_row(&r))
                    .transpose()
                }

                async fn leases_claim_due(
                    &self,
                    now: i64,
                    until: i64,
                    limit: i64,
                ) -> StoreResult<Vec<LeaseRecord>> {
                    let _write = self.write_lock().await;
                    sqlx::query(CLAIM_DUE.as_str())
                    .bind(until)
                    .bind(now)
                    .bind(limit)
                    .fetch_all(self.backend.pool())
                    .await?
                    .iter()
                    .map(lease_row)
                    .collect()
                }

                async fn leases_of_mount(
                    &self,
                    realm_id: &RealmId,
                    mount_id: &str,
                ) -> StoreResult<Vec<LeaseRecord>> {
                    sqlx::query(
                        "SELECT * FROM leases WHERE realm_id = $1 AND mount_id = $2 \
                         AND state = 'active' ORDER BY id",
                    )
                    .bind(realm_id)
                    .bind(mount_id)
                    .fetch_all(self.backend.pool())
                    .await?
                    .iter()
                    .map(lease_row)
                    .collect()
                }

                async fn lease_finish(
                    &self,
                    realm_id: &RealmId,
                    id: &LeaseId,
                    state: LeaseState,
                    at: i64,
                    error: Option<&str>,
                ) -> StoreResult<()> {
                    let _write = self.write_lock().await;
                    let mut tx = self.begin_write().await?;
                    sqlx::query(
                        "UPDATE leases SET state = $1, revoked_at = $2, claimed_until = NULL, \
                         last_error = COALESCE($3, last_error) WHERE realm_id = $4 AND id = $5",
                    )
                    .bind(state)
                    .bind(at)
                    .bind(error)
                    .bind(realm_id)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                    self.commit_change(tx, ChangeKind::Lease, &[]).await
                }

                async fn lease_failed(
                    &self,
                    realm_id: &RealmId,
                    id: &LeaseId,
                    attempts: i32,
                    next_attempt_at: i64,
                    error: &str,
                ) -> StoreResult<()> {
                    let _write = self.write_lock().await;
                    sqlx::query(
                        "UPDATE leases SET attempts = $1, next_attempt_at = $2, last_error = $3, \
                         claimed_until = NULL WHERE realm_id = $4 AND id = $5",
                    )
                    .bind(attempts)
                    .bind(next_attempt_at)
                    .bind(error)
                    .bind(realm_id)
                    .bind(id)
                    .execute(self.backend.pool())
                    .await?;
                    Ok(())
                }

                async fn leases_count(&self, state: LeaseState) -> StoreResult<i64> {
                    let row = sqlx::query("SELECT COUNT(*) AS n FROM leases WHERE state = $1")
                        .bind(state)
                        .fetch_one(self.backend.pool())
                        .await?;
                    Ok(row.try_get("n")?)
                }
            }
        }
    };
}

pub(super) use impl_engine_store;
