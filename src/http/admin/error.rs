//! What an admin page answers when it cannot do what was asked: a redirect to sign-in, or a
//! small HTML page that says why. Internal causes are logged, never shown.

use actix_web::http::StatusCode;
use actix_web::http::header::LOCATION;
use actix_web::{HttpResponse, ResponseError};
use maud::html;

use super::layout::{Section, page, respond};
use crate::service::ServiceError;

pub(in crate::http) enum PageError {
    /// No live session: go and sign in, then come back to `next`.
    SignIn {
        next: Option<String>,
    },
    /// A POST without this session's CSRF token; nothing was done.
    Csrf,
    /// A form over `max_bytes`: the limit is the form reader's, which alone knows it.
    TooLarge {
        max_bytes: usize,
    },
    UnsupportedMediaType,
    BadForm(String),
    NotFound(String),
    MethodNotAllowed,
    Service(ServiceError),
}

impl PageError {
    fn describe(&self) -> (StatusCode, &'static str, String) {
        match self {
            Self::SignIn { .. } => (StatusCode::SEE_OTHER, "Sign in", String::new()),
            Self::Csrf => (
                StatusCode::FORBIDDEN,
                "This form cannot be accepted",
                "It did not carry this session's form token, so nothing was changed. \
                 Go back, reload the page and submit the form again."
                    .to_owned(),
            ),
            Self::TooLarge { max_bytes } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "The form is too large",
                format!(
                    "Forms may carry at most {} KiB. Nothing was changed.",
                    max_bytes / 1024
                ),
            ),
            Self::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "This is not a form",
                "Send the page's form as the browser does (a URL-encoded or multipart form)."
                    .to_owned(),
            ),
            Self::BadForm(detail) => (StatusCode::BAD_REQUEST, "Bad form", detail.clone()),
            Self::NotFound(detail) => (StatusCode::NOT_FOUND, "Not found", detail.clone()),
            Self::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "Not allowed",
                "This page does not take that method.".to_owned(),
            ),
            Self::Service(error) => describe_service_error(error),
        }
    }
}

fn describe_service_error(error: &ServiceError) -> (StatusCode, &'static str, String) {
    match error {
        ServiceError::NotFound(detail) => (StatusCode::NOT_FOUND, "Not found", detail.clone()),
        ServiceError::Conflict(detail) => (StatusCode::CONFLICT, "Conflict", detail.clone()),
        ServiceError::Invalid(errors) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid input",
            errors
                .iter()
                .map(|e| format!("{} {}", e.field, e.message))
                .collect::<Vec<_>>()
                .join("; "),
        ),
        ServiceError::CheckFailed(_) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "The instance check failed",
            "Nothing was saved.".to_owned(),
        ),
        ServiceError::Unauthenticated(detail) => {
            (StatusCode::FORBIDDEN, "Not allowed", detail.clone())
        }
        ServiceError::Forbidden { detail, .. } => {
            (StatusCode::FORBIDDEN, "Not allowed", detail.clone())
        }
        ServiceError::NotConnected(detail) => {
            (StatusCode::NOT_FOUND, "Not connected", detail.clone())
        }
        ServiceError::TokenRejected(detail) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "GitLab refuses the token",
            detail.clone(),
        ),
        ServiceError::ReauthorizationRequired(detail) => (
            StatusCode::CONFLICT,
            "The person must connect again",
            detail.clone(),
        ),
        ServiceError::GitLabUnavailable { detail, .. } => (
            StatusCode::SERVICE_UNAVAILABLE,
            "GitLab could not be reached",
            detail.clone(),
        ),
        ServiceError::Unavailable(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "Storage is unavailable",
            "Try again shortly.".to_owned(),
        ),
        ServiceError::Internal(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong",
            "An internal error occurred; it has been logged.".to_owned(),
        ),
    }
}

impl From<ServiceError> for PageError {
    fn from(error: ServiceError) -> Self {
        match error {
            ServiceError::NotFound(detail) => Self::NotFound(detail),
            other => Self::Service(other),
        }
    }
}

/// Shown in the request log line; never carries a secret.
impl std::fmt::Debug for PageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl std::fmt::Display for PageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (status, title, _) = self.describe();
        write!(f, "{} {title}", status.as_u16())
    }
}

impl PageError {
    /// What went wrong inside labgate, for the request's log line.
    pub(in crate::http) fn cause(&self) -> Option<String> {
        match self {
            Self::Service(ServiceError::Unavailable(cause)) => {
                Some(format!("storage unavailable: {cause}"))
            }
            Self::Service(ServiceError::Internal(cause)) => Some(format!("{cause:?}")),
            _ => None,
        }
    }
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        self.describe().0
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::SignIn { next } = self {
            let location = match next {
                Some(next) => format!(
                    "/admin/sign-in?next={}",
                    url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
                ),
                None => "/admin/sign-in".to_owned(),
            };
            return HttpResponse::SeeOther()
                .insert_header((LOCATION, location))
                .finish();
        }
        let (status, title, detail) = self.describe();
        respond(
            status,
            page(
                title,
                None,
                Section::None,
                html! {
                    h1 { (title) }
                    p { (detail) }
                    p { a href="/admin/instances" { "Back to the admin pages" } }
                },
            ),
        )
    }
}
