//! `/admin/audit`: the newest audit events, filterable by kind, instance and subject.

use actix_web::{HttpResponse, web};
use maud::html;
use serde::Deserialize;

use super::error::PageError;
use super::layout::{Errors, Input, Section, next_page_link, ok, page, when};
use super::session::SignedIn;
use crate::domain::Page;
use crate::service::{Context, audit};

/// How many of the newest events the page looks through.
const NEWEST: i64 = 500;

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/audit")
            .route(web::get().to(list))
            .default_service(web::to(super::method_not_allowed)),
    );
}

#[derive(Deserialize, Default)]
struct Filter {
    kind: Option<String>,
    instance: Option<String>,
    subject: Option<String>,
    cursor: Option<String>,
}

async fn list(
    session: SignedIn,
    ctx: web::Data<Context>,
    filter: web::Query<Filter>,
) -> Result<HttpResponse, PageError> {
    let wanted = |value: &Option<String>| {
        value
            .as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let (kind, instance, subject) = (
        wanted(&filter.kind),
        wanted(&filter.instance),
        wanted(&filter.subject),
    );
    let matches = |field: &Option<String>, want: &Option<String>| want.is_none() || field == want;
    let after = Page::after(filter.cursor.as_deref())
        .map_err(|e| PageError::BadForm(format!("cursor {e}")))?;
    let window = audit::list(
        &ctx,
        None,
        Page {
            limit: NEWEST,
            after,
        },
    )
    .await?;
    let events: Vec<_> = window
        .items
        .into_iter()
        .filter(|e| kind.as_deref().is_none_or(|k| e.kind == k))
        .filter(|e| matches(&e.instance, &instance) && matches(&e.subject, &subject))
        .collect();
    let errors = Errors::default();
    let body = html! {
        h1 { "Audit" }
        p.muted { "Events " (NEWEST) " at a time, newest first: handouts, refresh failures, connections and every administrator's change." }
        form.filters method="get" action="/admin/audit" {
            (Input::text("kind", "Kind", kind.as_deref().unwrap_or("")).placeholder("handout").render(&errors))
            (Input::text("instance", "Instance", instance.as_deref().unwrap_or("")).render(&errors))
            (Input::text("subject", "Subject", subject.as_deref().unwrap_or("")).render(&errors))
            button type="submit" { "Filter" }
        }
        @if events.is_empty() {
            p { "No events." }
        } @else {
            table {
                thead { tr { th { "When" } th { "Kind" } th { "Actor" } th { "Instance" } th { "Subject" } th { "Scopes" } th { "Detail" } } }
                tbody {
                    @for event in &events {
                        tr {
                            td { (when(event.at)) }
                            td { code { (event.kind) } }
                            td { (event.actor) }
                            td { (event.instance.as_deref().unwrap_or("")) }
                            td { (event.subject.as_deref().unwrap_or("")) }
                            td { (event.scopes.as_deref().unwrap_or("")) }
                            td { (event.detail.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
        }
        @if let Some(next) = &window.next_cursor {
            (next_page_link("/admin/audit", &[("kind", &kind), ("instance", &instance), ("subject", &subject)], next, "Older events →"))
        }
    };
    Ok(ok(page("Audit", Some(&session), Section::Audit, body)))
}
