//! Pages a person sees in the connect flow. Server-rendered, no script, no external resource,
//! never cached, no referrer: the callback's URL carries a code and a state.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, REFERRER_POLICY};
use maud::{DOCTYPE, Markup, html};

use super::scopes::GITLAB_SCOPES;
use crate::service::connect::{Failure, LinkInfo};

const STYLE: &str = "body{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#1f2328}\
h1{font-size:1.4rem}.ok{color:#1a7f37}.fail{color:#cf222e}p.code{color:#57606a;font-size:.9rem}\
ul.scopes li{margin-bottom:.4rem}form{display:inline-block;margin:1rem .5rem 0 0}";

pub(super) fn connected(username: &str, instance: &str) -> HttpResponse {
    page(
        StatusCode::OK,
        "Connected",
        html! {
            h1.ok { "Connected as @" (username) " on " (instance) }
            p { "You can close this tab." }
        },
    )
}

/// Before anything is spent: who asks for what, on which GitLab, what each scope allows; a
/// button to go on to GitLab and one to decline.
pub(super) fn confirm(link: &LinkInfo, action: &str) -> HttpResponse {
    page(
        StatusCode::OK,
        "Connect your GitLab account",
        html! {
            h1 { "Connect your GitLab account" }
            p { "The service " strong { (link.service) } " asks to use your account on the GitLab at "
                strong.gitlab { (link.gitlab_url) } " (" (link.instance) ")." }
            p { "It will be allowed:" }
            ul.scopes {
                @for scope in link.scopes.iter() {
                    li { code { (scope) } ": " (meaning(scope)) }
                }
            }
            form method="post" action=(action) {
                button type="submit" { "Continue to GitLab" }
            }
            form method="post" action={ (action) "/cancel" } {
                button type="submit" { "Cancel" }
            }
        },
    )
}

/// What GitLab's own form says a scope allows.
fn meaning(scope: &str) -> &'static str {
    GITLAB_SCOPES
        .iter()
        .find(|(name, _)| *name == scope)
        .map_or("", |(_, meaning)| meaning)
}

/// The person declined on the confirmation page and no service waits for the answer.
pub(super) fn cancelled() -> HttpResponse {
    page(
        StatusCode::OK,
        "Nothing was connected",
        html! {
            h1 { "Nothing was connected" }
            p { "You declined, so your GitLab account was not connected. You can close this tab." }
        },
    )
}

pub(super) fn failure(failure: &Failure) -> HttpResponse {
    let (status, title, advice) = describe(failure);
    page(
        status,
        title,
        html! {
            h1.fail { (title) }
            p { (advice) }
            p.code { "Reason: " (code(failure)) }
        },
    )
}

/// A stable word for each failure, for pages and for `return_to?status=error&error=…`.
pub(super) fn code(failure: &Failure) -> &str {
    match failure {
        Failure::UnknownLink => "unknown_link",
        Failure::ExpiredLink => "expired_link",
        Failure::UsedLink => "used_link",
        Failure::UnknownState => "unknown_state",
        Failure::ExpiredState => "expired_state",
        Failure::WrongInstance => "wrong_instance",
        Failure::IssuerMismatch => "issuer_mismatch",
        Failure::OtherBrowser => "other_browser",
        Failure::MissingCode => "missing_code",
        Failure::Denied => "access_denied",
        Failure::GitLabRefused(error) => error,
        Failure::GitLabUnavailable => "gitlab_unavailable",
        Failure::Unverified => "id_token_invalid",
        Failure::ResultGone => "result_gone",
        Failure::Internal => "internal_error",
    }
}

fn describe(failure: &Failure) -> (StatusCode, &'static str, &'static str) {
    const START_AGAIN: &str =
        "Nothing was connected. Start again from the application that sent you here.";
    match failure {
        Failure::UnknownLink => (
            StatusCode::NOT_FOUND,
            "This link is not valid",
            "Ask the application that sent you here for a new link.",
        ),
        Failure::ExpiredLink => (
            StatusCode::GONE,
            "This link has expired",
            "Links are valid for 10 minutes. Ask the application that sent you here for a new one.",
        ),
        Failure::UsedLink => (
            StatusCode::GONE,
            "This link was already used",
            "Each link works once. Ask the application that sent you here for a new one.",
        ),
        Failure::UnknownState => (
            StatusCode::BAD_REQUEST,
            "This sign-in cannot be completed",
            START_AGAIN,
        ),
        Failure::ExpiredState => (
            StatusCode::BAD_REQUEST,
            "This sign-in took too long",
            START_AGAIN,
        ),
        Failure::WrongInstance => (
            StatusCode::BAD_REQUEST,
            "GitLab sent you back to the wrong address",
            START_AGAIN,
        ),
        Failure::IssuerMismatch => (
            StatusCode::BAD_REQUEST,
            "This answer came from an unexpected GitLab",
            START_AGAIN,
        ),
        Failure::OtherBrowser => (
            StatusCode::BAD_REQUEST,
            "This sign-in was started in another browser",
            "Nothing was connected. Open the link you were given in this browser and start again.",
        ),
        Failure::MissingCode => (
            StatusCode::BAD_REQUEST,
            "GitLab sent no authorization code",
            START_AGAIN,
        ),
        Failure::Denied => (
            StatusCode::FORBIDDEN,
            "Access was not granted",
            "You declined at GitLab, so nothing was connected. You can close this tab.",
        ),
        Failure::GitLabRefused(_) => (
            StatusCode::BAD_GATEWAY,
            "GitLab refused the sign-in",
            "Start again; if it keeps failing, ask your administrator to check this GitLab instance in labgate.",
        ),
        Failure::GitLabUnavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            "GitLab could not be reached",
            "Nothing was connected. Try again in a few minutes.",
        ),
        Failure::Unverified => (
            StatusCode::BAD_GATEWAY,
            "GitLab's answer could not be verified",
            "Nothing was connected. Ask your administrator to check this GitLab instance in labgate.",
        ),
        Failure::ResultGone => (
            StatusCode::GONE,
            "This page has expired",
            "A sign-in's result is shown for 10 minutes, in the browser that signed in. The \
             application that sent you here knows whether your account is connected.",
        ),
        Failure::Internal => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "labgate could not complete the sign-in",
            "Nothing was connected. The error has been logged; try again later.",
        ),
    }
}

fn page(status: StatusCode, title: &str, body: Markup) -> HttpResponse {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · labgate" }
                style { (STYLE) }
            }
            body { (body) }
        }
    };
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((CACHE_CONTROL, "no-store"))
        .insert_header((REFERRER_POLICY, "no-referrer"))
        .insert_header((
            CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
        ))
        .body(markup.into_string())
}
