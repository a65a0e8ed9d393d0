//! `/admin/instances`: the list with each instance's last check, the registration form, an
//! instance's page (check report, re-check), editing, and deleting with a confirmation step.
//! Every change goes through `service::instances`, exactly as the admin API's do; the markup
//! is in `views`.

mod views;

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use secrecy::SecretString;
use serde::Deserialize;

use super::error::PageError;
use super::layout::{Errors, ok, respond};
use super::session::{Posted, SignedIn, see_other};
use crate::domain::{ConnectionStatus, InstanceName};
use crate::service::admin_sessions::AdminSession;
use crate::service::connections;
use crate::service::instances::{self, InstanceForm};
use crate::service::{Context, ServiceError, StepStatus};
use views::{Counts, Values};

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
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
    let deleted = notice.done.as_deref() == Some("deleted");
    Ok(ok(views::list_page(&session, &all, &counts, deleted)))
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
    match instances::register(&ctx, input, &session.actor).await {
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

/// The registration form, its redirect URL preview filled in for the name typed so far.
fn registration_page(
    ctx: &Context,
    session: &AdminSession,
    status: StatusCode,
    values: &Values,
    errors: &Errors,
) -> HttpResponse {
    let prefix = format!("{}/oauth/", ctx.public_base());
    let preview = match InstanceName::parse(&values.name) {
        Ok(name) => ctx.redirect_url(&name),
        Err(_) => format!("{prefix}{{name}}/callback"),
    };
    respond(
        status,
        views::registration_page(session, &prefix, &preview, values, errors),
    )
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
    Ok(ok(views::show_page(
        &session,
        &instance,
        count,
        notice.done.as_deref(),
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
    Ok(ok(views::edit_page(
        &session,
        &Values::of(&instance),
        &Errors::default(),
    )))
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
    match instances::change(&ctx, &values.name, input, &session.actor).await {
        Ok(instance) => Ok(see_other(&format!(
            "/admin/instances/{}?done=changed",
            instance.name
        ))),
        Err(error) => {
            let (status, errors) = form_errors(error)?;
            Ok(respond(
                status,
                views::edit_page(&session, &values, &errors),
            ))
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
    Ok(ok(views::delete_page(&session, &instance, held)))
}

async fn delete(
    posted: Posted,
    ctx: web::Data<Context>,
    name: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    instances::remove(&ctx, &name, &posted.session.actor).await?;
    Ok(see_other("/admin/instances?done=deleted"))
}
