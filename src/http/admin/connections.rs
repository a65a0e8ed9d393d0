//! `/admin/connections`: what labgate holds, filtered by instance, subject and status, with the
//! ones that need attention marked. No token material is shown.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use chrono::Utc;
use maud::{Markup, html};
use serde::Deserialize;

use super::error::PageError;
use super::layout::{Errors, Input, Section, badge, next_page_link, page, respond, when};
use super::session::SignedIn;
use crate::domain::{ConnectionKind, ConnectionStatus, Page};
use crate::service::admin_sessions::AdminSession;
use crate::service::connections::{self, ConnectionQuery, ConnectionView};
use crate::service::{Context, ServiceError, instances, revocation};

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/connections")
            .route(web::get().to(list))
            .default_service(web::to(super::method_not_allowed)),
    )
    .service(
        web::resource("/connections/{id}/refreshes")
            .route(web::get().to(refreshes))
            .default_service(web::to(super::method_not_allowed)),
    );
    cfg.service(
        web::resource("/connections/{id}/revoke")
            .route(web::get().to(revoke_confirmation))
            .route(web::post().to(revoke))
            .default_service(web::to(super::method_not_allowed)),
    );
}

const STATUSES: [&str; 3] = ["active", "reauthorization_required", "revoked"];

#[derive(Deserialize, Default)]
struct Filter {
    instance: Option<String>,
    subject: Option<String>,
    status: Option<String>,
    cursor: Option<String>,
}

/// Connections shown on one page.
const PER_PAGE: i64 = 100;

async fn list(
    session: SignedIn,
    ctx: web::Data<Context>,
    filter: web::Query<Filter>,
) -> Result<HttpResponse, PageError> {
    let blank_is_none =
        |v: Option<String>| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    let Filter {
        instance,
        subject,
        status,
        cursor,
    } = filter.into_inner();
    let after =
        Page::after(cursor.as_deref()).map_err(|e| PageError::BadForm(format!("cursor {e}")))?;
    let (instance, subject, status) = (
        blank_is_none(instance),
        blank_is_none(subject),
        blank_is_none(status),
    );
    let query = ConnectionQuery {
        service: None,
        instance: instance.clone(),
        subject: subject.clone(),
        status: status.clone(),
        page: Some(Page {
            limit: PER_PAGE,
            after,
        }),
    };
    let (found, next_cursor, errors, code) = match connections::list(&ctx, query).await {
        Ok(found) => (
            found.items,
            found.next_cursor,
            Errors::default(),
            StatusCode::OK,
        ),
        Err(ServiceError::Invalid(fields)) => (
            Vec::new(),
            None,
            Errors::fields(fields),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        Err(other) => return Err(other.into()),
    };
    let instance_names: Vec<String> = instances::list(&ctx)
        .await?
        .into_iter()
        .map(|i| i.name.to_string())
        .collect();
    let now = Utc::now().naive_utc();
    let filtered = instance.is_some() || subject.is_some() || status.is_some();
    let status_error = errors.on("status");
    let body = html! {
        h1 { "Connections" }
        p { a href="/admin/connections/access-token" { "Add an access token…" } }
        form.filters method="get" action="/admin/connections" role="search" {
            div.field {
                label for="instance" { "Instance" }
                select id="instance" name="instance" {
                    option value="" { "All instances" }
                    @for name in &instance_names {
                        option value=(name) selected[instance.as_deref() == Some(name.as_str())] { (name) }
                    }
                }
            }
            (Input::text("subject", "Subject", subject.as_deref().unwrap_or_default())
                .kind("search")
                .render(&errors))
            div.field.invalid[status_error.is_some()] {
                label for="status" { "Status" }
                select id="status" name="status" aria-invalid=[status_error.as_ref().map(|_| "true")] {
                    option value="" { "Any status" }
                    @for word in STATUSES {
                        option value=(word) selected[status.as_deref() == Some(word)] { (word.replace('_', " ")) }
                    }
                }
                @if let Some(message) = &status_error { p.error id="status-error" { "Status " (message) } }
            }
            div.actions {
                button type="submit" { "Filter" }
                @if filtered { a href="/admin/connections" { "Clear" } }
            }
        }
        @if found.is_empty() {
            p.muted {
                @if filtered { "No connection matches these filters." }
                @else { "No connection yet: people connect their GitLab accounts through links that services create." }
            }
        } @else {
            p.muted { (found.len()) " connection" @if found.len() != 1 { "s" } }
            table {
                thead { tr {
                    th { "Status" } th { "Kind" } th { "Instance" } th { "Subject" } th { "GitLab user" }
                    th { "Scopes" } th { "Token expires" } th { "Last refresh" } th { "Connected" }
                    // The revoke column (issue 4): see `revoke_control`.
                    th {}
                } }
                tbody {
                    @for connection in &found {
                        tr {
                            td { (badge(connection.status.as_str())) }
                            td {
                                (kind_label(connection.kind))
                                @if connection.rotation_impossible { " " (badge("cannot_rotate")) }
                            }
                            td { a href={ "/admin/instances/" (connection.instance) } { (connection.instance) } }
                            td { code { (connection.subject) } }
                            td {
                                @if connection.gitlab_username.is_empty() { span.muted { "username not readable " } }
                                @else { "@" (connection.gitlab_username) " " }
                                span.muted { "(id " (connection.gitlab_user_id) ")" }
                            }
                            td { (connection.scopes.to_string()) }
                            td {
                                (when(connection.expires_at))
                                @if connection.expires_at <= now { " " span.muted { "(expired)" } }
                            }
                            td {
                                @match connection.refreshed_at {
                                    Some(at) => { (when(at)) }
                                    None => { span.muted { "never" } }
                                }
                                " " a href={ "/admin/connections/" (connection.id) "/refreshes" } { "history" }
                            }
                            td { (when(connection.created_at)) }
                            td { (revoke_control(&session, connection)) }
                        }
                    }
                }
            }
            @if let Some(next) = &next_cursor {
                (next_page_link("/admin/connections", &[("instance", &instance), ("subject", &subject), ("status", &status)], next, "Older connections →"))
            }
        }
    };
    Ok(respond(
        code,
        page("Connections", Some(&session), Section::Connections, body),
    ))
}

fn kind_label(kind: ConnectionKind) -> &'static str {
    match kind {
        ConnectionKind::OAuth => "OAuth",
        ConnectionKind::AccessToken => "access token",
    }
}

/// A revoke link for a connection GitLab has not revoked yet; it leads to a confirmation.
fn revoke_control(_session: &AdminSession, connection: &ConnectionView) -> Markup {
    let done = connection.status == ConnectionStatus::Revoked
        && connection.status_reason.as_deref() == Some("revoked");
    html! {
        @if !done {
            a.danger href={ "/admin/connections/" (connection.id) "/revoke" } { "Revoke…" }
        }
    }
}

async fn revoke_confirmation(
    session: SignedIn,
    ctx: web::Data<Context>,
    id: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let query = ConnectionQuery::default();
    let connection = connections::list(&ctx, query)
        .await?
        .items
        .into_iter()
        .find(|c| c.id == *id)
        .ok_or_else(|| {
            PageError::NotFound(format!("no connection has the id {:?}", id.as_str()))
        })?;
    let body = html! {
        h1 { "Revoke " (connection.subject) "'s connection on " (connection.instance) "?" }
        div.panel.warn {
            @match connection.kind {
                ConnectionKind::OAuth => p { "labgate stops handing out its tokens at once, and asks GitLab to revoke the grant of @"
                    (connection.gitlab_username) " (" (connection.scopes.to_string()) "). "
                    "The person has to connect again to use " (connection.service) " with " (connection.instance) "." },
                ConnectionKind::AccessToken => p { "labgate stops handing out the access token of @"
                    (connection.gitlab_username) " (" (connection.scopes.to_string()) ") at once, and asks GitLab to revoke it. "
                    (connection.service) " needs a new token to act for " (connection.subject) " again." },
            }
        }
        div.actions {
            form method="post" action={ "/admin/connections/" (connection.id) "/revoke" } {
                (super::layout::csrf(&session))
                button.danger type="submit" { "Revoke" }
            }
            a href="/admin/connections" { "Cancel" }
        }
    };
    Ok(respond(
        StatusCode::OK,
        page(
            "Revoke connection",
            Some(&session),
            Section::Connections,
            body,
        ),
    ))
}

async fn revoke(
    posted: super::session::Posted,
    ctx: web::Data<Context>,
    id: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    revocation::revoke(&ctx, &id, &posted.session.actor).await?;
    Ok(super::session::see_other(
        "/admin/connections?status=revoked",
    ))
}

/// The rotation ledger of one connection: its last refresh attempts and how each ended.
async fn refreshes(
    session: SignedIn,
    ctx: web::Data<Context>,
    id: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let attempts = connections::refresh_history(&ctx, &id).await?;
    let body = html! {
        h1 { "Refresh history" }
        p.muted { "Connection " code { (id.as_str()) } ": the last refresh attempts, newest first." }
        @if attempts.is_empty() {
            p.muted { "No refresh yet." }
        } @else {
            table {
                thead { tr {
                    th { "Outcome" } th { "Started" } th { "Finished" } th { "Process" }
                    th { "GitLab request id" } th { "Detail" }
                } }
                tbody {
                    @for attempt in &attempts {
                        tr {
                            td { (badge(&attempt.outcome)) }
                            td { (when(attempt.started_at)) }
                            td { (when(attempt.finished_at)) }
                            td { code { (attempt.process) } }
                            td { @if let Some(request) = &attempt.gitlab_request_id { code { (request) } } }
                            td { @if let Some(detail) = &attempt.detail { (detail) } }
                        }
                    }
                }
            }
        }
        p { a href="/admin/connections" { "All connections" } }
    };
    Ok(respond(
        StatusCode::OK,
        page(
            "Refresh history",
            Some(&session),
            Section::Connections,
            body,
        ),
    ))
}
