//! The typed ids and text enums through both backends: what a caller stores comes back, the
//! filters on them work, and the database holds exactly the strings it held before they
//! were types (no migration). SQLite, and PostgreSQL at `ARCAN_TEST_PG_URL` (default the local test server;
//! `scripts/test` starts one when none answers).

use std::sync::Arc;

use arcan_store::prelude::*;
use arcan_store::{
    AuditFilter, AuthMethod, AuthRole, Binding, BindingId, DataKey, LeaseFilter, LeaseId,
    LeaseRecord, LeaseState, NewAuditEvent, Outcome, PgStore, Realm, RealmGrant, RealmId, Role,
    RolePut, SqliteStore, Subject, TokenId, TokenRecord, User, UserId, UserKind, managed_role_name,
};

/// A fresh id, unique across runs sharing one PostgreSQL database.
fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// Exercises one store; returns the realm it created, for raw checks.
async fn round_trip(store: Arc<dyn Store>) -> RealmId {
    store.set_chain_key(arcan_crypto::ChainKey::derive(&[7; 32]));
    let user = User {
        id: UserId::from(unique("u")),
        kind: UserKind::Human,
        email: format!("{}@example.test", unique("e")),
        password_hash: "x".into(),
        superuser: false,
        global_capabilities: vec!["realms:manage".into()],
        created_at: 1,
    };
    store.user_create(&user).await.expect("user");
    assert_eq!(
        store
            .user_by_id(&user.id)
            .await
            .expect("read")
            .map(|u| u.id),
        Some(user.id.clone())
    );
    let realm = Realm {
        id: RealmId::from(unique("r")),
        slug: unique("slug"),
        name: "Test".into(),
        created_at: 1,
        created_by: user.id.to_string(),
    };
    let binding = Binding {
        id: BindingId::from(unique("b")),
        realm_id: realm.id.clone(),
        subject: Subject::User(user.id.clone()),
        role: "admin".into(),
        created_at: 1,
        created_by: user.id.to_string(),
    };
    let key = DataKey {
        realm_id: realm.id.clone(),
        master_key_id: "mk".into(),
        wrapped: vec![1, 2, 3],
        created_at: 1,
    };
    store
        .realm_create(&realm, &key, &binding)
        .await
        .expect("realm");
    let token = TokenRecord {
        id: TokenId::from(unique("t")),
        hash: unique("h"),
        user_id: user.id.clone(),
        parent_id: None,
        name: "t".into(),
        capabilities: None,
        realm_id: Some(realm.id.clone()),
        env: None,
        key_glob: None,
        expires_at: i64::MAX,
        created_at: 1,
        revoked_at: None,
        identity: None,
    };
    store.token_create(&token).await.expect("token");
    let found = store.token_by_id(&token.id).await.expect("read");
    assert_eq!(found.and_then(|t| t.realm_id), Some(realm.id.clone()));
    assert_eq!(
        store
            .realms_bound(&user.id, &token.id)
            .await
            .expect("bound"),
        vec![realm.id.clone()]
    );
    let bound = store
        .bindings_for(&realm.id, &user.id, &token.id)
        .await
        .expect("bindings");
    assert_eq!(bound.len(), 1);
    assert_eq!(bound[0].id, binding.id);
    assert_eq!(bound[0].subject, Subject::User(user.id.clone()));

    let lease = LeaseRecord {
        id: LeaseId::from(format!("m/role/{}", unique("l"))),
        realm_id: realm.id.clone(),
        mount_id: "mount".into(),
        mount: "m".into(),
        role: "role".into(),
        plugin: "p".into(),
        role_definition: "{}".into(),
        internal: vec![],
        issued_at: 1,
        expires_at: 2,
        max_expires_at: 3,
        renewable: true,
        revocable: true,
        state: LeaseState::Active,
        issued_by: Some(user.id.to_string()),
        token_id: Some(token.id.clone()),
        attempts: 0,
        next_attempt_at: None,
        claimed_until: None,
        last_error: None,
        revoked_at: None,
    };
    store.lease_create(&lease).await.expect("lease");
    let read = store.lease_get(&realm.id, &lease.id).await.expect("read");
    let read = read.expect("stored lease");
    assert_eq!(read.state, LeaseState::Active);
    assert_eq!(read.token_id, Some(token.id.clone()));
    let page = |state| LeaseFilter {
        prefix: None,
        state: Some(state),
        after: None,
        limit: 10,
    };
    let active = store.leases(&realm.id, &page(LeaseState::Active)).await;
    assert_eq!(active.expect("list").len(), 1);
    store
        .lease_finish(
            &realm.id,
            &lease.id,
            LeaseState::Irrevocable,
            5,
            Some("gone"),
        )
        .await
        .expect("finish");
    let active = store.leases(&realm.id, &page(LeaseState::Active)).await;
    assert!(active.expect("list").is_empty());
    let failed = store
        .leases(&realm.id, &page(LeaseState::Irrevocable))
        .await;
    assert_eq!(failed.expect("list")[0].state, LeaseState::Irrevocable);

    let event = |id: &str, outcome| NewAuditEvent {
        id: unique(id),
        chain: realm.id.to_string(),
        time: 10,
        realm_id: Some(realm.id.clone()),
        action: "secrets.read".into(),
        outcome,
        actor: Some(user.id.to_string()),
        body: format!("{{\"id\":\"{id}\"}}"),
    };
    let rows = store
        .audit_append(&[event("a", Outcome::Success), event("b", Outcome::Denied)])
        .await
        .expect("append");
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1].outcome, Outcome::Denied);
    let denied = store
        .audit_list(&AuditFilter {
            realm_id: realm.id.clone(),
            outcome: Some(Outcome::Denied),
            limit: 10,
            ..AuditFilter::default()
        })
        .await
        .expect("list");
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0].realm_id, Some(realm.id.clone()));
    auth_round_trip(store.as_ref(), &realm, &user).await;
    realm.id
}

/// A login role through its life: created with its principal, anchor, a binding and a
/// managed role; replaced (the old managed role goes); deleted with its tokens and
/// principal.
async fn auth_round_trip(store: &dyn Store, realm: &Realm, creator: &User) {
    let method = AuthMethod {
        id: unique("m"),
        name: unique("gh"),
        kind: "jwt".into(),
        description: String::new(),
        config: "{}".into(),
        secrets: Some(vec![9, 9]),
        created_at: 1,
        created_by: creator.id.to_string(),
        updated_at: 1,
    };
    store.auth_method_create(&method).await.expect("method");
    assert!(matches!(
        store.auth_method_create(&method).await,
        Err(arcan_store::StoreError::Conflict)
    ));
    let principal = User {
        id: UserId::from(unique("p")),
        kind: UserKind::LoginRole,
        email: format!("auth:{}/deploy", method.name),
        password_hash: "!".into(),
        superuser: false,
        global_capabilities: Vec::new(),
        created_at: 1,
    };
    let anchor = TokenRecord {
        id: TokenId::from(unique("anchor")),
        hash: unique("ah"),
        user_id: principal.id.clone(),
        parent_id: None,
        name: "anchor".into(),
        capabilities: Some(Vec::new()),
        realm_id: None,
        env: None,
        key_glob: None,
        expires_at: i64::MAX,
        created_at: 1,
        revoked_at: None,
        identity: None,
    };
    let role = AuthRole {
        id: unique("ar"),
        method_id: method.id.clone(),
        name: "deploy".into(),
        user_id: principal.id.clone(),
        anchor_id: anchor.id.clone(),
        definition: "{}".into(),
        token_ttl: 1000,
        token_max_ttl: 2000,
        created_at: 1,
        created_by: creator.id.to_string(),
        updated_at: 1,
    };
    let managed = managed_role_name(&method.name, "deploy");
    let bind = |role: &str| Binding {
        id: BindingId::from(unique("b")),
        realm_id: realm.id.clone(),
        subject: Subject::User(principal.id.clone()),
        role: role.into(),
        created_at: 1,
        created_by: creator.id.to_string(),
    };
    let grants = [RealmGrant {
        realm_id: realm.id.clone(),
        bindings: vec![bind("viewer"), bind(&managed)],
        managed: Some(Role {
            name: managed.clone(),
            capabilities: vec!["secrets:read".into()],
            env: Some("prod".into()),
            key_glob: None,
            created_at: 1,
        }),
    }];
    let put = RolePut {
        principal: Some(&principal),
        anchor: Some(&anchor),
        revoke: None,
        grants: &grants,
    };
    store
        .auth_role_put(&method, &role, put, 1)
        .await
        .expect("role");
    let got = store
        .auth_role_get(&method.id, "deploy")
        .await
        .expect("get");
    assert_eq!(got.map(|r| r.anchor_id), Some(anchor.id.clone()));
    assert_eq!(store.auth_role_bindings(&role).await.expect("b").len(), 2);
    assert!(
        store
            .role_get(&realm.id, &managed)
            .await
            .expect("r")
            .is_some()
    );
    let kind = store
        .user_by_id(&principal.id)
        .await
        .expect("u")
        .map(|u| u.kind);
    assert_eq!(kind, Some(UserKind::LoginRole));

    // A login token under the anchor, with its identity.
    let login = TokenRecord {
        id: TokenId::from(unique("login")),
        hash: unique("lh"),
        parent_id: Some(anchor.id.clone()),
        identity: Some("{\"subject\":\"repo:a/b\"}".into()),
        ..anchor.clone()
    };
    store.token_create(&login).await.expect("login token");
    let read = store
        .token_by_id(&login.id)
        .await
        .expect("t")
        .expect("some");
    assert_eq!(read.identity, login.identity);

    // Replaced with one binding and no managed role: the managed role goes.
    let fewer = [RealmGrant {
        realm_id: realm.id.clone(),
        bindings: vec![bind("viewer")],
        managed: None,
    }];
    let put = RolePut {
        grants: &fewer,
        ..RolePut::default()
    };
    store
        .auth_role_put(&method, &role, put, 2)
        .await
        .expect("replace");
    assert_eq!(store.auth_role_bindings(&role).await.expect("b").len(), 1);
    assert!(
        store
            .role_get(&realm.id, &managed)
            .await
            .expect("r")
            .is_none()
    );

    // Deleting the method takes the role, its grants, tokens and principal.
    let revoked = store.auth_method_delete(&method, 3).await.expect("delete");
    assert_eq!(revoked.len(), 2, "anchor and login token were live");
    assert!(store.auth_role_bindings(&role).await.expect("b").is_empty());
    assert!(store.token_by_id(&login.id).await.expect("t").is_none());
    assert!(store.user_by_id(&principal.id).await.expect("u").is_none());
    assert!(
        store
            .auth_method_by_name(&method.name)
            .await
            .expect("m")
            .is_none()
    );
}

#[tokio::test]
async fn sqlite_round_trips_typed_values_as_the_same_text() {
    let dir = std::env::temp_dir().join(unique("arcan-store-test"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("arcan.db");
    let store = Arc::new(SqliteStore::open(&path, false).await.expect("open"));
    let realm = round_trip(store.clone()).await;
    store.close().await;

    let conn = rusqlite::Connection::open(&path).expect("raw");
    let state: String = conn
        .query_row(
            "SELECT state FROM leases WHERE realm_id = ?1",
            [realm.as_str()],
            |r| r.get(0),
        )
        .expect("lease row");
    assert_eq!(state, "irrevocable");
    let outcomes: Vec<String> = conn
        .prepare("SELECT outcome FROM audit_events WHERE chain = ?1 ORDER BY seq")
        .and_then(|mut s| {
            s.query_map([realm.as_str()], |r| r.get(0))?
                .collect::<Result<_, _>>()
        })
        .expect("audit rows");
    assert_eq!(outcomes, ["success", "denied"]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs one statement on the test server's admin database.
async fn pg_admin(url: &str, sql: &str) {
    use sqlx::Connection as _;
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap_or_else(|e| {
        panic!("PostgreSQL does not answer at {url} ({e}): run scripts/test, which starts one")
    });
    sqlx::query(sql).execute(&mut conn).await.expect(sql);
}

#[tokio::test]
async fn postgres_round_trips_typed_values_as_the_same_text() {
    // Never skipped: without a server this fails and says how to get one.
    let admin = std::env::var("ARCAN_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    // A database of its own, like the end-to-end tests', dropped at the end.
    let name = unique("arcan_store_test").replace('-', "_");
    pg_admin(&admin, &format!("CREATE DATABASE {name}")).await;
    let (base, _) = admin.rsplit_once('/').expect("database URL has a path");
    let url = format!("{base}/{name}");
    let store = Arc::new(PgStore::connect(&url, 4).await.expect("connect"));
    let realm = round_trip(store.clone()).await;
    store.close().await;

    let pool = sqlx::PgPool::connect(&url).await.expect("raw");
    let state: String = sqlx::query_scalar("SELECT state FROM leases WHERE realm_id = $1")
        .bind(realm.as_str())
        .fetch_one(&pool)
        .await
        .expect("lease row");
    assert_eq!(state, "irrevocable");
    let outcomes: Vec<String> =
        sqlx::query_scalar("SELECT outcome FROM audit_events WHERE chain = $1 ORDER BY seq")
            .bind(realm.as_str())
            .fetch_all(&pool)
            .await
            .expect("audit rows");
    assert_eq!(outcomes, ["success", "denied"]);
    pool.close().await;
    pg_admin(&admin, &format!("DROP DATABASE {name}")).await;
}
