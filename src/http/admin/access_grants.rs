//! `/admin/access-grants`: the live access grants services made for the proxy, and revoking
//! one. No grant token is ever shown: labgate keeps only its hash.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use maud::html;

use super::error::PageError;
use super::layout::{Section, csrf, page, respond, when};
use super::session::{Posted, SignedIn, see_other};
use crate::domain::ProjectPath;
use crate::service::Context;
use crate::service::access_grants::{self, GrantOwner, GrantQuery};

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/access-grants")
            .route(web::get().to(list))
            .default_service(web::to(super::method_not_allowed)),
    )
    .service(
        web::resource("/access-grants/{id}/revoke")
            .route(web::post().to(revoke))
            .default_service(web::to(super::method_not_allowed)),
    );
}

#[derive(serde::Deserialize)]
struct Notice {
    done: Option<String>,
}

async fn list(
    session: SignedIn,
    ctx: web::Data<Context>,
    notice: web::Query<Notice>,
) -> Result<HttpResponse, PageError> {
    // Every live grant: they live an hour at most, so the list stays short.
    let grants = access_grants::list(&ctx, GrantQuery::default())
        .await?
        .items;
    let notice =
        (notice.done.as_deref() == Some("revoked")).then_some("The access grant was revoked.");
    let body = html! {
        h1 { "Access grants" }
        @if let Some(notice) = notice { div.panel.ok role="status" { (notice) } }
        p { "Short-lived tokens services made for the proxy: each lets a service work through labgate on one person's behalf, on the projects named, and nothing else. Revoking one ends it at once." }
        @if grants.is_empty() {
            p.muted { "No live access grant." }
        } @else {
            table {
                thead { tr {
                    th { "Service" } th { "Instance" } th { "Subject" } th { "Projects" }
                    th { "Access" } th { "Made" } th { "Expires" } th { span.muted { "Actions" } }
                } }
                tbody {
                    @for grant in &grants {
                        tr {
                            td { (grant.service) }
                            td { (grant.instance) }
                            td { code { (grant.subject) } }
                            td { @for project in grant.projects.iter().map(ProjectPath::as_str) { code { (project) } br; } }
                            td { (grant.access.as_str()) }
                            td { (when(grant.created_at)) }
                            td { (when(grant.expires_at)) }
                            td {
                                form method="post" action={ "/admin/access-grants/" (grant.id) "/revoke" } {
                                    (csrf(&session))
                                    button.danger type="submit" { "Revoke" }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(respond(
        StatusCode::OK,
        page("Access grants", Some(&session), Section::AccessGrants, body),
    ))
}

async fn revoke(
    posted: Posted,
    ctx: web::Data<Context>,
    id: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    access_grants::end(&ctx, GrantOwner::Admin(&posted.session.actor), &id).await?;
    Ok(see_other("/admin/access-grants?done=revoked"))
}
