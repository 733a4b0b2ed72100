use serde::Deserialize;
use serde_json::json;

use super::*;
use crate::__private::arcan::plugin::types::ErrorKind as WitKind;
use crate::{Descriptor, NoConfig, NoRole};
use wit::Capability as WitCapability;
use wit::Guest;

/// A configuration with a default, as engines write them.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct EchoConfig {
    /// Where to echo.
    #[serde(default = "default_target")]
    target: String,
}

fn default_target() -> String {
    "here".into()
}

#[derive(Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct EchoRole {
    #[serde(default)]
    fail: bool,
    #[serde(default)]
    throttled: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize)]
struct EchoState {
    user: String,
}

#[derive(Default)]
struct Echo;

impl Engine for Echo {
    type Config = EchoConfig;
    type Role = EchoRole;
    type State = EchoState;

    fn describe(&self) -> Descriptor {
        Descriptor::new("echo", "1.0.0")
            .capability(Capability::DynamicCredentials)
            .capability(Capability::RootRotation)
            .capability(Capability::DynamicCredentials)
    }

    fn issue(
        &self,
        ctx: &Context,
        config: &EchoConfig,
        role: &EchoRole,
        ttl: Duration,
    ) -> Result<Credential<EchoState>> {
        if role.fail {
            return Err(Error::conflict("asked to fail"));
        }
        if let Some(secs) = role.throttled {
            return Err(Error::unavailable("throttled").with_retry_after(Duration::from_secs(secs)));
        }
        let data = json!({ "ctx": ctx, "role": role, "config": config });
        Ok(Credential::new(data, ttl)
            .revocable(false)
            .state(EchoState { user: "u".into() }))
    }

    fn revoke(&self, _: &Context, _: &EchoConfig, _: &EchoRole, state: &EchoState) -> Result<()> {
        if state.user == "stuck" {
            return Err(Error::upstream("cannot revoke"));
        }
        Ok(())
    }
}

type A = Adapter<Echo>;

/// Sets its schemas itself, takes nothing and keeps nothing.
#[derive(Default)]
struct Plain;

impl Engine for Plain {
    type Config = NoConfig;
    type Role = NoRole;
    type State = ();

    fn describe(&self) -> Descriptor {
        Descriptor::new("plain", "0.1.0").role_schema(json!({"type": "object", "title": "mine"}))
    }

    fn issue(&self, _: &Context, _: &NoConfig, _: &NoRole, ttl: Duration) -> Result<Credential> {
        Ok(Credential::new(json!({}), ttl))
    }
}

type P = Adapter<Plain>;

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

fn invalid(e: EngineError) -> String {
    assert_eq!(e.kind, WitKind::InvalidInput, "{}", e.message);
    e.message
}

#[test]
fn issue_parses_into_the_engine_types_and_prints_the_state() {
    let c = A::issue(ctx(), "{}".into(), r#"{"fail": false}"#.into(), 3600).unwrap();
    assert_eq!(c.ttl_seconds, 3600);
    assert!(c.renewable);
    assert!(!c.revocable);
    let data: Value = serde_json::from_str(&c.data).unwrap();
    assert_eq!(data["role"], json!({ "fail": false, "throttled": null }));
    assert_eq!(
        data["config"],
        json!({ "target": "here" }),
        "defaults filled in"
    );
    assert_eq!(data["ctx"]["request_id"], "req-1");
    assert_eq!(data["ctx"]["user_id"], "user-1");
    assert_eq!(data["ctx"]["token_id"], Value::Null);
    assert_eq!(data["ctx"]["role"], "reader");
    assert_eq!(c.internal, r#"{"user":"u"}"#);
    // No state: `()` is `null` on the wire.
    let c = P::issue(ctx(), "{}".into(), "{}".into(), 60).unwrap();
    assert_eq!(c.internal, "null");
}

#[test]
fn documents_that_do_not_fit_are_invalid_input_naming_them() {
    let cases = [
        ("{", "{}", "config: not valid JSON: "),
        ("{}", "nope", "role: not valid JSON: "),
        (r#"{"targte": "x"}"#, "{}", "config: unknown field `targte`"),
        (
            r#"{"target": 1}"#,
            "{}",
            "config: invalid type: integer `1`",
        ),
        ("{}", r#"{"fail": "yes"}"#, "role: invalid type: string"),
        ("[]", "{}", "config: must be a JSON object, not an array"),
        (
            r#"["x"]"#,
            "{}",
            "config: must be a JSON object, not an array",
        ),
        ("null", "{}", "config: must be a JSON object, not null"),
        (
            "{}",
            r#""role""#,
            "role: must be a JSON object, not a string",
        ),
    ];
    for (config, role, want) in cases {
        let m = invalid(A::issue(ctx(), config.into(), role.into(), 60).unwrap_err());
        assert!(m.starts_with(want), "{config} {role}: {m}");
    }
    let m = invalid(A::revoke(ctx(), "{}".into(), "{}".into(), "".into()).unwrap_err());
    assert!(m.starts_with("state: not valid JSON"), "{m}");
    let m = invalid(A::revoke(ctx(), "{}".into(), "{}".into(), "{}".into()).unwrap_err());
    assert_eq!(m, "state: missing field `user`");
    let m = invalid(A::renew(ctx(), "{}".into(), "{}".into(), "null".into(), 60).unwrap_err());
    assert!(m.starts_with("state: invalid type: null"), "{m}");
    // The empty types take `{}` and nothing else.
    let m = invalid(P::issue(ctx(), r#"{"x": 1}"#.into(), "{}".into(), 60).unwrap_err());
    assert_eq!(m, "config: unknown field `x`, there are no fields");
    let m = invalid(P::issue(ctx(), "{}".into(), "[]".into(), 60).unwrap_err());
    assert_eq!(m, "role: must be a JSON object, not an array");
}

#[test]
fn the_state_comes_back_parsed() {
    A::revoke(ctx(), "{}".into(), "{}".into(), r#"{"user": "u"}"#.into()).unwrap();
    let e = A::revoke(
        ctx(),
        "{}".into(),
        "{}".into(),
        r#"{"user": "stuck"}"#.into(),
    )
    .unwrap_err();
    assert_eq!(
        (e.kind, e.message.as_str()),
        (WitKind::Upstream, "cannot revoke")
    );
    P::revoke(ctx(), "{}".into(), "{}".into(), "null".into()).unwrap();
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
fn defaults_normalise_grant_and_refuse_rotation() {
    let config = A::configure(ctx(), "{}".into()).unwrap();
    assert_eq!(config, r#"{"target":"here"}"#);
    let role = A::validate_role(ctx(), "{}".into(), r#"{"fail": true}"#.into()).unwrap();
    assert_eq!(role, r#"{"fail":true,"throttled":null}"#);
    assert_eq!(
        A::renew(
            ctx(),
            "{}".into(),
            "{}".into(),
            r#"{"user":"u"}"#.into(),
            90
        )
        .unwrap(),
        90
    );
    let e = A::rotate_root(ctx(), "{}".into()).unwrap_err();
    assert_eq!(e.kind, WitKind::Unsupported);
    assert_eq!(P::configure(ctx(), "{}".into()).unwrap(), "{}");
    assert_eq!(
        P::validate_role(ctx(), "{}".into(), "{}".into()).unwrap(),
        "{}"
    );
}

#[test]
fn describe_derives_the_schemas_unless_set() {
    let d = A::describe();
    assert_eq!(d.name, "echo");
    let config: Value = serde_json::from_str(&d.config_schema).unwrap();
    assert_eq!(config["type"], "object");
    assert_eq!(config["additionalProperties"], false);
    assert_eq!(config["properties"]["target"]["default"], "here");
    assert_eq!(
        config["properties"]["target"]["description"],
        "Where to echo."
    );
    let role: Value = serde_json::from_str(&d.role_schema).unwrap();
    assert_eq!(role["properties"]["fail"]["type"], "boolean");
    // Typed on the wire since 0.2.0; a capability added twice is declared once.
    assert_eq!(
        d.capabilities,
        [
            WitCapability::DynamicCredentials,
            WitCapability::RootRotation
        ]
    );
    let d = P::describe();
    let config: Value = serde_json::from_str(&d.config_schema).unwrap();
    assert_eq!(
        (&config["type"], &config["additionalProperties"]),
        (&json!("object"), &json!(false))
    );
    assert_eq!(d.role_schema, r#"{"title":"mine","type":"object"}"#);
}

#[test]
fn object_only_schemas_are_recognised() {
    #[derive(Debug, Deserialize, JsonSchema)]
    #[serde(tag = "kind", rename_all = "snake_case")]
    #[allow(dead_code)]
    enum Tagged {
        A { x: u8 },
        B { y: u8 },
    }
    #[derive(Deserialize, JsonSchema)]
    #[allow(dead_code)]
    struct Wrapped(Option<EchoRole>);
    assert!(only_objects_in::<EchoConfig>());
    assert!(only_objects_in::<NoConfig>());
    assert!(only_objects_in::<Tagged>());
    assert!(only_objects_in::<serde_json::Map<String, Value>>());
    assert!(!only_objects_in::<Value>());
    assert!(!only_objects_in::<Option<EchoRole>>());
    assert!(!only_objects_in::<Wrapped>());
    assert!(!only_objects_in::<()>());
    let e = parse::<Tagged>("role", r#""a""#, only_objects_in::<Tagged>).unwrap_err();
    assert_eq!(e.message(), "role: must be a JSON object, not a string");
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
