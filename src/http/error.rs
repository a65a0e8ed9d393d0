use actix_web::error::JsonPayloadError;
use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::service::{CheckStep, FieldError, ServiceError, StepStatus};

/// Every error labgate answers, rendered as RFC 9457 `application/problem+json` with a stable
/// `code`. The detail is written for the caller; internal causes are logged, never sent.
pub struct ApiError {
    status: StatusCode,
    code: String,
    detail: String,
    errors: Vec<FieldError>,
    steps: Box<[CheckStep]>,
    retry_after: Option<u32>,
    /// What went wrong inside labgate: logged once with the request, never sent.
    cause: Option<Box<str>>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct Problem<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'a str,
    status: u16,
    code: &'a str,
    detail: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<ProblemField<'a>>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    steps: &'a [CheckStep],
}

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct ProblemField<'a> {
    field: &'a str,
    message: &'a str,
}

impl ApiError {
    pub fn new(status: StatusCode, code: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            status,
            code: code.into(),
            detail: detail.into(),
            errors: Vec::new(),
            steps: Box::default(),
            retry_after: None,
            cause: None,
        }
    }

    /// What went wrong inside labgate, for the request's log line.
    pub fn cause(&self) -> Option<&str> {
        self.cause.as_deref()
    }

    pub fn not_found(code: &str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", detail)
    }

    pub fn invalid_fields(errors: Vec<FieldError>) -> Self {
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        let detail = format!("invalid fields: {}", fields.join(", "));
        Self {
            errors,
            ..Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                detail,
            )
        }
    }

    pub fn from_json_error(error: JsonPayloadError) -> Self {
        match error {
            JsonPayloadError::OverflowKnownLength { limit, .. }
            | JsonPayloadError::Overflow { limit } => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the request body is larger than {} KiB", limit / 1024),
            ),
            JsonPayloadError::ContentType => Self::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the request body as Content-Type: application/json",
            ),
            // serde_json's syntax messages give a position, never the offending text.
            JsonPayloadError::Deserialize(e) => {
                Self::bad_request(format!("the request body is not valid JSON: {e}"))
            }
            other => Self::bad_request(format!("the request body could not be read: {other}")),
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        match error {
            ServiceError::Invalid(errors) => Self::invalid_fields(errors),
            ServiceError::NotFound(detail) => Self::not_found("not_found", detail),
            ServiceError::Conflict(detail) => Self::new(StatusCode::CONFLICT, "conflict", detail),
            ServiceError::Unauthenticated(detail) => {
                Self::new(StatusCode::UNAUTHORIZED, "invalid_service_token", detail)
            }
            ServiceError::Forbidden { code, detail } => {
                Self::new(StatusCode::FORBIDDEN, code, detail)
            }
            ServiceError::NotConnected(detail) => Self::not_found("not_connected", detail),
            ServiceError::TokenRejected(detail) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "token_rejected", detail)
            }
            ServiceError::ReauthorizationRequired(detail) => {
                Self::new(StatusCode::CONFLICT, "reauthorization_required", detail)
            }
            ServiceError::GitLabUnavailable {
                detail,
                retry_after,
            } => Self {
                retry_after: Some(retry_after.as_secs_f64().ceil().min(f64::from(u32::MAX)) as u32),
                ..Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "gitlab_unavailable",
                    detail,
                )
            },
            ServiceError::CheckFailed(steps) => {
                let failed = steps.iter().find(|s| s.status == StepStatus::Failed);
                let code = failed
                    .and_then(|s| s.code.clone())
                    .unwrap_or_else(|| "check_failed".to_owned());
                let detail = failed.map_or_else(
                    || "the instance check failed".to_owned(),
                    |s| s.detail.clone(),
                );
                Self {
                    steps: steps.into_boxed_slice(),
                    ..Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, detail)
                }
            }
            ServiceError::Unavailable(cause) => Self {
                cause: Some(format!("storage unavailable: {cause}").into()),
                ..Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage_unavailable",
                    "storage is unavailable; try again shortly",
                )
            },
            ServiceError::Internal(cause) => Self {
                cause: Some(format!("{cause:?}").into()),
                ..Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "an internal error occurred; it has been logged",
                )
            },
        }
    }
}

/// Shown in the request log line: status, code and detail, which never carry a secret.
impl std::fmt::Debug for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.detail)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let problem = Problem {
            kind: "about:blank",
            title: self.status.canonical_reason().unwrap_or("Error"),
            status: self.status.as_u16(),
            code: &self.code,
            detail: &self.detail,
            errors: self
                .errors
                .iter()
                .map(|e| ProblemField {
                    field: &e.field,
                    message: &e.message,
                })
                .collect(),
            steps: &self.steps,
        };
        let mut response = HttpResponse::build(self.status);
        response.insert_header((CONTENT_TYPE, "application/problem+json"));
        if self.status == StatusCode::UNAUTHORIZED {
            response.insert_header((WWW_AUTHENTICATE, "Bearer realm=\"labgate\""));
        }
        if let Some(seconds) = self.retry_after {
            response.insert_header((RETRY_AFTER, seconds.to_string()));
        }
        response.body(serde_json::to_string(&problem).unwrap_or_default())
    }
}
