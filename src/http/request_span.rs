//! One span and one log line per request: method, path (never the query string: OAuth codes
//! and states travel there), status, duration and a request id, which the answer echoes as
//! `X-Request-Id`. The line's level says who should look: 5xx at ERROR with its cause, a
//! malformed or refused-in-transit request at WARN, everything else at INFO.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage};
use tracing::Span;
use tracing_actix_web::{RequestId, RootSpanBuilder};

use super::ApiError;
use super::admin::PageError;

pub struct RequestSpan;

/// When the request arrived, for its duration.
struct Arrived(Instant);

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

impl RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        request.extensions_mut().insert(Arrived(Instant::now()));
        let id = request
            .extensions()
            .get::<RequestId>()
            .map(ToString::to_string)
            .unwrap_or_default();
        tracing::info_span!(
            "http.request",
            http.method = %request.method(),
            http.path = %request.path(),
            request.id = %id,
            http.status_code = tracing::field::Empty,
            http.duration_ms = tracing::field::Empty,
        )
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        let (status, cause, elapsed) = match outcome {
            Ok(response) => (
                response.status(),
                response.response().error().and_then(cause_of),
                response
                    .request()
                    .extensions()
                    .get::<Arrived>()
                    .map(|arrived| arrived.0.elapsed()),
            ),
            Err(error) => (
                error.as_response_error().status_code(),
                cause_of(error),
                None,
            ),
        };
        span.record("http.status_code", status.as_u16());
        if let Some(elapsed) = elapsed {
            span.record("http.duration_ms", elapsed.as_secs_f64() * 1000.0);
        }
        let _entered = span.enter();
        match level(status) {
            tracing::Level::ERROR => match cause {
                Some(cause) => tracing::error!(error.cause = %cause, "request failed"),
                None => tracing::error!("request failed"),
            },
            tracing::Level::WARN => tracing::warn!("request refused"),
            _ => tracing::info!("request finished"),
        }
    }
}

/// Who should look at a request that ended with `status`.
fn level(status: StatusCode) -> tracing::Level {
    match status.as_u16() {
        500.. => tracing::Level::ERROR,
        // What a caller or browser meets in ordinary use: not signed in, not allowed, not there,
        // a conflict, a form to correct.
        401 | 403 | 404 | 405 | 409 | 410 | 422 => tracing::Level::INFO,
        400.. => tracing::Level::WARN,
        _ => tracing::Level::INFO,
    }
}

/// What went wrong inside labgate, kept from the caller but written to the log once.
fn cause_of(error: &Error) -> Option<String> {
    match error.as_error::<ApiError>() {
        Some(api) => api.cause().map(str::to_owned),
        None => error.as_error::<PageError>().and_then(PageError::cause),
    }
}

/// Echoes the request id in the answer, so a caller can quote it when asking about a failure.
/// Wrapped inside `TracingLogger`, which gives each request its id.
pub async fn echo_request_id(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let id = request.extensions().get::<RequestId>().copied();
    let mut response = next.call(request).await?;
    if let Some(value) = id.and_then(|id| HeaderValue::from_str(&id.to_string()).ok()) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    Ok(response)
}
