use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde_json::json;

use super::ApiError;
use crate::service::{Context, gauges, health};

/// Alive: the process answers HTTP.
pub(super) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Ready: the database answers and every migration this binary knows is applied.
pub(super) async fn readyz(ctx: web::Data<Context>) -> Result<HttpResponse, ApiError> {
    match health::readiness(&ctx).await {
        Ok(()) => Ok(HttpResponse::Ok().json(json!({"status": "ready"}))),
        Err(reason) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            reason,
        )),
    }
}

/// OpenMetrics text, read from memory: the gauges are kept current in the background.
pub(super) async fn metrics(ctx: web::Data<Context>) -> HttpResponse {
    gauges::sample_on_scrape(&ctx);
    HttpResponse::Ok()
        // What prometheus-client writes (`# EOF` included); Prometheus asks for it by name.
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(ctx.metrics.encode())
}
