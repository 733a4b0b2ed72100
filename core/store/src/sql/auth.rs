//! The query code of the auth store, expanded per backend next to `impl_sql_store!` (whose
//! transaction helpers it uses), for the reasons given in [the module docs](super).

/// Expands `AuthStore` for `SqlStore<$backend>`.
macro_rules! impl_auth_store {
    ($backend:ty) => {
        mod auth_store {
            use async_trait::async_trait;
            use sqlx::Row as _;

            use super::{insert_binding, revoke_tree};
            use crate::change::ChangeKind;
            use crate::sql::{SqlBackend, SqlStore, list_json, map_unique};
            use crate::{AuthMethod, AuthRole, AuthStore, Binding, RealmId, RolePut, StoreResult};
            use crate::{User, UserId, managed_role_name};

            type Backend = $backend;
            type Db = <Backend as SqlBackend>::Db;
            type DbRow = <Db as sqlx::Database>::Row;

            fn method_row(r: &DbRow) -> StoreResult<AuthMethod> {
                Ok(AuthMethod {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    kind: r.try_get("kind")?,
                    description: r.try_get("description")?,
                    config: r.try_get("config")?,
                    secrets: r.try_get("secrets")?,
                    created_at: r.try_get("created_at")?,
                    created_by: r.try_get("created_by")?,
                    updated_at: r.try_get("updated_at")?,
                })
            }

            fn role_row(r: &DbRow) -> StoreResult<AuthRole> {
                Ok(AuthRole {
                    id: r.try_get("id")?,
                    method_id: r.try_get("method_id")?,
                    name: r.try_get("name")?,
                    user_id: r.try_get("user_id")?,
                    anchor_id: r.try_get("anchor_id")?,
                    definition: r.try_get("definition")?,
                    token_ttl: r.try_get("token_ttl")?,
                    token_max_ttl: r.try_get("token_max_ttl")?,
                    created_at: r.try_get("created_at")?,
                    created_by: r.try_get("created_by")?,
                    updated_at: r.try_get("updated_at")?,
                })
            }

            /// The realms where a principal holds a binding or its managed role exists.
            async fn granted_realms(
                tx: &mut sqlx::Transaction<'_, Db>,
                principal: &UserId,
                managed: &str,
            ) -> StoreResult<Vec<RealmId>> {
                let rows = sqlx::query(
                    "SELECT realm_id FROM bindings WHERE subject_kind = 'user' AND subject_id = $1 \
                     UNION SELECT realm_id FROM roles WHERE name = $2",
                )
                .bind(principal)
                .bind(managed)
                .fetch_all(&mut **tx)
                .await?;
                Ok(rows.iter().map(|r| r.try_get("realm_id")).collect::<Result<_, _>>()?)
            }

            /// Removes a principal's bindings and its managed role in one realm.
            async fn clear_realm(
                tx: &mut sqlx::Transaction<'_, Db>,
                realm_id: &RealmId,
                principal: &UserId,
                managed: &str,
            ) -> StoreResult<()> {
                // The principal's bindings, and any binding to the managed role (the roles API
                // refuses those, but a row is a row: none may outlive the role it names).
                sqlx::query(
                    "DELETE FROM bindings WHERE realm_id = $1 AND \
                     ((subject_kind = 'user' AND subject_id = $2) OR role = $3)",
                )
                .bind(realm_id)
                .bind(principal)
                .bind(managed)
                .execute(&mut **tx)
                .await?;
                sqlx::query("DELETE FROM roles WHERE realm_id = $1 AND name = $2")
                    .bind(realm_id)
                    .bind(managed)
                    .execute(&mut **tx)
                    .await?;
                Ok(())
            }

            /// Deletes a role with its grants, tokens and principal; the hashes of the
            /// tokens that were live.
            async fn delete_role(
                tx: &mut sqlx::Transaction<'_, Db>,
                method: &AuthMethod,
                role: &AuthRole,
                at: i64,
                touched: &mut Vec<RealmId>,
            ) -> StoreResult<Vec<String>> {
                let managed = managed_role_name(&method.name, &role.name);
                let mut hashes = revoke_tree(tx, &role.anchor_id, at).await?;
                // Tokens of the principal outside the anchor's tree (none are minted so,
                // but a row is a row): revoked too before they are deleted.
                let rows = sqlx::query(
                    "SELECT hash FROM tokens WHERE user_id = $1 AND revoked_at IS NULL",
                )
                .bind(&role.user_id)
                .fetch_all(&mut **tx)
                .await?;
                for r in &rows {
                    hashes.push(r.try_get("hash")?);
                }
                for realm in granted_realms(tx, &role.user_id, &managed).await? {
                    clear_realm(tx, &realm, &role.user_id, &managed).await?;
                    if !touched.contains(&realm) {
                        touched.push(realm);
                    }
                }
                sqlx::query("DELETE FROM auth_roles WHERE id = $1")
                    .bind(&role.id)
                    .execute(&mut **tx)
                    .await?;
                sqlx::query("DELETE FROM tokens WHERE user_id = $1")
                    .bind(&role.user_id)
                    .execute(&mut **tx)
                    .await?;
                sqlx::query("DELETE FROM users WHERE id = $1 AND kind = 'login_role'")
                    .bind(&role.user_id)
                    .execute(&mut **tx)
                    .await?;
                hashes.sort();
                hashes.dedup();
                Ok(hashes)
            }

            #[async_trait]
            impl AuthStore for SqlStore<Backend> {
                async fn auth_method_create(&self, m: &AuthMethod) -> StoreResult<()> {
                    let _write = self.write_lock().await;
                    let mut tx = self.begin_write().await?;
                    sqlx::query(
                        "INSERT INTO auth_methods (id, name, kind, description, config, secrets, \
                         created_at, created_by, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    )
                    .bind(&m.id)
                    .bind(&m.name)
                    .bind(&m.kind)
                    .bind(&m.description)
                    .bind(&m.config)
                    .bind(&m.secrets)
                    .bind(m.created_at)
                    .bind(&m.created_by)
                    .bind(m.updated_at)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_unique)?;
                    self.commit_change(tx, ChangeKind::AuthMethod, &[]).await
                }

                async fn auth_method_update(&self, m: &AuthMethod) -> StoreResult<bool> {
                    let _write = self.write_lock().await;
                    let mut tx = self.begin_write().await?;
                    let done = sqlx::query(
                        "UPDATE auth_methods SET description = $2, config = $3, secrets = $4, \
                         updated_at = $5 WHERE id = $1",
                    )
                    .bind(&m.id)
                    .bind(&m.description)
                    .bind(&m.config)
                    .bind(&m.secrets)
                    .bind(m.updated_at)
                    .execute(&mut *tx)
                    .await?;
                    if done.rows_affected() == 0 {
                        return Ok(false);
                    }
                    self.commit_change(tx, ChangeKind::AuthMethod, &[]).await?;
                    Ok(true)
                }

                async fn auth_method_by_name(&self, name: &str) -> StoreResult<Option<AuthMethod>> {
                    sqlx::query("SELECT * FROM auth_methods WHERE name = $1")
                        .bind(name)
                        .fetch_optional(self.backend.pool())
                        .await?
                        .as_ref()
                        .map(method_row)
                        .transpose()
                }

                async fn auth_methods(&self) -> StoreResult<Vec<AuthMethod>> {
                    sqlx::query("SELECT * FROM auth_methods ORDER BY name")
                        .fetch_all(self.backend.pool())
                        .await?
                        .iter()
                        .map(method_row)
                        .collect()
                }

                async fn auth_method_delete(&self, m: &AuthMethod, at: i64) -> StoreResult<Vec<String>> {
                    let _write = self.write_lock().await;
                    let mut tx = self.begin_write().await?;
                    let roles = sqlx::query("SELECT * FROM auth_roles WHERE method_id = $1")
                        .bind(&m.id)
                        .fetch_all(&mut *tx)
                        .await?
                        .iter()
                        .map(role_row)
                        .collect::<StoreResult<Vec<_>>>()?;
                    let mut hashes = Vec::new();
                    let mut touched = Vec::new();
                    for role in &roles {
                        hashes.extend(delete_role(&mut tx, m, role, at, &mut touched).await?);
                    }
                    sqlx::query("DELETE FROM auth_methods WHERE id = $1")
                        .bind(&m.id)
                        .execute(&mut *tx)
                        .await?;
                    let facts = [("roles", roles.len().into()), ("revoked", hashes.len().into())];
                    self.commit_change_in(tx, ChangeKind::AuthMethod, &facts, &touched).await?;
                    Ok(hashes)
                }

                async fn auth_role_put(
                    &self,
                    m: &AuthMethod,
                    role: &AuthRole,
                    put: RolePut<'_>,
                    at: i64,
                ) -> StoreResult<Vec<String>> {
                    let _write = self.write_lock().await;
                    let managed = managed_role_name(&m.name, &role.name);
                    let mut tx = self.begin_write().await?;
                    if let Some(u) = put.principal {
                        insert_user(&mut tx, u).await?;
                    }
                    let mut hashes = Vec::new();
                    if let Some(old) = put.revoke {
                        hashes = revoke_tree(&mut tx, &old.id, at).await?;
                    }
                    if let Some(anchor) = put.anchor {
                        super::insert_token(&mut tx, anchor).await?;
                    }
                    // The anchor changes only when this write arms a new one: a concurrent
                    // write that re-armed the role is never undone by a stale anchor id.
                    let anchor_update = if put.anchor.is_some() {
                        "anchor_id = excluded.anchor_id, "
                    } else {
                        ""
                    };
                    sqlx::query(&format!(
                        "INSERT INTO auth_roles (id, method_id, name, user_id, anchor_id, definition, \
                         token_ttl, token_max_ttl, created_at, created_by, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                         ON CONFLICT (method_id, name) DO UPDATE SET {anchor_update}\
                         definition = excluded.definition, token_ttl = excluded.token_ttl, \
                         token_max_ttl = excluded.token_max_ttl, updated_at = excluded.updated_at"
                    ))
                    .bind(&role.id)
                    .bind(&role.method_id)
                    .bind(&role.name)
                    .bind(&role.user_id)
                    .bind(&role.anchor_id)
                    .bind(&role.definition)
                    .bind(role.token_ttl)
                    .bind(role.token_max_ttl)
                    .bind(role.created_at)
                    .bind(&role.created_by)
                    .bind(role.updated_at)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_unique)?;
                    let mut realms = granted_realms(&mut tx, &role.user_id, &managed).await?;
                    for g in put.grants {
                        if !realms.contains(&g.realm_id) {
                            realms.push(g.realm_id.clone());
                        }
                    }
                    for realm in &realms {
                        clear_realm(&mut tx, realm, &role.user_id, &managed).await?;
                    }
                    for g in put.grants {
                        if let Some(r) = &g.managed {
                            sqlx::query(
                                "INSERT INTO roles (realm_id, name, capabilities, env, key_glob, created_at) \
                                 VALUES ($1, $2, $3, $4, $5, $6)",
                            )
                            .bind(&g.realm_id)
                            .bind(&managed)
                            .bind(list_json(&r.capabilities)?)
                            .bind(&r.env)
                            .bind(&r.key_glob)
                            .bind(r.created_at)
                            .execute(&mut *tx)
                            .await?;
                        }
                        for b in &g.bindings {
                            insert_binding(&mut *tx, b).await?;
                        }
                    }
                    let facts = [("revoked", hashes.len().into())];
                    self.commit_change_in(tx, ChangeKind::AuthRole, &facts, &realms).await?;
                    Ok(hashes)
                }

                async fn auth_role_get(&self, method_id: &str, name: &str) -> StoreResult<Option<AuthRole>> {
                    sqlx::query("SELECT * FROM auth_roles WHERE method_id = $1 AND name = $2")
                        .bind(method_id)
                        .bind(name)
                        .fetch_optional(self.backend.pool())
                        .await?
                        .as_ref()
                        .map(role_row)
                        .transpose()
                }

                async fn auth_roles(&self, method_id: &str) -> StoreResult<Vec<AuthRole>> {
                    sqlx::query("SELECT * FROM auth_roles WHERE method_id = $1 ORDER BY name")
                        .bind(method_id)
                        .fetch_all(self.backend.pool())
                        .await?
                        .iter()
                        .map(role_row)
                        .collect()
                }

                async fn auth_role_realms(&self, m: &AuthMethod, role: &AuthRole) -> StoreResult<Vec<RealmId>> {
                    let managed = managed_role_name(&m.name, &role.name);
                    let mut tx = self.backend.pool().begin().await?;
                    let realms = granted_realms(&mut tx, &role.user_id, &managed).await?;
                    tx.commit().await?;
                    Ok(realms)
                }

                async fn auth_role_bindings(&self, role: &AuthRole) -> StoreResult<Vec<Binding>> {
                    sqlx::query(
                        "SELECT * FROM bindings WHERE subject_kind = 'user' AND subject_id = $1 \
                         ORDER BY realm_id, created_at, id",
                    )
                    .bind(&role.user_id)
                    .fetch_all(self.backend.pool())
                    .await?
                    .iter()
                    .map(super::binding_row)
                    .collect()
                }

                async fn auth_role_delete(
                    &self,
                    m: &AuthMethod,
                    role: &AuthRole,
                    at: i64,
                ) -> StoreResult<Vec<String>> {
                    let _write = self.write_lock().await;
                    let mut tx = self.begin_write().await?;
                    let mut touched = Vec::new();
                    let hashes = delete_role(&mut tx, m, role, at, &mut touched).await?;
                    let facts = [("revoked", hashes.len().into())];
                    self.commit_change_in(tx, ChangeKind::AuthRole, &facts, &touched).await?;
                    Ok(hashes)
                }
            }

            async fn insert_user(tx: &mut sqlx::Transaction<'_, Db>, u: &User) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO users (id, email, password_hash, superuser, global_capabilities, created_at, kind) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&u.id)
                .bind(&u.email)
                .bind(&u.password_hash)
                .bind(u.superuser)
                .bind(list_json(&u.global_capabilities)?)
                .bind(u.created_at)
                .bind(u.kind.as_str())
                .execute(&mut **tx)
                .await
                .map_err(map_unique)?;
                Ok(())
            }
        }
    };
}

pub(super) use impl_auth_store;
