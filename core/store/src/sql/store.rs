//! The query code of the identity, realm, secret and audit stores, written once and expanded
//! per backend (see [the module docs](super) for why a macro, and for its contract).

/// Expands `IdentityStore`, `RealmStore`, `SecretStore`, `AuditStore` and `Store` for
/// `SqlStore<$backend>`, using only [`SqlBackend`](super::SqlBackend) items of `$backend`.
macro_rules! impl_sql_store {
    ($backend:ty) => {
        use async_trait::async_trait;
        use sqlx::Row as _;

        use crate::change::ChangeKind;
        use crate::sql::{SqlBackend, SqlStore, json_list, like_prefix, list_json, map_unique};
        use crate::*;

        type Backend = $backend;
        type Db = <Backend as SqlBackend>::Db;
        type DbRow = <Db as sqlx::Database>::Row;

        fn user_row(r: &DbRow) -> StoreResult<User> {
            Ok(User {
                id: r.try_get("id")?,
                kind: UserKind::parse(&r.try_get::<String, _>("kind")?)
                    .ok_or_else(|| StoreError::Corrupt("user kind".into()))?,
                email: r.try_get("email")?,
                password_hash: r.try_get("password_hash")?,
                superuser: r.try_get("superuser")?,
                global_capabilities: json_list(&r.try_get::<String, _>("global_capabilities")?)?,
                created_at: r.try_get("created_at")?,
            })
        }

        fn token_row(r: &DbRow) -> StoreResult<TokenRecord> {
            let caps: Option<String> = r.try_get("capabilities")?;
            Ok(TokenRecord {
                id: r.try_get("id")?,
                hash: r.try_get("hash")?,
                user_id: r.try_get("user_id")?,
                parent_id: r.try_get("parent_id")?,
                name: r.try_get("name")?,
                capabilities: caps.as_deref().map(json_list).transpose()?,
                realm_id: r.try_get("realm_id")?,
                env: r.try_get("env")?,
                key_glob: r.try_get("key_glob")?,
                expires_at: r.try_get("expires_at")?,
                created_at: r.try_get("created_at")?,
                revoked_at: r.try_get("revoked_at")?,
                identity: r.try_get("identity")?,
            })
        }

        fn realm_row(r: &DbRow) -> StoreResult<Realm> {
            Ok(Realm {
                id: r.try_get("id")?,
                slug: r.try_get("slug")?,
                name: r.try_get("name")?,
                created_at: r.try_get("created_at")?,
                created_by: r.try_get("created_by")?,
            })
        }

        fn key_row(r: &DbRow) -> StoreResult<DataKey> {
            Ok(DataKey {
                realm_id: r.try_get("realm_id")?,
                master_key_id: r.try_get("master_key_id")?,
                wrapped: r.try_get("wrapped")?,
                created_at: r.try_get("created_at")?,
            })
        }

        fn role_row(r: &DbRow) -> StoreResult<Role> {
            Ok(Role {
                name: r.try_get("name")?,
                capabilities: json_list(&r.try_get::<String, _>("capabilities")?)?,
                env: r.try_get("env")?,
                key_glob: r.try_get("key_glob")?,
                created_at: r.try_get("created_at")?,
            })
        }

        fn binding_row(r: &DbRow) -> StoreResult<Binding> {
            let kind: String = r.try_get("subject_kind")?;
            let id: String = r.try_get("subject_id")?;
            let subject = match kind.as_str() {
                "user" => Subject::User(id.into()),
                "token" => Subject::Token(id.into()),
                other => return Err(StoreError::Corrupt(format!("subject kind {other}"))),
            };
            Ok(Binding {
                id: r.try_get("id")?,
                realm_id: r.try_get("realm_id")?,
                subject,
                role: r.try_get("role")?,
                created_at: r.try_get("created_at")?,
                created_by: r.try_get("created_by")?,
            })
        }

        fn meta_row(r: &DbRow) -> StoreResult<SecretMeta> {
            Ok(SecretMeta {
                env: r.try_get("env")?,
                key: r.try_get("key")?,
                version: r.try_get("current_version")?,
                created_at: r.try_get("created_at")?,
                created_by: r.try_get("created_by")?,
                updated_at: r.try_get("updated_at")?,
                updated_by: r.try_get("updated_by")?,
            })
        }

        fn audit_row(r: &DbRow) -> StoreResult<AuditRow> {
            Ok(AuditRow {
                gseq: r.try_get("gseq")?,
                id: r.try_get("id")?,
                chain: r.try_get("chain")?,
                seq: r.try_get("seq")?,
                time: r.try_get("time")?,
                realm_id: r.try_get("realm_id")?,
                action: r.try_get("action")?,
                outcome: r.try_get("outcome")?,
                actor: r.try_get("actor")?,
                body: r.try_get("body")?,
                prev_hash: r.try_get("prev_hash")?,
                hash: r.try_get("hash")?,
            })
        }

        /// Audit rows per INSERT statement (11 parameters each), largest first.
        const AUDIT_INSERT_SIZES: [usize; 5] = [256, 64, 16, 4, 1];

        const TOKEN_COLS: &str = "id, hash, user_id, parent_id, name, capabilities, realm_id, \
                                  env, key_glob, expires_at, created_at, revoked_at, identity";
        use crate::linking::META_COLS;

        impl SqlStore<Backend> {
            /// Begins a write transaction (SQLite: takes the write lock at once).
            async fn begin_write(&self) -> StoreResult<sqlx::Transaction<'static, Db>> {
                Ok(self.backend.pool().begin_with(Backend::BEGIN_WRITE).await?)
            }

            /// Commits a change with the request's event, when the change carries it (see
            /// [`change`](crate::change)): the event is appended in `tx`, so both commit or
            /// neither does. `facts` are what only the store knew (a new version number).
            pub(in crate::sql) async fn commit_change(
                &self,
                tx: sqlx::Transaction<'_, Db>,
                kind: ChangeKind,
                facts: &[(&'static str, serde_json::Value)],
            ) -> StoreResult<()> {
                self.commit_change_in(tx, kind, facts, &[]).await
            }

            /// [`Self::commit_change`], with the event also recorded in each of `realms`
            /// (a system-scope change that alters those realms' policy).
            pub(in crate::sql) async fn commit_change_in(
                &self,
                mut tx: sqlx::Transaction<'_, Db>,
                kind: ChangeKind,
                facts: &[(&'static str, serde_json::Value)],
                realms: &[RealmId],
            ) -> StoreResult<()> {
                let claim = crate::change::claim(kind);
                let rows = match &claim {
                    Some(c) => {
                        let mut events = vec![c.event(facts)];
                        events.extend(realms.iter().map(|r| c.event_in_realm(r, facts)));
                        audit_in_tx(&mut tx, self.loaded_chain_key()?, &events).await?
                    }
                    None => Vec::new(),
                };
                tx.commit().await?;
                if let Some(c) = claim {
                    c.commit();
                    self.publish(rows);
                }
                Ok(())
            }

            /// A lease in its own transaction (no single writer).
            pub(in crate::sql) async fn lease_in_own_tx(&self, lease: &LeaseRecord) -> StoreResult<()> {
                let mut tx = self.begin_write().await?;
                lease_insert(&mut tx, lease).await?;
                let facts = crate::change::lease_facts(lease);
                self.commit_change(tx, ChangeKind::Lease, &facts).await
            }
        }

        #[async_trait]
        impl Store for SqlStore<Backend> {
            fn backend(&self) -> &'static str {
                Backend::NAME
            }

            async fn ping(&self) -> StoreResult<()> {
                sqlx::query("SELECT 1").execute(self.backend.pool()).await?;
                Ok(())
            }

            async fn close(&self) {
                self.shut_down().await;
            }

            async fn meta_get(&self, name: &str) -> StoreResult<Option<String>> {
                let row = sqlx::query("SELECT value FROM meta WHERE name = $1")
                    .bind(name)
                    .fetch_optional(self.backend.pool())
                    .await?;
                Ok(row.map(|r| r.try_get("value")).transpose()?)
            }

            async fn meta_init(&self, name: &str, value: &str) -> StoreResult<String> {
                let _write = self.write_lock().await;
                sqlx::query("INSERT INTO meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
                    .bind(name)
                    .bind(value)
                    .execute(self.backend.pool())
                    .await?;
                self.meta_get(name)
                    .await?
                    .ok_or_else(|| StoreError::Corrupt(format!("meta {name} vanished")))
            }

            async fn meta_set(&self, name: &str, value: &str) -> StoreResult<()> {
                let _write = self.write_lock().await;
                sqlx::query("INSERT INTO meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value")
                    .bind(name)
                    .bind(value)
                    .execute(self.backend.pool())
                    .await?;
                Ok(())
            }
        }

        #[async_trait]
        impl IdentityStore for SqlStore<Backend> {
            async fn user_create(&self, u: &User) -> StoreResult<()> {
                let _write = self.write_lock().await;
                let caps = list_json(&u.global_capabilities)?;
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "INSERT INTO users (id, email, password_hash, superuser, global_capabilities, created_at, kind) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&u.id)
                .bind(&u.email)
                .bind(&u.password_hash)
                .bind(u.superuser)
                .bind(caps)
                .bind(u.created_at)
                .bind(u.kind.as_str())
                .execute(&mut *tx)
                .await
                .map_err(map_unique)?;
                self.commit_change(tx, ChangeKind::User, &[]).await
            }

            async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
                sqlx::query("SELECT * FROM users WHERE email = $1")
                    .bind(email)
                    .fetch_optional(self.backend.pool())
                    .await?
                    .as_ref()
                    .map(user_row)
                    .transpose()
            }

            async fn user_by_id(&self, id: &UserId) -> StoreResult<Option<User>> {
                sqlx::query("SELECT * FROM users WHERE id = $1")
                    .bind(id)
                    .fetch_optional(self.backend.pool())
                    .await?
                    .as_ref()
                    .map(user_row)
                    .transpose()
            }

            async fn token_create(&self, t: &TokenRecord) -> StoreResult<()> {
                let _write = self.write_lock().await;
                let mut tx = self.begin_write().await?;
                insert_token(&mut tx, t).await?;
                self.commit_change(tx, ChangeKind::Token, &[]).await
            }

            async fn token_by_hash(&self, hash: &str) -> StoreResult<Option<TokenRecord>> {
                sqlx::query(&format!("SELECT {TOKEN_COLS} FROM tokens WHERE hash = $1"))
                    .bind(hash)
                    .fetch_optional(self.backend.pool())
                    .await?
                    .as_ref()
                    .map(token_row)
                    .transpose()
            }

            async fn token_by_id(&self, id: &TokenId) -> StoreResult<Option<TokenRecord>> {
                sqlx::query(&format!("SELECT {TOKEN_COLS} FROM tokens WHERE id = $1"))
                    .bind(id)
                    .fetch_optional(self.backend.pool())
                    .await?
                    .as_ref()
                    .map(token_row)
                    .transpose()
            }

            async fn tokens_of_user(&self, user_id: &UserId) -> StoreResult<Vec<TokenRecord>> {
                sqlx::query(&format!(
                    "SELECT {TOKEN_COLS} FROM tokens WHERE user_id = $1 ORDER BY created_at DESC, id"
                ))
                .bind(user_id)
                .fetch_all(self.backend.pool())
                .await?
                .iter()
                .map(token_row)
                .collect()
            }

            async fn token_lineage_broken(&self, id: &TokenId) -> StoreResult<bool> {
                let row = sqlx::query(
                    "WITH RECURSIVE up(id, parent_id, revoked_at) AS ( \
                       SELECT id, parent_id, revoked_at FROM tokens WHERE id = $1 \
                       UNION ALL SELECT t.id, t.parent_id, t.revoked_at \
                       FROM tokens t JOIN up ON t.id = up.parent_id) \
                     SELECT (SELECT COUNT(*) FROM up WHERE revoked_at IS NOT NULL) \
                          + (SELECT COUNT(*) FROM up u WHERE u.parent_id IS NOT NULL \
                             AND NOT EXISTS (SELECT 1 FROM tokens t WHERE t.id = u.parent_id)) \
                       AS broken",
                )
                .bind(id)
                .fetch_one(self.backend.pool())
                .await?;
                Ok(row.try_get::<i64, _>("broken")? > 0)
            }

            async fn tokens_all(&self, limit: i64) -> StoreResult<Vec<TokenRecord>> {
                sqlx::query(&format!(
                    "SELECT {TOKEN_COLS} FROM tokens ORDER BY created_at DESC, id LIMIT $1"
                ))
                .bind(limit)
                .fetch_all(self.backend.pool())
                .await?
                .iter()
                .map(token_row)
                .collect()
            }

            async fn token_revoke(&self, id: &TokenId, at: i64) -> StoreResult<Vec<String>> {
                let _write = self.write_lock().await;
                let mut tx = self.begin_write().await?;
                let hashes = revoke_tree(&mut tx, id, at).await?;
                self.commit_change(tx, ChangeKind::Token, &[("revoked", hashes.len().into())]).await?;
                Ok(hashes)
            }
        }

        #[async_trait]
        impl RealmStore for SqlStore<Backend> {
            async fn realm_create(&self, r: &Realm, k: &DataKey, b: &Binding) -> StoreResult<()> {
                let _write = self.write_lock().await;
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "INSERT INTO realms (id, slug, name, created_at, created_by) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&r.id)
                .bind(&r.slug)
                .bind(&r.name)
                .bind(r.created_at)
                .bind(&r.created_by)
                .execute(&mut *tx)
                .await
                .map_err(map_unique)?;
                sqlx::query(
                    "INSERT INTO data_keys (realm_id, master_key_id, wrapped, created_at) VALUES ($1, $2, $3, $4)",
                )
                .bind(&k.realm_id)
                .bind(&k.master_key_id)
                .bind(&k.wrapped)
                .bind(k.created_at)
                .execute(&mut *tx)
                .await?;
                insert_binding(&mut *tx, b).await?;
                self.commit_change(tx, ChangeKind::Realm, &[]).await
            }

            async fn realm_by_slug(&self, slug: &str) -> StoreResult<Option<Realm>> {
                sqlx::query("SELECT * FROM realms WHERE slug = $1")
                    .bind(slug)
                    .fetch_optional(self.backend.pool())
                    .await?
                    .as_ref()
                    .map(realm_row)
                    .transpose()
            }

            async fn realms_all(&self) -> StoreResult<Vec<Realm>> {
                sqlx::query("SELECT * FROM realms ORDER BY slug")
                    .fetch_all(self.backend.pool())
                    .await?
                    .iter()
                    .map(realm_row)
                    .collect()
            }

            async fn realm_delete(&self, realm_id: &RealmId) -> StoreResult<bool> {
                let _write = self.write_lock().await;
                let mut tx = self.begin_write().await?;
                for table in [
                    "secret_versions",
                    "secrets",
                    "bindings",
                    "roles",
                    "tokens",
                    "data_keys",
                ] {
                    sqlx::query(&format!("DELETE FROM {table} WHERE realm_id = $1"))
                        .bind(realm_id)
                        .execute(&mut *tx)
                        .await?;
                }
                let done = sqlx::query("DELETE FROM realms WHERE id = $1")
                    .bind(realm_id)
                    .execute(&mut *tx)
                    .await?;
                self.commit_change(tx, ChangeKind::Realm, &[]).await?;
                self.evict_all();
                Ok(done.rows_affected() > 0)
            }

            async fn data_key(&self, realm_id: &RealmId) -> StoreResult<Option<DataKey>> {
                sqlx::query("SELECT * FROM data_keys WHERE realm_id = $1")
                    .bind(realm_id)
                    .fetch_optional(self.backend.pool())
                    .await?
                    .as_ref()
                    .map(key_row)
                    .transpose()
            }

            async fn data_keys_all(&self) -> StoreResult<Vec<DataKey>> {
                sqlx::query("SELECT * FROM data_keys ORDER BY realm_id")
                    .fetch_all(self.backend.pool())
                    .await?
                    .iter()
                    .map(key_row)
                    .collect()
            }

            async fn data_keys_replace(&self, keys: &[DataKey], meta: &[(String, String)]) -> StoreResult<()> {
                let _write = self.write_lock().await;
                let mut tx = self.begin_write().await?;
                for (name, value) in meta {
                    sqlx::query("UPDATE meta SET value = $2 WHERE name = $1")
                        .bind(name)
                        .bind(value)
                        .execute(&mut *tx)
                        .await?;
                }
                for k in keys {
                    sqlx::query(
                        "UPDATE data_keys SET master_key_id = $2, wrapped = $3 WHERE realm_id = $1",
                    )
                    .bind(&k.realm_id)
                    .bind(&k.master_key_id)
                    .bind(&k.wrapped)
                    .execute(&mut *tx)
                    .await?;
                }
                self.commit_change(tx, ChangeKind::MasterKey, &[]).await
            }

            async fn role_put(&self, realm_id: &RealmId, role: &Role) -> StoreResult<()> {
                let _write = self.write_lock().await;
                let caps = list_json(&role.capabilities)?;
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "INSERT INTO roles (realm_id, name, capabilities, env, key_glob, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (realm_id, name) DO UPDATE SET \
                     capabilities = excluded.capabilities, env = excluded.env, key_glob = excluded.key_glob",
                )
                .bind(realm_id)
                .bind(&role.name)
                .bind(caps)
                .bind(&role.env)
                .bind(&role.key_glob)
                .bind(role.created_at)
                .execute(&mut *tx)
                .await?;
                self.commit_change(tx, ChangeKind::Policy, &[]).await
            }

            async fn role_get(&self, realm_id: &RealmId, name: &str) -> StoreResult<Option<Role>> {
                sqlx::query("SELECT * FROM roles WHERE realm_id = $1 AND name = $2")
                    .bind(realm_id)
                    .bind(name)
                    .fetch_optional(self.backend.pool())
                    .await?
                    .as_ref()
                    .map(role_row)
                    .transpose()
            }

            async fn roles(&self, realm_id: &RealmId) -> StoreResult<Vec<Role>> {
                sqlx::query("SELECT * FROM roles WHERE realm_id = $1 ORDER BY name")
                    .bind(realm_id)
                    .fetch_all(self.backend.pool())
                    .await?
                    .iter()
                    .map(role_row)
                    .collect()
            }

            async fn role_delete(&self, realm_id: &RealmId, name: &str) -> StoreResult<bool> {
                let _write = self.write_lock().await;
                let mut tx = self.begin_write().await?;
                sqlx::query("DELETE FROM bindings WHERE realm_id = $1 AND role = $2")
                    .bind(realm_id)
                    .bind(name)
                    .execute(&mut *tx)
                    .await?;
                let done = sqlx::query("DELETE FROM roles WHERE realm_id = $1 AND name = $2")
                    .bind(realm_id)
                    .bind(name)
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Ok(false);
                }
                self.commit_change(tx, ChangeKind::Policy, &[]).await?;
                Ok(done.rows_affected() > 0)
            }

            async fn binding_create(&self, b: &Binding) -> StoreResult<()> {
                let _write = self.write_lock().await;
                let mut tx = self.begin_write().await?;
                insert_binding(&mut *tx, b).await?;
                self.commit_change(tx, ChangeKind::Policy, &[]).await
            }

            async fn bindings(&self, realm_id: &RealmId) -> StoreResult<Vec<Binding>> {
                sqlx::query("SELECT * FROM bindings WHERE realm_id = $1 ORDER BY created_at, id")
                    .bind(realm_id)
                    .fetch_all(self.backend.pool())
                    .await?
                    .iter()
                    .map(binding_row)
                    .collect()
            }

            async fn bindings_for(
                &self,
                realm_id: &RealmId,
                user_id: &UserId,
                token_id: &TokenId,
            ) -> StoreResult<Vec<Binding>> {
                sqlx::query(
                    "SELECT * FROM bindings WHERE realm_id = $1 AND \
                     ((subject_kind = 'user' AND subject_id = $2) OR (subject_kind = 'token' AND subject_id = $3)) \
                     ORDER BY created_at, id",
                )
                .bind(realm_id)
                .bind(user_id)
                .bind(token_id)
                .fetch_all(self.backend.pool())
                .await?
                .iter()
                .map(binding_row)
                .collect()
            }

            async fn realms_bound(&self, user_id: &UserId, token_id: &TokenId) -> StoreResult<Vec<RealmId>> {
                let rows = sqlx::query(
                    "SELECT DISTINCT realm_id FROM bindings WHERE \
                     (subject_kind = 'user' AND subject_id = $1) OR (subject_kind = 'token' AND subject_id = $2)",
                )
                .bind(user_id)
                .bind(token_id)
                .fetch_all(self.backend.pool())
                .await?;
                Ok(rows
                    .iter()
                    .map(|r| r.try_get("realm_id"))
                    .collect::<Result<_, _>>()?)
            }

            async fn binding_delete(&self, realm_id: &RealmId, id: &BindingId) -> StoreResult<bool> {
                let _write = self.write_lock().await;
                let mut tx = self.begin_write().await?;
                let done = sqlx::query("DELETE FROM bindings WHERE realm_id = $1 AND id = $2")
                    .bind(realm_id)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Ok(false);
                }
                self.commit_change(tx, ChangeKind::Policy, &[]).await?;
                Ok(true)
            }

        }

        #[async_trait]
        impl SecretStore for SqlStore<Backend> {
            async fn secret_put(
                &self,
                realm_id: &RealmId,
                w: &SecretWrite,
                cas: Option<i64>,
            ) -> StoreResult<WriteOutcome> {
                if let Some(writer) = self.backend.single_writer() {
                    return writer.put_secret(realm_id, w, cas).await;
                }
                // Its own transaction; PostgreSQL groups concurrent commits itself.
                let mut tx = self.begin_write().await?;
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

            async fn secret_get(
                &self,
                realm_id: &RealmId,
                env: &str,
                key: &str,
                version: Option<i64>,
            ) -> StoreResult<Option<SecretVersion>> {
                let fetch = fetch_secret(self.backend.pool(), realm_id, env, key, version);
                self.read_secret(realm_id, env, key, version.is_none(), fetch).await
            }

            async fn secret_history(
                &self,
                realm_id: &RealmId,
                env: &str,
                key: &str,
            ) -> StoreResult<Option<(SecretMeta, Vec<VersionMeta>)>> {
                let meta = sqlx::query(&format!(
                    "SELECT {META_COLS} FROM secrets WHERE realm_id = $1 AND env = $2 AND key = $3 AND NOT deleted"
                ))
                .bind(realm_id)
                .bind(env)
                .bind(key)
                .fetch_optional(self.backend.pool())
                .await?;
                let Some(meta) = meta else { return Ok(None) };
                let versions = sqlx::query(
                    "SELECT version, created_at, created_by FROM secret_versions \
                     WHERE realm_id = $1 AND env = $2 AND key = $3 ORDER BY version DESC",
                )
                .bind(realm_id)
                .bind(env)
                .bind(key)
                .fetch_all(self.backend.pool())
                .await?
                .iter()
                .map(|r| {
                    Ok(VersionMeta {
                        version: r.try_get("version")?,
                        created_at: r.try_get("created_at")?,
                        created_by: r.try_get("created_by")?,
                    })
                })
                .collect::<StoreResult<_>>()?;
                Ok(Some((meta_row(&meta)?, versions)))
            }

            async fn secret_list(
                &self,
                realm_id: &RealmId,
                env: &str,
                prefix: &str,
                after: Option<&str>,
                limit: i64,
            ) -> StoreResult<Vec<SecretMeta>> {
                sqlx::query(&format!(
                    "SELECT {META_COLS} FROM secrets WHERE realm_id = $1 AND env = $2 AND NOT deleted \
                     AND key LIKE $3 ESCAPE '\\' AND ($4 IS NULL OR key > $4) ORDER BY key LIMIT $5"
                ))
                .bind(realm_id)
                .bind(env)
                .bind(like_prefix(prefix))
                .bind(after)
                .bind(limit)
                .fetch_all(self.backend.pool())
                .await?
                .iter()
                .map(meta_row)
                .collect()
            }

            async fn secret_delete(
                &self,
                realm_id: &RealmId,
                env: &str,
                key: &str,
                by: &str,
                at: i64,
            ) -> StoreResult<bool> {
                let _write = self.write_lock().await;
                let mut tx = self.begin_write().await?;
                let done = sqlx::query(
                    "UPDATE secrets SET deleted = TRUE, updated_at = $4, updated_by = $5 \
                     WHERE realm_id = $1 AND env = $2 AND key = $3 AND NOT deleted",
                )
                .bind(realm_id)
                .bind(env)
                .bind(key)
                .bind(at)
                .bind(by)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 0 {
                    return Ok(false);
                }
                self.evict(realm_id, env, key);
                let out = self.commit_change(tx, ChangeKind::Secret, &[]).await;
                self.evict(realm_id, env, key);
                out?;
                Ok(true)
            }
        }

        #[async_trait]
        impl AuditStore for SqlStore<Backend> {
            fn single_writer(&self) -> bool {
                self.backend.single_writer().is_some()
            }

            fn set_chain_key(&self, key: arcan_crypto::ChainKey) {
                self.put_chain_key(key);
            }

            fn audit_feed(&self) -> Option<tokio::sync::broadcast::Receiver<std::sync::Arc<Vec<AuditRow>>>> {
                self.live_feed()
            }

            async fn audit_signed_head(&self, chain: &str) -> StoreResult<Option<(arcan_crypto::ChainHead, String)>> {
                let row = sqlx::query("SELECT * FROM audit_heads WHERE chain = $1")
                    .bind(chain)
                    .fetch_optional(self.backend.pool())
                    .await?;
                row.map(|r| head_row(chain, &r)).transpose()
            }

            async fn audit_append(&self, events: &[NewAuditEvent]) -> StoreResult<Vec<AuditRow>> {
                if let Some(writer) = self.backend.single_writer() {
                    return writer.append_audit(events).await;
                }
                // Its own transaction; several nodes may append.
                let mut tx = self.begin_write().await?;
                let rows = audit_in_tx(&mut tx, self.loaded_chain_key()?, events).await?;
                tx.commit().await?;
                Ok(rows)
            }

            async fn audit_list(&self, f: &AuditFilter) -> StoreResult<Vec<AuditRow>> {
                sqlx::query(
                    "SELECT * FROM audit_events WHERE chain = $1 \
                     AND ($2 IS NULL OR time >= $2) AND ($3 IS NULL OR time < $3) \
                     AND ($4 IS NULL OR actor = $4) AND ($5 IS NULL OR action = $5) \
                     AND ($6 IS NULL OR outcome = $6) AND ($7 IS NULL OR seq > $7) \
                     ORDER BY seq LIMIT $8",
                )
                .bind(&f.realm_id)
                .bind(f.since)
                .bind(f.until)
                .bind(&f.actor)
                .bind(&f.action)
                .bind(&f.outcome)
                .bind(f.after)
                .bind(f.limit)
                .fetch_all(self.backend.pool())
                .await?
                .iter()
                .map(audit_row)
                .collect()
            }

            async fn audit_chain(&self, chain: &str, after_seq: i64, limit: i64) -> StoreResult<Vec<AuditRow>> {
                sqlx::query("SELECT * FROM audit_events WHERE chain = $1 AND seq > $2 ORDER BY seq LIMIT $3")
                    .bind(chain)
                    .bind(after_seq)
                    .bind(limit)
                    .fetch_all(self.backend.pool())
                    .await?
                    .iter()
                    .map(audit_row)
                    .collect()
            }

            async fn audit_checkpoint(&self, chain: &str) -> StoreResult<Option<(i64, String)>> {
                let row = sqlx::query("SELECT seq, hash FROM audit_checkpoints WHERE chain = $1")
                    .bind(chain)
                    .fetch_optional(self.backend.pool())
                    .await?;
                Ok(row.map(|r| Ok::<_, sqlx::Error>((r.try_get("seq")?, r.try_get("hash")?))).transpose()?)
            }

            async fn audit_after(&self, gseq: i64, limit: i64) -> StoreResult<Vec<AuditRow>> {
                sqlx::query("SELECT * FROM audit_events WHERE gseq > $1 ORDER BY gseq LIMIT $2")
                    .bind(gseq)
                    .bind(limit)
                    .fetch_all(self.backend.pool())
                    .await?
                    .iter()
                    .map(audit_row)
                    .collect()
            }

            async fn audit_head(&self) -> StoreResult<i64> {
                let row = sqlx::query("SELECT COALESCE(MAX(gseq), 0) AS head FROM audit_events")
                    .fetch_one(self.backend.pool())
                    .await?;
                Ok(row.try_get("head")?)
            }

            async fn audit_prune(&self, before: i64) -> StoreResult<u64> {
                let _write = self.write_lock().await;
                let mut tx = self.begin_write().await?;
                if let Some(lock) = Backend::APPEND_LOCK {
                    sqlx::query(lock).execute(&mut *tx).await?;
                }
                let chains = sqlx::query(
                    "SELECT chain, MAX(seq) AS seq FROM audit_events WHERE time < $1 GROUP BY chain",
                )
                .bind(before)
                .fetch_all(&mut *tx)
                .await?;
                let key = self.loaded_chain_key()?;
                let mut deleted = 0;
                for c in &chains {
                    let chain: String = c.try_get("chain")?;
                    let seq: i64 = c.try_get("seq")?;
                    // A chain whose head does not verify is kept whole, as evidence.
                    let mut head = match chain_head_in_tx(&mut tx, key, &chain).await {
                        Ok(h) => h,
                        Err(StoreError::Tampered(what)) => {
                            tracing::error!(problem = %what, "audit retention skips a tampered chain");
                            continue;
                        }
                        Err(e) => return Err(e),
                    };
                    // Verification starts only ever moves forward, signed in the head.
                    if seq > head.from_seq {
                        let hash: String = sqlx::query("SELECT hash FROM audit_events WHERE chain = $1 AND seq = $2")
                            .bind(&chain)
                            .bind(seq)
                            .fetch_one(&mut *tx)
                            .await?
                            .try_get("hash")?;
                        sqlx::query(
                            "INSERT INTO audit_checkpoints (chain, seq, hash) VALUES ($1, $2, $3) \
                             ON CONFLICT (chain) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
                        )
                        .bind(&chain)
                        .bind(seq)
                        .bind(&hash)
                        .execute(&mut *tx)
                        .await?;
                        head.from_seq = seq;
                        head.from_hash = hash;
                        put_head_in_tx(&mut tx, key, &head).await?;
                    }
                    deleted += sqlx::query("DELETE FROM audit_events WHERE chain = $1 AND seq <= $2")
                        .bind(&chain)
                        .bind(seq)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                }
                tx.commit().await?;
                Ok(deleted)
            }

            async fn sink_put(&self, sink: &SinkRow) -> StoreResult<()> {
                let _write = self.write_lock().await;
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "INSERT INTO audit_sinks (name, kind, config, cursor, created_at) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, config = excluded.config",
                )
                .bind(&sink.name)
                .bind(&sink.kind)
                .bind(&sink.config)
                .bind(sink.cursor)
                .bind(sink.created_at)
                .execute(&mut *tx)
                .await?;
                self.commit_change(tx, ChangeKind::Sink, &[]).await
            }

            async fn sinks(&self) -> StoreResult<Vec<SinkRow>> {
                let rows = sqlx::query("SELECT * FROM audit_sinks ORDER BY name").fetch_all(self.backend.pool()).await?;
                rows.iter()
                    .map(|r| {
                        Ok(SinkRow {
                            name: r.try_get("name")?,
                            kind: r.try_get("kind")?,
                            config: r.try_get("config")?,
                            cursor: r.try_get("cursor")?,
                            created_at: r.try_get("created_at")?,
                        })
                    })
                    .collect()
            }

            async fn sink_delete(&self, name: &str) -> StoreResult<bool> {
                let _write = self.write_lock().await;
                let mut tx = self.begin_write().await?;
                let done = sqlx::query("DELETE FROM audit_sinks WHERE name = $1").bind(name).execute(&mut *tx).await?;
                if done.rows_affected() == 0 {
                    return Ok(false);
                }
                self.commit_change(tx, ChangeKind::Sink, &[]).await?;
                Ok(true)
            }

            async fn sink_advance(&self, name: &str, cursor: i64) -> StoreResult<()> {
                let _write = self.write_lock().await;
                sqlx::query("UPDATE audit_sinks SET cursor = $2 WHERE name = $1 AND cursor < $2")
                    .bind(name)
                    .bind(cursor)
                    .execute(self.backend.pool())
                    .await?;
                Ok(())
            }
        }

        /// Reads the current (or a given) version of a live secret.
        async fn fetch_secret(
            pool: &sqlx::Pool<Db>,
            realm_id: &RealmId,
            env: &str,
            key: &str,
            version: Option<i64>,
        ) -> StoreResult<Option<SecretVersion>> {
                let row = sqlx::query(
                "SELECT s.env, s.key, s.current_version, s.created_at, s.created_by, s.updated_at, s.updated_by, \
                 v.version AS v_version, v.ciphertext AS v_ciphertext, v.created_at AS v_created_at, v.created_by AS v_created_by \
                 FROM secrets s JOIN secret_versions v \
                 ON v.realm_id = s.realm_id AND v.env = s.env AND v.key = s.key \
                 AND v.version = COALESCE($4, s.current_version) \
                 WHERE s.realm_id = $1 AND s.env = $2 AND s.key = $3 AND NOT s.deleted",
            )
            .bind(realm_id)
            .bind(env)
            .bind(key)
            .bind(version)
            .fetch_optional(pool)
            .await?;
            let Some(r) = row else { return Ok(None) };
            Ok(Some(SecretVersion {
                meta: meta_row(&r)?,
                version: r.try_get("v_version")?,
                sealed: r.try_get("v_ciphertext")?,
                created_at: r.try_get("v_created_at")?,
                created_by: r.try_get("v_created_by")?,
            }))
        }

        /// A stored head and its signature.
        fn head_row(chain: &str, r: &DbRow) -> StoreResult<(arcan_crypto::ChainHead, String)> {
            Ok((
                arcan_crypto::ChainHead {
                    chain: chain.to_owned(),
                    seq: r.try_get("seq")?,
                    hash: r.try_get("hash")?,
                    from_seq: r.try_get("from_seq")?,
                    from_hash: r.try_get("from_hash")?,
                },
                r.try_get("mac")?,
            ))
        }

        /// Writes a chain's head, signed.
        async fn put_head_in_tx(
            tx: &mut sqlx::Transaction<'_, Db>,
            key: &arcan_crypto::ChainKey,
            head: &arcan_crypto::ChainHead,
        ) -> StoreResult<()> {
            sqlx::query(crate::linking::HEAD_UPSERT)
                .bind(&head.chain)
                .bind(head.seq)
                .bind(&head.hash)
                .bind(head.from_seq)
                .bind(&head.from_hash)
                .bind(key.sign_head(head))
                .execute(&mut **tx)
                .await?;
            Ok(())
        }

        /// The head a chain's next event links to (see [`crate::linking::unsigned_head`]
        /// for a chain without a signed head).
        async fn chain_head_in_tx(
            tx: &mut sqlx::Transaction<'_, Db>,
            key: &arcan_crypto::ChainKey,
            chain: &str,
        ) -> StoreResult<arcan_crypto::ChainHead> {
            let signed = sqlx::query(crate::linking::HEAD_SELECT)
                .bind(chain)
                .fetch_optional(&mut **tx)
                .await?;
            if let Some(r) = signed {
                let (head, mac) = head_row(chain, &r)?;
                return crate::linking::verified_head(key, head, &mac);
            }
            let checkpoint = sqlx::query(crate::linking::CHECKPOINT_SELECT)
                .bind(chain)
                .fetch_optional(&mut **tx)
                .await?
                .map(|r| Ok::<_, sqlx::Error>((r.try_get::<i64, _>("seq")?, r.try_get::<String, _>("hash")?)))
                .transpose()?;
            let later = sqlx::query(crate::linking::LATER_EVENT)
                .bind(chain)
                .bind(checkpoint.as_ref().map_or(0, |c| c.0))
                .fetch_optional(&mut **tx)
                .await?;
            crate::linking::unsigned_head(chain, checkpoint, later.is_some())
        }

        /// Chains and inserts audit events inside a transaction, and re-signs the head of
        /// every chain it extends; returns the stored rows sorted by `gseq`. A chain that
        /// has events after its checkpoint but no head, or whose head's signature is wrong,
        /// was tampered with: nothing is appended to it.
        async fn audit_in_tx(
            tx: &mut sqlx::Transaction<'_, Db>,
            key: &arcan_crypto::ChainKey,
            events: &[NewAuditEvent],
        ) -> StoreResult<Vec<AuditRow>> {
            if events.is_empty() {
                return Ok(Vec::new());
            }
            // One append at a time (across all nodes on PostgreSQL): `gseq` values are then
            // committed in order, so a sink reading after its cursor never skips a row
            // committed late. Appends come last in their transaction, so the lock is held
            // only until the commit.
            if let Some(lock) = Backend::APPEND_LOCK {
                sqlx::query(lock).execute(&mut **tx).await?;
            }
            let events: Vec<&NewAuditEvent> = events.iter().collect();
            let mut heads = crate::linking::Heads::default();
            for chain in crate::linking::Heads::wanted(&events) {
                let head = chain_head_in_tx(tx, key, chain).await;
                heads.loaded(chain, head)?;
            }
            if heads.need_system() {
                let head = chain_head_in_tx(tx, key, crate::SYSTEM_CHAIN).await;
                heads.loaded(crate::SYSTEM_CHAIN, head)?;
            }
            let linked = heads.link(key, &events)?;
            // Multi-row inserts: one statement per chunk instead of one per event. Chunks come in
            // a few fixed sizes so the prepared statements are reused from the cache.
            let mut ids = std::collections::HashMap::with_capacity(linked.len());
            let mut rest = linked.as_slice();
            while !rest.is_empty() {
                let size = AUDIT_INSERT_SIZES.iter().copied().find(|&n| n <= rest.len()).unwrap_or(1);
                let (chunk, tail) = rest.split_at(size);
                rest = tail;
                let mut q = sqlx::QueryBuilder::<Db>::new(crate::linking::EVENT_INSERT);
                q.push_values(chunk, |mut b, l| {
                    let e = l.event;
                    b.push_bind(&e.id)
                        .push_bind(l.chain)
                        .push_bind(l.seq)
                        .push_bind(e.time)
                        .push_bind(&e.realm_id)
                        .push_bind(&e.action)
                        .push_bind(&e.outcome)
                        .push_bind(&e.actor)
                        .push_bind(&e.body)
                        .push_bind(&l.prev_hash)
                        .push_bind(&l.hash);
                });
                q.push(" RETURNING gseq, chain, seq");
                for r in q.build().fetch_all(&mut **tx).await? {
                    ids.insert((r.try_get::<String, _>("chain")?, r.try_get::<i64, _>("seq")?), r.try_get::<i64, _>("gseq")?);
                }
            }
            for head in heads.heads() {
                put_head_in_tx(tx, key, head).await?;
            }
            let gseqs = linked
                .iter()
                .map(|l| ids.get(&(l.chain.to_owned(), l.seq)).copied())
                .collect::<Option<Vec<i64>>>()
                .ok_or_else(|| StoreError::Corrupt("insert returned no gseq".into()))?;
            crate::linking::stored_rows(linked, gseqs)
        }

        /// One KV write inside a transaction. The first statement writes, so the transaction
        /// takes the write lock at once (no read-then-upgrade deadlock on SQLite, a row lock
        /// on PostgreSQL). A CAS mismatch changes nothing. (The SQLite writer runs the same
        /// statements, see [`crate::linking`].)
        async fn put_in_tx(
            tx: &mut sqlx::Transaction<'_, Db>,
            realm_id: &RealmId,
            w: &SecretWrite,
            cas: Option<i64>,
        ) -> StoreResult<WriteOutcome> {
            let row = sqlx::query(&crate::linking::secret_upsert(cas))
                .bind(realm_id)
                .bind(&w.env)
                .bind(&w.key)
                .bind(w.at)
                .bind(&w.by)
                .fetch_optional(&mut **tx)
                .await?;
            let Some(row) = row else {
                let current = sqlx::query(crate::linking::CURRENT_VERSION)
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
            sqlx::query(crate::linking::VERSION_INSERT)
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

        /// Inserts a lease inside a transaction.
        async fn lease_insert(tx: &mut sqlx::Transaction<'_, Db>, l: &LeaseRecord) -> StoreResult<()> {
            sqlx::query(crate::linking::LEASE_INSERT)
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
                .bind(l.state)
                .bind(&l.issued_by)
                .bind(&l.token_id)
                .execute(&mut **tx)
                .await
                .map_err(map_unique)?;
            Ok(())
        }

        /// Stores a token, only while its parent is live, so a token minted concurrently
        /// with its parent's revocation cannot escape the tree (`Conflict` otherwise).
        async fn insert_token(tx: &mut sqlx::Transaction<'_, Db>, t: &TokenRecord) -> StoreResult<()> {
            let caps = t
                .capabilities
                .as_ref()
                .map(serde_json::to_string)
                .transpose()
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let done = sqlx::query(&format!(
                "INSERT INTO tokens ({TOKEN_COLS}) \
                 SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13 \
                 WHERE $4 IS NULL OR EXISTS \
                   (SELECT 1 FROM tokens p WHERE p.id = $4 AND p.revoked_at IS NULL)"
            ))
            .bind(&t.id)
            .bind(&t.hash)
            .bind(&t.user_id)
            .bind(&t.parent_id)
            .bind(&t.name)
            .bind(caps)
            .bind(&t.realm_id)
            .bind(&t.env)
            .bind(&t.key_glob)
            .bind(t.expires_at)
            .bind(t.created_at)
            .bind(t.revoked_at)
            .bind(&t.identity)
            .execute(&mut **tx)
            .await
            .map_err(map_unique)?;
            if done.rows_affected() == 0 {
                return Err(StoreError::Conflict);
            }
            Ok(())
        }

        /// Revokes a token and every descendant in one statement; the hashes it revoked.
        async fn revoke_tree(tx: &mut sqlx::Transaction<'_, Db>, id: &TokenId, at: i64) -> StoreResult<Vec<String>> {
            let rows = sqlx::query(
                "WITH RECURSIVE tree(id) AS ( \
                   SELECT id FROM tokens WHERE id = $1 \
                   UNION SELECT t.id FROM tokens t JOIN tree ON t.parent_id = tree.id) \
                 UPDATE tokens SET revoked_at = $2 \
                 WHERE id IN (SELECT id FROM tree) AND revoked_at IS NULL \
                 RETURNING hash",
            )
            .bind(id)
            .bind(at)
            .fetch_all(&mut **tx)
            .await?;
            Ok(rows.iter().map(|r| r.try_get("hash")).collect::<Result<Vec<String>, _>>()?)
        }

        async fn insert_binding<'e, E>(exec: E, b: &Binding) -> StoreResult<()>
        where
            E: sqlx::Executor<'e, Database = Db>,
        {
            sqlx::query(
                "INSERT INTO bindings (id, realm_id, subject_kind, subject_id, role, created_at, created_by) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&b.id)
            .bind(&b.realm_id)
            .bind(b.subject.kind())
            .bind(b.subject.id())
            .bind(&b.role)
            .bind(b.created_at)
            .bind(&b.created_by)
            .execute(exec)
            .await
            .map_err(map_unique)?;
            Ok(())
        }
    };
}

pub(super) use impl_sql_store;
