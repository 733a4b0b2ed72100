//! Audit API: realm-scoped queries and verification, and the global sink administration
//! (the sink response bodies are in [`sinks`]).

pub mod sinks;

use std::sync::atomic::Ordering;

use salvo::oapi::ToSchema;
use salvo::oapi::extract::{PathParam, QueryParam};
use salvo::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::super::error::{ApiError, ApiResult};
use super::super::extract::{Body, page_limit};
use super::super::middleware::policy::resolve_realm;
use super::super::state::state;
use arcan_audit::audit_hmac;
use arcan_audit::sinks::{NamedSink, open_config, seal_config};
use arcan_audit::verify::{Verification, verify_chain};

use arcan_store::{AuditFilter, SinkRow};
use arcan_util::now_ms;
use sinks::{AddedSink, ListedSink};

/// A page of events.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    /// Events (their JSON bodies plus chain, seq and hash), oldest first.
    #[salvo(schema(value_type = Vec<Object>))]
    pub items: Vec<Value>,
    /// Pass as `?cursor=` for the next page.
    pub next_cursor: Option<String>,
    /// More events follow.
    pub has_more: bool,
}

fn parse_time(s: &str) -> ApiResult<i64> {
    humantime::parse_rfc3339_weak(s)
        .map_err(|_| ApiError::bad_request(format!("`{s}` is not an RFC 3339 time")))
        .and_then(|t| {
            t.duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .map_err(|_| ApiError::bad_request("time before 1970"))
        })
}

/// Lists the realm's audit events, filtered and cursor-paginated.
#[endpoint(tags("audit"))]
#[allow(clippy::too_many_arguments)]
pub async fn list(
    slug: PathParam<String>,
    since: QueryParam<String, false>,
    until: QueryParam<String, false>,
    actor: QueryParam<String, false>,
    action: QueryParam<String, false>,
    outcome: QueryParam<String, false>,
    cursor: QueryParam<String, false>,
    limit: QueryParam<i64, false>,
    depot: &mut Depot,
) -> ApiResult<Json<EventPage>> {
    let _ = slug;
    let st = state(depot).clone();
    let ctx = resolve_realm(depot)?;
    let limit = page_limit(limit.into_inner())?;
    let after = cursor
        .into_inner()
        .map(|c| {
            c.parse::<i64>()
                .map_err(|_| ApiError::bad_request("invalid cursor"))
        })
        .transpose()?;
    let outcome = outcome
        .into_inner()
        .map(|o| o.parse::<arcan_store::Outcome>());
    let filter = AuditFilter {
        realm_id: ctx.realm.id.clone(),
        since: since.into_inner().as_deref().map(parse_time).transpose()?,
        until: until.into_inner().as_deref().map(parse_time).transpose()?,
        actor: actor.into_inner(),
        action: action.into_inner(),
        outcome: outcome.clone().and_then(Result::ok),
        after,
        limit: limit + 1,
    };
    // An outcome that is none of the four matches no event.
    if matches!(outcome, Some(Err(_))) {
        return Ok(Json(EventPage {
            items: Vec::new(),
            next_cursor: None,
            has_more: false,
        }));
    }
    let mut rows = st.store.audit_list(&filter).await?;
    let has_more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = if has_more {
        // The store pages on the chain's `seq` (`seq > cursor`), so the cursor is a `seq`.
        rows.last().map(|r| r.seq.to_string())
    } else {
        None
    };
    Ok(Json(EventPage {
        items: rows.iter().map(arcan_audit::sinks::delivered).collect(),
        next_cursor,
        has_more,
    }))
}

/// The result of verifying a realm's audit chain.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChainVerification {
    /// True when no problem was found.
    pub ok: bool,
    /// Events checked.
    pub checked: u64,
    /// Sequence number verification started after (a retention checkpoint, or 0).
    pub from_seq: i64,
    /// Sequence number of the chain's signed head (absent for a chain with no event).
    pub head_seq: Option<i64>,
    /// The first problem found.
    pub problem: Option<String>,
}

impl From<Verification> for ChainVerification {
    fn from(v: Verification) -> Self {
        Self {
            ok: v.ok,
            checked: v.checked,
            from_seq: v.from_seq,
            head_seq: v.head_seq,
            problem: v.problem,
        }
    }
}

/// Verifies the realm's hash chain.
#[endpoint(tags("audit"))]
pub async fn verify(
    slug: PathParam<String>,
    depot: &mut Depot,
) -> ApiResult<Json<ChainVerification>> {
    let _ = slug;
    let st = state(depot).clone();
    let ctx = resolve_realm(depot)?;
    let system = st.keyring.system_key()?;
    let key = arcan_crypto::ChainKey::derive(&system);
    Ok(Json(
        verify_chain(st.store.as_ref(), &key, &ctx.realm.id)
            .await?
            .into(),
    ))
}

/// Pipeline and sink counters.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditStatus {
    /// `strict` (requests answered only once their event is durable) or `async`; `off`
    /// when audit is disabled.
    pub mode: String,
    /// Events handed to the dispatcher (events committed with their change are not).
    pub emitted: u64,
    /// Events dropped on a full queue (async mode and side events only).
    pub dropped: u64,
    /// Events stored by the dispatcher.
    pub stored: u64,
    /// Failed store writes.
    pub store_failures: u64,
    /// Requests refused with 503 because their event could not be made durable.
    pub refused: u64,
    /// Newest stored event's delivery position.
    pub head: i64,
    /// Per sink.
    pub sinks: Vec<SinkStatus>,
}

/// One sink's counters.
#[derive(Debug, Serialize, ToSchema)]
pub struct SinkStatus {
    /// Name.
    pub name: String,
    /// Events delivered.
    pub delivered: u64,
    /// Failed attempts.
    pub failed: u64,
    /// Events not yet delivered.
    pub lag: i64,
}

/// The audit mode's name (`off` when audit is disabled).
pub fn mode_name(st: &super::super::state::AppState) -> &'static str {
    if st.config.audit.enabled {
        st.audit.mode().as_str()
    } else {
        "off"
    }
}

/// Audit pipeline status.
#[endpoint(tags("audit"))]
pub async fn status(depot: &mut Depot) -> ApiResult<Json<AuditStatus>> {
    let st = state(depot).clone();
    let head = st.store.audit_head().await?;
    let s = &st.audit.stats;
    let sinks = s
        .sinks
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|(name, k)| SinkStatus {
            name: name.clone(),
            delivered: k.delivered.load(Ordering::Relaxed),
            failed: k.failed.load(Ordering::Relaxed),
            lag: (head - k.cursor.load(Ordering::Relaxed)).max(0),
        })
        .collect();
    Ok(Json(AuditStatus {
        mode: mode_name(&st).into(),
        emitted: s.emitted.load(Ordering::Relaxed),
        dropped: s.dropped.load(Ordering::Relaxed),
        stored: s.stored.load(Ordering::Relaxed),
        store_failures: s.store_failures.load(Ordering::Relaxed),
        refused: s.refused.load(Ordering::Relaxed),
        head,
        sinks,
    }))
}

/// A value to hash.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HashBody {
    /// The value.
    pub value: String,
}

/// Its audit HMAC.
#[derive(Debug, Serialize, ToSchema)]
pub struct HashOut {
    /// HMAC-SHA256 under the deployment's audit key, hex.
    pub hmac: String,
}

/// Computes the audit HMAC of a value, to find events about it.
#[endpoint(tags("audit"))]
pub async fn hash(body: Body<HashBody>, depot: &mut Depot) -> ApiResult<Json<HashOut>> {
    let st = state(depot).clone();
    Ok(Json(HashOut {
        hmac: audit_hmac(&st.keyring, body.0.value.as_bytes())?,
    }))
}

/// Sinks (secrets omitted).
#[derive(Debug, Serialize, ToSchema)]
pub struct SinkList {
    /// Sinks by name.
    pub items: Vec<ListedSink>,
}

/// Lists sinks.
#[endpoint(tags("audit"))]
pub async fn list_sinks(depot: &mut Depot) -> ApiResult<Json<SinkList>> {
    let st = state(depot).clone();
    let mut items = Vec::new();
    for row in st.store.sinks().await? {
        let config = open_config(&st.keyring, &row.config)?;
        items.push(ListedSink {
            name: row.name,
            cursor: row.cursor,
            settings: (&config).into(),
        });
    }
    Ok(Json(SinkList { items }))
}

/// Adds (or replaces) a sink and starts it from the beginning of the log (new) or its
/// cursor (replaced).
#[endpoint(
    tags("audit"),
    status_codes(201, 400),
    responses((status_code = 201, body = AddedSink, description = "The sink added (secrets omitted)"))
)]
pub async fn add_sink(
    body: Body<Value>,
    depot: &mut Depot,
    res: &mut Response,
) -> ApiResult<Json<AddedSink>> {
    let st = state(depot).clone();
    let sink: NamedSink = serde_json::from_value(body.0)
        .map_err(|e| ApiError::bad_request(format!("invalid sink: {e}")))?;
    let name_ok = (1..=64).contains(&sink.name.len())
        && sink
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
    if !name_ok {
        return Err(ApiError::bad_request(
            "sink name must be 1-64 of A-Z a-z 0-9 - _",
        ));
    }
    sink.config.validate().map_err(ApiError::bad_request)?;
    install_sink(&st, &sink).await?;
    res.status_code(StatusCode::CREATED);
    Ok(Json(AddedSink {
        settings: (&sink.config).into(),
        name: sink.name,
    }))
}

/// Stores a sink (sealed) and (re)starts it from its stored cursor.
pub async fn install_sink(st: &super::super::state::AppState, sink: &NamedSink) -> ApiResult<()> {
    let sealed = seal_config(&st.keyring, &sink.config)?;
    st.store
        .sink_put(&SinkRow {
            name: sink.name.clone(),
            kind: sink.config.kind().into(),
            config: sealed,
            cursor: 0,
            created_at: now_ms(),
        })
        .await?;
    let cursor = st
        .store
        .sinks()
        .await?
        .into_iter()
        .find(|s| s.name == sink.name)
        .map(|s| s.cursor)
        .unwrap_or(0);
    st.sinks.start(&sink.name, sink.config.clone(), cursor);
    Ok(())
}

/// Removes a sink.
#[endpoint(
    tags("audit"),
    status_codes(204, 404),
    responses((status_code = 204, description = "The sink is removed"))
)]
pub async fn remove_sink(
    name: PathParam<String>,
    depot: &mut Depot,
    res: &mut Response,
) -> ApiResult<()> {
    let st = state(depot).clone();
    if !st.store.sink_delete(&name).await? {
        return Err(ApiError::not_found("sink not found"));
    }
    st.sinks.stop(&name);
    res.status_code(StatusCode::NO_CONTENT);
    Ok(())
}
