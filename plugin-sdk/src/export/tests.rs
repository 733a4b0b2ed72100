use serde_json::json;

use super::*;
use crate::__private::arcan::plugin::types::ErrorKind as WitKind;
use wit::Capability as WitCapability;
use wit::Guest;

#[derive(Default)]
struct Echo;

impl Engine for Echo {
    fn describe(&self) -> Descriptor {
        Descriptor::new("echo", "1.0.0")
            .capability(Capability::DynamicCredentials)
            .capability(Capability::RootRotation)
            .capability(Capability::DynamicCredentials)
    }

    fn issue(&self, ctx: &Context, _: &Value, role: &Value, ttl: Duration) -> Result<Credential> {
        if role["fail"] == json!(true) {
            return Err(Error::conflict("asked to fail"));
        }
        if let Some(secs) = role["throttled"].as_u64() {
            return Err(Error::unavailable("throttled").retry_after(Duration::from_secs(secs)));
        }
        Ok(Credential::new(json!({ "ctx": ctx, "role": role }), ttl)
            .revocable(false)
            .internal(json!({ "user": "u" })))
    }
}

type A = Adapter<Echo>;

fn ctx() -> CallContext {
    CallContext {
        request_id: "req-1".into(),
        user_id: Some("user-1".into()),
        token_id: None,
        realm_id: "realm-id".into(),
        realm: "acme".into(),
        mount: "db".into(),
        lease_id: None,
        role: Some("reader".into()),
    }
}

#[test]
fn issue_parses_and_prints_json_and_keeps_the_ttl() {
    let c = A::issue(ctx(), "{}".into(), r#"{"a": 1}"#.into(), 3600).unwrap();
    assert_eq!(c.ttl_seconds, 3600);
    assert!(c.renewable);
    assert!(!c.revocable);
    let data: Value = serde_json::from_str(&c.data).unwrap();
    assert_eq!(data["role"], json!({ "a": 1 }));
    assert_eq!(data["ctx"]["request_id"], "req-1");
    assert_eq!(data["ctx"]["user_id"], "user-1");
    assert_eq!(data["ctx"]["token_id"], Value::Null);
    assert_eq!(data["ctx"]["role"], "reader");
    assert_eq!(c.internal, r#"{"user":"u"}"#);
}

#[test]
fn bad_json_from_the_host_is_invalid_input() {
    for (config, role) in [("{", "{}"), ("{}", "nope")] {
        let e = A::issue(ctx(), config.into(), role.into(), 60).unwrap_err();
        assert_eq!(e.kind, WitKind::InvalidInput);
        assert!(e.message.contains("is not valid JSON"), "{}", e.message);
    }
    let e = A::revoke(ctx(), "{}".into(), "{}".into(), "".into()).unwrap_err();
    assert!(e.message.starts_with("internal is not valid JSON"));
}

#[test]
fn engine_errors_keep_their_kind() {
    let e = A::issue(ctx(), "{}".into(), r#"{"fail": true}"#.into(), 60).unwrap_err();
    assert_eq!(e.kind, WitKind::Conflict);
    assert_eq!(e.message, "asked to fail");
    assert_eq!(e.retry_after_seconds, None);
}

#[test]
fn unavailable_errors_carry_retry_after() {
    let e = A::issue(ctx(), "{}".into(), r#"{"throttled": 7}"#.into(), 60).unwrap_err();
    assert_eq!(e.kind, WitKind::Unavailable);
    assert_eq!(e.message, "throttled");
    assert_eq!(e.retry_after_seconds, Some(7));
    let e = A::issue(ctx(), "{}".into(), r#"{"throttled": 0}"#.into(), 60).unwrap_err();
    assert_eq!(e.retry_after_seconds, Some(1));
}

#[test]
fn defaults_accept_grant_and_refuse_rotation() {
    let config = A::configure(ctx(), r#"{ "x" : [1, 2] }"#.into()).unwrap();
    assert_eq!(config, r#"{"x":[1,2]}"#);
    let role = A::validate_role(ctx(), "{}".into(), r#"{"r": null}"#.into()).unwrap();
    assert_eq!(role, r#"{"r":null}"#);
    assert_eq!(
        A::renew(ctx(), "{}".into(), "{}".into(), "null".into(), 90).unwrap(),
        90
    );
    A::revoke(ctx(), "{}".into(), "{}".into(), "null".into()).unwrap();
    let e = A::rotate_root(ctx(), "{}".into()).unwrap_err();
    assert_eq!(e.kind, WitKind::Unsupported);
}

#[test]
fn describe_prints_schemas() {
    let d = A::describe();
    assert_eq!(d.name, "echo");
    assert_eq!(d.config_schema, r#"{"type":"object"}"#);
    // Typed on the wire since 0.2.0; a capability added twice is declared once.
    assert_eq!(
        d.capabilities,
        [
            WitCapability::DynamicCredentials,
            WitCapability::RootRotation
        ]
    );
}

#[test]
fn every_capability_converts_to_the_wit_enum() {
    let cases = [
        (
            Capability::DynamicCredentials,
            WitCapability::DynamicCredentials,
            "engine:dynamic_credentials",
        ),
        (
            Capability::RootRotation,
            WitCapability::RootRotation,
            "engine:root_rotation",
        ),
        (
            Capability::StaticRoles,
            WitCapability::StaticRoles,
            "engine:static_roles",
        ),
    ];
    for (c, w, spelling) in cases {
        assert_eq!(capability_to_wit(c), w);
        assert_eq!(c.as_str(), spelling);
        assert_eq!(c.to_string(), spelling);
    }
}

#[test]
fn ttls_round_up_to_whole_seconds() {
    assert_eq!(duration_to_secs(Duration::ZERO), 0);
    assert_eq!(duration_to_secs(Duration::from_millis(1)), 1);
    assert_eq!(duration_to_secs(Duration::from_millis(1500)), 2);
    assert_eq!(duration_to_secs(Duration::from_secs(7)), 7);
    assert_eq!(duration_to_secs(Duration::MAX), u64::MAX);
}
