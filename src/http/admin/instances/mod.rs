//! `/admin/instances`: the list with each instance's last check, the registration form, an
//! instance's page (check report, re-check), editing, and deleting with a confirmation step.
//! Every change goes through `service::instances`, exactly as the admin API's do.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use maud::html;
use secrecy::SecretString;
use serde::Deserialize;

use super::error::PageError;
use super::layout::{
    Errors, Section, badge, button_form, check_steps, copyable, csrf, ok, page, when,
};
use super::session::{Posted, SignedIn, see_other};
use crate::domain::ConnectionStatus;
use crate::service::connections;
use crate::service::instances::{self, InstanceForm};
use crate::service::{Context, ServiceError, StepStatus};
use views::{Values, edit_page, gitlab_steps, registration_page};

mod views;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/instances")
            .route(web::get().to(list))
            .route(web::post().to(create))
            .default_service(web::to(super::method_not_allowed)),
    )
    .service(
        web::resource("/instances/new")
            .route(web::get().to(new_form))
            .default_service(web::to(super::method_not_allowed)),
    )
    .service(
        web::resource("/instances/{name}")
            .route(web::get().to(show))
            .default_service(web::to(super::method_not_allowed)),
    )
    .service(
        web::resource("/instances/{name}/check")
            .route(web::post().to(check))
            .default_service(web::to(super::method_not_allowed)),
    )
    .service(
        web::resource("/instances/{name}/edit")
            .route(web::get().to(edit_form))
            .route(web::post().to(update))
            .default_service(web::to(super::method_not_allowed)),
    )
    .service(
        web::resource("/instances/{name}/delete")
            .route(web::get().to(delete_confirmation))
            .route(web::post().to(delete))
            .default_service(web::to(super::method_not_allowed)),
    );
}

#[derive(Deserialize)]
struct Notice {
    done: Option<String>,
}

/// Connections of one instance, by status.
#[derive(Default)]
struct Counts {
    active: usize,
    attention: usize,
    revoked: usize,
}

async fn connection_counts(
    ctx: &Context,
    instance: Option<String>,
) -> Result<BTreeMap<String, Counts>, ServiceError> {
    let mut counts: BTreeMap<String, Counts> = BTreeMap::new();
    for counted in connections::count(ctx, instance).await? {
        let entry = counts.entry(counted.instance).or_default();
        let count = usize::try_from(counted.count).unwrap_or_default();
        match counted.status {
            ConnectionStatus::Active => entry.active += count,
            ConnectionStatus::ReauthorizationRequired => entry.attention += count,
            ConnectionStatus::Revoked => entry.revoked += count,
        }
    }
    Ok(counts)
}

async fn list(
    session: SignedIn,
    ctx: web::Data<Context>,
    notice: web::Query<Notice>,
) -> Result<HttpResponse, PageError> {
    let all = instances::list(&ctx).await?;
    let counts = connection_counts(&ctx, None).await?;
    let none = Counts::default();
    let body = html! {
        h1 { "GitLab instances" }
        @if notice.done.as_deref() == Some("deleted") {
            div.panel.ok role="status" { "The instance was deleted." }
        }
        div.actions { a.button.primary href="/admin/instances/new" { "Register an instance" } }
        @if all.is_empty() {
            p.muted { "No GitLab instance is registered yet. Register one to let services connect people's GitLab accounts." }
        } @else {
            table {
                thead { tr {
                    th { "Name" } th { "Base URL" } th { "Last check" } th { "Connections" } th { "Scopes" }
                } }
                tbody {
                    @for instance in &all {
                        @let name = instance.name.as_str();
                        @let count = counts.get(name).unwrap_or(&none);
                        tr {
                            td { a href={ "/admin/instances/" (name) } { strong { (name) } } }
                            td { code { (instance.base_url.as_str()) } }
                            td {
                                (badge(if instance.last_check.ok { "passed" } else { "failed" }))
                                " " span.muted { (when(instance.last_check.at)) }
                                @if let Some(failed) = instance.last_check.steps.iter().find(|s| s.status == StepStatus::Failed) {
                                    br; span.muted { (failed.step) ": " (failed.detail) }
                                }
                            }
                            td {
                                a href={ "/admin/connections?instance=" (name) } { (count.active) " active" }
                                @if count.attention > 0 {
                                    br;
                                    a href={ "/admin/connections?instance=" (name) "&status=reauthorization_required" } {
                                        span.badge.reauthorization_required { (count.attention) " need reauthorization" }
                                    }
                                }
                            }
                            td { (instance.scopes.to_string()) }
                        }
                    }
                }
            }
        }
    };
    Ok(ok(page(
        "Instances",
        Some(&session),
        Section::Instances,
        body,
    )))
}

async fn new_form(session: SignedIn, ctx: web::Data<Context>) -> HttpResponse {
    registration_page(
        &ctx,
        &session,
        StatusCode::OK,
        &Values::fresh(),
        &Errors::default(),
    )
}

async fn create(posted: Posted, ctx: web::Data<Context>) -> Result<HttpResponse, PageError> {
    let Posted { session, form } = posted;
    let values = Values::posted(&form);
    let input = InstanceForm {
        name: Some(values.name.clone()).filter(|v| !v.is_empty()),
        base_url: Some(values.base_url.clone()).filter(|v| !v.is_empty()),
        client_id: Some(values.client_id.clone()).filter(|v| !v.is_empty()),
        client_secret: form.given("client_secret").map(SecretString::from),
        ca_pem: Some(Some(values.ca_pem.clone())),
        scopes: Some(values.scopes.clone()),
    };
    match instances::register(&ctx, input).await {
        Ok(instance) => Ok(see_other(&format!(
            "/admin/instances/{}?done=registered",
            instance.name
        ))),
        Err(error) => {
            let (status, errors) = form_errors(error)?;
            Ok(registration_page(&ctx, &session, status, &values, &errors))
        }
    }
}

/// Field errors, a failed check or a taken name, for the form to show; anything else is an
/// error page.
fn form_errors(error: ServiceError) -> Result<(StatusCode, Errors), PageError> {
    match error {
        ServiceError::Invalid(fields) => {
            Ok((StatusCode::UNPROCESSABLE_ENTITY, Errors::fields(fields)))
        }
        ServiceError::CheckFailed(steps) => {
            let mut errors = Errors::default();
            if let Some(failed) = steps.iter().find(|s| s.status == StepStatus::Failed) {
                let field = match failed.code.as_deref() {
                    Some("tls_unknown_ca") => "ca_pem",
                    _ => "base_url",
                };
                errors.add(
                    field,
                    format!("failed the {} check: {}", failed.step, failed.detail),
                );
            }
            errors.general.push(
                "labgate checks GitLab before saving, and that check failed. The report below says what it saw at each step.".to_owned(),
            );
            errors.steps = steps;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, errors))
        }
        ServiceError::Conflict(message) => {
            let mut errors = Errors::default();
            errors.general.push(message);
            Ok((StatusCode::CONFLICT, errors))
        }
        other => Err(other.into()),
    }
}

async fn show(
    session: SignedIn,
    ctx: web::Data<Context>,
    name: web::Path<String>,
    notice: web::Query<Notice>,
) -> Result<HttpResponse, PageError> {
    let instance = instances::get(&ctx, &name).await?;
    let counts = connection_counts(&ctx, Some(instance.name.to_string())).await?;
    let count = counts.get(instance.name.as_str());
    let name = instance.name.as_str();
    let scopes: Vec<String> = instance.scopes.iter().map(str::to_owned).collect();
    let body = html! {
        @match notice.done.as_deref() {
            Some("registered") => {
                div.panel.ok role="status" {
                    h2 { "Registered " (name) ". Now paste this redirect URL into GitLab:" }
                    (copyable("registered-redirect-url", &instance.redirect_url, "big"))
                    (gitlab_steps(&scopes, true))
                }
            }
            Some("changed") => { div.panel.ok role="status" { "Saved: the changes passed the check." } }
            Some("checked") => {
                @if instance.last_check.ok {
                    div.panel.ok role="status" { "The check passed." }
                } @else {
                    div.panel.bad role="alert" { "The check failed: see the report below." }
                }
            }
            _ => {}
        }
        h1 { "Instance " (name) }
        dl.facts {
            dt { "Redirect URL" } dd { (copyable("redirect-url", &instance.redirect_url, "")) }
            dt { "Base URL" } dd { code { (instance.base_url.as_str()) } }
            dt { "Client ID" } dd { code { (instance.client_id) } }
            dt { "Client secret" } dd { span.muted { "sealed; never shown" } }
            dt { "Scopes" } dd { (instance.scopes.to_string()) }
            dt { "Token lifetime" } dd {
                @match instance.token_lifetime_seconds {
                    Some(seconds) => { (seconds) " s, as GitLab granted it last" }
                    None => { span.muted { "not known until a token is issued" } }
                }
            }
            dt { "Trusted CA" } dd {
                @match &instance.ca {
                    Some(ca) => { @for subject in ca.subjects() { code { (subject) } br; } }
                    None => { span.muted { "the platform's roots" } }
                }
            }
            dt { "Connections" } dd {
                a href={ "/admin/connections?instance=" (name) } {
                    (count.map_or(0, |c| c.active)) " active, "
                    (count.map_or(0, |c| c.attention)) " need reauthorization, "
                    (count.map_or(0, |c| c.revoked)) " revoked"
                }
            }
            dt { "Registered" } dd { (when(instance.created_at)) ", changed " (when(instance.updated_at)) }
        }
        h2 { "Last check: " (badge(if instance.last_check.ok { "passed" } else { "failed" })) " " span.muted { (when(instance.last_check.at)) } }
        (check_steps(&instance.last_check.steps))
        div.actions {
            (button_form(&session, &format!("/admin/instances/{name}/check"), "Re-check now", ""))
            a.button href={ "/admin/instances/" (name) "/edit" } { "Edit" }
            a.button.danger href={ "/admin/instances/" (name) "/delete" } { "Delete…" }
        }
        @let endpoints = instance.discovery.endpoints();
        @if !endpoints.is_empty() {
            h2 { "Endpoints found by discovery" }
            table { tbody { @for (what, url) in endpoints { tr { td { (what) } td { code { (url) } } } } } }
        }
    };
    Ok(ok(page(
        &format!("Instance {name}"),
        Some(&session),
        Section::Instances,
        body,
    )))
}

async fn check(
    _: Posted,
    ctx: web::Data<Context>,
    name: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let (_, instance) = instances::check(&ctx, &name).await?;
    Ok(see_other(&format!(
        "/admin/instances/{}?done=checked",
        instance.name
    )))
}

async fn edit_form(
    session: SignedIn,
    ctx: web::Data<Context>,
    name: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let instance = instances::get(&ctx, &name).await?;
    Ok(edit_page(
        &session,
        StatusCode::OK,
        &Values::of(&instance),
        &Errors::default(),
    ))
}

async fn update(
    posted: Posted,
    ctx: web::Data<Context>,
    name: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let Posted { session, form } = posted;
    let current = instances::get(&ctx, &name).await?;
    let values = Values {
        name: current.name.to_string(),
        ..Values::posted(&form)
    };
    let input = InstanceForm {
        name: None,
        base_url: Some(values.base_url.clone()),
        client_id: Some(values.client_id.clone()),
        client_secret: form.given("client_secret").map(SecretString::from),
        ca_pem: Some(Some(values.ca_pem.clone()).filter(|pem| !pem.trim().is_empty())),
        scopes: Some(values.scopes.clone()),
    };
    match instances::change(&ctx, &values.name, input).await {
        Ok(instance) => Ok(see_other(&format!(
            "/admin/instances/{}?done=changed",
            instance.name
        ))),
        Err(error) => {
            let (status, errors) = form_errors(error)?;
            Ok(edit_page(&session, status, &values, &errors))
        }
    }
}

async fn delete_confirmation(
    session: SignedIn,
    ctx: web::Data<Context>,
    name: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let instance = instances::get(&ctx, &name).await?;
    let name = instance.name.as_str();
    let counts = connection_counts(&ctx, Some(name.to_owned())).await?;
    let held = counts
        .get(name)
        .map_or(0, |c| c.active + c.attention + c.revoked);
    let body = html! {
        h1 { "Delete instance " (name) "?" }
        div.panel.warn {
            p { "labgate forgets " strong { (name) } " (" code { (instance.base_url.as_str()) } "), its client secret and its "
                strong { (held) " connection" @if held != 1 { "s" } } ". Services can no longer get tokens for it, and the people who connected must connect again if it is registered anew." }
            p { "The application in GitLab is not touched: delete it there too if it is no longer needed." }
        }
        div.actions {
            form method="post" action={ "/admin/instances/" (name) "/delete" } {
                (csrf(&session))
                button.danger type="submit" { "Delete " (name) }
            }
            a href={ "/admin/instances/" (name) } { "Cancel" }
        }
    };
    Ok(ok(page(
        &format!("Delete {name}"),
        Some(&session),
        Section::Instances,
        body,
    )))
}

async fn delete(
    _: Posted,
    ctx: web::Data<Context>,
    name: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    instances::remove(&ctx, &name).await?;
    Ok(see_other("/admin/instances?done=deleted"))
}
