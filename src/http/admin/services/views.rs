//! What the services pages show: the list with the create form, the edit form, and the page
//! that shows a secret once.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use maud::{Markup, html};
use secrecy::{ExposeSecret, SecretString};

use super::super::error::PageError;
use super::super::layout::{
    Errors, Input, Section, checkboxes, copyable, csrf, error_summary, page, radios, respond,
    textarea, when,
};
use super::webhook_fields::{shown_fields, webhook_fields};
use crate::http::scopes::GITLAB_SCOPES;
use crate::service::admin_sessions::AdminSession;
use crate::service::principal::Service;
use crate::service::{Context, instances, services, webhooks};

const FIELDS: &[&str] = &[
    "name",
    "instances",
    "scopes",
    "return_origins",
    "projects",
    "max_access",
    "identities",
];
const ACCESS_LEVELS: &[(&str, &str)] = &[
    ("read", "clone and read through the proxy"),
    ("write", "also push and change through the proxy"),
];
/// The checkbox that stands for every instance, present and future.
pub(super) const ALL_INSTANCES: &str = "*";

pub(super) struct Values {
    pub(super) name: String,
    pub(super) instances: Vec<String>,
    pub(super) scopes: Vec<String>,
    pub(super) return_origins: String,
    pub(super) projects: String,
    pub(super) max_access: String,
    /// The workload identities as JSON; empty for none.
    pub(super) identities: String,
    /// The webhooks' URLs, one per row; their secrets are never shown.
    pub(super) webhooks: Vec<String>,
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
            identities: String::new(),
            webhooks: Vec::new(),
        }
    }
}

pub(super) async fn services_page(
    ctx: &Context,
    session: &AdminSession,
    status: StatusCode,
    notice: Option<&str>,
    values: &Values,
    errors: &Errors,
) -> Result<HttpResponse, PageError> {
    let all = services::list(ctx).await?;
    let instance_names = instance_names(ctx).await?;
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
                    th { "Return origins" } th { "Projects" } th { "Access" } th { "Identities" }
                    th { "Secret set" } th { span.muted { "Actions" } }
                } }
                tbody {
                    @for service in &all { (service_row(service)) }
                }
            }
        }
        h2 id="create" { "Create a service" }
        (summary(values, errors))
        form method="post" action="/admin/services" {
            (csrf(session))
            (Input::text("name", "Name", &values.name)
                .required()
                .placeholder("ci-bot")
                .render(errors))
            (policy_fields(&instance_names, values, &[], errors))
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
            td { @for identity in service.identities.iter() {
                (identity.issuer.written())
                @for (claim, expected) in &identity.claims { br; code { (claim) "=" (expected.written()) } }
                @if let Some(claim) = &identity.subject_claim { br; "acts for its " code { (claim) } }
                br;
            } }
            td { (when(service.secret_rotated_at)) }
            td {
                a href={ "/admin/services/" (name) "/edit" } { "Edit" }
                br;
                a href={ "/admin/services/" (name) "/deliveries" } { "Deliveries" }
                br;
                a href={ "/admin/services/" (name) "/rotate-secret" } { "Rotate secret…" }
                br;
                a href={ "/admin/services/" (name) "/delete" } { "Delete…" }
            }
        }
    }
}

/// The names of the registered instances, for the instances checkboxes.
async fn instance_names(ctx: &Context) -> Result<Vec<String>, PageError> {
    Ok(instances::list(ctx)
        .await?
        .into_iter()
        .map(|i| i.name.to_string())
        .collect())
}

/// The webhook URLs stored for the service, in its order; never a secret.
pub(super) async fn webhook_urls(
    ctx: &Context,
    service: &Service,
) -> Result<Vec<String>, PageError> {
    let mut urls = webhooks::urls_of(ctx, vec![service.id.clone()]).await?;
    Ok(urls.remove(&service.id).unwrap_or_default())
}

/// What a refused form says at its top, about the fields it does not show beside an input.
fn summary(values: &Values, errors: &Errors) -> Markup {
    let webhook_names = shown_fields(values.webhooks.len());
    let mut shown = FIELDS.to_vec();
    shown.extend(webhook_names.iter().map(String::as_str));
    error_summary(errors, &shown)
}

/// The policy's inputs, shared by the create and edit forms; `stored`: the webhook URLs whose
/// secrets are kept when left empty.
fn policy_fields(
    instance_names: &[String],
    values: &Values,
    stored: &[String],
    errors: &Errors,
) -> Markup {
    let mut instance_options: Vec<(&str, &str)> = vec![(
        ALL_INSTANCES,
        "every instance, including ones registered later",
    )];
    instance_options.extend(instance_names.iter().map(|n| (n.as_str(), "")));
    html! {
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
        (textarea("identities", "Workload identities", &values.identities, Some(html! {
            "CI jobs and workloads whose signed tokens it may exchange for a service token, as a JSON array, e.g. "
            code { r#"[{"issuer": "corp", "audience": "https://labgate.corp.example", "claims": {"project_path": "group/app", "ref_protected": "true"}, "subject_claim": "user_login"}]"# }
            ". Empty for none."
        }), errors))
        (webhook_fields(&values.webhooks, stored, errors))
    }
}

/// The edit form: every policy field, the name fixed.
pub(super) async fn edit_page(
    ctx: &Context,
    session: &AdminSession,
    status: StatusCode,
    values: &Values,
    errors: &Errors,
) -> Result<HttpResponse, PageError> {
    let instance_names = instance_names(ctx).await?;
    let stored = webhook_urls(ctx, &services::get(ctx, &values.name).await?).await?;
    let name = values.name.as_str();
    let body = html! {
        h1 { "Edit service " (name) }
        p { "Its client ID, secret, tokens and connections are kept. Narrowing applies at the next request, and live access grants outside the new policy end at once." }
        (summary(values, errors))
        form method="post" action={ "/admin/services/" (name) "/edit" } {
            (csrf(session))
            (policy_fields(&instance_names, values, &stored, errors))
            div.actions {
                button.primary type="submit" { "Save" }
                a href="/admin/services" { "Cancel" }
            }
        }
    };
    Ok(respond(
        status,
        page(
            &format!("Edit {name}"),
            Some(session),
            Section::Services,
            body,
        ),
    ))
}

/// The one page that shows a service's secret: right after create or rotate, never again.
pub(super) fn secret_page(
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
