//! `/admin/services`: the list, creating a service (its secret shown once), rotating the
//! secret, deleting. Every change goes through `service::services`, as the admin API's do.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use maud::html;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::error::PageError;
use super::layout::{
    Errors, Input, Section, checkboxes, copyable, csrf, error_summary, ok, page, radios, respond,
    textarea, when,
};
use super::session::{Posted, SignedIn, see_other};
use crate::http::scopes::GITLAB_SCOPES;
use crate::service::admin_sessions::AdminSession;
use crate::service::instances;
use crate::service::principal::Service;
use crate::service::services::{self, ServiceForm};
use crate::service::{Context, ServiceError};

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/services")
            .route(web::get().to(list))
            .route(web::post().to(create))
            .default_service(web::to(super::method_not_allowed)),
    )
    .service(
        web::resource("/services/{name}/rotate-secret")
            .route(web::get().to(rotate_confirmation))
            .route(web::post().to(rotate))
            .default_service(web::to(super::method_not_allowed)),
    )
    .service(
        web::resource("/services/{name}/delete")
            .route(web::get().to(delete_confirmation))
            .route(web::post().to(delete))
            .default_service(web::to(super::method_not_allowed)),
    );
}

const FIELDS: &[&str] = &[
    "name",
    "instances",
    "scopes",
    "return_origins",
    "projects",
    "max_access",
];
const ACCESS_LEVELS: &[(&str, &str)] = &[
    ("read", "clone and read through the proxy"),
    ("write", "also push and change through the proxy"),
];
/// The checkbox that stands for every instance, present and future.
const ALL_INSTANCES: &str = "*";

#[derive(Deserialize)]
struct Notice {
    done: Option<String>,
}

struct Values {
    name: String,
    instances: Vec<String>,
    scopes: Vec<String>,
    return_origins: String,
    projects: String,
    max_access: String,
}

impl Default for Values {
    /// The API's defaults: every project, read only.
    fn default() -> Self {
        Self {
            name: String::new(),
            instances: Vec::new(),
            scopes: Vec::new(),
            return_origins: String::new(),
            projects: "**".to_owned(),
            max_access: "read".to_owned(),
        }
    }
}

async fn list(
    session: SignedIn,
    ctx: web::Data<Context>,
    notice: web::Query<Notice>,
) -> Result<HttpResponse, PageError> {
    let notice = (notice.done.as_deref() == Some("deleted")).then_some("The service was deleted.");
    services_page(
        &ctx,
        &session,
        StatusCode::OK,
        notice,
        &Values::default(),
        &Errors::default(),
    )
    .await
}

async fn services_page(
    ctx: &Context,
    session: &AdminSession,
    status: StatusCode,
    notice: Option<&str>,
    values: &Values,
    errors: &Errors,
) -> Result<HttpResponse, PageError> {
    let all = services::list(ctx).await?;
    let instance_names: Vec<String> = instances::list(ctx)
        .await?
        .into_iter()
        .map(|i| i.name.to_string())
        .collect();
    let mut instance_options: Vec<(&str, &str)> = vec![(
        ALL_INSTANCES,
        "every instance, including ones registered later",
    )];
    instance_options.extend(instance_names.iter().map(|n| (n.as_str(), "")));
    let body = html! {
        h1 { "Services" }
        @if let Some(notice) = notice { div.panel.ok role="status" { (notice) } }
        p { "Internal programs that exchange their client ID and secret for a short-lived service token, then start connect sessions and fetch credentials." }
        @if all.is_empty() {
            p.muted { "No service yet." }
        } @else {
            table {
                thead { tr {
                    th { "Name" } th { "Client ID" } th { "Instances" } th { "Scopes (at most)" }
                    th { "Return origins" } th { "Projects" } th { "Access" }
                    th { "Secret set" } th { span.muted { "Actions" } }
                } }
                tbody {
                    @for service in &all { (service_row(service)) }
                }
            }
        }
        h2 id="create" { "Create a service" }
        (error_summary(errors, FIELDS))
        form method="post" action="/admin/services" {
            (csrf(session))
            (Input::text("name", "Name", &values.name)
                .required()
                .placeholder("ci-bot")
                .render(errors))
            (checkboxes("instances", "Instances it may use", None, &instance_options, &values.instances, errors))
            (checkboxes("scopes", "Scopes", Some(html! {
                "The most a token handed to this service may carry (" code { "openid" } ", "
                code { "profile" } " and " code { "email" } " are always allowed)."
            }), GITLAB_SCOPES, &values.scopes, errors))
            (textarea("return_origins", "Return origins", &values.return_origins, Some(html! {
                "Origins the service may send people back to after connecting, one per line, e.g. "
                code { "https://bot.corp.example" } ". May be empty."
            }), errors))
            (textarea("projects", "Projects", &values.projects, Some(html! {
                "Projects its access grants may name, one pattern per line: " code { "group/app" }
                " exactly, " code { "group/*" } " its direct children, " code { "group/**" }
                " any depth, " code { "**" } " every project."
            }), errors))
            (radios("max_access", "Most access through the proxy", ACCESS_LEVELS, &values.max_access, errors))
            button.primary type="submit" { "Create service" }
        }
    };
    Ok(respond(
        status,
        page("Services", Some(session), Section::Services, body),
    ))
}

fn service_row(service: &Service) -> maud::Markup {
    let name = service.name.as_str();
    html! {
        tr {
            td { strong { (name) } }
            td { code { (service.client_id) } }
            td { (service.instances.to_string()) }
            td { (service.scopes.to_string()) }
            td { @for origin in &service.return_origins { code { (origin.as_str()) } br; } }
            td { @for pattern in service.projects.as_strings() { code { (pattern) } br; } }
            td { (service.max_access.as_str()) }
            td { (when(service.updated_at)) }
            td {
                a href={ "/admin/services/" (name) "/rotate-secret" } { "Rotate secret…" }
                br;
                a href={ "/admin/services/" (name) "/delete" } { "Delete…" }
            }
        }
    }
}

async fn create(posted: Posted, ctx: web::Data<Context>) -> Result<HttpResponse, PageError> {
    let Posted { session, form } = posted;
    let mut values = Values {
        name: form.text("name").trim().to_owned(),
        instances: form.all("instances"),
        scopes: form.all("scopes"),
        return_origins: form.text("return_origins"),
        projects: form
            .get("projects")
            .map_or_else(|| "**".to_owned(), str::to_owned),
        max_access: form
            .given("max_access")
            .unwrap_or_else(|| "read".to_owned()),
    };
    // "Every instance" stands alone, whatever else was ticked.
    if values.instances.iter().any(|i| i == ALL_INSTANCES) {
        values.instances = vec![ALL_INSTANCES.to_owned()];
    }
    let input = ServiceForm {
        name: Some(values.name.clone()).filter(|n| !n.is_empty()),
        instances: Some(values.instances.clone()),
        scopes: Some(values.scopes.clone()),
        return_origins: Some(form.words("return_origins")),
        // As the API: a form sent without these fields takes the defaults.
        projects: form.get("projects").map(|_| form.words("projects")),
        max_access: Some(values.max_access.clone()),
    };
    match services::create(&ctx, input).await {
        Ok((service, secret)) => Ok(secret_page(
            &ctx,
            &session,
            StatusCode::CREATED,
            "created",
            &service,
            &secret,
        )),
        Err(ServiceError::Invalid(fields)) => {
            services_page(
                &ctx,
                &session,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                &values,
                &Errors::fields(fields),
            )
            .await
        }
        Err(ServiceError::Conflict(message)) => {
            let mut errors = Errors::default();
            errors.general.push(message);
            services_page(&ctx, &session, StatusCode::CONFLICT, None, &values, &errors).await
        }
        Err(other) => Err(other.into()),
    }
}

/// The one page that shows a service's secret: right after create or rotate, never again.
fn secret_page(
    ctx: &Context,
    session: &AdminSession,
    status: StatusCode,
    what: &str,
    service: &Service,
    secret: &SecretString,
) -> HttpResponse {
    let name = service.name.as_str();
    let body = html! {
        h1 { "Service " (name) " " (what) }
        div.panel.warn role="alert" {
            h2 { "Copy the client secret now: it is shown only this once." }
            p { "labgate keeps only a hash of it. If it is lost, rotate the secret to get a new one." }
            dl.facts {
                dt { "Client ID" } dd { (copyable("client-id", &service.client_id, "")) }
                dt { "Client secret" } dd { (copyable("client-secret", secret.expose_secret(), "")) }
            }
        }
        h2 { "Using it" }
        p { "The service exchanges these for a service token (valid up to 15 minutes):" }
        pre { code {
            "curl -sS -u \"$LABGATE_CLIENT_ID:$LABGATE_CLIENT_SECRET\" \\\n  -d grant_type=client_credentials \\\n  "
            (ctx.public_base()) "/api/v1/service-token"
        } }
        p { a href="/admin/services" { "Back to services" } }
    };
    respond(
        status,
        page(
            &format!("Service {name}"),
            Some(session),
            Section::Services,
            body,
        ),
    )
}

async fn rotate_confirmation(
    session: SignedIn,
    ctx: web::Data<Context>,
    name: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let service = find(&ctx, &name).await?;
    let name = service.name.as_str();
    let body = html! {
        h1 { "Rotate the secret of " (name) "?" }
        div.panel.warn {
            p { "A new secret is made and shown once. The current one stops working at once; service tokens already issued stay valid until they expire (at most 15 minutes)." }
        }
        div.actions {
            form method="post" action={ "/admin/services/" (name) "/rotate-secret" } {
                (csrf(&session))
                button.primary type="submit" { "Rotate the secret" }
            }
            a href="/admin/services" { "Cancel" }
        }
    };
    Ok(ok(page(
        &format!("Rotate {name}"),
        Some(&session),
        Section::Services,
        body,
    )))
}

async fn rotate(
    posted: Posted,
    ctx: web::Data<Context>,
    name: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let session = posted.session;
    let (service, secret) = services::rotate_secret(&ctx, &name).await?;
    Ok(secret_page(
        &ctx,
        &session,
        StatusCode::OK,
        "has a new secret",
        &service,
        &secret,
    ))
}

async fn delete_confirmation(
    session: SignedIn,
    ctx: web::Data<Context>,
    name: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let service = find(&ctx, &name).await?;
    let name = service.name.as_str();
    let body = html! {
        h1 { "Delete service " (name) "?" }
        div.panel.warn {
            p { "Its client ID and secret stop working at once, and so do its pending connect links. Service tokens already issued are refused once the service is gone." }
        }
        div.actions {
            form method="post" action={ "/admin/services/" (name) "/delete" } {
                (csrf(&session))
                button.danger type="submit" { "Delete " (name) }
            }
            a href="/admin/services" { "Cancel" }
        }
    };
    Ok(ok(page(
        &format!("Delete {name}"),
        Some(&session),
        Section::Services,
        body,
    )))
}

async fn delete(
    _: Posted,
    ctx: web::Data<Context>,
    name: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    services::delete(&ctx, &name).await?;
    Ok(see_other("/admin/services?done=deleted"))
}

async fn find(ctx: &Context, name: &str) -> Result<Service, PageError> {
    services::list(ctx)
        .await?
        .into_iter()
        .find(|s| s.name.as_str() == name)
        .ok_or_else(|| PageError::NotFound(format!("no service is named {name:?}")))
}
