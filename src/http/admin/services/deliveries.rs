//! `/admin/services/{name}/deliveries`: the service's webhooks and what became of their
//! events, newest first: pending ones with their next attempt, failures with their reason.

use actix_web::{HttpResponse, web};
use maud::html;
use serde::Deserialize;

use super::super::error::PageError;
use super::super::layout::{Section, next_page_link, ok, page, when};
use super::super::session::SignedIn;
use crate::domain::Page;
use crate::service::webhooks::{self, deliveries};
use crate::service::{Context, services};

/// Deliveries per page.
const PER_PAGE: i64 = 100;

#[derive(Deserialize)]
pub(super) struct Cursor {
    cursor: Option<String>,
}

pub(super) async fn list(
    session: SignedIn,
    ctx: web::Data<Context>,
    name: web::Path<String>,
    query: web::Query<Cursor>,
) -> Result<HttpResponse, PageError> {
    let service = services::get(&ctx, &name).await?;
    let urls = webhooks::urls_of(&ctx, vec![service.id.clone()]).await?;
    let urls = urls.get(&service.id).cloned().unwrap_or_default();
    let after = Page::after(query.cursor.as_deref())
        .map_err(|e| PageError::BadForm(format!("cursor {e}")))?;
    let found = deliveries::list_page(
        &ctx,
        &name,
        Page {
            limit: PER_PAGE,
            after,
        },
    )
    .await?;
    let path = format!("/admin/services/{}/deliveries", service.name);
    let failed = found.items.iter().filter(|d| d.status == "failed").count();
    let body = html! {
        h1 { "Deliveries of " (service.name.as_str()) }
        p { a href="/admin/services" { "← Services" } }
        h2 { "Webhooks" }
        @if urls.is_empty() {
            p.muted { "No webhook: add one on the service's " a href={ "/admin/services/" (service.name.as_str()) "/edit" } { "Edit" } " page." }
        } @else {
            ul { @for url in &urls { li { code { (url) } } } }
        }
        h2 { "Recent deliveries" }
        @if failed > 0 {
            div.panel.error role="status" { (failed) " on this page failed for good." }
        }
        @if found.items.is_empty() {
            p.muted { "No event yet." }
        } @else {
            table {
                thead { tr {
                    th { "Created" } th { "Event" } th { "URL" } th { "Status" } th { "Attempts" }
                    th { "Last error" } th { "Next attempt" } th { "Delivered" }
                } }
                tbody {
                    @for d in &found.items {
                        tr {
                            td { (when(d.created_at)) }
                            td { code { (d.event_type) } br; span.muted { (d.event_id) } }
                            td { code { (d.url) } }
                            td { strong { (d.status) } }
                            td { (d.attempts) }
                            td { (d.last_error.as_deref().unwrap_or("")) }
                            td { @if let Some(at) = d.next_attempt_at { (when(at)) } }
                            td { @if let Some(at) = d.delivered_at { (when(at)) } }
                        }
                    }
                }
            }
        }
        @if let Some(next) = &found.next_cursor {
            (next_page_link(&path, &[], next, "Older deliveries →"))
        }
    };
    Ok(ok(page(
        "Deliveries",
        Some(&session),
        Section::Services,
        body,
    )))
}
