//! The typed ids and text enums through both backends: what a caller stores comes back, the
//! filters on them work, and the database holds exactly the strings it held before they
//! were types (no migration). SQLite always; PostgreSQL when `ARCAN_TEST_PG_URL` is set.

use std::sync::Arc;

use arcan_store::prelude::*;
use arcan_store::{
    AuditFilter, Binding, BindingId, DataKey, LeaseFilter, LeaseId, LeaseRecord, LeaseState,
    NewAuditEvent, Outcome, PgStore, Realm, RealmId, SqliteStore, Subject, TokenId, TokenRecord,
    User, UserId,
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
    realm.id
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
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .expect("PostgreSQL answers");
    sqlx::query(sql).execute(&mut conn).await.expect(sql);
}

#[tokio::test]
async fn postgres_round_trips_typed_values_as_the_same_text() {
    let Ok(admin) = std::env::var("ARCAN_TEST_PG_URL") else {
        eprintln!("ARCAN_TEST_PG_URL is not set; skipping the PostgreSQL backend test");
        return;
    };
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
