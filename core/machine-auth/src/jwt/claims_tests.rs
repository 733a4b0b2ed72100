use std::net::IpAddr;

use serde_json::json;

use super::*;
use crate::error::Class;

const NOW: f64 = 1_800_000_000.0;
const LW: Duration = Duration::from_secs(60);

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().expect("object").clone()
}

fn role(v: Value) -> JwtRoleConfig {
    serde_json::from_value(v).expect("role")
}

fn times(v: Value, max_age: Option<Duration>) -> Result<Times, Refusal> {
    check_times(&obj(v), NOW, LW, max_age, "deploy")
}

#[test]
fn out_of_range_numeric_dates_are_refused_not_panics() {
    let huge: Vec<Value> = vec![
        json!(1e12),
        json!(i64::MAX),
        json!(u64::MAX),
        json!(1e300),
        json!(-1),
        json!(-1e300),
        json!(253_402_300_800_i64),
    ];
    for v in &huge {
        for (name, check) in [
            ("exp", Check::Exp),
            ("nbf", Check::Nbf),
            ("iat", Check::Iat),
        ] {
            let mut claims = json!({"exp": NOW + 10.0});
            claims[name] = v.clone();
            let r = times(claims, Some(Duration::from_secs(3600))).expect_err(name);
            assert_eq!(
                (r.check, r.class, r.message.clone()),
                (
                    check,
                    Class::Unauthorized,
                    format!("{name}: not a NumericDate")
                ),
                "{name} = {v}"
            );
        }
    }
    // The last second of year 9999 is still a NumericDate.
    let t = times(json!({"exp": MAX_NUMERIC_DATE}), None).expect("9999");
    assert!(secs_to_time(t.exp).is_some());
}

#[test]
fn exp_is_required_and_checked_with_the_leeway() {
    let r = times(json!({}), None).expect_err("no exp");
    assert_eq!(
        (r.check, r.class, r.message.as_str()),
        (Check::Exp, Class::Unauthorized, "exp: missing")
    );
    assert_eq!(
        times(json!({"exp": "soon"}), None)
            .expect_err("string")
            .check,
        Check::Exp
    );
    assert!(times(json!({"exp": NOW + 10.0}), None).is_ok());
    assert!(
        times(json!({"exp": NOW - 59.0}), None).is_ok(),
        "inside the leeway"
    );
    let r = times(json!({"exp": NOW - 61.0}), None).expect_err("expired");
    assert!(
        r.message.starts_with("exp: expired at 2027-01-15T07:58:59")
            && r.message.ends_with("(leeway 60s)"),
        "{}",
        r.message
    );
    assert!(
        check_times(
            &obj(json!({"exp": NOW - 1.0})),
            NOW,
            Duration::ZERO,
            None,
            "r"
        )
        .is_err()
    );
}

#[test]
fn nbf_and_iat_may_not_lie_in_the_future() {
    let exp = NOW + 600.0;
    assert!(times(json!({"exp": exp, "nbf": NOW + 30.0}), None).is_ok());
    let r = times(json!({"exp": exp, "nbf": NOW + 120.0}), None).expect_err("nbf");
    assert_eq!((r.check, r.class), (Check::Nbf, Class::Unauthorized));
    assert!(
        r.message.starts_with("nbf: not valid before "),
        "{}",
        r.message
    );
    assert!(times(json!({"exp": exp, "iat": NOW + 30.0}), None).is_ok());
    let r = times(json!({"exp": exp, "iat": NOW + 120.0}), None).expect_err("iat");
    assert_eq!(r.check, Check::Iat);
    assert!(r.message.starts_with("iat: issued in the future"));
    assert_eq!(
        times(json!({"exp": exp, "iat": "x"}), None)
            .expect_err("type")
            .check,
        Check::Iat
    );
}

#[test]
fn max_age_needs_iat_and_bounds_it() {
    let exp = NOW + 600.0;
    let hour = Some(Duration::from_secs(3600));
    assert!(times(json!({"exp": exp, "iat": NOW - 3000.0}), hour).is_ok());
    let r = times(json!({"exp": exp, "iat": NOW - 3.0 * 3600.0}), hour).expect_err("old");
    assert_eq!(r.check, Check::MaxAge);
    assert_eq!(r.message, "max_age: issued 3h ago, role `deploy` allows 1h");
    assert_eq!(
        times(json!({"exp": exp}), hour).expect_err("no iat").check,
        Check::MaxAge
    );
    assert!(times(json!({"exp": exp}), None).is_ok());
}

#[test]
fn issuer_must_match_exactly() {
    let i = "https://token.actions.githubusercontent.com";
    assert!(check_issuer(&obj(json!({"iss": i})), i).is_ok());
    let r = check_issuer(&obj(json!({"iss": "https://x"})), i).expect_err("other");
    assert_eq!(
        r.message,
        format!("iss: `https://x` is not the method's issuer `{i}`")
    );
    assert_eq!(r.class, Class::Unauthorized);
    assert!(check_issuer(&obj(json!({"iss": format!("{i}/")})), i).is_err());
    assert!(check_issuer(&obj(json!({})), i).is_err());
    assert!(check_issuer(&obj(json!({"iss": [i]})), i).is_err());
}

#[test]
fn the_audience_rule() {
    let b = vec!["arcan".to_owned(), "https://arcan.example".to_owned()];
    assert!(check_audience(&obj(json!({"aud": "arcan"})), &b, "r").is_ok());
    assert!(
        check_audience(
            &obj(json!({"aud": ["x", "https://arcan.example"]})),
            &b,
            "r"
        )
        .is_ok()
    );
    let r = check_audience(&obj(json!({"aud": ["sts.amazonaws.com"]})), &b, "deploy")
        .expect_err("none");
    assert_eq!(
        r.message,
        "aud: the token's audiences [sts.amazonaws.com] include none bound by role `deploy`"
    );
    assert_eq!(
        check_audience(&obj(json!({})), &b, "r")
            .expect_err("missing")
            .check,
        Check::Aud
    );
    let r = check_audience(&obj(json!({"aud": "arcan"})), &[], "deploy").expect_err("unbound");
    assert_eq!(
        r.message,
        "aud: the token has an audience but role `deploy` binds none"
    );
    assert!(check_audience(&obj(json!({})), &[], "r").is_ok());
    assert!(check_audience(&obj(json!({"aud": ["arcan", 5]})), &b, "r").is_err());
}

#[test]
fn subject_is_required_and_bound_when_configured() {
    let s = "repo:acme/api:ref:refs/heads/main";
    assert_eq!(
        check_subject(&obj(json!({"sub": s})), Some(s), "r").expect("ok"),
        s
    );
    let r = check_subject(
        &obj(json!({"sub": "repo:evil/api:ref:refs/heads/main"})),
        Some(s),
        "deploy",
    )
    .expect_err("other");
    assert_eq!((r.check, r.class), (Check::Sub, Class::Forbidden));
    assert_eq!(
        r.message,
        "sub: `repo:evil/api:ref:refs/heads/main` is not bound by role `deploy`"
    );
    assert_eq!(
        check_subject(&obj(json!({})), None, "r")
            .expect_err("missing")
            .class,
        Class::Unauthorized
    );
}

#[test]
fn bound_claims_exact_glob_lists_and_types() {
    let exact = role(
        json!({"bound_claims": {"ref": ["refs/heads/main", "refs/tags/v1"], "ref_protected": "true",
        "run_attempt": 1, "/nested/ok": true}}),
    );
    let good = json!({"ref": "refs/heads/main", "ref_protected": "true", "run_attempt": 1, "nested": {"ok": true}});
    assert!(check_bound_claims(&obj(good.clone()), &exact).is_ok());
    let mut v = good.clone();
    v["ref"] = json!("refs/heads/dev");
    let r = check_bound_claims(&obj(v), &exact).expect_err("dev");
    assert_eq!((r.check, r.class), (Check::Claim, Class::Forbidden));
    assert_eq!(
        r.message,
        "claim `ref`: `refs/heads/dev` matches none of [refs/heads/main, refs/tags/v1]"
    );
    // Type-exact: a boolean is not the string "true", a string is not the number 1.
    let mut v = good.clone();
    v["ref_protected"] = json!(true);
    assert!(check_bound_claims(&obj(v), &exact).is_err());
    let mut v = good.clone();
    v["run_attempt"] = json!("1");
    assert!(check_bound_claims(&obj(v), &exact).is_err());
    let mut v = good.clone();
    v["run_attempt"] = json!(1.0);
    assert!(check_bound_claims(&obj(v), &exact).is_ok(), "1 == 1.0");
    // A list claim passes when any element matches.
    let mut v = good.clone();
    v["ref"] = json!(["x", "refs/tags/v1"]);
    assert!(check_bound_claims(&obj(v), &exact).is_ok());
    let mut v = good.clone();
    v.as_object_mut().expect("o").remove("nested");
    assert_eq!(
        check_bound_claims(&obj(v), &exact)
            .expect_err("missing")
            .message,
        "claim `/nested/ok`: missing"
    );
    // Exact roles do not interpret globs.
    let lit = role(json!({"bound_claims": {"ref": "refs/heads/*"}}));
    assert!(check_bound_claims(&obj(json!({"ref": "refs/heads/main"})), &lit).is_err());
    assert!(check_bound_claims(&obj(json!({"ref": "refs/heads/*"})), &lit).is_ok());
    let glob = role(
        json!({"bound_claims_type": "glob", "bound_claims": {"ref": "refs/heads/*", "project_path": "acme/*"}}),
    );
    assert!(
        check_bound_claims(
            &obj(json!({"ref": "refs/heads/main", "project_path": "acme/api"})),
            &glob
        )
        .is_ok()
    );
    assert!(
        check_bound_claims(
            &obj(json!({"ref": "refs/heads/a/b", "project_path": "acme/api"})),
            &glob
        )
        .is_err()
    );
    assert!(
        check_bound_claims(
            &obj(json!({"ref": "refs/heads/main", "project_path": "acme/x/y"})),
            &glob
        )
        .is_err()
    );
}

#[test]
fn cidrs_bind_the_client_address() {
    let r = role(json!({"bound_subject": "s", "bound_cidrs": ["10.0.0.0/8", "2001:db8::/32"]}));
    let ip = |s: &str| -> Option<IpAddr> { Some(s.parse().expect("ip")) };
    assert!(check_cidrs(&r, ip("10.1.2.3")).is_ok());
    assert!(check_cidrs(&r, ip("::ffff:10.1.2.3")).is_ok());
    assert!(check_cidrs(&r, ip("2001:db8::1")).is_ok());
    let e = check_cidrs(&r, ip("192.168.1.1")).expect_err("outside");
    assert_eq!((e.check, e.class), (Check::Cidr, Class::Forbidden));
    assert_eq!(
        e.message,
        "bound_cidrs: client 192.168.1.1 not in [10.0.0.0/8, 2001:db8::/32]"
    );
    assert!(check_cidrs(&r, None).is_err());
    assert!(check_cidrs(&role(json!({"bound_subject": "s"})), None).is_ok());
}

#[test]
fn claim_mappings_stringify_scalars_only() {
    let r = role(
        json!({"bound_subject": "s", "claim_mappings": {"repository": "repo", "run_id": "run",
        "/ctx/protected": "protected", "absent": "gone"}}),
    );
    let m = map_claims(
        &obj(json!({"repository": "acme/api", "run_id": 42, "ctx": {"protected": true}})),
        &r,
    )
    .expect("mapped");
    assert_eq!(m.get("repo").map(String::as_str), Some("acme/api"));
    assert_eq!(m.get("run").map(String::as_str), Some("42"));
    assert_eq!(m.get("protected").map(String::as_str), Some("true"));
    assert!(!m.contains_key("gone"));
    let e = map_claims(&obj(json!({"repository": ["a"]})), &r).expect_err("list");
    assert_eq!(e.check, Check::Claim);
    let e = map_claims(&obj(json!({"repository": "x".repeat(257)})), &r).expect_err("long");
    assert!(e.message.contains("longer than 256"));
}

#[test]
fn identity_fields_and_mappings_are_bounded() {
    let long = "s".repeat(513);
    let r = check_subject(&obj(json!({"sub": long})), None, "r").expect_err("long sub");
    assert_eq!(
        (r.check, r.class, r.message.as_str()),
        (
            Check::Sub,
            Class::Unauthorized,
            "sub: longer than 512 bytes"
        )
    );
    assert!(check_subject(&obj(json!({"sub": "s".repeat(512)})), None, "r").is_ok());
    let long_iss = format!("https://{}", "i".repeat(600));
    let r = check_issuer(&obj(json!({"iss": long_iss})), &long_iss).expect_err("long iss");
    assert_eq!(
        (r.check, r.class, r.message.as_str()),
        (
            Check::Iss,
            Class::Unauthorized,
            "iss: longer than 512 bytes"
        )
    );
    // 20 mappings of 250 bytes each: every value fits, the total does not.
    let mut mappings = Map::new();
    let mut claims = Map::new();
    for i in 0..20 {
        mappings.insert(format!("c{i}"), json!(format!("t{i}")));
        claims.insert(format!("c{i}"), json!("v".repeat(250)));
    }
    let r = role(json!({"bound_subject": "s", "claim_mappings": mappings}));
    let e = map_claims(&claims, &r).expect_err("total");
    assert_eq!((e.check, e.class), (Check::Claim, Class::Forbidden));
    assert_eq!(
        e.message,
        "claim_mappings: mapped names and values exceed 4096 bytes in total"
    );
    for i in 0..20 {
        claims.insert(format!("c{i}"), json!("v".repeat(100)));
    }
    assert_eq!(map_claims(&claims, &r).expect("fits").len(), 20);
}
