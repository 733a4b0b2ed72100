//! The observer: one structured line per request (request id, method, path, status,
//! latency, principal), plus the request metrics. Never headers or bodies, so never a
//! token or a secret value.

use std::sync::Arc;
use std::time::Instant;

use salvo::prelude::*;

use super::super::metrics::RequestLabels;
use super::super::state::state;
use super::request_id::RequestId;
use crate::auth::Principal;

/// The hoop.
#[handler]
pub async fn logging(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
    ctrl: &mut FlowCtrl,
) {
    let start = Instant::now();
    ctrl.call_next(req, depot, res).await;
    let elapsed = start.elapsed();
    let status = res.status_code.unwrap_or(StatusCode::OK).as_u16();
    let st = state(depot);
    st.metrics
        .requests
        .get_or_create(&RequestLabels {
            method: req.method().as_str().to_owned(),
            status,
        })
        .inc();
    st.metrics.latency.observe(elapsed.as_secs_f64());
    let request_id = depot
        .get_typed::<RequestId>()
        .map(|r| r.0.as_str())
        .unwrap_or("");
    let principal = depot
        .get_typed::<Arc<Principal>>()
        .map(|p| p.token_id.as_str())
        .unwrap_or("-");
    tracing::info!(
        target: "arcan::http",
        request_id,
        method = %req.method(),
        path = req.uri().path(),
        status,
        latency_us = elapsed.as_micros() as u64,
        principal,
        "request"
    );
}
