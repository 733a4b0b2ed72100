//! The claim checks Arcan does itself, on the one parsed claims object, in order: `exp`
//! (required), `nbf`, `iat`, `max_age` (with the clock-skew leeway) → `iss` → audience rule →
//! `sub` → `bound_claims` → `bound_cidrs` → `claim_mappings`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use serde_json::{Map, Value};

use super::role::{Expected, JwtRoleConfig};
use crate::error::{Check, Refusal, shown};
use crate::globs;
use crate::upstream::humanize;

/// Longest mapped value.
pub const MAX_MAPPED_VALUE: usize = 256;
/// Longest `sub` and `iss` (they are stored with the identity).
pub const MAX_IDENTITY_FIELD: usize = 512;
/// Most bytes of all mapped names and values together (the stored identity is bounded).
pub const MAX_MAPPED_TOTAL: usize = 4096;

/// What the time checks found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Times {
    /// `exp`, unix seconds.
    pub exp: f64,
    /// `iat`, unix seconds.
    pub iat: Option<f64>,
}

fn rfc3339(secs: f64) -> String {
    arcan_util::rfc3339((secs * 1000.0) as i64)
}

/// The last NumericDate accepted: 9999-12-31T23:59:59Z. Later (or negative, or non-finite)
/// values are refused, so no time arithmetic or RFC 3339 formatting downstream can overflow.
pub const MAX_NUMERIC_DATE: f64 = 253_402_300_799.0;

/// Whether `f` is a NumericDate Arcan accepts (`0..=MAX_NUMERIC_DATE`).
pub(crate) fn in_numeric_range(f: f64) -> bool {
    f.is_finite() && (0.0..=MAX_NUMERIC_DATE).contains(&f)
}

/// `UNIX_EPOCH + secs`, checked (values are range-checked NumericDates already).
pub(crate) fn secs_to_time(secs: f64) -> Option<std::time::SystemTime> {
    let d = Duration::try_from_secs_f64(secs).ok()?;
    std::time::UNIX_EPOCH.checked_add(d)
}

fn numeric(claims: &Map<String, Value>, name: &str, check: Check) -> Result<Option<f64>, Refusal> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(f) if in_numeric_range(f) => Ok(Some(f)),
            _ => Err(Refusal::unauthorized(
                check,
                format!("{name}: not a NumericDate"),
            )),
        },
        Some(_) => Err(Refusal::unauthorized(
            check,
            format!("{name}: not a NumericDate"),
        )),
    }
}

/// `exp` (required), `nbf`, `iat`, `max_age`; `now` and the result in unix seconds.
pub fn check_times(
    claims: &Map<String, Value>,
    now: f64,
    leeway: Duration,
    max_age: Option<Duration>,
    role_name: &str,
) -> Result<Times, Refusal> {
    let lw = leeway.as_secs_f64();
    let exp = numeric(claims, "exp", Check::Exp)?
        .ok_or_else(|| Refusal::unauthorized(Check::Exp, "exp: missing"))?;
    if now >= exp + lw {
        return Err(Refusal::unauthorized(
            Check::Exp,
            format!(
                "exp: expired at {} (leeway {})",
                rfc3339(exp),
                humanize(leeway)
            ),
        ));
    }
    if let Some(nbf) = numeric(claims, "nbf", Check::Nbf)?
        && now + lw < nbf
    {
        return Err(Refusal::unauthorized(
            Check::Nbf,
            format!(
                "nbf: not valid before {} (leeway {})",
                rfc3339(nbf),
                humanize(leeway)
            ),
        ));
    }
    let iat = numeric(claims, "iat", Check::Iat)?;
    if let Some(iat) = iat
        && iat > now + lw
    {
        return Err(Refusal::unauthorized(
            Check::Iat,
            format!("iat: issued in the future ({})", rfc3339(iat)),
        ));
    }
    if let Some(max) = max_age {
        let Some(iat) = iat else {
            return Err(Refusal::unauthorized(
                Check::MaxAge,
                format!("max_age: the token has no `iat`; role `{role_name}` limits its age"),
            ));
        };
        let age = (now - iat).max(0.0);
        if age > max.as_secs_f64() + lw {
            return Err(Refusal::unauthorized(
                Check::MaxAge,
                format!(
                    "max_age: issued {} ago, role `{role_name}` allows {}",
                    humantime::format_duration(Duration::from_secs(age as u64)),
                    humantime::format_duration(max)
                ),
            ));
        }
    }
    Ok(Times { exp, iat })
}

/// `iss` must equal the method's issuer.
pub fn check_issuer(claims: &Map<String, Value>, issuer: &str) -> Result<String, Refusal> {
    match claims.get("iss") {
        Some(Value::String(i)) if i.len() > MAX_IDENTITY_FIELD => Err(Refusal::unauthorized(
            Check::Iss,
            format!("iss: longer than {MAX_IDENTITY_FIELD} bytes"),
        )),
        Some(Value::String(i)) if i == issuer => Ok(i.clone()),
        Some(Value::String(i)) => Err(Refusal::unauthorized(
            Check::Iss,
            format!(
                "iss: `{}` is not the method's issuer `{}`",
                shown(i, 128),
                shown(issuer, 256)
            ),
        )),
        Some(_) => Err(Refusal::unauthorized(Check::Iss, "iss: not a string")),
        None => Err(Refusal::unauthorized(Check::Iss, "iss: missing")),
    }
}

fn list(values: &[String]) -> String {
    let shown_values: Vec<String> = values.iter().take(5).map(|v| shown(v, 64)).collect();
    let more = if values.len() > 5 { ", …" } else { "" };
    format!("[{}{more}]", shown_values.join(", "))
}

/// The audience rule: a token with `aud` needs a role that binds one; with bound audiences
/// any overlap passes.
pub fn check_audience(
    claims: &Map<String, Value>,
    bound: &[String],
    role_name: &str,
) -> Result<Vec<String>, Refusal> {
    let aud: Vec<String> = match claims.get("aud") {
        None => vec![],
        Some(Value::String(a)) => vec![a.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                Refusal::unauthorized(Check::Aud, "aud: not a string or a list of strings")
            })?,
        Some(_) => {
            return Err(Refusal::unauthorized(
                Check::Aud,
                "aud: not a string or a list of strings",
            ));
        }
    };
    if bound.is_empty() {
        if !aud.is_empty() {
            return Err(Refusal::unauthorized(
                Check::Aud,
                format!("aud: the token has an audience but role `{role_name}` binds none"),
            ));
        }
        return Ok(aud);
    }
    if aud.is_empty() {
        return Err(Refusal::unauthorized(
            Check::Aud,
            format!(
                "aud: the token has no audience; role `{role_name}` binds {}",
                list(bound)
            ),
        ));
    }
    if !aud.iter().any(|a| bound.contains(a)) {
        return Err(Refusal::unauthorized(
            Check::Aud,
            format!(
                "aud: the token's audiences {} include none bound by role `{role_name}`",
                list(&aud)
            ),
        ));
    }
    Ok(aud)
}

/// The token's `sub` (required), checked against `bound_subject`.
pub fn check_subject(
    claims: &Map<String, Value>,
    bound: Option<&str>,
    role_name: &str,
) -> Result<String, Refusal> {
    let sub = match claims.get("sub") {
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(Refusal::unauthorized(Check::Sub, "sub: not a string")),
        None => return Err(Refusal::unauthorized(Check::Sub, "sub: missing")),
    };
    if sub.len() > MAX_IDENTITY_FIELD {
        return Err(Refusal::unauthorized(
            Check::Sub,
            format!("sub: longer than {MAX_IDENTITY_FIELD} bytes"),
        ));
    }
    if let Some(b) = bound
        && b != sub
    {
        return Err(Refusal::forbidden(
            Check::Sub,
            format!(
                "sub: `{}` is not bound by role `{role_name}`",
                shown(&sub, 128)
            ),
        ));
    }
    Ok(sub)
}

fn numbers_equal(a: &serde_json::Number, b: &serde_json::Number) -> bool {
    match (a.as_i64(), b.as_i64(), a.as_u64(), b.as_u64()) {
        (Some(x), Some(y), _, _) => x == y,
        (_, _, Some(x), Some(y)) => x == y,
        _ => match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        },
    }
}

fn value_matches(expected: &Expected, actual: &Value) -> bool {
    match (expected, actual) {
        (Expected::Str(s, None), Value::String(a)) => s == a,
        (Expected::Str(_, Some(p)), Value::String(a)) => globs::matches(p, a),
        (Expected::Bool(b), Value::Bool(a)) => b == a,
        (Expected::Number(n), Value::Number(a)) => numbers_equal(n, a),
        _ => false,
    }
}

fn expected_text(e: &Expected) -> String {
    match e {
        Expected::Str(s, _) => s.clone(),
        Expected::Bool(b) => b.to_string(),
        Expected::Number(n) => n.to_string(),
    }
}

/// Every `bound_claims` entry must be present and match (a list claim: any element).
pub fn check_bound_claims(
    claims: &Map<String, Value>,
    role: &JwtRoleConfig,
) -> Result<(), Refusal> {
    for bound in &role.bound_claims {
        let name = bound.selector.as_str();
        let Some(actual) = bound.selector.get(claims) else {
            return Err(Refusal::forbidden(
                Check::Claim,
                format!("claim `{}`: missing", shown(name, 64)),
            ));
        };
        let actual_values: Vec<&Value> = match actual {
            Value::Array(items) => items.iter().collect(),
            one => vec![one],
        };
        let ok = actual_values
            .iter()
            .any(|a| bound.expected.iter().any(|e| value_matches(e, a)));
        if !ok {
            let got: Vec<String> = actual_values
                .iter()
                .take(3)
                .map(|v| match v {
                    Value::String(s) => shown(s, 64),
                    other => shown(&other.to_string(), 64),
                })
                .collect();
            let want: Vec<String> = bound.expected.iter().map(expected_text).collect();
            return Err(Refusal::forbidden(
                Check::Claim,
                format!(
                    "claim `{}`: `{}` matches none of {}",
                    shown(name, 64),
                    got.join("`, `"),
                    list(&want)
                ),
            ));
        }
    }
    Ok(())
}

/// The client address must lie in one of `bound_cidrs` (when any).
pub fn check_cidrs(role: &JwtRoleConfig, client: Option<IpAddr>) -> Result<(), Refusal> {
    if role.bound_cidrs.is_empty() {
        return Ok(());
    }
    let nets: Vec<String> = role.bound_cidrs.iter().map(ToString::to_string).collect();
    let Some(ip) = client else {
        return Err(Refusal::forbidden(
            Check::Cidr,
            format!(
                "bound_cidrs: client address unknown, role allows only {}",
                list(&nets)
            ),
        ));
    };
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    if role.bound_cidrs.iter().any(|n| n.contains(&ip)) {
        return Ok(());
    }
    Err(Refusal::forbidden(
        Check::Cidr,
        format!("bound_cidrs: client {ip} not in {}", list(&nets)),
    ))
}

/// `claim_mappings` into metadata: strings as they are, numbers and booleans as text;
/// missing claims are left out; other types or over-long values refuse the login.
pub fn map_claims(
    claims: &Map<String, Value>,
    role: &JwtRoleConfig,
) -> Result<BTreeMap<String, String>, Refusal> {
    let mut out = BTreeMap::new();
    let mut total = 0usize;
    for (selector, target) in &role.claim_mappings {
        let name = selector.as_str();
        let value = match selector.get(claims) {
            None => continue,
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::Bool(b)) => b.to_string(),
            Some(_) => {
                return Err(Refusal::forbidden(
                    Check::Claim,
                    format!(
                        "claim `{}`: cannot be mapped (not a string, number or boolean)",
                        shown(name, 64)
                    ),
                ));
            }
        };
        if value.len() > MAX_MAPPED_VALUE {
            return Err(Refusal::forbidden(
                Check::Claim,
                format!(
                    "claim `{}`: mapped value longer than {MAX_MAPPED_VALUE} bytes",
                    shown(name, 64)
                ),
            ));
        }
        total = total
            .saturating_add(target.len())
            .saturating_add(value.len());
        if total > MAX_MAPPED_TOTAL {
            return Err(Refusal::forbidden(
                Check::Claim,
                format!(
                    "claim_mappings: mapped names and values exceed {MAX_MAPPED_TOTAL} bytes in total"
                ),
            ));
        }
        out.insert(target.clone(), value);
    }
    Ok(out)
}

#[cfg(test)]
#[path = "claims_tests.rs"]
mod tests;
