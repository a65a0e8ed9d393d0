//! Times every answer into `labgate_http_request_duration_seconds`, labelled by the route's
//! template so that paths (ids, project names) cannot grow the metrics.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{Error, web};

use crate::metrics::Answered;
use crate::service::Context;

/// The route label of a request no route matched.
const UNMATCHED: &str = "unmatched";

pub async fn time_answers(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let arrived = Instant::now();
    let ctx = request.app_data::<web::Data<Context>>().cloned();
    let method = request.method().to_string();
    let response = next.call(request).await?;
    if let Some(ctx) = ctx {
        let labels = Answered {
            method,
            route: response
                .request()
                .match_pattern()
                .unwrap_or_else(|| UNMATCHED.to_owned()),
            status: response.status().as_u16(),
        };
        ctx.metrics
            .answered(&labels, arrived.elapsed().as_secs_f64());
    }
    Ok(response)
}
